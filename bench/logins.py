"""Logins timed one at a time, by dbvigil and by each engine's own client library, against
the same server in the same run: how much of a probe cycle a login is, per login shape.

- dbvigil: `GET /probe?target=NAME` on a target with `checks: [connect]`; the figure is
  the probe's own `dbvigil_probe_phase_duration_seconds{phase="connect"}` (a fresh
  connection: TCP connect, TLS handshake when asked, authentication; on MariaDB also
  dbvigil's `SET SESSION max_statement_time`, one more round trip).
- libpq (PostgreSQL's C client, through ctypes): `PQconnectdb(conninfo)` until the
  connection is ready, timed with perf_counter around that call alone; `PQfinish`
  afterwards, untimed.
- MariaDB Connector/C (libmariadb, through ctypes, the library under the `mariadb`
  client): `mysql_init`, `mysql_ssl_set` for TLS (no certificate verification, as
  `ssl-mode=required`), then `mysql_real_connect` timed alone; `mysql_close` untimed.

Client CPU per login is the process's user + system time over the loop divided by the
logins (for dbvigil, its whole process per `/probe`, HTTP included).
"""

import ctypes
import ctypes.util
import time

import measure

_libpq = None
_libmaria = None


def _pq():
    global _libpq
    if _libpq is None:
        lib = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        lib.PQerrorMessage.restype = ctypes.c_char_p
        lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQsslInUse.argtypes = [ctypes.c_void_p]
        lib.PQfinish.argtypes = [ctypes.c_void_p]
        _libpq = lib
    return _libpq


def _maria():
    global _libmaria
    if _libmaria is None:
        lib = ctypes.CDLL(ctypes.util.find_library("mariadb") or "libmariadb.so.3")
        lib.mysql_init.restype = ctypes.c_void_p
        lib.mysql_init.argtypes = [ctypes.c_void_p]
        lib.mysql_ssl_set.argtypes = [ctypes.c_void_p] + [ctypes.c_char_p] * 5
        lib.mysql_real_connect.restype = ctypes.c_void_p
        lib.mysql_real_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p, ctypes.c_ulong]
        lib.mysql_get_ssl_cipher.restype = ctypes.c_char_p
        lib.mysql_get_ssl_cipher.argtypes = [ctypes.c_void_p]
        lib.mysql_error.restype = ctypes.c_char_p
        lib.mysql_error.argtypes = [ctypes.c_void_p]
        lib.mysql_close.argtypes = [ctypes.c_void_p]
        lib.mysql_get_client_info.restype = ctypes.c_char_p
        _libmaria = lib
    return _libmaria


def libpq_version():
    v = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5").PQlibVersion()
    return f"libpq {v // 10000}.{v % 100}"


def connector_c_version():
    return f"MariaDB Connector/C {_maria().mysql_get_client_info().decode()}"


def libpq_logins(conninfo, n, tls):
    """n logins with libpq: (seconds of each, client CPU seconds in all)."""
    lib = _pq()
    out = []
    cpu0 = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        conn = lib.PQconnectdb(conninfo.encode())
        elapsed = time.perf_counter() - start
        try:
            if lib.PQstatus(conn) != 0:  # CONNECTION_OK
                raise RuntimeError(f"libpq login failed: {lib.PQerrorMessage(conn).decode().strip()}")
            if bool(lib.PQsslInUse(conn)) != tls:
                raise RuntimeError(f"libpq login: TLS in use is {bool(lib.PQsslInUse(conn))}, expected {tls}")
        finally:
            lib.PQfinish(conn)
        out.append(elapsed)
    return out, time.process_time() - cpu0


def mariadb_logins(server, user, password, db, n, tls):
    """n logins with MariaDB Connector/C: (seconds of each, client CPU seconds in all)."""
    lib = _maria()
    out = []
    cpu0 = time.process_time()
    for _ in range(n):
        m = lib.mysql_init(None)
        if tls:
            # Any non-NULL argument turns TLS on; the CA is given but not verified (3.3's
            # default), as with ssl-mode=required.
            lib.mysql_ssl_set(m, None, None, server.certs.ca.encode(), None, None)
        try:
            start = time.perf_counter()
            ok = lib.mysql_real_connect(m, server.host.encode(), user.encode(),
                                        password.encode() if password else None, db.encode(), server.port, None, 0)
            elapsed = time.perf_counter() - start
            if not ok:
                raise RuntimeError(f"Connector/C login failed: {lib.mysql_error(m).decode()}")
            cipher = lib.mysql_get_ssl_cipher(m)
            if bool(cipher) != tls:
                raise RuntimeError(f"Connector/C login: TLS cipher {cipher!r}, expected TLS {tls}")
        finally:
            lib.mysql_close(m)
        out.append(elapsed)
    return out, time.process_time() - cpu0


def dbvigil_logins(d, target, n):
    """n `/probe?target=` calls on a running dbvigil (a dbvigil.Dbvigil): (connect-phase
    seconds of each, dbvigil's CPU seconds in all)."""
    out = []
    cpu0 = measure.cpu_seconds(d.pid)
    for _ in range(n):
        status, body, _ = measure.get(d.port, f"/probe?target={target}", timeout=30)
        if status != 200:
            raise RuntimeError(f"/probe?target={target} answered {status}: {body[:300]}")
        ok = phase = None
        for name, labels, value in measure.parse_metrics(body):
            if name == "dbvigil_probe_success":
                ok = value
            elif name == "dbvigil_probe_phase_duration_seconds" and labels.get("phase") == "connect":
                phase = value
        if ok != 1.0 or phase is None:
            raise RuntimeError(f"/probe?target={target} failed:\n{body[:1500]}")
        out.append(phase)
    return out, measure.cpu_seconds(d.pid) - cpu0
