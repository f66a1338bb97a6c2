#!/usr/bin/env python3
"""gen_many_idb.py — a pcapng with N interface description blocks (RAW), then
one TCP SYN on each interface.

    python3 bench/gen_many_idb.py N OUT.pcapng
"""
import struct, sys
n = int(sys.argv[1]); out = sys.argv[2]
def block(t, body):
    pad = (-len(body)) % 4
    body += b'\0' * pad
    l = 12 + len(body)
    return struct.pack('<II', t, l) + body + struct.pack('<I', l)
shb = block(0x0A0D0D0A, struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1))
def ip_syn(i):
    tcp = struct.pack('>HHIIBBHHH', 10000 + i % 50000, 80, i, 0, 5 << 4, 0x02, 65535, 0, 0)
    src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, bytes([198, 18, 0, 1]))
    return ip + tcp
with open(out, 'wb') as f:
    f.write(shb)
    for i in range(n):
        f.write(block(1, struct.pack('<HHI', 101, 0, 0)))
    for i in range(n):
        p = ip_syn(i)
        ts = 1_700_000_000_000_000 + i
        f.write(block(6, struct.pack('<IIIII', i, ts >> 32, ts & 0xffffffff, len(p), len(p)) + p))
