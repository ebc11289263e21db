"""Measuring tools for benches/api_bench.py: the ~60 KB JPEG, wrk (a Lua script gives it the
POST body and prints its figures as JSON), CPU and memory of process trees from /proc, a
queue purger, and the three ways one client publishes to RabbitMQ (the broker's ceiling).

Layout:
- the request body: `bench_image`
- /proc: `process_tree`, `status_kb`, `cpu_seconds`, `broker_pids`, `CpuMeter`, `MemorySampler`,
  `tcp_states`
- RabbitMQ: `Purger`, `purged_during`, `publish_pipelined`, `publish_blocking`,
  `publish_connection_each`
- HTTP: `WRK_SCRIPT`, `run_wrk`
"""
import collections
import io
import json
import os
import resource
import subprocess
import threading
import time

import pika
from PIL import Image

from harness import log

TARGET_IMAGE_BYTES = 60 * 1024
WRK_SCRIPT = r"""
-- Request: method, body file and content type from the environment (one Lua state per thread).
wrk.method = os.getenv("APIBENCH_METHOD") or "GET"
local body_file = os.getenv("APIBENCH_BODY") or ""
if body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = os.getenv("APIBENCH_CONTENT_TYPE")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'APIBENCH {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def bench_image(source):
    """A JPEG of about 60 KB made from source: 480 px wide, the quality whose size is closest.
    Deterministic for a given Pillow (and its libjpeg-turbo)."""
    img = Image.open(source).convert("RGB")
    img = img.resize((480, round(img.height * 480 / img.width)), Image.Resampling.LANCZOS)
    best = None
    for quality in range(40, 98):
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality, optimize=True)
        data = out.getvalue()
        if best is None or abs(len(data) - TARGET_IMAGE_BYTES) < abs(len(best[1]) - TARGET_IMAGE_BYTES):
            best = (quality, data)
    return best


# --- memory of a process tree

def children_map():
    kids = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kids[ppid].append(int(entry))
    return kids


def process_tree(pid):
    kids, tree, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    return tree


def status_kb(pid, field, filename="status"):
    try:
        with open(f"/proc/{pid}/{filename}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids):
    """utime + stime of these processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def broker_pids():
    """RabbitMQ's Erlang VM (beam.smp) on this machine, if it is here."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def machine_busy_seconds():
    """CPU time spent on anything but idle and iowait, all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuMeter:
    """CPU used during a measurement by each server's process tree (`servers`: name -> pid),
    the broker, this process and its finished children (wrk), and everything else on the
    machine (other_cpu_percent: another job competing for the cores makes the figures
    unreliable), in percent of one core."""

    def __init__(self, servers=None):
        self.servers, self.broker = dict(servers or {}), broker_pids()

    def _servers_cpu(self):
        return {name: cpu_seconds(process_tree(pid)) for name, pid in self.servers.items()}

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.servers0 = self._servers_cpu()
        self.broker0 = cpu_seconds(self.broker)
        self.self0 = time.process_time()
        self.children0 = children_cpu_seconds()
        self.machine0 = machine_busy_seconds()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        pct = lambda sec: round(100 * sec / wall, 1)
        self.server_cpu_s = {n: c - self.servers0[n] for n, c in self._servers_cpu().items()}
        servers = sum(self.server_cpu_s.values())
        broker = cpu_seconds(self.broker) - self.broker0
        own = time.process_time() - self.self0
        children = children_cpu_seconds() - self.children0
        machine = machine_busy_seconds() - self.machine0
        self.result = {"broker_cpu_percent": pct(broker), "bench_process_cpu_percent": pct(own),
                       "load_generator_cpu_percent": pct(children),
                       "other_cpu_percent": pct(max(0.0, machine - servers - broker - own - children)),
                       "machine_cpu_percent": pct(machine)}
        for name, sec in self.server_cpu_s.items():
            self.result[f"{name}_cpu_percent"] = pct(sec)


class MemorySampler(threading.Thread):
    """Every `interval` s: the sum of VmRSS and of Pss (smaps_rollup: shared pages counted
    once across gunicorn's forks) over the tree under pid; the peaks, overall and per phase."""

    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.pid, self.interval, self.phase = pid, interval, "idle"
        self.stopped = threading.Event()
        self.peak = collections.defaultdict(lambda: {"rss_kb": 0, "pss_kb": 0})
        self.max_processes = 0
        self.hwm_kb = {}

    def sample(self):
        tree = process_tree(self.pid)
        self.max_processes = max(self.max_processes, len(tree))
        rss = sum(status_kb(p, "VmRSS") for p in tree)
        pss = sum(status_kb(p, "Pss", "smaps_rollup") for p in tree)
        for phase in (self.phase, "all"):
            self.peak[phase]["rss_kb"] = max(self.peak[phase]["rss_kb"], rss)
            self.peak[phase]["pss_kb"] = max(self.peak[phase]["pss_kb"], pss)
        for p in tree:
            self.hwm_kb[p] = max(self.hwm_kb.get(p, 0), status_kb(p, "VmHWM"))

    def run(self):
        while not self.stopped.wait(self.interval):
            self.sample()

    def report(self):
        mb = lambda kb: round(kb / 1024, 1)
        return {
            "pid": self.pid,
            "processes": self.max_processes,
            "peak_rss_mb": mb(self.peak["all"]["rss_kb"]),
            "peak_pss_mb": mb(self.peak["all"]["pss_kb"]),
            "vmhwm_sum_mb": mb(sum(self.hwm_kb.values())),
            "per_phase": {k: {"peak_rss_mb": mb(v["rss_kb"]), "peak_pss_mb": mb(v["pss_kb"])}
                          for k, v in self.peak.items() if k != "all"},
            "note": "peak of the sampled sum of VmRSS (and Pss) over the process tree, every "
                    f"{self.interval} s; vmhwm_sum_mb adds each process's own peak (an upper bound)",
        }


# --- RabbitMQ helpers

class Purger(threading.Thread):
    """Purges the queue every `interval` s so a benchmark never piles up messages; counts them."""

    def __init__(self, params, queue, interval=0.5):
        super().__init__(daemon=True)
        self.params, self.queue, self.interval = params, queue, interval
        self.stopped = threading.Event()
        self.purged = 0
        self.lock = threading.Lock()

    def purge(self, channel):
        n = channel.queue_purge(self.queue).method.message_count
        with self.lock:
            self.purged += n

    def take(self):
        with self.lock:
            n, self.purged = self.purged, 0
        return n

    def run(self):
        conn = channel = None
        while True:
            stopping = self.stopped.wait(self.interval)
            try:
                if conn is None or not conn.is_open:
                    conn = pika.BlockingConnection(self.params)
                    channel = conn.channel()
                self.purge(channel)
            except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                channel = conn.channel()
            except pika.exceptions.AMQPError as e:  # the broker restarted: reconnect next time
                log(f"purging {self.queue}: {e!r}; reconnecting")
                conn = None
            if stopping:
                break
        if conn is not None and conn.is_open:
            conn.close()


def purged_during(purger, fn):
    purger.take()
    result = fn()
    time.sleep(purger.interval * 2.5)  # let the purger empty what was published last
    result["queued"] = purger.take()
    return result


def publish_pipelined(params, exchange, routing_key, body, seconds, window):
    """pika's SelectConnection: up to `window` unconfirmed persistent messages in flight."""
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    pending = collections.deque()
    st = {"tag": 0, "acked": 0, "nacked": 0, "stop": False, "t0": 0.0, "acked_at_stop": 0, "error": None}
    conn_box = {}

    def fill(channel):
        while not st["stop"] and len(pending) < window:
            channel.basic_publish(exchange, routing_key, body, props)
            st["tag"] += 1
            pending.append(st["tag"])

    def on_confirm(frame):
        m = frame.method
        key = "acked" if isinstance(m, pika.spec.Basic.Ack) else "nacked"
        if m.multiple:
            while pending and pending[0] <= m.delivery_tag:
                pending.popleft()
                st[key] += 1
        elif m.delivery_tag in pending:
            pending.remove(m.delivery_tag)
            st[key] += 1
        if not st["stop"]:
            fill(channel_box["ch"])
        elif not pending:
            conn_box["c"].close()

    def stop():
        st["stop"] = True
        st["acked_at_stop"] = st["acked"]
        st["elapsed"] = time.perf_counter() - st["t0"]
        if not pending:
            conn_box["c"].close()

    channel_box = {}

    def on_channel(channel):
        channel_box["ch"] = channel
        channel.confirm_delivery(on_confirm, callback=lambda _frame: start(channel))

    def start(channel):
        st["t0"] = time.perf_counter()
        conn_box["c"].ioloop.call_later(seconds, stop)
        fill(channel)

    def on_open_error(conn, err):
        st["error"] = repr(err)
        conn.ioloop.stop()

    conn = pika.SelectConnection(params, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                 on_open_error_callback=on_open_error,
                                 on_close_callback=lambda c, reason: c.ioloop.stop())
    conn_box["c"] = conn
    conn.ioloop.start()
    if st["error"]:
        raise RuntimeError(st["error"])
    return {"client": f"pika {pika.__version__} SelectConnection, confirm_delivery, "
                      f"up to {window} unconfirmed in flight",
            "messages_per_s": round(st["acked_at_stop"] / st["elapsed"], 1),
            "confirmed": st["acked_at_stop"], "nacked": st["nacked"], "seconds": round(st["elapsed"], 2)}


def publish_blocking(params, exchange, routing_key, body, seconds):
    """pika's BlockingConnection with confirms: each basic_publish waits for its confirm."""
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    conn = pika.BlockingConnection(params)
    channel = conn.channel()
    channel.confirm_delivery()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        channel.basic_publish(exchange, routing_key, body, props)
        n += 1
    elapsed = time.perf_counter() - t0
    conn.close()
    return {"client": f"pika {pika.__version__} BlockingConnection, one confirm awaited per message",
            "messages_per_s": round(n / elapsed, 1), "confirmed": n, "seconds": round(elapsed, 2)}


def publish_connection_each(params, exchange, queue, routing_key, logs_exchange, body, seconds):
    """What the reference does per request, from one thread: connect, declare, publish with a
    confirm (and two log lines), close."""
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        conn = pika.BlockingConnection(params)
        channel = conn.channel()
        channel.exchange_declare(exchange, "direct", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key=routing_key)
        channel.exchange_declare(logs_exchange, "topic")
        channel.basic_publish(logs_exchange, "apibench.rest.debug", b"received")
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, body, props, mandatory=True)
        channel.basic_publish(logs_exchange, "apibench.rest.info", b"queued")
        conn.close()
        n += 1
    elapsed = time.perf_counter() - t0
    return {"client": f"pika {pika.__version__} BlockingConnection, a new connection per message "
                      "(declare x3, bind, 2 log lines, confirmed publish, close)",
            "messages_per_s": round(n / elapsed, 1), "confirmed": n, "seconds": round(elapsed, 2)}


# --- HTTP

def run_wrk(wrk, script, url, concurrency, seconds, method, body_file=None, content_type=None):
    threads = max(1, min(concurrency, os.cpu_count() or 1))
    env = dict(os.environ, APIBENCH_METHOD=method, APIBENCH_BODY=body_file or "",
               APIBENCH_CONTENT_TYPE=content_type or "")
    cmd = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", script, url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((l for l in out.stdout.splitlines() if l.startswith("APIBENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r = json.loads(line[len("APIBENCH "):])
    errors = sum(r["errors"].values())
    lat = r["latency_us"]
    return {
        "concurrency": concurrency, "wrk_threads": threads,
        "requests": r["requests"], "seconds": round(r["duration_us"] / 1e6, 2),
        "requests_per_s": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": round(lat["p50"] / 1000, 2), "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2), "max_ms": round(lat["max"] / 1000, 2),
        "mean_ms": round(lat["mean"] / 1000, 2), "errors": errors, "error_kinds": r["errors"],
    }


def tcp_states():
    """Counts of loopback TCP sockets by state (TIME_WAIT piles up with connection churn)."""
    names = {"01": "ESTABLISHED", "06": "TIME_WAIT"}
    counts = collections.Counter()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    counts[names.get(line.split()[3], "other")] += 1
        except OSError:
            pass
    return dict(counts)

