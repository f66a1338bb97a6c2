#!/usr/bin/env python3
"""Rewrites a little-endian pcapng so that no options list ends with
opt_endofopt (the pcapng spec allows a list to end with its block; pcap-file
2.0 rejects it with "Invalid option"). Every block, option and frame is kept;
only the 4-byte end markers go. Run by make.sh.

Usage: no_endofopt.py IN.pcapng OUT.pcapng
"""
import struct
import sys

SHB, IDB, EPB = 0x0A0D0D0A, 1, 6
# Where the options start in each block's body.
OPTIONS_AT = {SHB: 16, IDB: 8}


def blocks(data):
    at = 0
    while at < len(data):
        kind, length = struct.unpack("<II", data[at:at + 8])
        assert length % 4 == 0 and length >= 12, "bad block at %d" % at
        yield kind, data[at + 8:at + length - 4]
        at += length


def without_end(options):
    out, at = bytearray(), 0
    while at + 4 <= len(options):
        code, length = struct.unpack("<HH", options[at:at + 4])
        if code == 0:
            break
        padded = (length + 3) & ~3
        out += options[at:at + 4 + padded]
        at += 4 + padded
    return bytes(out)


def main():
    src, dst = sys.argv[1:3]
    with open(src, "rb") as f:
        data = f.read()
    assert data[8:12] == b"\x4d\x3c\x2b\x1a", "little-endian pcapng expected"
    out = bytearray()
    for kind, body in blocks(data):
        if kind == EPB:
            captured = struct.unpack("<I", body[12:16])[0]
            at = 20 + ((captured + 3) & ~3)
        else:
            at = OPTIONS_AT.get(kind)
        if at is not None and at < len(body):
            body = body[:at] + without_end(body[at:])
        length = 12 + len(body)
        out += struct.pack("<II", kind, length) + body + struct.pack("<I", length)
    with open(dst, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
