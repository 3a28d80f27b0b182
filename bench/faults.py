"""Fault scenarios: a database frozen with SIGSTOP while it is scraped (scenario 2), and a
3-second outage between two 15-second scrapes (scenario 3). Each compares dbvigil with the
peer exporters (see peers.py) and returns a markdown section."""

import os
import socket
import struct
import threading
import time
from datetime import datetime

import measure
import peers
from peers import NotInstalled, fmt_value, value

ENGINE = {"postgres": "PostgreSQL", "mariadb": "MariaDB"}


# -- small helpers ---------------------------------------------------------------------------

class Tools:
    """The processes a scenario started, stopped in reverse order by close()."""

    def __init__(self):
        self.procs = []
        self.missing = {}  # tool -> why (not installed)
        self.failed = {}  # tool -> why (installed, but did not start)

    def start(self, tool, fn, *args, **kwargs):
        """(port, path), or None when the tool is missing or did not start."""
        try:
            proc, port, path = fn(*args, **kwargs)
        except NotInstalled as e:
            self.missing[tool] = str(e)
            return None
        except Exception as e:  # noqa: BLE001 - one broken tool must not sink the scenario
            self.failed[tool] = " ".join(str(e).split())[:300]
            return None
        self.procs.append(proc)
        return port, path

    def notes(self):
        out = []
        if self.missing:
            out += ["", "Not installed: " + "; ".join(self.missing.values()) + "."]
        if self.failed:
            out += ["", "Did not start: " + "; ".join(f"{k}: {v}" for k, v in self.failed.items()) + "."]
        return out

    def close(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                pass
        self.procs = []


def _restore(*servers):
    """Leave every server running and thawed, whatever happened."""
    for s in servers:
        if s is None:
            continue
        try:
            if s.frozen:
                s.thaw()
            if s.proc is None:
                s.start()
        except Exception:  # noqa: BLE001 - try the next one
            pass


def _parallel(jobs):
    """Run {key: callable} in threads; {key: result or the exception it raised}."""
    out = {}

    def run(k, fn):
        try:
            out[k] = fn()
        except Exception as e:  # noqa: BLE001 - reported in the row
            out[k] = e

    threads = [threading.Thread(target=run, args=(k, fn), daemon=True) for k, fn in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _scrapes(port, path, n, timeout):
    """n sequential scrapes: [(status, body, seconds)]."""
    return [peers.scrape(port, path, timeout) for _ in range(n)]


def _spaced(port, path, n, gap=0.01, timeout=10):
    """n scrapes, `gap` seconds apart."""
    out = []
    for _ in range(n):
        out.append(peers.scrape(port, path, timeout))
        time.sleep(gap)
    return out


def _lat(results):
    return measure.summary([s for _, _, s in results])


def _fmt_lat(stats, results=None, timeout=None):
    text = measure.fmt_range(stats) if stats["n"] > 1 else measure.fmt_ms(stats["median"])
    if results is not None and any(st is None for st, _, _ in results):
        failed = sum(st is None for st, _, _ in results)
        text += f"; {failed} of {len(results)} got no answer within {timeout:g} s"
    return text


# -- scenario 2: scrape while a database is frozen --------------------------------------------

def run_frozen(ctx):
    smoke = ctx.smoke
    n_healthy = 10 if smoke else 30
    dv_cycles = 1 if smoke else 3  # freezes per database for dbvigil
    dv_block = 50 if smoke else 100  # scrapes per block, 10 ms apart
    n_peer = 1 if smoke else 2
    peer_timeout = 5.0 if smoke else 35.0
    pg, maria = ctx.pg, ctx.maria
    work = ctx.scratch("frozen")
    tools = Tools()
    rows = []
    try:
        targets = [peers.dbvigil_target("postgres", pg, interval="1s", timeout="1s"),
                   peers.dbvigil_target("mariadb", maria, interval="1s", timeout="1s")]
        dv = tools.start("dbvigil", peers.start_dbvigil, ctx, targets, _dir(work, "dbvigil"))
        pe = tools.start("postgres_exporter", peers.start_postgres_exporter, ctx, pg, _dir(work, "pe"))
        me = tools.start("mysqld_exporter", peers.start_mysqld_exporter, ctx, maria, _dir(work, "me"))
        se = tools.start("sql_exporter", peers.start_sql_exporter, ctx, pg, maria, _dir(work, "se"))
        bb = tools.start("blackbox_exporter", peers.start_blackbox_exporter, ctx, _dir(work, "bb"))

        # Healthy: every tool answers and says the databases are up.
        if dv:
            peers.dbvigil_up(dv[0], ["postgres", "mariadb"], timeout=30)
        se = _sql_ready(tools, se)
        healthy = {}
        endpoints = {
            "dbvigil": dv,
            "postgres_exporter": pe,
            "mysqld_exporter": me,
            "sql_exporter": se,
            "blackbox_postgres": bb and (bb[0], peers.blackbox_probe_path(pg)),
            "blackbox_mariadb": bb and (bb[0], peers.blackbox_probe_path(maria)),
        }
        for key, ep in endpoints.items():
            if ep:
                peers.scrape(ep[0], ep[1], 10)  # warm-up, not counted
                healthy[key] = _lat(_scrapes(ep[0], ep[1], n_healthy, 10))

        # dbvigil: freeze one database at a time and scrape the whole /metrics. Sub-millisecond
        # latencies move with whatever else the machine runs, so healthy and frozen scrapes
        # alternate in blocks (healthy, frozen, healthy, ...), each block spread over about a
        # second, and the blocks of each kind are pooled.
        dv_frozen = {}
        if dv:
            for server, name, other in ((pg, "postgres", "mariadb"), (maria, "mariadb", "postgres")):
                good, bad, detected = [], [], []
                for _ in range(dv_cycles):
                    good += _spaced(dv[0], dv[1], dv_block)
                    try:
                        server.freeze()
                        t0 = time.monotonic()
                        peers.dbvigil_up(dv[0], [name], want=0.0, timeout=15)
                        detected.append(time.monotonic() - t0)
                        bad += _spaced(dv[0], dv[1], dv_block)
                    finally:
                        server.thaw()
                    peers.dbvigil_up(dv[0], [name], timeout=30)
                good += _spaced(dv[0], dv[1], dv_block)
                dv_frozen[name] = (bad, max(detected), other, _lat(good))

        # Peers: freeze both databases and scrape every peer at once, each in its own thread.
        peer_jobs = {}
        for key, ep in endpoints.items():
            if ep and key != "dbvigil":
                peer_jobs[key] = (lambda ep=ep: _scrapes(ep[0], ep[1], n_peer, peer_timeout))
        peer_frozen = {}
        if peer_jobs:
            try:
                pg.freeze()
                maria.freeze()
                peer_frozen = _parallel(peer_jobs)
            finally:
                pg.thaw()
                maria.thaw()

        # -- rows ----------------------------------------------------------------------------
        header = ["tool", "frozen database", "healthy scrape, median (min-max)", "frozen scrape",
                  "frozen / healthy", "what it said about the frozen database"]
        ratios = []
        if dv is None:
            rows.append(["dbvigil", "", "not installed" if "dbvigil" in tools.missing else "did not start",
                         "", "", ""])
        for name, (res, detected, other, dv_healthy) in dv_frozen.items():
            st = _lat(res)
            ratio = st["median"] / dv_healthy["median"]
            ratios.append(ratio)
            body = res[-1][1]
            said = (f"`dbvigil_up{{target=\"{name}\"}} {fmt_value(value(body, 'dbvigil_up', target=name))}` "
                    f"(within {detected:.1f} s of the freeze), "
                    f"`dbvigil_probe_failures_total{{reason=\"timeout\"}} "
                    f"{fmt_value(value(body, 'dbvigil_probe_failures_total', target=name, reason='timeout'))}`, "
                    f"last probe {fmt_value(round(value(body, 'dbvigil_last_probe_duration_seconds', target=name) or 0, 3))} s; "
                    f"the other target `dbvigil_up{{target=\"{other}\"}} "
                    f"{fmt_value(value(body, 'dbvigil_up', target=other))}`")
            rows.append(["dbvigil (1 s interval, 1 s timeout)", ENGINE[name],
                         measure.fmt_range(dv_healthy), _fmt_lat(st, res, 10),
                         f"{ratio:.2f}x", said])
        if ratios:
            ctx.headlines["frozen_ratio_dbvigil"] = round(max(ratios), 3)
            ctx.headlines["frozen_scrape_s_dbvigil"] = round(
                max(_lat(v[0])["median"] for v in dv_frozen.values()), 6)

        def peer_row(tool, key, engine, label, said_fn):
            if key not in healthy:
                why = "not installed" if tool in tools.missing else "did not start"
                rows.append([label, engine, why, "", "", ""])
                return None
            res = peer_frozen.get(key)
            if isinstance(res, Exception) or res is None:
                rows.append([label, engine, measure.fmt_range(healthy[key]), f"error: {res}", "", ""])
                return None
            st = _lat(res)
            ratio = st["median"] / healthy[key]["median"]
            answered = [b for s_, b, _ in res if s_ == 200]
            said = said_fn(answered[-1]) if answered else (
                f"nothing: no answer within {peer_timeout:g} s (Prometheus records the scrape as failed, `up 0`)")
            bound = "≥ " if not answered else ""
            outcome[key] = {"body": answered[-1] if answered else None, "median": st["median"]}
            rows.append([label, engine, measure.fmt_range(healthy[key]), _fmt_lat(st, res, peer_timeout),
                         f"{bound}{ratio:,.0f}x" if ratio >= 10 else f"{bound}{ratio:.2f}x", said])
            return st["median"]

        outcome = {}
        per_tool = {}
        per_tool["postgres_exporter"] = peer_row(
            "postgres_exporter", "postgres_exporter", "PostgreSQL", "postgres_exporter",
            lambda b: f"`pg_up {fmt_value(value(b, 'pg_up'))}`, "
                      f"`pg_exporter_last_scrape_error {fmt_value(value(b, 'pg_exporter_last_scrape_error'))}`")
        per_tool["mysqld_exporter"] = peer_row(
            "mysqld_exporter", "mysqld_exporter", "MariaDB", "mysqld_exporter",
            lambda b: f"`mysql_up {fmt_value(value(b, 'mysql_up'))}` "
                      f"(it gave up at the scrape timeout minus its 0.25 s offset)")

        def sql_said(b):
            parts = [f"`sql_up{{sql_job=\"{job}\"}} {fmt_value(value(b, 'sql_up', sql_job=job))}` "
                     f"(`last_scrape_failed {fmt_value(value(b, 'sql_exporter_last_scrape_failed', sql_job=job))}`)"
                     for job in ("postgres", "mariadb")]
            return ", ".join(parts) + ": the last results from before the freeze (its jobs are stuck in their queries)"

        per_tool["sql_exporter"] = peer_row("sql_exporter", "sql_exporter", "PostgreSQL and MariaDB",
                                            "sql_exporter (1 s job interval)", sql_said)
        bbs = []
        for key, engine in (("blackbox_postgres", "PostgreSQL"), ("blackbox_mariadb", "MariaDB")):
            bbs.append(peer_row("blackbox_exporter", key, engine, "blackbox_exporter (tcp_connect)",
                                lambda b: f"`probe_success {fmt_value(value(b, 'probe_success'))}`: "
                                          "the kernel still accepts TCP connections for a stopped process"))
        bbs = [x for x in bbs if x is not None]
        per_tool["blackbox_exporter"] = max(bbs) if bbs else None
        for tool, s in per_tool.items():
            if s is not None:
                ctx.headlines[f"frozen_scrape_s_{tool}"] = round(s, 4)

        n_line = (f"{n_healthy} healthy scrapes per peer. dbvigil: per database, {dv_cycles} freeze(s), with "
                  f"blocks of {dv_block} scrapes 10 ms apart alternating healthy and frozen (frozen ones once "
                  f"dbvigil reported the target down), {dv_cycles * dv_block} frozen and "
                  f"{(dv_cycles + 1) * dv_block} healthy scrapes in all. Frozen peers: {n_peer} scrape(s) each with a {peer_timeout:g} s client timeout "
                  f"(sent as `X-Prometheus-Scrape-Timeout-Seconds`, as Prometheus does), all peers at once "
                  f"with both databases frozen.")
        passed = ratios and max(ratios) < 1.2
        said_text = []
        if ratios:
            said_text.append(
                f"dbvigil renders /metrics from memory: its scrape latency moved by at most {max(ratios):.2f}x "
                f"(bar: under 1.2x, {'met' if passed else 'NOT met'}), and it reported the frozen target down "
                "with reason `timeout` within about two probe intervals while the other target stayed up.")

        def said_peer(key, tool, frozen_answer, hung):
            o = outcome.get(key)
            if o is None:
                return
            if o["body"] is None:
                said_text.append(f"{tool} {hung} no answer within {peer_timeout:g} s.")
            else:
                said_text.append(f"{tool} answered after {measure.fmt_ms(o['median'])} {frozen_answer(o['body'])}.")

        said_peer("postgres_exporter", "postgres_exporter",
                  lambda b: f"with `pg_up {fmt_value(value(b, 'pg_up'))}`",
                  "queries the database at scrape time and does not bound that by the scrape timeout: "
                  "its scrapes hung, with")
        said_peer("mysqld_exporter", "mysqld_exporter",
                  lambda b: f"with `mysql_up {fmt_value(value(b, 'mysql_up'))}`: it also queries at scrape time, "
                            "but bounds that by the scrape-timeout header minus 0.25 s",
                  "queries at scrape time; its scrapes got")
        said_peer("sql_exporter", "sql_exporter",
                  lambda b: "with the last values its background jobs read before the freeze ("
                            + ", ".join(f"`sql_up{{sql_job=\"{j}\"}} {fmt_value(value(b, 'sql_up', sql_job=j))}`"
                                        for j in ("postgres", "mariadb"))
                            + "): a frozen database looks up to it",
                  "got")
        for key, engine in (("blackbox_postgres", "PostgreSQL"), ("blackbox_mariadb", "MariaDB")):
            said_peer(key, f"The blackbox TCP probe of {engine}",
                      lambda b: f"with `probe_success {fmt_value(value(b, 'probe_success'))}`"
                                + (": the kernel completes the TCP handshake for a stopped process"
                                   if value(b, 'probe_success') == 1 else ""),
                      "got")
        out = [
            "### 2. Scrape while a database is frozen (SIGSTOP)",
            "",
            "Each tool watched a healthy PostgreSQL and MariaDB; then the database's whole process tree "
            "was stopped with SIGSTOP, so the kernel still accepts connections but nothing answers, "
            "and each tool was scraped again. " + n_line,
            "",
            measure.table(header, rows),
            "",
            "What each tool said: " + " ".join(said_text),
        ]
        out += tools.notes()
        return "\n".join(out) + "\n"
    finally:
        _restore(pg, maria)
        tools.close()


def _sql_ready(tools, se):
    """Wait for sql_exporter's first results for both databases; None (and a note) if
    they never come."""
    if not se:
        return se
    try:
        peers.wait_until(lambda: len(peers.samples(peers.scrape(se[0], se[1], 5)[1], "sql_up")) == 2,
                         15, "sql_exporter's first results for both databases")
        return se
    except RuntimeError as e:
        tools.failed["sql_exporter"] = str(e)
        return None


def _dir(parent, name):
    d = os.path.join(parent, name)
    os.makedirs(d, exist_ok=True)
    return d


# -- scenario 3: a short outage between two scrapes --------------------------------------------

def _pg_accepts(host, port, timeout=0.5):
    """True when PostgreSQL answers a startup message with an authentication request (it
    lets logins in), False when it refuses (no listener, or an error such as 57P03)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            params = b"user\0postgres\0database\0postgres\0\0"
            s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            kind = s.recv(1)
            ok = kind == b"R"
            try:
                s.sendall(b"X\0\0\0\4")
            except OSError:
                pass
            return ok
    except OSError:
        return False


def _mysql_accepts(host, port, timeout=0.5):
    """True when the server sends a protocol-10 handshake, False otherwise."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            head = b""
            while len(head) < 5:
                chunk = s.recv(5 - len(head))
                if not chunk:
                    return False
                head += chunk
            return head[4] == 0x0A
    except OSError:
        return False


class Watcher(threading.Thread):
    """Polls whether the server lets logins in, every `step` seconds, and records when it
    stopped and started again."""

    def __init__(self, server, step=0.01):
        super().__init__(daemon=True)
        self.check = _pg_accepts if server.engine == "postgres" else _mysql_accepts
        self.server = server
        self.step = step
        self.stop_flag = threading.Event()
        self.polls = []  # (wall-clock middle of the poll, ok)

    def run(self):
        while not self.stop_flag.is_set():
            t = time.time()
            ok = self.check(self.server.host, self.server.port)
            self.polls.append(((t + time.time()) / 2, ok))
            time.sleep(self.step)

    def refused(self):
        """(first refused poll, first accepting poll after it) or None."""
        first = next((t for t, ok in self.polls if not ok), None)
        if first is None:
            return None
        back = next((t for t, ok in self.polls if ok and t > first), None)
        return first, back


def _rfc3339(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run_short_outage(ctx):
    smoke = ctx.smoke
    spacing = 4.0 if smoke else 15.0  # between the two scrapes
    lead = 1.0 if smoke else 3.0      # from the first scrape to stop()
    down = 1.0 if smoke else 3.0      # stop() returned -> start() called
    intervals = [("100ms", 0.1)] if smoke else [("100ms", 0.1), ("1s", 1.0)]
    pg, maria = ctx.pg, ctx.maria
    work = ctx.scratch("outage")
    tools = Tools()
    rows = []
    dv_ok = dv_ok_wall = True
    all_one = no_id_change = True
    pe_stale = False
    windows = {}
    measured = {}
    extra_episodes = []
    try:
        targets = []
        for server in (pg, maria):
            for label, _ in intervals:
                targets.append(peers.dbvigil_target(f"{server.engine}-{label}", server, interval=label))
        dv = tools.start("dbvigil", peers.start_dbvigil, ctx, targets, _dir(work, "dbvigil"))
        pe = tools.start("postgres_exporter", peers.start_postgres_exporter, ctx, pg, _dir(work, "pe"),
                         extend_queries=peers.PG_POSTMASTER_QUERIES)
        me = tools.start("mysqld_exporter", peers.start_mysqld_exporter, ctx, maria, _dir(work, "me"))
        se = tools.start("sql_exporter", peers.start_sql_exporter, ctx, pg, maria, _dir(work, "se"))
        bb = tools.start("blackbox_exporter", peers.start_blackbox_exporter, ctx, _dir(work, "bb"))
        names = [t["name"] for t in targets]
        if dv:
            peers.dbvigil_up(dv[0], names, timeout=30)
        se = _sql_ready(tools, se)

        def scrape_all(server):
            out = {}
            if dv:
                out["dbvigil"] = peers.scrape(dv[0], dv[1], 10)[1]
                out["dbvigil_api"] = peers.dbvigil_targets_api(dv[0])
            if server.engine == "postgres" and pe:
                out["postgres_exporter"] = peers.scrape(pe[0], pe[1], 10)
            if server.engine == "mariadb" and me:
                out["mysqld_exporter"] = peers.scrape(me[0], me[1], 10)
            if se:
                out["sql_exporter"] = peers.scrape(se[0], se[1], 10)
            if bb:
                out["blackbox_exporter"] = peers.scrape(bb[0], peers.blackbox_probe_path(server), 10)
            return out

        for server in (pg, maria):
            engine = ENGINE[server.engine]
            t0 = time.monotonic()
            first = scrape_all(server)
            wall0 = time.time()
            watcher = Watcher(server)
            time.sleep(max(0.0, t0 + lead - 0.3 - time.monotonic()))
            watcher.start()
            time.sleep(max(0.0, t0 + lead - time.monotonic()))
            try:
                before_stop = time.monotonic()
                wall_stop = time.time()
                server.stop()
                stopped = time.monotonic()
                time.sleep(down)
                server.start()
                after_start = time.monotonic()
                wall_start = time.time()
            finally:
                _restore(server)
                time.sleep(0.3)
                watcher.stop_flag.set()
                watcher.join()
            truth = after_start - before_stop
            ref = watcher.refused()
            refused = (ref[1] - ref[0]) if ref and ref[1] else None
            time.sleep(max(0.0, t0 + spacing - time.monotonic()))
            second = scrape_all(server)
            gap = time.monotonic() - t0
            windows[server.engine] = (wall0 - 0.5, time.time())
            if server.engine == "postgres" and pe:
                # Is a pg_up 0 at the second scrape about now, or a connection the restart broke?
                second["postgres_exporter_again"] = peers.scrape(pe[0], pe[1], 10)

            # dbvigil rows
            for label, secs in intervals:
                name = f"{server.engine}-{label}"
                tname = f"dbvigil ({label} interval)"
                if not dv:
                    rows.append([tname, engine, "not installed" if "dbvigil" in tools.missing else "did not start",
                                 "", "", "", ""])
                    dv_ok = dv_ok_wall = False
                    continue
                a, b = first["dbvigil"], second["dbvigil"]
                d_out = (value(b, "dbvigil_outages_total", target=name) or 0) - (
                    value(a, "dbvigil_outages_total", target=name) or 0)
                last = value(b, "dbvigil_last_outage_duration_seconds", target=name)
                d_id = (value(b, "dbvigil_identity_changes_total", target=name) or 0) - (
                    value(a, "dbvigil_identity_changes_total", target=name) or 0)
                api = second["dbvigil_api"][name]
                new_eps = [e for e in api["episodes"] if _rfc3339(e["started_at"]) >= wall0 - 0.5]
                ep = new_eps[0] if new_eps else None
                err_wall = (last - truth) if last is not None else None
                err_ref = (last - refused) if (last is not None and refused is not None) else None
                one = d_out == 1 and len(new_eps) == 1
                ok_wall = one and err_wall is not None and abs(err_wall) <= secs
                # The server's real unavailability is the refused-login window; without it,
                # fall back to the wall time.
                ok = one and (abs(err_ref) <= secs if err_ref is not None else ok_wall)
                dv_ok = dv_ok and ok
                all_one = all_one and one
                no_id_change = no_id_change and d_id == 0
                dv_ok_wall = dv_ok_wall and ok_wall
                measured[f"outage_s_dbvigil_{server.engine}_{label}"] = round(last, 3) if last is not None else None
                offsets = ""
                if ep and ref and ref[1] and ep.get("ended_at"):
                    offsets = (f" (started {_rfc3339(ep['started_at']) - ref[0]:+.3f} s after the first refused "
                               f"login, ended {_rfc3339(ep['ended_at']) - ref[1]:+.3f} s after logins came back)")
                shows = (f"`dbvigil_outages_total` +{fmt_value(d_out)}, "
                         + (f"`dbvigil_last_outage_duration_seconds {last:.3f}`" if last is not None else "")
                         + (f"; /api/v1/targets: {len(new_eps)} new episode, reason `{ep['reason']}`{offsets}"
                            if ep else "; no new episode in /api/v1/targets")
                         + f"; identity changes +{fmt_value(d_id)}")
                verdict = "meets the bar" if ok else "MISSES the bar"
                if ok != ok_wall:
                    verdict += " against refused logins, " + ("meets" if ok_wall else "misses") + " it against wall time"
                rows.append([tname, engine, "yes, 1 episode" if one else f"{fmt_value(d_out)} episodes",
                             f"{last:.3f} s" if last is not None else "no",
                             f"{err_wall:+.3f} s" if err_wall is not None else "",
                             f"{err_ref:+.3f} s" if err_ref is not None else "",
                             f"{verdict}: {shows}"])

            # peers
            if server.engine == "postgres":
                rows.append(_pe_row(first, second, engine, tools, gap))
                again = _body(second.get("postgres_exporter_again", (None, None, 0)))
                pe_b = _body(second["postgres_exporter"]) if "postgres_exporter" in second else None
                pe_stale = bool(pe_b and again and value(pe_b, "pg_up") == 0 and value(again, "pg_up") == 1)
            else:
                rows.append(_me_row(first, second, engine, tools, gap))
            rows.append(_se_row(first, second, engine, tools, server))
            rows.append(_bb_row(first, second, engine, tools))
            rows.append(["(truth)", engine, "", f"{truth:.3f} s wall",
                         "", f"{refused:.3f} s refused" if refused is not None else "not seen",
                         f"stop() called to start() returned {truth:.3f} s (stop {stopped - before_stop:.3f} s, "
                         f"down {down:g} s, start until ready {after_start - stopped - down:.3f} s); "
                         + (f"logins refused for {refused:.3f} s (polled every 10 ms), from "
                            f"{ref[0] - wall_stop:.3f} s after stop() was called to "
                            f"{wall_start - ref[1]:.3f} s before start() returned" if refused is not None
                            else "no refused login seen")
                         + f"; scrapes {gap:.1f} s apart"])
        if dv:
            # Every episode dbvigil recorded outside the restart its target was watching.
            for name, t in peers.dbvigil_targets_api(dv[0]).items():
                lo, hi = windows.get(name.split("-")[0], (0, 0))
                for e in reversed(t["episodes"]):
                    at = _rfc3339(e["started_at"])
                    if not lo <= at <= hi:
                        when = (f"{lo + 0.5 - at:.1f} s before the first scrape of its restart" if at < lo
                                else f"{at - hi:.1f} s after the second scrape of its restart")
                        extra_episodes.append(f"{name}: {e['duration_seconds']:.3f} s, `{e['reason']}` "
                                              f"({e['message']}), {when}")
        if not dv:
            dv_text = "dbvigil did not run."
        else:
            dv_text = (("dbvigil counted exactly one outage episode per target" if all_one else
                        "dbvigil did NOT count exactly one outage episode per target")
                       + " and measured its duration from the first failed probe to the first successful "
                       "one, which tracks the time the server refused logins; the wall time from `stop()` to "
                       "`start()` returning is longer by the start of the shutdown and the readiness wait. "
                       + ("The restart kept the server's identity, and no identity change was counted."
                          if no_id_change else "An identity change was counted although the server only restarted."))
        pe_text = ("; postgres_exporter answered `pg_up 0` at the second scrape, long after the server was back, "
                   "because the connection it keeps open died with the restart and only that scrape found out "
                   "(the next scrape says 1)" if pe_stale else "")
        ctx.headlines["outage_dbvigil_ok"] = bool(dv and dv_ok)
        ctx.headlines["outage_dbvigil_ok_vs_wall"] = bool(dv and dv_ok_wall)
        ctx.headlines.update(measured)
        header = ["tool", "database", "outage visible at the 2nd scrape", "duration it reports",
                  "error vs wall time", "error vs refused logins", "what it exposes"]
        out = [
            "### 3. A {}-second outage between two {}-second scrapes".format(f"{down:g}", f"{spacing:g}"),
            "",
            f"Every tool was scraped once; {lead:g} s later the server was stopped (fast shutdown), kept down "
            f"{down:g} s and started again, and {spacing:g} s after the first scrape every tool was scraped "
            "again: would a Prometheus scraping every "
            f"{spacing:g} s know? PostgreSQL first, then MariaDB. dbvigil watched each server with "
            f"{' and '.join(lbl for lbl, _ in intervals)} probe intervals (default timeout, `failure_threshold` 1); "
            "the bar for it is exactly one outage episode with a duration within one probe interval of "
            "the true down time. Logins were polled every 10 ms during the restart to see how long the "
            "server really refused them.",
            "",
            measure.table(header, rows),
            "",
            "What each tool said: " + dv_text + " The peers keep no memory between scrapes: at the second "
            "scrape sql_exporter and the blackbox TCP probe see a healthy server" + pe_text + ". Only a "
            "restart marker tells that something happened: `pg_postmaster_start_time_seconds` (from the "
            "package's example queries; postgres_exporter 0.11 has no such default metric) and "
            "`mysql_global_status_uptime` show that the server restarted and when it came back, but not "
            "when it went down nor for how long; an outage without a restart (a network cut, a full "
            "connection table, a frozen server) leaves them no trace at all.",
        ]
        if extra_episodes:
            out += ["", "Other outage episodes dbvigil recorded, outside the restart each target was watching "
                    "(not counted above): " + "; ".join(extra_episodes) + "."]
        out += tools.notes()
        return "\n".join(out) + "\n"
    finally:
        _restore(pg, maria)
        tools.close()


def _missing_row(tool, engine, tools):
    why = "not installed" if tool in tools.missing else "did not start"
    return [tool, engine, why, "", "", "", ""]


def _body(res):
    status, body, _ = res
    return body if status == 200 else None


def _pe_row(first, second, engine, tools, gap):
    tool = "postgres_exporter (+ pg_postmaster query)"
    if "postgres_exporter" not in first:
        return _missing_row("postgres_exporter", engine, tools)
    a, b = _body(first["postgres_exporter"]), _body(second["postgres_exporter"])
    if a is None or b is None:
        return [tool, engine, "scrape failed", "", "", "", str(second["postgres_exporter"][1])[:120]]
    again = _body(second.get("postgres_exporter_again", (None, None, 0)))
    s0 = value(a, "pg_postmaster_start_time_seconds")
    s1 = value(b, "pg_postmaster_start_time_seconds")
    s2 = value(again, "pg_postmaster_start_time_seconds") if again else None
    up0, up1 = value(a, "pg_up"), value(b, "pg_up")
    up2 = value(again, "pg_up") if again else None
    later = s1 if s1 is not None else s2

    def gap_back(t):
        return f"{time.time() - t:.1f} s before the scrape"

    restarted = s0 is not None and later is not None and later != s0
    shows = f"`pg_up` {fmt_value(up0)} then {fmt_value(up1)}"
    if up1 == 0 and up2 == 1:
        shows += (f" (a scrape right after says {fmt_value(up2)}: the 0 is the connection it kept open, "
                  "broken by the restart, found at this scrape, not the server's state now)")
    shows += "; `pg_postmaster_start_time_seconds` "
    if restarted:
        shows += (f"changed to {gap_back(later)}" + (" (absent at the 2nd scrape, read right after)" if s1 is None else "")
                  + ": a restart, and when the server came back, but not when it went down")
    else:
        shows += f"{fmt_value(s0)} then {fmt_value(s1)}"
    if restarted and s1 is not None:
        visible = "a restart, yes"
    elif restarted:
        visible = "`pg_up 0` (stale); the restart shows at the next scrape"
    else:
        visible = "`pg_up 0` (stale)" if up1 == 0 else "no"

    return [tool, engine, visible, "no", "", "", shows]


def _me_row(first, second, engine, tools, gap):
    if "mysqld_exporter" not in first:
        return _missing_row("mysqld_exporter", engine, tools)
    a, b = _body(first["mysqld_exporter"]), _body(second["mysqld_exporter"])
    if a is None or b is None:
        return ["mysqld_exporter", engine, "scrape failed", "", "", "", str(second["mysqld_exporter"][1])[:120]]
    u0, u1 = value(a, "mysql_global_status_uptime"), value(b, "mysql_global_status_uptime")
    up0, up1 = value(a, "mysql_up"), value(b, "mysql_up")
    restarted = u0 is not None and u1 is not None and u1 < u0 + gap - 2
    shows = (f"`mysql_up` {fmt_value(up0)} then {fmt_value(up1)}; `mysql_global_status_uptime` "
             f"{fmt_value(u0)} then {fmt_value(u1)} s"
             + (": a restart, and when the server came back, but not when it went down" if restarted else ""))
    return ["mysqld_exporter", engine, "a restart, yes" if restarted else "no", "no", "", "", shows]


def _se_row(first, second, engine, tools, server):
    tool = "sql_exporter (1 s job interval)"
    if "sql_exporter" not in first:
        return _missing_row("sql_exporter", engine, tools)
    job = server.engine
    a, b = _body(first["sql_exporter"]), _body(second["sql_exporter"])
    if a is None or b is None:
        return [tool, engine, "scrape failed", "", "", "", ""]
    f0 = value(a, "sql_exporter_last_scrape_failed", sql_job=job)
    f1 = value(b, "sql_exporter_last_scrape_failed", sql_job=job)
    u0, u1 = value(a, "sql_up", sql_job=job), value(b, "sql_up", sql_job=job)
    seen = (u1 != 1) or (f1 not in (0, None))
    shows = (f"`sql_up` {fmt_value(u0)} then {fmt_value(u1)}; `sql_exporter_last_scrape_failed` "
             f"{fmt_value(f0)} then {fmt_value(f1)}")
    return [tool, engine, "yes" if seen else "no", "no", "", "", shows]


def _bb_row(first, second, engine, tools):
    tool = "blackbox_exporter (tcp_connect)"
    if "blackbox_exporter" not in first:
        return _missing_row("blackbox_exporter", engine, tools)
    a, b = _body(first["blackbox_exporter"]), _body(second["blackbox_exporter"])
    if a is None or b is None:
        return [tool, engine, "scrape failed", "", "", "", ""]
    p0, p1 = value(a, "probe_success"), value(b, "probe_success")
    return [tool, engine, "no" if p1 == 1 else "yes", "no", "", "",
            f"`probe_success` {fmt_value(p0)} then {fmt_value(p1)}"]
