"""Throwaway PostgreSQL and MariaDB servers for the benchmarks, started from the machine's
own binaries on free loopback ports in temporary directories (the same recipe as
tests/common/servers.rs). They can be stopped, started again, frozen (SIGSTOP) and thawed.
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


class Server:
    """One throwaway server. `engine` is "postgres" or "mariadb"."""

    engine = None
    host = "127.0.0.1"

    def __init__(self):
        self.port = free_port()
        self.proc = None
        self.frozen = False

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

    def __init__(self):
        super().__init__()
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
        self.start()

    def command(self):
        return [
            os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
            "-k", self.sock, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "max_connections=1200", "-c", "shared_buffers=128MB",
        ]

    def url(self, db="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

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

    def __init__(self):
        super().__init__()
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
        self.start()
        self.sql("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")

    def command(self):
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        cmd = [server, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
               "--bind-address=127.0.0.1", f"--socket={self.sock}",
               f"--pid-file={os.path.join(self.dir, 'mysqld.pid')}", "--skip-name-resolve",
               "--max-connections=1200", "--innodb-flush-log-at-trx-commit=2"]
        if os.geteuid() == 0:
            cmd.append("--user=mysql")
        return cmd

    def url(self, db="mysql"):
        return f"mysql://root@127.0.0.1:{self.port}/{db}?ssl-mode=disabled"

    def sql(self, statement, db="mysql"):
        out = subprocess.run(
            ["mariadb", "--no-defaults", "-uroot", f"--socket={self.sock}", "-N", "-B", db, "-e", statement],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return out.stdout.strip()
