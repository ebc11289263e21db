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
Shared helpers (worker process, producer, own Redis, checks) come from scripts/harness.py.
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
import subprocess
import sys
import tempfile
import threading
import time

import redis

from harness import (FACEREC, IMAGES, ROOT, SAMPLES, Producer, RedisServer, Worker, brute_force_matches,
                     cpu_model, delete_queue, drain_dead_letters, free_port, git_commit, log, metric_value,
                     queue_counts, queue_flags, rabbitmqctl)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus"))
import bombs  # noqa: E402  (the attack inputs of the bad-input corpus)

# Keys of another program sharing the databases, of the wrong types: the worker must skip
# them (start-up load, change-log reads) and leave them untouched.
NEIGHBOUR = {1: ("neighbour-name.jpg", "sadd"), 2: ("neighbour-hash", "set"), 3: ("neighbour-hash", "set"),
             4: ("neighbour-hash", "set")}
FAULTS = ["worker SIGKILL", "Redis crash", "RabbitMQ stop_app/start_app", "Redis frozen 10 s", "worker SIGTERM"]
NAME = f"soak-{os.getpid()}"
DEAD = NAME + ".dead"
MAX_ATTEMPTS = 5  # the worker's default --max-attempts


def start_worker(binary, server, http_port, logfile, life):
    """One life of the soaked worker: default retry settings, its own queue names and the
    soak's Redis, always on the same HTTP port."""
    w = Worker([*queue_flags(NAME), "--redis-url", server.url(), "--hostname", NAME], logfile, binary=binary,
               http_port=http_port, label=f"worker life {life}", ready_timeout=300)
    w.life = life
    return w


class Publisher(threading.Thread):
    """Publishes the mixed load at `rate` messages per second until `stop` is set, recording
    what Redis and the dead-letter queue must hold afterwards."""

    def __init__(self, rate, stop):
        super().__init__(daemon=True)
        self.rate = rate
        self.stop_event = stop
        self.producer = Producer(NAME, NAME, stop=stop)
        self.images = {}
        for s in SAMPLES:
            with open(os.path.join(IMAGES, s), "rb") as f:
                self.images[s] = f.read()
        self.expected = {}  # hash -> set of names
        self.sample_of = {}  # hash -> sample file
        self.valid_ids = set()
        self.poison = {}  # message id -> kind
        self.counts = collections.Counter()
        self.rng = random.Random(20261129)
        # The attacks: ~10 s of CPU in 0.3 MB (refused for its scans), and a valid message
        # padded to 20 MB with an unused array (stored, in a few MB of memory).
        self.scan_bomb = bombs.progressive_scan_bomb(6000, 6000, scans=4000)

    def send(self, body, headers=None):
        return self.producer.send(body, headers)

    def one(self, n):
        roll = self.rng.random()
        if roll < 0.01:
            msg_id = self.send(self.scan_bomb, {"name": f"bomb-{n}.jpg", "hash": f"bomb-{n}"})
            if msg_id:
                self.poison[msg_id] = "progressive JPEG scan bomb"
                self.counts["poison"] += 1
            return
        if roll < 0.02:
            sample = self.rng.choice(SAMPLES)
            image_hash, name = f"soak-{n:06d}-padded", f"padded-{n}-{sample}"
            self.sample_of[image_hash] = sample
            msg_id = self.send(bombs.padded_json(self.images[sample], name, 10_000_000, image_hash))
            if msg_id is not None:
                self.valid_ids.add(msg_id)
                self.expected.setdefault(image_hash, set()).add(name)
                self.counts["padded JSON (20 MB)"] += 1
            return
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
        n = 0
        next_at = time.time()
        while not self.stop_event.is_set():
            self.one(n)
            n += 1
            next_at += 1.0 / self.rate
            time.sleep(max(0.0, next_at - time.time()))
        self.producer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=1.5, help="messages per second")
    ap.add_argument("--fault-every", type=float, default=60, help="seconds between faults")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/SOAK.md"))
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="comma-separated faults to cycle through (default: all; leave out the RabbitMQ "
                         "restart when other programs use the broker)")
    args = ap.parse_args()
    faults_cycle = [f for f in args.faults.split(",") if f]
    unknown = set(faults_cycle) - set(FAULTS)
    if unknown or not faults_cycle:
        ap.error(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")

    workdir = tempfile.mkdtemp(prefix="facerec-soak-")
    # A private copy, so a rebuild cannot change the binary mid-run.
    binary = shutil.copy(FACEREC, os.path.join(workdir, "facerec"))
    commit = git_commit()
    server = RedisServer(workdir)
    for db, (key, kind) in NEIGHBOUR.items():
        if kind == "sadd":
            server.db(db).sadd(key, "not a hash")
        else:
            server.db(db).set(key, "another program's string")
    http_port = free_port()
    worker_log = open(os.path.join(workdir, "worker.log"), "w")
    lives = [start_worker(binary, server, http_port, worker_log, 0)]
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
            ready, unacked = queue_counts(NAME)
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
            fault = faults_cycle[fault_index % len(faults_cycle)]
            fault_index += 1
            log(f"fault: {fault}")
            t0 = time.time()
            if fault == "worker SIGKILL":
                lives[-1].kill9()
                time.sleep(1)
                lives.append(start_worker(binary, server, http_port, worker_log, len(lives)))
                fault_notes[fault].append(f"back in {time.time() - t0:.1f} s")
            elif fault == "worker SIGTERM":
                code, secs = lives[-1].terminate()
                lives.append(start_worker(binary, server, http_port, worker_log, len(lives)))
                fault_notes[fault].append(f"exit {code} after {secs:.1f} s")
            elif fault == "Redis crash":
                server.crash()
            elif fault == "RabbitMQ stop_app/start_app":
                rabbitmqctl("stop_app")
                time.sleep(5)
                rabbitmqctl("start_app")
            else:
                server.freeze(10)
            if lives[-1].exited() is not None:
                raise SystemExit(f"the worker exited after '{fault}' (code {lives[-1].exited()})")
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
    dead_attempts = {}
    dead = drain_dead_letters(DEAD, dead_attempts)
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
    for db, (key, kind) in NEIGHBOUR.items():
        want = b"set" if kind == "sadd" else b"string"
        if server.db(db).type(key) != want:
            problems.append(f"the neighbour's db {db} key {key} was changed: now a {server.db(db).type(key)!r}")
    neighbour = {key for key, _ in NEIGHBOUR.values()}
    extra = {k.decode() for k in db2.scan_iter(count=1000)} - set(publisher.expected) - neighbour
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
    over_limit = {i: a for i, a in dead_attempts.items() if a > MAX_ATTEMPTS}
    if over_limit:
        problems.append(f"{len(over_limit)} poison messages processed more than {MAX_ATTEMPTS} times: "
                        f"{sorted(over_limit.values())[-3:]}")
    valid_dead = {i: r for i, r in dead.items() if i in publisher.valid_ids}
    if valid_dead:
        problems.append(f"{len(valid_dead)} valid messages dead-lettered: {list(valid_dead.values())[:3]}")
    ready, unacked = queue_counts(NAME)
    if ready or unacked:
        problems.append(f"left in the queue: {ready} ready, {unacked} unacknowledged")
    # The schema's invariants over everything stored (issue 16): the neighbour's keys are
    # another program's, not the schema's, so they go first.
    for db, (key, _) in NEIGHBOUR.items():
        server.db(db).delete(key)
    fsck = subprocess.run([binary, "fsck", "--redis-url", f"redis://127.0.0.1:{server.port}"], capture_output=True,
                          text=True, timeout=1800)
    fsck_summary = (fsck.stdout.strip().splitlines() or ["(no output)"])[-1]
    log(f"facerec fsck: exit {fsck.returncode}: {fsck_summary}")
    if fsck.returncode != 0:
        problems.append(f"facerec fsck found damage: {fsck.stdout.strip()[:500]} {fsck.stderr.strip()[:300]}")
    reasons = collections.Counter()
    for i, kind in publisher.poison.items():
        if i in dead:
            reason = re.sub(r"\(first bytes [^)]*\)", "(first bytes ...)", dead[i])
            reasons[(kind, re.sub(r"\d+", "N", reason)[:100])] += 1

    totals = collections.Counter()  # the counters, summed over the worker's lives
    for w in lives:
        for key, v in w.metrics.items():
            if key[0].endswith("_total"):
                totals[key] += v
    write_report(args, commit, publisher, lives, samples, faults, fault_notes, totals, reasons, problems, match_pairs,
                 time.time() - started, fsck_summary, dead_attempts)
    delete_queue(NAME)
    server.stop()
    for p in problems:
        log("PROBLEM: " + p)
    log(f"report written to {args.out}; {'nothing lost' if not problems else f'{len(problems)} problems'}")
    sys.exit(1 if problems else 0)


def write_report(args, commit, publisher, lives, samples, faults, fault_notes, totals, reasons, problems, match_pairs, elapsed,
                 fsck_summary, dead_attempts):
    c = publisher.counts
    outcome = lambda o: int(metric_value(totals, "facerec_messages_total", outcome=o))  # noqa: E731
    out = [
        "# Soak run",
        "",
        f"`scripts/soak.sh --minutes {args.minutes:g} --rate {args.rate:g} --fault-every {args.fault_every:g}"
        + (f" --faults \"{args.faults}\"" if args.faults != ",".join(FAULTS) else "")
        + "` (written by `scripts/soak.py`; not run in CI).",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; commit {commit}; {datetime.date.today()}; {elapsed / 60:.1f} min in all "
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
        f"| publishes retried by the producer (broker down) | {publisher.producer.retries} |",
        f"| worker lives (restarts after SIGKILL/SIGTERM) | {len(lives)} |",
        f"| outcomes counted by the workers: stored / name added / dead-lettered / retried | "
        f"{outcome('stored')} / {outcome('name_added')} / {outcome('dead_letter')} / {outcome('retry')} |",
        f"| redeliveries seen by the workers (after a kill or a broker restart) | {int(metric_value(totals, 'facerec_redeliveries_total'))} |",
        f"| RabbitMQ reconnects | {int(metric_value(totals, 'facerec_reconnects_total'))} |",
        f"| images in Redis at the end / matching pairs (db 4, checked against brute force over db 3) | "
        f"{len(publisher.expected)} / {match_pairs} |",
        f"| - padded JSON (a valid image in a 20 MB message) | {c['padded JSON (20 MB)']} |",
        f"| highest attempt count of a dead letter (limit {MAX_ATTEMPTS}) | {max(dead_attempts.values(), default=0)} |",
        f"| `facerec fsck` afterwards (the neighbour's keys removed first) | {fsck_summary} |",
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
