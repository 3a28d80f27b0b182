"""Running dbvigil for the benchmarks: configurations, the process, and reading its own
metrics back."""

import json
import os
import time

import measure


def server_target(name, server, interval="1s", timeout=None, checks=None, connection=None, shape="plain"):
    """One YAML flow mapping for a PostgreSQL or MariaDB target. `shape`: "plain" (no TLS,
    trust) or "tls" (TLS and a password login, servers.py's TLS_USER)."""
    kind = "postgres" if server.engine == "postgres" else "mysql"
    db = "postgres" if kind == "postgres" else "bench"
    url = server.tls_url() if shape == "tls" else server.url(db)
    parts = [f"name: {name}", f"kind: {kind}", f"url: '{url}'", f"interval: {interval}"]
    if timeout:
        parts.append(f"timeout: {timeout}")
    if checks:
        parts.append(f"checks: [{', '.join(checks)}]")
    if connection:
        parts.append(f"connection: {connection}")
    return "{" + ", ".join(parts) + "}"


def sqlite_targets(n, interval="1s"):
    return [
        f"{{name: file-{i:04d}, kind: sqlite, path: files/f{i:04d}.db, create: true, interval: {interval}}}"
        for i in range(n)
    ]


def tcp_targets(n, port, interval="1s"):
    return [
        f"{{name: port-{i:04d}, kind: tcp, host: 127.0.0.1, port: {port}, interval: {interval}}}"
        for i in range(n)
    ]


def prepare(server):
    """The database the MariaDB targets write their heartbeat into."""
    if server.engine == "mariadb":
        server.sql("CREATE DATABASE IF NOT EXISTS bench")


class Dbvigil:
    """A dbvigil process with the given target lines, on a free loopback port."""

    def __init__(self, ctx, workdir, targets, extra_env=None, extra_yaml=""):
        os.makedirs(os.path.join(workdir, "files"), exist_ok=True)
        config = os.path.join(workdir, "dbvigil.yml")
        self.config = config
        with open(config, "w") as f:
            f.write(config_text(targets, extra_yaml))
        self.port = measure.free_port()
        self.proc = measure.Proc(
            "dbvigil",
            [ctx.dbvigil, "--config.file", config, "--web.listen-address", f"127.0.0.1:{self.port}",
             "--data.dir", os.path.join(workdir, "data"), "--log.level", "warn"],
            workdir, env=extra_env, ready_port=self.port, ready_path="/-/healthy",
        )
        self.pid = self.proc.pid
        self.url = f"http://127.0.0.1:{self.port}/metrics"

    def metrics(self):
        status, body, _ = measure.get(self.port, "/metrics", timeout=60)
        if status != 200:
            raise RuntimeError(f"dbvigil /metrics answered {status}")
        return parse(body)

    def targets(self):
        status, body, _ = measure.get(self.port, "/api/v1/targets", timeout=60)
        return json.loads(body)

    def wait_all_probed(self, n, timeout=60.0):
        """Until every target has finished a probe (and so has series with values)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.metrics()
            probed = sum(1 for labels, v in m.get("dbvigil_probes_total", []) if v >= 1)
            if probed >= n:
                return m
            time.sleep(0.2)
        raise RuntimeError(f"not every one of {n} targets was probed within {timeout:.0f} s:\n{self.proc.log_tail()}")

    def wait_up(self, names, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = {l.get("target"): v for l, v in self.metrics().get("dbvigil_up", [])}
            if all(up.get(n) == 1.0 for n in names):
                return
            time.sleep(0.1)
        raise RuntimeError(f"targets {names} not all up within {timeout:.0f} s:\n{self.proc.log_tail()}")

    def stop(self):
        self.proc.stop()


def discovered_tcp(workdir, n, port, interval="1s"):
    """A discovery file of `n` tcp addresses (127.0.x.y, all at `port`) and the
    `target_files:` block that makes them targets, as a generated fleet list would be."""
    os.makedirs(os.path.join(workdir, "targets"), exist_ok=True)
    addresses = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(n)]
    with open(os.path.join(workdir, "targets", "fleet.json"), "w") as f:
        json.dump([{"targets": addresses, "labels": {"env": "bench"}}], f)
    return ("target_files:\n  - files: [targets/*.json]\n"
            f"    template: {{kind: tcp, port: {port}, interval: {interval}}}\n")


def config_text(targets, extra_yaml=""):
    """A configuration of target lines (YAML flow mappings), and more top-level YAML."""
    return "targets:\n" + "".join(f"  - {t}\n" for t in targets) + extra_yaml


def parse(text):
    """{metric name: [(labels dict, value)]} from classic or OpenMetrics text."""
    out = {}
    for name, labels, value in measure.parse_metrics(text):
        out.setdefault(name, []).append((labels, value))
    return out


def histogram_sum(metrics, name, where=lambda labels: True):
    """Buckets {le: count}, summed over every series of a histogram."""
    total = {}
    for labels, v in metrics.get(f"{name}_bucket", []):
        if where(labels):
            le = float(labels["le"].replace("+Inf", "inf"))
            total[le] = total.get(le, 0) + v
    return dict(sorted(total.items()))


def quantile_bound(buckets, q):
    """The smallest bucket bound holding at least q of the observations (an upper bound
    of the q-quantile), and the count."""
    count = buckets.get(float("inf"), 0)
    if not count:
        return None, 0
    for le, c in buckets.items():
        if c >= q * count:
            return le, count
    return float("inf"), count


def diff_buckets(after, before):
    return {le: after[le] - before.get(le, 0) for le in after}


def total(metrics, name, where=lambda labels: True):
    return sum(v for labels, v in metrics.get(name, []) if where(labels))
