//! One TCP header view for the client and for `inspect` (smoltcp's
//! `TcpPacket` idea): a borrowed, *lax* view that needs only the 20-byte
//! fixed header, so a header cut by the snaplen still gives its ports,
//! numbers and flags; one options parser; one checksum check, on
//! etherparse's one's-complement sum, that tells a good checksum from a bad
//! one and from the pseudo-header sum that checksum offload leaves.
//!
//! Pure: byte slices in, values out.

use std::net::IpAddr;
use std::ops::Range;

use etherparse::checksum::Sum16BitWords;
use etherparse::IpNumber;

use super::{Flags, SeqNumber, TcpOptions};

/// A byte range in a header.
pub type Field = Range<usize>;

/// The TCP header's fields (RFC 9293 §3.1).
pub mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// The high nibble is the data offset in 32-bit words.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    /// The fixed header; options follow up to the data offset.
    pub const HEADER_LEN: usize = URGENT.end;
}

/// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Why bytes are no TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpError {
    /// Fewer than the 20 bytes of the fixed header.
    Truncated,
    /// A data offset below 5 words.
    BadDataOffset,
}

/// A TCP header (and what was captured of its payload), borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpView<'a> {
    bytes: &'a [u8],
}

fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

fn be32(b: &[u8], f: Field) -> u32 {
    u32::from_be_bytes([b[f.start], b[f.start + 1], b[f.start + 2], b[f.start + 3]])
}

impl<'a> TcpView<'a> {
    /// A view of `bytes`, which must hold the fixed header; options and
    /// payload may be cut.
    ///
    /// # Errors
    /// [`TcpError`] when the fixed header is not there or its data offset
    /// is impossible.
    pub fn new_lax(bytes: &'a [u8]) -> Result<TcpView<'a>, TcpError> {
        if bytes.len() < field::HEADER_LEN {
            return Err(TcpError::Truncated);
        }
        let view = TcpView { bytes };
        if view.header_len() < field::HEADER_LEN {
            return Err(TcpError::BadDataOffset);
        }
        Ok(view)
    }

    pub fn src_port(&self) -> u16 {
        be16(self.bytes, field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.bytes, field::DST_PORT)
    }
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(be32(self.bytes, field::SEQ_NUM))
    }
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(be32(self.bytes, field::ACK_NUM))
    }
    /// The header's length from the data offset, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes[field::DATA_OFFSET] >> 4) * 4
    }
    pub fn flags(&self) -> Flags {
        Flags(self.bytes[field::FLAGS])
    }
    /// The raw (unscaled) window field.
    pub fn window(&self) -> u16 {
        be16(self.bytes, field::WINDOW)
    }
    pub fn checksum_field(&self) -> u16 {
        be16(self.bytes, field::CHECKSUM)
    }
    /// Whether the bytes end before the data offset (options cut).
    pub fn header_cut(&self) -> bool {
        self.bytes.len() < self.header_len()
    }
    /// The options in the captured part of the header.
    pub fn options(&self) -> TcpOptions {
        let end = self.header_len().min(self.bytes.len());
        parse_options(&self.bytes[field::HEADER_LEN..end])
    }
    /// The captured part of the payload.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.header_len()..).unwrap_or(&[])
    }
    /// The whole viewed slice (header and captured payload).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The options in (the captured part of) a TCP header's option space.
/// A malformed option ends the list; unknown kinds are counted.
pub fn parse_options(mut bytes: &[u8]) -> TcpOptions {
    let mut opts = TcpOptions::default();
    // Each step consumes at least one byte, so this ends.
    while let Some(&kind) = bytes.first() {
        match kind {
            option::END => break,
            option::NOP => {
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
            (option::MSS, 2) => opts.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (option::WINDOW_SCALE, 1) => opts.wscale = Some(body[0]),
            (option::SACK_PERMITTED, 0) => opts.sack_permitted = true,
            (option::SACK, _) => {
                // RFC 2018 §3: blocks of two 32-bit edges, left then right.
                for edges in body.chunks_exact(8) {
                    let left = u32::from_be_bytes([edges[0], edges[1], edges[2], edges[3]]);
                    let right = u32::from_be_bytes([edges[4], edges[5], edges[6], edges[7]]);
                    if let Some(slot) = opts.sack.get_mut(usize::from(opts.sack_blocks)) {
                        *slot = Some((SeqNumber(left), SeqNumber(right)));
                    }
                    opts.sack_blocks = opts.sack_blocks.saturating_add(1);
                }
            }
            (option::TIMESTAMPS, 8) => {
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

/// The checksum of a TCP segment, when it could be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    Good,
    Bad,
    /// The field holds only the pseudo-header sum: the frame was captured
    /// before the NIC (or loopback) would have filled it in (checksum
    /// offload). Not an error of the sender.
    Offloaded,
    /// The segment is not captured whole (snaplen, IP fragment).
    Unchecked,
}

/// Checks a whole TCP segment (header and payload) sent from `src` to
/// `dst`, with etherparse's one's-complement sum (RFC 1071).
pub fn verify_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> Checksum {
    let Ok(len) = u32::try_from(segment.len()) else {
        return Checksum::Bad;
    };
    let mut pseudo = Sum16BitWords::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo = pseudo.add_4bytes(s.octets()).add_4bytes(d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo = pseudo.add_16bytes(s.octets()).add_16bytes(d.octets());
        }
        _ => return Checksum::Bad,
    }
    let pseudo = pseudo
        .add_2bytes([0, u8::from(IpNumber::TCP)])
        .add_4bytes(len.to_be_bytes());
    // A correct segment sums (with its checksum field) to 0xffff, whose
    // complement is 0.
    let whole = pseudo.clone().add_8bytes(sum_words(segment).to_ne_bytes());
    if whole.ones_complement() == 0 {
        return Checksum::Good;
    }
    let field = match TcpView::new_lax(segment) {
        Ok(view) => view.checksum_field(),
        Err(_) => return Checksum::Bad,
    };
    // etherparse sums in native byte order: `to_be` gives the field's value.
    if field == !pseudo.ones_complement().to_be() {
        Checksum::Offloaded
    } else {
        Checksum::Bad
    }
}

/// The 16-bit words of `bytes` (an odd last byte padded with a zero),
/// summed in native byte order for [`Sum16BitWords::add_8bytes`]. RFC 1071
/// §2: the one's-complement sum does not depend on byte order or on how
/// the words are grouped, so 4-byte words are added into a u64 without
/// end-around carries (2^30 of them cannot overflow it), which the
/// compiler vectorises; `add_8bytes` folds the total in. A gigabyte
/// capture checks every payload byte, so this loop is inspect's hottest.
fn sum_words(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(4);
    let mut sum: u64 = words
        .by_ref()
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    let rest = words.remainder();
    if rest.len() >= 2 {
        sum += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
    }
    if rest.len() % 2 == 1 {
        sum += u64::from(u16::from_ne_bytes([rest[rest.len() - 1], 0]));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv6Addr;

    proptest! {
        /// The word sum folds to what etherparse's slice sum folds to, for
        /// every length (odd ones too) and any start.
        #[test]
        fn sum_words_agrees_with_etherparse(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            start in any::<[u8; 4]>(),
        ) {
            let base = Sum16BitWords::new().add_4bytes(start);
            let ours = base.clone().add_8bytes(sum_words(&bytes).to_ne_bytes());
            let theirs = base.add_slice(&bytes);
            prop_assert_eq!(ours.ones_complement(), theirs.ones_complement());
        }
    }

    fn syn(v6: bool, payload: &[u8]) -> (IpAddr, IpAddr, Vec<u8>) {
        let builder = if v6 {
            etherparse::PacketBuilder::ipv6([1; 16], [2; 16], 64)
        } else {
            etherparse::PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        };
        let builder = builder
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
        let (src, dst, at) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::from([1; 16])),
                IpAddr::V6(Ipv6Addr::from([2; 16])),
                40,
            )
        } else {
            (
                IpAddr::from([198, 18, 0, 2]),
                IpAddr::from([198, 18, 0, 1]),
                20,
            )
        };
        (src, dst, out[at..].to_vec())
    }

    #[test]
    fn the_view_reads_every_field() {
        let (_, _, tcp) = syn(false, b"hi");
        let v = TcpView::new_lax(&tcp).expect("tcp");
        assert_eq!((v.src_port(), v.dst_port()), (40000, 8080));
        assert_eq!(v.seq_number(), SeqNumber(1000));
        assert!(v.flags().syn() && !v.flags().ack());
        assert_eq!(v.window(), 64240);
        assert_eq!(v.options().mss, Some(1460));
        assert_eq!(v.options().wscale, Some(7));
        assert!(v.options().sack_permitted);
        assert_eq!(v.payload(), b"hi");
        assert!(!v.header_cut());
        let cut = TcpView::new_lax(&tcp[..22]).expect("lax");
        assert!(cut.header_cut());
        assert_eq!(cut.payload(), b"");
        assert_eq!(TcpView::new_lax(&tcp[..19]), Err(TcpError::Truncated));
        let mut bad = tcp.clone();
        bad[field::DATA_OFFSET] = 0x40;
        assert_eq!(TcpView::new_lax(&bad), Err(TcpError::BadDataOffset));
    }

    #[test]
    fn checksums_good_bad_and_offloaded_for_both_families() {
        for v6 in [false, true] {
            let (src, dst, mut tcp) = syn(v6, b"hello");
            assert_eq!(verify_checksum(src, dst, &tcp), Checksum::Good, "v6={v6}");
            // What etherparse computes agrees with the check.
            let last = tcp.len() - 1;
            tcp[last] ^= 1;
            assert_eq!(verify_checksum(src, dst, &tcp), Checksum::Bad);
            tcp[last] ^= 1;
            // The pseudo-header sum alone: what offload leaves.
            let len = u32::try_from(tcp.len()).expect("small");
            let mut sum = Sum16BitWords::new();
            sum = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => sum.add_4bytes(s.octets()).add_4bytes(d.octets()),
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    sum.add_16bytes(s.octets()).add_16bytes(d.octets())
                }
                _ => unreachable!(),
            };
            let partial = !sum
                .add_2bytes([0, 6])
                .add_4bytes(len.to_be_bytes())
                .ones_complement()
                .to_be();
            tcp[field::CHECKSUM].copy_from_slice(&partial.to_be_bytes());
            assert_eq!(verify_checksum(src, dst, &tcp), Checksum::Offloaded);
        }
    }

    #[test]
    fn the_offloaded_sum_is_the_pseudo_header_sum_as_numbers() {
        let (_, _, mut tcp) = syn(false, b"");
        tcp.truncate(field::HEADER_LEN);
        tcp[field::DATA_OFFSET] = 0x50;
        let lo = IpAddr::from([127, 0, 0, 1]);
        // 0x7f00 + 0x0001 + 0x7f00 + 0x0001 + 6 + 20 = 0xfe1c.
        tcp[field::CHECKSUM].copy_from_slice(&0xfe1cu16.to_be_bytes());
        assert_eq!(verify_checksum(lo, lo, &tcp), Checksum::Offloaded);
    }

    #[test]
    fn options_parsing_stops_at_garbage() {
        let opts = parse_options(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 2, 4, 5, 0xb4]);
        assert_eq!(opts.timestamps, Some((1, 2)));
        assert_eq!(opts.mss, Some(1460));
        assert_eq!(parse_options(&[2, 0, 2, 4]), TcpOptions::default());
        assert_eq!(parse_options(&[2, 40]), TcpOptions::default());
        let sack = parse_options(&[5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        assert_eq!(sack.sack_blocks, 2);
        // The edges are kept: the client resends only the gaps.
        assert_eq!(sack.sack[0], Some((SeqNumber(1), SeqNumber(2))));
        assert_eq!(sack.sack[1], Some((SeqNumber(3), SeqNumber(4))));
        assert_eq!(sack.sack[2], None);
        assert_eq!(parse_options(&[99, 2]).unknown, 1);
    }
}
