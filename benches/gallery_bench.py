#!/usr/bin/env python3
"""The gallery with 10,000 images (issue 14): `facerec serve` with recorded encodings over a
folder of synthetic images, then the /api/v1 routes the page uses, timed, and the page itself
in headless Chromium (benches/gallery_browser.mjs). Not run in CI: a manual benchmark.

    ~/.cache/facerec/venv/bin/python benches/gallery_bench.py --binary target/release/facerec
    ... --images 1000 --requests 50 --no-browser        # a quick look
    ... --workdir /tmp/gb; ... --workdir /tmp/gb --reuse   # keep the data; re-measure without a scan

Makes --images distinct JPEGs (320x240 or 240x320, a smooth random background with a drawn
"face" in every face box, so the thumbnails are real), a recording (format
facerec-recorded-encodings/1) giving each 1 or 2 faces whose encodings come from about
N/4.5 synthetic people (3 to 5 faces each, ~0.3 apart within a person, ~1.4 between
people), so an image has about 3 to 6 matches at the default tolerance 0.6. Starts
`facerec serve --recorded REC --index TMP/index TMP/images` on a free loopback port and
times the scan (start to the printed URL). Then, one keep-alive connection each, sequential:
the first page, a page ~100 pages deep, /images/{hash}, /matches, /thumbnail, /people; a
short concurrent run; a walk of every page (checks that paging returns each image once).
Memory: the server's VmHWM from /proc. The browser part needs node, /usr/bin/chromium and
playwright-core (tests/browser/node_modules, or PLAYWRIGHT_CORE=<its folder>).

Needs Python 3 with Pillow (the venv of scripts/python-env.sh has it). Everything lives in
a temporary folder (--workdir to keep it) removed at the end; traffic only on 127.0.0.1.
Output: progress on stderr, the markdown section on stdout (--markdown, --json: files too).
"""
import argparse
import datetime
import gzip
import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    from PIL import Image, ImageDraw
except ImportError:  # pragma: no cover
    sys.exit("Pillow is needed: run with ~/.cache/facerec/venv/bin/python (scripts/python-env.sh)")


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- images and recording


def person_vectors(rng, count):
    """Random unit vectors in 128 dimensions: one per synthetic person."""
    out = []
    for _ in range(count):
        v = [rng.gauss(0, 1) for _ in range(128)]
        n = sum(x * x for x in v) ** 0.5
        out.append([x / n for x in v])
    return out


def make_data(folder, count, seed):
    """Writes `count` JPEGs into `folder`; returns the recording's image entries."""
    rng = random.Random(seed)
    sizes = [(320, 240) if rng.random() < 0.8 else (240, 320) for _ in range(count)]
    nfaces = [1 if rng.random() < 0.5 else 2 for _ in range(count)]
    # Each person has 3 to 5 faces, spread over different images.
    slots = []
    person = 0
    while len(slots) < sum(nfaces):
        slots += [person] * rng.randint(3, 5)
        person += 1
    slots = slots[: sum(nfaces)]
    rng.shuffle(slots)
    centers = person_vectors(rng, person)
    images, seen, at = [], set(), 0
    for i in range(count):
        w, h = sizes[i]
        small = Image.new("RGB", (4, 3))
        small.putdata([tuple(rng.randrange(40, 230) for _ in range(3)) for _ in range(12)])
        img = small.resize((w, h), Image.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 5)):  # some shapes behind
            x0, y0 = rng.randrange(w), rng.randrange(h)
            draw.rectangle([x0, y0, x0 + rng.randrange(20, 120), y0 + rng.randrange(20, 120)],
                           fill=tuple(rng.randrange(256) for _ in range(3)))
        faces = []
        for _ in range(nfaces[i]):
            side = rng.randint(50, 100)
            left, top = rng.randrange(0, w - side), rng.randrange(0, h - side)
            draw.ellipse([left + 6, top, left + side - 6, top + side],
                         fill=(rng.randrange(170, 240), rng.randrange(120, 190), rng.randrange(90, 160)))
            for ex in (0.33, 0.62):  # eyes, so a crop looks like something
                cx, cy = left + side * ex, top + side * 0.4
                draw.ellipse([cx - 4, cy - 3, cx + 4, cy + 3], fill=(30, 30, 30))
            center = centers[slots[at]]
            at += 1
            enc = [round(c + rng.gauss(0, 0.02), 6) for c in center]
            faces.append({"top": top, "right": left + side, "bottom": top + side, "left": left, "encoding": enc})
        draw.text((6, h - 16), f"#{i}", fill=(0, 0, 0))
        name = f"img{i:05d}.jpg"
        path = os.path.join(folder, name)
        img.save(path, "JPEG", quality=85)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest in seen:
            raise SystemExit(f"{name}: duplicate image bytes (seed {seed})")
        seen.add(digest)
        images.append({"hash": digest, "name": name, "width": w, "height": h, "faces": faces})
    return images, person


# ---------------------------------------------------------------- HTTP timing


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path):
        """(status, body bytes, seconds)."""
        t = time.perf_counter()
        try:
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            body = r.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            body = r.read()
        return r.status, body, time.perf_counter() - t

    def json(self, path):
        status, body, _ = self.get(path)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(times, sizes=None):
    ms = [t * 1000 for t in times]
    out = {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms), "mean_ms": statistics.mean(ms)}
    if sizes:
        out["mean_bytes"] = statistics.mean(sizes)
    return out


def timed(client, paths, budget_s):
    """GETs each path in turn (stops after budget_s); every answer must be 200."""
    times, sizes, start = [], [], time.perf_counter()
    for path in paths:
        status, body, dt = client.get(path)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
        times.append(dt)
        sizes.append(len(body))
        if time.perf_counter() - start > budget_s:
            break
    return summary(times, sizes)


def concurrent(port, paths, threads, per_thread):
    """threads clients, each GETting per_thread paths; latency summary and requests/s."""
    results, errors = [], []

    def run(k):
        c = Client(port)
        mine = []
        for j in range(per_thread):
            status, _, dt = c.get(paths[(k * per_thread + j) % len(paths)])
            if status != 200:
                errors.append(status)
            mine.append(dt)
        results.extend(mine)

    t = time.perf_counter()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    wall = time.perf_counter() - t
    out = summary(results)
    out.update(rps=len(results) / wall, threads=threads, errors=len(errors))
    return out


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024  # MiB
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


# ---------------------------------------------------------------- the run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("FACEREC", os.path.join(ROOT, "target", "release", "facerec")))
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--requests", type=int, default=200, help="sequential requests per route")
    ap.add_argument("--budget", type=float, default=60, help="most seconds per route")
    ap.add_argument("--threads", type=int, default=8, help="clients in the concurrent run")
    ap.add_argument("--deep", type=int, default=100, help="pages walked for the deep page")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--workdir", help="keep the images, recording and index here")
    ap.add_argument("--reuse", action="store_true",
                    help="with --workdir holding a previous run's recording and index: serve them, no scan")
    ap.add_argument("--serve-arg", action="append", default=[], help="one more argument for facerec serve")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="facerec-gallery-")
    os.makedirs(os.path.join(work, "images"), exist_ok=True)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "cores": os.cpu_count(), "binary": os.path.abspath(args.binary),
        "images": args.images, "load_before": loadavg(),
    }
    try:
        result["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        result["commit"] = "?"
    server = None
    try:
        rec = os.path.join(work, "recording.json")
        index = os.path.join(work, "index")
        reuse = args.reuse and os.path.exists(rec) and os.path.exists(index)
        if reuse:
            log(f"reusing {rec} and {index}: no scan")
            with open(rec) as f:
                images = json.load(f)["images"]
            with open(os.path.join(work, "people.json")) as f:
                people = json.load(f)
        else:
            log(f"making {args.images} images in {work}")
            t = time.perf_counter()
            images, people = make_data(os.path.join(work, "images"), args.images, args.seed)
            with open(rec, "w") as f:
                json.dump({"format": "facerec-recorded-encodings/1", "fingerprint": "gallery-bench synthetic",
                           "images": images}, f)
            with open(os.path.join(work, "people.json"), "w") as f:
                json.dump(people, f)
            if os.path.exists(index):  # a kept --workdir: start empty
                os.remove(index)
            log(f"made them in {time.perf_counter() - t:.0f} s")
        faces = sum(len(i["faces"]) for i in images)
        result.update(images=len(images), faces=faces, people=people, reused=reuse,
                      folder_mb=sum(os.path.getsize(os.path.join(work, "images", i["name"])) for i in images) / 2**20)
        log(f"{faces} faces of {people} people, {result['folder_mb']:.1f} MiB of JPEG")

        port = free_port()
        cmd = [args.binary, "serve", "--recorded", rec, "--index", index,
               "--addr", f"127.0.0.1:{port}", *args.serve_arg] + ([] if reuse else [os.path.join(work, "images")])
        log("starting " + " ".join(cmd))
        t = time.perf_counter()
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(work, "serve.log"), "w"),
                                  text=True, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        for line in server.stdout:
            if "facerec is running at" in line:
                break
        else:
            raise SystemExit(f"serve exited with {server.wait()}: see {work}/serve.log")
        result["scan_s"] = time.perf_counter() - t
        result["mem_after_scan"] = proc_status(server.pid)
        log(f"scanned in {result['scan_s']:.1f} s; {result['mem_after_scan']}")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()

        c = Client(port)
        # Paging: every image once, newest first.
        t = time.perf_counter()
        seen, cursor, pages = [], None, 0
        while True:
            page = c.json("/api/v1/images?limit=100" + (f"&cursor={cursor}" if cursor else ""))
            seen += [v["hash"] for v in page["images"]]
            pages += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
        result["walk"] = {"pages": pages, "images": len(seen), "distinct": len(set(seen)),
                          "all": set(seen) == {i["hash"] for i in images}, "s": time.perf_counter() - t}
        log(f"walk: {result['walk']}")

        rng = random.Random(args.seed)
        hashes = [i["hash"] for i in images]
        sample = [rng.choice(hashes) for _ in range(args.requests)]
        cursor = None
        for _ in range(args.deep):
            cursor = c.json("/api/v1/images?limit=50" + (f"&cursor={cursor}" if cursor else "")).get("next_cursor")
        first = c.json("/api/v1/images?limit=50")
        result["first_page_json_bytes"] = len(json.dumps(first))
        counts = [len(c.json(f"/api/v1/images/{h}/matches")) for h in sample[:100]]
        result["matches_per_image"] = {"mean": statistics.mean(counts), "min": min(counts), "max": max(counts)}
        people_doc = c.json("/api/v1/people?limit=200")
        result["people_returned"] = len(people_doc["people"])
        log(f"matches per image {result['matches_per_image']}, people returned {result['people_returned']}")

        routes = {
            "GET /api/v1/images?limit=50 (first page)": ["/api/v1/images?limit=50"] * args.requests,
            f"GET /api/v1/images?limit=50 (page {args.deep + 1})": [f"/api/v1/images?limit=50&cursor={cursor}"] * args.requests,
            "GET /api/v1/images?limit=24 (first page, as the page asks)": ["/api/v1/images?limit=24"] * args.requests,
            "GET /api/v1/images/{hash}": [f"/api/v1/images/{h}" for h in sample],
            "GET /api/v1/images/{hash}/matches": [f"/api/v1/images/{h}/matches" for h in sample],
            "GET /api/v1/images/{hash}/thumbnail": [f"/api/v1/images/{h}/thumbnail" for h in sample],
            "GET /api/v1/people?limit=200": ["/api/v1/people?limit=200"] * args.requests,
            "GET /api/v1/people?limit=1000": ["/api/v1/people?limit=1000"] * args.requests,
        }
        result["sequential"] = {}
        for name, paths in routes.items():
            result["sequential"][name] = timed(c, paths, args.budget)
            log(f"{name}: {result['sequential'][name]}")
        result["concurrent"] = {}
        for name, paths in (("GET /api/v1/images?limit=50 (first page)", ["/api/v1/images?limit=50"]),
                            ("GET /api/v1/images/{hash}", [f"/api/v1/images/{h}" for h in sample]),
                            ("GET /api/v1/images/{hash}/thumbnail", [f"/api/v1/images/{h}/thumbnail" for h in sample])):
            result["concurrent"][name] = concurrent(port, paths, args.threads, max(1, args.requests // args.threads))
            log(f"{name} x{args.threads}: {result['concurrent'][name]}")

        if not args.no_browser:
            log("browser")
            out = subprocess.run(["node", os.path.join(ROOT, "benches", "gallery_browser.mjs"), f"http://127.0.0.1:{port}"],
                                 capture_output=True, text=True, timeout=600)
            sys.stderr.write(out.stderr)
            if out.returncode != 0:
                raise SystemExit(f"gallery_browser.mjs failed ({out.returncode})")
            result["browser"] = json.loads(out.stdout)
            # What gzip would make of the first load's HTML, CSS, JS and JSON (the server sends them as they are).
            raw = gz = 0
            for path in result["browser"]["first_load"]["paths"]:
                status, body, _ = c.get(path)
                raw += len(body)
                gz += len(gzip.compress(body, 6))
            result["browser"]["first_load"]["gzip"] = {"raw": raw, "gzip": gz}
        result["mem_end"] = proc_status(server.pid)
        result["load_after"] = loadavg()
    finally:
        if server and server.poll() is None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    md = markdown(result)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def markdown(r):
    kb = lambda b: f"{b / 1024:.1f} KB"  # noqa: E731
    lines = [
        f"Measured by `benches/gallery_bench.py` ({r['date']}): machine {r['cpu']}, {r['cores']} cores, shared "
        f"(load average {r['load_before']} before, {r.get('load_after', '?')} after); binary `{r['binary']}`; commit {r['commit']}.",
        f"{r['images']:,} synthetic JPEGs ({r['folder_mb']:.0f} MiB), {r['faces']:,} faces of {r['people']:,} people, "
        f"recorded encodings (`facerec serve --recorded`), thumbnails 256 px, embedded index in a file.",
        "",
        (f"- Scan: none (--reuse: the index of an earlier run, served without a folder; start to the printed URL "
         f"{r['scan_s']:.1f} s). " if r["reused"] else
         f"- Scan (start to the printed URL, {r['images']:,} images stored): {r['scan_s']:.1f} s. ") +
        f"RSS after the scan {r['mem_after_scan']['VmRSS']:.0f} MiB; peak (VmHWM) at the end {r['mem_end']['VmHWM']:.0f} MiB.",
        f"- Paging: {r['walk']['pages']} pages of 100 returned {r['walk']['images']:,} images, {r['walk']['distinct']:,} distinct, "
        f"{'all' if r['walk']['all'] else 'NOT all'} of the stored ones ({r['walk']['s']:.1f} s).",
        f"- Matches per image (100 sampled): mean {r['matches_per_image']['mean']:.1f}, {r['matches_per_image']['min']} to "
        f"{r['matches_per_image']['max']}; /people?limit=200 returned {r['people_returned']} people.",
        "",
        "| route (sequential, one keep-alive connection) | requests | p50 ms | p99 ms | max ms | body |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in r["sequential"].items():
        lines.append(f"| `{name}` | {s['n']} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} | {kb(s['mean_bytes'])} |")
    lines += ["", "| route (concurrent) | clients | requests | p50 ms | p99 ms | requests/s |", "|---|---|---|---|---|---|"]
    for name, s in r["concurrent"].items():
        lines.append(f"| `{name}` | {s['threads']} | {s['n']} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['rps']:.0f} |")
    b = r.get("browser")
    if b:
        lines += ["", browser_markdown(b)]
    return "\n".join(lines) + "\n"


def browser_markdown(b):
    kb = lambda n: f"{n / 1024:.1f} KB"  # noqa: E731
    fl = b["first_load"]
    lines = [
        f"Headless Chromium ({b['chromium']}), viewport {b['viewport']}, a fresh profile (empty cache):",
        "",
        "| page, first load | value |",
        "|---|---|",
        f"| navigation to the first 20 cards in the DOM | {fl['cards20_ms']:.0f} ms |",
        f"| navigation to the first 20 cards' thumbnails loaded | {fl['thumbs20_ms']:.0f} ms |",
        f"| cards after the first load settled | {fl['cards']} |",
        f"| transferred, page + assets + API (no thumbnails) | {kb(fl['bytes_no_thumbs'])} in {fl['requests_no_thumbs']} requests |",
        f"| transferred, thumbnails | {kb(fl['bytes_thumbs'])} in {fl['thumbs']} requests |",
        f"| transferred, total | {kb(fl['bytes_total'])} |",
    ]
    for kind, n in sorted(fl["by_kind"].items()):
        lines.append(f"| of which {kind} | {kb(n)} |")
    if "gzip" in fl:
        lines.append(f"| the same bodies without thumbnails, gzip -6 (not sent so) | {kb(fl['gzip']['raw'])} -> {kb(fl['gzip']['gzip'])} |")
    sv = b["second_visit"]
    lines.append(f"| second visit, same profile: first 20 cards / transferred | {sv['cards20_ms']:.0f} ms / {kb(sv['bytes_total'])} "
                 f"({kb(sv['bytes_thumbs'])} thumbnails) |")
    lines += ["", "| scroll to the bottom | cards | to the cards in the DOM | to the next frame | API call |", "|---|---|---|---|---|"]
    for i, p in enumerate(b["pages"], 1):
        lines.append(f"| page {i} | {p['cards']} | {p['append_ms']:.0f} ms | {p['frame_ms']:.0f} ms | {p['api_ms']:.0f} ms |")
    lt = b["main_thread"]
    lines += [
        "",
        f"Main thread over the whole run: {lt['longtasks']} long tasks (> 50 ms), longest {lt['longest_ms']:.0f} ms, "
        f"{lt['over200']} over 200 ms; longest gap between animation frames {lt['max_frame_gap_ms']:.0f} ms. "
        f"DOM after {len(b['pages'])} more pages: {b['dom_nodes']} elements, {b['cards']} cards, "
        f"JS heap {b['js_heap_mb']:.1f} MB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
