"""Measuring helpers shared by the scenarios: background processes, timed HTTP GETs,
/proc readings and summary statistics."""

import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import time


class Proc:
    """A background daemon with its log in `workdir/<name>.log`."""

    def __init__(self, name, argv, workdir, env=None, ready_port=None, ready_path=None, timeout=30.0):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=workdir,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        self.pid = self.proc.pid
        if ready_port is not None:
            wait_http(ready_port, ready_path or "/", timeout, self)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        try:
            status, _, _ = get(port, path, timeout=1.0)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout:.0f} s")


def get(port, path, timeout=60.0, headers=None):
    """One GET on a new connection: (status, body, seconds). Raises OSError on a timeout."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    start = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body.decode("utf-8", "replace"), time.perf_counter() - start
    finally:
        conn.close()


def timed_gets(port, path, n, timeout=60.0, headers=None):
    """n sequential GETs on one kept-alive connection; the seconds each took."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    out = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - start)
            if resp.status != 200:
                raise RuntimeError(f"GET {path} on :{port} answered {resp.status}")
    finally:
        conn.close()
    return out


def summary(samples):
    """median, min, max, p99 of a list of numbers."""
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "p99": p99, "n": len(s)}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    rest = text[text.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def fmt_ms(seconds):
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_range(stats, fmt=fmt_ms):
    """`median (min-max)`."""
    return f"{fmt(stats['median'])} ({fmt(stats['min'])}-{fmt(stats['max'])})"


def ratio(value, base):
    return "n/a" if not base else f"{value / base:.2f}x"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# What Prometheus 2.42 sends: every tool answers a benchmark scrape as it would answer
# Prometheus.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d\\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency.min, latency.max, latency:percentile(50), latency:percentile(99), summary.bytes))
end
"""


def wrk(url, connections=1, seconds=10, threads=1, headers=None, timeout_s=30):
    """Runs wrk against url; returns requests, errors (socket and non-2xx), and latency
    min/max/median/p99 in seconds, as wrk measured them (its own C client, so no Python in
    the timings)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_REPORT)
        script = f.name
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "-s", script]
    for k, v in (headers or {"Accept": PROMETHEUS_ACCEPT}).items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    os.unlink(script)
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no report:\n{out.stdout}\n{out.stderr}")
    req, sock_err, status_err, lo, hi, p50, p99, nbytes = (int(x) for x in line.split()[1:])
    return {
        "requests": req, "errors": sock_err + status_err, "bytes": nbytes,
        "min": lo / 1e6, "max": hi / 1e6, "median": p50 / 1e6, "p99": p99 / 1e6, "n": req,
    }


class Listener:
    """A loopback port that accepts connections and closes them at once: the far end of
    the benchmarks' `tcp` targets, so that a thousand of them cost the exporter its
    connects and nothing else."""

    def __init__(self, every_address=False):
        """`every_address`: also accept on 127.0.x.y, for targets told apart by address
        (discovered ones are named after it)."""
        import threading

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0" if every_address else "127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self):
        self._stop = True
        self.sock.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(body):
    """[(name, {label: value}, float)] from the text exposition format."""
    out = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        out.append((m.group(1), labels, value))
    return out
