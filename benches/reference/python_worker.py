#!/usr/bin/env python3
"""The seed design, written plainly in Python: the baseline facerec is benchmarked against.

One message at a time: decode the image, find and encode its faces with face_recognition,
compare them with every stored face (db 3, read back from Redis for every image), record the
matches both ways (db 4), store the faces (db 3) and the name (db 2, db 1), log, ack.
Deliberately not optimised: it is what a user of the seed would write.

    python benches/reference/python_worker.py --timings times.csv --exit-when-idle 10
"""
import argparse
import base64
import hashlib
import io
import json
import socket
import sys
import time

import face_recognition
import numpy
import pika
import redis

TOLERANCE = 0.6
CSV_HEADER = "hash,stored_images_before,decode_detect_encode_seconds,compare_seconds,total_seconds\n"


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def parse(properties, body):
    """Returns (hash, name, image bytes) of a JSON message or a raw image with headers."""
    headers = properties.headers or {}
    if "name" in headers:
        image = body
        name = text(headers["name"])
        image_hash = text(headers["hash"]) if "hash" in headers else None
    else:
        message = json.loads(body)
        name = message["name"]
        image = message["image"]
        if isinstance(image, dict):  # jsonpickle's bytes form
            image = image["py/b64"]
        image = base64.b64decode(image)
        image_hash = message.get("hash")
    if not image_hash:
        image_hash = hashlib.sha256(image).hexdigest()
    return image_hash, name, image


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Heartbeats off: a BlockingConnection cannot answer them while a long compare runs,
    # and with 100k+ stored faces the compare takes longer than RabbitMQ's 60 s timeout.
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=0")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--queue", default="toWorker")
    p.add_argument("--exchange", default="toWorker")
    p.add_argument("--routing-key", default="toWorker")
    p.add_argument("--logs-exchange", default="logs")
    p.add_argument("--key-prefix", default="", help="put in front of every Redis key")
    p.add_argument("--timings", metavar="FILE", help="append one CSV line per scanned image")
    p.add_argument("--exit-when-idle", metavar="SECONDS", type=float,
                   help="exit once no message arrived for this long")
    args = p.parse_args()
    prefix = args.key_prefix

    names_db = redis.Redis(args.redis_host, args.redis_port, db=1)   # name -> hash
    images_db = redis.Redis(args.redis_host, args.redis_port, db=2)  # hash -> names
    faces_db = redis.Redis(args.redis_host, args.redis_port, db=3)   # hash -> encodings
    matches_db = redis.Redis(args.redis_host, args.redis_port, db=4)  # hash -> hashes

    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    channel.exchange_declare(exchange=args.exchange, exchange_type="direct", durable=True)
    channel.queue_declare(queue=args.queue, durable=True)
    channel.queue_bind(queue=args.queue, exchange=args.exchange, routing_key=args.routing_key)
    channel.exchange_declare(exchange=args.logs_exchange, exchange_type="topic")
    channel.basic_qos(prefetch_count=1)
    hostname = socket.gethostname()

    def log(level, line):
        channel.basic_publish(exchange=args.logs_exchange,
                              routing_key=f"{hostname}.worker.{level}", body=line)

    timings = open(args.timings, "a") if args.timings else None
    if timings and timings.tell() == 0:
        timings.write(CSV_HEADER)
    print(f"waiting for images on queue {args.queue!r}", file=sys.stderr)

    for method, properties, body in channel.consume(args.queue, inactivity_timeout=args.exit_when_idle):
        if method is None:  # nothing arrived for --exit-when-idle seconds
            break
        started = time.perf_counter()
        try:
            image_hash, name, image = parse(properties, body)
        except Exception as e:
            print(f"dropping an unreadable message: {e!r}", file=sys.stderr)
            channel.basic_nack(method.delivery_tag, requeue=False)
            continue
        log("debug", f'received {image_hash} "{name}" ({len(image)} bytes)')

        if images_db.exists(prefix + image_hash):
            images_db.sadd(prefix + image_hash, name)
            names_db.set(prefix + name, image_hash)
            log("info", f'{image_hash} "{name}": already known, name added')
            channel.basic_ack(method.delivery_tag)
            print(f'{image_hash[:12]} "{name}": already known, name added', file=sys.stderr)
            continue

        encoding_started = time.perf_counter()
        try:
            picture = face_recognition.load_image_file(io.BytesIO(image))
        except Exception as e:
            print(f'dropping {image_hash} "{name}": not an image: {e!r}', file=sys.stderr)
            channel.basic_nack(method.delivery_tag, requeue=False)
            continue
        locations = face_recognition.face_locations(picture)
        encodings = face_recognition.face_encodings(picture, locations)
        encoded = time.perf_counter()

        stored_before = 0
        matches = set()
        if encodings:
            for key in faces_db.scan_iter(match=prefix + "*"):
                other = key.decode()[len(prefix):]
                if other == image_hash:
                    continue
                stored_before += 1
                known = [numpy.frombuffer(e, dtype="<f8") for e in faces_db.smembers(key)]
                for encoding in encodings:
                    if any(face_recognition.face_distance(known, encoding) <= TOLERANCE):
                        matches_db.sadd(prefix + image_hash, other)
                        matches_db.sadd(prefix + other, image_hash)
                        matches.add(other)
                        break
        compared = time.perf_counter()

        for encoding in encodings:
            faces_db.sadd(prefix + image_hash, encoding.astype("<f8").tobytes())
        images_db.sadd(prefix + image_hash, name)
        names_db.set(prefix + name, image_hash)
        log("info", f'{image_hash} "{name}": {len(encodings)} faces, '
                    f'{len(matches)} matching images {" ".join(sorted(matches))}'.rstrip())
        channel.basic_ack(method.delivery_tag)
        finished = time.perf_counter()

        print(f'{image_hash[:12]} "{name}": {len(encodings)} faces, {len(matches)} matches, '
              f"{stored_before} stored images, encode {encoded - encoding_started:.3f} s, "
              f"compare {compared - encoded:.3f} s, total {finished - started:.3f} s", file=sys.stderr)
        if timings:
            timings.write(f"{image_hash},{stored_before},{encoded - encoding_started:.6f},"
                          f"{compared - encoded:.6f},{finished - started:.6f}\n")
            timings.flush()

    print("idle, exiting", file=sys.stderr)
    channel.cancel()
    connection.close()


if __name__ == "__main__":
    main()
