"""Failover drills of issue 17 (scripts/ha-drill.sh runs this), on this machine without
touching the services on the standard ports:

- rabbitmq: a 3-node RabbitMQ cluster of its own (node names facerec-ha<N>-<pid>@localhost,
  own AMQP and distribution ports, data under a temporary folder, the same Erlang cookie
  in a HOME of its own; epmd on 4369 is shared, which is what epmd is for), a quorum work
  queue, two workers given all three brokers and a publisher; during a batch the node the
  workers are connected to is stopped and restarted, then the one holding the queue leader.
- redis: a Redis primary + replica + 3 sentinels of its own; two workers find the primary
  through the sentinels with FACEREC_REDIS_WAIT_REPLICAS=1; the primary is killed with
  SIGKILL mid-batch, Sentinel promotes the replica, the old primary comes back as replica.

After each drill: every image stored exactly once in effect (db 1 and db 2 exactly the
batch, db 3 the recorded faces), db 4 equal to the brute-force relation over db 3, nothing
dead-lettered. Figures: stall (fault to the next stored image) and images/s over the batch.

Usage: ha_drill.py [--runs 3] [--images 200] [--only rabbitmq|redis] [--rabbit-delay-ms 1500] [--keep]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time

import pika
import redis

import harness
from harness import Worker, brute_force_matches, free_port, log, queue_flags, wait_for

FACEREC = os.environ.get("FACEREC_BIN", harness.FACEREC)
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"  # the scripts themselves: the wrapper would su to rabbitmq
MASTER = "facerec-drill"


# --- the batch ---------------------------------------------------------------------------

def make_batch(n, people, seed):
    """A recording of `n` images of `people` made-up people (one or two faces each; the
    same person < 0.3 apart, different people > 0.9 apart) and its messages."""
    rng = random.Random(seed)
    centres = []
    for p in range(people):
        c = [0.0] * 128
        c[p % 128] = 0.8
        c[(p * 7 + 3) % 128] += 0.4
        centres.append(c)
    images, messages = [], []
    for i in range(n):
        faces = []
        for k in range(2 if i % 5 == 0 else 1):
            c = centres[(i * 3 + k * 11) % people]
            enc = [x + (rng.random() - 0.5) * 0.02 for x in c]
            faces.append({"top": 0, "right": 10, "bottom": 10, "left": 0, "encoding": enc})
        h = f"hadrill{seed}-{i:04d}"
        images.append({"hash": h, "name": f"drill/{i:04d}.jpg", "width": 10, "height": 10, "faces": faces})
        messages.append(json.dumps({"hash": h, "name": f"drill/{i:04d}.jpg", "image": "c3RhbmQtaW4="}).encode())
    return {"format": "facerec-recorded-encodings/1", "fingerprint": "synthetic", "images": images}, messages


def check(recording, db, dead):
    """Problems found in the databases (`db(n)`: a client) after a drill; [] when all is well."""
    problems = []
    want = {i["hash"]: i["name"] for i in recording["images"]}
    names = {k.decode(): v.decode() for k in db(1).scan_iter(count=1000) for v in [db(1).get(k)]}
    if names != {n: h for h, n in want.items()}:
        problems.append(f"db 1: {len(names)} names, want {len(want)}")
    named = {k.decode(): {m.decode() for m in db(2).smembers(k)} for k in db(2).scan_iter(count=1000)}
    if named != {h: {n} for h, n in want.items()}:
        problems.append(f"db 2: {len(named)} images, want {len(want)}")
    faces = {k.decode(): db(3).scard(k) for k in db(3).scan_iter(count=1000)}
    if faces != {i["hash"]: len(i["faces"]) for i in recording["images"]}:
        problems.append("db 3 differs from the recorded faces")
    expected = {h: s for h, s in brute_force_matches(db(3)).items() if s}
    links = {k.decode(): {m.decode() for m in db(4).smembers(k)} for k in db(4).scan_iter(count=1000)}
    if links != expected:
        problems.append(f"db 4 differs from the brute-force relation ({len(links)} vs {len(expected)} keys)")
    if dead:
        problems.append(f"{dead} messages dead-lettered")
    return problems


class Progress(threading.Thread):
    """Polls the number of stored images (db 2 keys) every 20 ms, keeping when it grew."""

    def __init__(self, count):
        super().__init__(daemon=True)
        self.count, self.times, self.stop = count, [], threading.Event()
        self.last = 0

    def run(self):
        while not self.stop.is_set():
            try:
                n = self.count()
            except Exception:
                n = self.last
            now = time.time()
            self.times.extend([now] * max(0, n - self.last))
            self.last = max(n, self.last)
            time.sleep(0.02)

    def stall_after(self, t):
        """Seconds from `t` to the first image stored after it."""
        later = [x for x in self.times if x > t]
        return (later[0] - t) if later else float("nan")

    def rate(self):
        return (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0


# --- RabbitMQ cluster ----------------------------------------------------------------------

class RabbitNode:
    def __init__(self, base, index, tag, env_base):
        self.name = f"facerec-ha{index}-{tag}@localhost"
        self.port, self.dist = free_port(), free_port()
        self.dir = os.path.join(base, f"node{index}")
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "rabbitmq.conf")
        with open(conf, "w") as f:
            f.write(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        self.env = {**env_base, "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(self.dist), "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
                    "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"), "RABBITMQ_CONFIG_FILE": conf,
                    "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid")}

    def ctl(self, *args, check=True):
        done = subprocess.run([f"{RABBITMQ_BIN}/rabbitmqctl", "-n", self.name, *args], env=self.env, text=True,
                              capture_output=True, timeout=120)
        if check and done.returncode:
            raise SystemExit(f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stderr[-2000:]}")
        return done.stdout

    def start(self):
        subprocess.run([f"{RABBITMQ_BIN}/rabbitmq-server", "-detached"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # -detached returns before the node is known to epmd: `wait` polls its pid file first.
        self.ctl("wait", self.env["RABBITMQ_PID_FILE"], "--timeout", "120")

    def stop(self):
        self.ctl("stop", check=False)

    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"


class Cluster:
    def __init__(self, base):
        tag = f"{os.getpid()}{random.randint(0, 999)}"
        home = os.path.join(base, "home")
        os.makedirs(home)
        cookie = os.path.join(home, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write("FACERECHADRILL" + tag)
        os.chmod(cookie, 0o400)
        plugins = os.path.join(base, "enabled_plugins")
        with open(plugins, "w") as f:
            f.write("[].\n")
        env_file = os.path.join(base, "rabbitmq-env.conf")
        with open(env_file, "w") as f:  # not the machine's /etc/rabbitmq/rabbitmq-env.conf
            f.write("ERL_EPMD_ADDRESS=127.0.0.1\n")
        env_base = {**os.environ, "HOME": home, "RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
                    "RABBITMQ_CONF_ENV_FILE": env_file, "ERL_EPMD_ADDRESS": "127.0.0.1",
                    "RABBITMQ_SERVER_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}
        self.nodes = [RabbitNode(base, i + 1, tag, env_base) for i in range(3)]
        for n in self.nodes:
            n.start()
        for n in self.nodes[1:]:
            n.ctl("stop_app")
            n.ctl("join_cluster", self.nodes[0].name)
            n.ctl("start_app")
        log(f"cluster up: {', '.join(f'{n.name}:{n.port}' for n in self.nodes)}")

    def urls(self):
        return ",".join(n.url() for n in self.nodes)

    def leader(self, queue):
        for n in self.nodes:
            out = n.ctl("list_queues", "-q", "--no-table-headers", "name", "leader", check=False)
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == queue:
                    return next(x for x in self.nodes if x.name == parts[1])
        raise SystemExit(f"no leader found for {queue}")

    def node_of_connections(self):
        """The node most client connections are on, told by the server port each connection
        reached (rabbitmqctl 3.10 has no `node` column; the list is cluster-wide). Asked
        again for up to a minute: on a busy machine rabbitmqctl can time out or list nothing
        yet."""
        by_port = {str(n.port): n for n in self.nodes}
        deadline = time.time() + 60
        while True:
            counts = {}
            for n in self.nodes:
                try:
                    done = subprocess.run([f"{RABBITMQ_BIN}/rabbitmqctl", "-n", n.name, "list_connections", "-q",
                                           "--no-table-headers", "port"], env=n.env, text=True, capture_output=True,
                                          timeout=60)
                except subprocess.TimeoutExpired:
                    continue
                if done.returncode:
                    log(f"list_connections on {n.name}: {done.stderr.strip()[-300:]}")
                    continue
                for port in done.stdout.split():
                    if port in by_port:
                        counts[port] = counts.get(port, 0) + 1
                break
            if counts:
                return by_port[max(counts, key=counts.get)]
            if time.time() > deadline:
                raise SystemExit("no client connection found on any node")
            time.sleep(2)

    def close(self):
        for n in self.nodes:
            n.stop()


PUBLISHED = {"left": 0}  # messages publish_all has still to publish (for diagnostics)


def publish_all(urls, exchange, messages):
    """Publishes every message with confirms, moving to the next broker when one fails; a
    message whose confirm did not arrive is published again."""
    pending, i = list(messages), 0
    PUBLISHED["left"] = len(pending)
    while pending:
        params = pika.URLParameters(urls[i % len(urls)])
        try:
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            ch.confirm_delivery()
            while pending:
                ch.basic_publish(exchange, exchange, pending[0], pika.BasicProperties(delivery_mode=2), mandatory=True)
                pending.pop(0)
                PUBLISHED["left"] = len(pending)
            conn.close()
        except (pika.exceptions.AMQPError, OSError) as e:
            log(f"publisher: {type(e).__name__} on {params.port}, trying the next broker")
            i += 1
            time.sleep(0.5)


def rabbitmq_drill(base, n_images, seed, delay_ms=1500):
    recording, messages = make_batch(n_images, 12, seed)
    enc = os.path.join(base, "batch.json")
    with open(enc, "w") as f:
        json.dump(recording, f)
    cluster = Cluster(os.path.join(base, "rabbit"))
    os.makedirs(os.path.join(base, "redis-single"))
    store = harness.RedisServer(os.path.join(base, "redis-single"))
    name = "drill-ha"
    workers, faults = [], []
    try:
        first = cluster.nodes[0]
        conn = pika.BlockingConnection(pika.URLParameters(first.url()))
        ch = conn.channel()
        ch.exchange_declare(name, "direct", durable=True)
        ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(name, name, routing_key=name)
        conn.close()
        # RABBITMQ_URLS (every node) is what is drilled; RABBITMQ_URL (the first) keeps a
        # build without broker lists off the machine's own RabbitMQ.
        env = {"RABBITMQ_URLS": cluster.urls(), "RABBITMQ_URL": first.url()}
        os.environ.update(env)
        progress = Progress(lambda: store.db(2).dbsize())
        # Slow enough that both faults land mid-batch even where `rabbitmqctl stop` and the
        # restart take 10 and 20 s (a busy machine): 4 slots at 1.5 s, 2.7 images/s at most.
        flags = [*queue_flags(name), "--queue-type", "quorum", "--redis-url", store.url(), "--encodings", enc,
                 "--recorded-delay-ms", str(delay_ms), "--concurrency", "2"]
        logs = [open(os.path.join(base, f"rabbit-worker{i}.log"), "w") for i in range(2)]
        workers = [Worker(flags, logs[i], binary=FACEREC, label=f"worker{i}") for i in range(2)]
        progress.start()
        started = time.time()
        publisher = threading.Thread(target=publish_all, args=(cluster.urls().split(","), name, messages))
        publisher.start()
        wait_for("a quarter stored", lambda: progress.last >= n_images // 4, timeout=120)
        target = cluster.node_of_connections()
        log(f"stopping {target.name} (the workers' node)")
        target.stop()
        t = time.time()  # the node is down: the stall counts from here
        mid_batch(progress, n_images)
        faults.append(("workers' node stopped", t))
        stalled(cluster, name, lambda: any(x > t for x in progress.times))
        target.start()
        wait_for("half stored", lambda: progress.last >= n_images // 2, timeout=180)
        leader = cluster.leader(name)
        log(f"stopping {leader.name} (the queue leader)")
        leader.stop()
        t = time.time()
        mid_batch(progress, n_images)
        faults.append(("queue leader stopped", t))
        stalled(cluster, name, lambda: any(x > t for x in progress.times))
        leader.start()
        publisher.join()
        wait_for("the whole batch stored", lambda: progress.last >= n_images, timeout=300)
        elapsed = time.time() - started
        wait_for("the queue drained", lambda: queue_len(cluster, name) == 0, timeout=120)
        progress.stop.set()
        dead = queue_len(cluster, name + ".dead")
        problems = check(recording, store.db, dead)
        return {"drill": "rabbitmq", "stalls": [(what, progress.stall_after(t)) for what, t in faults],
                "rate": progress.rate(), "seconds": elapsed, "problems": problems}
    finally:
        for w in workers:
            w.terminate(timeout=30) if w.exited() is None else None
        os.environ.pop("RABBITMQ_URLS", None)
        os.environ.pop("RABBITMQ_URL", None)
        cluster.close()
        store.stop()


def mid_batch(progress, n_images):
    """Refuses a drill whose fault came after the batch was (nearly) done: it would prove
    nothing about the failover."""
    if progress.last > n_images - 10:
        raise SystemExit(f"the fault came too late ({progress.last} of {n_images} stored): use a larger --rabbit-delay-ms")


def stalled(cluster, queue, resumed):
    """Waits up to 120 s for `resumed`; on a timeout says what the broker holds first."""
    try:
        wait_for("an image stored after the stop", resumed, timeout=120)
    except SystemExit:
        for n in cluster.nodes:
            out = n.ctl("list_queues", "-q", "--no-table-headers", "name", "type", "leader", "messages_ready",
                        "messages_unacknowledged", "consumers", check=False)
            log(f"{n.name}: queues:\n{out.strip()}")
        log(f"publisher: {PUBLISHED['left']} messages still to publish")
        raise


def queue_len(cluster, queue):
    for n in cluster.nodes:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(n.url()))
            ch = conn.channel()
            q = ch.queue_declare(queue, passive=True)
            m = q.method.message_count
            conn.close()
            return m
        except (pika.exceptions.AMQPError, OSError):
            continue
    return -1


# --- Redis with Sentinel -------------------------------------------------------------------

class SentinelSet:
    def __init__(self, base):
        self.base = base
        self.ports = [free_port(), free_port()]
        self.procs = {}
        for i, port in enumerate(self.ports):
            self.start_data(port, replica_of=self.ports[0] if i else None)
        self.sentinel_ports = [free_port() for _ in range(3)]
        for i, port in enumerate(self.sentinel_ports):
            d = os.path.join(base, f"sentinel{i}")
            os.makedirs(d)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {self.ports[0]} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n")
            self.procs[port] = subprocess.Popen(["redis-server", conf, "--sentinel"], stdout=subprocess.DEVNULL)
        wait_for("replica in sync", lambda: self.info(self.ports[1]).get("master_link_status") == "up", timeout=30,
                 every=0.2)
        wait_for("sentinels know the replica", lambda: all(
            redis.Redis(port=p).execute_command("SENTINEL", "REPLICAS", MASTER) for p in self.sentinel_ports),
            timeout=30, every=0.2)

    def start_data(self, port, replica_of=None):
        d = os.path.join(self.base, f"redis{port}")
        os.makedirs(d, exist_ok=True)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--appendonly", "yes",
                "--save", ""]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for(f"redis on {port}", lambda: self.ping(port), timeout=30, every=0.1)

    def ping(self, port):
        try:
            return redis.Redis(port=port).ping()
        except redis.exceptions.RedisError:
            return False

    def info(self, port):
        try:
            return redis.Redis(port=port).info("replication")
        except redis.exceptions.RedisError:
            return {}

    def primary(self):
        for p in self.sentinel_ports:
            try:
                addr = redis.Redis(port=p).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                if addr:
                    return int(addr[1])
            except redis.exceptions.RedisError:
                continue
        return None

    def sentinels(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def kill9(self, port):
        self.procs[port].kill()
        self.procs[port].wait()

    def close(self):
        for p in self.procs.values():
            p.kill()
            p.wait()


def redis_drill(base, n_images, seed):
    recording, messages = make_batch(n_images, 12, seed)
    enc = os.path.join(base, "batch.json")
    with open(enc, "w") as f:
        json.dump(recording, f)
    sentinels = SentinelSet(os.path.join(base, "sentinel"))
    name = f"drill-ha-redis-{os.getpid()}-{seed}"
    workers, faults = [], []
    # the shared RabbitMQ (standard port), with this drill's own queue names
    conn = harness.connect()
    ch = conn.channel()
    harness.declare_work_queue(ch, name)
    ch.confirm_delivery()
    for m in messages:
        ch.basic_publish(name, name, m, pika.BasicProperties(delivery_mode=2), mandatory=True)
    conn.close()
    db = lambda n: redis.Redis(port=sentinels.primary(), db=n)  # noqa: E731
    try:
        progress = Progress(lambda: db(2).dbsize())
        flags = [*queue_flags(name), "--redis-sentinels", sentinels.sentinels(), "--redis-sentinel-master", MASTER,
                 "--redis-wait-replicas", "1", "--redis-timeout", "3", "--encodings", enc,
                 "--recorded-delay-ms", "60", "--concurrency", "2"]
        logs = [open(os.path.join(base, f"redis-worker{i}.log"), "w") for i in range(2)]
        workers = [Worker(flags, logs[i], binary=FACEREC, label=f"worker{i}") for i in range(2)]
        progress.start()
        started = time.time()
        wait_for("a third stored", lambda: progress.last >= n_images // 3, timeout=120)
        old = sentinels.primary()
        t = time.time()
        log(f"kill -9 the primary (port {old})")
        sentinels.kill9(old)
        faults.append(("primary killed", t))
        wait_for("a new primary", lambda: sentinels.primary() not in (None, old), timeout=60, every=0.1)
        new = sentinels.primary()
        log(f"promoted: {new}; the old primary comes back as its replica")
        # As an operator's start script does (k8s/overlays/ha/redis-sentinel.yaml): ask for
        # the primary first. Started as a primary it would serve its stale data until
        # Sentinel demotes it, and could win back the role.
        sentinels.start_data(old, replica_of=new)
        wait_for("the whole batch stored", lambda: progress.last >= n_images, timeout=300)
        elapsed = time.time() - started
        wait_for("the queue drained", lambda: sum(harness.queue_counts(name)) == 0, timeout=120)
        progress.stop.set()
        dead = sum(harness.queue_counts(name + ".dead"))
        problems = check(recording, db, dead)
        return {"drill": "redis", "stalls": [(what, progress.stall_after(t)) for what, t in faults],
                "rate": progress.rate(), "seconds": elapsed, "problems": problems}
    finally:
        for w in workers:
            w.terminate(timeout=30) if w.exited() is None else None
        sentinels.close()
        harness.delete_queue(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--only", choices=["rabbitmq", "redis"])
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders (logs)")
    ap.add_argument("--rabbit-delay-ms", type=int, default=1500,
                    help="recorded encoding time per image in the RabbitMQ drill (the faults must land mid-batch)")
    args = ap.parse_args()
    results, failed = [], False
    for run in range(args.runs):
        for drill in (rabbitmq_drill, redis_drill):
            if args.only and drill.__name__ != f"{args.only}_drill":
                continue
            base = tempfile.mkdtemp(prefix=f"facerec-{drill.__name__}-")
            started = time.time()
            if drill is rabbitmq_drill:
                r = drill(base, args.images, 1700 + run, args.rabbit_delay_ms)
            else:
                r = drill(base, args.images, 1700 + run)
            r["wall"] = time.time() - started
            stalls = ", ".join(f"{w}: {s:.1f} s" for w, s in r["stalls"])
            log(f"run {run + 1} {r['drill']}: {stalls}; {r['rate']:.1f} images/s over {r['seconds']:.1f} s; "
                f"drill {r['wall']:.0f} s; {'OK' if not r['problems'] else 'FAILED: ' + '; '.join(r['problems'])}")
            failed |= bool(r["problems"])
            results.append(r)
            if not args.keep and not r["problems"]:
                shutil.rmtree(base, ignore_errors=True)
            else:
                log(f"logs kept in {base}")
    print(json.dumps(results, indent=1))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
