#!/usr/bin/env python3
"""Times `facerec reindex` (0.6 -> 0.5 -> 0.6) and `facerec fsck` on N synthetic images.

Fills a private key prefix of the Redis at REDIS_URL (default redis://127.0.0.1:6379) with
N images of about N/4 people: one 128-d face each (every fifth image a second face of
another person), faces of one person 0.33-0.43 from its centre in random directions, so
pairs of one person are about 0.45-0.62 apart (some links at 0.6 disappear at 0.5);
centres are far apart. Written straight into dbs 1-3 with redis-py pipelines; db 4 and
the distances start empty and the first `reindex --tolerance 0.6` builds them (nothing
recorded: the kernel). Then 0.5 (stricter: the stored distances are filtered), 0.6 again
(looser: the kernel) and `fsck` (the recorded tolerance, 0.6). Prints seconds per step and
the load average, then deletes its prefix.

Usage: benches/reindex_bench.py [--n 10000] [--bin target/release/facerec] [--seed 1]
Needs redis-py and numpy (the venv $HOME/.cache/facerec/venv has both).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy
import redis


def fill(url, prefix, n, seed):
    rng = numpy.random.default_rng(seed)
    people = max(1, n // 4)
    centres = rng.normal(0.0, 0.1, (people, 128))

    def face(person):
        d = rng.normal(0.0, 1.0, 128)
        d *= (0.33 + 0.1 * rng.random()) / numpy.linalg.norm(d)
        return (centres[person] + d).astype("<f4").astype("<f8").tobytes()

    dbs = {db: redis.Redis.from_url(url, db=db) for db in (1, 2, 3)}
    pipes = {db: c.pipeline(transaction=False) for db, c in dbs.items()}
    for i in range(n):
        h = f"bench{seed}-{i:07d}"
        name = f"bench/{i:07d}.jpg"
        person = int(rng.integers(people))
        faces = [face(person)]
        if i % 5 == 0:
            faces.append(face(int(rng.integers(people))))
        pipes[1].set(prefix + name, h)
        pipes[2].sadd(prefix + h, name)
        pipes[3].sadd(prefix + h, *faces)
        if i % 1000 == 999:
            for p in pipes.values():
                p.execute()
    for p in pipes.values():
        p.execute()


def cleanup(url, prefix):
    for db in range(5):
        c = redis.Redis.from_url(url, db=db)
        batch = []
        for key in c.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                c.unlink(*batch)
                batch = []
        if batch:
            c.unlink(*batch)


def run(binary, prefix, args):
    env = dict(os.environ, FACEREC_REDIS_KEY_PREFIX=prefix)
    env.pop("FACEREC_TOLERANCE", None)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    out = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return out, seconds, load


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--bin", default=os.environ.get("FACEREC_BIN", "target/release/facerec"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    prefix = f"bench-reindex-{os.getpid()}:"
    print(f"N={a.n} images, prefix {prefix}, {os.cpu_count()} cores, binary {a.bin}")
    try:
        started = time.perf_counter()
        fill(url, prefix, a.n, a.seed)
        print(f"fill: {time.perf_counter() - started:.1f} s")
        print(f"{'step':<22} {'method':<7} {'pairs':>8} {'changed':>8} {'read':>7} {'plan':>7} {'write':>7} {'total s':>8} {'load':>5}")
        for t in ("0.6", "0.5", "0.6"):
            out, seconds, load = run(a.bin, prefix, ["reindex", "--tolerance", t, "--json"])
            if out.returncode != 0:
                sys.exit(f"reindex {t} failed: {out.stderr}")
            r = json.loads(out.stdout)
            print(
                f"{'reindex ' + t + ' (from ' + str(r['previous']) + ')':<22} {r['method']:<7} {r['pairs']:>8} "
                f"{r['images_changed']:>8} {r['read']:>7.2f} {r['plan']:>7.2f} {r['write']:>7.2f} {seconds:>8.2f} {load:>5.2f}"
            )
        out, seconds, load = run(a.bin, prefix, ["fsck"])
        verdict = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()
        print(f"{'fsck (recorded 0.6)':<22} {'kernel':<7} {'':>8} {'':>8} {'':>7} {'':>7} {'':>7} {seconds:>8.2f} {load:>5.2f}  {verdict}")
        if out.returncode != 0:
            sys.exit(f"fsck found damage: {out.stdout}")
    finally:
        cleanup(url, prefix)


if __name__ == "__main__":
    main()
