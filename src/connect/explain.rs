//! Pure pieces of `synack connect`: recognising the partial checksums of
//! `lo`, the kernel's RST, the explanations the narration prints, and the
//! capabilities the run needs.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::capture::{decap, link};
use crate::wire::{Frame, TcpFrame};

/// Whether a TCP frame's checksum is exactly the pseudo-header sum that
/// checksum offload leaves for the NIC to finish (`CHECKSUM_PARTIAL`):
/// what every kernel segment carries on `lo`, where offload is fixed on
/// and nothing ever computes the rest (the data never leaves memory).
pub fn is_partial_checksum(bytes: &[u8]) -> bool {
    // inspect's reader tells the three cases apart already: good, bad,
    // and the pseudo-header sum alone ("offloaded").
    decap::first_segment(link::linktype::ETHERNET, bytes)
        .is_ok_and(|seg| seg.checksum == decap::Checksum::Offloaded)
}

/// Whether `frame` is the kernel's RST for our connection: sent from our
/// address and port to the server, not by synack.
pub fn is_kernel_rst(frame: &Frame, ours: SocketAddrV4, server: SocketAddrV4) -> bool {
    match frame {
        Frame::Tcp(TcpFrame { ip, segment, .. }) => {
            segment.flags.rst()
                && ip.src == *ours.ip()
                && ip.dst == *server.ip()
                && segment.src_port == ours.port()
                && segment.dst_port == server.port()
        }
        _ => false,
    }
}

/// Why the kernel sent that RST (RFC 9293 §3.10.7.1).
pub fn kernel_rst_explanation(ours: SocketAddrV4, server: SocketAddrV4) -> String {
    format!(
        "↑ that RST came from this host's kernel, not from synack: the SYN-ACK from {server} \
         arrived for {ours}, and the kernel has no socket there (synack's connection lives in \
         user space), so it answered as RFC 9293 §3.10.7.1 says for a connection that does \
         not exist (CLOSED): a segment with an ACK gets <SEQ=SEG.ACK><CTL=RST>. The server \
         drops its half-open connection; anything synack sends after that meets RST. \
         Without --let-kernel-rst, synack drops that RST with a firewall rule for the run"
    )
}

/// The note printed once on `lo`.
pub const LOOPBACK_CHECKSUM_NOTE: &str =
    "the kernel's segments on lo carry only the pseudo-header checksum (checksum offload is \
     fixed on for lo: the bytes never leave memory, so nothing completes the sum); synack \
     accepts them on lo, and so does Wireshark with its default of not checking TCP checksums";

/// The note for the partial checksums of any other interface: TX
/// checksum offload is on where the segment was sent (a veth's default),
/// so a capture on this host sees the sum before anything completes it.
pub fn offload_checksum_note(dev: &str) -> String {
    format!(
        "the server's segments on {dev} carry only the pseudo-header checksum: checksum \
         offload is on where they were sent (a veth hands the unfinished sum across, as a \
         kernel hands it to a NIC that completes it; see `ethtool -k`), and the kernel that \
         receives them counts them valid; so does synack. Tools that check TCP checksums call \
         them bad"
    )
}

/// Linux capability numbers (include/uapi/linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;

/// The effective capability set from the text of `/proc/self/status`.
pub fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Whether `caps` holds capability `cap`.
pub fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// The source address for a run: the one asked for, else the route's.
pub fn pick_source(asked: Option<Ipv4Addr>, route: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    asked.or(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit_tcp, parse, Flags, Ipv4Repr, MacAddr, SegmentRepr, SeqNumber};

    fn frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: Flags) -> Vec<u8> {
        let segment = SegmentRepr {
            src_port: src.1,
            dst_port: dst.1,
            seq: SeqNumber(100),
            ack: SeqNumber(200),
            flags,
            window: 512,
            ..SegmentRepr::default()
        };
        let ip = Ipv4Repr {
            src: src.0,
            dst: dst.0,
            ident: 7,
            ttl: 64,
        };
        emit_tcp(MacAddr::zero(), MacAddr::zero(), &ip, &segment).unwrap()
    }

    const TCP_CHECKSUM_AT: usize = 14 + 20 + 16;

    #[test]
    fn a_full_checksum_is_not_partial_and_the_pseudo_header_sum_is() {
        let a = (Ipv4Addr::LOCALHOST, 8080);
        let b = (Ipv4Addr::LOCALHOST, 40000);
        let mut bytes = frame(a, b, Flags::SYN_ACK);
        assert!(!is_partial_checksum(&bytes));
        // The pseudo-header of 127.0.0.1 → 127.0.0.1, TCP, 20 bytes:
        // 0x7f00 + 0x0001 + 0x7f00 + 0x0001 + 6 + 20 = 0xfe1c.
        bytes[TCP_CHECKSUM_AT..TCP_CHECKSUM_AT + 2].copy_from_slice(&0xfe1cu16.to_be_bytes());
        assert!(is_partial_checksum(&bytes));
        bytes[TCP_CHECKSUM_AT] ^= 1;
        assert!(!is_partial_checksum(&bytes));
    }

    #[test]
    fn the_kernel_rst_is_ours_to_the_server() {
        let ours = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000);
        let server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
        let rst = parse(&frame(
            (*ours.ip(), 40000),
            (*server.ip(), 8080),
            Flags::RST,
        ))
        .unwrap();
        assert!(is_kernel_rst(&rst, ours, server));
        let from_server = parse(&frame(
            (*server.ip(), 8080),
            (*ours.ip(), 40000),
            Flags::RST,
        ))
        .unwrap();
        assert!(!is_kernel_rst(&from_server, ours, server));
        let ack = parse(&frame(
            (*ours.ip(), 40000),
            (*server.ip(), 8080),
            Flags::ACK,
        ))
        .unwrap();
        assert!(!is_kernel_rst(&ack, ours, server));
        assert!(kernel_rst_explanation(ours, server).contains("RFC 9293 §3.10.7.1"));
    }

    #[test]
    fn capabilities_are_read_from_proc_status() {
        let root = "Name:\tsynack\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let caps = effective_caps(root).unwrap();
        assert!(has_cap(caps, CAP_NET_RAW) && has_cap(caps, CAP_NET_ADMIN));
        let raw_only = effective_caps("CapEff:\t0000000000002000\n").unwrap();
        assert!(has_cap(raw_only, CAP_NET_RAW) && !has_cap(raw_only, CAP_NET_ADMIN));
        assert_eq!(effective_caps("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(effective_caps("Name: x\n"), None);
    }

    #[test]
    fn the_source_asked_for_wins_over_the_route() {
        let asked = Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(
            pick_source(Some(asked), Some(Ipv4Addr::LOCALHOST)),
            Some(asked)
        );
        assert_eq!(
            pick_source(None, Some(Ipv4Addr::LOCALHOST)),
            Some(Ipv4Addr::LOCALHOST)
        );
    }
}
