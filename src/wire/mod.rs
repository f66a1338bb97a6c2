//! Packet formats, in two levels (smoltcp's `wire` idea): byte views come from
//! pnet (`Mutable*Packet`, to emit) and etherparse (`*Slice`, to parse); the
//! rest of synack works on the representations defined here
//! ([`SegmentRepr`], [`ArpRepr`], [`Frame`]; over IPv6, [`Ipv6Repr`],
//! [`NdpRepr`], [`Frame6`]).
//!
//! Pure: nothing here does I/O or reads a clock.

pub mod bpf;
mod frame;
mod icmp;
mod icmpv6;
mod ipv6;
mod ndp;
mod segment;
mod seq;
pub mod tcp;

pub use frame::{
    emit_arp, emit_tcp, emit_udp, parse, tcp_frame_len, ArpOp, ArpRepr, Frame, Ipv4Repr, MacAddr,
    TcpFrame, UdpFrame, UdpRepr, ARP_PACKET_LEN, DEFAULT_TTL, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
    TCP_HEADER_LEN, UDP_HEADER_LEN,
};
pub use icmp::{parse_icmp_unreachable, IcmpUnreachable, ICMP_DEST_UNREACHABLE};
pub use icmpv6::{
    dest_unreachable_reason, parse_icmpv6_error, Icmpv6Error, Icmpv6ErrorKind,
    ICMPV6_DEST_UNREACHABLE, ICMPV6_PACKET_TOO_BIG,
};
pub use ipv6::{
    emit_tcp6, parse_ipv6, tcp6_frame_len, Frame6, Ipv6Repr, NdpFrame, Tcp6Frame,
    DEFAULT_HOP_LIMIT, ETHERTYPE_IPV6, FLOW_LABEL_MAX, IPV6_HEADER_LEN, NEXT_HEADER_ICMPV6,
    NEXT_HEADER_TCP,
};
pub use ndp::{
    emit_ndp, multicast_mac, neighbor_advertisement, neighbor_solicitation, solicited_node,
    NaFlags, NdpRepr, ALL_NODES, NDP_HOP_LIMIT, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION,
};
pub use segment::{Flags, SegmentRepr, TcpFlags, TcpOptions};
pub use seq::SeqNumber;
pub use tcp::{Checksum, TcpView};

/// Why bytes could not be parsed or built.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A header is cut short or its fields make no sense.
    #[error("malformed frame: {reason}")]
    Malformed { reason: String },
    /// The segment does not fit one IPv4 packet.
    #[error("a packet of {len} bytes does not fit IPv4's 65535-byte limit")]
    TooLarge { len: usize },
}
