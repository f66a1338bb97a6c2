#!/usr/bin/env python3
"""repeat_capture.py IN OUT COPIES: writes IN COPIES times into OUT, each copy
shifted in capture time by the span of IN plus 120 s.

Makes a capture that grows in length but not in concurrency: between two
copies every connection of the previous copy has been closed for more than
the 60 s that `synack inspect` keeps a closed connection, so a reader whose
memory follows the open connections stays flat. Classic pcap (either byte
order, µs or ns) only; records are copied byte for byte except the seconds
field of their timestamp.
"""
import struct
import sys

GAP_S = 120


def main() -> int:
    src, dst, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(src, "rb") as f:
        header = f.read(24)
        magic = header[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            order = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            order = ">"
        else:
            print(f"{src}: not a classic pcap", file=sys.stderr)
            return 2
        rec = struct.Struct(order + "IIII")
        first = last = None
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, _, incl, _ = rec.unpack(h)
            first = sec if first is None else first
            last = sec
            f.seek(incl, 1)
    if first is None:
        print(f"{src}: no packets", file=sys.stderr)
        return 2
    shift = last - first + 1 + GAP_S
    with open(dst, "wb") as out:
        out.write(header)
        for k in range(copies):
            with open(src, "rb") as f:
                f.seek(24)
                while True:
                    h = f.read(16)
                    if len(h) < 16:
                        break
                    sec, frac, incl, orig = rec.unpack(h)
                    out.write(rec.pack(sec + k * shift, frac, incl, orig))
                    out.write(f.read(incl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
