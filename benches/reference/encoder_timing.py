#!/usr/bin/env python3
"""Python face_recognition's time per image, split as facerec's encoder benchmark splits it:
decode (load_image_file), detect (HOG with upsampling), landmarks (5-point), encode (ResNet).
Same calls face_recognition.face_encodings makes. Prints one JSON object per (image, upsample)
with the median of RUNS runs in milliseconds.

Usage: encoder_timing.py IMAGES_DIR [RUNS]
"""
import json
import os
import statistics
import sys
import time

import face_recognition
from face_recognition import api

FILES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png",
         "obama_partial_face.jpg", "obama_partial_face2.jpg"]


def once(path, upsample):
    t0 = time.perf_counter()
    image = face_recognition.load_image_file(path)
    t1 = time.perf_counter()
    rects = api._raw_face_locations(image, upsample)
    t2 = time.perf_counter()
    shapes = [api.pose_predictor_5_point(image, r) for r in rects]
    t3 = time.perf_counter()
    _ = [api.face_encoder.compute_face_descriptor(image, s, 1) for s in shapes]
    t4 = time.perf_counter()
    return [(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3, (t4 - t0) * 1e3]


def main():
    images = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    for upsample in (0, 1):
        for name in FILES:  # one untimed pass, as the Rust benchmark does
            once(os.path.join(images, name), upsample)
        for name in FILES:
            samples = [once(os.path.join(images, name), upsample) for _ in range(runs)]
            m = [statistics.median(s[i] for s in samples) for i in range(5)]
            print(json.dumps({"image": name, "upsample": upsample, "decode_ms": round(m[0], 2),
                              "detect_ms": round(m[1], 2), "landmarks_ms": round(m[2], 2),
                              "encode_ms": round(m[3], 2), "total_ms": round(m[4], 2)}))


if __name__ == "__main__":
    main()
