#!/usr/bin/env python3
"""Checks `facerec faces --json` against Python's face_recognition on the same images.

Both outputs are JSON lines (path, hash, width, height, faces with box and encoding).
Fails unless every image has the same boxes and every encoding component agrees within
--max-diff (default 1e-4). Prints the largest difference seen.
Usage: parity.py OURS.jsonl REFERENCE.jsonl
"""
import argparse
import json
import sys


def load(path):
    with open(path) as f:
        return {rec["hash"]: rec for rec in map(json.loads, filter(str.strip, f))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("ours")
    parser.add_argument("reference")
    parser.add_argument("--max-diff", type=float, default=1e-4)
    args = parser.parse_args()
    ours, ref = load(args.ours), load(args.reference)
    problems, worst = [], 0.0
    if set(ours) != set(ref):
        problems.append(f"different images: {sorted(set(ours) ^ set(ref))}")
    for digest in sorted(set(ours) & set(ref)):
        a, b = ours[digest], ref[digest]
        name = b["path"].rsplit("/", 1)[-1]
        if (a["width"], a["height"]) != (b["width"], b["height"]):
            problems.append(f"{name}: size {a['width']}x{a['height']} != {b['width']}x{b['height']}")
        boxes_a = [(f["top"], f["right"], f["bottom"], f["left"]) for f in a["faces"]]
        boxes_b = [(f["top"], f["right"], f["bottom"], f["left"]) for f in b["faces"]]
        if boxes_a != boxes_b:
            problems.append(f"{name}: boxes {boxes_a} != {boxes_b}")
            continue
        for fa, fb in zip(a["faces"], b["faces"]):
            diff = max(abs(x - y) for x, y in zip(fa["encoding"], fb["encoding"]))
            worst = max(worst, diff)
            print(f"{name}: box {boxes_a[0] if boxes_a else None} max component diff {diff:.2e}")
            if diff > args.max_diff:
                problems.append(f"{name}: encoding differs by {diff:.2e} > {args.max_diff}")
    print(f"largest component difference over all faces: {worst:.2e}")
    for p in problems:
        print("MISMATCH", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
