#!/usr/bin/env python3
"""gen_syn_only.py — a pcap of N SYN-only connection attempts (a SYN scan, a
SYN flood): each from its own source address and port, none answered.

    python3 bench/gen_syn_only.py OUT.pcap [N=300000] [RATE=20000]

RATE is SYNs per second of capture time. Ethernet, IPv4, TCP with MSS/SACK/
timestamps/window-scale options like a Linux SYN. Write OUT outside the
repository (e.g. /tmp).
"""
import struct
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300_000
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 20_000.0
start = 1_700_000_000
eth = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]) + b"\x08\x00"
opts = bytes([2, 4, 5, 0xB4, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 7])
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        sport = 1024 + i % 60000
        tcp = struct.pack(">HHIIBBHHH", sport, 80, (i * 2654435761) & 0xFFFFFFFF, 0,
                          (20 + len(opts)) // 4 << 4, 0x02, 64240, 0, 0) + opts
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0x4000, 64, 6, 0,
                         src, bytes([198, 18, 0, 1]))
        frame = eth + ip + tcp
        t = i / rate
        sec = int(t)
        usec = int((t - sec) * 1e6)
        f.write(struct.pack("<IIII", start + sec, usec, len(frame), len(frame)))
        f.write(frame)
