//! From a captured frame to the network layer: the link-layer header
//! (Ethernet with VLAN tags, RAW IP, NULL/LOOP, Linux SLL and SLL2, PPP,
//! PPP in HDLC-like framing, Cisco HDLC, ARCNET, Juniper Ethernet, IPoIB),
//! read by fixed offsets. What is above the link (IP, tunnels, TCP) is
//! [`crate::capture::decap`]'s.
//!
//! Pure: byte slices in, views out.

use std::ops::Range;

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
    /// ARCNET as BSD writes it (no offset field).
    pub const ARCNET_BSD: u32 = 7;
    /// PPP (RFC 1661), with or without the HDLC address and control bytes.
    pub const PPP: u32 = 9;
    /// PPP in HDLC-like framing (RFC 1662), or Cisco HDLC.
    pub const PPP_HDLC: u32 = 50;
    /// Cisco HDLC: address, control, EtherType.
    pub const C_HDLC: u32 = 104;
    /// ARCNET as Linux writes it (with a 2-byte offset field).
    pub const ARCNET_LINUX: u32 = 129;
    /// Juniper's pseudo-header, then Ethernet.
    pub const JUNIPER_ETHER: u32 = 178;
    /// IP over InfiniBand: a 40-byte pseudo-header, then RFC 4391 §6's
    /// EtherType and reserved.
    pub const IPOIB: u32 = 242;
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

/// Why a frame yields no TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// A link type this module does not decode.
    UnsupportedLink(u32),
    /// Not IP (ARP, LLDP, PPP control, …).
    NotIp,
    /// IP, but not TCP.
    NotTcp,
    /// A link, IP or TCP header cut before its fixed part.
    Truncated,
    /// A header that makes no sense.
    Malformed,
    /// A non-first IP fragment: no TCP header (the first fragment's TCP
    /// header is tracked).
    Fragment,
    /// An encapsulation synack does not open: what it is and its number
    /// (GRE protocol, MPLS payload nibble, …).
    Unopened(&'static str, u32),
}

/// What a link-layer header leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network<'a> {
    /// A payload named by an EtherType (VLAN tags already skipped).
    EtherType(u16, &'a [u8]),
    /// An IP packet, version from its first nibble.
    Ip(&'a [u8]),
    /// A PPP frame from its protocol field.
    Ppp(&'a [u8]),
    /// A whole Ethernet frame.
    Ethernet(&'a [u8]),
}

/// PPP (RFC 1661, RFC 1662).
pub mod ppp {
    /// The HDLC all-stations address and unnumbered-information control.
    pub const ADDRESS: u8 = 0xFF;
    pub const CONTROL: u8 = 0x03;
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    pub const MPLS_UNICAST: u16 = 0x0281;
    pub const MPLS_MULTICAST: u16 = 0x0283;
}

/// Cisco HDLC's address bytes (unicast, multicast).
const CISCO_HDLC_ADDRESSES: [u8; 2] = [0x0F, 0x8F];
const CISCO_HDLC_HEADER_LEN: usize = 4;

/// ARCNET (RFC 1201, RFC 1051): source, destination, [offset,] protocol
/// ID, and for RFC 1201 protocols a split flag and a sequence number.
mod arcnet {
    pub const BSD_PROTOCOL: usize = 2;
    pub const LINUX_PROTOCOL: usize = 4;
    pub const IP_RFC1201: u8 = 212;
    pub const ARP_RFC1201: u8 = 213;
    pub const RARP_RFC1201: u8 = 214;
    pub const IPV6: u8 = 196;
    pub const IP_RFC1051: u8 = 240;
    pub const ARP_RFC1051: u8 = 241;
    /// Split flag, sequence number.
    pub const RFC1201_EXTRA: usize = 3;
    /// A split flag of 0xFF marks an exception packet: 4 more bytes.
    pub const EXCEPTION: u8 = 0xFF;
    pub const EXCEPTION_EXTRA: usize = 4;
}

/// Juniper's pseudo-header: "MGC", flags, then optional extensions.
mod juniper {
    pub const MAGIC: [u8; 3] = *b"MGC";
    pub const FLAGS: usize = 3;
    pub const FLAG_NO_L2: u8 = 0x02;
    pub const FLAG_EXT: u8 = 0x80;
    pub const HEADER_LEN: usize = 4;
    /// With extensions: their total length, big-endian, then the TLVs.
    pub const EXT_LEN_FIELD: usize = 2;
    /// Without a link layer: a little-endian protocol word.
    pub const NO_L2_PROTO_LEN: usize = 4;
    pub const PROTO_IPV4: u32 = 2;
    pub const PROTO_IPV6: u32 = 6;
}

/// LINKTYPE_IPOIB: a 40-byte pseudo-header (the InfiniBand Global Route
/// Header, or 20 zero bytes and the destination's QPN and GID), then
/// RFC 4391's encapsulation header: EtherType, reserved.
mod ipoib {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 40..42;
    pub const HEADER_LEN: usize = 44;
}

pub const ETHER_TYPE_IPV4: u16 = 0x0800;
pub const ETHER_TYPE_IPV6: u16 = 0x86DD;
const ETHER_TYPE_VLAN: [u16; 3] = [0x8100, 0x88A8, 0x9100];

/// Where a frame's network layer starts.
///
/// # Errors
/// [`Skip`] says why there is none.
pub fn network(link_type: u32, frame: &[u8]) -> Result<Network<'_>, Skip> {
    match link_type {
        linktype::ETHERNET => {
            let (ether_type, payload) = ethernet(frame)?;
            Ok(Network::EtherType(ether_type, payload))
        }
        linktype::RAW | linktype::RAW_DLT12 | linktype::RAW_DLT14 => match frame.first() {
            Some(b) if b >> 4 == 4 || b >> 4 == 6 => Ok(Network::Ip(frame)),
            Some(_) => Err(Skip::NotIp),
            None => Err(Skip::Truncated),
        },
        linktype::IPV4 | linktype::IPV6 => Ok(Network::Ip(frame)),
        linktype::NULL | linktype::LOOP => null_loop(link_type, frame),
        linktype::LINUX_SLL => {
            let proto = read_u16(frame, sll::PROTOCOL).ok_or(Skip::Truncated)?;
            let rest = frame.get(sll::HEADER_LEN..).ok_or(Skip::Truncated)?;
            Ok(Network::EtherType(proto, rest))
        }
        linktype::LINUX_SLL2 => {
            if frame.len() < sll2::HEADER_LEN {
                return Err(Skip::Truncated);
            }
            let proto = read_u16(frame, sll2::PROTOCOL_TYPE).ok_or(Skip::Truncated)?;
            Ok(Network::EtherType(proto, &frame[sll2::HEADER_LEN..]))
        }
        linktype::PPP => Ok(Network::Ppp(frame)),
        linktype::PPP_HDLC | linktype::C_HDLC => match frame.first() {
            Some(a) if CISCO_HDLC_ADDRESSES.contains(a) || link_type == linktype::C_HDLC => {
                let proto = read_u16(frame, 2..4).ok_or(Skip::Truncated)?;
                Ok(Network::EtherType(proto, &frame[CISCO_HDLC_HEADER_LEN..]))
            }
            Some(_) => Ok(Network::Ppp(frame)),
            None => Err(Skip::Truncated),
        },
        linktype::ARCNET_BSD | linktype::ARCNET_LINUX => arcnet(link_type, frame),
        linktype::JUNIPER_ETHER => juniper_ether(frame),
        linktype::IPOIB => {
            let proto = read_u16(frame, ipoib::TYPE).ok_or(Skip::Truncated)?;
            let rest = frame.get(ipoib::HEADER_LEN..).ok_or(Skip::Truncated)?;
            Ok(Network::EtherType(proto, rest))
        }
        other => Err(Skip::UnsupportedLink(other)),
    }
}

/// BSD loopback (NULL, in the writer's byte order) or OpenBSD's LOOP (in
/// network byte order): a 4-byte address family.
fn null_loop(link_type: u32, frame: &[u8]) -> Result<Network<'_>, Skip> {
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
        Ok(Network::Ip(rest))
    } else {
        Err(Skip::NotIp)
    }
}

/// ARCNET (BSD's or Linux's header): RFC 1201 or RFC 1051 encapsulation.
fn arcnet(link_type: u32, frame: &[u8]) -> Result<Network<'_>, Skip> {
    let at = if link_type == linktype::ARCNET_BSD {
        arcnet::BSD_PROTOCOL
    } else {
        arcnet::LINUX_PROTOCOL
    };
    let proto = *frame.get(at).ok_or(Skip::Truncated)?;
    let mut data = at + 1;
    if matches!(
        proto,
        arcnet::IP_RFC1201 | arcnet::ARP_RFC1201 | arcnet::RARP_RFC1201 | arcnet::IPV6
    ) {
        if frame.get(data) == Some(&arcnet::EXCEPTION) {
            data += arcnet::EXCEPTION_EXTRA;
        }
        data += arcnet::RFC1201_EXTRA;
    }
    let rest = frame.get(data..).ok_or(Skip::Truncated)?;
    match proto {
        arcnet::IP_RFC1201 | arcnet::IP_RFC1051 | arcnet::IPV6 => Ok(Network::Ip(rest)),
        arcnet::ARP_RFC1201 | arcnet::RARP_RFC1201 | arcnet::ARP_RFC1051 => Err(Skip::NotIp),
        other => Err(Skip::Unopened("ARCNET protocol", u32::from(other))),
    }
}

/// Juniper's Ethernet link: its magic, flags and extensions, then an
/// Ethernet frame, or an IP packet when the flags say there is no layer 2.
fn juniper_ether(frame: &[u8]) -> Result<Network<'_>, Skip> {
    if frame.get(..juniper::MAGIC.len()) != Some(&juniper::MAGIC[..]) {
        return Err(Skip::Malformed);
    }
    let flags = *frame.get(juniper::FLAGS).ok_or(Skip::Truncated)?;
    let mut at = juniper::HEADER_LEN;
    if flags & juniper::FLAG_EXT != 0 {
        let ext = read_u16(frame, at..at + juniper::EXT_LEN_FIELD).ok_or(Skip::Truncated)?;
        at += juniper::EXT_LEN_FIELD + usize::from(ext);
    }
    if flags & juniper::FLAG_NO_L2 != 0 {
        let word = frame
            .get(at..at + juniper::NO_L2_PROTO_LEN)
            .ok_or(Skip::Truncated)?;
        let proto = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let rest = &frame[at + juniper::NO_L2_PROTO_LEN..];
        return match proto {
            juniper::PROTO_IPV4 | juniper::PROTO_IPV6 => Ok(Network::Ip(rest)),
            other => Err(Skip::Unopened("Juniper protocol", other)),
        };
    }
    Ok(Network::Ethernet(frame.get(at..).ok_or(Skip::Truncated)?))
}

/// An Ethernet II frame's EtherType and payload, past up to
/// [`vlan::MAX_TAGS`] 802.1Q/802.1ad tags.
///
/// # Errors
/// [`Skip::Truncated`] or [`Skip::Malformed`] (too many tags).
pub fn ethernet(frame: &[u8]) -> Result<(u16, &[u8]), Skip> {
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
    Ok((ether_type, frame.get(at..).ok_or(Skip::Truncated)?))
}

/// A PPP frame's protocol and payload: the HDLC address and control bytes
/// are skipped when present, and a compressed 1-byte protocol (odd) is
/// read as such (RFC 1661 §6.5).
///
/// # Errors
/// [`Skip::Truncated`].
pub fn ppp_frame(mut frame: &[u8]) -> Result<(u16, &[u8]), Skip> {
    if frame.first() == Some(&ppp::ADDRESS) && frame.get(1) == Some(&ppp::CONTROL) {
        frame = &frame[2..];
    }
    let first = *frame.first().ok_or(Skip::Truncated)?;
    if first & 1 == 1 {
        return Ok((u16::from(first), &frame[1..]));
    }
    let proto = read_u16(frame, 0..2).ok_or(Skip::Truncated)?;
    Ok((proto, &frame[2..]))
}

pub fn read_u16(bytes: &[u8], field: Range<usize>) -> Option<u16> {
    let b = bytes.get(field)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_lead_to_the_network_layer() {
        let ip = [0x45u8, 0, 0, 20];
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::ETHERNET, &eth),
            Ok(Network::EtherType(0x0800, &ip[..]))
        );

        let mut sll2_frame = vec![0u8; sll2::HEADER_LEN];
        sll2_frame[sll2::PROTOCOL_TYPE].copy_from_slice(&0x0800u16.to_be_bytes());
        sll2_frame[sll2::ARPHRD_TYPE].copy_from_slice(&772u16.to_be_bytes());
        sll2_frame.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::LINUX_SLL2, &sll2_frame),
            Ok(Network::EtherType(0x0800, &ip[..]))
        );
        assert_eq!(
            network(linktype::LINUX_SLL2, &sll2_frame[..19]),
            Err(Skip::Truncated)
        );

        let mut null_frame = 2u32.to_le_bytes().to_vec();
        null_frame.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::NULL, &null_frame),
            Ok(Network::Ip(&ip[..]))
        );
        let mut loop_frame = 24u32.to_be_bytes().to_vec();
        loop_frame.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::LOOP, &loop_frame),
            Ok(Network::Ip(&ip[..]))
        );

        assert_eq!(network(linktype::RAW, &ip), Ok(Network::Ip(&ip[..])));
        assert_eq!(network(147, &ip), Err(Skip::UnsupportedLink(147)));
    }

    #[test]
    fn ppp_arcnet_juniper_and_ipoib_headers() {
        let ip = [0x45u8, 0, 0, 20];
        // PPP with and without address/control, compressed protocol.
        for head in [&[0xFF, 0x03, 0x00, 0x21][..], &[0x00, 0x21], &[0x21]] {
            let mut f = head.to_vec();
            f.extend_from_slice(&ip);
            let Ok(Network::Ppp(p)) = network(linktype::PPP, &f) else {
                panic!("ppp");
            };
            assert_eq!(ppp_frame(p), Ok((ppp::IPV4, &ip[..])));
        }
        // Cisco HDLC on link type 50.
        let mut f = vec![0x0F, 0x00, 0x08, 0x00];
        f.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::PPP_HDLC, &f),
            Ok(Network::EtherType(0x0800, &ip[..]))
        );
        // ARCNET: BSD (src, dst, proto, split, seq×2), Linux (+ offset×2).
        let mut f = vec![1, 2, 212, 0, 0, 1];
        f.extend_from_slice(&ip);
        assert_eq!(network(linktype::ARCNET_BSD, &f), Ok(Network::Ip(&ip[..])));
        let mut f = vec![1, 2, 0, 0, 240];
        f.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::ARCNET_LINUX, &f),
            Ok(Network::Ip(&ip[..]))
        );
        // Juniper: magic, flags with extensions (2 bytes of TLVs), Ethernet.
        let mut f = b"MGC".to_vec();
        f.extend_from_slice(&[0x81, 0, 2, 9, 9]);
        f.extend_from_slice(&[0u8; 14]);
        assert_eq!(
            network(linktype::JUNIPER_ETHER, &f),
            Ok(Network::Ethernet(&[0u8; 14][..]))
        );
        assert_eq!(
            network(linktype::JUNIPER_ETHER, b"XYZ\x00"),
            Err(Skip::Malformed)
        );
        // IPoIB: the pseudo-header, then EtherType and reserved.
        let mut f = vec![0u8; 40];
        f.extend_from_slice(&[0x08, 0x00, 0, 0]);
        f.extend_from_slice(&ip);
        assert_eq!(
            network(linktype::IPOIB, &f),
            Ok(Network::EtherType(0x0800, &ip[..]))
        );
    }
}
