#!/usr/bin/env python3
"""Check a running REST front-end (and the workers behind it) with the course-style client.

Runs tests/interop/rest_client.py as a subprocess, as a user would: `image FILE 1` for each of
face_recognition's seven sample images, `url URL 1` for obama.jpg served by this script over
HTTP, waits until the workers have stored every image (db 2), then `match HASH 1` for each
image and compares the answer with what Redis holds: the sorted names (db 2) of every hash in
the image's db 4 set. Prints PASS/FAIL lines and exits 1 on any failure. Use a fresh key
prefix: the server and the workers must write under it.

    python tests/interop/test_rest.py --host 127.0.0.1:5000 --key-prefix rest1: \
        --images ~/.cache/facerec/images --url-base http://127.0.0.1:8765
"""
import argparse
import ast
import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import redis
import requests

SAMPLES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png",
           "obama_partial_face.jpg", "obama_partial_face2.jpg"]
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rest_client.py")

results = {"passed": 0, "failed": 0}


def check(ok, what):
    print(("PASS  " if ok else "FAIL  ") + what, flush=True)
    results["passed" if ok else "failed"] += 1
    return ok


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_client(args, *argv):
    """Runs rest_client.py HOST argv... and returns the decoded bodies it printed (None on error)."""
    cmd = [args.python, CLIENT, args.host, *argv]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        check(False, f"{' '.join(argv)}: rest_client.py did not finish in 120 s")
        return None
    lines = proc.stdout.splitlines()
    ok = (proc.returncode == 0 and len(lines) >= 3 and lines[0] == "Response is <Response [200]>"
          and re.fullmatch(r"Took [0-9.e+-]+ ms per operation", lines[-1]) is not None)
    if not ok:
        check(False, f"{' '.join(argv)}: exit {proc.returncode}, output {proc.stdout!r} {proc.stderr[-2000:]!r}")
        return None
    try:
        return ast.literal_eval(lines[1])  # the client prints json.loads(response.text)
    except (ValueError, SyntaxError) as e:
        check(False, f"{' '.join(argv)}: cannot read the printed body {lines[1]!r}: {e}")
        return None


def serve_images(directory, url_base):
    """Serves directory over HTTP at url_base's host and port (0: any free one); returns
    (server, its base URL, GET counts)."""
    parsed = urllib.parse.urlsplit(url_base)
    gets = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def do_GET(self):
            gets[self.path] = gets.get(self.path, 0) + 1
            super().do_GET()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer((parsed.hostname, parsed.port or 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{parsed.hostname}:{server.server_address[1]}", gets


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", required=True, help="the REST server, host:port")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--key-prefix", default="", help="the prefix the workers write under")
    p.add_argument("--images", default=os.path.expanduser("~/.cache/facerec/images"))
    p.add_argument("--url-base", default="http://127.0.0.1:0",
                   help="where this script serves --images for the url command (port 0: any free port)")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for the workers")
    p.add_argument("--python", default=sys.executable, help="interpreter for rest_client.py")
    p.add_argument("--cleanup", action="store_true",
                   help="afterwards delete every key starting with --key-prefix (db 0-4)")
    args = p.parse_args()
    P = args.key_prefix
    db = {n: redis.Redis(args.redis_host, args.redis_port, db=n) for n in range(5)}
    server, args.url_base, gets = serve_images(args.images, args.url_base)
    try:
        run(args, P, db, gets)
    finally:
        server.shutdown()
        if args.cleanup and P:
            pattern = re.sub(r"([*?\[\]\\])", r"\\\1", P) + "*"
            for n in range(5):
                for key in db[n].scan_iter(match=pattern, count=1000):
                    db[n].unlink(key)
    print(f"rest: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


def run(args, P, db, gets):
    base = f"http://{args.host}"
    r = requests.get(base + "/", timeout=10)
    check(r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html"),
          f"GET / -> {r.status_code} {r.headers.get('content-type')}")

    hashes = {name: sha256_file(os.path.join(args.images, name)) for name in SAMPLES}
    for name in SAMPLES:
        body = run_client(args, "image", os.path.join(args.images, name), "1")
        if body is not None:
            check(body == {"hash": hashes[name]}, f"image {name} -> {body}")

    url = args.url_base.rstrip("/") + "/obama.jpg"
    body = run_client(args, "url", url, "1")
    if body is not None:
        check(body == {"hash": hashes["obama.jpg"]}, f"url {url} -> {body}")
    check(gets.get("/obama.jpg") == 1, f"the server fetched {url} once ({gets.get('/obama.jpg', 0)})")

    # An image is stored once its db 2 set exists; the URL is one more name of obama.jpg's hash.
    expected_names = {(name, hashes[name]) for name in SAMPLES} | {(url, hashes["obama.jpg"])}
    deadline = time.monotonic() + args.timeout
    waiting = set(expected_names)
    while waiting and time.monotonic() < deadline:
        waiting = {(n, h) for n, h in waiting if not db[2].sismember(P + h, n)}
        if waiting:
            time.sleep(0.2)
    if not check(not waiting, f"every name stored in db 2 within {args.timeout:.0f} s"
                              f"{'; missing: ' + str(sorted(n for n, _ in waiting)) if waiting else ''}"):
        return
    for name, h in sorted(expected_names):
        got = (db[1].get(P + name) or b"").decode()
        check(got == h, f"db 1 {name} -> {got[:16]}")

    body = run_client(args, "url", url, "1")  # known now: answered from db 1, nothing fetched
    if body is not None:
        check(body == {"hash": hashes["obama.jpg"]}, f"url {url} again -> {body}")
    check(gets.get("/obama.jpg") == 1, f"a known URL is not fetched again ({gets.get('/obama.jpg', 0)} fetches)")

    some_match = False
    for name in SAMPLES:
        h = hashes[name]
        others = sorted(m.decode() for m in db[4].smembers(P + h))
        expected = sorted({n.decode() for m in others for n in db[2].smembers(P + m)})
        body = run_client(args, "match", h, "1")
        if body is not None:
            check(body == expected, f"match {name}: {len(body)} names, as db 4 + db 2 say "
                                    f"({len(others)} matching images){'' if body == expected else f' got {body}, expected {expected}'}")
        some_match = some_match or bool(expected)
    check(some_match, "at least one sample image has matches (else the match checks prove nothing)")
    body = run_client(args, "match", "0" * 64, "1")
    if body is not None:
        check(body == [], f"match of an unknown hash -> {body}")


if __name__ == "__main__":
    try:
        main()
    except (redis.RedisError, requests.RequestException) as e:
        print(f"FAIL  {e!r}")
        sys.exit(1)
