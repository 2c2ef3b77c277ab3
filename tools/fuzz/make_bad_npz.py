#!/usr/bin/env python3
"""Writes the malformed .npz files under Tests/Fixtures/errors/ that the data-hardening
regression tests read (issue 10). Deterministic: same numpy, same bytes.

    python3 tools/fuzz/make_bad_npz.py [OUT_DIR]

- corrupt_deflate.npz: a deflated digits-shaped file (input [8,1,16,16] float32, labels
  [8] int64) with one byte of the 'input' entry's compressed stream flipped. mpq 0.1's
  ZIPFoundation reader looped on it forever at 100% CPU; Python's zipfile reports a bad
  CRC or a corrupt stream.
- bad_crc.npz: the same arrays stored (not deflated), with the CRC-32 of 'input.npy'
  changed in both the local and the central header. The data is intact; only the
  checksum is wrong, which mpq 0.1 accepted.
- huge_shape.npz: 'input.npy' whose header declares shape (2**62, 1, 16, 16) over 1 KiB
  of data: the element count overflows 64 bits (mpq 0.1 trapped).
- zip_bomb.npz: about 1 MB holding 'input' (65536, 1, 64, 64) float32 zeros, 1 GiB once
  inflated (mpq 0.1 inflated it to 2.1 GB before any check). Honest sizes: only a limit
  on decoded data stops it.
"""
import io
import os
import struct
import sys
import zipfile

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "errors")
# Offset into the 'input' entry's compressed stream of the flipped byte: mpq 0.1 returned exit 0 on
# it (the corrupt data was read, unchecked). N, FLIP_AT and FLIP_MASK (xor) may be overridden to fuzz.
N = int(os.environ.get("N", "8"))
FLIP_AT = int(os.environ.get("FLIP_AT", "306"))
FLIP_MASK = int(os.environ.get("FLIP_MASK", "255"))


def arrays():
    rng = np.random.default_rng(10)
    x = rng.random((N, 1, 16, 16), dtype=np.float32).round(2)
    y = (np.arange(N) % 10).astype(np.int64)
    return x, y


def npz_bytes(compressed):
    x, y = arrays()
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, input=x, labels=y)
    return bytearray(buf.getvalue())


def entry(data, name):
    """(local header offset, data offset, compressed size, central record offset) of `name`."""
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo(name)
    local = info.header_offset
    n, e = struct.unpack_from("<HH", data, local + 26)
    start = local + 30 + n + e
    central = -1
    # Find the central record whose name is `name`.
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46:pos + 46 + nlen] == name.encode():
            central = pos
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    return local, start, info.compress_size, central


def corrupt_deflate():
    d = npz_bytes(True)
    _, start, size, _ = entry(d, "input.npy")
    assert FLIP_AT < size
    d[start + FLIP_AT] ^= FLIP_MASK
    return d


def bad_crc():
    d = npz_bytes(False)
    local, _, _, central = entry(d, "input.npy")
    crc = struct.unpack_from("<I", d, central + 16)[0]
    struct.pack_into("<I", d, central + 16, crc ^ 0x1)
    struct.pack_into("<I", d, local + 14, crc ^ 0x1)
    return d


def huge_shape():
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1, 16, 16), }" % (2 ** 62)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(1024)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        info = zipfile.ZipInfo("input.npy", date_time=(1980, 1, 1, 0, 0, 0))
        z.writestr(info, npy)
        info = zipfile.ZipInfo("labels.npy", date_time=(1980, 1, 1, 0, 0, 0))
        lab = io.BytesIO()
        np.save(lab, np.zeros(8, dtype=np.int64))
        z.writestr(info, lab.getvalue())
    return bytearray(buf.getvalue())


def zip_bomb():
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 1, 64, 64), }"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    npy_header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("input.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            f.write(npy_header)
            zeros = bytes(1 << 24)
            for _ in range((65536 * 64 * 64 * 4) // len(zeros)):
                f.write(zeros)
    return bytearray(buf.getvalue())


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, make in [("corrupt_deflate.npz", corrupt_deflate), ("bad_crc.npz", bad_crc), ("huge_shape.npz", huge_shape),
                       ("zip_bomb.npz", zip_bomb)]:
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            f.write(make())
        print(path)


if __name__ == "__main__":
    main()
