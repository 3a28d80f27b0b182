"""Scenario 8: a PostgreSQL target behind an SSH bastion, and what the SSH session costs.

A throwaway OpenSSH server (Debian's own `sshd`, made the way tests/common/sshd.rs makes
one: its own host key, client key, authorized_keys and sshd_config, forwarding only to the
benchmark PostgreSQL's port) stands in for the bastion, on loopback. The same PostgreSQL is
reached in its TLS + SCRAM shape (servers.py) by:

- dbvigil, continuous probes of one target with `checks: [connect]`: straight to the server
  (the baseline), and through the bastion with `connection: fresh` (a new SSH session and a
  new login each probe) and `connection: reuse` (one SSH session and one login kept). Each
  probe's phases are read back from dbvigil's own `dbvigil_phase_duration_seconds`: the
  histogram's `_sum` and `_count` are read after every probe, and a probe's phase duration
  is the growth of `_sum` when `_count` grew by one. `bastion` is the SSH session (a new
  one: TCP, key exchange, host key check, login; a kept one: a keepalive round trip),
  `connect` the login through the forward (fresh) or a `SELECT 1` on the kept login
  (reuse). The first probe of each process is left out (a reused login starts there).
- OpenSSH and libpq (through ctypes), what a user would otherwise run: `ssh -f -N -L`
  started for each connection (timed until it is in the background with its forward
  listening, then libpq's `PQconnectdb` and `SELECT 1` through it), and one kept `ssh -L`
  tunnel with a new libpq login each time, or one kept libpq connection's `SELECT 1`.

Every login is counted on the bastion's side too (sshd's `Accepted publickey` lines): a
kept session must log in once per dbvigil process, a fresh one once per probe.
"""

import ctypes
import os
import shutil
import socket
import subprocess
import time
import types

import logins
import measure
import servers
from dbvigil import Dbvigil
from measure import fmt_ms, fmt_range, table

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"
READY_TIMEOUT = 30.0
# PQresultStatus's PGRES_TUPLES_OK.
PGRES_TUPLES_OK = 2


def missing():
    """Why the scenario cannot run here, or None."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} not found (Debian package openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian package openssh-client)"
    if os.geteuid() != 0:
        # As in tests/common/sshd.rs: sshd started by another user logs in only that
        # user, without privilege separation.
        return "the throwaway sshd needs root"
    return None


def _banner(port, timeout=2.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).decode("ascii", "replace")
    except OSError:
        return ""


class Sshd:
    """A throwaway sshd on a free port of 127.0.0.1 that lets the client key log in as root
    and forwards only to 127.0.0.1:`permit_port` (tests/common/sshd.rs's recipe)."""

    user = "root"

    def __init__(self, workdir, permit_port):
        self.dir = workdir
        self.port = measure.free_port()
        path = lambda name: os.path.join(workdir, name)  # noqa: E731
        self.host_key, self.client_key = path("ssh_host_ed25519_key"), path("client_ed25519")
        self.known_hosts, self.config, self.log = path("known_hosts"), path("sshd_config"), path("sshd.log")
        for key, comment in ((self.host_key, "dbvigil-bench-bastion"), (self.client_key, "dbvigil-bench-client")):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
                           check=True, capture_output=True, timeout=60)
        authorized = path("authorized_keys")
        shutil.copyfile(self.client_key + ".pub", authorized)
        os.chmod(authorized, 0o644)
        host_pub = " ".join(open(self.host_key + ".pub").read().split()[:2])
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_pub}\n")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "ListenAddress 127.0.0.1", f"HostKey {self.host_key}", "PidFile none",
                f"AuthorizedKeysFile {authorized}", "StrictModes no", "UsePAM no", "UseDNS no",
                "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password", "AllowTcpForwarding local",
                f"PermitOpen 127.0.0.1:{permit_port}", "AllowStreamLocalForwarding no",
                "AllowAgentForwarding no", "GatewayPorts no", "PermitTunnel no", "PermitTTY no",
                "X11Forwarding no", "PermitUserRC no", "PrintMotd no", "LogLevel VERBOSE",
                "MaxStartups 100", "MaxSessions 100",
            ]) + "\n")
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
        self.proc = measure.Proc("sshd", [SSHD, "-D", "-e", "-f", self.config, "-p", str(self.port)], workdir)
        deadline = time.monotonic() + READY_TIMEOUT
        while not _banner(self.port).startswith("SSH-2.0-"):
            if not self.proc.alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"sshd did not answer with a banner on port {self.port}:\n"
                                   f"{self.proc.log_tail()}")
            time.sleep(0.02)

    def logins(self):
        """Logins sshd accepted so far."""
        with open(self.proc.log_path, errors="replace") as f:
            return sum(1 for line in f if "Accepted publickey for" in line)

    def yaml(self):
        """The target's `ssh:` block, as a YAML flow mapping."""
        return (f"{{host: 127.0.0.1, port: {self.port}, user: {self.user}, identity_file: {self.client_key}, "
                f"known_hosts: {self.known_hosts}}}")

    def ssh_argv(self):
        """OpenSSH's client, told everything on its command line: no user or system
        configuration, the host key pinned, the client key only, never a prompt."""
        return ["ssh", "-F", "/dev/null", "-p", str(self.port), "-l", self.user, "-i", self.client_key,
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ExitOnForwardFailure=yes"]

    def close(self):
        # sshd -D leaves established sessions running when the listener exits: end them too.
        if self.proc.alive():
            for pid in reversed(servers._descendants(self.proc.pid)[1:]):
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
        self.proc.stop()


class Tunnel:
    """`ssh -f -N -L` as a control master: the call returns once ssh is logged in and its
    forward listens (ssh binds local forwards before it goes to the background), and
    `close()` asks the master to exit."""

    def __init__(self, sshd, db_port, workdir, n):
        self.sshd = sshd
        self.port = measure.free_port()
        self.control = os.path.join(workdir, f"ctl-{n}")
        self.log = os.path.join(workdir, "ssh.log")
        argv = sshd.ssh_argv() + ["-f", "-N", "-M", "-S", self.control,
                                  "-L", f"127.0.0.1:{self.port}:127.0.0.1:{db_port}", "127.0.0.1"]
        # Not pipes: the backgrounded ssh keeps them open, and run() would wait for it.
        with open(self.log, "ab") as log:
            start = time.perf_counter()
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
            self.seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"ssh -f -N -L exited {done.returncode}:\n{_tail(self.log)}")

    def close(self):
        with open(self.log, "ab") as log:
            subprocess.run(self.sshd.ssh_argv() + ["-S", self.control, "-O", "exit", "127.0.0.1"],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
        deadline = time.monotonic() + 10
        while os.path.exists(self.control) and time.monotonic() < deadline:
            time.sleep(0.01)


def _tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _pq():
    lib = logins._pq()
    lib.PQexec.restype = ctypes.c_void_p
    lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.PQresultStatus.argtypes = [ctypes.c_void_p]
    lib.PQclear.argtypes = [ctypes.c_void_p]
    return lib


def _select_one(lib, conn):
    res = lib.PQexec(conn, b"SELECT 1")
    try:
        if lib.PQresultStatus(res) != PGRES_TUPLES_OK:
            raise RuntimeError(f"SELECT 1 failed: {lib.PQerrorMessage(conn).decode().strip()}")
    finally:
        lib.PQclear(res)


def _connect(lib, conninfo):
    conn = lib.PQconnectdb(conninfo.encode())
    if lib.PQstatus(conn) != 0:  # CONNECTION_OK
        message = lib.PQerrorMessage(conn).decode().strip()
        lib.PQfinish(conn)
        raise RuntimeError(f"libpq login failed: {message}")
    if not lib.PQsslInUse(conn):
        lib.PQfinish(conn)
        raise RuntimeError("libpq login: TLS is not in use")
    return conn


def libpq_connect_select(conninfo, n):
    """n times `PQconnectdb` + `SELECT 1`, timed together; `PQfinish` untimed."""
    lib = _pq()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        conn = _connect(lib, conninfo)
        try:
            _select_one(lib, conn)
            out.append(time.perf_counter() - start)
        finally:
            lib.PQfinish(conn)
    return out


def libpq_kept_select(conninfo, n):
    """One connection, then n times `SELECT 1` on it, each timed."""
    lib = _pq()
    conn = _connect(lib, conninfo)
    out = []
    try:
        _select_one(lib, conn)
        for _ in range(n):
            start = time.perf_counter()
            _select_one(lib, conn)
            out.append(time.perf_counter() - start)
    finally:
        lib.PQfinish(conn)
    return out


def _conninfo(server, port):
    """The TLS + SCRAM login of servers.py, to `port` on loopback (the server's, or a
    tunnel's)."""
    return (f"host=127.0.0.1 port={port} user={servers.TLS_USER} password={servers.TLS_PASSWORD} "
            f"dbname={servers.TLS_USER} sslmode=require")


def ssh_fresh(sshd, server, workdir, n):
    """n times: a new `ssh -f -N -L` tunnel, then a libpq login and `SELECT 1` through it;
    the tunnel is closed after each, untimed. (tunnel seconds, login seconds) lists."""
    tunnels, connects = [], []
    for i in range(n):
        t = Tunnel(sshd, server.port, workdir, i)
        try:
            connects += libpq_connect_select(_conninfo(server, t.port), 1)
            tunnels.append(t.seconds)
        finally:
            t.close()
    return tunnels, connects


def _target(name, server, interval, connection, ssh=None):
    parts = [f"name: {name}", "kind: postgres", f"url: '{server.tls_url()}'", f"interval: {interval}",
             f"timeout: {interval}", f"connection: {connection}", "phase_buckets: detailed"]
    if ssh:
        parts.append(f"ssh: {ssh}")
    return "{" + ", ".join(parts) + "}"


def _reading(d, name):
    """(probes, failures, {phase: (sum, count)}) of one target, from one scrape."""
    m = d.metrics()
    mine = lambda labels: labels.get("target") == name  # noqa: E731
    probes = sum(v for labels, v in m.get("dbvigil_probes_total", []) if mine(labels))
    failures = sum(v for labels, v in m.get("dbvigil_probe_failures_total", []) if mine(labels))
    phases = {}
    for suffix, i in (("_sum", 0), ("_count", 1)):
        for labels, v in m.get(f"dbvigil_phase_duration_seconds{suffix}", []):
            if mine(labels):
                phases.setdefault(labels["phase"], [0.0, 0.0])[i] = v
    return probes, failures, phases


def dbvigil_probes(binary, workdir, target, name, n, timeout):
    """Runs one dbvigil with `target` until n probes after its first have been read one by
    one: ({phase: [seconds per probe]}, probes run, failed probes). A probe's phase is
    the growth of the histogram's _sum when its _count grew by one; readings that span two
    probes are left out."""
    d = Dbvigil(types.SimpleNamespace(dbvigil=binary), workdir, [target])
    samples = {}
    try:
        deadline = time.monotonic() + timeout
        last = None
        taken = 0
        while taken < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {taken} of {n} probes read within {timeout:.0f} s:\n"
                                   f"{d.proc.log_tail()}")
            probes, failures, phases = _reading(d, name)
            if failures:
                raise RuntimeError(f"{name}: a probe failed:\n{d.proc.log_tail()}")
            if last is not None and probes == last[0] + 1 and last[0] >= 1:
                whole = 0.0
                for phase, (s, c) in phases.items():
                    s0, c0 = last[2].get(phase, (0.0, 0.0))
                    if c == c0 + 1:
                        samples.setdefault(phase, []).append(s - s0)
                        whole += s - s0
                samples.setdefault("all", []).append(whole)
                taken += 1
            if last is None or probes != last[0]:
                last = (probes, failures, phases)
            # Polled: a probe publishes its histogram and its count together, and one
            # /metrics of one target is a fraction of a millisecond of dbvigil's time.
            time.sleep(0.02)
        probes, failures, _ = _reading(d, name)
    finally:
        d.stop()
    return samples, probes, failures


def run(ctx):
    title = "### 8. SSH bastion: the session's cost"
    why = missing()
    if why:
        ctx.headlines["bastion_skipped"] = why
        return f"{title}\n\nNot measured: {why}."
    pg = ctx.pg
    smoke = ctx.smoke
    rounds = 1 if smoke else 3
    per_round = 4 if smoke else 14
    # The timeout is the interval (dbvigil refuses overlapping probes); a debug build on a
    # busy machine gets a whole second.
    interval = "1s" if smoke else "500ms"
    n_native = rounds * per_round
    ctx.versions["OpenSSH (ssh, sshd)"] = _ssh_version()
    ctx.versions["russh"] = _russh_version()
    ctx.versions.setdefault("libpq", logins.libpq_version().split()[-1])
    sshd = Sshd(ctx.scratch("sshd"), pg.port)
    try:
        builds = [("dbvigil", ctx.dbvigil)]
        if getattr(ctx, "dbvigil_before", None):
            builds.append((ctx.before_label, ctx.dbvigil_before))
        configs = (("direct", "fresh", None), ("direct", "reuse", None),
                   ("bastion", "fresh", sshd.yaml()), ("bastion", "reuse", sshd.yaml()))
        # Builds and modes take turns round by round, so that a busier minute of the machine
        # does not land on one of them only.
        dbv = {}
        for _ in range(rounds):
            for label, binary in builds:
                for path, mode, ssh in configs:
                    if path == "direct" and label != "dbvigil":
                        continue  # the bastion's path is what changed between builds
                    got = dbv.setdefault((label, path, mode),
                                         {"samples": {}, "probes": 0, "logins": 0, "processes": 0})
                    name = f"pg-{path}-{mode}"
                    before = sshd.logins()
                    samples, probes, _ = dbvigil_probes(
                        binary, ctx.scratch(f"bastion-{path}-{mode}"), _target(name, pg, interval, mode, ssh),
                        name, per_round, timeout=60 + per_round * 10)
                    got["logins"] += sshd.logins() - before
                    got["probes"] += int(probes)
                    got["processes"] += 1
                    for phase, v in samples.items():
                        got["samples"].setdefault(phase, []).extend(v)

        workdir = ctx.scratch("ssh-client")
        direct = libpq_connect_select(_conninfo(pg, pg.port), n_native)
        direct_kept = libpq_kept_select(_conninfo(pg, pg.port), n_native)
        before = sshd.logins()
        fresh_tunnel, fresh_connect = ssh_fresh(sshd, pg, workdir, n_native)
        ssh_fresh_logins = sshd.logins() - before
        kept = Tunnel(sshd, pg.port, workdir, "kept")
        try:
            kept_connect = libpq_connect_select(_conninfo(pg, kept.port), n_native)
            kept_select = libpq_kept_select(_conninfo(pg, kept.port), n_native)
        finally:
            kept.close()
    finally:
        sshd.close()

    rows = []
    h = ctx.headlines

    def row(client, path, session, what, samples, key=None):
        st = measure.summary(samples)
        rows.append([client, path, session, what, fmt_range(st), st["n"]])
        if key:
            h[key] = st["median"] * 1000
        return st

    # What each phase is, by path and mode.
    phases = {
        ("bastion", "fresh"): (("bastion", "`bastion`: a new SSH session (TCP, key exchange, login)"),
                               ("tcp", "`tcp`: a forward opened and closed (the database reached)"),
                               ("connect", "`connect`: a new forward, TLS + SCRAM login")),
        ("bastion", "reuse"): (("bastion", "`bastion`: a keepalive round trip on the kept session"),
                               ("tcp", "`tcp`: a forward opened and closed"),
                               ("connect", "`connect`: `SELECT 1` on the kept login")),
        ("direct", "fresh"): (("tcp", "`tcp`: a TCP connect"), ("connect", "`connect`: TLS + SCRAM login")),
        ("direct", "reuse"): (("tcp", "`tcp`: a TCP connect"), ("connect", "`connect`: `SELECT 1` on the kept login")),
    }
    sessions_of = {("bastion", "fresh"): "new each probe", ("bastion", "reuse"): "kept", ("direct", "fresh"): "-",
                   ("direct", "reuse"): "-"}
    for label, _ in builds:
        suffix = "" if label == "dbvigil" else "_before"
        for path, mode, _ in configs:
            if (label, path, mode) not in dbv:
                continue
            s = dbv[(label, path, mode)]["samples"]
            where = f"{path}, `connection: {mode}`"
            key_path = "via" if path == "bastion" else "direct"
            for phase, what in phases[(path, mode)]:
                row(label, where, sessions_of[(path, mode)], what, s[phase],
                    f"bastion_{key_path}_{mode}_{phase}_median_ms{suffix}")
            row(label, where, sessions_of[(path, mode)], "**the whole probe** (every phase)", s["all"],
                f"bastion_{key_path}_{mode}_total_median_ms{suffix}")
    native = logins.libpq_version()
    row(native, "direct", "-", "`PQconnectdb` + `SELECT 1`", direct, "bastion_native_direct_median_ms")
    row(native, "direct", "-", "`SELECT 1` on a kept connection", direct_kept)
    row("OpenSSH + " + native, "`ssh -f -N -L`", "new each connection",
        "`ssh` until its forward listens", fresh_tunnel, "bastion_ssh_fresh_tunnel_median_ms")
    row("OpenSSH + " + native, "`ssh -f -N -L`", "new each connection",
        "then `PQconnectdb` + `SELECT 1` through it", fresh_connect, "bastion_ssh_fresh_connect_median_ms")
    row("OpenSSH + " + native, "`ssh -f -N -L`", "new each connection", "**both**",
        [a + b for a, b in zip(fresh_tunnel, fresh_connect)], "bastion_ssh_fresh_total_median_ms")
    row("OpenSSH + " + native, "`ssh -N -L`", "kept", "`PQconnectdb` + `SELECT 1` through it", kept_connect,
        "bastion_ssh_kept_connect_median_ms")
    row("OpenSSH + " + native, "`ssh -N -L`", "kept", "`SELECT 1` on a kept connection through it", kept_select,
        "bastion_ssh_kept_select_median_ms")

    # What the harness holds dbvigil to without a stopwatch: every bastion probe succeeded
    # (a failure stops the run above), a kept session logged in once per process, a fresh
    # one once per probe.
    for mode in ("fresh", "reuse"):
        got = dbv[("dbvigil", "bastion", mode)]
        h[f"bastion_{mode}_probes"] = got["probes"]
        h[f"bastion_{mode}_logins"] = got["logins"]
        h[f"bastion_{mode}_processes"] = got["processes"]
    h["bastion_probes_ok"] = True

    fresh, reuse = dbv[("dbvigil", "bastion", "fresh")], dbv[("dbvigil", "bastion", "reuse")]
    intro = (
        "One PostgreSQL target in the TLS + SCRAM shape (`sslmode=require`, the non-superuser's password "
        f"login) with the default checks (tcp, connect, read, write), probed every {interval}: straight to the "
        "server, and through a throwaway OpenSSH `sshd` on loopback (ed25519 host and client keys, "
        "`AllowTcpForwarding local`, `PermitOpen` the server's port only), with `connection: fresh` (a new "
        "SSH session and login each probe) and `connection: reuse` (both kept). dbvigil's figures are its own "
        "phase durations, read back per probe from `dbvigil_phase_duration_seconds` (`_sum` growth when "
        f"`_count` grew by one), {rounds} process{'es' if rounds > 1 else ''} of {per_round} probes, the "
        "first probe of each process left out; the whole probe is the sum of its phases (read, read-only, "
        "write and identity included). The OpenSSH rows are what a user would otherwise run: `ssh -f -N -L` "
        "(as a control master, closed with `ssh -O exit` untimed after each connection) timed until it is "
        "logged in with its forward listening, then libpq's login and `SELECT 1` through it; and one kept "
        f"`ssh -N -L` tunnel. libpq is called through ctypes, {n_native} of each, `PQfinish` untimed.")
    sessions = (
        f"Logins on the bastion (sshd's `Accepted publickey`): `connection: fresh` {fresh['logins']} for "
        f"{fresh['probes']} probes in {fresh['processes']} process{'es' if fresh['processes'] > 1 else ''}; "
        f"`connection: reuse` {reuse['logins']} for {reuse['probes']} probes in {reuse['processes']} "
        f"process{'es' if reuse['processes'] > 1 else ''}; OpenSSH {ssh_fresh_logins} for {n_native} new tunnels.")
    reproduce = ("Reproduce this scenario alone (as root; `--dbvigil-before` adds an older build's rows): "
                 "`cargo build --release --locked && python3 bench/bench.py --only 8 --merge`.")
    return "\n\n".join([
        title, intro,
        table(["client", "path", "SSH session", "timed", "median (min-max)", "n"], rows),
        sessions, reproduce,
    ])


def _ssh_version():
    out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10)
    return (out.stderr or out.stdout).strip().splitlines()[0]


def _russh_version():
    """russh as Cargo.lock pins it (dbvigil's SSH client)."""
    lock = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Cargo.lock")
    try:
        lines = open(lock).read().splitlines()
    except OSError:
        return "unknown"
    for i, line in enumerate(lines):
        if line == 'name = "russh"' and i + 1 < len(lines):
            return lines[i + 1].split('"')[1]
    return "unknown"
