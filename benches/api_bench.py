#!/usr/bin/env python3
"""The REST API benchmark of issue 13: the course's design (benches/reference/rest_server.py:
Flask + pika with a connection per request + redis-py, under gunicorn with 2 sync workers)
against `facerec api`, side by side in ONE run, so that both see the same machine.

Starts both servers on free loopback ports, each with names of its own (exchange, queue,
dead-letter queue, logs exchange, Redis key prefix `apibench-<pid>-<server>`), seeds a hash
with matches under both prefixes, then runs --repeat interleaved rounds. In each round, for
every concurrency and route (`POST /scan/image/apibench.jpg` with a ~60 KB JPEG, `GET
/match/<hash>`), wrk drives one server then the other for --duration seconds (the order
alternates between rounds), then one client publishes the same persistent message to a queue
of its own with pipelined confirms (the broker's ceiling). Per cell the median over the
rounds is reported, with every round's figure, the CPU each server used per request, and
the CPU everything else on the machine used meanwhile. Memory: `facerec api`'s VmHWM from
/proc at the end (its lifetime peak), and the sampled peak RSS/PSS of gunicorn's master and
workers. The servers' queues have no consumer: they are purged twice a second (the purged
count checks that every 200 was really published). Everything declared or written under the
run's names is deleted at the end; nothing else is touched (RabbitMQ and Redis are shared).

    benches/api_bench.sh                 # makes the venv, installs wrk, builds nothing
    benches/api_bench.sh --duration 5 --repeat 1    # a quick look

Output: progress on stderr; the JSON result and the markdown table on stdout (--json,
--markdown also write them to files).
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import harness  # noqa: E402
import pika  # noqa: E402
import redis  # noqa: E402
import api_bench_tools as tools  # noqa: E402
from harness import log  # noqa: E402

ROUTES = {"scan_image": "POST /scan/image/{filename}", "match": "GET /match/{hash}"}
# Issue 13's targets at concurrency 32 (facerec api against the reference).
TARGETS = {"match_rps_ratio": 20, "scan_image_rps_ratio": 10, "p99_ratio": 10, "rss_mb": 50}


class Server:
    """One server under test, started with names of its own."""

    def __init__(self, key, label, tag):
        self.key, self.label = key, label
        self.name = f"{tag}-{key}"
        self.exchange, self.queue = f"{self.name}.x", f"{self.name}.q"
        self.dead_letter_queue, self.logs_exchange = f"{self.name}.q.dead", f"{self.name}.logs"
        self.prefix = f"{self.name}:"
        self.port = harness.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def command(self, args):
        if self.key == "reference":
            gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
            return [gunicorn, "-c", os.path.join(ROOT, "benches/reference/gunicorn.conf.py")]
        return [args.facerec, "api", "--addr", f"127.0.0.1:{self.port}",
                "--rabbitmq-host", "127.0.0.1", "--redis-host", "127.0.0.1",
                "--exchange", self.exchange, "--queue", self.queue, "--routing-key", self.queue,
                "--dead-letter-queue", self.dead_letter_queue, "--logs-exchange", self.logs_exchange,
                "--redis-key-prefix", self.prefix, "--hostname", "apibench"]

    def ready_path(self):
        return "/" if self.key == "reference" else "/readyz"

    def env(self):
        env = dict(os.environ, REDIS_HOST="127.0.0.1", RABBITMQ_HOST="127.0.0.1", FACEREC_HOSTNAME="apibench")
        if self.key == "reference":
            env.update(FACEREC_REDIS_KEY_PREFIX=self.prefix, FACEREC_EXCHANGE=self.exchange,
                       FACEREC_QUEUE=self.queue, FACEREC_ROUTING_KEY=self.queue,
                       FACEREC_LOGS_EXCHANGE=self.logs_exchange, FACEREC_REST_BIND=f"127.0.0.1:{self.port}",
                       FACEREC_REST_WORKERS="2")
        return env

    def start(self, args, workdir):
        logfile = open(os.path.join(workdir, f"{self.key}.log"), "wb")
        log(f"starting {self.label} on {self.base}")
        self.proc = subprocess.Popen(self.command(args), env=self.env(), stdout=logfile, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        ready = self.ready_path()

        def up():
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.label} exited ({self.proc.returncode}): see {logfile.name}")
            try:
                return urllib.request.urlopen(self.base + ready, timeout=1).status == 200
            except OSError:
                return False
        harness.wait_for(f"{self.label} at {self.base}{ready}", up, timeout=60, every=0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def http(method, url, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "image/jpg"} if body else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def seed_matches(dbs, servers, tag):
    """A hash with six matching images and seven names (like obama.jpg among the samples),
    under each server's prefix. Returns the hash."""
    query = hashlib.sha256(f"{tag}-query".encode()).hexdigest()
    others = [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(6)]
    for s in servers:
        dbs[4].sadd(s.prefix + query, *others)
        for i, h in enumerate(others):
            dbs[2].sadd(s.prefix + h, f"match-{i}.jpg", *(["copy-0.jpg"] if i == 0 else []))
    return query


def check_servers(servers, image, image_hash, match_hash):
    """Both servers answer the course's routes the same way before anything is timed."""
    answers = []
    for s in servers:
        status, body = http("POST", f"{s.base}/scan/image/apibench.jpg", image)
        if status != 200 or body != {"hash": image_hash}:
            raise SystemExit(f"{s.label}: POST /scan/image answered {status} {body!r}")
        status, body = http("GET", f"{s.base}/match/{match_hash}")
        if status != 200 or not body:
            raise SystemExit(f"{s.label}: GET /match answered {status} {body!r}: expected a non-empty list")
        answers.append(body)
    if any(a != answers[0] for a in answers):
        raise SystemExit(f"the servers disagree on /match: {answers!r}")
    return len(answers[0])


def measure(args, server, servers, route, concurrency, files, match_hash, purger, sampler):
    """One wrk run against one server, with the CPU of both servers, the broker and the rest."""
    sampler.phase = f"{route}_c{concurrency}"
    if route == "scan_image":
        url, method, body, ctype = f"{server.base}/scan/image/apibench.jpg", "POST", files["image"], "image/jpg"
    else:
        url, method, body, ctype = f"{server.base}/match/{match_hash}", "GET", None, None

    def once():
        with tools.CpuMeter({s.key: s.pid for s in servers}) as cpu:
            run = tools.run_wrk(args.wrk, files["script"], url, concurrency, args.duration, method, body, ctype)
        run.update(cpu.result)
        if run["requests"]:
            run["server_cpu_ms_per_request"] = round(cpu.server_cpu_s[server.key] * 1000 / run["requests"], 3)
        return run

    run = tools.purged_during(purger, once) if route == "scan_image" else once()
    log(f"  {server.key:9} {route:10} c{concurrency:<3} {run['requests_per_s']:8.1f} req/s  p50 {run['p50_ms']:7.2f} "
        f"p99 {run['p99_ms']:7.2f} ms  errors {run['errors']}" + (f"  queued {run['queued']}" if "queued" in run else "")
        + f"  CPU% server {run[server.key + '_cpu_percent']} broker {run['broker_cpu_percent']} "
        f"wrk {run['load_generator_cpu_percent']} other {run['other_cpu_percent']}")
    return run


def broker_round(args, params, tag, message, which):
    """The broker's ceiling on a queue of its own (declared, purged, deleted here)."""
    exchange, queue, logs_exchange = f"{tag}-broker.x", f"{tag}-broker.q", f"{tag}-broker.logs"
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.exchange_declare(exchange, "direct", durable=True)
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, exchange, routing_key=queue)
    conn.close()
    purger = tools.Purger(params, queue)
    purger.start()
    out = {}
    try:
        with_cpu = lambda fn: (lambda: _with_cpu(fn))
        if "pipelined" in which:
            out["pipelined"] = tools.purged_during(purger, with_cpu(lambda: tools.publish_pipelined(
                params, exchange, queue, message, args.broker_duration, args.window)))
        if "blocking" in which:
            out["blocking"] = tools.purged_during(purger, with_cpu(lambda: tools.publish_blocking(
                params, exchange, queue, message, args.broker_short_duration)))
        if "connection_per_message" in which:
            out["connection_per_message"] = tools.purged_during(purger, with_cpu(lambda: tools.publish_connection_each(
                params, exchange, queue, queue, logs_exchange, message, args.broker_short_duration)))
    finally:
        purger.stopped.set()
        purger.join()
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.queue_delete(queue)
        ch.exchange_delete(exchange)
        ch.exchange_delete(logs_exchange)
        conn.close()
    for key, r in out.items():
        log(f"  broker {key}: {r['messages_per_s']} messages/s, CPU% broker {r['broker_cpu_percent']} "
            f"client {r['bench_process_cpu_percent']} other {r['other_cpu_percent']}")
    return out


def _with_cpu(fn):
    with tools.CpuMeter() as cpu:
        result = fn()
    result.update(cpu.result)
    return result


def cleanup(params, dbs, servers):
    """Deletes what the run declared and every Redis key under the run's prefixes."""
    conn = pika.BlockingConnection(params)
    for s in servers:
        for what, name in (("queue", s.queue), ("queue", s.dead_letter_queue),
                           ("exchange", s.exchange), ("exchange", s.logs_exchange)):
            ch = conn.channel()
            try:
                ch.queue_delete(name) if what == "queue" else ch.exchange_delete(name)
            except pika.exceptions.ChannelClosedByBroker as e:
                log(f"could not delete {what} {name}: {e}")
    conn.close()
    for n, db in dbs.items():
        for s in servers:
            keys = list(db.scan_iter(match=s.prefix.replace("[", "\\[") + "*", count=1000))
            if keys:
                db.delete(*keys)


def summarize(runs):
    """Median of each figure over the rounds, with every round's requests/s."""
    med = lambda k: round(statistics.median(r[k] for r in runs), 2)
    return {"requests_per_s": med("requests_per_s"), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
            "server_cpu_ms_per_request": med("server_cpu_ms_per_request"),
            "other_cpu_percent": med("other_cpu_percent"),
            "errors": sum(r["errors"] for r in runs), "rounds_requests_per_s": [r["requests_per_s"] for r in runs],
            "rounds_p99_ms": [r["p99_ms"] for r in runs]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--facerec", default=harness.FACEREC, help="the release binary [%(default)s]")
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run [%(default)s]")
    p.add_argument("--concurrency", default="1,32", help="comma-separated connection counts")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    p.add_argument("--broker-duration", type=float, default=10, help="seconds of the pipelined ceiling")
    p.add_argument("--broker-short-duration", type=float, default=5,
                   help="seconds of the one-confirm-at-a-time and connection-per-message figures (round 1)")
    p.add_argument("--window", type=int, default=1024, help="unconfirmed messages in flight (pipelined)")
    p.add_argument("--image", default=os.path.join(harness.IMAGES, "obama.jpg"))
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--json", metavar="FILE", help="also write the JSON result here")
    p.add_argument("--markdown", metavar="FILE", help="also write the markdown table here")
    args = p.parse_args()
    if not os.access(args.facerec, os.X_OK):
        raise SystemExit(f"{args.facerec}: build it first (cargo build --release --features dlib)")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    params = pika.ConnectionParameters("127.0.0.1")
    tag = f"apibench-{os.getpid()}"

    quality, image = tools.bench_image(args.image)
    image_hash = hashlib.sha256(image).hexdigest()
    message = json.dumps({"hash": image_hash, "name": "apibench.jpg",
                          "image": base64.b64encode(image).decode("ascii")}).encode()
    workdir = tempfile.mkdtemp(prefix=tag)
    files = {"image": os.path.join(workdir, "apibench.jpg"), "script": os.path.join(workdir, "apibench.lua")}
    with open(files["image"], "wb") as f:
        f.write(image)
    with open(files["script"], "w") as f:
        f.write(tools.WRK_SCRIPT)

    servers = [Server("reference", "reference (Flask + pika per request, gunicorn 2 sync workers)", tag),
               Server("facerec", "facerec api", tag)]
    dbs = {n: redis.Redis("127.0.0.1", 6379, db=n) for n in range(5)}
    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": harness.git_commit(),
        "machine": {"cpu": harness.cpu_model(), "cpus": os.cpu_count(),
                    "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                    "wrk": subprocess.run([args.wrk, "--version"], capture_output=True, text=True).stdout.split("\n")[0].split(" Copyright")[0].strip()},
        "image": {"bytes": len(image), "jpeg_quality": quality, "source": os.path.basename(args.image),
                  "message_bytes": len(message)},
        "settings": {"duration_s": args.duration, "concurrency": concurrencies, "repeat": args.repeat,
                     "broker_duration_s": args.broker_duration, "window": args.window},
        "servers": {s.key: {"label": s.label, "names": s.name} for s in servers},
    }
    runs = {}
    broker_runs = []
    samplers, purgers = {}, {}
    try:
        match_hash = seed_matches(dbs, servers, tag)
        for s in servers:
            s.start(args, workdir)
            samplers[s.key] = tools.MemorySampler(s.pid)
            samplers[s.key].sample()
            samplers[s.key].start()
            purgers[s.key] = tools.Purger(params, s.queue)
            purgers[s.key].start()
        result["match_names"] = check_servers(servers, image, image_hash, match_hash)
        for round_ in range(args.repeat):
            log(f"round {round_ + 1} of {args.repeat}")
            order = servers if round_ % 2 == 0 else servers[::-1]
            for concurrency in concurrencies:
                for route in ROUTES:
                    for s in order:
                        runs.setdefault((s.key, route, concurrency), []).append(
                            measure(args, s, servers, route, concurrency, files, match_hash,
                                    purgers[s.key], samplers[s.key]))
                        time.sleep(1)
            for sampler in samplers.values():
                sampler.phase = "broker"
            which = ["pipelined"] + (["blocking", "connection_per_message"] if round_ == 0 else [])
            broker_runs.append(broker_round(args, params, tag, message, which))
        hwm = tools.status_kb(servers[1].pid, "VmHWM")
        result["memory"] = {"facerec_vmhwm_mb": round(hwm / 1024, 1)}
    finally:
        for sampler in samplers.values():
            sampler.stopped.set()
        for s in servers:
            if s.key in samplers:
                samplers[s.key].join()
                samplers[s.key].sample()
                result.setdefault("memory", {})[s.key] = samplers[s.key].report()
        for purger in purgers.values():
            purger.stopped.set()
            purger.join()
        for s in servers:
            s.stop()
        cleanup(params, dbs, servers)
        shutil.rmtree(workdir, ignore_errors=True)

    result["runs"] = {f"{k[0]} {k[1]} c{k[2]}": v for k, v in runs.items()}
    result["table"] = {f"{k[0]} {k[1]} c{k[2]}": summarize(v) for k, v in runs.items()}
    result["broker"] = {
        "pipelined_messages_per_s": statistics.median(b["pipelined"]["messages_per_s"] for b in broker_runs),
        "pipelined_rounds": [b["pipelined"]["messages_per_s"] for b in broker_runs],
        "blocking_messages_per_s": broker_runs[0]["blocking"]["messages_per_s"],
        "connection_per_message_messages_per_s": broker_runs[0]["connection_per_message"]["messages_per_s"],
        "broker_cpu_percent_pipelined": statistics.median(b["pipelined"]["broker_cpu_percent"] for b in broker_runs),
    }
    result["targets"] = targets(result, max(concurrencies))
    text = json.dumps(result, indent=1)
    table = markdown(result, concurrencies)
    print(text)
    print()
    print(table)
    for path, content in ((args.json, text), (args.markdown, table)):
        if path:
            with open(path, "w") as f:
                f.write(content + "\n")
    errors = [k for k, v in result["table"].items() if v["errors"]]
    if errors:
        log(f"errors during: {', '.join(errors)}")
    return 1 if errors else 0


def targets(r, c):
    t, ref = r["table"], lambda route: r["table"][f"reference {route} c{c}"]
    api = lambda route: t[f"facerec {route} c{c}"]
    out = {}
    for route in ROUTES:
        rps = round(api(route)["requests_per_s"] / ref(route)["requests_per_s"], 1)
        p99 = round(ref(route)["p99_ms"] / api(route)["p99_ms"], 1)
        out[f"{route}_rps_ratio"] = {"value": rps, "target": TARGETS[f"{route}_rps_ratio"],
                                     "met": rps >= TARGETS[f"{route}_rps_ratio"]}
        out[f"{route}_p99_ratio"] = {"value": p99, "target": TARGETS["p99_ratio"], "met": p99 >= TARGETS["p99_ratio"]}
    hwm = r["memory"]["facerec_vmhwm_mb"]
    out["facerec_rss_mb"] = {"value": hwm, "target": TARGETS["rss_mb"], "met": hwm <= TARGETS["rss_mb"]}
    ceiling = r["broker"]["pipelined_messages_per_s"]
    out["scan_image_share_of_broker_ceiling"] = round(api("scan_image")["requests_per_s"] / ceiling, 2)
    return out


def markdown(r, concurrencies):
    t, m, b, tg = r["table"], r["memory"], r["broker"], r["targets"]
    c = max(concurrencies)
    lines = [f"{r['date'][:10]}, commit `{r['commit']}`, {r['machine']['cpu']}, {r['machine']['cpus']} cores "
             f"(a shared VM, busy with other builds: absolute figures are low and noisy; the ratios are the point), "
             f"{r['machine']['wrk']}. Both servers in the same run, {r['settings']['duration_s']:.0f} s per cell, "
             f"median of {r['settings']['repeat']} interleaved rounds. Body: a {r['image']['bytes']:,}-byte JPEG "
             f"(the AMQP message: {r['image']['message_bytes']:,} bytes).", "",
             "| route | c | reference req/s | facerec api req/s | x | reference p50 / p99 ms "
             "| facerec api p50 / p99 ms | p99 / | server CPU ms/req (ref / api) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for route, name in ROUTES.items():
        for cc in concurrencies:
            ref, api = t[f"reference {route} c{cc}"], t[f"facerec {route} c{cc}"]
            lines.append(
                f"| `{name}` | {cc} | {ref['requests_per_s']:,.0f} | {api['requests_per_s']:,.0f} | "
                f"{api['requests_per_s'] / ref['requests_per_s']:.1f} | {ref['p50_ms']:.1f} / {ref['p99_ms']:.1f} | "
                f"{api['p50_ms']:.2f} / {api['p99_ms']:.2f} | {ref['p99_ms'] / api['p99_ms']:.1f} | "
                f"{ref['server_cpu_ms_per_request']:.2f} / {api['server_cpu_ms_per_request']:.2f} |")
    errors = sum(v["errors"] for v in t.values())
    ref_mem = m["reference"]
    lines += ["", f"Rounds (requests/s, reference / facerec api): " + "; ".join(
        f"{route} c{cc}: {t[f'reference {route} c{cc}']['rounds_requests_per_s']} / "
        f"{t[f'facerec {route} c{cc}']['rounds_requests_per_s']}" for route in ROUTES for cc in concurrencies)
        + f". HTTP errors: {errors}.", "",
        f"Memory: `facerec api` VmHWM {m['facerec_vmhwm_mb']} MB (its peak RSS over the whole run); the reference "
        f"(gunicorn master + 2 workers) peaks at {ref_mem['peak_rss_mb']} MB RSS summed (PSS {ref_mem['peak_pss_mb']} MB).",
        "", f"Broker ceiling (one persistent AMQP connection, pipelined confirms, up to {r['settings']['window']} "
        f"unconfirmed, the same {r['image']['message_bytes']:,}-byte message, durable queue): "
        f"{b['pipelined_messages_per_s']:,.0f} messages/s (rounds {b['pipelined_rounds']}, broker "
        f"{b['broker_cpu_percent_pipelined']:.0f}% of a core); one confirm at a time {b['blocking_messages_per_s']:,.0f}/s; "
        f"a new connection per message {b['connection_per_message_messages_per_s']:,.0f}/s. `facerec api` at c{c} reaches "
        f"{tg['scan_image_share_of_broker_ceiling']:.0%} of the pipelined ceiling.", "",
        f"Targets at c{c}:", ""]
    names = {"match_rps_ratio": "`/match` requests/s >= 20x", "scan_image_rps_ratio": "`/scan/image` requests/s >= 10x",
             "match_p99_ratio": "`/match` p99 <= 1/10", "scan_image_p99_ratio": "`/scan/image` p99 <= 1/10",
             "facerec_rss_mb": "`facerec api` peak RSS <= 50 MB"}
    for key, name in names.items():
        v = tg[key]
        unit = " MB" if key == "facerec_rss_mb" else "x"
        lines.append(f"- {name}: {v['value']}{unit}: {'met' if v['met'] else 'MISSED'}")
    busy = [k for k, v in t.items() if v["other_cpu_percent"] > 20]
    if busy:
        lines += ["", "Other programs used more than 20% of a core during: " + ", ".join(busy) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
