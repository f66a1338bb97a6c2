//! Whole Ethernet frames: emit ARP and IPv4/TCP with pnet (pnet computes the
//! checksums), parse what arrives with etherparse slices.
//!
//! Pure: byte slices in, byte vectors and representations out.

use std::net::Ipv4Addr;

use etherparse::{ArpOperation, EtherType, NetSlice, SlicedPacket, TransportSlice};
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet::packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet::packet::tcp::{self, MutableTcpPacket, TcpOption, TcpOptionPacket};
use pnet::packet::udp::{self, MutableUdpPacket};
pub use pnet::util::MacAddr;

use super::{SegmentRepr, TcpOptions, TcpView, WireError};

/// Ethernet II header: two MACs and the EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;
/// UDP header (RFC 768): ports, length, checksum.
pub const UDP_HEADER_LEN: usize = 8;
/// ARP for Ethernet and IPv4 (RFC 826).
pub const ARP_PACKET_LEN: usize = 28;
/// The TTL Linux uses by default.
pub const DEFAULT_TTL: u8 = 64;

/// The IPv4 part of a frame that carries TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The Identification field; Linux counts it per socket.
    pub ident: u16,
    pub ttl: u8,
}

/// An Ethernet frame holding IPv4 and TCP, as sent or as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpFrame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub ip: Ipv4Repr,
    pub segment: SegmentRepr,
    /// Both the IPv4 header and the TCP checksum were right. A wrong one is a
    /// finding, not a parse failure (veth and loopback offload make them).
    pub checksums_ok: bool,
}

/// A UDP datagram (RFC 768), in host terms.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
}

/// An Ethernet frame holding IPv4 and UDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpFrame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub ip: Ipv4Repr,
    pub datagram: UdpRepr,
    /// The IPv4 header checksum and the UDP checksum (when one was sent:
    /// 0 means none over IPv4) were right.
    pub checksums_ok: bool,
}

/// ARP operations synack deals with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

/// An ARP packet for Ethernet and IPv4 (RFC 826).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// What one received frame turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Tcp(TcpFrame),
    Udp(UdpFrame),
    Arp {
        src_mac: MacAddr,
        dst_mac: MacAddr,
        arp: ArpRepr,
    },
    /// Anything else (IPv6, ICMP, other ARP kinds): noise to the client.
    Other {
        ether_type: u16,
    },
}

/// The options synack puts on a segment, in Linux's order and alignment.
pub(super) fn tcp_options(opts: &TcpOptions) -> Vec<TcpOption> {
    let mut out = Vec::new();
    if let Some(mss) = opts.mss {
        out.push(TcpOption::mss(mss));
    }
    match (opts.sack_permitted, opts.timestamps) {
        (true, Some((val, ecr))) => {
            out.push(TcpOption::sack_perm());
            out.push(TcpOption::timestamp(val, ecr));
        }
        (true, None) => {
            out.push(TcpOption::nop());
            out.push(TcpOption::nop());
            out.push(TcpOption::sack_perm());
        }
        (false, Some((val, ecr))) => {
            out.push(TcpOption::nop());
            out.push(TcpOption::nop());
            out.push(TcpOption::timestamp(val, ecr));
        }
        (false, None) => {}
    }
    if let Some(ws) = opts.wscale {
        out.push(TcpOption::nop());
        out.push(TcpOption::wscale(ws));
    }
    // The header length counts 32-bit words: pad with NOPs.
    while options_len(&out) % 4 != 0 {
        out.push(TcpOption::nop());
    }
    out
}

pub(super) fn options_len(opts: &[TcpOption]) -> usize {
    opts.iter().map(TcpOptionPacket::packet_size).sum()
}

/// The size of the frame [`emit_tcp`] builds for this segment.
pub fn tcp_frame_len(segment: &SegmentRepr) -> usize {
    ETHERNET_HEADER_LEN
        + IPV4_HEADER_LEN
        + TCP_HEADER_LEN
        + options_len(&tcp_options(&segment.options))
        + segment.payload.len()
}

/// Builds an Ethernet/IPv4/TCP frame. Lengths and both checksums are
/// computed here (with pnet's checksum functions).
///
/// # Errors
/// [`WireError::TooLarge`] when the payload does not fit an IPv4 packet.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::wire::{self, Flags, Frame, Ipv4Repr, MacAddr, SegmentRepr, SeqNumber};
///
/// let syn = SegmentRepr {
///     src_port: 40000,
///     dst_port: 8080,
///     seq: SeqNumber(1000),
///     flags: Flags::SYN,
///     window: 64240,
///     ..SegmentRepr::default()
/// };
/// let ip = Ipv4Repr {
///     src: Ipv4Addr::new(198, 18, 0, 2),
///     dst: Ipv4Addr::new(198, 18, 0, 1),
///     ident: 1,
///     ttl: 64,
/// };
/// let bytes = wire::emit_tcp(MacAddr::new(2, 0, 0, 0, 0, 2), MacAddr::new(2, 0, 0, 0, 0, 1), &ip, &syn)?;
/// let Frame::Tcp(frame) = wire::parse(&bytes)? else { panic!("not TCP") };
/// assert!(frame.checksums_ok);
/// assert_eq!(frame.segment, syn);
/// # Ok::<(), wire::WireError>(())
/// ```
pub fn emit_tcp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    ip: &Ipv4Repr,
    segment: &SegmentRepr,
) -> Result<Vec<u8>, WireError> {
    let options = tcp_options(&segment.options);
    let tcp_len = TCP_HEADER_LEN + options_len(&options) + segment.payload.len();
    let ip_len = IPV4_HEADER_LEN + tcp_len;
    let total_len = u16::try_from(ip_len).map_err(|_| WireError::TooLarge { len: ip_len })?;
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + ip_len];

    {
        let mut eth =
            MutableEthernetPacket::new(&mut buf).ok_or(WireError::TooLarge { len: ip_len })?;
        eth.set_destination(dst_mac);
        eth.set_source(src_mac);
        eth.set_ethertype(EtherTypes::Ipv4);
    }
    {
        let ip_buf = &mut buf[ETHERNET_HEADER_LEN..];
        let mut tcp_pkt = MutableTcpPacket::new(&mut ip_buf[IPV4_HEADER_LEN..])
            .ok_or(WireError::TooLarge { len: ip_len })?;
        fill_tcp(&mut tcp_pkt, segment, &options);
        let sum = tcp::ipv4_checksum(&tcp_pkt.to_immutable(), &ip.src, &ip.dst);
        tcp_pkt.set_checksum(sum);
    }
    write_ipv4(
        &mut buf[ETHERNET_HEADER_LEN..],
        ip,
        IpNextHeaderProtocols::Tcp,
        total_len,
    )?;
    Ok(buf)
}

/// Fills a TCP header and its payload from `segment`, for IPv4 and IPv6
/// alike; the checksum is the caller's, over its own pseudo-header.
pub(super) fn fill_tcp(
    tcp_pkt: &mut MutableTcpPacket<'_>,
    segment: &SegmentRepr,
    options: &[TcpOption],
) {
    tcp_pkt.set_source(segment.src_port);
    tcp_pkt.set_destination(segment.dst_port);
    tcp_pkt.set_sequence(segment.seq.0);
    tcp_pkt.set_acknowledgement(segment.ack.0);
    // The data offset counts 32-bit words.
    tcp_pkt.set_data_offset(((TCP_HEADER_LEN + options_len(options)) / 4) as u8);
    tcp_pkt.set_flags(segment.flags.0);
    tcp_pkt.set_window(segment.window);
    tcp_pkt.set_options(options);
    tcp_pkt.set_payload(&segment.payload);
}

/// Fills the IPv4 header at the front of `buf` (which holds the whole IP
/// packet), its checksum computed by pnet.
fn write_ipv4(
    buf: &mut [u8],
    ip: &Ipv4Repr,
    protocol: IpNextHeaderProtocol,
    total_len: u16,
) -> Result<(), WireError> {
    let mut ip_pkt = MutableIpv4Packet::new(buf).ok_or(WireError::TooLarge {
        len: usize::from(total_len),
    })?;
    ip_pkt.set_version(4);
    ip_pkt.set_header_length((IPV4_HEADER_LEN / 4) as u8);
    ip_pkt.set_total_length(total_len);
    ip_pkt.set_identification(ip.ident);
    ip_pkt.set_flags(Ipv4Flags::DontFragment);
    ip_pkt.set_ttl(ip.ttl);
    ip_pkt.set_next_level_protocol(protocol);
    ip_pkt.set_source(ip.src);
    ip_pkt.set_destination(ip.dst);
    let sum = ipv4::checksum(&ip_pkt.to_immutable());
    ip_pkt.set_checksum(sum);
    Ok(())
}

/// Builds an Ethernet/IPv4/UDP frame (RFC 768). Lengths and both checksums
/// are computed here, with pnet's checksum functions.
///
/// # Errors
/// [`WireError::TooLarge`] when the payload does not fit an IPv4 packet.
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::wire::{self, Frame, Ipv4Repr, MacAddr, UdpRepr};
///
/// let datagram = UdpRepr { src_port: 40000, dst_port: 8080, payload: b"hello".to_vec() };
/// let ip = Ipv4Repr {
///     src: Ipv4Addr::new(198, 18, 0, 2),
///     dst: Ipv4Addr::new(198, 18, 0, 1),
///     ident: 1,
///     ttl: 64,
/// };
/// let bytes = wire::emit_udp(MacAddr::new(2, 0, 0, 0, 0, 2), MacAddr::new(2, 0, 0, 0, 0, 1), &ip, &datagram)?;
/// let Frame::Udp(frame) = wire::parse(&bytes)? else { panic!("not UDP") };
/// assert!(frame.checksums_ok);
/// assert_eq!(frame.datagram, datagram);
/// # Ok::<(), wire::WireError>(())
/// ```
pub fn emit_udp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    ip: &Ipv4Repr,
    datagram: &UdpRepr,
) -> Result<Vec<u8>, WireError> {
    let udp_len = UDP_HEADER_LEN + datagram.payload.len();
    let ip_len = IPV4_HEADER_LEN + udp_len;
    let too_large = WireError::TooLarge { len: ip_len };
    let total_len = u16::try_from(ip_len).map_err(|_| too_large.clone())?;
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + ip_len];
    {
        let mut eth = MutableEthernetPacket::new(&mut buf).ok_or(too_large.clone())?;
        eth.set_destination(dst_mac);
        eth.set_source(src_mac);
        eth.set_ethertype(EtherTypes::Ipv4);
    }
    {
        let ip_buf = &mut buf[ETHERNET_HEADER_LEN..];
        let mut udp_pkt =
            MutableUdpPacket::new(&mut ip_buf[IPV4_HEADER_LEN..]).ok_or(too_large.clone())?;
        udp_pkt.set_source(datagram.src_port);
        udp_pkt.set_destination(datagram.dst_port);
        // The UDP length fits: it is less than the IPv4 total length.
        udp_pkt.set_length(udp_len as u16);
        udp_pkt.set_payload(&datagram.payload);
        let sum = udp::ipv4_checksum(&udp_pkt.to_immutable(), &ip.src, &ip.dst);
        udp_pkt.set_checksum(sum);
    }
    write_ipv4(
        &mut buf[ETHERNET_HEADER_LEN..],
        ip,
        IpNextHeaderProtocols::Udp,
        total_len,
    )?;
    Ok(buf)
}

/// Builds an Ethernet frame carrying ARP (RFC 826).
pub fn emit_arp(src_mac: MacAddr, dst_mac: MacAddr, arp: &ArpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + ARP_PACKET_LEN];
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(dst_mac);
        eth.set_source(src_mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut pkt) = MutableArpPacket::new(&mut buf[ETHERNET_HEADER_LEN..]) {
        pkt.set_hardware_type(ArpHardwareTypes::Ethernet);
        pkt.set_protocol_type(EtherTypes::Ipv4);
        pkt.set_hw_addr_len(6);
        pkt.set_proto_addr_len(4);
        pkt.set_operation(match arp.op {
            ArpOp::Request => ArpOperations::Request,
            ArpOp::Reply => ArpOperations::Reply,
        });
        pkt.set_sender_hw_addr(arp.sender_mac);
        pkt.set_sender_proto_addr(arp.sender_ip);
        pkt.set_target_hw_addr(arp.target_mac);
        pkt.set_target_proto_addr(arp.target_ip);
    }
    buf
}

pub(super) fn mac(bytes: [u8; 6]) -> MacAddr {
    MacAddr::from(bytes)
}

/// The IPv4 header's fields we keep, and whether its checksum is right.
fn ipv4_repr(header: etherparse::Ipv4HeaderSlice<'_>) -> (Ipv4Repr, bool) {
    let ok = header.to_header().calc_header_checksum() == header.header_checksum();
    let repr = Ipv4Repr {
        src: Ipv4Addr::from(header.source()),
        dst: Ipv4Addr::from(header.destination()),
        ident: header.identification(),
        ttl: header.ttl(),
    };
    (repr, ok)
}

/// Parses one received Ethernet frame.
///
/// # Errors
/// [`WireError::Malformed`] when a header is cut short or makes no sense.
/// A wrong checksum is not an error: see [`TcpFrame::checksums_ok`].
pub fn parse(bytes: &[u8]) -> Result<Frame, WireError> {
    let sliced = SlicedPacket::from_ethernet(bytes).map_err(|err| WireError::Malformed {
        reason: err.to_string(),
    })?;
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &sliced.link else {
        return Err(WireError::Malformed {
            reason: "not an Ethernet II frame".into(),
        });
    };
    let (src_mac, dst_mac) = (mac(eth.source()), mac(eth.destination()));
    match (&sliced.net, &sliced.transport) {
        (Some(NetSlice::Arp(arp)), _) => Ok(arp_frame(arp, src_mac, dst_mac)),
        (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) => {
            let (ip, ip_ok) = ipv4_repr(ip.header());
            let (src, dst) = (ip.src.octets(), ip.dst.octets());
            // The one checksum check of synack (wire::tcp), as inspect's.
            let tcp_ok = super::tcp::verify_checksum(src.into(), dst.into(), tcp.slice())
                == super::tcp::Checksum::Good;
            let view = TcpView::new_lax(tcp.slice()).map_err(|err| WireError::Malformed {
                reason: format!("TCP header: {err:?}"),
            })?;
            Ok(Frame::Tcp(TcpFrame {
                src_mac,
                dst_mac,
                ip,
                segment: SegmentRepr {
                    src_port: view.src_port(),
                    dst_port: view.dst_port(),
                    seq: view.seq_number(),
                    ack: view.ack_number(),
                    flags: view.flags(),
                    window: view.window(),
                    options: view.options(),
                    payload: tcp.payload().to_vec(),
                },
                checksums_ok: ip_ok && tcp_ok,
            }))
        }
        (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) => {
            let (ip, ip_ok) = ipv4_repr(ip.header());
            let (src, dst) = (ip.src.octets(), ip.dst.octets());
            let udp_ok = udp.checksum() == 0
                || udp
                    .to_header()
                    .calc_checksum_ipv4_raw(src, dst, udp.payload())
                    .is_ok_and(|sum| sum == udp.checksum());
            Ok(Frame::Udp(UdpFrame {
                src_mac,
                dst_mac,
                ip,
                datagram: UdpRepr {
                    src_port: udp.source_port(),
                    dst_port: udp.destination_port(),
                    payload: udp.payload().to_vec(),
                },
                checksums_ok: ip_ok && udp_ok,
            }))
        }
        _ => Ok(Frame::Other {
            ether_type: eth.ether_type().0,
        }),
    }
}

/// An ARP frame; one not for Ethernet and IPv4, or neither a request nor a
/// reply, is [`Frame::Other`].
fn arp_frame(arp: &etherparse::ArpPacketSlice, src_mac: MacAddr, dst_mac: MacAddr) -> Frame {
    let packet = arp.to_packet();
    let Ok(arp) = packet.try_eth_ipv4() else {
        return Frame::Other {
            ether_type: EtherType::ARP.0,
        };
    };
    let op = match arp.operation {
        ArpOperation::REQUEST => ArpOp::Request,
        ArpOperation::REPLY => ArpOp::Reply,
        _ => {
            return Frame::Other {
                ether_type: EtherType::ARP.0,
            }
        }
    };
    Frame::Arp {
        src_mac,
        dst_mac,
        arp: ArpRepr {
            op,
            sender_mac: mac(arp.sender_mac),
            sender_ip: Ipv4Addr::from(arp.sender_ipv4),
            target_mac: mac(arp.target_mac),
            target_ip: Ipv4Addr::from(arp.target_ipv4),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, SeqNumber};
    use proptest::prelude::*;

    const CLIENT_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 2);
    const SERVER_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);

    fn ip() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(198, 18, 0, 1),
            ident: 7,
            ttl: DEFAULT_TTL,
        }
    }

    fn syn() -> SegmentRepr {
        SegmentRepr {
            src_port: 40000,
            dst_port: 8080,
            seq: SeqNumber(0xdead_beef),
            ack: SeqNumber(0),
            flags: Flags::SYN,
            window: 64240,
            options: TcpOptions {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 0)),
                ..TcpOptions::default()
            },
            payload: Vec::new(),
        }
    }

    /// A SYN as Linux 6.x sends it (captured on the lab's veth): MSS 1460,
    /// SACK permitted, timestamps, NOP, window scale 7.
    static LINUX_SYN_OPTIONS: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn syn_options_are_laid_out_like_linux() {
        let bytes = emit_tcp(CLIENT_MAC, SERVER_MAC, &ip(), &syn()).unwrap();
        let opts_at = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + TCP_HEADER_LEN;
        assert_eq!(&bytes[opts_at..opts_at + 20], &LINUX_SYN_OPTIONS);
        assert_eq!(bytes.len(), tcp_frame_len(&syn()));
        // Data offset: (20 + 20) / 4 = 10 words, in the high nibble.
        assert_eq!(bytes[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 12] >> 4, 10);
    }

    #[test]
    fn syn_round_trips_with_good_checksums() {
        let bytes = emit_tcp(CLIENT_MAC, SERVER_MAC, &ip(), &syn()).unwrap();
        let Frame::Tcp(frame) = parse(&bytes).unwrap() else {
            panic!("not parsed as TCP")
        };
        assert!(frame.checksums_ok);
        assert_eq!(frame.segment, syn());
        assert_eq!(frame.ip, ip());
        assert_eq!(frame.src_mac, CLIENT_MAC);
        assert_eq!(frame.dst_mac, SERVER_MAC);
    }

    #[test]
    fn checksums_agree_with_etherparse() {
        let mut seg = syn();
        seg.flags = Flags::PSH_ACK;
        seg.options = TcpOptions {
            timestamps: Some((5, 6)),
            ..TcpOptions::default()
        };
        seg.payload = b"hello".to_vec();
        let bytes = emit_tcp(CLIENT_MAC, SERVER_MAC, &ip(), &seg).unwrap();
        let headers = etherparse::PacketHeaders::from_ethernet_slice(&bytes).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(v4, _)) = headers.net else {
            panic!("no IPv4")
        };
        assert_eq!(v4.header_checksum, v4.calc_header_checksum());
        let Some(etherparse::TransportHeader::Tcp(tcp)) = headers.transport else {
            panic!("no TCP")
        };
        assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(&v4, b"hello").unwrap());
    }

    fn datagram() -> UdpRepr {
        UdpRepr {
            src_port: 40000,
            dst_port: 8080,
            payload: b"hello".to_vec(),
        }
    }

    #[test]
    fn udp_round_trips_with_good_checksums() {
        let bytes = emit_udp(CLIENT_MAC, SERVER_MAC, &ip(), &datagram()).unwrap();
        assert_eq!(
            bytes.len(),
            ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + 5
        );
        let Frame::Udp(frame) = parse(&bytes).unwrap() else {
            panic!("not parsed as UDP")
        };
        assert!(frame.checksums_ok);
        assert_eq!(frame.datagram, datagram());
        assert_eq!(frame.ip, ip());
        assert_eq!((frame.src_mac, frame.dst_mac), (CLIENT_MAC, SERVER_MAC));
    }

    #[test]
    fn udp_checksums_agree_with_etherparse() {
        for payload in [&b""[..], b"hello", &[0xa5; 1001]] {
            let d = UdpRepr {
                payload: payload.to_vec(),
                ..datagram()
            };
            let bytes = emit_udp(CLIENT_MAC, SERVER_MAC, &ip(), &d).unwrap();
            let headers = etherparse::PacketHeaders::from_ethernet_slice(&bytes).unwrap();
            let Some(etherparse::NetHeaders::Ipv4(v4, _)) = headers.net else {
                panic!("no IPv4")
            };
            assert_eq!(v4.header_checksum, v4.calc_header_checksum());
            assert_eq!(v4.protocol, etherparse::IpNumber::UDP);
            let Some(etherparse::TransportHeader::Udp(udp)) = headers.transport else {
                panic!("no UDP")
            };
            assert_eq!(usize::from(udp.length), UDP_HEADER_LEN + payload.len());
            assert_ne!(udp.checksum, 0, "a checksum is always sent");
            assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&v4, payload).unwrap());
        }
    }

    #[test]
    fn a_flipped_udp_bit_is_reported_not_rejected() {
        let mut bytes = emit_udp(CLIENT_MAC, SERVER_MAC, &ip(), &datagram()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let Frame::Udp(frame) = parse(&bytes).unwrap() else {
            panic!("not parsed as UDP")
        };
        assert!(!frame.checksums_ok);
    }

    #[test]
    fn a_flipped_bit_is_reported_not_rejected() {
        let mut bytes = emit_tcp(CLIENT_MAC, SERVER_MAC, &ip(), &syn()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let Frame::Tcp(frame) = parse(&bytes).unwrap() else {
            panic!("not parsed as TCP")
        };
        assert!(!frame.checksums_ok);
    }

    #[test]
    fn arp_round_trips() {
        let arp = ArpRepr {
            op: ArpOp::Request,
            sender_mac: SERVER_MAC,
            sender_ip: Ipv4Addr::new(198, 18, 0, 1),
            target_mac: MacAddr::zero(),
            target_ip: Ipv4Addr::new(198, 18, 0, 2),
        };
        let bytes = emit_arp(SERVER_MAC, MacAddr::broadcast(), &arp);
        assert_eq!(
            parse(&bytes).unwrap(),
            Frame::Arp {
                src_mac: SERVER_MAC,
                dst_mac: MacAddr::broadcast(),
                arp
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_noise_never_a_panic() {
        let bytes = emit_tcp(CLIENT_MAC, SERVER_MAC, &ip(), &syn()).unwrap();
        for len in 0..bytes.len() {
            let parsed = parse(&bytes[..len]);
            assert!(
                !matches!(parsed, Ok(Frame::Tcp(_))),
                "a frame cut at {len} bytes parsed as a whole TCP segment"
            );
        }
    }

    proptest! {
        #[test]
        fn any_segment_round_trips(
            seq: u32, ack: u32, flags: u8, window: u16,
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
            let bytes = emit_tcp(CLIENT_MAC, SERVER_MAC, &ip(), &seg).unwrap();
            let Ok(Frame::Tcp(frame)) = parse(&bytes) else { panic!("not TCP") };
            prop_assert!(frame.checksums_ok);
            prop_assert_eq!(frame.segment, seg);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
