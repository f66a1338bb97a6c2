//! Packet formats, in two levels (smoltcp's `wire` idea): byte views come from
//! pnet (`Mutable*Packet`, to emit) and etherparse (`*Slice`, to parse); the
//! rest of synack works on the representations defined here
//! ([`SegmentRepr`], [`ArpRepr`], [`Frame`]).
//!
//! Pure: nothing here does I/O or reads a clock.

pub mod bpf;
mod frame;
mod icmp;
mod segment;
mod seq;
pub mod tcp;

pub use frame::{
    emit_arp, emit_tcp, emit_udp, parse, tcp_frame_len, ArpOp, ArpRepr, Frame, Ipv4Repr, MacAddr,
    TcpFrame, UdpFrame, UdpRepr, ARP_PACKET_LEN, DEFAULT_TTL, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
    TCP_HEADER_LEN, UDP_HEADER_LEN,
};
pub use icmp::{parse_icmp_unreachable, IcmpUnreachable, ICMP_DEST_UNREACHABLE};
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
