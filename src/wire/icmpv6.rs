//! ICMPv6 errors (RFC 4443) as far as a TCP client needs them: Destination
//! Unreachable (with its code) and Packet Too Big (with the MTU of the
//! next hop), and the connection they are about. Unlike ICMPv4's 8 bytes,
//! an ICMPv6 error quotes "as much of the invoking packet as possible
//! without the ICMPv6 packet exceeding the minimum IPv6 MTU" (§3.1), so the
//! whole offending TCP header, sequence number included, is normally
//! there.
//!
//! Pure: bytes in, a representation out.

use std::net::Ipv6Addr;

use etherparse::{Icmpv6Slice, LaxIpSlice, NetSlice, SlicedPacket, TransportSlice};

use super::SeqNumber;

/// ICMPv6 type 1, destination unreachable.
pub const ICMPV6_DEST_UNREACHABLE: u8 = 1;
/// ICMPv6 type 2, packet too big.
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
const NEXT_HEADER_TCP: u8 = 6;

/// What the error says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6ErrorKind {
    /// RFC 4443 §3.1 (and RFC 7112 for code 7): see [`dest_unreachable_reason`].
    DestUnreachable { code: u8 },
    /// RFC 4443 §3.2: the link after `from` takes at most `mtu` bytes.
    PacketTooBig { mtu: u32 },
}

/// An ICMPv6 error that quotes a TCP segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icmpv6Error {
    /// Who sent the error (the server's host or a router).
    pub from: Ipv6Addr,
    pub kind: Icmpv6ErrorKind,
    pub quoted_src: Ipv6Addr,
    pub quoted_dst: Ipv6Addr,
    pub quoted_src_port: u16,
    pub quoted_dst_port: u16,
    /// The quoted segment's sequence number, when the quote holds it.
    pub quoted_seq: Option<SeqNumber>,
    /// The ICMPv6 checksum was right.
    pub checksum_ok: bool,
}

/// RFC 4443 §3.1's words for a destination-unreachable code.
pub fn dest_unreachable_reason(code: u8) -> &'static str {
    match code {
        0 => "no route to destination",
        1 => "communication with destination administratively prohibited",
        2 => "beyond scope of source address",
        3 => "address unreachable",
        4 => "port unreachable",
        5 => "source address failed ingress/egress policy",
        6 => "reject route to destination",
        7 => "error in source routing header",
        _ => "unknown code",
    }
}

/// Reads an Ethernet frame as an ICMPv6 error about a TCP segment; `None`
/// for anything else (or a quote too short to name the ports).
pub fn parse_icmpv6_error(bytes: &[u8]) -> Option<Icmpv6Error> {
    let sliced = SlicedPacket::from_ethernet(bytes).ok()?;
    let Some(NetSlice::Ipv6(ip)) = &sliced.net else {
        return None;
    };
    let Some(TransportSlice::Icmpv6(icmp)) = &sliced.transport else {
        return None;
    };
    let header = ip.header();
    let checksum_ok = icmp.is_checksum_valid(header.source(), header.destination());
    parse_icmpv6_error_slice(header.source_addr(), icmp, checksum_ok)
}

/// [`parse_icmpv6_error`] on an ICMPv6 message already sliced, sent by
/// `from`.
pub fn parse_icmpv6_error_slice(
    from: Ipv6Addr,
    icmp: &Icmpv6Slice<'_>,
    checksum_ok: bool,
) -> Option<Icmpv6Error> {
    let kind = match icmp.type_u8() {
        ICMPV6_DEST_UNREACHABLE => Icmpv6ErrorKind::DestUnreachable {
            code: icmp.code_u8(),
        },
        ICMPV6_PACKET_TOO_BIG => Icmpv6ErrorKind::PacketTooBig {
            mtu: u32::from_be_bytes(icmp.bytes5to8()),
        },
        _ => return None,
    };
    // The quote is laxly sliced: it may be cut anywhere, and extension
    // headers may come between the IPv6 header and TCP.
    let (quoted, _) = LaxIpSlice::from_slice(icmp.payload()).ok()?;
    let LaxIpSlice::Ipv6(inner) = &quoted else {
        return None;
    };
    let payload = quoted.payload();
    if payload.ip_number.0 != NEXT_HEADER_TCP || payload.fragmented {
        return None;
    }
    let tcp = payload.payload;
    let ports = tcp.get(..4)?;
    let quoted_seq = tcp
        .get(4..8)
        .map(|b| SeqNumber(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
    Some(Icmpv6Error {
        from,
        kind,
        quoted_src: inner.header().source_addr(),
        quoted_dst: inner.header().destination_addr(),
        quoted_src_port: u16::from_be_bytes([ports[0], ports[1]]),
        quoted_dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        quoted_seq,
        checksum_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit_tcp6, parse_ipv6, Flags, Frame6, Ipv6Repr, MacAddr, SegmentRepr};
    use crate::wire::{ETHERNET_HEADER_LEN, IPV6_HEADER_LEN};
    use etherparse::{icmpv6::DestUnreachableCode, Icmpv6Type, PacketBuilder};

    fn client() -> Ipv6Addr {
        "2001:2::2".parse().unwrap()
    }
    fn server() -> Ipv6Addr {
        "2001:2::1".parse().unwrap()
    }
    fn router() -> Ipv6Addr {
        "2001:2::fe".parse().unwrap()
    }

    /// A SYN from [2001:2::2]:40000 to [2001:2::1]:8080, the IPv6 packet
    /// without its Ethernet header.
    fn syn_packet() -> Vec<u8> {
        let segment = SegmentRepr {
            src_port: 40000,
            dst_port: 8080,
            seq: SeqNumber(0x0102_0304),
            flags: Flags::SYN,
            window: 64800,
            ..SegmentRepr::default()
        };
        let ip = Ipv6Repr {
            src: client(),
            dst: server(),
            flow_label: 7,
            hop_limit: 64,
        };
        let frame = emit_tcp6(MacAddr::zero(), MacAddr::zero(), &ip, &segment).unwrap();
        frame[ETHERNET_HEADER_LEN..].to_vec()
    }

    fn icmp_frame(kind: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(router().octets(), client().octets(), 64)
            .icmpv6(kind);
        let mut out = Vec::new();
        builder.write(&mut out, quote).unwrap();
        out
    }

    #[test]
    fn port_unreachable_names_the_quoted_segment() {
        let bytes = icmp_frame(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port),
            &syn_packet(),
        );
        let expected = Icmpv6Error {
            from: router(),
            kind: Icmpv6ErrorKind::DestUnreachable { code: 4 },
            quoted_src: client(),
            quoted_dst: server(),
            quoted_src_port: 40000,
            quoted_dst_port: 8080,
            quoted_seq: Some(SeqNumber(0x0102_0304)),
            checksum_ok: true,
        };
        assert_eq!(parse_icmpv6_error(&bytes), Some(expected.clone()));
        assert_eq!(parse_ipv6(&bytes).unwrap(), Frame6::Icmpv6Error(expected));
        assert_eq!(dest_unreachable_reason(4), "port unreachable");
    }

    #[test]
    fn every_code_is_kept() {
        use DestUnreachableCode as C;
        for (code, n) in [
            (C::NoRoute, 0),
            (C::Prohibited, 1),
            (C::BeyondScope, 2),
            (C::Address, 3),
            (C::Port, 4),
            (C::SourceAddressFailedPolicy, 5),
            (C::RejectRoute, 6),
        ] {
            let bytes = icmp_frame(Icmpv6Type::DestinationUnreachable(code), &syn_packet());
            let error = parse_icmpv6_error(&bytes).unwrap();
            assert_eq!(error.kind, Icmpv6ErrorKind::DestUnreachable { code: n });
        }
    }

    #[test]
    fn packet_too_big_carries_the_mtu() {
        let bytes = icmp_frame(Icmpv6Type::PacketTooBig { mtu: 1280 }, &syn_packet());
        let error = parse_icmpv6_error(&bytes).unwrap();
        assert_eq!(error.kind, Icmpv6ErrorKind::PacketTooBig { mtu: 1280 });
        assert_eq!(error.quoted_dst_port, 8080);
        assert!(error.checksum_ok);
    }

    #[test]
    fn a_short_quote_still_names_the_ports_but_not_the_seq() {
        let quote = syn_packet();
        let bytes = icmp_frame(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Address),
            &quote[..IPV6_HEADER_LEN + 4],
        );
        let error = parse_icmpv6_error(&bytes).unwrap();
        assert_eq!((error.quoted_src_port, error.quoted_seq), (40000, None));
        let bytes = icmp_frame(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Address),
            &quote[..IPV6_HEADER_LEN + 3],
        );
        assert_eq!(parse_icmpv6_error(&bytes), None);
    }

    #[test]
    fn a_flipped_bit_is_reported() {
        let mut bytes = icmp_frame(Icmpv6Type::PacketTooBig { mtu: 1400 }, &syn_packet());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(!parse_icmpv6_error(&bytes).unwrap().checksum_ok);
    }

    #[test]
    fn other_icmpv6_and_other_quotes_are_not_errors_about_tcp() {
        let echo = icmp_frame(
            Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 1, seq: 1 }),
            b"ping",
        );
        assert_eq!(parse_icmpv6_error(&echo), None);
        assert!(matches!(
            parse_ipv6(&echo).unwrap(),
            Frame6::Other {
                next_header: 58,
                icmpv6_type: Some(128)
            }
        ));
        // A quoted UDP datagram.
        let mut udp = syn_packet();
        udp[6] = 17;
        let bytes = icmp_frame(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port),
            &udp,
        );
        assert_eq!(parse_icmpv6_error(&bytes), None);
        // A TCP frame is not ICMPv6.
        let mut frame = vec![0; ETHERNET_HEADER_LEN];
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        frame.extend(syn_packet());
        assert_eq!(parse_icmpv6_error(&frame), None);
    }
}
