//! From a captured frame to its TCP segment: the link-layer header
//! (Ethernet with VLAN tags, RAW IP, NULL/LOOP, Linux SLL and SLL2), the IP
//! header (IPv4, IPv6 with extension headers, via etherparse's lax slices)
//! and the TCP header, read field by field so that a header cut by the
//! snaplen still gives its ports, numbers and flags.
//!
//! Pure: byte slices in, views out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use etherparse::{IpNumber, LaxIpSlice};

use crate::wire::{Flags, SeqNumber, TcpOptions};

/// LINKTYPE_* values (tcpdump.org/linktypes.html) this module decodes.
pub mod linktype {
    /// BSD loopback: a 4-byte address family in the writer's byte order.
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW as some systems write it into pcap files.
    pub const RAW_DLT12: u32 = 12;
    pub const RAW_DLT14: u32 = 14;
    /// Raw IP, version from the first nibble.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: a 4-byte address family, network byte order.
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// Ethernet II: destination, source, EtherType.
mod ethernet {
    use std::ops::Range;
    pub const ETHER_TYPE: Range<usize> = 12..14;
    pub const HEADER_LEN: usize = 14;
}

/// An 802.1Q/802.1ad tag: TCI, then the inner EtherType.
mod vlan {
    use std::ops::Range;
    pub const INNER_ETHER_TYPE: Range<usize> = 2..4;
    pub const TAG_LEN: usize = 4;
    /// At most this many stacked tags are skipped.
    pub const MAX_TAGS: usize = 4;
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16 bytes).
mod sll {
    use std::ops::Range;
    pub const PROTOCOL: Range<usize> = 14..16;
    pub const HEADER_LEN: usize = 16;
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20 bytes), what
/// `tcpdump -i any` writes. etherparse does not know it.
pub mod sll2 {
    use std::ops::Range;
    /// The EtherType of the payload.
    pub const PROTOCOL_TYPE: Range<usize> = 0..2;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 2..4;
    /// The capturing interface's index.
    pub const INTERFACE_INDEX: Range<usize> = 4..8;
    /// ARPHRD_* of the interface.
    pub const ARPHRD_TYPE: Range<usize> = 8..10;
    /// PACKET_HOST, PACKET_OUTGOING, …
    pub const PACKET_TYPE: usize = 10;
    /// How many bytes of `LINK_ADDRESS` are used.
    pub const LINK_ADDRESS_LEN: usize = 11;
    pub const LINK_ADDRESS: Range<usize> = 12..20;
    pub const HEADER_LEN: usize = LINK_ADDRESS.end;
}

/// The 4-byte address-family header of NULL and LOOP.
mod null {
    pub const HEADER_LEN: usize = 4;
    pub const AF_INET: u32 = 2;
    /// AF_INET6 differs between systems: Linux, NetBSD/OpenBSD, FreeBSD,
    /// macOS.
    pub const AF_INET6: [u32; 4] = [10, 24, 28, 30];
}

const ETHER_TYPE_IPV4: u16 = 0x0800;
const ETHER_TYPE_IPV6: u16 = 0x86DD;
const ETHER_TYPE_VLAN: [u16; 3] = [0x8100, 0x88A8, 0x9100];

/// Why a frame yields no TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// A link type this module does not decode.
    UnsupportedLink(u32),
    /// Not IP (ARP, LLDP, …).
    NotIp,
    /// IP, but not TCP.
    NotTcp,
    /// A link, IP or TCP header cut before its fixed part.
    Truncated,
    /// A header that makes no sense.
    Malformed,
    /// A non-first IP fragment (or a first one: not reassembled).
    Fragment,
}

/// The IP packet inside a frame, from the link-layer header.
///
/// # Errors
/// [`Skip`] says why there is none.
pub fn ip_packet(link_type: u32, frame: &[u8]) -> Result<&[u8], Skip> {
    match link_type {
        linktype::ETHERNET => {
            let mut ether_type = read_u16(frame, ethernet::ETHER_TYPE).ok_or(Skip::Truncated)?;
            let mut at = ethernet::HEADER_LEN;
            let mut tags = 0;
            while ETHER_TYPE_VLAN.contains(&ether_type) {
                tags += 1;
                if tags > vlan::MAX_TAGS {
                    return Err(Skip::Malformed);
                }
                let tag = frame.get(at..).ok_or(Skip::Truncated)?;
                ether_type = read_u16(tag, vlan::INNER_ETHER_TYPE).ok_or(Skip::Truncated)?;
                at += vlan::TAG_LEN;
            }
            by_ether_type(ether_type, frame.get(at..).ok_or(Skip::Truncated)?)
        }
        linktype::RAW | linktype::RAW_DLT12 | linktype::RAW_DLT14 => match frame.first() {
            Some(b) if b >> 4 == 4 || b >> 4 == 6 => Ok(frame),
            Some(_) => Err(Skip::NotIp),
            None => Err(Skip::Truncated),
        },
        linktype::IPV4 | linktype::IPV6 => Ok(frame),
        linktype::NULL | linktype::LOOP => {
            let family = frame.get(..null::HEADER_LEN).ok_or(Skip::Truncated)?;
            let family = [family[0], family[1], family[2], family[3]];
            // NULL is in the writer's byte order, which the file does not
            // say: the family is small, so the non-zero end tells.
            let af = if link_type == linktype::LOOP {
                u32::from_be_bytes(family)
            } else {
                let le = u32::from_le_bytes(family);
                if le <= 0xffff {
                    le
                } else {
                    u32::from_be_bytes(family)
                }
            };
            let rest = &frame[null::HEADER_LEN..];
            if af == null::AF_INET || null::AF_INET6.contains(&af) {
                Ok(rest)
            } else {
                Err(Skip::NotIp)
            }
        }
        linktype::LINUX_SLL => {
            let proto = read_u16(frame, sll::PROTOCOL).ok_or(Skip::Truncated)?;
            by_ether_type(proto, frame.get(sll::HEADER_LEN..).ok_or(Skip::Truncated)?)
        }
        linktype::LINUX_SLL2 => {
            if frame.len() < sll2::HEADER_LEN {
                return Err(Skip::Truncated);
            }
            let proto = read_u16(frame, sll2::PROTOCOL_TYPE).ok_or(Skip::Truncated)?;
            by_ether_type(proto, &frame[sll2::HEADER_LEN..])
        }
        other => Err(Skip::UnsupportedLink(other)),
    }
}

fn by_ether_type(ether_type: u16, payload: &[u8]) -> Result<&[u8], Skip> {
    match ether_type {
        ETHER_TYPE_IPV4 | ETHER_TYPE_IPV6 => Ok(payload),
        _ => Err(Skip::NotIp),
    }
}

fn read_u16(bytes: &[u8], field: Range<usize>) -> Option<u16> {
    let b = bytes.get(field)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn read_u32(bytes: &[u8], field: Range<usize>) -> Option<u32> {
    let b = bytes.get(field)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

/// The TCP header's fields (RFC 9293 §3.1), smoltcp-style.
pub mod tcp_field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// The high nibble is the data offset in 32-bit words.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const HEADER_LEN: usize = URGENT.end;
}

/// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
mod tcp_option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The checksum of a TCP segment, when it could be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    Good,
    Bad,
    /// The field holds only the pseudo-header sum: the frame was captured
    /// before the NIC (or loopback) would have filled it in (checksum
    /// offload). Not an error of the sender.
    Offloaded,
    /// The segment is not captured whole (snaplen).
    Unchecked,
}

/// One TCP segment as the capture shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: Flags,
    /// The raw (unscaled) window field.
    pub window: u16,
    /// The options present in the captured part of the header.
    pub options: TcpOptions,
    /// Payload bytes, from the IP length (not from the captured length).
    pub payload_len: u32,
    /// The captured part of the payload.
    pub payload: &'a [u8],
    pub checksum: Checksum,
    /// The TCP header was cut by the snaplen (options may be missing).
    pub header_cut: bool,
}

/// Decodes the TCP segment in an IP packet.
///
/// # Errors
/// [`Skip`] says why there is none.
pub fn tcp_segment(ip: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    let (slice, _ext_err) = LaxIpSlice::from_slice(ip).map_err(|_| Skip::Malformed)?;
    let (src, dst, declared, payload) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let header = v4.header();
            let payload = v4.payload();
            if payload.ip_number != IpNumber::TCP {
                return Err(Skip::NotTcp);
            }
            if payload.fragmented {
                return Err(Skip::Fragment);
            }
            let header_len = usize::from(header.ihl()) * 4;
            let total = usize::from(header.total_len());
            // A zero total length (TSO) or a nonsense one: trust the slice.
            let ext = offset_in(ip, payload.payload).saturating_sub(header_len);
            let declared = if total >= header_len + ext && total != 0 {
                total - header_len - ext
            } else {
                payload.payload.len()
            };
            (
                IpAddr::V4(Ipv4Addr::from(header.source())),
                IpAddr::V4(Ipv4Addr::from(header.destination())),
                declared,
                payload.payload,
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let header = v6.header();
            let payload = v6.payload();
            if payload.ip_number != IpNumber::TCP {
                return Err(Skip::NotTcp);
            }
            if payload.fragmented {
                return Err(Skip::Fragment);
            }
            let declared_total = usize::from(header.payload_length());
            let ext = offset_in(ip, payload.payload).saturating_sub(etherparse::Ipv6Header::LEN);
            let declared = if declared_total != 0 && declared_total >= ext {
                declared_total - ext
            } else {
                payload.payload.len()
            };
            (
                IpAddr::V6(Ipv6Addr::from(header.source())),
                IpAddr::V6(Ipv6Addr::from(header.destination())),
                declared,
                payload.payload,
            )
        }
    };
    parse_tcp(src, dst, declared, payload)
}

/// How far `inner` starts into `outer` (both from the same buffer).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

fn parse_tcp(
    src: IpAddr,
    dst: IpAddr,
    declared: usize,
    bytes: &[u8],
) -> Result<TcpSegment<'_>, Skip> {
    use tcp_field as f;
    if bytes.len() < f::HEADER_LEN {
        return Err(Skip::Truncated);
    }
    let (Some(src_port), Some(dst_port), Some(seq), Some(ack), Some(window)) = (
        read_u16(bytes, f::SRC_PORT),
        read_u16(bytes, f::DST_PORT),
        read_u32(bytes, f::SEQ_NUM),
        read_u32(bytes, f::ACK_NUM),
        read_u16(bytes, f::WINDOW),
    ) else {
        return Err(Skip::Truncated);
    };
    // (byte12 & 0xf0) >> 4 words of 4 bytes = (byte12 >> 4) * 4.
    let header_len = usize::from(bytes[f::DATA_OFFSET] >> 4) * 4;
    if header_len < f::HEADER_LEN {
        return Err(Skip::Malformed);
    }
    let flags = Flags(bytes[f::FLAGS]);
    let captured_header = &bytes[..header_len.min(bytes.len())];
    let options = parse_options(&captured_header[f::HEADER_LEN..]);
    let header_cut = bytes.len() < header_len;
    let payload = bytes.get(header_len..).unwrap_or(&[]);
    let payload_len = declared.saturating_sub(header_len);
    let checksum = if declared == bytes.len() {
        verify_checksum(src, dst, bytes)
    } else {
        Checksum::Unchecked
    };
    Ok(TcpSegment {
        src,
        dst,
        src_port,
        dst_port,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window,
        options,
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        payload: &payload[..payload.len().min(payload_len)],
        checksum,
        header_cut,
    })
}

/// The options in (the captured part of) a TCP header.
pub fn parse_options(mut bytes: &[u8]) -> TcpOptions {
    let mut opts = TcpOptions::default();
    // Each step consumes at least one byte, so this ends.
    while let Some(&kind) = bytes.first() {
        match kind {
            tcp_option::END => break,
            tcp_option::NOP => {
                bytes = &bytes[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = bytes.get(1) else { break };
        let len = usize::from(len);
        if len < 2 || len > bytes.len() {
            break;
        }
        let body = &bytes[2..len];
        match (kind, body.len()) {
            (tcp_option::MSS, 2) => opts.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (tcp_option::WINDOW_SCALE, 1) => opts.wscale = Some(body[0]),
            (tcp_option::SACK_PERMITTED, 0) => opts.sack_permitted = true,
            (tcp_option::SACK, n) => {
                opts.sack_blocks = opts.sack_blocks.saturating_add((n / 8) as u8)
            }
            (tcp_option::TIMESTAMPS, 8) => {
                opts.timestamps = Some((
                    u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                ))
            }
            _ => opts.unknown = opts.unknown.saturating_add(1),
        }
        bytes = &bytes[len..];
    }
    opts
}

/// RFC 1071 one's-complement sum over the pseudo-header and the segment.
fn verify_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> Checksum {
    let mut sum: u64 = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum += u64::from(u32::from_be_bytes(s.octets()));
            sum += u64::from(u32::from_be_bytes(d.octets()));
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            for chunk in s.octets().chunks_exact(4).chain(d.octets().chunks_exact(4)) {
                sum += u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
            }
        }
        _ => return Checksum::Bad,
    }
    sum += u64::from(u8::from(IpNumber::TCP));
    sum += segment.len() as u64;
    let pseudo = fold(sum);
    // The sum of a correct segment folds to 0xffff.
    if fold(sum + sum_be_words(segment)) == 0xffff {
        return Checksum::Good;
    }
    let field = read_u16(segment, tcp_field::CHECKSUM).unwrap_or(0);
    if field == pseudo {
        Checksum::Offloaded
    } else {
        Checksum::Bad
    }
}

/// Folds a 64-bit one's-complement sum to 16 bits.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of big-endian 32-bit words (the odd tail padded with zeros),
/// which folds to the same one's-complement 16-bit sum.
fn sum_be_words(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(4);
    let mut sum: u64 = 0;
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn ipv4_syn(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .tcp(40000, 8080, 1000, 64240)
            .syn()
            .options(&[
                etherparse::TcpOptionElement::MaximumSegmentSize(1460),
                etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
                etherparse::TcpOptionElement::WindowScale(7),
            ])
            .expect("options fit");
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("write");
        out
    }

    #[test]
    fn decodes_a_whole_segment_with_a_good_checksum() {
        let ip = ipv4_syn(b"hi");
        let seg = tcp_segment(&ip).expect("tcp");
        assert_eq!(seg.src_port, 40000);
        assert_eq!(seg.dst_port, 8080);
        assert_eq!(seg.seq, SeqNumber(1000));
        assert!(seg.flags.syn() && !seg.flags.ack());
        assert_eq!(seg.options.mss, Some(1460));
        assert_eq!(seg.options.wscale, Some(7));
        assert!(seg.options.sack_permitted);
        assert_eq!(seg.payload_len, 2);
        assert_eq!(seg.checksum, Checksum::Good);
        assert!(!seg.header_cut);
    }

    #[test]
    fn a_flipped_bit_is_a_bad_checksum() {
        let mut ip = ipv4_syn(b"hi");
        let last = ip.len() - 1;
        ip[last] ^= 1;
        assert_eq!(tcp_segment(&ip).expect("tcp").checksum, Checksum::Bad);
    }

    #[test]
    fn a_snaplen_cut_header_still_gives_the_fixed_fields() {
        let ip = ipv4_syn(&[0u8; 100]);
        // IPv4 20 + TCP fixed 20 + 2 option bytes.
        let seg = tcp_segment(&ip[..42]).expect("tcp");
        assert!(seg.header_cut);
        assert_eq!(seg.payload_len, 100);
        assert_eq!(seg.checksum, Checksum::Unchecked);
        assert_eq!(seg.seq, SeqNumber(1000));
        assert_eq!(tcp_segment(&ip[..35]), Err(Skip::Truncated));
    }

    #[test]
    fn link_headers_lead_to_the_ip_packet() {
        let ip = ipv4_syn(b"");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(ip_packet(linktype::ETHERNET, &eth), Ok(&ip[..]));

        let mut sll2_frame = vec![0u8; sll2::HEADER_LEN];
        sll2_frame[sll2::PROTOCOL_TYPE].copy_from_slice(&0x0800u16.to_be_bytes());
        sll2_frame[sll2::ARPHRD_TYPE].copy_from_slice(&772u16.to_be_bytes());
        sll2_frame.extend_from_slice(&ip);
        assert_eq!(ip_packet(linktype::LINUX_SLL2, &sll2_frame), Ok(&ip[..]));
        assert_eq!(
            ip_packet(linktype::LINUX_SLL2, &sll2_frame[..19]),
            Err(Skip::Truncated)
        );

        let mut null_frame = 2u32.to_le_bytes().to_vec();
        null_frame.extend_from_slice(&ip);
        assert_eq!(ip_packet(linktype::NULL, &null_frame), Ok(&ip[..]));
        let mut loop_frame = 24u32.to_be_bytes().to_vec();
        loop_frame.extend_from_slice(&ip);
        assert_eq!(ip_packet(linktype::LOOP, &loop_frame), Ok(&ip[..]));

        assert_eq!(ip_packet(linktype::RAW, &ip), Ok(&ip[..]));
        assert_eq!(ip_packet(147, &ip), Err(Skip::UnsupportedLink(147)));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(ip_packet(linktype::ETHERNET, &arp), Err(Skip::NotIp));
    }

    #[test]
    fn options_parsing_stops_at_garbage() {
        let opts = parse_options(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 2, 4, 5, 0xb4]);
        assert_eq!(opts.timestamps, Some((1, 2)));
        assert_eq!(opts.mss, Some(1460));
        let opts = parse_options(&[2, 0, 2, 4]);
        assert_eq!(opts, TcpOptions::default());
        let opts = parse_options(&[2, 40]);
        assert_eq!(opts, TcpOptions::default());
    }
}
