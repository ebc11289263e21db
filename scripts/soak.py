#!/usr/bin/env python3
"""Soak: mixed load through a real dlib worker, with a fault injected every minute.

Run through `scripts/soak.sh [--minutes 30]` (it installs and builds what is missing). The
worker runs with its default retry settings against the machine's RabbitMQ (its own queue
names) and a Redis server of its own with an append-only file (so Redis can be crashed and
restarted without touching the machine's). Load: new images (the face_recognition samples
under fresh hashes), new names for already-sent hashes, and poison messages. Faults, in turn:
worker SIGKILL (restarted), Redis crash (SIGKILL, restarted after 2 s), RabbitMQ
`stop_app`/`start_app`, Redis frozen (SIGSTOP) for 10 s, worker SIGTERM (graceful, restarted).

Afterwards it checks, from Redis and the dead-letter queue, that every valid message's name
is stored (db 1, db 2), that db 4 equals a brute-force comparison of every stored encoding
(db 3), that every poison message was dead-lettered with a reason and no valid one was, and
that nothing is left in the queue. It writes docs/SOAK.md and exits 1 if anything was lost.
"""
import argparse
import base64
import collections
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import numpy as np
import pika
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACEREC = os.path.join(ROOT, "target/release/facerec")
IMAGES = os.environ.get("FACEREC_IMAGES", os.path.expanduser("~/.cache/facerec/images"))
SAMPLES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png",
           "obama_partial_face.jpg", "obama_partial_face2.jpg"]
FAULTS = ["worker SIGKILL", "Redis crash", "RabbitMQ stop_app/start_app", "Redis frozen 10 s", "worker SIGTERM"]
NAME = f"soak-{os.getpid()}"
DEAD = NAME + ".dead"


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", *args], check=True, text=True, capture_output=True).stdout


def queue_counts():
    """(ready, unacked) of the work queue, from the broker."""
    for line in rabbitmqctl("list_queues", "-q", "name", "messages_ready", "messages_unacknowledged").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == NAME:
            return int(parts[1]), int(parts[2])
    return 0, 0


class RedisServer:
    """A redis-server of our own, fsyncing every write to its append-only file."""

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

    def crash(self):
        self.proc.kill()
        self.proc.wait()
        time.sleep(2)
        self.start()

    def freeze(self, seconds):
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.proc.send_signal(signal.SIGCONT)

    def db(self, n):
        return redis.Redis(port=self.port, db=n)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Worker:
    """One life of `facerec worker`, with its metrics scraped while it runs."""

    binary = FACEREC  # replaced by a private copy at start, so a rebuild cannot change it mid-run

    def __init__(self, redis_port, http_port, logfile, life):
        self.http_port = http_port
        self.life = life
        args = [self.binary, "worker", "--exchange", NAME, "--queue", NAME, "--routing-key", NAME,
                "--dead-letter-queue", DEAD, "--redis-url", f"redis://127.0.0.1:{redis_port}",
                "--http-addr", f"127.0.0.1:{http_port}", "--hostname", NAME]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=logfile, env={**os.environ, "RUST_LOG": "info"})
        self.metrics = {}
        self.peak_rss_mb = 0.0
        deadline = time.time() + 300
        while not self.ready():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"worker life {life} did not become ready (exit {self.proc.poll()})")
            time.sleep(0.1)

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=1) as r:
                return r.status, r.read().decode()
        except Exception:
            return 0, ""

    def ready(self):
        return self.get("/readyz")[0] == 200

    def scrape(self):
        status, text = self.get("/metrics")
        if status == 200:
            for m in re.finditer(r"^(facerec_(?:messages_total\{outcome=\"\w+\"\}|redeliveries_total|dead_letters_total|"
                                 r"reconnects_total|index_faces)) (\S+)$", text, re.M):
                self.metrics[m.group(1)] = float(m.group(2))

    def rss_mb(self):
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                    self.peak_rss_mb = max(self.peak_rss_mb, rss)
                    return rss
        except FileNotFoundError:
            pass
        return None

    def kill9(self):
        self.scrape()
        self.proc.kill()
        self.proc.wait()

    def terminate(self):
        self.scrape()
        started = time.time()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        return code, time.time() - started


class Publisher(threading.Thread):
    """Publishes the mixed load with publisher confirms, retrying through broker outages."""

    def __init__(self, rate, stop):
        super().__init__(daemon=True)
        self.rate = rate
        self.stop_event = stop
        self.images = {s: open(os.path.join(IMAGES, s), "rb").read() for s in SAMPLES}
        self.expected = {}  # hash -> set of names
        self.sample_of = {}  # hash -> sample file
        self.valid_ids = set()
        self.poison = {}  # message id -> kind
        self.counts = collections.Counter()
        self.publish_retries = 0
        self.rng = random.Random(20261129)
        self.conn = self.channel = None

    def connect(self):
        while not self.stop_event.is_set():
            try:
                self.conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", heartbeat=30))
                self.channel = self.conn.channel()
                self.channel.confirm_delivery()
                return
            except pika.exceptions.AMQPError:
                time.sleep(1)

    def send(self, body, headers=None):
        msg_id = str(uuid.uuid4())
        props = pika.BasicProperties(delivery_mode=2, message_id=msg_id, headers=headers)
        while True:
            try:
                if self.channel is None:
                    self.connect()
                    if self.channel is None:  # stopped while the broker was down
                        return None
                self.channel.basic_publish(NAME, NAME, body, props, mandatory=True)
                return msg_id
            except (pika.exceptions.AMQPError, OSError):
                # Not confirmed: publish again (at least once; a duplicate is harmless and
                # counted by message id).
                self.publish_retries += 1
                try:
                    self.conn.close()
                except Exception:
                    pass
                self.channel = None
                time.sleep(1)

    def one(self, n):
        roll = self.rng.random()
        if roll < 0.15:
            kind = self.rng.choice(["random bytes", "JSON without image", "invalid base64", "truncated JPEG"])
            if kind == "random bytes":
                msg_id = self.send(self.rng.randbytes(2000), {"name": f"noise-{n}"})
            elif kind == "JSON without image":
                msg_id = self.send(json.dumps({"hash": f"p{n}", "name": f"p{n}.jpg"}).encode())
            elif kind == "invalid base64":
                msg_id = self.send(json.dumps({"hash": f"p{n}", "name": f"p{n}.jpg", "image": "%%%not base64"}).encode())
            else:
                msg_id = self.send(self.images["obama.jpg"][:5000], {"name": f"cut-{n}.jpg", "hash": f"cut-{n}"})
            if msg_id:
                self.poison[msg_id] = kind
                self.counts["poison"] += 1
            return
        if roll < 0.45 and self.expected:
            image_hash = self.rng.choice(sorted(self.expected))
            kind, name = "new name for a sent hash", f"again-{n}.jpg"
        else:
            sample = self.rng.choice(SAMPLES)
            image_hash, kind, name = f"soak-{n:06d}-{sample.split('.')[0]}", "new image", f"img-{n}-{sample}"
            self.sample_of[image_hash] = sample
        body = json.dumps({"hash": image_hash, "name": name,
                           "image": base64.b64encode(self.images[self.sample_of[image_hash]]).decode()}).encode()
        msg_id = self.send(body)
        if msg_id is None:
            return
        self.valid_ids.add(msg_id)
        self.expected.setdefault(image_hash, set()).add(name)
        self.counts[kind] += 1

    def run(self):
        self.connect()
        n = 0
        next_at = time.time()
        while not self.stop_event.is_set():
            self.one(n)
            n += 1
            next_at += 1.0 / self.rate
            time.sleep(max(0.0, next_at - time.time()))


def drain_dead_letters():
    """message id -> reason, for everything in the dead-letter queue (consumed)."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    ch = conn.channel()
    found = {}
    while True:
        method, props, _ = ch.basic_get(DEAD, auto_ack=True)
        if method is None:
            break
        found.setdefault(props.message_id, (props.headers or {}).get("x-facerec-reason", "<no reason>"))
    conn.close()
    return found


def brute_force_matches(db3, tolerance=0.6):
    hashes, rows, owner = [], [], []
    for key in db3.scan_iter(count=1000):
        h = key.decode()
        hashes.append(h)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=1.5, help="messages per second")
    ap.add_argument("--fault-every", type=float, default=60, help="seconds between faults")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/SOAK.md"))
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="facerec-soak-")
    Worker.binary = shutil.copy(FACEREC, os.path.join(workdir, "facerec"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    server = RedisServer(workdir)
    http_port = free_port()
    worker_log = open(os.path.join(workdir, "worker.log"), "w")
    lives = [Worker(server.port, http_port, worker_log, 0)]
    log(f"worker ready; Redis on {server.port}, logs in {workdir}; soaking {args.minutes} min at {args.rate} msg/s")

    stop = threading.Event()
    publisher = Publisher(args.rate, stop)
    publisher.start()
    samples = []  # (seconds, rss MB, stored images, ready, unacked, life)
    faults = collections.Counter()
    fault_notes = collections.defaultdict(list)
    started = time.time()
    next_fault, next_sample, fault_index = started + args.fault_every, started, 0

    def sample():
        w = lives[-1]
        w.scrape()
        rss = w.rss_mb()
        try:
            ready, unacked = queue_counts()
        except subprocess.CalledProcessError:
            ready, unacked = -1, -1
        try:
            stored = server.db(2).dbsize()
        except redis.exceptions.RedisError:
            stored = -1
        samples.append((time.time() - started, rss, stored, ready, unacked, w.life))

    while time.time() - started < args.minutes * 60:
        now = time.time()
        if now >= next_sample:
            sample()
            next_sample += 10
        if now >= next_fault:
            fault = FAULTS[fault_index % len(FAULTS)]
            fault_index += 1
            log(f"fault: {fault}")
            t0 = time.time()
            if fault == "worker SIGKILL":
                lives[-1].kill9()
                time.sleep(1)
                lives.append(Worker(server.port, http_port, worker_log, len(lives)))
                fault_notes[fault].append(f"back in {time.time() - t0:.1f} s")
            elif fault == "worker SIGTERM":
                code, secs = lives[-1].terminate()
                lives.append(Worker(server.port, http_port, worker_log, len(lives)))
                fault_notes[fault].append(f"exit {code} after {secs:.1f} s")
            elif fault == "Redis crash":
                server.crash()
            elif fault == "RabbitMQ stop_app/start_app":
                rabbitmqctl("stop_app")
                time.sleep(5)
                rabbitmqctl("start_app")
            else:
                server.freeze(10)
            if lives[-1].proc.poll() is not None:
                raise SystemExit(f"the worker exited after '{fault}' (code {lives[-1].proc.poll()})")
            faults[fault] += 1
            next_fault += args.fault_every
        time.sleep(0.2)

    stop.set()
    publisher.join(timeout=60)
    log(f"load stopped after {publisher.counts.total()} messages; waiting for the queue to drain")
    deadline = time.time() + 900
    while True:
        sample()
        ready, unacked = samples[-1][3], samples[-1][4]
        db2 = server.db(2)
        complete = all(set(n.decode() for n in db2.smembers(h)) >= names for h, names in publisher.expected.items())
        if ready == 0 and unacked == 0 and complete:
            break
        if time.time() > deadline:
            log("gave up waiting for the queue to drain")
            break
        time.sleep(5)
    code, secs = lives[-1].terminate()
    log(f"final worker exited {code} after {secs:.1f} s")

    # Verification.
    db1, db2, db3, db4 = (server.db(n) for n in (1, 2, 3, 4))
    dead = drain_dead_letters()
    problems = []
    for h, names in publisher.expected.items():
        stored = {n.decode() for n in db2.smembers(h)}
        if stored != names:
            problems.append(f"db2 {h}: missing {sorted(names - stored)[:3]}, extra {sorted(stored - names)[:3]}")
        for name in names:
            if (db1.get(name) or b"").decode() != h:
                problems.append(f"db1 {name} -> {db1.get(name)!r}, expected {h}")
        if db3.scard(h) < 1:
            problems.append(f"db3 {h}: no encodings")
    extra = {k.decode() for k in db2.scan_iter(count=1000)} - set(publisher.expected)
    if extra:
        problems.append(f"db2 holds {len(extra)} hashes never sent as valid: {sorted(extra)[:3]}")
    expected_matches = brute_force_matches(db3)
    match_pairs = sum(len(v) for v in expected_matches.values())
    for h, want in expected_matches.items():
        got = {m.decode() for m in db4.smembers(h)}
        if got != want:
            problems.append(f"db4 {h}: missing {len(want - got)}, extra {len(got - want)}")
    poison_missing = [i for i in publisher.poison if i not in dead]
    if poison_missing:
        problems.append(f"{len(poison_missing)} poison messages not dead-lettered")
    valid_dead = {i: r for i, r in dead.items() if i in publisher.valid_ids}
    if valid_dead:
        problems.append(f"{len(valid_dead)} valid messages dead-lettered: {list(valid_dead.values())[:3]}")
    ready, unacked = queue_counts()
    if ready or unacked:
        problems.append(f"left in the queue: {ready} ready, {unacked} unacknowledged")
    reasons = collections.Counter()
    for i, kind in publisher.poison.items():
        if i in dead:
            reason = re.sub(r"\(first bytes [^)]*\)", "(first bytes ...)", dead[i])
            reasons[(kind, re.sub(r"\d+", "N", reason)[:100])] += 1

    totals = collections.Counter()
    for w in lives:
        for k, v in w.metrics.items():
            if k != "facerec_index_faces":
                totals[k] += v
    write_report(args, commit, publisher, lives, samples, faults, fault_notes, totals, reasons, problems, match_pairs,
                 time.time() - started)
    rabbitmqctl("delete_queue", NAME)
    rabbitmqctl("delete_queue", DEAD)
    server.stop()
    for p in problems:
        log("PROBLEM: " + p)
    log(f"report written to {args.out}; {'nothing lost' if not problems else f'{len(problems)} problems'}")
    sys.exit(1 if problems else 0)


def write_report(args, commit, publisher, lives, samples, faults, fault_notes, totals, reasons, problems, match_pairs, elapsed):
    c = publisher.counts
    outcome = lambda o: int(totals.get(f'facerec_messages_total{{outcome="{o}"}}', 0))  # noqa: E731
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    out = [
        "# Soak run",
        "",
        f"`scripts/soak.sh --minutes {args.minutes:g} --rate {args.rate:g} --fault-every {args.fault_every:g}` (written by `scripts/soak.py`; not run in CI).",
        f"Machine: {cpu}, {os.cpu_count()} cores; commit {commit}; {datetime.date.today()}; {elapsed / 60:.1f} min in all "
        "(load, then draining the queue).",
        "",
        "One `facerec worker` (dlib, default settings: concurrency = cores, 5 attempts, 1 s back-off doubling) on the "
        f"machine's RabbitMQ and a Redis of its own (append-only file, fsync always). A fault every {args.fault_every:g} s, in turn.",
        "",
        "## Result",
        "| | count |",
        "|---|---|",
        f"| messages published (confirmed) | {c.total()} |",
        f"| - new images (the 7 samples under fresh hashes) | {c['new image']} |",
        f"| - new names for hashes already sent | {c['new name for a sent hash']} |",
        f"| - poison (random bytes, JSON without image, invalid base64, truncated JPEG) | {c['poison']} |",
        f"| publishes retried by the producer (broker down) | {publisher.publish_retries} |",
        f"| worker lives (restarts after SIGKILL/SIGTERM) | {len(lives)} |",
        f"| outcomes counted by the workers: stored / name added / dead-lettered / retried | "
        f"{outcome('stored')} / {outcome('name_added')} / {outcome('dead_letter')} / {outcome('retry')} |",
        f"| redeliveries seen by the workers (after a kill or a broker restart) | {int(totals.get('facerec_redeliveries_total', 0))} |",
        f"| RabbitMQ reconnects | {int(totals.get('facerec_reconnects_total', 0))} |",
        f"| images in Redis at the end / matching pairs (db 4, checked against brute force over db 3) | "
        f"{len(publisher.expected)} / {match_pairs} |",
        f"| lost or duplicated | **{'nothing' if not problems else f'{len(problems)} problems (below)'}** |",
        "",
        "Worker counters are read from `/metrics` every 10 s and just before each stop, so a SIGKILLed life's "
        "last seconds are missing from them; the Redis and dead-letter checks are exact.",
        "",
        "## Faults",
        "| fault | times | what happened |",
        "|---|---|---|",
    ]
    for f in FAULTS:
        notes = fault_notes.get(f)
        what = {"worker SIGKILL": "restarted 1 s later; its unacked messages were redelivered",
                "Redis crash": "down 2 s; commands failed as transient, messages retried with back-off",
                "RabbitMQ stop_app/start_app": "broker down 5 s; the worker reconnected, the producer re-published",
                "Redis frozen 10 s": "commands timed out or waited; messages retried within the budget",
                "worker SIGTERM": "graceful: finished the images in flight, then restarted"}[f]
        if notes:
            what += " (" + ", ".join(sorted(set(notes))[:4]) + ")"
        out.append(f"| {f} | {faults[f]} | {what} |")
    out += ["", "## Dead letters", "| poison kind | reason (digits as N) | count |", "|---|---|---|"]
    for (kind, reason), n in sorted(reasons.items()):
        out.append(f"| {kind} | `` {reason} `` | {n} |")
    out += ["", "## Worker RSS over time (one row a minute)", "| minute | life | RSS MB | images stored | queue ready / unacked |",
            "|---|---|---|---|---|"]
    shown = -1
    for t, rss, stored, ready, unacked, life in samples:
        if int(t // 60) > shown and rss is not None:
            shown = int(t // 60)
            out.append(f"| {t / 60:.0f} | {life} | {rss:.0f} | {stored} | {ready} / {unacked} |")
    rss_values = [s[1] for s in samples if s[1] is not None]
    if rss_values:
        out += ["", f"RSS min {min(rss_values):.0f} MB, max {max(rss_values):.0f} MB "
                    f"(peak of each life: {', '.join(f'{w.peak_rss_mb:.0f}' for w in lives)} MB)."]
    if problems:
        out += ["", "## Problems"] + [f"- {p}" for p in problems[:50]]
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
