#!/usr/bin/env python3
"""Wraps a real Ethernet pcap's IP packets (loopback recordings: 127.0.0.1
or ::1) into the encapsulations and link types of other tools' captures,
frame for frame (same timestamps): PPP (9), PPP in HDLC-like framing (50),
MPLS label stacks in PPP and in Ethernet, QinQ, ARCNET BSD (7) and Linux
(129), Juniper Ethernet (178), IPoIB (242), IP-in-IP, IPv6-in-IPv4 (6in4),
GRE, ERSPAN II and III, WCCP redirection, VXLAN, Geneve, sFlow samples,
and IPv4 fragments. Every checksum is computed: outer IPv4 headers, UDP,
and the inner TCP segments (loopback's offloaded pseudo-header sums are
replaced by real ones). Outer addresses are 192.0.2.1 (the TCP client's
side) and 192.0.2.2 (the server's), RFC 5737 documentation addresses.
Run by make.sh.

Usage: encap.py IN.pcap KIND OUT.pcap
"""
import struct
import sys

ETH_LEN = 14
CLIENT_OUTER = bytes([192, 0, 2, 1])
SERVER_OUTER = bytes([192, 0, 2, 2])
SERVER_PORT = 8080
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "little-endian pcap expected"
    header = data[:24]
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack("<IIII", data[at:at + 16])
        assert incl == orig, "whole frames expected"
        yield header, sec, frac, data[at + 16:at + 16 + incl]
        at += 16 + incl


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def fix_tcp(ip):
    """The IP packet with its TCP checksum computed (not offloaded)."""
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0F) * 4
        tcp = bytearray(ip[ihl:])
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
        head = ip[:ihl]
    else:
        assert ip[6] == 6, "IPv6 without extension headers expected"
        tcp = bytearray(ip[40:])
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(tcp), 6)
        head = ip[:40]
    tcp[16:18] = b"\0\0"
    tcp[16:18] = struct.pack("!H", csum(pseudo + bytes(tcp)))
    return head + bytes(tcp)


def from_client(ip):
    """Whether the TCP segment goes from the client (not port 8080)."""
    ihl = (ip[0] & 0x0F) * 4 if ip[0] >> 4 == 4 else 40
    return struct.unpack("!H", ip[ihl:ihl + 2])[0] != SERVER_PORT


def ipv4(proto, payload, src, dst, ident=1, flags_frag=0):
    head = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident,
                                 flags_frag, 64, proto, 0, src, dst))
    head[10:12] = struct.pack("!H", csum(bytes(head)))
    return bytes(head) + payload


def udp(sport, dport, payload, src, dst):
    length = 8 + len(payload)
    head = struct.pack("!HHHH", sport, dport, length, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    sum_ = csum(pseudo + head + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, sum_) + payload


def eth(ether_type, payload, client=True):
    dst, src = (MAC_B, MAC_A) if client else (MAC_A, MAC_B)
    return dst + src + struct.pack("!H", ether_type) + payload


def ether_type_of(ip):
    return 0x0800 if ip[0] >> 4 == 4 else 0x86DD


def mpls(ip):
    # Two labels (100, then 200 at the bottom of the stack), TTL 64.
    return struct.pack("!II", (100 << 12) | 64, (200 << 12) | 0x100 | 64) + ip


def outer(proto, payload, client):
    src, dst = (CLIENT_OUTER, SERVER_OUTER) if client else (SERVER_OUTER, CLIENT_OUTER)
    return src, dst, lambda ident: ipv4(proto, payload, src, dst, ident)


def sflow(frame, seq):
    """One sFlow v5 datagram: one flow sample, one raw packet header."""
    pad = (-len(frame)) % 4
    record = struct.pack("!IIII", 1, len(frame) + 4, 4, len(frame)) + frame + b"\0" * pad
    sample = struct.pack("!IIIIIII", seq, 3, 1, seq, 0, 3, 4)
    sample += struct.pack("!I", 1) + struct.pack("!II", 1, len(record)) + record
    datagram = struct.pack("!II4sIII", 5, 1, bytes([192, 0, 2, 9]), 0, seq, 1000 + seq)
    datagram += struct.pack("!I", 1) + struct.pack("!II", 1, len(sample)) + sample
    return datagram


def convert(frame, kind, index):
    """The frames (usually one) that carry `frame`'s IP packet."""
    ip = fix_tcp(frame[ETH_LEN:])
    client = from_client(ip)
    ident = 0x100 + index
    if kind == "ppp":
        return [b"\xff\x03" + struct.pack("!H", 0x21 if ip[0] >> 4 == 4 else 0x57) + ip]
    if kind == "ppp_hdlc":
        return [b"\xff\x03\x00\x21" + ip]
    if kind == "mpls_ppp":
        return [b"\xff\x03\x02\x81" + mpls(ip)]
    if kind == "mpls_eth":
        return [eth(0x8847, mpls(ip), client)]
    if kind == "qinq":
        # An 802.1ad service tag (VLAN 100), then an 802.1Q tag (VLAN 42).
        tags = struct.pack("!HHHH", 100, 0x8100, 42, 0x0800)
        return [eth(0x88A8, tags + ip, client)]
    if kind == "arcnet_bsd":
        # source, destination, RFC 1201 IP, split flag, sequence number
        return [struct.pack("!BBBBH", 1, 2, 212, 0, index) + ip]
    if kind == "arcnet_linux":
        # source, destination, offset, RFC 1201 IP, split flag, sequence
        return [struct.pack("!BBHBBH", 1, 2, 0, 212, 0, index) + ip]
    if kind == "juniper_ether":
        # "MGC", flags (packet in, extensions), extensions of 0 bytes.
        return [b"MGC" + bytes([0x81]) + struct.pack("!H", 0) + eth(0x0800, ip, client)]
    if kind == "ipoib":
        # The 40-byte pseudo-header of LINKTYPE_IPOIB in its unicast form
        # (no GRH: 20 zero bytes, then reserved, destination QPN, GID),
        # then RFC 4391's EtherType and reserved.
        gid = bytes.fromhex("fe800000000000000002c90300000001")
        pseudo = b"\0" * 20 + struct.pack("!I", 0x48) + gid
        return [pseudo + struct.pack("!HH", ether_type_of(ip), 0) + ip]
    if kind in ("ipip", "sit"):
        proto = 4 if kind == "ipip" else 41
        _, _, build = outer(proto, ip, client)
        return [eth(0x0800, build(ident), client)]
    if kind == "gre":
        _, _, build = outer(47, struct.pack("!HH", 0, 0x0800) + ip, client)
        return [eth(0x0800, build(ident), client)]
    if kind == "erspan2":
        # GRE with a sequence number; ERSPAN II: version 1, VLAN 0, session 7, index 0.
        inner = eth(0x0800, ip, client)
        gre = struct.pack("!HHI", 0x1000, 0x88BE, index)
        hdr = struct.pack("!II", (1 << 28) | 7, 0)
        _, _, build = outer(47, gre + hdr + inner, client)
        return [eth(0x0800, build(ident), client)]
    if kind == "erspan3":
        # ERSPAN III: version 2, session 7, a timestamp, SGT 0, hw id 0, no subheader.
        inner = eth(0x0800, ip, client)
        gre = struct.pack("!HHI", 0x1000, 0x22EB, index)
        hdr = struct.pack("!IIHH", (2 << 28) | 7, index * 1000, 0, 0)
        _, _, build = outer(47, gre + hdr + inner, client)
        return [eth(0x0800, build(ident), client)]
    if kind == "wccp":
        # WCCPv2 redirect header (type 0, no alternate table, service 0).
        gre = struct.pack("!HH", 0, 0x883E) + struct.pack("!I", 0)
        _, _, build = outer(47, gre + ip, client)
        return [eth(0x0800, build(ident), client)]
    if kind in ("vxlan", "geneve"):
        inner = eth(0x0800, ip, client)
        if kind == "vxlan":
            head, port = struct.pack("!II", 0x08000000, 100 << 8), 4789
        else:
            head, port = struct.pack("!HHI", 0, 0x6558, 100 << 8), 6081
        src, dst = (CLIENT_OUTER, SERVER_OUTER) if client else (SERVER_OUTER, CLIENT_OUTER)
        dgram = udp(49152 + index, port, head + inner, src, dst)
        return [eth(0x0800, ipv4(17, dgram, src, dst, ident), client)]
    if kind == "sflow":
        agent, collector = bytes([192, 0, 2, 9]), bytes([192, 0, 2, 10])
        dgram = udp(49152, 6343, sflow(eth(0x0800, ip, client), index + 1), agent, collector)
        return [eth(0x0800, ipv4(17, dgram, agent, collector, ident))]
    if kind == "frag":
        ihl = (ip[0] & 0x0F) * 4
        payload = ip[ihl:]
        tcp_len = (payload[12] >> 4) * 4
        split = (tcp_len + 7) // 8 * 8
        src, dst = ip[12:16], ip[16:20]
        if split >= len(payload):
            return [eth(0x0800, ip, client)]
        # The first fragment holds the whole TCP header (RFC 1858), the
        # second the rest of the segment.
        first = ipv4(6, payload[:split], src, dst, ident, 0x2000)
        second = ipv4(6, payload[split:], src, dst, ident, split // 8)
        return [eth(0x0800, first, client), eth(0x0800, second, client)]
    raise SystemExit("unknown kind " + kind)


LINKTYPE = {"ppp": 9, "ppp_hdlc": 50, "mpls_ppp": 9, "arcnet_bsd": 7, "arcnet_linux": 129,
            "juniper_ether": 178, "ipoib": 242}


def main():
    src, kind, dst = sys.argv[1:4]
    out = bytearray()
    for i, (header, sec, frac, frame) in enumerate(records(src)):
        if i == 0:
            magic, vmaj, vmin, zone, sig, snap, _ = struct.unpack("<IHHiIII", header)
            out += struct.pack("<IHHiIII", magic, vmaj, vmin, zone, sig, 262144,
                               LINKTYPE.get(kind, 1))
        for j, body in enumerate(convert(frame, kind, i)):
            out += struct.pack("<IIII", sec, frac + j, len(body), len(body)) + body
    with open(dst, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
