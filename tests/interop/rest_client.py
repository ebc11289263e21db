#!/usr/bin/env python3
"""A client of the REST front-end that behaves like the course's rest-client.py.

    rest_client.py HOST:PORT image FILE REPS    POST FILE's bytes to /scan/image/<basename>
    rest_client.py HOST:PORT url URL REPS       POST {"url": URL} to /scan/url
    rest_client.py HOST:PORT match HASH REPS    GET /match/HASH

Each repetition prints "Response is <Response [200]>" and the decoded JSON body (as Python
prints it); the end prints "Took <ms> ms per operation". Same arguments and output as the
course client, no other options: a server that works with this works with that.
"""
import json
import os
import sys
import time
import warnings

import jsonpickle
import requests


def post_image(base, filename):
    with open(filename, "rb") as f:
        data = f.read()
    return requests.post(f"{base}/scan/image/{os.path.basename(filename)}", data=data,
                         headers={"content-type": "image/jpg"})


def post_url(base, url):
    return requests.post(f"{base}/scan/url", data=jsonpickle.encode({"url": url}),
                         headers={"content-type": "application/json"})


def get_match(base, image_hash):
    return requests.get(f"{base}/match/{image_hash}")


# jsonpickle 4 warns on every encode that its defaults change in 5.0; the output is the same.
warnings.filterwarnings("ignore", message="keys will default", category=DeprecationWarning)

COMMANDS = {"image": post_image, "url": post_url, "match": get_match}


def main(argv):
    if len(argv) != 5 or argv[2] not in COMMANDS:
        print(f"Usage: {argv[0]} <host:port> <cmd> <arg> <reps>")
        print("where <cmd> is image (arg: a file), url (arg: a URL) or match (arg: an image hash)")
        print("and <reps> is the number of repetitions to time")
        return 1
    base, command, arg, reps = f"http://{argv[1]}", COMMANDS[argv[2]], argv[3], int(argv[4])
    start = time.perf_counter()
    for _ in range(reps):
        response = command(base, arg)
        print("Response is", response)
        print(json.loads(response.text))
    print("Took", (time.perf_counter() - start) / reps * 1000, "ms per operation")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
