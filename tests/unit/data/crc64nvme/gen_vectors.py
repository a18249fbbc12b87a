#!/usr/bin/python3
"""CRC-64/NVME vectors for tests/unit/test_crc64nvme.c, computed here independently of the C code:
straight from the definition (reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones,
one bit at a time, sped up by a byte table built from that same bit loop). Each line of
vectors.txt is "<length> <seed> <crc hex> <base64 of the CRC's 8 bytes, big-endian>"; the bytes
are the xorshift64 stream of the seed (gen below; the test has the same generator).

    python3 tests/unit/data/crc64nvme/gen_vectors.py"""
import base64
import os

POLY = 0x9A6C9329AC4BC9B5
MASK = (1 << 64) - 1


def bit_crc(data, crc=0):
    crc ^= MASK
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc ^ MASK


TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc(data):
    c = MASK
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ MASK


def gen(seed, n):
    x = seed | 1
    out = bytearray(n)
    for i in range(n):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        out[i] = x & 0xFF
    return bytes(out)


def main():
    assert bit_crc(b"123456789") == 0xAE8B14860A799888
    lengths = list(range(0, 300)) + [511, 512, 513, 1023, 1024, 4095, 4096, 4097, 65535,
                                     65536 + 7, 1000003]
    lines = []
    for i, n in enumerate(lengths):
        seed = 0x9E3779B97F4A7C15 ^ (i * 0x100000001B3)
        data = gen(seed, n)
        c = crc(data)
        if n < 300:
            assert c == bit_crc(data)
        b64 = base64.b64encode(c.to_bytes(8, "big")).decode()
        lines.append(f"{n} {seed & MASK} {c:016x} {b64}")
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "vectors.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
