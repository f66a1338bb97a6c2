//! ICMPv4 destination unreachable (RFC 792), as far as a TCP client needs
//! it: who sent it, the code, and the connection it is about (the quoted
//! IPv4 header and the first 8 bytes of the segment, which hold both
//! ports).
//!
//! Pure: bytes in, a representation out.

use std::net::Ipv4Addr;

use etherparse::{Ipv4HeaderSlice, NetSlice, SlicedPacket, TransportSlice};

/// ICMP type 3, destination unreachable (RFC 792).
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
/// IP protocol number of TCP (RFC 9293).
const IPPROTO_TCP: u8 = 6;

/// An ICMPv4 destination unreachable that quotes a TCP segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpUnreachable {
    /// Who sent the ICMP message (the server's host or a router).
    pub from: Ipv4Addr,
    /// RFC 792 code: 0 net, 1 host, 3 port unreachable, 13 prohibited…
    pub code: u8,
    pub quoted_src: Ipv4Addr,
    pub quoted_dst: Ipv4Addr,
    pub quoted_src_port: u16,
    pub quoted_dst_port: u16,
}

/// Reads an Ethernet frame as an ICMPv4 destination unreachable about a
/// TCP segment; `None` for anything else (or a quote too short to name the
/// ports).
pub fn parse_icmp_unreachable(bytes: &[u8]) -> Option<IcmpUnreachable> {
    let sliced = SlicedPacket::from_ethernet(bytes).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
        return None;
    };
    let Some(TransportSlice::Icmpv4(icmp)) = &sliced.transport else {
        return None;
    };
    if icmp.type_u8() != ICMP_DEST_UNREACHABLE {
        return None;
    }
    let quoted = icmp.payload();
    let inner = Ipv4HeaderSlice::from_slice(quoted).ok()?;
    if inner.protocol().0 != IPPROTO_TCP {
        return None;
    }
    // The IHL counts 32-bit words; the TCP ports are the segment's first
    // 4 bytes right after the quoted header.
    let ports_at = usize::from(inner.ihl()) * 4;
    let ports = quoted.get(ports_at..ports_at + 4)?;
    Some(IcmpUnreachable {
        from: ip.header().source_addr(),
        code: icmp.code_u8(),
        quoted_src: inner.source_addr(),
        quoted_dst: inner.destination_addr(),
        quoted_src_port: u16::from_be_bytes([ports[0], ports[1]]),
        quoted_dst_port: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit_tcp, Flags, Ipv4Repr, MacAddr, SegmentRepr, SeqNumber};
    use etherparse::{Icmpv4Type, PacketBuilder};

    /// A SYN from 198.18.0.2:40000 to 198.18.0.1:8080, as the client sent it.
    fn syn_ip_packet() -> Vec<u8> {
        let segment = SegmentRepr {
            src_port: 40000,
            dst_port: 8080,
            seq: SeqNumber(1),
            flags: Flags::SYN,
            window: 64240,
            ..SegmentRepr::default()
        };
        let ip = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(198, 18, 0, 1),
            ident: 1,
            ttl: 64,
        };
        let frame = emit_tcp(MacAddr::zero(), MacAddr::zero(), &ip, &segment).unwrap();
        frame[crate::wire::ETHERNET_HEADER_LEN..].to_vec()
    }

    fn icmp_frame(code: u8, quote: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::from_values(code, 0)
                    .expect("a known code"),
            ));
        let mut out = Vec::new();
        builder.write(&mut out, quote).unwrap();
        out
    }

    #[test]
    fn port_unreachable_names_the_quoted_connection() {
        let quote = syn_ip_packet();
        let icmp = parse_icmp_unreachable(&icmp_frame(3, &quote[..28])).unwrap();
        assert_eq!(
            icmp,
            IcmpUnreachable {
                from: Ipv4Addr::new(198, 18, 0, 1),
                code: 3,
                quoted_src: Ipv4Addr::new(198, 18, 0, 2),
                quoted_dst: Ipv4Addr::new(198, 18, 0, 1),
                quoted_src_port: 40000,
                quoted_dst_port: 8080,
            }
        );
    }

    #[test]
    fn a_quote_too_short_for_the_ports_is_not_read() {
        let quote = syn_ip_packet();
        assert_eq!(parse_icmp_unreachable(&icmp_frame(1, &quote[..22])), None);
    }

    #[test]
    fn a_tcp_frame_is_not_icmp() {
        let mut frame = vec![0; crate::wire::ETHERNET_HEADER_LEN];
        frame[12] = 0x08;
        frame.extend(syn_ip_packet());
        assert_eq!(parse_icmp_unreachable(&frame), None);
    }
}
