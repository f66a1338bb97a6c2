//! Wireshark's TCP sequence analysis (`tcp.analysis.*`), rule for rule, so
//! that synack's anomaly counts can be compared with tshark's.
//!
//! The rules follow `tcp_analyze_sequence_number()` in Wireshark's
//! `epan/dissectors/packet-tcp.c` (3.6/4.0 series, with the default
//! preferences: relative sequence numbers, no "fast retransmission
//! precedence" over out-of-order). Numbers are absolute and a zero
//! `nextseq`/`lastack` means "not seen yet", exactly as there.
//!
//! Pure: one call per segment, the verdict comes back as bit flags.

use crate::wire::SeqNumber;

/// The verdict bits (Wireshark's `TCP_A_*`).
pub mod flag {
    pub const RETRANSMISSION: u32 = 0x0001;
    pub const LOST_PACKET: u32 = 0x0002;
    pub const ACK_LOST_PACKET: u32 = 0x0004;
    pub const KEEP_ALIVE: u32 = 0x0008;
    pub const DUPLICATE_ACK: u32 = 0x0010;
    pub const ZERO_WINDOW: u32 = 0x0020;
    pub const ZERO_WINDOW_PROBE: u32 = 0x0040;
    pub const ZERO_WINDOW_PROBE_ACK: u32 = 0x0080;
    pub const KEEP_ALIVE_ACK: u32 = 0x0100;
    pub const OUT_OF_ORDER: u32 = 0x0200;
    pub const FAST_RETRANSMISSION: u32 = 0x0400;
    pub const WINDOW_UPDATE: u32 = 0x0800;
    pub const WINDOW_FULL: u32 = 0x1000;
    pub const SPURIOUS_RETRANSMISSION: u32 = 0x4000;

    /// Every kind Wireshark also marks `tcp.analysis.retransmission`.
    pub const ANY_RETRANSMISSION: u32 =
        RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION;
}

/// Out-of-order threshold when the handshake RTT is unknown (3 ms).
pub const DEFAULT_OOO_THRESHOLD_NS: u64 = 3_000_000;
/// A fast retransmission follows the duplicate ACKs within 20 ms.
pub const FAST_RETRANSMISSION_WINDOW_NS: u64 = 20_000_000;

/// Window scaling of one direction, as far as the handshake told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WindowScale {
    /// No SYN seen: unknown (Wireshark's -1); "window full" is not judged.
    #[default]
    Unknown,
    /// One side did not offer scaling (Wireshark's -2): shift 0.
    NotUsed,
    /// The shift count this side announced.
    Shift(u8),
}

/// What Wireshark remembers about one direction of a conversation
/// (`tcp_flow_t` and its `tcp_analyze_seq_info`).
#[derive(Clone, Debug, Default)]
pub struct Flow {
    /// The highest sequence number seen plus its length (0: none yet).
    pub nextseq: u32,
    pub nextseq_time_ns: u64,
    /// The highest in-order sequence number seen, for "ACKed unseen".
    pub maxseqtobeacked: u32,
    /// The last ACK number this direction sent (0: none yet).
    pub lastack: u32,
    pub lastack_time_ns: u64,
    /// The last raw window this direction sent.
    pub window: u32,
    /// Whether that window came on a SYN (not scaled).
    pub window_on_syn: bool,
    pub win_scale: WindowScale,
    /// Duplicate ACKs in a row (-1: neutralised by "ACKed unseen").
    pub dupacknum: i32,
    /// The verdict of the last segment in this direction.
    pub last_flags: u32,
}

/// One segment, the fields the analysis reads.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub seq: u32,
    pub ack: u32,
    pub seglen: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub ack_flag: bool,
    pub window: u32,
    pub now_ns: u64,
}

/// `a > b` in sequence space (Wireshark's `GT_SEQ`).
fn gt(a: u32, b: u32) -> bool {
    SeqNumber(b) - SeqNumber(a) < 0
}

/// `a < b` in sequence space.
fn lt(a: u32, b: u32) -> bool {
    SeqNumber(a) - SeqNumber(b) < 0
}

/// `a <= b` in sequence space.
fn le(a: u32, b: u32) -> bool {
    SeqNumber(b) - SeqNumber(a) >= 0
}

/// Judges one segment sent in direction `fwd` (the other direction is
/// `rev`) and updates both; `first_rtt_ns` is the handshake RTT once known.
pub fn analyze(fwd: &mut Flow, rev: &mut Flow, s: &Seg, first_rtt_ns: Option<u64>) -> u32 {
    use flag::*;
    let mut f = window_flags(fwd, rev, s);

    // A new ACK number resets the duplicate count.
    if s.ack != fwd.lastack {
        fwd.dupacknum = 0;
    }

    // ACKED LOST PACKET: this acknowledges data never seen.
    if rev.maxseqtobeacked != 0 && gt(s.ack, rev.maxseqtobeacked) && s.ack_flag {
        // A plain comparison, as in Wireshark.
        if rev.maxseqtobeacked > rev.nextseq {
            rev.maxseqtobeacked = rev.nextseq;
            f |= ACK_LOST_PACKET;
        } else {
            if rev.dupacknum == 0 {
                f |= ACK_LOST_PACKET;
            }
            rev.dupacknum = -1;
        }
    }

    // RETRANSMISSION / FAST RETRANSMISSION / SPURIOUS / OUT-OF-ORDER:
    // data, SYN or FIN that does not advance the sequence number.
    f |= retransmission_flags(fwd, rev, s, f & KEEP_ALIVE != 0, first_rtt_ns);
    record(fwd, s, f);
    f
}

/// The flags that compare the segment with the last one in its direction
/// and the other side's window: zero window (probe), lost packet,
/// keep-alive, window update and full, duplicate ACK. Counts a duplicate
/// ACK in `fwd`.
fn window_flags(fwd: &mut Flow, rev: &Flow, s: &Seg) -> u32 {
    use flag::*;
    let mut f = 0u32;
    let no_syn_fin_rst = !(s.syn || s.fin || s.rst);
    // ZERO WINDOW PROBE: one byte at the next expected sequence number
    // while the other side's window is zero.
    if s.seglen == 1 && s.seq == fwd.nextseq && rev.window == 0 {
        return f | ZERO_WINDOW_PROBE;
    }
    // ZERO WINDOW: a zero window on anything but SYN/FIN/RST.
    if s.window == 0 && no_syn_fin_rst {
        f |= ZERO_WINDOW;
    }
    // LOST PACKET: beyond the highest sequence number seen (not RST).
    if fwd.nextseq != 0 && gt(s.seq, fwd.nextseq) && !s.rst {
        f |= LOST_PACKET;
    }
    // KEEP ALIVE: 0 or 1 byte, one before the next expected number.
    if (s.seglen == 0 || s.seglen == 1) && s.seq == fwd.nextseq.wrapping_sub(1) && no_syn_fin_rst {
        f |= KEEP_ALIVE;
    }
    // WINDOW UPDATE: nothing new but the window.
    if s.seglen == 0
        && s.window != 0
        && s.window != fwd.window
        && s.seq == fwd.nextseq
        && s.ack == fwd.lastack
        && no_syn_fin_rst
    {
        f |= WINDOW_UPDATE;
    }
    // WINDOW FULL: data up to the right edge of the other side's
    // advertised window.
    if s.seglen > 0 && no_syn_fin_rst && rev.win_scale != WindowScale::Unknown {
        let shift = match rev.win_scale {
            WindowScale::Shift(n) if !rev.window_on_syn => u32::from(n.min(14)),
            _ => 0,
        };
        let edge = rev.lastack.wrapping_add(rev.window << shift);
        if s.seq.wrapping_add(s.seglen) == edge {
            f |= WINDOW_FULL;
        }
    }
    let repeats = s.seglen == 0
        && s.window == fwd.window
        && s.seq == fwd.nextseq
        && s.ack == fwd.lastack
        && no_syn_fin_rst;
    // KEEP ALIVE ACK: a repeat right after a keep-alive.
    if repeats && s.window != 0 && rev.last_flags & KEEP_ALIVE != 0 {
        return f | KEEP_ALIVE_ACK;
    }
    // ZERO WINDOW PROBE ACK: a zero-window repeat after a probe.
    if repeats && s.window == 0 && rev.last_flags & ZERO_WINDOW_PROBE != 0 {
        return f | ZERO_WINDOW_PROBE_ACK;
    }
    // DUPLICATE ACK: window, seq and ack as before, no data.
    if repeats && s.window != 0 {
        fwd.dupacknum = if fwd.dupacknum == -1 {
            1
        } else {
            fwd.dupacknum.saturating_add(1)
        };
        f |= DUPLICATE_ACK;
    }
    f
}

/// RETRANSMISSION, FAST RETRANSMISSION, SPURIOUS RETRANSMISSION or
/// OUT-OF-ORDER (at most one): data, SYN or FIN that does not advance the
/// sequence number (`keep_alive`: already judged a keep-alive).
fn retransmission_flags(
    fwd: &Flow,
    rev: &Flow,
    s: &Seg,
    keep_alive: bool,
    first_rtt_ns: Option<u64>,
) -> u32 {
    use flag::*;
    if !(s.seglen > 0 || s.syn || s.fin) || keep_alive {
        return 0;
    }
    let mut not_advanced = fwd.nextseq != 0 && lt(s.seq, fwd.nextseq);
    // More than one byte right after a possible zero-window probe
    // adds data: not a retransmission.
    if s.seglen > 1 && fwd.nextseq.wrapping_sub(1) == s.seq {
        not_advanced = false;
    }
    // SPURIOUS: everything in it was acknowledged already.
    if s.seglen > 0 && rev.lastack != 0 && le(s.seq.wrapping_add(s.seglen), rev.lastack) {
        return SPURIOUS_RETRANSMISSION;
    }
    // FAST: the other side sent ≥2 duplicate ACKs for this sequence
    // number within the last 20 ms.
    let since_ack = s.now_ns.wrapping_sub(rev.lastack_time_ns);
    if not_advanced
        && rev.dupacknum >= 2
        && rev.lastack == s.seq
        && since_ack < FAST_RETRANSMISSION_WINDOW_NS
    {
        return FAST_RETRANSMISSION;
    }
    // OUT-OF-ORDER: soon after the highest segment, and not simply
    // repeating it.
    let since_next = s.now_ns.wrapping_sub(fwd.nextseq_time_ns);
    let threshold = first_rtt_ns
        .filter(|rtt| *rtt != 0)
        .unwrap_or(DEFAULT_OOO_THRESHOLD_NS);
    let end = s
        .seq
        .wrapping_add(s.seglen)
        .wrapping_add(u32::from(s.syn || s.fin));
    if not_advanced && since_next < threshold && fwd.nextseq != end {
        return OUT_OF_ORDER;
    }
    if not_advanced {
        RETRANSMISSION
    } else {
        0
    }
}

/// Remembers the segment (judged `f`) in its direction: the next and the
/// highest sequence numbers, the window and the ACK it carried.
fn record(fwd: &mut Flow, s: &Seg, f: u32) {
    use flag::*;
    let mut nextseq = s.seq.wrapping_add(s.seglen);
    if s.syn || s.fin {
        nextseq = nextseq.wrapping_add(1);
    }
    let probe = f & ZERO_WINDOW_PROBE != 0;
    if (gt(nextseq, fwd.nextseq) || fwd.nextseq == 0) && !probe {
        fwd.nextseq = nextseq;
        fwd.nextseq_time_ns = s.now_ns;
    }
    if (s.seq == fwd.maxseqtobeacked || fwd.maxseqtobeacked == 0) && !probe {
        fwd.maxseqtobeacked = fwd.nextseq;
    }
    fwd.window = s.window;
    fwd.window_on_syn = s.syn;
    fwd.lastack = s.ack;
    fwd.lastack_time_ns = s.now_ns;
    fwd.last_flags = f;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, ack: u32, seglen: u32, now_ms: u64) -> Seg {
        Seg {
            seq,
            ack,
            seglen,
            syn: false,
            fin: false,
            rst: false,
            ack_flag: true,
            window: 500,
            now_ns: now_ms * 1_000_000,
        }
    }

    #[test]
    fn a_repeated_segment_later_is_a_retransmission() {
        let (mut a, mut b) = (Flow::default(), Flow::default());
        assert_eq!(analyze(&mut a, &mut b, &seg(100, 1, 10, 0), None), 0);
        let f = analyze(&mut a, &mut b, &seg(100, 1, 10, 300), None);
        assert_eq!(f, flag::RETRANSMISSION);
    }

    #[test]
    fn a_repeat_within_3ms_is_out_of_order() {
        let (mut a, mut b) = (Flow::default(), Flow::default());
        analyze(&mut a, &mut b, &seg(100, 1, 10, 0), None);
        analyze(&mut a, &mut b, &seg(120, 1, 10, 1), None);
        let f = analyze(&mut a, &mut b, &seg(110, 1, 10, 2), None);
        assert_eq!(f, flag::OUT_OF_ORDER);
    }

    #[test]
    fn a_gap_is_a_lost_segment_and_acking_it_is_acked_unseen() {
        let (mut a, mut b) = (Flow::default(), Flow::default());
        analyze(&mut a, &mut b, &seg(100, 1, 10, 0), None);
        let f = analyze(&mut a, &mut b, &seg(200, 1, 10, 1), None);
        assert_eq!(f & flag::LOST_PACKET, flag::LOST_PACKET);
        let mut ack = seg(1, 110, 0, 2);
        ack.window = 700;
        analyze(&mut b, &mut a, &ack, None);
        let dup = analyze(&mut b, &mut a, &ack, None);
        assert_eq!(dup, flag::DUPLICATE_ACK);
        assert_eq!(b.dupacknum, 1);
        let dup2 = analyze(&mut b, &mut a, &ack, None);
        assert_eq!(dup2, flag::DUPLICATE_ACK);
        // The sender fills the hole within 20 ms of the dup ACKs.
        let fast = analyze(&mut a, &mut b, &seg(110, 1, 10, 10), None);
        assert_eq!(fast, flag::FAST_RETRANSMISSION);
    }

    #[test]
    fn zero_window_and_keep_alive() {
        let (mut a, mut b) = (Flow::default(), Flow::default());
        analyze(&mut a, &mut b, &seg(100, 1, 10, 0), None);
        let mut zero = seg(1, 110, 0, 1);
        zero.window = 0;
        assert_eq!(analyze(&mut b, &mut a, &zero, None), flag::ZERO_WINDOW);
        let probe = analyze(&mut a, &mut b, &seg(110, 1, 1, 2), None);
        assert_eq!(probe, flag::ZERO_WINDOW_PROBE);
        let ka = analyze(&mut a, &mut b, &seg(109, 1, 0, 3000), None);
        assert_eq!(ka & flag::KEEP_ALIVE, flag::KEEP_ALIVE);
    }

    #[test]
    fn everything_acked_already_is_spurious() {
        let (mut a, mut b) = (Flow::default(), Flow::default());
        analyze(&mut a, &mut b, &seg(100, 1, 10, 0), None);
        analyze(&mut b, &mut a, &seg(1, 110, 0, 1), None);
        let f = analyze(&mut a, &mut b, &seg(100, 1, 10, 500), None);
        assert_eq!(f, flag::SPURIOUS_RETRANSMISSION);
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(gt(5, 0xffff_fff0));
        assert!(lt(0xffff_fff0, 5));
        assert!(le(7, 7));
    }
}
