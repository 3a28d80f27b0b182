"""Scenario 6: `dbvigil migrate` against dbmate and sqlx-cli, 1,000 small scripts.

install(smoke) makes the other tools available (separately from measuring); run(ctx) measures.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import measure
import servers

TOOLS_ROOT = os.environ.get("BENCH_TOOLS", "/opt/bench-tools")
SQLX_CLI_VERSION = "0.9.0"  # latest on crates.io when written; 0.8.6 is the fallback
SQLX_CLI_FALLBACK = "0.8.6"
DBMATE_NPM = "dbmate@2.36.0"  # pinned, like sqlx-cli, so that reruns measure the same tools
INFO_RUNS = 3  # info runs per repetition (full mode)


# -- tools ----------------------------------------------------------------------------

def _find(name):
    """Path of a tool: our tools root first, then PATH."""
    cand = os.path.join(TOOLS_ROOT, "bin", name)
    if os.access(cand, os.X_OK):
        return cand
    return shutil.which(name)


def _is_script(path):
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def dbmate_path():
    """dbmate's own Go binary. The npm package's `dbmate` command is a Node.js wrapper that
    spawns that binary; timing through it would add Node's start-up (~40 ms) to every
    command, so the binary it would spawn is used instead."""
    found = _find("dbmate")
    if found is None or not _is_script(found):
        return found
    pkg = os.path.dirname(os.path.dirname(os.path.realpath(found)))  # .../node_modules/dbmate
    for native in glob.glob(os.path.join(pkg, "node_modules", "@dbmate", "linux-*", "bin", "dbmate")) + \
            glob.glob(os.path.join(os.path.dirname(pkg), "@dbmate", "linux-*", "bin", "dbmate")):
        if os.access(native, os.X_OK):
            return native
    return found


def sqlx_path():
    return _find("sqlx")


def _log(msg):
    print(f"[migrations] {msg}", flush=True)


def _install_dbmate():
    os.makedirs(TOOLS_ROOT, exist_ok=True)
    cmd = ["npm", "install", "-g", "--prefix", TOOLS_ROOT, "--no-audit", "--no-fund", DBMATE_NPM]
    _log("installing dbmate: " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _install_sqlx():
    env = {**os.environ, "CARGO_BUILD_JOBS": "1"}
    for version in (SQLX_CLI_VERSION, SQLX_CLI_FALLBACK):
        cmd = ["cargo", "install", "sqlx-cli", "--version", version, "--locked",
               "--no-default-features", "--features", "postgres,mysql,rustls",
               "--root", TOOLS_ROOT]
        _log("installing sqlx-cli (several minutes on 2 cores): " + " ".join(cmd))
        if subprocess.run(cmd, env=env).returncode == 0:
            return
        _log(f"sqlx-cli {version} did not build")
    raise RuntimeError("sqlx-cli could not be installed")


def install(smoke=False):
    """Make dbmate and sqlx-cli available if missing. In smoke mode sqlx-cli is never built
    (too slow): it is used only when already there. Returns {tool: path} of what is available."""
    if dbmate_path() is None:
        try:
            _install_dbmate()
        except (OSError, subprocess.CalledProcessError) as e:
            _log(f"dbmate not installed: {e}")
    if sqlx_path() is None and not smoke:
        try:
            _install_sqlx()
        except (OSError, RuntimeError) as e:
            _log(f"sqlx-cli not installed: {e}")
    out = {}
    for name, path in (("dbmate", dbmate_path()), ("sqlx", sqlx_path())):
        if path:
            out[name] = path
    return out


def _version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


# -- scripts ----------------------------------------------------------------------------

def _body(i):
    return (f"CREATE TABLE t{i} (id int PRIMARY KEY, note varchar(40));\n"
            f"INSERT INTO t{i} VALUES (1, 'x;y');\n")


def write_scripts(root, n):
    """The same n scripts in each tool's naming: {tool: directory}."""
    dirs = {t: os.path.join(root, t) for t in ("dbvigil", "dbmate", "sqlx")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    for i in range(1, n + 1):
        body = _body(i)
        with open(os.path.join(dirs["dbvigil"], f"V{i}__table_{i}.sql"), "w") as f:
            f.write(body)
        # dbmate orders files by name and sqlx by the number: zero-padded suits both.
        with open(os.path.join(dirs["dbmate"], f"{i:06d}_table_{i}.sql"), "w") as f:
            f.write(f"-- migrate:up\n{body}\n-- migrate:down\nDROP TABLE t{i};\n")
        with open(os.path.join(dirs["sqlx"], f"{i:06d}_table_{i}.sql"), "w") as f:
            f.write(body)
    return dirs


# -- commands ---------------------------------------------------------------------------

class Tool:
    def __init__(self, name, path):
        self.name, self.path = name, path

    def url(self, server, db):
        if server.engine == "postgres":
            return server.url(db)
        if self.name == "dbmate":  # go-sql-driver: no TLS unless asked (tls=...)
            return f"mysql://root@127.0.0.1:{server.port}/{db}"
        return server.url(db)

    def apply(self, server, db, d):
        u = self.url(server, db)
        if self.name == "dbvigil":
            return [self.path, "migrate", "--database-url", u, "--dir", d, "run"]
        if self.name == "dbmate":
            # `migrate`, not `up`: the database already exists, as for the others. No schema
            # dump afterwards (pg_dump / mysqldump), which the others do not do either.
            return [self.path, "--url", u, "--migrations-dir", d, "--no-dump-schema", "migrate"]
        return [self.path, "migrate", "run", "--source", d, "--database-url", u]

    def info(self, server, db, d):
        u = self.url(server, db)
        if self.name == "dbvigil":
            return [self.path, "migrate", "--database-url", u, "--dir", d, "info"]
        if self.name == "dbmate":
            return [self.path, "--url", u, "--migrations-dir", d, "--no-dump-schema", "status"]
        return [self.path, "migrate", "info", "--source", d, "--database-url", u]

    def history(self):
        return {"dbvigil": "dbvigil_schema_history", "dbmate": "schema_migrations",
                "sqlx": "_sqlx_migrations"}[self.name]


GNU_TIME = "/usr/bin/time"


def timed(argv, log_path, timeout=900, stdin=None):
    """Runs argv to completion: wall seconds, user and system CPU seconds, peak RSS KiB,
    context switches (voluntary + involuntary), exit code. `stdin`: a file to read standard
    input from (default: none).

    CPU and peak RSS come from GNU time (apt-get install time) when it is there: a child
    forked straight from this Python process would report Python's own RSS (~14 MiB) as its
    peak, since the high-water mark survives exec. Without it, wait4's figures are used."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("DATABASE_URL", None)
    rusage_file = log_path + ".rusage"
    use_time = os.access(GNU_TIME, os.X_OK)
    cmd = [GNU_TIME, "-o", rusage_file, "-f", "%U %S %M %w %c", "--"] + argv if use_time else argv
    with open(log_path, "ab") as log, open(stdin or os.devnull, "rb") as inp:
        log.write(("$ " + " ".join(argv) + (f" < {stdin}" if stdin else "") + "\n").encode())
        log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=inp, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=os.path.dirname(log_path), start_new_session=True)
        # On a hang, kill the tool too, not only GNU time: they share a new process group.
        timer = threading.Timer(timeout, lambda: _killpg(proc.pid))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    rc = os.waitstatus_to_exitcode(status)
    user, sys_, rss, csw = ru.ru_utime, ru.ru_stime, ru.ru_maxrss, ru.ru_nvcsw + ru.ru_nivcsw
    if use_time:
        try:
            with open(rusage_file) as f:
                last = f.read().strip().splitlines()[-1].split()
            user, sys_, rss, csw = float(last[0]), float(last[1]), int(last[2]), int(last[3]) + int(last[4])
        except (OSError, IndexError, ValueError):
            pass
    return {"wall": wall, "cpu": user + sys_, "user": user, "sys": sys_, "rss": rss, "csw": csw, "rc": rc}


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# -- server-side readings ---------------------------------------------------------------

def server_cpu(server):
    """CPU seconds the server has used: every live process of it, plus the PostgreSQL
    backends that have exited (reaped by the postmaster, so in its cutime/cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    root = server.proc.pid
    for pid in servers._descendants(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(rest[11]) + int(rest[12])
        if pid == root:
            total += int(rest[13]) + int(rest[14])
    return total / tick


def settle(server, timeout=10.0):
    """Lets the server finish what earlier commands left it doing (PostgreSQL: a checkpoint
    writes out the dirty buffers now rather than during the next timed command), then waits
    until it is idle: under 5% of a core for 0.2 s, up to `timeout`."""
    if server.engine == "postgres":
        server.sql("CHECKPOINT")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = server_cpu(server)
        time.sleep(0.2)
        if server_cpu(server) - before < 0.01:
            return


def _pg_commits(server, db):
    """Transactions committed in db (pg_stat_database.xact_commit). A backend reports its
    counts when it exits, just after the client leaves: read until the value settles."""
    last, deadline = None, time.monotonic() + 3
    while True:
        v = int(server.sql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'") or 0)
        if v == last or time.monotonic() > deadline:
            return v
        last = v
        time.sleep(0.15)


def _maria_status(server):
    rows = server.sql("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Handler_commit')")
    out = {}
    for line in rows.splitlines():
        k, v = line.split("\t")
        out[k] = int(v)
    return out


def round_trips(tool, server, db, d, log_path):
    """Messages the tool writes to the database socket during one apply, from strace (None
    without strace). Each is a flush after which the client waits for an answer, so this is
    close to the round trips it makes. A separate, untimed run: strace slows the process."""
    if not shutil.which("strace"):
        return None
    trace = log_path + ".strace"
    argv = ["strace", "-f", "-qq", "-o", trace, "-e", "trace=connect,sendto,sendmsg,write,writev"] + tool.apply(server, db, d)
    with open(log_path, "ab") as log:
        if subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=900).returncode != 0:
            return None
    sockets, n = set(), 0
    with open(trace, errors="replace") as f:
        for line in f:
            m = re.search(r"\b(connect|sendto|sendmsg|writev|write)\((\d+),", line)
            if not m:
                continue
            call, fd = m.group(1), int(m.group(2))
            if call == "connect":
                if f"htons({server.port})" in line:
                    sockets.add(fd)
                else:
                    sockets.discard(fd)
            elif fd in sockets:
                n += 1
    os.unlink(trace)
    return n


def _count(server, db, sql):
    return int(server.sql(sql, db) or 0)


# -- the scenario -----------------------------------------------------------------------

def _tools(ctx):
    tools = [Tool("dbvigil", ctx.dbvigil)]
    for name, path in (("dbmate", dbmate_path()), ("sqlx", sqlx_path())):
        if path:
            tools.append(Tool(name, path))
    return tools


def _record_versions(ctx, tools):
    for t in tools:
        if t.name == "dbvigil":
            ctx.versions.setdefault("dbvigil", _version([t.path, "--version"]))
        elif t.name == "dbmate":
            ctx.versions["dbmate"] = _version([t.path, "--version"]).replace("dbmate version ", "")
        else:
            ctx.versions["sqlx-cli"] = _version([t.path, "--version"]).replace("sqlx-cli ", "")


def measure_engine(ctx, server, tools, n, reps, root):
    """{tool: {"apply": [...], "info": [...], "work": {...}}} for one server."""
    dirs = write_scripts(os.path.join(root, "scripts"), n)
    log = os.path.join(root, "commands.log")
    results = {t.name: {"apply": [], "info": [], "work": {}} for t in tools}
    maria_calibration = None
    for rep in range(reps):
        # Rotate the order, so that no tool always goes first on a cold server.
        order = tools[rep % len(tools):] + tools[:rep % len(tools)]
        for tool in order:
            db = f"bench_mig_{tool.name}_{rep}"
            server.sql(f"DROP DATABASE IF EXISTS {db}")
            server.sql(f"CREATE DATABASE {db}")
            if server.engine == "mariadb":
                if maria_calibration is None:
                    a, b = _maria_status(server), _maria_status(server)
                    maria_calibration = {k: b[k] - a[k] for k in a}
                before = _maria_status(server)
            settle(server)
            cpu0 = server_cpu(server)
            r = timed(tool.apply(server, db, dirs[tool.name]), log)
            r["server_cpu"] = server_cpu(server) - cpu0
            if r["rc"] != 0:
                raise RuntimeError(f"{tool.name} apply on {server.engine} exited {r['rc']}:\n{_tail(log)}")
            work = results[tool.name]["work"]
            if rep == 0:
                if server.engine == "postgres":
                    work["commits"] = _pg_commits(server, db)
                else:
                    after = _maria_status(server)
                    work["statements"] = after["Questions"] - before["Questions"] - maria_calibration["Questions"]
                    work["commits"] = after["Handler_commit"] - before["Handler_commit"] - maria_calibration["Handler_commit"]
            # The work really happened: n tables, n rows of history.
            if server.engine == "postgres":
                tables = _count(server, db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^t[0-9]+$'")
            else:
                tables = _count(server, db, f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{db}' AND table_name REGEXP '^t[0-9]+$'")
            history = _count(server, db, f"SELECT count(*) FROM {tool.history()}")
            if tables != n or history != n:
                raise RuntimeError(f"{tool.name} on {server.engine}: {tables} tables and {history} history rows, expected {n}")
            results[tool.name]["apply"].append(r)
            settle(server)
            # info is short: three runs per repetition.
            for _ in range(INFO_RUNS if reps > 1 else 1):
                i = timed(tool.info(server, db, dirs[tool.name]), log)
                if i["rc"] != 0:
                    raise RuntimeError(f"{tool.name} info on {server.engine} exited {i['rc']}:\n{_tail(log)}")
                results[tool.name]["info"].append(i)
            server.sql(f"DROP DATABASE {db}")
    for tool in tools:
        db = f"bench_mig_{tool.name}_trace"
        server.sql(f"DROP DATABASE IF EXISTS {db}")
        server.sql(f"CREATE DATABASE {db}")
        results[tool.name]["work"]["writes"] = round_trips(tool, server, db, dirs[tool.name], log)
        server.sql(f"DROP DATABASE {db}")
    return results


def _fmt_s(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _stat(samples, key):
    return measure.summary([s[key] for s in samples])


def _range(samples, key, fmt=_fmt_s):
    st = _stat(samples, key)
    if st["n"] == 1:
        return fmt(st["median"])
    return f"{fmt(st['median'])} ({fmt(st['min'])}-{fmt(st['max'])})"


def _mib(kib):
    return f"{kib / 1024:.1f} MiB"


def _label(tool):
    return "sqlx-cli" if tool == "sqlx" else tool


ENGINE_LABEL = {"postgres": "PostgreSQL", "mariadb": "MariaDB"}
HEADLINE_KEY = {"postgres": "pg", "mariadb": "maria"}

GUARANTEES = [
    ("dbvigil", "yes: advisory lock (PostgreSQL), `GET_LOCK` (MariaDB); waits up to `--lock-timeout`, names the holder",
     "SHA-256 per script, edited scripts refused",
     "PostgreSQL: script + history row in one transaction. MariaDB: a \"started\" row committed before the script and a \"finished\" update after, so a run that died is refused until `repair`",
     "each statement sent alone, so a failure names its line"),
    ("dbmate", "no lock: two runs at once can both apply a script",
     "none: an edited applied script goes unnoticed",
     "PostgreSQL: script + version row in one transaction. MariaDB: the version row is written after the script; a run that dies half-way leaves no trace, and the script runs again",
     "whole section sent as one multi-statement query"),
    ("sqlx-cli", "yes: `pg_advisory_lock` / `GET_LOCK(.., -1)`, waits forever",
     "SHA-384 per script, edited scripts refused",
     "PostgreSQL: script + row in one transaction, then a second commit for `execution_time`. MariaDB: row with `success = FALSE` first, then the script, then `success = TRUE`, then `execution_time`",
     "whole script sent as one multi-statement query"),
]


def run(ctx):
    n = 20 if ctx.smoke else 1000
    reps = 1 if ctx.smoke else 3
    tools = _tools(ctx)
    _record_versions(ctx, tools)
    missing = [t for t in ("dbmate", "sqlx") if t not in {x.name for x in tools}]
    engines = [s for s in (ctx.pg, ctx.maria) if s is not None]
    all_results = {}
    for server in engines:
        all_results[server.engine] = measure_engine(
            ctx, server, tools, n, reps, ctx.scratch(f"migrations-{server.engine}"))

    apply_rows, info_rows, work_rows = [], [], []
    for server in engines:
        res = all_results[server.engine]
        label = ENGINE_LABEL[server.engine]
        med = {t: {k: _stat(res[t][k], "wall")["median"] for k in ("apply", "info")} for t in res}
        others = [t for t in res if t != "dbvigil"]
        for kind, rows in (("apply", apply_rows), ("info", info_rows)):
            fastest = min((med[t][kind] for t in others), default=None)
            key = f"{'migrate' if kind == 'apply' else 'info'}_ratio_{HEADLINE_KEY[server.engine]}"
            ctx.headlines[key] = round(med["dbvigil"][kind] / fastest, 3) if fastest else None
            for t in res:
                samples = res[t][kind]
                row = [label, _label(t), _range(samples, "wall"),
                       f"{_stat(samples, 'user')['median']:.2f} + {_stat(samples, 'sys')['median']:.2f} s"]
                if kind == "apply":
                    row.append(_fmt_s(_stat(samples, "server_cpu")["median"]))
                row.append(_mib(max(s["rss"] for s in samples)))
                row.append("" if t == "dbvigil" else measure.ratio(med["dbvigil"][kind], med[t][kind]))
                rows.append(row)
        for t in res:
            w = res[t]["work"]
            per = lambda k: f"{w[k] / n:.1f}" if w.get(k) is not None else "n/a"
            work_rows.append([label, _label(t), per("commits"), per("statements"), per("writes")])

    names = {t.name for t in tools}
    others = " and ".join(_label(t) for t in sorted(names - {"dbvigil"}))
    out = [f"### 6. Migrations: {n:,} small scripts with dbvigil" + (f", {others}" if others else ""), ""]
    out.append(
        f"Each tool applied the same {n:,} scripts (each creates a table and inserts a row whose text holds a `;`), "
        f"in its own file naming, to a new empty database of the same throwaway PostgreSQL and MariaDB servers "
        f"(loopback, no TLS), then ran its `info`/`status` on the {n:,} applied versions. " +
        ("One repetition (smoke mode)." if reps == 1 else
         f"{reps} repetitions with a fresh database each, tools in rotating order, `info` {INFO_RUNS} times per "
         f"repetition: median (min-max)."))
    if missing:
        out += ["", "Not installed, so not measured: " + ", ".join(_label(m) for m in missing) +
                " (`cd bench && python3 -c 'import migrations; migrations.install(False)'`)."]
    out += ["", f"Apply {n:,} pending scripts (the whole command: start, read the scripts, connect, apply, exit). "
            "Client CPU is the tool's user + system time; server CPU is the database server's during the command.", ""]
    out.append(measure.table(["engine", "tool", "wall", "client CPU", "server CPU", "peak RSS", "dbvigil ÷ tool"], apply_rows))
    out += ["", f"`info` / `status` on {n:,} applied versions:", ""]
    out.append(measure.table(["engine", "tool", "wall", "client CPU", "peak RSS", "dbvigil ÷ tool"], info_rows))
    out += ["", "Work per script during one apply. Commits: PostgreSQL `pg_stat_database.xact_commit`, MariaDB "
            "`Handler_commit` (DDL commits on its own and is not counted). Statements: MariaDB `Questions`. "
            "Writes: the tool's writes to the database socket (strace, an untimed extra run); the client waits "
            "for an answer after each, so they are its round trips.", ""]
    out.append(measure.table(["engine", "tool", "commits", "statements", "writes (round trips)"], work_rows))
    out += ["", "What each tool guarantees in exchange:", ""]
    out.append(measure.table(["tool", "one run at a time", "edited scripts", "crash or failure mid-script", "statements"],
                             [g for g in GUARANTEES if g[0] in {_label(t) for t in names}]))
    out += ["", explain(all_results, n, engines)]
    return "\n".join(out) + "\n"


def explain(all_results, n, engines):
    """The reading of the figures, from the figures."""
    lines = ["Reading the figures:"]
    for server in engines:
        res = all_results[server.engine]
        label = ENGINE_LABEL[server.engine]
        dv = res["dbvigil"]
        wall = _stat(dv["apply"], "wall")["median"]
        cpu = _stat(dv["apply"], "cpu")["median"]
        scpu = _stat(dv["apply"], "server_cpu")["median"]
        w = dv["work"]
        per_script = (f"{wall / n * 1000:.2f} ms of wall clock per script, of which dbvigil's own CPU is "
                      f"{cpu / n * 1000:.2f} ms and the server's {scpu / n * 1000:.2f} ms; the rest is time "
                      f"neither was on a core: round trips, the server's I/O waits (MariaDB syncs "
                      f"the files of each new table) and, on a busy machine, waiting for a core")
        verdicts = []
        for kind, what in (("apply", "apply"), ("info", "`info`")):
            others = {t: _stat(res[t][kind], "wall") for t in res if t != "dbvigil"}
            if not others:
                continue
            fast_t = min(others, key=lambda t: others[t]["median"])
            fast = others[fast_t]
            mine = _stat(dv[kind], "wall")
            r = mine["median"] / fast["median"]
            if r <= 1.0:
                verdicts.append(f"{what} {r:.2f}x the fastest other tool ({_label(fast_t)}): within the bar")
            elif mine["n"] < 2:
                verdicts.append(f"{what} {r:.2f}x {_label(fast_t)} in a single run, too few to judge")
            elif mine["min"] <= fast["max"]:
                verdicts.append(f"{what} {r:.2f}x {_label(fast_t)}, with overlapping min-max ranges: "
                                f"within this run's spread, not a measured difference")
            else:
                verdicts.append(f"{what} {r:.2f}x {_label(fast_t)}: slower, beyond the spread")
        lines.append(f"- **{label}**: " + "; ".join(verdicts) + f". Apply: {per_script}.")
        if server.engine == "postgres":
            lines.append(
                "  dbvigil runs each script and its history row in one transaction (one commit per script) and sends "
                "each statement on its own, so that a failure names its line: BEGIN, the statements, the history "
                "INSERT, COMMIT. sqlx-cli sends a script in one message but commits twice, the second time to "
                "record `execution_time`; dbmate also commits once, without a lock or checksums.")
        else:
            lines.append(
                "  MariaDB commits DDL as it goes, so dbvigil commits a \"started\" history row before each script and "
                "a \"finished\" update after it: a run that dies mid-script leaves an entry that blocks later runs "
                "until `repair`. That is one commit per script more than dbmate, which records a script only after "
                "it ran (a run that dies there leaves no trace, and the script runs again); sqlx-cli does the same "
                "bookkeeping as dbvigil plus a separate `execution_time` update. On these servers "
                "(`innodb_flush_log_at_trx_commit=2`) a commit writes the redo log without an fsync, so the extra "
                "row costs a round trip and a log write; with the packaged default (1) it costs an fsync per script. "
                "It is the price of detecting an interrupted run, not waste.")
    lines.append(
        "- **`info`**: dbvigil reads and checksums every script (so that `info` shows edited ones), reads the whole "
        "history and asks the server who holds the migration lock; sqlx-cli also reads and checksums the scripts, "
        "dbmate reads only their names. Beyond that work, dbvigil's `info` is mostly reading the files, the three "
        "queries of a fresh server session, and starting the process.")
    lines.append(
        "- Apply times on a shared 2-core machine swing with other load (see the min-max ranges); the commits, "
        "statements and round trips per script above do not, and are the stable comparison.")
    return "\n".join(lines)
