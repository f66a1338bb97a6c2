//! Neighbor Discovery (RFC 4861), the part that plays ARP's role on IPv6:
//! Neighbor Solicitation ("who has 2001:2::1? tell 2001:2::2") and
//! Neighbor Advertisement ("2001:2::1 is at 02:…"). A solicitation goes to
//! the target's solicited-node multicast address (RFC 4291 §2.7.1) and its
//! Ethernet multicast MAC 33:33:ff:xx:xx:xx (RFC 2464 §7); the link-layer
//! addresses ride in options (§4.6.1); the ICMPv6 checksum covers the IPv6
//! pseudo-header; the hop limit is 255, so a receiver knows it was not
//! routed (§7.1.1).
//!
//! Emitted with pnet's `ndp` packets, parsed with etherparse's.
//!
//! Pure: byte slices in, byte vectors and representations out.

use std::net::Ipv6Addr;

use etherparse::icmpv6::{Icmpv6PayloadSlice, NdpOptionSlice};
use etherparse::{Icmpv6Slice, Icmpv6Type as EpType};
use pnet::packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, MutableNeighborSolicitPacket, NdpOption, NdpOptionTypes,
    NeighborAdvertFlags,
};
use pnet::packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet::packet::ip::IpNextHeaderProtocols;

use super::ipv6::{ipv6_frame, Ipv6Repr, IPV6_HEADER_LEN};
use super::{MacAddr, WireError, ETHERNET_HEADER_LEN};

/// The hop limit every Neighbor Discovery message carries (RFC 4861).
pub const NDP_HOP_LIMIT: u8 = 255;
/// ICMPv6 type of a Neighbor Solicitation.
pub const NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum, reserved/flags, target address.
const NDP_FIXED_LEN: usize = 24;
/// A link-layer address option for Ethernet: type, length 1 (× 8 bytes),
/// the 6-byte MAC.
const LLADDR_OPTION_LEN: usize = 8;
/// All nodes on the link (RFC 4291 §2.7.1): where an unsolicited
/// advertisement, or the answer to a DAD probe, goes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: replace a cached link-layer address.
    pub override_: bool,
}

/// A Neighbor Solicitation or Advertisement, in host terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdpRepr {
    /// "Who has `target`?" `source_mac` is the Source Link-Layer Address
    /// option (absent in a DAD probe, whose source is `::`).
    NeighborSolicit {
        target: Ipv6Addr,
        source_mac: Option<MacAddr>,
    },
    /// "`target` is at `target_mac`" (the Target Link-Layer Address
    /// option).
    NeighborAdvert {
        target: Ipv6Addr,
        flags: NaFlags,
        target_mac: Option<MacAddr>,
    },
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1):
/// ff02::1:ff00:0/104 with the address's low 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of an IPv6 multicast address (RFC 2464 §7):
/// 33:33 and the address's low 32 bits; for a solicited-node address,
/// 33:33:ff:xx:xx:xx.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr::new(0x33, 0x33, o[12], o[13], o[14], o[15])
}

fn lladdr_option(kind: pnet::packet::icmpv6::ndp::NdpOptionType, mac: MacAddr) -> NdpOption {
    NdpOption {
        option_type: kind,
        length: 1,
        data: mac.octets().to_vec(),
    }
}

/// Builds an Ethernet/IPv6/ICMPv6 frame carrying `ndp`. The hop limit is
/// whatever `ip` says: RFC 4861 wants [`NDP_HOP_LIMIT`] (see
/// [`neighbor_solicitation`] and [`neighbor_advertisement`], which set it).
///
/// # Errors
/// A flow label wider than 20 bits.
pub fn emit_ndp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    ip: &Ipv6Repr,
    ndp: &NdpRepr,
) -> Result<Vec<u8>, WireError> {
    let has_option = match ndp {
        NdpRepr::NeighborSolicit { source_mac, .. } => source_mac.is_some(),
        NdpRepr::NeighborAdvert { target_mac, .. } => target_mac.is_some(),
    };
    let len = NDP_FIXED_LEN + if has_option { LLADDR_OPTION_LEN } else { 0 };
    let mut buf = ipv6_frame(
        src_mac,
        dst_mac,
        ip,
        IpNextHeaderProtocols::Icmpv6,
        len as u16,
    )?;
    let body = &mut buf[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN..];
    let too_short = || WireError::Malformed {
        reason: "NDP buffer too short".into(),
    };
    match ndp {
        NdpRepr::NeighborSolicit { target, source_mac } => {
            let mut pkt = MutableNeighborSolicitPacket::new(body).ok_or_else(too_short)?;
            pkt.set_icmpv6_type(Icmpv6Types::NeighborSolicit);
            pkt.set_icmpv6_code(Icmpv6Code(0));
            pkt.set_target_addr(*target);
            if let Some(mac) = source_mac {
                pkt.set_options(&[lladdr_option(NdpOptionTypes::SourceLLAddr, *mac)]);
            }
        }
        NdpRepr::NeighborAdvert {
            target,
            flags,
            target_mac,
        } => {
            let mut pkt = MutableNeighborAdvertPacket::new(body).ok_or_else(too_short)?;
            pkt.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
            pkt.set_icmpv6_code(Icmpv6Code(0));
            let bit = |on: bool, mask: u8| if on { mask } else { 0 };
            pkt.set_flags(
                bit(flags.router, NeighborAdvertFlags::Router)
                    | bit(flags.solicited, NeighborAdvertFlags::Solicited)
                    | bit(flags.override_, NeighborAdvertFlags::Override),
            );
            pkt.set_target_addr(*target);
            if let Some(mac) = target_mac {
                pkt.set_options(&[lladdr_option(NdpOptionTypes::TargetLLAddr, *mac)]);
            }
        }
    }
    let sum = {
        let icmp = Icmpv6Packet::new(body).ok_or_else(too_short)?;
        icmpv6::checksum(&icmp, &ip.src, &ip.dst)
    };
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(buf)
}

/// The solicitation a host sends to learn `target`'s MAC: from `our_ip`
/// to `target`'s solicited-node group and its 33:33:ff MAC, hop limit 255,
/// our MAC in the Source Link-Layer Address option.
///
/// # Errors
/// None in practice (the flow label is 0).
pub fn neighbor_solicitation(
    our_mac: MacAddr,
    our_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Result<Vec<u8>, WireError> {
    let group = solicited_node(target);
    let ip = Ipv6Repr {
        src: our_ip,
        dst: group,
        flow_label: 0,
        hop_limit: NDP_HOP_LIMIT,
    };
    let ndp = NdpRepr::NeighborSolicit {
        target,
        source_mac: Some(our_mac),
    };
    emit_ndp(our_mac, multicast_mac(group), &ip, &ndp)
}

/// The answer to a solicitation for `our_ip` that came from `asker_ip`
/// (`asker_mac`): solicited and override set, our MAC in the Target
/// Link-Layer Address option. A DAD probe (from `::`) is answered to all
/// nodes, unsolicited (RFC 4861 §7.2.4).
///
/// # Errors
/// None in practice (the flow label is 0).
pub fn neighbor_advertisement(
    our_mac: MacAddr,
    our_ip: Ipv6Addr,
    asker_mac: MacAddr,
    asker_ip: Ipv6Addr,
) -> Result<Vec<u8>, WireError> {
    let dad = asker_ip.is_unspecified();
    let (dst, dst_mac) = if dad {
        (ALL_NODES, multicast_mac(ALL_NODES))
    } else {
        (asker_ip, asker_mac)
    };
    let ip = Ipv6Repr {
        src: our_ip,
        dst,
        flow_label: 0,
        hop_limit: NDP_HOP_LIMIT,
    };
    let ndp = NdpRepr::NeighborAdvert {
        target: our_ip,
        flags: NaFlags {
            router: false,
            solicited: !dad,
            override_: true,
        },
        target_mac: Some(our_mac),
    };
    emit_ndp(our_mac, dst_mac, &ip, &ndp)
}

fn option_mac(bytes: &[u8]) -> Option<MacAddr> {
    let b: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
    Some(MacAddr::from(b))
}

/// Reads an ICMPv6 message as a Neighbor Solicitation or Advertisement
/// (code 0, as RFC 4861 demands); `None` for anything else. Unknown
/// options are skipped; a malformed option ends the reading of options.
pub fn parse_ndp(icmp: &Icmpv6Slice<'_>) -> Option<NdpRepr> {
    let flags = match icmp.icmp_type() {
        EpType::NeighborSolicitation => None,
        EpType::NeighborAdvertisement(header) => Some(NaFlags {
            router: header.router,
            solicited: header.solicited,
            override_: header.r#override,
        }),
        _ => return None,
    };
    let (target, options) = match icmp.payload_slice().ok()? {
        Icmpv6PayloadSlice::NeighborSolicitation(p) => (p.target_address(), p.options_iterator()),
        Icmpv6PayloadSlice::NeighborAdvertisement(p) => (p.target_address(), p.options_iterator()),
        _ => return None,
    };
    let (mut source_mac, mut target_mac) = (None, None);
    for option in options.map_while(Result::ok) {
        match option {
            NdpOptionSlice::SourceLinkLayerAddress(o) => {
                source_mac = option_mac(o.link_layer_address());
            }
            NdpOptionSlice::TargetLinkLayerAddress(o) => {
                target_mac = option_mac(o.link_layer_address());
            }
            _ => {}
        }
    }
    Some(match flags {
        None => NdpRepr::NeighborSolicit { target, source_mac },
        Some(flags) => NdpRepr::NeighborAdvert {
            target,
            flags,
            target_mac,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_ipv6, Frame6, NdpFrame};

    const CLIENT_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 2);
    const SERVER_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);

    fn server() -> Ipv6Addr {
        "2001:2::1".parse().unwrap()
    }
    fn client() -> Ipv6Addr {
        "2001:2::2".parse().unwrap()
    }

    #[test]
    fn solicited_node_address_and_its_mac() {
        let addr: Ipv6Addr = "2001:db8::1234:5678".parse().unwrap();
        assert_eq!(
            solicited_node(addr),
            "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(addr)),
            MacAddr::new(0x33, 0x33, 0xff, 0x34, 0x56, 0x78)
        );
        assert_eq!(
            multicast_mac(ALL_NODES),
            MacAddr::new(0x33, 0x33, 0, 0, 0, 1)
        );
    }

    /// "Who has 2001:2::1? Tell 2001:2::2", as Linux sends it: 86 bytes,
    /// to 33:33:ff:00:00:01 and ff02::1:ff00:1, hop limit 255, the SLLA
    /// option. The checksum 0x3793 is etherparse's (and tshark's) opinion.
    #[rustfmt::skip]
    static NS_FRAME: [u8; 86] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd,
        0x60, 0, 0, 0, 0x00, 0x20, 58, 255,
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x01,
        // ICMPv6 135, code 0, checksum, reserved.
        135, 0, 0x37, 0x93, 0, 0, 0, 0,
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        // Source link-layer address.
        1, 1, 0x02, 0, 0, 0, 0, 0x02,
    ];

    #[test]
    fn the_solicitation_is_the_fixture_and_parses_back() {
        let bytes = neighbor_solicitation(CLIENT_MAC, client(), server()).unwrap();
        assert_eq!(bytes, NS_FRAME);
        let Frame6::Ndp(frame) = parse_ipv6(&bytes).unwrap() else {
            panic!("not NDP")
        };
        assert!(frame.is_valid());
        assert_eq!(
            frame.ndp,
            NdpRepr::NeighborSolicit {
                target: server(),
                source_mac: Some(CLIENT_MAC)
            }
        );
        assert_eq!(frame.dst_mac, MacAddr::new(0x33, 0x33, 0xff, 0, 0, 1));
    }

    #[test]
    fn checksums_agree_with_etherparse() {
        let frames = [
            neighbor_solicitation(CLIENT_MAC, client(), server()).unwrap(),
            neighbor_advertisement(CLIENT_MAC, client(), SERVER_MAC, server()).unwrap(),
            neighbor_advertisement(CLIENT_MAC, client(), SERVER_MAC, Ipv6Addr::UNSPECIFIED)
                .unwrap(),
        ];
        for bytes in frames {
            let headers = etherparse::PacketHeaders::from_ethernet_slice(&bytes).unwrap();
            let Some(etherparse::NetHeaders::Ipv6(v6, _)) = headers.net else {
                panic!("no IPv6")
            };
            assert_eq!(v6.hop_limit, NDP_HOP_LIMIT);
            let Some(etherparse::TransportHeader::Icmpv6(icmp)) = headers.transport else {
                panic!("no ICMPv6")
            };
            let body = &bytes[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 8..];
            let expected = icmp
                .icmp_type
                .calc_checksum(v6.source, v6.destination, body)
                .unwrap();
            assert_eq!(icmp.checksum, expected);
        }
    }

    #[test]
    fn an_answer_to_a_solicitation_goes_back_to_the_asker() {
        let bytes = neighbor_advertisement(CLIENT_MAC, client(), SERVER_MAC, server()).unwrap();
        let Frame6::Ndp(NdpFrame {
            src_mac,
            dst_mac,
            ip,
            ndp,
            checksum_ok,
        }) = parse_ipv6(&bytes).unwrap()
        else {
            panic!("not NDP")
        };
        assert!(checksum_ok);
        assert_eq!((src_mac, dst_mac), (CLIENT_MAC, SERVER_MAC));
        assert_eq!((ip.src, ip.dst, ip.hop_limit), (client(), server(), 255));
        assert_eq!(
            ndp,
            NdpRepr::NeighborAdvert {
                target: client(),
                flags: NaFlags {
                    router: false,
                    solicited: true,
                    override_: true
                },
                target_mac: Some(CLIENT_MAC),
            }
        );
        // R|S|O octet: 0b0110_0000.
        assert_eq!(bytes[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 4], 0x60);
    }

    #[test]
    fn a_dad_probe_is_answered_to_all_nodes_unsolicited() {
        let bytes = neighbor_advertisement(CLIENT_MAC, client(), SERVER_MAC, Ipv6Addr::UNSPECIFIED)
            .unwrap();
        let Frame6::Ndp(frame) = parse_ipv6(&bytes).unwrap() else {
            panic!("not NDP")
        };
        assert_eq!(frame.ip.dst, ALL_NODES);
        assert_eq!(frame.dst_mac, MacAddr::new(0x33, 0x33, 0, 0, 0, 1));
        let NdpRepr::NeighborAdvert { flags, .. } = frame.ndp else {
            panic!("not an NA")
        };
        assert!(!flags.solicited && flags.override_);
    }

    #[test]
    fn without_options_and_routed_ones_are_invalid() {
        let ip = Ipv6Repr {
            src: Ipv6Addr::UNSPECIFIED,
            dst: solicited_node(server()),
            flow_label: 0,
            hop_limit: 64,
        };
        let probe = NdpRepr::NeighborSolicit {
            target: server(),
            source_mac: None,
        };
        let bytes = emit_ndp(CLIENT_MAC, multicast_mac(ip.dst), &ip, &probe).unwrap();
        assert_eq!(bytes.len(), ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 24);
        let Frame6::Ndp(frame) = parse_ipv6(&bytes).unwrap() else {
            panic!("not NDP")
        };
        assert_eq!(frame.ndp, probe);
        assert!(frame.checksum_ok);
        assert!(!frame.is_valid(), "hop limit 64 means it was routed");
        let mut bad = NS_FRAME;
        bad[NS_FRAME.len() - 1] ^= 1;
        let Frame6::Ndp(frame) = parse_ipv6(&bad).unwrap() else {
            panic!("not NDP")
        };
        assert!(!frame.checksum_ok && !frame.is_valid());
    }

    #[test]
    fn truncated_ndp_never_panics_nor_parses_whole() {
        for len in 0..NS_FRAME.len() - LLADDR_OPTION_LEN {
            assert!(!matches!(
                parse_ipv6(&NS_FRAME[..len]),
                Ok(Frame6::Ndp(NdpFrame {
                    ndp: NdpRepr::NeighborSolicit {
                        source_mac: Some(_),
                        ..
                    },
                    ..
                }))
            ));
        }
    }
}
