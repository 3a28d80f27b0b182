#!/usr/bin/env python3
"""Load and soak, long form (issue 9), against the release binary:

1. restarts: a throwaway PostgreSQL probed every 100 ms (connect, read, write) that is also
   dbvigil's maintenance state store, stopped and started 100 times, with windows started,
   extended and ended between the restarts;
2. reloads: 100 configuration reloads (one target's interval changed, a target added or
   removed, 101 others unchanged) while every target is probed and /metrics is scraped
   without pause;
3. clients: 200 connections for 30 s on /metrics, then on /api/v1/targets, three rounds
   in a row (does memory keep growing flood after flood?), against the exporter of step 2.

It prints the figures docs/reliability.md quotes and exits 1 when a claim fails (an
episode too many or too few, a lost series, a task left running, a failed request, an
outage of a target probed every second during the floods; those of the 100 ms targets are
reported, not held). Python's standard library only; needs PostgreSQL's server binaries, psql
and wrk (Debian: postgresql, wrk). The short forms are tests/soak.rs.

    cargo build --release && python3 bench/soak.py
    python3 bench/soak.py --restarts 10 --reloads 10 --seconds 5   # a quick look
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dbvigil  # noqa: E402
import measure  # noqa: E402
import servers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "soak-token-0123456789abcdef"


class Ctx:
    def __init__(self, binary):
        self.dbvigil = binary


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler:
    """Reads a process's descriptors and resident memory every 50 ms; keeps the peaks."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_fds = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_fds = max(self.peak_fds, open_fds(self.pid))
                self.peak_rss = max(self.peak_rss, measure.rss_kib(self.pid))
            except OSError:
                return
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self.thread.join()


def settled(pid, seconds=1.0):
    """(fds, RSS KiB): the fewest over `seconds`, so that a connection a probe or a request
    holds for a moment is not counted as kept."""
    fds, rss = 1 << 30, 1 << 60
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fds = min(fds, open_fds(pid))
        rss = min(rss, measure.rss_kib(pid))
        time.sleep(0.05)
    return fds, rss


def request(port, method, path, body=None, token=None):
    """(status, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def value(metrics, name, **labels):
    for l, v in metrics.get(name, []):
        if all(l.get(k) == want for k, want in labels.items()):
            return v
    return None


def wait_metric(d, name, want, timeout=30.0, **labels):
    """Polls /metrics until `name{labels}` is `want`; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if value(d.metrics(), name, **labels) == want:
            return time.monotonic() - start
        time.sleep(0.01)
    raise RuntimeError(f"{name}{labels} not {want} within {timeout:.0f} s:\n{d.proc.log_tail()}")


def fmt_kib(kib):
    return f"{kib / 1024:.1f} MiB"


# -- 1. restarts -------------------------------------------------------------------------

def restarts(ctx, pg, workdir, n, warm_up=3):
    pg.sql("CREATE DATABASE dbvigil_state")
    state_url = f"postgres://postgres@127.0.0.1:{pg.port}/dbvigil_state?sslmode=disable"
    extra = f"state: {{url: '{state_url}', refresh_interval: 200ms}}\n"
    d = dbvigil.Dbvigil(ctx, workdir, [dbvigil.server_target("db", pg, interval="100ms")],
                        extra_env={"DBVIGIL_MAINTENANCE_TOKEN": TOKEN}, extra_yaml=extra)
    failures = []
    warm_up = max(0, min(warm_up, n - 1))
    try:
        d.wait_up(["db"])
        sampler = None
        baseline = None
        windows = []  # (id, i)
        detect_down, detect_up, mismatched = [], [], []
        refused_while_down = None
        began = time.monotonic()
        for i in range(n):
            if i == warm_up:
                baseline = settled(d.pid)
                sampler = Sampler(d.pid)
            status, w = request(d.port, "POST", "/api/v1/maintenance",
                                {"scope": "db", "reason": f"restart {i}", "duration": "2h", "by": f"soak-{i}"}, TOKEN)
            if status != 201:
                failures.append(f"window before restart {i}: {status} {w}")
            else:
                windows.append((w["id"], i))
            pg.stop()
            detect_down.append(wait_metric(d, "dbvigil_up", 0.0, target="db"))
            if i == 1:
                status, _ = request(d.port, "POST", "/api/v1/maintenance",
                                    {"scope": "db", "reason": "while the store is down", "duration": "1h"}, TOKEN)
                refused_while_down = status
            pg.start()
            detect_up.append(wait_metric(d, "dbvigil_up", 1.0, target="db"))
            outages = value(d.metrics(), "dbvigil_outages_total", target="db")
            if outages != i + 1:
                mismatched.append((i, outages))
            if windows and windows[-1][1] == i and i % 3 != 2:
                wid = windows[-1][0]
                action, body = (("end", {"reason": f"done {i}", "by": f"soak-end-{i}"}) if i % 3 == 0
                                else ("extend", {"duration": "10m", "by": f"soak-extend-{i}"}))
                status, w = request(d.port, "POST", f"/api/v1/maintenance/{wid}/{action}", body, TOKEN)
                if status != 200:
                    failures.append(f"{action} window {wid} after restart {i}: {status} {w}")
        took = time.monotonic() - began
        wait_metric(d, "dbvigil_maintenance_store_up", 1.0)
        after = settled(d.pid)
        sampler.stop()

        m = d.metrics()
        episodes = value(m, "dbvigil_outages_total", target="db")
        finished = value(m, "dbvigil_outage_duration_seconds_count", target="db")
        identity = value(m, "dbvigil_identity_changes_total", target="db")
        _, targets = request(d.port, "GET", "/api/v1/targets")
        kept = targets["targets"][0]["episodes"]
        unended = [e for e in kept if not e["ended_at"]]
        _, listed = request(d.port, "GET", "/api/v1/maintenance")
        listed = {w["id"]: w for w in listed["windows"]}
        intact = 0
        for wid, i in windows:
            want = [("started", f"soak-{i}")]
            if i % 3 == 0:
                want.append(("ended", f"soak-end-{i}"))
            elif i % 3 == 1:
                want.append(("extended", f"soak-extend-{i}"))
            _, one = request(d.port, "GET", f"/api/v1/maintenance/{wid}")
            trails = [[(e["action"], e["by"]) for e in w["events"]] for w in (listed.get(wid), one) if w]
            if len(trails) == 2 and all(t == want for t in trails):
                intact += 1
            else:
                failures.append(f"window {wid} (restart {i}): listed {listed.get(wid)}, got {one}")
        stored_refused = any(w["reason"] == "while the store is down" for w in listed.values())

        if episodes != n or finished != n or mismatched:
            failures.append(f"{n} restarts but {episodes} episodes ({finished} finished); off after {mismatched}")
        if unended:
            failures.append(f"episodes that did not end: {unended}")
        if identity:
            failures.append(f"{identity} identity changes")
        if refused_while_down != 503 or stored_refused:
            failures.append(f"a change while the store was down answered {refused_while_down}, stored: {stored_refused}")
        return {
            "restarts": n, "seconds": took, "episodes": episodes, "finished_episodes": finished,
            "identity_changes": identity, "mismatched": mismatched,
            "detect_down_median_s": measure.summary(detect_down)["median"],
            "detect_down_max_s": max(detect_down),
            "detect_up_median_s": measure.summary(detect_up)["median"],
            "detect_up_max_s": max(detect_up),
            "fds": (baseline[0], sampler.peak_fds, after[0]),
            "rss_kib": (baseline[1], sampler.peak_rss, after[1]),
            "windows_created": len(windows), "windows_listed": sum(1 for wid, _ in windows if wid in listed),
            "windows_intact": intact, "store_windows_after": len(listed),
            "refused_while_down": refused_while_down,
        }, failures
    finally:
        d.stop()


# -- 2. reloads --------------------------------------------------------------------------

STILL = 100


def reload_targets(pg, k, files):
    """Targets after k reloads: odd reloads change flip's interval, even ones add or remove
    extra; the 100 files, steady and pg never change."""
    flip = "300ms" if (k + 1) // 2 % 2 == 1 else "100ms"
    lines = files + [
        "{name: steady, kind: sqlite, path: files/steady.db, create: true, interval: 100ms}",
        dbvigil.server_target("pg", pg, interval="200ms"),
        f"{{name: flip, kind: sqlite, path: files/flip.db, create: true, interval: {flip}}}",
    ]
    if k % 4 in (2, 3):
        lines.append("{name: extra, kind: sqlite, path: files/extra.db, create: true, interval: 100ms}")
    return lines


KEPT_FAMILIES = ("dbvigil_up", "dbvigil_probes_total", "dbvigil_probe_interval_seconds")
_TASKS = re.compile(r"^dbvigil_probe_tasks (\S+)$", re.M)


def probe_tasks(body):
    m = _TASKS.search(body)
    return float(m.group(1)) if m else None


def sample(body, name, target):
    m = re.search(rf'^{name}{{target="{target}"}} (\S+)$', body, re.M)
    return float(m.group(1)) if m else None


def wait_settled(d, want_tasks, changed, interval, scraper, scraped_before, timeout=30.0):
    """Until the task a reload stopped has ended (one task per target again), the task it
    started has probed, and the scraper has seen the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = measure.get(d.port, "/metrics")[1]
        ok = probe_tasks(body) == want_tasks and scraper.scrapes > scraped_before
        if changed:
            ok = ok and sample(body, "dbvigil_probe_interval_seconds", changed) == interval
            ok = ok and (sample(body, "dbvigil_probes_total", changed) or 0) >= 1
        if ok:
            return
        time.sleep(0.005)
    raise RuntimeError(f"a reload did not settle within {timeout:.0f} s (tasks {want_tasks}, {changed})")


def sessions(pg):
    return int(pg.sql("SELECT sessions FROM pg_stat_database WHERE datname = 'postgres'"))


class Scraper:
    """Scrapes /metrics without pause and checks that every kept target is in every
    scrape."""

    def __init__(self, port, kept):
        self.port, self.kept = port, kept
        self.scrapes, self.failed, self.lost, self.max_tasks = 0, 0, [], 0
        self.latencies = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body, secs = measure.get(self.port, "/metrics", timeout=30)
            except OSError:
                self.failed += 1
                continue
            self.scrapes += 1
            self.latencies.append(secs)
            if status != 200:
                self.failed += 1
                continue
            # Substrings, not a full parse: Python keeps up with the exporter this way.
            missing = [t for t in self.kept if any(f'{f}{{target="{t}"}} ' not in body for f in KEPT_FAMILIES)]
            if missing:
                self.lost.append((self.scrapes, sorted(missing)))
            self.max_tasks = max(self.max_tasks, probe_tasks(body) or 0)

    def stop(self):
        self._stop.set()
        self.thread.join()


def reloads(ctx, pg, workdir, n):
    files = dbvigil.sqlite_targets(STILL)
    d = dbvigil.Dbvigil(ctx, workdir, reload_targets(pg, 0, files))
    kept = {f"file-{i:04d}" for i in range(STILL)} | {"steady", "pg", "flip"}
    failures = []
    d.wait_all_probed(len(kept))
    d.wait_up(["steady", "pg", "flip"])
    expected = len(reload_targets(pg, 0, files))
    wait_metric(d, "dbvigil_probe_tasks", float(expected))
    baseline = settled(d.pid)
    sampler = Sampler(d.pid)
    scraper = Scraper(d.port, kept)
    m = d.metrics()
    t0 = time.monotonic()
    steady0, pg0, s0 = value(m, "dbvigil_probes_total", target="steady"), value(m, "dbvigil_probes_total", target="pg"), sessions(pg)
    settle, answered = [], []
    tasks_before = value(m, "dbvigil_probe_tasks")
    for k in range(1, n + 1):
        targets = reload_targets(pg, k, files)
        with open(d.config, "w") as f:
            f.write(dbvigil.config_text(targets))
        began, scraped_before = time.monotonic(), scraper.scrapes
        status, body = request(d.port, "POST", "/-/reload")
        answered.append(time.monotonic() - began)
        if status != 200:
            failures.append(f"reload {k}: {status} {body}")
        if k % 2 == 1:
            changed, interval = "flip", 0.3 if (k + 1) // 2 % 2 == 1 else 0.1
        else:
            changed, interval = ("extra", 0.1) if k % 4 == 2 else (None, None)
        wait_settled(d, float(len(targets)), changed, interval, scraper, scraped_before)
        settle.append(time.monotonic() - began)
    reloads_took = time.monotonic() - t0
    time.sleep(5)
    m = d.metrics()
    elapsed = time.monotonic() - t0
    steady1, pg1, s1 = value(m, "dbvigil_probes_total", target="steady"), value(m, "dbvigil_probes_total", target="pg"), sessions(pg)
    scraper.stop()
    tasks_after = value(m, "dbvigil_probe_tasks")
    after = settled(d.pid)
    sampler.stop()
    rates = {
        "steady_probes": (steady1 - steady0, elapsed / 0.1),
        "pg_probes": (pg1 - pg0, elapsed / 0.2),
        "pg_sessions": (s1 - s0, elapsed / 0.2),
    }
    expected = len(reload_targets(pg, n, files))
    if scraper.lost:
        failures.append(f"{len(scraper.lost)} scrapes lost series, first {scraper.lost[:3]}")
    if scraper.failed:
        failures.append(f"{scraper.failed} scrapes failed")
    if tasks_after != expected:
        failures.append(f"{tasks_after} tasks for {expected} targets after the reloads")
    for what, (got, want) in rates.items():
        if not 0.8 * want <= got <= 1.2 * want + 2:
            failures.append(f"{what}: {got} in {elapsed:.1f} s, expected about {want:.0f}")
    return d, {
        "reloads": n, "seconds": reloads_took, "targets": expected, "scrapes": scraper.scrapes,
        "scrape": measure.summary(scraper.latencies), "lost": len(scraper.lost), "failed_scrapes": scraper.failed,
        "tasks": (tasks_before, scraper.max_tasks, tasks_after),
        "settle": measure.summary(settle), "answered": measure.summary(answered),
        "rates": rates, "window_s": elapsed,
        "fds": (baseline[0], sampler.peak_fds, after[0]),
        "rss_kib": (baseline[1], sampler.peak_rss, after[1]),
    }, failures


# -- 3. clients --------------------------------------------------------------------------

def clients(d, connections, seconds, rounds=1):
    """`rounds` times: wrk on /metrics, then on the API. Later rounds show whether memory
    keeps growing flood after flood or stays at its high-water mark."""
    failures = []
    names = [l["target"] for l, _ in d.metrics().get("dbvigil_up", [])]
    before = d.metrics()
    baseline = settled(d.pid)
    sampler = Sampler(d.pid)
    out, after_rounds = [], []
    for _ in range(rounds):
        out.append({})
        for path in ("/metrics", "/api/v1/targets"):
            w = measure.wrk(f"http://127.0.0.1:{d.port}{path}", connections=connections, seconds=seconds,
                            threads=2, timeout_s=30)
            out[-1][path] = w
            if w["errors"]:
                failures.append(f"{path}: {w['errors']} errors of {w['requests']}")
        after_rounds.append(settled(d.pid))
    after_m = d.metrics()
    sampler.stop()
    time.sleep(2)
    after = settled(d.pid)
    outages = dbvigil.total(after_m, "dbvigil_outages_total") - dbvigil.total(before, "dbvigil_outages_total")
    skipped = dbvigil.total(after_m, "dbvigil_probe_skipped_slots_total") - dbvigil.total(before, "dbvigil_probe_skipped_slots_total")
    # Which targets, and why: the episodes that started during the floods. The claim is
    # held for targets probed every second or slower; 100 ms targets (whose timeout is
    # 100 ms) are reported: on two cores shared with wrk, such deadlines can be missed.
    _, api = request(d.port, "GET", "/api/v1/targets")
    flooded, fast = {}, 0
    for t in api["targets"]:
        fast += t["interval_seconds"] < 1
        new = value(after_m, "dbvigil_outages_total", target=t["name"]) - (
            value(before, "dbvigil_outages_total", target=t["name"]) or 0)
        if new:
            flooded[t["name"]] = {
                "interval_s": t["interval_seconds"],
                "episodes": [(e["reason"], round(e["duration_seconds"], 3)) for e in t["episodes"][:int(new)]],
            }
    held = {n: e for n, e in flooded.items() if e["interval_s"] >= 1}
    slow = {t["name"] for t in api["targets"] if t["interval_seconds"] >= 1}
    down = [n for n in names if n in slow and value(after_m, "dbvigil_up", target=n) != 1.0]
    if held or down:
        failures.append(f"outages during the floods on targets probed every second: {held}; down after: {down}")
    return {
        "connections": connections, "seconds": seconds, "targets": len(names), "wrk": out[0], "rounds": out,
        "after_rounds": after_rounds,
        "outages": outages, "outage_episodes": flooded, "fast_targets": fast, "skipped_slots": skipped,
        "fds": (baseline[0], sampler.peak_fds, after[0]),
        "rss_kib": (baseline[1], sampler.peak_rss, after[1]),
    }, failures


def report(r, conditions):
    a, b, c = r["restarts"], r["reloads"], r["clients"]
    lines = [f"conditions: {conditions}", ""]
    lines.append(f"1. {a['restarts']} restarts of the probed PostgreSQL (also the state store), 100 ms interval, "
                 f"{a['seconds']:.0f} s")
    lines.append(f"   episodes {a['episodes']:.0f} ({a['finished_episodes']:.0f} finished) for {a['restarts']} restarts, "
                 f"identity changes {a['identity_changes']:.0f}")
    lines.append(f"   down seen after stop: median {measure.fmt_ms(a['detect_down_median_s'])}, max "
                 f"{measure.fmt_ms(a['detect_down_max_s'])}; up seen after start: median "
                 f"{measure.fmt_ms(a['detect_up_median_s'])}, max {measure.fmt_ms(a['detect_up_max_s'])}")
    lines.append(f"   fds baseline/peak/after {a['fds'][0]}/{a['fds'][1]}/{a['fds'][2]}; RSS "
                 + "/".join(fmt_kib(x) for x in a["rss_kib"]))
    lines.append(f"   store windows: created {a['windows_created']}, listed after {a['windows_listed']}, "
                 f"audit trail intact {a['windows_intact']}; a change while the store was down: {a['refused_while_down']}")
    lines.append(f"2. {b['reloads']} reloads, {b['targets']} targets, {b['seconds']:.0f} s")
    lines.append(f"   scrapes {b['scrapes']} (median {measure.fmt_ms(b['scrape']['median'])}, p99 "
                 f"{measure.fmt_ms(b['scrape']['p99'])}), failed {b['failed_scrapes']}, with a series lost {b['lost']}")
    lines.append(f"   tasks before/max/after {b['tasks'][0]:.0f}/{b['tasks'][1]:.0f}/{b['tasks'][2]:.0f}; POST /-/reload "
                 f"answered in median {measure.fmt_ms(b['answered']['median'])}, max {measure.fmt_ms(b['answered']['max'])}; "
                 f"settled (old task ended, new one probed, a scrape seen) within median {measure.fmt_ms(b['settle']['median'])}, "
                 f"max {measure.fmt_ms(b['settle']['max'])}")
    lines.append("   in {:.0f} s: ".format(b["window_s"]) + ", ".join(
        f"{k} {got:.0f} (expected {want:.0f})" for k, (got, want) in b["rates"].items()))
    lines.append(f"   fds baseline/peak/after {b['fds'][0]}/{b['fds'][1]}/{b['fds'][2]}; RSS "
                 + "/".join(fmt_kib(x) for x in b["rss_kib"]))
    lines.append(f"3. {c['connections']} connections x {c['seconds']} s each, {c['targets']} targets"
                 + (f", {len(c['rounds'])} rounds (round 1 below)" if len(c["rounds"]) > 1 else ""))
    for path, w in c["wrk"].items():
        lines.append(f"   {path}: {w['requests']} requests, {w['errors']} errors, p50 {measure.fmt_ms(w['median'])}, "
                     f"p99 {measure.fmt_ms(w['p99'])}, {w['requests'] / c['seconds']:.0f}/s")
    by_interval = {}
    for name, e in c["outage_episodes"].items():
        by_interval.setdefault(e["interval_s"], []).append((name, len(e["episodes"]), sorted({r for r, _ in e["episodes"]})))
    lines.append(f"   outages during the floods {c['outages']:.0f} "
                 f"({c['targets'] - c['fast_targets']} targets at 1 s, {c['fast_targets']} at 100-300 ms): "
                 + ("; ".join(f"interval {iv} s: " + ", ".join(f"{n} {k} ({'/'.join(r)})" for n, k, r in v)
                              for iv, v in sorted(by_interval.items())) or "none"))
    for i, (rnd, (fds, rss)) in enumerate(zip(c["rounds"][1:], c["after_rounds"][1:]), start=2):
        lines.append(f"   round {i}: " + ", ".join(f"{p} {w['requests']} requests, {w['errors']} errors"
                                                 for p, w in rnd.items()) + f"; after it {fds} fds, RSS {fmt_kib(rss)}")
    lines.append(f"   skipped slots {c['skipped_slots']:.0f}; fds "
                 f"baseline/peak/after {c['fds'][0]}/{c['fds'][1]}/{c['fds'][2]}; RSS "
                 + "/".join(fmt_kib(x) for x in c["rss_kib"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbvigil", default=os.path.join(ROOT, "target/release/dbvigil"))
    ap.add_argument("--restarts", type=int, default=100)
    ap.add_argument("--reloads", type=int, default=100)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=30, help="of each wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="of the two wrk runs, one after the other")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    if not os.access(args.dbvigil, os.X_OK):
        sys.exit(f"{args.dbvigil} not found: cargo build --release")
    for tool in ("wrk", "psql"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install {'wrk' if tool == 'wrk' else 'postgresql-client'}")
    ctx = Ctx(os.path.abspath(args.dbvigil))
    work = tempfile.mkdtemp(prefix="dbvigil-soak-")
    os.chmod(work, 0o755)
    load = os.getloadavg()
    conditions = (f"{os.cpu_count()} cores, load average {load[0]:.2f} at the start, "
                  f"{os.path.basename(args.dbvigil)} ({args.dbvigil})")
    pg = servers.Postgres()
    results, failures = {}, []
    try:
        results["restarts"], f = restarts(ctx, pg, os.path.join(work, "restarts"), args.restarts)
        failures += f
        print("restarts: done", file=sys.stderr)
        d, results["reloads"], f = reloads(ctx, pg, os.path.join(work, "reloads"), args.reloads)
        failures += f
        print("reloads: done", file=sys.stderr)
        try:
            results["clients"], f = clients(d, args.connections, args.seconds, args.rounds)
            failures += f
        finally:
            d.stop()
    finally:
        pg.close()
    end = os.getloadavg()
    conditions += f"; load average at the end {end[0]:.2f} (1 min), {end[2]:.2f} (15 min)"
    print(report(results, conditions))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("\nFAILED:\n" + "\n".join(f"- {x}" for x in failures))
        sys.exit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
