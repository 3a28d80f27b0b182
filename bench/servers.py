"""Throwaway PostgreSQL and MariaDB servers for the benchmarks, started from the machine's
own binaries on free loopback ports in temporary directories (the same recipe as
tests/common/servers.rs). They can be stopped, started again, frozen (SIGSTOP) and thawed.

Two login shapes, on the same server:
- "plain": TCP without TLS, `trust` (PostgreSQL superuser `postgres`) or a password-less
  `root` (MariaDB). `url()`.
- "tls": given `certs` (a `Certs`, one CA and server certificate made per run with the
  `openssl` CLI, SAN 127.0.0.1 and localhost), the server also listens with TLS, and a
  non-superuser logs in with a password over TLS only: PostgreSQL `hostssl ... scram-sha-256`
  (role TLS_USER, its own database), MariaDB `REQUIRE SSL` (user TLS_USER). `tls_url()`.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

READY_TIMEOUT = 30.0

# The password login of the "tls" shape (both engines).
TLS_USER = "bench_tls"
TLS_PASSWORD = "bench-tls-pw"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(name):
    """preexec_fn that drops to a system user when running as root."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(name)

    def drop():
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return drop


def _tempdir(prefix, owner):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def _descendants(pid):
    """pid and every process below it, read from /proc."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                text = f.read()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(stat.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Certs:
    """A CA and a server certificate signed by it (ECDSA P-256), made with the openssl CLI
    in `directory`: ca.crt, server.crt, server.key. SAN: IP 127.0.0.1 and DNS localhost."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.ca = os.path.join(directory, "ca.crt")
        self.cert = os.path.join(directory, "server.crt")
        self.key = os.path.join(directory, "server.key")
        ca_key = os.path.join(directory, "ca.key")
        csr = os.path.join(directory, "server.csr")
        ext = os.path.join(directory, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for argv in (
            ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca, "-days", "2",
             "-subj", "/CN=dbvigil bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", *ec, "-keyout", self.key, "-out", csr, "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", self.cert, "-days", "2", "-extfile", ext],
        ):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def install(self, directory, owner):
        """Copies of the CA, certificate and key in `directory`, readable by the server's
        user only (PostgreSQL refuses a key others can read): (ca, cert, key)."""
        out = []
        for src in (self.ca, self.cert, self.key):
            dst = os.path.join(directory, "tls-" + os.path.basename(src))
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if os.geteuid() == 0:
                pw = pwd.getpwnam(owner)
                os.chown(dst, pw.pw_uid, pw.pw_gid)
            out.append(dst)
        return tuple(out)


class Server:
    """One throwaway server. `engine` is "postgres" or "mariadb"."""

    engine = None
    host = "127.0.0.1"

    def __init__(self, certs=None):
        self.port = free_port()
        self.proc = None
        self.frozen = False
        self.certs = certs
        self.tls = None  # (ca, cert, key) in the server's directory when TLS is on

    def shape_url(self, shape, db=None):
        """url() for "plain", tls_url() for "tls"."""
        if shape == "tls":
            return self.tls_url(db) if db else self.tls_url()
        return self.url(db) if db else self.url()

    # -- lifecycle -------------------------------------------------------------------
    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=_as_user(self.user), cwd="/", start_new_session=True,
        )
        _wait(self.accepting, READY_TIMEOUT, f"{self.engine} on port {self.port}")

    def stop(self):
        """Fast shutdown; returns once the process has exited."""
        if self.proc is None:
            return
        if self.frozen:
            self.thaw()
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self):
        """SIGSTOP the server and all its processes: connections are still accepted by the
        kernel, but nothing answers."""
        for p in _descendants(self.proc.pid):
            os.kill(p, signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        for p in _descendants(self.proc.pid):
            os.kill(p, signal.SIGCONT)
        self.frozen = False

    def ping(self):
        try:
            return self.sql("SELECT 1") == "1"
        except Exception:
            return False

    def accepting(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                pass
        except OSError:
            return False
        return self.ping()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres(Server):
    engine = "postgres"
    user = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown

    def __init__(self, certs=None):
        super().__init__(certs)
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise RuntimeError("PostgreSQL binaries not found in /usr/lib/postgresql/*/bin: apt-get install postgresql")
        self.bindir = bins[-1]
        self.dir = _tempdir("bench-pg-", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        subprocess.run(
            [os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_as_user("postgres"), cwd="/",
        )
        if certs is not None:
            self.tls = certs.install(self.dir, "postgres")
            # Sockets and the superuser over plain TCP stay `trust` (the "plain" shape and
            # the harness itself); the TLS user may log in over TLS with SCRAM only.
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
                f.write("local all all trust\n"
                        f"hostssl all {TLS_USER} 127.0.0.1/32 scram-sha-256\n"
                        f"hostnossl all {TLS_USER} 127.0.0.1/32 reject\n"
                        "host all all 127.0.0.1/32 trust\n")
        self.start()
        if certs is not None:
            self.sql(f"CREATE ROLE {TLS_USER} LOGIN PASSWORD '{TLS_PASSWORD}'")
            self.sql(f"GRANT pg_monitor TO {TLS_USER}")
            self.sql(f"CREATE DATABASE {TLS_USER} OWNER {TLS_USER}")

    def command(self):
        cmd = [
            os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
            "-k", self.sock, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "max_connections=1200", "-c", "shared_buffers=128MB",
        ]
        if self.tls:
            ca, cert, key = self.tls
            cmd += ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}",
                    "-c", f"ssl_ca_file={ca}", "-c", "password_encryption=scram-sha-256"]
        return cmd

    def url(self, db="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def tls_url(self, db=TLS_USER):
        """TLS (`sslmode=require`) and SCRAM as the non-superuser TLS_USER, into its own
        database (PostgreSQL 15 lets only a schema's owner create tables in it)."""
        return f"postgres://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{self.port}/{db}?sslmode=require"

    def libpq_conninfo(self, shape):
        """The same login as shape_url(shape), for libpq."""
        if shape == "tls":
            return (f"host=127.0.0.1 port={self.port} user={TLS_USER} password={TLS_PASSWORD} "
                    f"dbname={TLS_USER} sslmode=require")
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres sslmode=disable"

    def sql(self, statement, db="postgres"):
        out = subprocess.run(
            ["psql", "-h", self.sock, "-p", str(self.port), "-U", "postgres", "-d", db,
             "-v", "ON_ERROR_STOP=1", "-Atq", "-c", statement],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return out.stdout.strip()


class MariaDB(Server):
    engine = "mariadb"
    user = "mysql"
    stop_signal = signal.SIGTERM

    def __init__(self, certs=None):
        super().__init__(certs)
        if not shutil.which("mariadbd") and not os.path.exists("/usr/sbin/mariadbd"):
            raise RuntimeError("mariadbd not found: apt-get install mariadb-server mariadb-client")
        self.dir = _tempdir("bench-maria-", "mysql")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        args = ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.geteuid() == 0:
            args.append("--user=mysql")
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        if certs is not None:
            self.tls = certs.install(self.dir, "mysql")
        self.start()
        self.sql("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
        if certs is not None:
            # mysql_native_password (MariaDB's default plugin), over TLS only.
            for host in ("127.0.0.1", "localhost"):
                self.sql(f"CREATE USER IF NOT EXISTS '{TLS_USER}'@'{host}' IDENTIFIED BY '{TLS_PASSWORD}' REQUIRE SSL; "
                         f"GRANT ALL ON bench.* TO '{TLS_USER}'@'{host}'; "
                         f"GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO '{TLS_USER}'@'{host}'")

    def command(self):
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        cmd = [server, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
               "--bind-address=127.0.0.1", f"--socket={self.sock}",
               f"--pid-file={os.path.join(self.dir, 'mysqld.pid')}", "--skip-name-resolve",
               "--max-connections=1200", "--innodb-flush-log-at-trx-commit=2"]
        if os.geteuid() == 0:
            cmd.append("--user=mysql")
        if self.tls:
            ca, cert, key = self.tls
            cmd += [f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"]
        return cmd

    def url(self, db="mysql"):
        return f"mysql://root@127.0.0.1:{self.port}/{db}?ssl-mode=disabled"

    def tls_url(self, db="bench"):
        """TLS (`ssl-mode=required`) and a password, as TLS_USER (REQUIRE SSL)."""
        return f"mysql://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{self.port}/{db}?ssl-mode=required"

    def sql(self, statement, db="mysql"):
        out = subprocess.run(
            ["mariadb", "--no-defaults", "-uroot", f"--socket={self.sock}", "-N", "-B", db, "-e", statement],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return out.stdout.strip()
