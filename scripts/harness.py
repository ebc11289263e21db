"""What the Python programs that drive real `facerec worker` processes share:
scripts/soak.py (mixed load with faults) and benches/run_benchmarks.py (benchmarks).

Layout:
- paths: `ROOT`, `TARGET`, `FACEREC`, `IMAGES`, `SAMPLES`
- processes: `log`, `run`, `free_port`, `wait_for`, `git_commit`, `cpu_model`
- RabbitMQ (pika on 127.0.0.1, guest): `rabbitmqctl`, `queue_counts`, `declare_work_queue`,
  `Producer`, `delete_queue`, `drain_dead_letters`
- Redis: `RedisServer` (a redis-server of one's own, to crash and freeze)
- the worker: `queue_flags`, `Worker` (/readyz, /metrics, RSS from /proc), `parse_metrics`,
  `metric_value`
- checking: `brute_force_matches` (the match relation db 4 must hold, from db 3)

Needs pika, redis and numpy (the venv of scripts/python-env.sh).
"""
import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import numpy as np
import pika
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where cargo puts its output: CARGO_TARGET_DIR when set (as cargo itself reads it).
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
FACEREC = os.path.join(TARGET, "release/facerec")
IMAGES = os.environ.get("FACEREC_IMAGES", os.path.expanduser("~/.cache/facerec/images"))
# face_recognition's sample images (scripts/setup.sh puts them in IMAGES).
SAMPLES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png",
           "obama_partial_face.jpg", "obama_partial_face2.jpg"]
# The header a dead-lettered message carries its reason in (src/adapters/amqp/mod.rs).
REASON_HEADER = "x-facerec-reason"
ATTEMPT_HEADER = "x-facerec-attempt"


# --- processes ---------------------------------------------------------------------------

def log(msg):
    """A timestamped progress line on stderr."""
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def run(cmd, env=None):
    """Runs `cmd` in the repository (logged first) and returns its stdout; on failure shows
    the end of its stderr and raises."""
    log("$ " + " ".join(cmd))
    done = subprocess.run(cmd, text=True, capture_output=True, cwd=ROOT, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        done.check_returncode()
    return done.stdout


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=3600, every=0.05):
    """Calls `check` every `every` s until it is true; exits after `timeout` s."""
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def git_commit():
    """The short hash of the repository's HEAD."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def cpu_model():
    """This machine's CPU model name, from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")


# --- RabbitMQ ----------------------------------------------------------------------------

def connect(**params):
    """A blocking pika connection to the machine's RabbitMQ (127.0.0.1, guest)."""
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", **params))


def rabbitmqctl(*args):
    """Runs `rabbitmqctl ARGS` and returns its stdout."""
    return subprocess.run(["rabbitmqctl", *args], check=True, text=True, capture_output=True).stdout


def queue_counts(queue):
    """(ready, unacknowledged) messages of `queue`, from the broker; (0, 0) if it is absent."""
    for line in rabbitmqctl("list_queues", "-q", "name", "messages_ready", "messages_unacknowledged").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    return 0, 0


def declare_work_queue(channel, name):
    """Declares what a worker with `queue_flags(name)` consumes: a durable direct exchange
    and a durable queue, both `name`, bound with key `name`."""
    channel.exchange_declare(name, "direct", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, routing_key=name)


def delete_queue(name):
    """Deletes the work queue `name`, its dead-letter queue `name.dead` and exchange `name`."""
    conn = connect()
    ch = conn.channel()
    for q in (name, name + ".dead"):
        ch.queue_delete(q)
    ch.exchange_delete(name)
    conn.close()


def drain_dead_letters(queue, attempts=None):
    """message id -> reason, for everything in the dead-letter queue `queue` (consumed);
    with a dict `attempts`, also message id -> highest attempt header seen."""
    conn = connect()
    ch = conn.channel()
    found = {}
    while True:
        method, props, _ = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        found.setdefault(props.message_id, (props.headers or {}).get(REASON_HEADER, "<no reason>"))
        if attempts is not None:
            attempt = int((props.headers or {}).get(ATTEMPT_HEADER, 0) or 0)
            attempts[props.message_id] = max(attempt, attempts.get(props.message_id, 0))
    conn.close()
    return found


class Producer:
    """Publishes persistent messages to `exchange` with publisher confirms, retrying through
    broker outages until `stop` is set. At least once: a message whose confirm was lost is
    published again (each gets a message id, so duplicates can be told apart)."""

    def __init__(self, exchange, routing_key, stop=None, declare=False):
        self.exchange, self.routing_key = exchange, routing_key
        self.stop = stop or threading.Event()
        self.declare = declare  # declare_work_queue(exchange) on every connect
        self.retries = 0  # publishes repeated after an error
        self.conn = self.channel = None

    def connect(self):
        while not self.stop.is_set():
            try:
                self.conn = connect(heartbeat=30)
                self.channel = self.conn.channel()
                if self.declare:
                    declare_work_queue(self.channel, self.exchange)
                self.channel.confirm_delivery()
                return
            except pika.exceptions.AMQPError:
                time.sleep(1)

    def send(self, body, headers=None):
        """Publishes `body` and returns its message id once confirmed; None if stopped first."""
        msg_id = str(uuid.uuid4())
        props = pika.BasicProperties(delivery_mode=2, message_id=msg_id, headers=headers)
        while True:
            try:
                if self.channel is None:
                    self.connect()
                    if self.channel is None:  # stopped while the broker was down
                        return None
                self.channel.basic_publish(self.exchange, self.routing_key, body, props, mandatory=True)
                return msg_id
            except (pika.exceptions.AMQPError, OSError) as e:
                self.retries += 1
                log(f"publish failed ({type(e).__name__}), publishing again")
                self.close()
                time.sleep(1)

    def close(self):
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:
            pass
        self.conn = self.channel = None


# --- Redis -------------------------------------------------------------------------------

class RedisServer:
    """A redis-server of one's own on a free port, fsyncing every write to its append-only
    file in `workdir`, so it can be crashed and restarted without touching the machine's."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = workdir
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--dir", self.dir, "--appendonly", "yes",
                                      "--appendfsync", "always", "--save", "", "--bind", "127.0.0.1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                if redis.Redis(port=self.port).ping():
                    return
            except redis.exceptions.RedisError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def crash(self, down=2.0):
        """SIGKILL, then a restart `down` s later (from the append-only file)."""
        self.proc.kill()
        self.proc.wait()
        time.sleep(down)
        self.start()

    def freeze(self, seconds):
        """SIGSTOP for `seconds`, then SIGCONT."""
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.proc.send_signal(signal.SIGCONT)

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def db(self, n):
        return redis.Redis(port=self.port, db=n)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# --- the worker --------------------------------------------------------------------------

def queue_flags(name):
    """`facerec worker` flags for exchange, queue and routing key `name` and dead-letter
    queue `name.dead`."""
    return ["--exchange", name, "--queue", name, "--routing-key", name, "--dead-letter-queue", name + ".dead"]


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(value):
    return re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), value)


def parse_metrics(text):
    """Samples of a Prometheus or OpenMetrics text body: {(name, ((label, value), ...)): value}
    with the labels sorted, so their order in the line does not matter. Comments (`# HELP`,
    `# TYPE`, `# EOF`), timestamps and exemplars are skipped, and so are lines that do not
    parse."""
    samples = {}
    for line in text.splitlines():
        m = _NAME.match(line)  # comments and blank lines do not match
        if not m:
            continue
        name, pos, labels = m.group(0), m.end(), {}
        if line.startswith("{", pos):
            pos, end = pos + 1, None
            while True:
                while line.startswith(" ", pos):
                    pos += 1
                if line.startswith("}", pos):
                    end = pos + 1
                    break
                label = _LABEL.match(line, pos)
                if not label:
                    break
                labels[label.group(1)] = _unescape(label.group(2))
                pos = label.end()
            if end is None:
                continue
            pos = end
        fields = line[pos:].split()
        try:
            samples[(name, tuple(sorted(labels.items())))] = float(fields[0])
        except (IndexError, ValueError):
            continue
    return samples


def metric_value(samples, name, default=0.0, **labels):
    """The value of sample `name` with exactly `labels` in `parse_metrics` output."""
    return samples.get((name, tuple(sorted(labels.items()))), default)


class Worker:
    """One `facerec worker` process with `flags` (plus its HTTP address on a free port,
    or `http_port`), RUST_LOG=info and stderr to the open file `log`. Returns once /readyz
    answers 200; exits if the process ends first or `ready_timeout` s pass."""

    def __init__(self, flags, log, binary=FACEREC, http_port=None, label="worker", ready_timeout=600):
        self.http_port = http_port or free_port()
        self.label = label
        args = [binary, "worker", *flags, "--http-addr", f"127.0.0.1:{self.http_port}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "RUST_LOG": "info"})
        self.metrics = {}  # the last successful scrape, parse_metrics form
        self.peak_rss_mb = 0.0
        deadline = time.time() + ready_timeout
        while not self.ready():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{label} did not become ready (exit {self.proc.poll()})")
            time.sleep(0.05)  # ready_at starts the benchmarks' clock: keep it close
        self.ready_at = time.time()

    def get(self, path):
        """(status, body) of GET `path`; (0, "") when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except Exception:
            return 0, ""

    def ready(self):
        return self.get("/readyz")[0] == 200

    def scrape(self):
        """Reads /metrics into `self.metrics` (kept as it was when the worker does not answer)."""
        status, text = self.get("/metrics")
        if status == 200:
            self.metrics = parse_metrics(text)
        return self.metrics

    def metric(self, name, **labels):
        """One sample's value, freshly scraped (0 if absent)."""
        return metric_value(self.scrape(), name, **labels)

    def rss_mb(self):
        """Resident memory now in MB (None once the process is gone); tracks the peak."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) / 1024
                        self.peak_rss_mb = max(self.peak_rss_mb, rss)
                        return rss
        except (FileNotFoundError, ProcessLookupError):
            pass
        return None

    def exited(self):
        """The exit code if the process has ended, else None."""
        return self.proc.poll()

    def kill9(self):
        """SIGKILL (after a last scrape)."""
        self.scrape()
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout=120):
        """SIGTERM (after a last scrape); returns (exit code, seconds it took to exit)."""
        self.scrape()
        started = time.time()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.time() - started


# --- checking ----------------------------------------------------------------------------

def brute_force_matches(db3, tolerance=0.6):
    """hash -> set of hashes with a face within `tolerance` of one of its faces, computed
    from every encoding in db 3 (`db3`: a redis client on db 3, no key prefix): what db 4
    must hold."""
    hashes, rows, owner = [], [], []
    for key in db3.scan_iter(count=1000):
        if db3.type(key) != b"set":
            continue  # another program's key of another type: not an image
        hashes.append(key.decode())
        for enc in db3.smembers(key):
            rows.append(np.frombuffer(enc, "<f8"))
            owner.append(len(hashes) - 1)
    rows, owner = np.array(rows), np.array(owner)
    expected = {h: set() for h in hashes}
    for i in range(len(rows)):
        d = np.linalg.norm(rows - rows[i], axis=1)
        for j in np.nonzero(d <= tolerance)[0]:
            if owner[j] != owner[i]:
                expected[hashes[owner[i]]].add(hashes[owner[j]])
    return expected
