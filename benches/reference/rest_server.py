#!/usr/bin/env python3
"""The course's REST front-end as students write it: the baseline `facerec api` is measured against.

Flask + pika + redis-py, run under gunicorn with 2 sync workers (gunicorn.conf.py beside this
file). Like the course design it opens a NEW RabbitMQ connection for every image it queues;
unlike many student versions it declares what it publishes to, closes the connection it
opened, waits for the broker's publisher confirm before answering 200, and never unpickles
what a client sent.

    ~/.cache/facerec/rest-venv/bin/gunicorn -c benches/reference/gunicorn.conf.py

Routes (the contract; response bodies are exactly what jsonpickle.encode / json.dumps print):
    GET  /                      200 text/html, a short page
    POST /scan/image/<name>     body = the image file; 200 {"hash": "<sha256 hex of the body>"}
    POST /scan/url              body {"url": "http://..."}; 200 {"hash": "..."}
    GET  /match/<hash>          200 ["name", ...]: every name (db 2) of every image in db 4's
                                set for <hash>, deduplicated and sorted; [] when there are none
Errors (not in the course's design; every body is JSON {"error": "..."}): 400 empty image body
or a /scan/url body without an http(s) "url"; 502 the URL could not be fetched; 503 RabbitMQ
or Redis unavailable; 404, 405, 413 (over 48 MiB) from Flask.

Settings (environment): REDIS_HOST, REDIS_PORT, RABBITMQ_HOST, RABBITMQ_PORT,
FACEREC_REDIS_KEY_PREFIX (put in front of every Redis key, as `facerec worker
--redis-key-prefix`), FACEREC_EXCHANGE, FACEREC_QUEUE, FACEREC_ROUTING_KEY,
FACEREC_LOGS_EXCHANGE, FACEREC_HOSTNAME (log routing keys), FACEREC_FETCH_TIMEOUT (seconds).
"""
import base64
import hashlib
import json
import os
import socket

import pika
import redis
import requests
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

REDIS_HOST = os.getenv("REDIS_HOST") or "localhost"
REDIS_PORT = int(os.getenv("REDIS_PORT") or 6379)
RABBITMQ_HOST = os.getenv("RABBITMQ_HOST") or "localhost"
RABBITMQ_PORT = int(os.getenv("RABBITMQ_PORT") or 5672)
PREFIX = os.getenv("FACEREC_REDIS_KEY_PREFIX") or ""
EXCHANGE = os.getenv("FACEREC_EXCHANGE") or "toWorker"
QUEUE = os.getenv("FACEREC_QUEUE") or "toWorker"
ROUTING_KEY = os.getenv("FACEREC_ROUTING_KEY") or QUEUE
LOGS_EXCHANGE = os.getenv("FACEREC_LOGS_EXCHANGE") or "logs"
HOSTNAME = os.getenv("FACEREC_HOSTNAME") or socket.gethostname()
FETCH_TIMEOUT = float(os.getenv("FACEREC_FETCH_TIMEOUT") or 10)
MAX_IMAGE_BYTES = 48 * 1024 * 1024  # the worker's FACEREC_MAX_IMAGE_BYTES default

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = MAX_IMAGE_BYTES  # larger bodies: 413

# One client (and connection pool) per database, made in each gunicorn worker at import.
names_db = redis.Redis(REDIS_HOST, REDIS_PORT, db=1)    # name -> hash
images_db = redis.Redis(REDIS_HOST, REDIS_PORT, db=2)   # hash -> set of names
matches_db = redis.Redis(REDIS_HOST, REDIS_PORT, db=4)  # hash -> set of matching hashes


class BadRequest(Exception):
    status = 400


class FetchFailed(Exception):
    status = 502


def json_response(value, status=200):
    # jsonpickle.encode of a dict or list of strings is json.dumps with its default
    # separators: {"hash": "..."} and ["a", "b"], no trailing newline.
    return Response(json.dumps(value), status=status, mimetype="application/json")


@app.errorhandler(BadRequest)
@app.errorhandler(FetchFailed)
def client_error(e):
    return json_response({"error": str(e)}, e.status)


@app.errorhandler(HTTPException)
def http_error(e):  # 404, 405, 413...: JSON too, so a client's json.loads never fails
    return json_response({"error": f"{e.code} {e.name}"}, e.code)


@app.errorhandler(pika.exceptions.AMQPError)
@app.errorhandler(redis.RedisError)
def backend_error(e):
    app.logger.error("backend unavailable: %r", e)
    return json_response({"error": f"backend unavailable: {type(e).__name__}"}, 503)


@app.route("/", methods=["GET"])
def index():
    return ("<!doctype html><title>facerec</title><h1>facerec REST front-end</h1>"
            "<p>POST /scan/image/&lt;name&gt;, POST /scan/url, GET /match/&lt;hash&gt;</p>")


@app.route("/scan/image/<filename>", methods=["POST"])
def scan_image(filename):
    data = request.get_data()
    if not data:
        raise BadRequest("empty body: send the image file as the request body")
    return json_response({"hash": queue_image(filename, data, "/scan/image")})


@app.route("/scan/url", methods=["POST"])
def scan_url():
    # The course client sends jsonpickle.encode({"url": URL}), which is plain JSON. Parsed
    # with json, not jsonpickle.decode: that would build any Python object a client names.
    try:
        url = json.loads(request.get_data())["url"]
    except (ValueError, TypeError, KeyError) as e:
        raise BadRequest(f'body must be {{"url": "http://..."}}: {e!r}')
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadRequest("url must be an http:// or https:// URL")
    known = names_db.get(PREFIX + url)
    if known is not None:  # scanned before: its hash at once, nothing fetched
        return json_response({"hash": known.decode()})
    return json_response({"hash": queue_image(url, fetch(url), "/scan/url")})


@app.route("/match/<image_hash>", methods=["GET"])
def match(image_hash):
    names = set()
    for other in matches_db.smembers(PREFIX + image_hash):
        names.update(n.decode(errors="replace") for n in images_db.smembers(PREFIX + other.decode()))
    return json_response(sorted(names))


def fetch(url):
    """The body of a GET of url, at most MAX_IMAGE_BYTES."""
    try:
        with requests.get(url, timeout=FETCH_TIMEOUT, stream=True) as r:
            r.raise_for_status()
            data = bytearray()
            for chunk in r.iter_content(64 * 1024):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise FetchFailed(f"{url}: larger than {MAX_IMAGE_BYTES} bytes")
    except requests.RequestException as e:
        raise FetchFailed(f"fetching {url}: {e}")
    if not data:
        raise FetchFailed(f"{url}: empty body")
    return bytes(data)


def queue_image(name, data, route):
    """Publishes the image for the workers over a new connection; returns its hash."""
    image_hash = hashlib.sha256(data).hexdigest()
    body = json.dumps({"hash": image_hash, "name": name,
                       "image": base64.b64encode(data).decode("ascii")})
    connection = pika.BlockingConnection(pika.ConnectionParameters(RABBITMQ_HOST, RABBITMQ_PORT))
    try:
        channel = declare(connection)
        log(channel, "debug", f"{route}: received {json.dumps(name)} ({len(data)} bytes)")
        channel.confirm_delivery()  # basic_publish now returns once the broker has it
        channel.basic_publish(EXCHANGE, ROUTING_KEY, body,
                              pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                              mandatory=True)
        log(channel, "info", f"{image_hash} {json.dumps(name)}: queued ({len(data)} bytes)")
    finally:
        if connection.is_open:
            connection.close()
    return image_hash


def declare(connection):
    """Declares the exchange and queue as the worker does (durable direct, durable queue,
    bound) and the logs exchange as pika does by default (topic, not durable). Ones that
    already exist with other flags are used as they are. Returns an open channel."""
    channel = connection.channel()
    for declare_one in (lambda ch: ch.exchange_declare(EXCHANGE, "direct", durable=True),
                        lambda ch: ch.queue_declare(QUEUE, durable=True),
                        lambda ch: ch.exchange_declare(LOGS_EXCHANGE, "topic")):
        try:
            declare_one(channel)
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code != 406:  # PRECONDITION_FAILED: exists with other flags
                raise
            channel = connection.channel()
    channel.queue_bind(QUEUE, EXCHANGE, routing_key=ROUTING_KEY)
    return channel


def log(channel, level, line):
    channel.basic_publish(LOGS_EXCHANGE, f"{HOSTNAME}.rest.{level}", line.encode())


if __name__ == "__main__":  # Flask's development server, for trying it out
    app.run(host="127.0.0.1", port=int(os.getenv("PORT") or 5000))
