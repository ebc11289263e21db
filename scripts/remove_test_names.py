"""Removes what a script's test run created on the shared local servers: the queues
NAME and NAME.dead, the exchanges NAME and NAME.logs, and every Redis key starting with
NAME: in db 0-4. Never touches anything else.

Usage: python scripts/remove_test_names.py NAME   (the venv of scripts/python-env.sh)
"""
import sys

import pika
import redis

name = sys.argv[1]
channel = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1")).channel()
for q in (name, name + ".dead"):
    channel.queue_delete(q)
for e in (name, name + ".logs"):
    channel.exchange_delete(e)
for db in range(5):
    r = redis.Redis(host="127.0.0.1", db=db)
    for key in r.scan_iter(match=name + ":*", count=1000):
        r.delete(key)
