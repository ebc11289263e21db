#!/usr/bin/env python3
"""Prints what Python's face_recognition finds in each image, in `facerec faces --json` form.

The reference implementation tests/dlib/parity.rs compares the dlib encoder with.
Usage: face_recognition_reference.py [--upsample N] IMAGE...
"""
import argparse
import hashlib
import json
import sys

import face_recognition
from face_recognition import api


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upsample", type=int, default=1)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    for path in args.images:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image, number_of_times_to_upsample=args.upsample)
        if args.upsample == 1:
            # The public call: face_encodings detects again when not given locations, so
            # landmarks are predicted on the untrimmed rectangles.
            encodings = face_recognition.face_encodings(image)
        else:
            # face_encodings has no upsample parameter; take the same steps it takes, with
            # the untrimmed rectangles of the requested upsampling.
            rects = api._raw_face_locations(image, args.upsample)
            shapes = [api.pose_predictor_5_point(image, r) for r in rects]
            encodings = [api.face_encoder.compute_face_descriptor(image, s, 1) for s in shapes]
        faces = [
            {"top": t, "right": r, "bottom": b, "left": l, "encoding": [float(x) for x in e]}
            for (t, r, b, l), e in zip(boxes, encodings)
        ]
        height, width = image.shape[:2]
        print(json.dumps({"path": path, "hash": digest, "width": width, "height": height, "faces": faces}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
