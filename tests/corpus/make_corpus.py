#!/usr/bin/env python3
"""Generates the bad-input corpus: messages a worker must refuse with a specific reason,
or process correctly, without crashing, looping or growing its memory.

Usage: make_corpus.py [--attacks] OUT_DIR IMAGES_DIR
Writes OUT_DIR/manifest.json: a list of {"id", "body" (file name), "headers", "expect"},
where expect is "dead:<text the reason must contain>" or "stored:<number of faces>".
Everything is generated here from face_recognition's sample images; nothing is downloaded.
`--attacks` adds the inputs of bombs.py (a progressive JPEG scan bomb, a padded JSON message)
before the last entry; without it the corpus is the one tests/corpus/main.rs expects.
"""
import argparse
import base64
import io
import json
import os
import struct
import zlib

import numpy
from PIL import Image

import bombs

# tests/corpus/main.rs runs the worker with --max-message-bytes 5000000: the padded message
# stays under it, so it must be processed, not refused for its size.
MESSAGE_LIMIT = 5_000_000

parser = argparse.ArgumentParser(description="Generates the bad-input corpus.")
parser.add_argument("out", help="output folder (manifest.json and one file per message)")
parser.add_argument("images", help="face_recognition's sample images")
parser.add_argument("--attacks", action="store_true", help="add the attack inputs of bombs.py")
cli = parser.parse_args()
out, images = cli.out, cli.images
os.makedirs(out, exist_ok=True)
manifest = []
rng = numpy.random.default_rng(1234)


def add(cid, body, expect, headers=None):
    path = f"{cid}.bin"
    with open(os.path.join(out, path), "wb") as f:
        f.write(body)
    manifest.append({"id": cid, "body": path, "headers": headers or {}, "expect": expect})


def as_json(name, data, **extra):
    return json.dumps({"name": name, "image": base64.b64encode(data).decode(), **extra}).encode()


def encoded(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


obama = Image.open(os.path.join(images, "obama.jpg")).convert("RGB")
obama_jpeg = open(os.path.join(images, "obama.jpg"), "rb").read()
obama_png = encoded(obama, "PNG")

add("empty-body", b"", "dead:message body is empty")
add("random-bytes", rng.bytes(4096), "dead:has no `name` header")
add("random-bytes-with-name", rng.bytes(4096), "dead:unknown format", {"name": "noise.bin"})
add("truncated-jpeg", as_json("half.jpg", obama_jpeg[: len(obama_jpeg) // 2]), "dead:Premature end of JPEG")
add("truncated-png", as_json("half.png", obama_png[: len(obama_png) // 2]), "dead:not a decodable image")
add("wrong-magic", as_json("liar.jpg", b"\xff\xd8\xff\xe0" + obama_png[4:]), "dead:not a decodable image")
add("json-missing-image", json.dumps({"name": "x.jpg"}).encode(), "dead:no `image` field")
add("json-missing-name", json.dumps({"image": "aGk="}).encode(), "dead:no `name` field")
add("json-wrong-types", json.dumps({"name": 7, "image": "aGk="}).encode(), "dead:`name` must be a string, got a number")
add("invalid-base64", json.dumps({"name": "x.jpg", "image": "%%%not*base64%%%"}).encode(), "dead:not valid base64")
add("image-not-bytes", json.dumps({"name": "x.jpg", "image": [1, 2, 3]}).encode(), "dead:`image` must be")
add("hash-with-space", json.dumps({"name": "x.jpg", "hash": "a b", "image": "aGk="}).encode(), "dead:invalid `hash`")
add("json-array", b"[1, 2, 3]", "dead:must be an object")
add("one-pixel", as_json("dot.png", encoded(Image.new("RGB", (1, 1)), "PNG")), "stored:0")
# A valid PNG header claiming 60000 x 60000 pixels, then a little compressed data: a
# decompression bomb must be refused from the header, before any allocation.
ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100000)) + png_chunk(b"IEND", b"")
add("png-bomb-60000x60000", as_json("bomb.png", bomb), "dead:60000x60000")
frames = [Image.fromarray(rng.integers(0, 255, (16, 16), dtype=numpy.uint8)).convert("P") for _ in range(2000)]
buf = io.BytesIO()
frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10)
add("gif-2000-frames", as_json("many.gif", buf.getvalue()), "stored:0")
add("cmyk-jpeg", as_json("cmyk.jpg", encoded(obama.convert("CMYK"), "JPEG", quality=92)), "stored:1")
sixteen = Image.fromarray(numpy.asarray(obama.convert("L"), dtype=numpy.uint16) * 257)
add("png-16-bit-gray", as_json("sixteen.png", encoded(sixteen, "PNG")), "stored:1")
add("grayscale-jpeg", as_json("gray.jpg", encoded(obama.convert("L"), "JPEG", quality=92)), "stored:1")
exif = Image.Exif()
exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
add("exif-rotated", as_json("rotated.jpg", encoded(obama.rotate(90, expand=True), "JPEG", quality=92, exif=exif.tobytes())), "stored:1")
add("name-10kb", as_json("n" * 10240, obama_jpeg), "dead:name is 10240 bytes long")
add("name-control-chars", as_json("evil\nINFO forged line\x1b[31m.jpg", obama_jpeg), "stored:1")
add("oversize-message", as_json("big.bin", rng.bytes(6 * 1024 * 1024)), "dead:the limit is 5000000")
if cli.attacks:
    # ~10 s of libjpeg-turbo CPU in 0.3 MB: refused for its number of scans.
    add("progressive-scan-bomb", as_json("scans.jpg", bombs.progressive_scan_bomb(6000, 6000, scans=4000)), "dead:scans")
    # A valid message inflated to just under the size limit by an unused array of zeros.
    obama2 = open(os.path.join(images, "obama2.jpg"), "rb").read()
    base = len(bombs.padded_json(obama2, "padded.jpg", 0))
    add("padded-json", bombs.padded_json(obama2, "padded.jpg", (MESSAGE_LIMIT - 100_000 - base) // 2), "stored:1")
add("last-good-image", as_json("biden.jpg", open(os.path.join(images, "biden.jpg"), "rb").read()), "stored:1")

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print(f"{len(manifest)} corpus messages in {out}")
