#!/usr/bin/env python3
"""Fill Redis with N synthetic stored images, or delete every key under a prefix.

Each synthetic image `synthetic/<i>.jpg` gets db 1 (name -> hash), db 2 (hash -> {name})
and db 3 (hash -> random encodings) entries, exactly as a worker stores a scanned image, so
a worker started afterwards compares every new image with them. The encodings are 128
float64 drawn from N(0, std^2): real dlib encodings have a per-component spread of 0.122
(mean |component| 0.095, norm 1.36-1.41; measured on face_recognition's seven sample
images), so a synthetic vector has the norm of a real one. Two of them are about
std * sqrt(256) = 1.9 apart; every vector is also checked to be more than 0.6 from the
others of its batch and from the sample faces, so they never match anything.

    python benches/reference/fill_redis.py --images 10000 --key-prefix bench:
    python benches/reference/fill_redis.py --flush-prefix --key-prefix bench:
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy
import redis

TOLERANCE = 0.6
SAMPLE_ENCODINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "fixtures", "encodings", "face_recognition_test_images.json")


def glob_escape(text):
    """A SCAN MATCH pattern matching keys that start with `text` literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text) + "*"


def flush(args):
    if not args.key_prefix:
        sys.exit("refusing to flush with an empty --key-prefix (that is every key)")
    total = 0
    for n in range(5):
        db = redis.Redis(args.redis_host, args.redis_port, db=n)
        keys, unlinked = [], 0
        for key in db.scan_iter(match=glob_escape(args.key_prefix), count=1000):
            keys.append(key)
            if len(keys) == 1000:
                unlinked += db.unlink(*keys)
                keys = []
        if keys:
            unlinked += db.unlink(*keys)
        print(f"db{n}: unlinked {unlinked} keys starting with {args.key_prefix!r}")
        total += unlinked
    return total


def sample_faces(path):
    with open(path) as f:
        images = json.load(f)["images"]
    return numpy.array([face["encoding"] for image in images for face in image["faces"]])


def far_apart(batch, samples, std, rng):
    """Redraws rows until each is > TOLERANCE from the other rows and from `samples`."""
    while True:
        squares = (batch ** 2).sum(axis=1)
        within = squares[:, None] + squares[None, :] - 2 * batch @ batch.T
        numpy.fill_diagonal(within, numpy.inf)
        to_samples = squares[:, None] + (samples ** 2).sum(axis=1)[None, :] - 2 * batch @ samples.T
        nearest = numpy.sqrt(numpy.maximum(numpy.minimum(within.min(axis=1), to_samples.min(axis=1)), 0))
        close = nearest <= TOLERANCE + 0.01  # margin for rounding
        if not close.any():
            return nearest.min()
        batch[close] = rng.normal(0.0, std, size=(int(close.sum()), batch.shape[1]))


def fill(args):
    rng = numpy.random.default_rng(args.seed)
    samples = sample_faces(args.sample_encodings)
    print(f"sample faces: {len(samples)}, per-component std {samples.std():.4f}, "
          f"mean |component| {numpy.abs(samples).mean():.4f}; synthetic std {args.std}")
    dbs = [redis.Redis(args.redis_host, args.redis_port, db=n) for n in (1, 2, 3)]
    P, per_image, closest = args.key_prefix, args.faces_per_image, numpy.inf
    for start in range(0, args.images, args.batch):
        count = min(args.batch, args.images - start)
        batch = rng.normal(0.0, args.std, size=(count * per_image, 128))
        closest = min(closest, far_apart(batch, samples, args.std, rng))
        names_db, images_db, faces_db = (db.pipeline(transaction=False) for db in dbs)
        for i in range(count):
            name = f"synthetic/{start + i}.jpg"
            image_hash = hashlib.sha256(name.encode()).hexdigest()
            names_db.set(P + name, image_hash)
            images_db.delete(P + image_hash)
            images_db.sadd(P + image_hash, name)
            faces_db.delete(P + image_hash)
            # Through float32 and back, as dlib's encodings are (they are computed in float32).
            rows = batch[i * per_image:(i + 1) * per_image].astype("<f4").astype("<f8")
            faces_db.sadd(P + image_hash, *(row.tobytes() for row in rows))
        for pipe in (faces_db, images_db, names_db):  # names last, as a worker does
            pipe.execute()
        if (start // args.batch) % 100 == 99:
            print(f"  {start + count} images", file=sys.stderr)
    print(f"stored {args.images} images with {per_image} face(s) each under {P!r}; "
          f"closest synthetic face to another face of its batch or a sample face: {closest:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=0, help="how many synthetic images to store")
    p.add_argument("--faces-per-image", type=int, default=1)
    p.add_argument("--key-prefix", default="", help="put in front of every Redis key")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--std", type=float, default=0.12, help="per-component standard deviation")
    p.add_argument("--batch", type=int, default=1000, help="images per Redis pipeline")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--sample-encodings", default=SAMPLE_ENCODINGS,
                   help="recorded encodings of the sample images (never to be matched)")
    p.add_argument("--flush-prefix", action="store_true",
                   help="instead of filling: delete every key starting with --key-prefix in db 0-4")
    args = p.parse_args()
    started = time.perf_counter()
    if args.flush_prefix:
        flush(args)
    elif args.images > 0:
        fill(args)
    else:
        p.error("give --images N or --flush-prefix")
    print(f"elapsed {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
