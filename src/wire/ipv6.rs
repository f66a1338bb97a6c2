//! Ethernet frames carrying IPv6 (RFC 8200): emit IPv6/TCP with pnet (the
//! TCP checksum, mandatory here, is taken over the IPv6 pseudo-header by
//! `pnet::packet::tcp::ipv6_checksum`), parse with etherparse slices, and
//! tell apart what a TCP client over IPv6 meets on its link: its own
//! connection's segments, Neighbor Discovery ([`super::ndp`]) and ICMPv6
//! errors about its segments ([`super::icmpv6`]).
//!
//! IPv6 has no header checksum and no Identification field (no on-path
//! fragmentation): the fields a sender chooses are the flow label and the
//! hop limit.
//!
//! Pure: byte slices in, byte vectors and representations out.

use std::net::Ipv6Addr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet::packet::ipv6::MutableIpv6Packet;
use pnet::packet::tcp::{self, MutableTcpPacket};

use super::frame::{fill_tcp, mac, options_len, tcp_options};
use super::icmpv6::{self, Icmpv6Error};
use super::ndp::{self, NdpRepr};
use super::tcp::parse_options;
use super::{Flags, MacAddr, SegmentRepr, SeqNumber, WireError};
use super::{ETHERNET_HEADER_LEN, TCP_HEADER_LEN};

/// The fixed IPv6 header (RFC 8200 §3); extension headers follow it.
pub const IPV6_HEADER_LEN: usize = 40;
/// The EtherType of IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The hop limit Linux uses by default (`net.ipv6.conf.*.hop_limit`).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// The flow label is 20 bits wide.
pub const FLOW_LABEL_MAX: u32 = 0xf_ffff;
/// The Next Header value of ICMPv6 (RFC 4443).
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The Next Header value of TCP.
pub const NEXT_HEADER_TCP: u8 = 6;

/// The IPv6 header's fields a sender chooses (RFC 8200 §3). The traffic
/// class is always 0 here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// 20 bits (RFC 6437); Linux picks one per connection from a hash of
    /// the flow (`net.ipv6.auto_flowlabels`), 0 means "no label".
    pub flow_label: u32,
    pub hop_limit: u8,
}

/// An Ethernet frame holding IPv6 and TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcp6Frame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub ip: Ipv6Repr,
    pub segment: SegmentRepr,
    /// The TCP checksum (over the IPv6 pseudo-header, RFC 8200 §8.1) was
    /// right. A wrong one is a finding, not a parse failure.
    pub checksum_ok: bool,
}

/// A Neighbor Solicitation or Advertisement, with its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdpFrame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub ip: Ipv6Repr,
    pub ndp: NdpRepr,
    /// The ICMPv6 checksum was right.
    pub checksum_ok: bool,
}

impl NdpFrame {
    /// Whether a host must act on it (RFC 4861 §7.1.1 and §7.1.2): right
    /// checksum and a hop limit of 255, which proves it was not routed.
    pub fn is_valid(&self) -> bool {
        self.checksum_ok && self.ip.hop_limit == ndp::NDP_HOP_LIMIT
    }
}

/// What one received IPv6 frame turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame6 {
    Tcp(Tcp6Frame),
    Ndp(NdpFrame),
    /// An ICMPv6 error (destination unreachable, packet too big) quoting a
    /// TCP segment.
    Icmpv6Error(Icmpv6Error),
    /// Anything else over IPv6 (MLD, router discovery, UDP…): noise to a
    /// TCP client. `next_header` is the protocol after the extension
    /// headers; `icmpv6_type` is set for ICMPv6.
    Other {
        next_header: u8,
        icmpv6_type: Option<u8>,
    },
}

/// The size of the frame [`emit_tcp6`] builds for this segment.
pub fn tcp6_frame_len(segment: &SegmentRepr) -> usize {
    ETHERNET_HEADER_LEN
        + IPV6_HEADER_LEN
        + TCP_HEADER_LEN
        + options_len(&tcp_options(&segment.options))
        + segment.payload.len()
}

/// Builds an Ethernet/IPv6/TCP frame: lengths and the TCP checksum over
/// the IPv6 pseudo-header computed here (pnet's `tcp::ipv6_checksum`).
/// The options are laid out as [`super::emit_tcp`] lays them out.
///
/// # Errors
/// [`WireError::TooLarge`] when the segment does not fit IPv6's 16-bit
/// payload length (no jumbograms), or the flow label is over 20 bits.
///
/// ```
/// use synack::wire::{self, Flags, Frame6, Ipv6Repr, MacAddr, SegmentRepr, SeqNumber};
///
/// let syn = SegmentRepr {
///     src_port: 40000,
///     dst_port: 8080,
///     seq: SeqNumber(1000),
///     flags: Flags::SYN,
///     window: 64800,
///     ..SegmentRepr::default()
/// };
/// let ip = Ipv6Repr {
///     src: "2001:2::2".parse().unwrap(),
///     dst: "2001:2::1".parse().unwrap(),
///     flow_label: 0x12345,
///     hop_limit: 64,
/// };
/// let bytes = wire::emit_tcp6(MacAddr::new(2, 0, 0, 0, 0, 2), MacAddr::new(2, 0, 0, 0, 0, 1), &ip, &syn)?;
/// let Frame6::Tcp(frame) = wire::parse_ipv6(&bytes)? else { panic!("not TCP") };
/// assert!(frame.checksum_ok);
/// assert_eq!((frame.ip, frame.segment), (ip, syn));
/// # Ok::<(), wire::WireError>(())
/// ```
pub fn emit_tcp6(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    ip: &Ipv6Repr,
    segment: &SegmentRepr,
) -> Result<Vec<u8>, WireError> {
    let options = tcp_options(&segment.options);
    let tcp_len = TCP_HEADER_LEN + options_len(&options) + segment.payload.len();
    let payload_len = u16::try_from(tcp_len).map_err(|_| WireError::TooLarge { len: tcp_len })?;
    let mut buf = ipv6_frame(
        src_mac,
        dst_mac,
        ip,
        IpNextHeaderProtocols::Tcp,
        payload_len,
    )?;
    let too_large = WireError::TooLarge { len: tcp_len };
    let mut tcp_pkt = MutableTcpPacket::new(&mut buf[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN..])
        .ok_or(too_large)?;
    fill_tcp(&mut tcp_pkt, segment, &options);
    let sum = tcp::ipv6_checksum(&tcp_pkt.to_immutable(), &ip.src, &ip.dst);
    tcp_pkt.set_checksum(sum);
    Ok(buf)
}

/// A zeroed frame of the right size with its Ethernet and IPv6 headers
/// filled in; the upper layer's `payload_len` bytes follow at
/// `ETHERNET_HEADER_LEN + IPV6_HEADER_LEN`.
pub(super) fn ipv6_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    ip: &Ipv6Repr,
    next_header: IpNextHeaderProtocol,
    payload_len: u16,
) -> Result<Vec<u8>, WireError> {
    if ip.flow_label > FLOW_LABEL_MAX {
        return Err(WireError::Malformed {
            reason: format!("flow label {:#x} is wider than 20 bits", ip.flow_label),
        });
    }
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + usize::from(payload_len)];
    let too_large = WireError::TooLarge {
        len: usize::from(payload_len),
    };
    {
        let mut eth = MutableEthernetPacket::new(&mut buf).ok_or(too_large.clone())?;
        eth.set_destination(dst_mac);
        eth.set_source(src_mac);
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    let mut ip_pkt = MutableIpv6Packet::new(&mut buf[ETHERNET_HEADER_LEN..]).ok_or(too_large)?;
    ip_pkt.set_version(6);
    ip_pkt.set_traffic_class(0);
    ip_pkt.set_flow_label(ip.flow_label);
    ip_pkt.set_payload_length(payload_len);
    ip_pkt.set_next_header(next_header);
    ip_pkt.set_hop_limit(ip.hop_limit);
    ip_pkt.set_source(ip.src);
    ip_pkt.set_destination(ip.dst);
    Ok(buf)
}

fn ipv6_repr(header: &etherparse::Ipv6HeaderSlice<'_>) -> Ipv6Repr {
    Ipv6Repr {
        src: header.source_addr(),
        dst: header.destination_addr(),
        flow_label: header.flow_label().value(),
        hop_limit: header.hop_limit(),
    }
}

/// Parses one received Ethernet frame that carries IPv6 (EtherType
/// 0x86dd); [`super::parse`] reports such frames as `Frame::Other`.
///
/// # Errors
/// [`WireError::Malformed`] when the frame is not IPv6 or a header is cut
/// short. A wrong checksum is not an error: see
/// [`Tcp6Frame::checksum_ok`].
pub fn parse_ipv6(bytes: &[u8]) -> Result<Frame6, WireError> {
    let sliced = SlicedPacket::from_ethernet(bytes).map_err(|err| WireError::Malformed {
        reason: err.to_string(),
    })?;
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &sliced.link else {
        return Err(WireError::Malformed {
            reason: "not an Ethernet II frame".into(),
        });
    };
    let (src_mac, dst_mac) = (mac(eth.source()), mac(eth.destination()));
    let Some(NetSlice::Ipv6(ip6)) = &sliced.net else {
        return Err(WireError::Malformed {
            reason: format!("not IPv6 (EtherType {:#06x})", eth.ether_type().0),
        });
    };
    let header = ip6.header();
    let ip = ipv6_repr(&header);
    let next_header = ip6.payload().ip_number.0;
    match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let checksum_ok = tcp
                .calc_checksum_ipv6(header.source(), header.destination())
                .is_ok_and(|sum| sum == tcp.checksum());
            Ok(Frame6::Tcp(Tcp6Frame {
                src_mac,
                dst_mac,
                ip,
                segment: SegmentRepr {
                    src_port: tcp.source_port(),
                    dst_port: tcp.destination_port(),
                    seq: SeqNumber(tcp.sequence_number()),
                    ack: SeqNumber(tcp.acknowledgment_number()),
                    flags: Flags(tcp.header_slice()[13]),
                    window: tcp.window_size(),
                    options: parse_options(tcp.options()),
                    payload: tcp.payload().to_vec(),
                },
                checksum_ok,
            }))
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            let checksum_ok = icmp.is_checksum_valid(header.source(), header.destination());
            if let Some(ndp) = ndp::parse_ndp(icmp) {
                return Ok(Frame6::Ndp(NdpFrame {
                    src_mac,
                    dst_mac,
                    ip,
                    ndp,
                    checksum_ok,
                }));
            }
            if let Some(error) = icmpv6::parse_icmpv6_error_slice(ip.src, icmp, checksum_ok) {
                return Ok(Frame6::Icmpv6Error(error));
            }
            Ok(Frame6::Other {
                next_header,
                icmpv6_type: Some(icmp.type_u8()),
            })
        }
        _ => Ok(Frame6::Other {
            next_header,
            icmpv6_type: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TcpOptions;
    use proptest::prelude::*;

    const CLIENT_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 2);
    const SERVER_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);

    pub(crate) fn ip() -> Ipv6Repr {
        Ipv6Repr {
            src: "2001:2::2".parse().unwrap(),
            dst: "2001:2::1".parse().unwrap(),
            flow_label: 0xabcde,
            hop_limit: DEFAULT_HOP_LIMIT,
        }
    }

    fn syn() -> SegmentRepr {
        SegmentRepr {
            src_port: 40000,
            dst_port: 8080,
            seq: SeqNumber(0xdead_beef),
            ack: SeqNumber(0),
            flags: Flags::SYN,
            window: 64800,
            options: TcpOptions {
                mss: Some(1440),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 0)),
                ..TcpOptions::default()
            },
            payload: Vec::new(),
        }
    }

    /// The SYN above, byte for byte: Ethernet, the IPv6 header (version 6,
    /// flow label 0xabcde, payload length 40, next header 6, hop limit
    /// 64), TCP with Linux's option layout. The TCP checksum 0xb17b is
    /// tshark's and etherparse's (see `checksums_agree_with_etherparse`).
    #[rustfmt::skip]
    static SYN_FRAME: [u8; 94] = [
        // Ethernet: dst, src, EtherType 0x86dd.
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd,
        // IPv6: 6 | tc 0 | flow 0xabcde; payload length 40; TCP; hop 64.
        0x60, 0x0a, 0xbc, 0xde, 0x00, 0x28, 0x06, 0x40,
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        // TCP: ports 40000 → 8080, seq, ack 0, offset 10, SYN, window.
        0x9c, 0x40, 0x1f, 0x90, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0,
        0xa0, 0x02, 0xfd, 0x20, 0xb1, 0x7b, 0x00, 0x00,
        // MSS 1440, SACK permitted, timestamps 1/0, NOP, wscale 7.
        0x02, 0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 0x01,
        0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn the_syn_is_the_fixture() {
        let bytes = emit_tcp6(CLIENT_MAC, SERVER_MAC, &ip(), &syn()).unwrap();
        assert_eq!(bytes, SYN_FRAME);
        assert_eq!(bytes.len(), tcp6_frame_len(&syn()));
    }

    #[test]
    fn the_fixture_parses_to_the_syn() {
        let Frame6::Tcp(frame) = parse_ipv6(&SYN_FRAME).unwrap() else {
            panic!("not TCP")
        };
        assert!(frame.checksum_ok);
        assert_eq!(frame.segment, syn());
        assert_eq!(frame.ip, ip());
        assert_eq!((frame.src_mac, frame.dst_mac), (CLIENT_MAC, SERVER_MAC));
    }

    #[test]
    fn checksums_agree_with_etherparse() {
        let mut seg = syn();
        seg.flags = Flags::PSH_ACK;
        seg.options = TcpOptions::default();
        seg.payload = b"hello".to_vec();
        for seg in [syn(), seg] {
            let bytes = emit_tcp6(CLIENT_MAC, SERVER_MAC, &ip(), &seg).unwrap();
            let headers = etherparse::PacketHeaders::from_ethernet_slice(&bytes).unwrap();
            let Some(etherparse::NetHeaders::Ipv6(v6, _)) = headers.net else {
                panic!("no IPv6")
            };
            assert_eq!(v6.flow_label.value(), 0xabcde);
            assert_eq!(v6.hop_limit, 64);
            let Some(etherparse::TransportHeader::Tcp(tcp)) = headers.transport else {
                panic!("no TCP")
            };
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv6(&v6, &seg.payload).unwrap()
            );
        }
    }

    #[test]
    fn a_flipped_bit_is_reported_not_rejected() {
        let mut bytes = SYN_FRAME.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let Frame6::Tcp(frame) = parse_ipv6(&bytes).unwrap() else {
            panic!("not TCP")
        };
        assert!(!frame.checksum_ok);
        // The pseudo-header counts: another source address, same bytes
        // otherwise, is a wrong checksum too.
        let mut moved = SYN_FRAME.to_vec();
        moved[ETHERNET_HEADER_LEN + 8 + 15] = 0x03;
        let Frame6::Tcp(frame) = parse_ipv6(&moved).unwrap() else {
            panic!("not TCP")
        };
        assert!(!frame.checksum_ok);
    }

    #[test]
    fn a_wide_flow_label_or_a_huge_segment_is_an_error() {
        let wide = Ipv6Repr {
            flow_label: 0x10_0000,
            ..ip()
        };
        assert!(emit_tcp6(CLIENT_MAC, SERVER_MAC, &wide, &syn()).is_err());
        let huge = SegmentRepr {
            payload: vec![0; 65_535],
            ..syn()
        };
        assert!(matches!(
            emit_tcp6(CLIENT_MAC, SERVER_MAC, &ip(), &huge),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn ipv4_is_not_ipv6() {
        let v4 = crate::wire::Ipv4Repr {
            src: "198.18.0.2".parse().unwrap(),
            dst: "198.18.0.1".parse().unwrap(),
            ident: 1,
            ttl: 64,
        };
        let bytes = crate::wire::emit_tcp(CLIENT_MAC, SERVER_MAC, &v4, &syn()).unwrap();
        assert!(parse_ipv6(&bytes).is_err());
        // And the IPv4 parser leaves an IPv6 frame to us.
        assert_eq!(
            crate::wire::parse(&SYN_FRAME).unwrap(),
            crate::wire::Frame::Other {
                ether_type: ETHERTYPE_IPV6
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_noise_never_a_panic() {
        for len in 0..SYN_FRAME.len() {
            let parsed = parse_ipv6(&SYN_FRAME[..len]);
            assert!(
                !matches!(parsed, Ok(Frame6::Tcp(_))),
                "a frame cut at {len} bytes parsed as a whole TCP segment"
            );
        }
    }

    proptest! {
        #[test]
        fn any_segment_round_trips(
            seq: u32, ack: u32, flags: u8, window: u16,
            flow_label in 0u32..=FLOW_LABEL_MAX, hop_limit: u8,
            mss in proptest::option::of(any::<u16>()),
            wscale in proptest::option::of(0u8..15),
            sack: bool,
            ts in proptest::option::of(any::<(u32, u32)>()),
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let seg = SegmentRepr {
                src_port: 1234, dst_port: 80,
                seq: SeqNumber(seq), ack: SeqNumber(ack), flags: Flags(flags), window,
                options: TcpOptions { mss, wscale, sack_permitted: sack, timestamps: ts, ..TcpOptions::default() },
                payload,
            };
            let ip = Ipv6Repr { flow_label, hop_limit, ..ip() };
            let bytes = emit_tcp6(CLIENT_MAC, SERVER_MAC, &ip, &seg).unwrap();
            prop_assert_eq!(bytes.len(), tcp6_frame_len(&seg));
            let Ok(Frame6::Tcp(frame)) = parse_ipv6(&bytes) else { panic!("not TCP") };
            prop_assert!(frame.checksum_ok);
            prop_assert_eq!(frame.segment, seg);
            prop_assert_eq!(frame.ip, ip);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_ipv6(&bytes);
        }

        #[test]
        fn random_ipv6_payloads_never_panic(
            next_header: u8,
            body in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut bytes = SYN_FRAME[..ETHERNET_HEADER_LEN + IPV6_HEADER_LEN].to_vec();
            let len = body.len() as u16;
            bytes[ETHERNET_HEADER_LEN + 4..ETHERNET_HEADER_LEN + 6].copy_from_slice(&len.to_be_bytes());
            bytes[ETHERNET_HEADER_LEN + 6] = next_header;
            bytes.extend(body);
            let _ = parse_ipv6(&bytes);
        }
    }
}
