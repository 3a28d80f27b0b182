"""Scenarios 1, 4 and 5: scrape latency by number of targets, the cost of continuous
probing (CPU per probe cycle, RSS, a profile), and scheduling at scale under a scrape
flood."""

import os
import re
import shutil
import subprocess
import time
import types

import measure
import servers
from dbvigil import (Dbvigil, diff_buckets, histogram_sum, prepare, quantile_bound, server_target, sqlite_targets,
                     tcp_targets, total, discovered_tcp)
from measure import fmt_ms, fmt_range, ratio, table


def _sizes(ctx):
    """(targets, kind): one PostgreSQL target; PostgreSQL and MariaDB half each, in both
    series budgets; then a thousand tcp targets (a thousand server logins a second would
    measure the servers, not dbvigil), the same thousand from a discovery file, and a
    thousand SQLite files (each probe opens, reads and writes its file)."""
    if ctx.smoke:
        return ((1, "server"), (10, "server"), (10, "server-detailed"), (50, "tcp"), (50, "discovered"),
                (50, "sqlite"))
    return ((1, "server"), (1, "server-tls"), (100, "server"), (100, "server-detailed"), (100, "server-reuse"),
            (1000, "tcp"), (1000, "discovered"), (1000, "sqlite"))


def _targets(ctx, n, kind, listener, workdir):
    """The target lines, what they are, and more configuration."""
    if kind == "tcp":
        return tcp_targets(n, listener.port), "tcp, to a port that accepts", ""
    if kind == "discovered":
        return [], "tcp, from a discovery file", discovered_tcp(workdir, n, listener.port)
    if kind == "sqlite":
        return sqlite_targets(n), "SQLite files", ""
    if kind == "server-tls":
        return [server_target("pg-tls-0", ctx.pg, shape="tls")], "PostgreSQL, TLS + SCRAM", ""
    if n == 1:
        return [server_target("pg-0", ctx.pg)], "PostgreSQL", ""
    half = n // 2
    # `connection: reuse` takes the servers' logins (a PostgreSQL fork each) off the two
    # cores the scrape shares: what is left of the tail is dbvigil's own.
    connection = "reuse" if kind == "server-reuse" else None
    targets = ([server_target(f"pg-{i}", ctx.pg, connection=connection) for i in range(half)]
               + [server_target(f"maria-{i}", ctx.maria, connection=connection) for i in range(n - half)])
    if kind == "server-detailed":
        return targets, "PostgreSQL and MariaDB, `phase_buckets: detailed`", "defaults: {phase_buckets: detailed}\n"
    if kind == "server-reuse":
        return targets, "PostgreSQL and MariaDB, `connection: reuse`", ""
    return targets, "PostgreSQL and MariaDB, half each", ""


def _budget_row(n, what, metrics, body_bytes):
    """Series and bytes per target: the series that carry a target label, and the body a
    scrape transfers, each divided by the targets."""
    series = sum(1 for samples in metrics.values() for labels, _ in samples if "target" in labels)
    return [f"{n:,} ({what})", f"{series / n:,.0f}", f"{body_bytes / n / 1024:,.2f} KiB"]


def _scrape_stats(ctx, url, seconds=None):
    return measure.wrk(url, connections=1, seconds=seconds or (2 if ctx.smoke else 15))


def run(ctx):
    """Returns the markdown of scenarios 1, 4 and 5, keyed by their number."""
    prepare(ctx.maria)
    rows1, rss_rows, rows5, budget_rows = [], [], [], []
    base = None
    listener = measure.Listener(every_address=True)
    for n, kind in _sizes(ctx):
        workdir = ctx.scratch(f"scale-{n}-{kind}")
        targets, what, extra_yaml = _targets(ctx, n, kind, listener, workdir)
        d = Dbvigil(ctx, workdir, targets, extra_yaml=extra_yaml)
        try:
            d.wait_all_probed(n, timeout=120)
            time.sleep(2 if ctx.smoke else 5)
            rss_idle = measure.rss_kib(d.pid)
            s = _scrape_stats(ctx, d.url)
            size = s["bytes"] / max(s["requests"], 1)
            rss_after = measure.rss_kib(d.pid)
            if n == 1 and kind == "server":
                base = s
            rows1.append(["dbvigil", f"{n:,} ({what})", fmt_range(s), fmt_ms(s["p99"]),
                          f"{size / 1024:,.0f} KiB", s["requests"], s["errors"], ratio(s["median"], base["median"])])
            rss_rows.append(["dbvigil", f"{n:,} ({what})", f"{rss_idle / 1024:.1f} MiB", f"{rss_after / 1024:.1f} MiB"])
            if n > 1 and kind != "server-reuse":
                budget_rows.append(_budget_row(n, what, d.metrics(), size))
            ctx.headlines[f"scrape_p99_ms_{n}_{kind}"] = s["p99"] * 1000
            ctx.headlines[f"scrape_median_ms_{n}_{kind}"] = s["median"] * 1000
            ctx.headlines[f"rss_mib_{n}_{kind}"] = rss_idle / 1024
            if kind in ("tcp", "sqlite") and 5 in ctx.only:
                rows5.append(_scheduling(ctx, d, n, what, kind))
        finally:
            d.stop()
    listener.close()
    peers = _peer_scrapes(ctx, base)
    rows1 += peers["rows"]
    rss_rows += peers["rss"]

    s1 = "\n\n".join([
        "### 1. Scrape latency of `/metrics`",
        f"Each exporter probes its targets every second; wrk scrapes `/metrics` back to back on one "
        f"connection for {2 if ctx.smoke else 15} s with the `Accept` header Prometheus sends. The peers "
        "query their database at scrape time; dbvigil renders the last probes from memory. Ratios are "
        "to dbvigil's median with one target.",
        table(["exporter", "targets", "median (min-max)", "p99", "body", "scrapes", "errors", "ratio"], rows1),
        "What each target costs, from the same runs: the series that carry its `target` label, and the "
        "scrape body divided by the targets. `phase_buckets: coarse` is the default; `detailed` "
        "keeps 14 bounds per phase histogram instead of 6 (docs/metrics.md).",
        table(["targets", "series per target", "bytes per target"], budget_rows),
    ])
    s4 = "\n\n".join([
        "### 4. Resource cost of continuous probing",
        "Resident memory after the first probes of every target (idle) and after the scrapes of scenario 1:",
        table(["exporter", "targets", "RSS idle", "RSS after scraping"], rss_rows),
        _cpu_per_cycle(ctx) if 4 in ctx.only else "",
    ])
    s5 = "\n\n".join([
        "### 5. Scheduling at scale under a scrape flood",
        "While wrk scrapes `/metrics` with many connections, every target keeps its one-second schedule. "
        "Scheduling lag is how late each probe started against its slot, from dbvigil's own "
        "`dbvigil_probe_scheduling_lag_seconds` histogram over the flood (a quantile is given as the "
        "bucket bound that holds it). Failures and outages are what the probes recorded during the "
        "flood: a flood must not make a database look down.",
        table(["probing", "scrape load", "scrapes", "failed scrapes", "throughput", "scrape median", "scrape p99",
               "probes", "lag p50", "lag p99", "skipped slots", "failed probes", "outages"], rows5),
    ])
    return {1: s1, 4: s4, 5: s5}


def _scheduling(ctx, d, n, what, kind):
    """Scenario 5's row for one instance: a concurrent scrape flood while probing."""
    seconds = 3 if ctx.smoke else 30
    conns = 10 if ctx.smoke else 50
    before = d.metrics()
    w = measure.wrk(d.url, connections=conns, threads=2, seconds=seconds)
    after = d.metrics()
    lag = diff_buckets(histogram_sum(after, "dbvigil_probe_scheduling_lag_seconds"),
                       histogram_sum(before, "dbvigil_probe_scheduling_lag_seconds"))
    p50, count = quantile_bound(lag, 0.50)
    p99, _ = quantile_bound(lag, 0.99)
    skipped = total(after, "dbvigil_probe_skipped_slots_total") - total(before, "dbvigil_probe_skipped_slots_total")
    outages = total(after, "dbvigil_outages_total") - total(before, "dbvigil_outages_total")
    failures = total(after, "dbvigil_probe_failures_total") - total(before, "dbvigil_probe_failures_total")
    ctx.headlines[f"lag_p99_bound_s_{kind}"] = p99
    ctx.headlines["flood_errors"] = ctx.headlines.get("flood_errors", 0) + w["errors"]
    ctx.headlines[f"flood_false_outages_{kind}"] = outages
    return [f"{n:,} ({what}), 1 s", f"{conns} connections, {seconds} s", w["requests"], w["errors"],
            f"{w['requests'] / seconds:,.0f}/s", fmt_ms(w["median"]), fmt_ms(w["p99"]),
            f"{int(count):,}", f"<= {fmt_ms(p50)}", f"<= {fmt_ms(p99)}", int(skipped), int(failures), int(outages)]


def _peer_scrapes(ctx, base):
    """postgres_exporter and mysqld_exporter, each scraped back to back against its one
    database, as dbvigil was."""
    rows, rss = [], []
    try:
        import peers
    except ImportError:
        return {"rows": rows, "rss": rss}
    have = peers.installed()
    for tool, server, start in (
        ("postgres_exporter", ctx.pg, peers.start_postgres_exporter),
        ("mysqld_exporter", ctx.maria, peers.start_mysqld_exporter),
    ):
        if not have.get(tool):
            rows.append([tool, "1", "not installed", "", "", "", "", ""])
            continue
        for shape in _shapes(server):
            what = f"1 ({shape_label(server, shape)})"
            proc, port, path = start(ctx, server, ctx.scratch(f"scrape-{tool}-{shape}"), shape=shape)
            try:
                s = measure.wrk(f"http://127.0.0.1:{port}{path}", connections=1, seconds=2 if ctx.smoke else 15)
                rows.append([tool, what, fmt_range(s), fmt_ms(s["p99"]),
                             f"{s['bytes'] / max(s['requests'], 1) / 1024:,.0f} KiB",
                             s["requests"], s["errors"], ratio(s["median"], base["median"])])
                r = measure.rss_kib(proc.pid)
                rss.append([tool, what, "", f"{r / 1024:.1f} MiB"])
                suffix = "" if shape == "plain" else "_tls"
                ctx.headlines[f"scrape_ratio_{tool}{suffix}"] = s["median"] / base["median"]
            finally:
                proc.stop()
    return {"rows": rows, "rss": rss}


def _shapes(server):
    """The login shapes the server offers: plain, and tls when it was started with certs."""
    return ("plain", "tls") if getattr(server, "tls", None) else ("plain",)


def shape_label(server, shape):
    if server.engine == "postgres":
        return "TLS + SCRAM" if shape == "tls" else "plain, trust"
    return "TLS + password" if shape == "tls" else "plain, no password"


def _connect_phase(m0, m1):
    """Mean, p50 bound and p99 bound of the connect phase between two readings."""
    connect = lambda labels: labels.get("phase") == "connect"  # noqa: E731
    n = (total(m1, "dbvigil_phase_duration_seconds_count", connect)
         - total(m0, "dbvigil_phase_duration_seconds_count", connect))
    secs = (total(m1, "dbvigil_phase_duration_seconds_sum", connect)
            - total(m0, "dbvigil_phase_duration_seconds_sum", connect))
    buckets = diff_buckets(histogram_sum(m1, "dbvigil_phase_duration_seconds", connect),
                           histogram_sum(m0, "dbvigil_phase_duration_seconds", connect))
    p50, _ = quantile_bound(buckets, 0.50)
    p99, _ = quantile_bound(buckets, 0.99)
    return (secs / n if n else None), p50, p99


def _cpu_per_cycle(ctx):
    """CPU dbvigil spends per probe cycle (tcp, connect, read, write, read-only, identity)
    on loopback, per login shape, from /proc over a steady run, with the connect phase
    from dbvigil's own histogram; a profile of the PostgreSQL plain case; and the login
    table (logins.py)."""
    n = 5 if ctx.smoke else 20
    seconds = 4 if ctx.smoke else 30
    rows, profile = [], ""
    for engine, server in (("PostgreSQL", ctx.pg), ("MariaDB", ctx.maria)):
        for shape in _shapes(server):
            # Smoke runs keep the TLS shape to fresh connections (where its login is paid).
            for connection in ("fresh",) if ctx.smoke and shape == "tls" else ("fresh", "reuse"):
                targets = [server_target(f"t{i}", server, interval="1s", connection=connection, shape=shape)
                           for i in range(n)]
                # Detailed buckets: the connect quantiles below are read from them.
                d = Dbvigil(ctx, ctx.scratch(f"cpu-{engine}-{shape}-{connection}"), targets,
                            extra_yaml="defaults: {phase_buckets: detailed}\n")
                try:
                    d.wait_all_probed(n)
                    d.wait_up([f"t{i}" for i in range(n)])
                    m0, c0 = d.metrics(), measure.cpu_seconds(d.pid)
                    perf = None
                    if (engine == "PostgreSQL" and shape == "plain" and connection == "fresh" and not ctx.smoke
                            and shutil.which("perf")):
                        perf = _perf_record(ctx, d.pid, seconds)
                    else:
                        time.sleep(seconds)
                    m1, c1 = d.metrics(), measure.cpu_seconds(d.pid)
                    probes = total(m1, "dbvigil_probes_total") - total(m0, "dbvigil_probes_total")
                    fails = total(m1, "dbvigil_probe_failures_total") - total(m0, "dbvigil_probe_failures_total")
                    per = (c1 - c0) / max(probes, 1)
                    mean, p50, p99 = _connect_phase(m0, m1)
                    rows.append([engine, shape_label(server, shape), connection, n, int(probes), int(fails),
                                 f"{c1 - c0:.2f} s", fmt_ms(per), fmt_ms(mean) if mean is not None else "n/a",
                                 f"<= {fmt_ms(p50)}" if p50 else "n/a", f"<= {fmt_ms(p99)}" if p99 else "n/a"])
                    suffix = "" if shape == "plain" else "_tls"
                    ctx.headlines[f"cpu_per_cycle_ms_{engine}_{connection}{suffix}"] = per * 1000
                    if mean is not None:
                        ctx.headlines[f"connect_mean_ms_{engine}_{connection}{suffix}"] = mean * 1000
                    if perf:
                        profile = perf
                finally:
                    d.stop()
    parts = [
        f"CPU per probe cycle: {n} targets each probed every second for {seconds} s (all checks, loopback), "
        "once per login shape: plain TCP with `trust` (PostgreSQL superuser) or a password-less root (MariaDB), "
        "and TLS (`sslmode=require` / `ssl-mode=required`, TLS 1.3, no certificate verification) with a "
        "password login as a non-superuser (PostgreSQL `hostssl ... scram-sha-256`; MariaDB "
        "`mysql_native_password`, `REQUIRE SSL`), on the same servers. CPU is dbvigil's user and system "
        "CPU over the run divided by the probes it finished; it includes the scrapes the harness made to "
        "count them. The connect phase is from dbvigil's own `dbvigil_phase_duration_seconds{phase=\"connect\"}` "
        "over the same run, with `phase_buckets: detailed`: the mean (histogram sum / count) and the bucket bounds holding the median and "
        "p99. With `connection: reuse` the connect phase is a `SELECT 1` on the kept session, and a login "
        "happens only once per target.",
        table(["engine", "login", "connection", "targets", "probes", "failed", "CPU", "CPU per cycle",
               "connect phase mean", "connect p50", "connect p99"], rows),
    ]
    if profile:
        parts += [profile]
    parts += [_login_table(ctx)]
    return "\n\n".join(parts)


def _login_table(ctx):
    """One login at a time by dbvigil (`/probe`), by a previous dbvigil build when given, and
    by the engine's own client library, on both shapes, interleaved in rounds."""
    import logins

    n = 10 if ctx.smoke else 200
    rounds = 2 if ctx.smoke else 5
    per_round = max(n // rounds, 1)
    warmup = 2
    builds = [("dbvigil", ctx.dbvigil)]
    if getattr(ctx, "dbvigil_before", None):
        builds.append((ctx.before_label, ctx.dbvigil_before))
    servers_ = (("PostgreSQL", ctx.pg), ("MariaDB", ctx.maria))
    targets = []
    for engine, server in servers_:
        for shape in _shapes(server):
            targets.append(server_target(f"{server.engine}-{shape}", server, interval="1h", checks=["connect"],
                                         shape=shape))
    running = []
    rows = []
    try:
        for label, binary in builds:
            running.append((label, Dbvigil(types.SimpleNamespace(dbvigil=binary), ctx.scratch(f"logins-{label.split()[0]}-{len(running)}"), targets)))
        # No waiting for scheduled probes: at a 1 h interval the first one may be an hour
        # away (dbvigil spreads first probes over the interval); `/probe` works at once.
        for engine, server in servers_:
            for shape in _shapes(server):
                name = f"{server.engine}-{shape}"
                tls = shape == "tls"
                if server.engine == "postgres":
                    native = logins.libpq_version()
                    conninfo = server.libpq_conninfo(shape)
                    run_native = lambda k: logins.libpq_logins(conninfo, k, tls)  # noqa: E731
                else:
                    native = logins.connector_c_version()
                    user, pw = (servers.TLS_USER, servers.TLS_PASSWORD) if tls else ("root", None)
                    run_native = lambda k: logins.mariadb_logins(server, user, pw, "bench", k, tls)  # noqa: E731
                samples = {label: ([], 0.0) for label, _ in running}
                samples[native] = ([], 0.0)
                for label, d in running:
                    logins.dbvigil_logins(d, name, warmup)
                run_native(warmup)
                for _ in range(rounds):
                    for label, d in running:
                        got, cpu = logins.dbvigil_logins(d, name, per_round)
                        samples[label] = (samples[label][0] + got, samples[label][1] + cpu)
                    got, cpu = run_native(per_round)
                    samples[native] = (samples[native][0] + got, samples[native][1] + cpu)
                base = measure.summary(samples[native][0])
                for label, (got, cpu) in samples.items():
                    st = measure.summary(got)
                    how = ("connect phase of `/probe`" if label.startswith("dbvigil")
                           else ("`PQconnectdb`" if server.engine == "postgres" else "`mysql_real_connect`"))
                    rows.append([engine, shape_label(server, shape), f"{label} ({how})", fmt_range(st),
                                 fmt_ms(st["p99"]), fmt_ms(cpu / len(got)), ratio(st["median"], base["median"])])
                    key = "native" if label == native else label.split()[0] + ("_before" if label != "dbvigil" else "")
                    suffix = "" if shape == "plain" else "_tls"
                    ctx.headlines[f"login_median_ms_{server.engine}_{key}{suffix}"] = st["median"] * 1000
                ctx.versions.setdefault(native.rsplit(" ", 1)[0], native.rsplit(" ", 1)[1])
    finally:
        for _, d in running:
            d.stop()
    return "\n\n".join([
        f"Login cost by shape, one login at a time: {n} logins per client and shape, in {rounds} interleaved "
        "rounds, against the same servers as above. dbvigil: `GET /probe?target=` on a target with "
        "`checks: [connect]`, the figure being that probe's own connect phase (`dbvigil_probe_phase_duration_seconds`: "
        "TCP connect, TLS handshake, authentication; on MariaDB also dbvigil's `SET SESSION max_statement_time`, "
        "one more round trip). libpq and MariaDB Connector/C (the library of the `mariadb` client) are called "
        "through Python ctypes in the harness's process, timing `PQconnectdb` / `mysql_real_connect` alone, with "
        "the same user, password, database and TLS mode (no certificate verification). CPU per login: the "
        "client process's user + system time over the loop divided by the logins; for dbvigil its whole "
        "process per `/probe`, HTTP and rendering included; for the native clients the Python process, loop "
        "included. The ratio is to the native client on the same row group.",
        table(["engine", "login", "client (what is timed)", "login median (min-max)", "p99", "client CPU per login",
               "÷ native"], rows),
    ])


def _perf_record(ctx, pid, seconds):
    """perf's self-time by symbol for the process over `seconds`, as a table."""
    data = os.path.join(ctx.scratch("perf"), "perf.data")
    rec = subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", data, "--", "sleep", str(seconds)],
                         capture_output=True, text=True)
    if rec.returncode != 0 or not os.path.exists(data):
        time.sleep(seconds)
        return f"(perf record failed: {rec.stderr.strip()[:200]})"
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "-g", "none",
                          "--stdio", "--percent-limit", "1.5"], capture_output=True, text=True)
    rows = []
    for line in rep.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line:
            continue
        pct, rest = line.split("%", 1)
        fields = rest.split(None, 1)
        if len(fields) < 2:
            continue
        dso, sym = fields
        # perf pads the symbol column and may append empty IPC columns ("-  -").
        sym = re.sub(r"(\s+-)+\s*$", "", sym).replace("[.] ", "").replace("[k] ", "kernel: ").strip()
        rows.append([f"{float(pct):.1f}%", dso, f"`{sym[:90]}`"])
    return "\n\n".join([
        f"Where that CPU goes (PostgreSQL, fresh connections): `perf record -F 999 -g` over {seconds} s, "
        "self time by symbol, entries of 1.5% or more:",
        table(["self", "object", "symbol"], rows[:25]),
    ])
