"""How to start each exporter the benchmarks compare: the Debian-packaged peers
(postgres_exporter, mysqld_exporter, sql_exporter, blackbox_exporter) and dbvigil itself,
each on a free loopback port with its configuration in a scratch directory.

Every `start_*` function returns `(Proc, port, metrics_path)` once the exporter answers
HTTP, and raises `NotInstalled` when its binary is missing, so that a scenario can write
"not installed" in that tool's row instead of crashing.

Peer facts learnt from the Debian 12 packages (and checked by running them):
- postgres_exporter 0.11.1 reads `DATA_SOURCE_NAME`; it queries the database at scrape time,
  keeps one connection open, and ignores Prometheus' scrape-timeout header: against a
  frozen server a scrape hangs until the client gives up.
- mysqld_exporter 0.14.0 reads `--config.my-cnf`, which must hold a password (it refuses a
  `[client]` section without one), so a monitoring user with a password is created. It
  queries at scrape time on a new connection, and bounds that by
  `X-Prometheus-Scrape-Timeout-Seconds` minus `--timeout-offset` (0.25 s): without the
  header a scrape of a frozen server hangs.
- sql_exporter 0.4.5 is justwatchcom/sql_exporter (Debian takes it from credativ's
  mirror): YAML `jobs:` with `interval`, `connections` (URLs; MySQL as
  `mysql://user:pw@tcp(host:port)/db`) and `queries`. Jobs run on their own interval in the
  background and a scrape serves the last results. A job waits for all its connections, so
  each database gets its own job here.
- blackbox_exporter 0.23.0: a `tcp_connect` module; `/probe?module=tcp_connect&target=...`
  connects at scrape time. The kernel accepts TCP connections for a stopped (SIGSTOP)
  server, so a frozen database still shows `probe_success 1`.
"""

import json
import os
import re
import shutil
import subprocess
import time

import measure
from measure import parse_metrics

# tool name -> (Debian package, binary)
PEERS = {
    "postgres_exporter": ("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
    "mysqld_exporter": ("prometheus-mysqld-exporter", "prometheus-mysqld-exporter"),
    "sql_exporter": ("prometheus-sql-exporter", "prometheus-sql-exporter"),
    "blackbox_exporter": ("prometheus-blackbox-exporter", "prometheus-blackbox-exporter"),
}

# The monitoring user created on MariaDB for mysqld_exporter and sql_exporter.
MYSQL_USER = "bench_exporter"
MYSQL_PASSWORD = "bench-exporter-pw"

# postgres_exporter 0.11 has no default collector for the postmaster start time; this is the
# `pg_postmaster` query of the package's own example (examples/queries.yaml), which gives
# `pg_postmaster_start_time_seconds`.
PG_POSTMASTER_QUERIES = """\
pg_postmaster:
  query: "SELECT pg_postmaster_start_time as start_time_seconds from pg_postmaster_start_time()"
  master: true
  metrics:
    - start_time_seconds:
        usage: "GAUGE"
        description: "Time at which postmaster started"
"""

READY_TIMEOUT = 30.0


class NotInstalled(Exception):
    """The tool's binary is not on this machine."""


# -- which tools exist, and their versions -----------------------------------------------

def binary(tool):
    """Absolute path of a peer's binary, or None."""
    return shutil.which(PEERS[tool][1])


def installed():
    """tool name -> absolute path of its binary, or None when it is not installed."""
    return {tool: binary(tool) for tool in PEERS}


def _require(tool):
    path = binary(tool)
    if path is None:
        raise NotInstalled(f"{tool}: {PEERS[tool][1]} not found (apt-get install {PEERS[tool][0]})")
    return path


def _dpkg_version(package):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def version(tool):
    """`0.11.1 (Debian 0.11.1-3+b5)`; the Debian package version alone when the binary does
    not report one (Debian's sql_exporter prints an empty version)."""
    package, _ = PEERS[tool]
    path = binary(tool)
    if path is None:
        return "not installed"
    deb = _dpkg_version(package)
    flag = "-version" if tool == "sql_exporter" else "--version"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        text = ""
    m = re.search(r"version (\d[^\s,]*)", text)
    if m and deb:
        return f"{m.group(1)} (Debian {deb})"
    if m:
        return m.group(1)
    return f"Debian {deb}" if deb else "unknown"


def dbvigil_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def record_version(ctx, tool):
    """Put a tool's version into ctx.versions (once)."""
    if tool in ctx.versions:
        return
    ctx.versions[tool] = dbvigil_version(ctx.dbvigil) if tool == "dbvigil" else version(tool)


# -- scraping and reading the exposition format ------------------------------------------

def scrape(port, path, timeout):
    """One GET as Prometheus would send it (new connection, scrape-timeout header):
    (status or None, body or error text, seconds). A client timeout is (None, "timeout
    after N s", seconds), never an exception."""
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}", "Accept": "text/plain"}
    start = time.perf_counter()
    try:
        return measure.get(port, path, timeout=timeout, headers=headers)
    except OSError as e:
        elapsed = time.perf_counter() - start
        if "timed out" in str(e) or isinstance(e, TimeoutError):
            return None, f"no answer within {timeout:g} s", elapsed
        return None, f"{type(e).__name__}: {e}", elapsed


def cold_scrape_latency(port, path, n, timeout=35.0):
    """n sequential scrapes, each on a new connection with the scrape-timeout header:
    the seconds each took. Raises RuntimeError when one does not answer 200."""
    out = []
    for _ in range(n):
        status, body, seconds = scrape(port, path, timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} on :{port}: {status} {body[:200]}")
        out.append(seconds)
    return out


def samples(body, name, **labels):
    """The values of every sample of `name` whose labels include `labels`."""
    return [v for n, ls, v in parse_metrics(body)
            if n == name and all(ls.get(k) == str(x) for k, x in labels.items())]


def value(body, name, **labels):
    """The one matching sample's value, or None when absent."""
    vs = samples(body, name, **labels)
    return vs[0] if vs else None


def fmt_value(v):
    if v is None:
        return "absent"
    if v != v:
        return "NaN"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}"


# -- peers ---------------------------------------------------------------------------------

def _wait_ready(proc, port, path="/"):
    try:
        measure.wait_http(port, path, READY_TIMEOUT, proc)
    except Exception:
        proc.stop()
        raise


def start_postgres_exporter(ctx, server, workdir, extend_queries=None, shape="plain"):
    """postgres_exporter against `server` (a servers.Postgres), default collectors.
    `extend_queries`: YAML text for `--extend.query-path` (e.g. PG_POSTMASTER_QUERIES).
    `shape` "tls": `sslmode=require` and SCRAM as the server's TLS user (pg_monitor)."""
    path = _require("postgres_exporter")
    record_version(ctx, "postgres_exporter")
    port = measure.free_port()
    argv = [path, f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"]
    if extend_queries:
        qfile = os.path.join(workdir, "queries.yaml")
        with open(qfile, "w") as f:
            f.write(extend_queries)
        argv.append(f"--extend.query-path={qfile}")
    proc = measure.Proc("postgres_exporter", argv, workdir,
                        env={"DATA_SOURCE_NAME": server.tls_url() if shape == "tls" else server.url("postgres")})
    _wait_ready(proc, port)
    return proc, port, "/metrics"


def mysql_monitor_user(server):
    """Create (idempotently) the password-protected monitoring user that mysqld_exporter
    0.14 needs, with the grants its default collectors use: (user, password)."""
    server.sql(f"CREATE USER IF NOT EXISTS '{MYSQL_USER}'@'127.0.0.1' IDENTIFIED BY '{MYSQL_PASSWORD}'")
    server.sql(f"GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO '{MYSQL_USER}'@'127.0.0.1'")
    try:  # MariaDB 10.5+: SHOW SLAVE STATUS needs SLAVE MONITOR (MySQL has no such grant)
        server.sql(f"GRANT SLAVE MONITOR ON *.* TO '{MYSQL_USER}'@'127.0.0.1'")
    except subprocess.CalledProcessError:
        pass
    return MYSQL_USER, MYSQL_PASSWORD


def start_mysqld_exporter(ctx, server, workdir, shape="plain"):
    """mysqld_exporter against `server` (a servers.MariaDB), default collectors, credentials
    in `workdir/my.cnf`. `shape` "tls": the server's TLS user (`REQUIRE SSL`), with
    `ssl-ca` in `[client]`, which makes mysqld_exporter 0.14 connect with TLS and verify the
    server's certificate against that CA."""
    path = _require("mysqld_exporter")
    record_version(ctx, "mysqld_exporter")
    if shape == "tls":
        import servers

        user, password = servers.TLS_USER, servers.TLS_PASSWORD
        extra = f"ssl-ca={server.certs.ca}\n"
    else:
        user, password = mysql_monitor_user(server)
        extra = ""
    cnf = os.path.join(workdir, "my.cnf")
    with open(cnf, "w") as f:
        f.write(f"[client]\nuser={user}\npassword={password}\nhost={server.host}\nport={server.port}\n{extra}")
    os.chmod(cnf, 0o600)
    port = measure.free_port()
    proc = measure.Proc("mysqld_exporter",
                        [path, f"--web.listen-address=127.0.0.1:{port}", f"--config.my-cnf={cnf}",
                         "--log.level=info"], workdir)
    _wait_ready(proc, port)
    return proc, port, "/metrics"


def start_sql_exporter(ctx, pg, maria, workdir, interval="1s"):
    """sql_exporter with one `SELECT 1` job per database (either may be None), each run
    every `interval` in the background. Metrics: `sql_up{sql_job="postgres"|"mariadb"}` and
    `sql_exporter_last_scrape_failed{sql_job=...}`."""
    path = _require("sql_exporter")
    record_version(ctx, "sql_exporter")
    jobs = []
    if pg is not None:
        jobs.append(("postgres", pg.url("postgres")))
    if maria is not None:
        user, password = mysql_monitor_user(maria)
        jobs.append(("mariadb", f"mysql://{user}:{password}@tcp({maria.host}:{maria.port})/mysql"))
    lines = ["jobs:"]
    for name, url in jobs:
        lines += [
            f"- name: {name}",
            f"  interval: '{interval}'",
            "  connections:",
            f"  - {json.dumps(url)}",
            "  queries:",
            "  - name: up",
            "    help: 1 when SELECT 1 answered",
            "    values: [up]",
            "    query: SELECT 1.0 AS up",
        ]
    cfg = os.path.join(workdir, "sql_exporter.yml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    port = measure.free_port()
    proc = measure.Proc("sql_exporter",
                        [path, "-config.file", cfg, "-web.listen-address", f"127.0.0.1:{port}"],
                        workdir, env={"LOGLEVEL": "info"})
    _wait_ready(proc, port)
    return proc, port, "/metrics"


def blackbox_probe_path(server, module="tcp_connect"):
    return f"/probe?module={module}&target={server.host}:{server.port}"


def start_blackbox_exporter(ctx, workdir, server=None, timeout="5s"):
    """blackbox_exporter with a `tcp_connect` module. The path returned probes `server`
    when given (else it is the bare `/probe?module=tcp_connect`; add `&target=HOST:PORT`, or
    use blackbox_probe_path(server))."""
    path = _require("blackbox_exporter")
    record_version(ctx, "blackbox_exporter")
    cfg = os.path.join(workdir, "blackbox.yml")
    with open(cfg, "w") as f:
        f.write(f"modules:\n  tcp_connect:\n    prober: tcp\n    timeout: {timeout}\n")
    port = measure.free_port()
    proc = measure.Proc("blackbox_exporter",
                        [path, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
                         "--log.level=info"], workdir)
    _wait_ready(proc, port)
    probe = blackbox_probe_path(server) if server is not None else "/probe?module=tcp_connect"
    return proc, port, probe


# -- dbvigil ---------------------------------------------------------------------------------

def dbvigil_target(name, server, **options):
    """A dbvigil target (a dict) for a servers.Postgres or servers.MariaDB; `options` are
    further target keys (interval, timeout, failure_threshold, connection, checks, ...).
    On MariaDB the heartbeat row goes into a `bench` database created here."""
    if server.engine == "postgres":
        target = {"name": name, "kind": "postgres", "url": server.url("postgres")}
    else:
        server.sql("CREATE DATABASE IF NOT EXISTS bench")
        target = {"name": name, "kind": "mariadb", "url": server.url("bench")}
    target.update(options)
    return target


def start_dbvigil(ctx, targets, workdir, interval="1s", timeout=None, extra_args=()):
    """dbvigil with `targets` (a list of target dicts, e.g. from dbvigil_target, or of YAML
    flow-mapping strings); `interval` and `timeout` go to `defaults:`. The configuration is
    `workdir/dbvigil.yml` and the data directory `workdir/dbvigil-data`."""
    if not ctx.dbvigil or not os.path.exists(ctx.dbvigil):
        raise NotInstalled(f"dbvigil binary not found at {ctx.dbvigil}")
    record_version(ctx, "dbvigil")
    defaults = {"interval": interval}
    if timeout is not None:
        defaults["timeout"] = timeout
    lines = ["defaults:"] + [f"  {k}: {v}" for k, v in defaults.items()] + ["targets:"]
    for t in targets:
        # JSON is YAML: one flow mapping per target keeps quoting exact.
        lines.append("  - " + (t if isinstance(t, str) else json.dumps(t)))
    cfg = os.path.join(workdir, "dbvigil.yml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    data = os.path.join(workdir, "dbvigil-data")
    os.makedirs(data, exist_ok=True)
    port = measure.free_port()
    proc = measure.Proc("dbvigil",
                        [ctx.dbvigil, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}",
                         "--data.dir", data, *extra_args], workdir)
    _wait_ready(proc, port, "/-/ready")
    return proc, port, "/metrics"


def dbvigil_targets_api(port, timeout=5.0):
    """`/api/v1/targets` as {name: target object}."""
    status, body, _ = measure.get(port, "/api/v1/targets", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"/api/v1/targets on :{port} answered {status}")
    return {t["name"]: t for t in json.loads(body)["targets"]}


def wait_until(cond, timeout, what, step=0.02):
    """Poll cond() until it returns something truthy; that value, or RuntimeError."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling; report the last one
            last_error = e
        time.sleep(step)
    extra = f" (last error: {last_error})" if last_error else ""
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}{extra}")


def dbvigil_up(port, names, want=1.0, timeout=30.0):
    """Wait until dbvigil_up is `want` for every target in `names`; the last body."""
    def ok():
        status, body, _ = measure.get(port, "/metrics", timeout=5.0)
        if status == 200 and all(value(body, "dbvigil_up", target=n) == want for n in names):
            return body
        return None
    return wait_until(ok, timeout, f"dbvigil_up == {fmt_value(want)} for {', '.join(names)}")
