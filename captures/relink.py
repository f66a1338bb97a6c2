#!/usr/bin/env python3
"""Rewrites a real Ethernet pcap into the other link types synack reads,
frame for frame (same timestamps, same IP packets): RAW (101), IPV4 (228),
IPV6 (229), NULL (0, little-endian family), LOOP (108), Linux SLL (113),
Ethernet with an 802.1Q tag, and a big-endian pcap. Also link-type fields
with libpcap's upper bits (LT_FCS_*): Ethernet with a 4-byte FCS on every
frame (0x24000001: FCS present, 2 × 16 bits), and Ethernet / RAW IPv6 with
an FCS length but no FCS-present bit (0x30000001, 0x300000E5: no FCS).
Run by make.sh.

Usage: relink.py IN.pcap KIND OUT.pcap
"""
import struct
import sys
import zlib

ETH_LEN = 14
AF_INET, AF_INET6_LINUX = 2, 10
ARPHRD_LOOPBACK = 772


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "little-endian pcap expected"
    header = data[:24]
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack("<IIII", data[at:at + 16])
        yield header, sec, frac, incl, orig, data[at + 16:at + 16 + incl]
        at += 16 + incl


def convert(frame, kind, index=0):
    ether_type = frame[12:14]
    ip = frame[ETH_LEN:]
    v6 = ether_type == b"\x86\xdd"
    if kind in ("raw", "ipv4", "ipv6"):
        return ip, len(ip) - len(frame)
    if kind == "null":
        return struct.pack("<I", AF_INET6_LINUX if v6 else AF_INET) + ip, 4 - ETH_LEN
    if kind == "loop":
        return struct.pack(">I", 24 if v6 else AF_INET) + ip, 4 - ETH_LEN
    if kind == "sll":
        # packet type, ARPHRD, address length, address (8), protocol
        head = struct.pack(">HHH", 0, ARPHRD_LOOPBACK, 6) + frame[6:12] + b"\0\0" + ether_type
        return head + ip, 16 - ETH_LEN
    if kind == "vlan":
        tag = b"\x81\x00" + struct.pack(">H", 42)
        return frame[:12] + tag + frame[12:], 4
    if kind in ("bigendian", "flagged"):
        return frame, 0
    if kind == "fcs":
        # Ethernet's CRC-32, least significant byte first, as on the wire.
        return frame + struct.pack("<I", zlib.crc32(frame)), 4
    if kind == "flagged_ipv6":
        return ip, len(ip) - len(frame)
    if kind == "badsum":
        if index != 3:
            return frame, 0
        ihl = (frame[ETH_LEN] & 0x0F) * 4
        at = ETH_LEN + ihl + 16  # the TCP checksum field
        bad = bytes([frame[at] ^ 0x5A, frame[at + 1] ^ 0xA5])
        return frame[:at] + bad + frame[at + 2:], 0
    raise SystemExit("unknown kind " + kind)


LINKTYPE = {"raw": 101, "ipv4": 228, "ipv6": 229, "null": 0, "loop": 108,
            "sll": 113, "vlan": 1, "bigendian": 1, "badsum": 1,
            # LT_FCS_LENGTH_PRESENT 0x04000000, LT_FCS_LENGTH(x) in bits 28-31.
            "fcs": 0x24000001, "flagged": 0x30000001, "flagged_ipv6": 0x300000E5}


def main():
    src, kind, dst = sys.argv[1:4]
    big = kind == "bigendian"
    end = ">" if big else "<"
    out = bytearray()
    for i, (header, sec, frac, incl, orig, frame) in enumerate(records(src)):
        if i == 0:
            magic, vmaj, vmin, zone, sig, snap, _ = struct.unpack("<IHHiIII", header)
            out += struct.pack(end + "IHHiIII", magic, vmaj, vmin, zone, sig, snap, LINKTYPE[kind])
        body, delta = convert(frame, kind, i)
        out += struct.pack(end + "IIII", sec, frac, len(body), orig + delta)
        out += body
    with open(dst, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
