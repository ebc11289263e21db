#!/usr/bin/env python3
"""Send face_recognition's seven sample images to facerec workers and check what they stored.

A client written the documented way (docs/PROTOCOL.md) with nothing but pika, redis-py and
numpy: it publishes every message form the protocol allows, waits until the names appear
in Redis, then checks databases 1-4 against the contract. Exit status 0 when every check
passes, 1 otherwise. Point it at an empty key prefix (or a fresh Redis): it expects that
only these images are stored there.

    python tests/interop/interop.py --images ~/.cache/facerec/images --key-prefix it-$$:
"""
import argparse
import base64
import hashlib
import itertools
import json
import os
import sys
import time

import numpy
import pika
import redis

OBAMAS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "32bit.png",
          "obama_partial_face.jpg", "obama_partial_face2.jpg"]
BIDEN = "biden.jpg"
COPY = "copies/obama-again.jpg"  # obama.jpg published again under another name
TOLERANCE = 0.6

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def publish(args, files):
    """Publishes every image (three message forms, then a copy) with publisher confirms."""
    conn = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    ch = conn.channel()
    ch.exchange_declare(args.exchange, "direct", durable=True)  # same flags as the worker
    ch.confirm_delivery()  # basic_publish now waits for the broker's ack

    def send(body, headers=None):
        props = pika.BasicProperties(delivery_mode=2, headers=headers,
                                     content_type=None if headers else "application/json")
        ch.basic_publish(args.exchange, args.routing_key, body, props, mandatory=True)

    for name, data in files.items():
        b64 = base64.b64encode(data).decode("ascii")
        if name == "obama3.jpg":  # jsonpickle's bytes form, no hash: the worker hashes it
            send(json.dumps({"name": name, "image": {"py/b64": b64}}))
        elif name == BIDEN:  # raw image file, name and hash in AMQP headers
            send(data, headers={"name": name, "hash": sha256(data)})
        else:
            send(json.dumps({"hash": sha256(data), "name": name, "image": b64}))
        print(f"published {name}")
    data = files["obama.jpg"]
    send(json.dumps({"hash": sha256(data), "name": COPY,
                     "image": base64.b64encode(data).decode("ascii")}))
    print(f"published {COPY} (same bytes as obama.jpg)")
    conn.close()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--exchange", default="toWorker")
    p.add_argument("--routing-key", default="toWorker")
    p.add_argument("--key-prefix", default="", help="put in front of every Redis key")
    p.add_argument("--images", default=os.path.expanduser("~/.cache/facerec/images"))
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the worker")
    args = p.parse_args()
    P = args.key_prefix
    db1, db2, db3, db4 = (redis.Redis(args.redis_host, args.redis_port, db=n) for n in (1, 2, 3, 4))

    files = {}
    for name in OBAMAS + [BIDEN]:
        with open(os.path.join(args.images, name), "rb") as f:
            files[name] = f.read()
    expected = {name: sha256(data) for name, data in files.items()}
    expected[COPY] = expected["obama.jpg"]

    try:
        publish(args, files)
    except pika.exceptions.UnroutableError:
        sys.exit(f"FAIL  no queue is bound to exchange {args.exchange!r} with key "
                 f"{args.routing_key!r}: start a worker first (it declares the queue)")
    except pika.exceptions.AMQPError as e:
        sys.exit(f"FAIL  publishing to {args.amqp_url}: {e!r}")

    # A name is complete once db1 maps it to a hash whose db2 set contains it.
    deadline = time.monotonic() + args.timeout
    waiting = set(expected)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            h = db1.get(P + name)
            if h is not None and db2.sismember(P + h.decode(), name):
                waiting.discard(name)
        time.sleep(0.2)
    if waiting:
        print(f"FAIL  timed out after {args.timeout:.0f} s; not stored yet: {sorted(waiting)}")
        sys.exit(1)
    print("every name is stored\n")

    # db1: name -> hash
    for name, h in expected.items():
        got = (db1.get(P + name) or b"").decode()
        check(got == h, f"db1 {name} -> {got}")
    h_obama = expected["obama.jpg"]

    # db2: hash -> set of names
    names = {n.decode() for n in db2.smembers(P + h_obama)}
    check({"obama.jpg", COPY} <= names, f"db2 {h_obama[:12]}… has both names: {sorted(names)}")

    # db3: hash -> set of 1024-byte encodings, 128 little-endian float64 each
    faces = {}
    for name in OBAMAS + [BIDEN]:
        members = db3.smembers(P + expected[name])
        sizes = sorted(len(m) for m in members)
        check(len(members) == 1 and sizes == [1024], f"db3 {name}: {len(members)} face(s) of {sizes} bytes")
        faces[name] = [numpy.frombuffer(m, "<f8") for m in members if len(m) == 1024]
        check(all(f.shape == (128,) and numpy.isfinite(f).all() for f in faces[name]),
              f"db3 {name}: 128 finite float64")

    # db4: hash -> set of hashes of the other images sharing a face, both directions
    links = {name: {m.decode() for m in db4.smembers(P + expected[name])} for name in faces}
    for name in OBAMAS:
        others = {expected[o] for o in OBAMAS if o != name}
        check(links[name] == others, f"db4 {name} linked to the 5 other Obama images "
              f"({len(links[name] & others)} of 5, {len(links[name] - others)} other)")
    check(not db4.exists(P + expected[BIDEN]), f"db4 {BIDEN} has no key")
    by_hash = {h: n for n, h in expected.items() if n != COPY}
    asymmetric = [(a, b) for a in links for b in map(by_hash.get, links[a])
                  if b is not None and expected[a] not in links[b]]
    check(not asymmetric, f"db4 is symmetric {asymmetric or ''}")

    # The links agree with the distances between the stored encodings.
    for a, b in itertools.combinations(faces, 2):
        d = min((numpy.linalg.norm(x - y) for x in faces[a] for y in faces[b]), default=numpy.inf)
        linked = expected[b] in links[a]
        check((d <= TOLERANCE) == linked, f"distance {a} / {b} = {d:.3f} "
              f"{'<=' if d <= TOLERANCE else '>'} {TOLERANCE}, {'linked' if linked else 'not linked'}")

    print(f"\n{len(failures)} check(s) failed" if failures else "\nall checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    try:
        main()
    except redis.RedisError as e:
        sys.exit(f"FAIL  redis: {e}")
