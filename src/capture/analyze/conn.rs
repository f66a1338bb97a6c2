//! One connection as the capture shows it: counters per direction, the
//! handshake, the close, Wireshark's verdicts, Zeek's letters and the RFC
//! 9293 state of each end.
//!
//! Directions are physical until [`Connection::finish`]: side 0 sent the
//! first packet seen. Which side is the client is decided at the end (the
//! SYN's sender, else the SYN-ACK's receiver, else the higher port).
//!
//! Pure.

use crate::capture::decap::{Checksum, TcpSegment, Tunnel};
use crate::tcp::State;
use crate::wire::{Flags, SeqNumber, TcpOptions};

use super::seq::{self, flag, Flow, WindowScale};
use super::zeek::{self, letter, EndpointState, History};
use super::{
    Anomalies, ClientRule, Close, CloseKind, Closer, ConnectionReport, Counters, Direction, Ended,
    Endpoint, Handshake, LadderRow, Offered, Options, PerDirection, States, Zeek, MAX_LADDER_ROWS,
};

/// At most this many disjoint sequence ranges are kept per direction;
/// beyond, the closest two are merged and the hole between them is
/// remembered as unseen, so unique bytes never count a byte that was not
/// captured (data that later fills a forgotten hole is not counted: an
/// under-count, never an over-count).
pub const MAX_RANGES: usize = 32;
/// RFC state paths longer than this stop growing.
pub const MAX_STATE_PATH: usize = 16;

/// The union of received sequence ranges, as 64-bit offsets from a base.
#[derive(Clone, Debug, Default)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
    /// Bytes inside `ranges` that were never seen: the holes merged away
    /// when there were more than [`MAX_RANGES`] ranges.
    unseen: u64,
}

impl RangeSet {
    /// Adds `[start, end)`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Fast path: extends the last range (in-order data).
        if let Some(last) = self.ranges.last_mut() {
            if start >= last.0 && start <= last.1 {
                last.1 = last.1.max(end);
                return;
            }
        }
        self.ranges.push((start, end));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for (s, e) in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        while merged.len() > MAX_RANGES {
            // Merge the two ranges with the smallest hole between them.
            let at = (1..merged.len())
                .min_by_key(|&i| merged[i].0 - merged[i - 1].1)
                .unwrap_or(1);
            self.unseen += merged[at].0 - merged[at - 1].1;
            merged[at - 1].1 = merged[at].1;
            merged.remove(at);
        }
        self.ranges = merged;
    }

    /// Bytes seen (each counted once; no hole ever counts).
    pub fn total(&self) -> u64 {
        let covered: u64 = self.ranges.iter().map(|(s, e)| e - s).sum();
        covered.saturating_sub(self.unseen)
    }
}

/// What one end of the connection sent, and what the wire says of it.
#[derive(Clone, Debug)]
struct Side {
    endpoint: Endpoint,
    packets: u64,
    wire_bytes: u64,
    unique: RangeSet,
    /// Sequence number base for relative numbers and `unique` (the ISN, or
    /// one before the first number seen, as Wireshark does).
    base: Option<SeqNumber>,
    /// The highest 64-bit offset seen (to unwrap 32-bit numbers).
    high: u64,
    /// The ISN of its SYN or SYN-ACK.
    isn: Option<SeqNumber>,
    /// SYNs (or SYN-ACKs) with that ISN.
    syns: u32,
    sent_syn_ack: bool,
    offered: Option<TcpOptions>,
    /// Sequence number of its FIN.
    fin: Option<SeqNumber>,
    /// The other side acknowledged that FIN.
    fin_acked: bool,
    /// It acknowledged the other side's FIN before sending its own.
    acked_peer_fin_first: bool,
    rst: bool,
    flow: Flow,
    zeek: EndpointState,
    /// Its RFC 9293 states (empty: nothing known yet).
    path: Vec<State>,
}

impl Side {
    fn new(ip: std::net::IpAddr, port: u16) -> Side {
        Side {
            endpoint: Endpoint { ip, port },
            packets: 0,
            wire_bytes: 0,
            unique: RangeSet::default(),
            base: None,
            high: 0,
            isn: None,
            syns: 0,
            sent_syn_ack: false,
            offered: None,
            fin: None,
            fin_acked: false,
            acked_peer_fin_first: false,
            rst: false,
            flow: Flow::default(),
            zeek: EndpointState::Inactive,
            path: Vec::new(),
        }
    }

    fn state(&self) -> Option<State> {
        self.path.last().copied()
    }

    fn enter(&mut self, state: State) {
        if self.state() != Some(state) && self.path.len() < MAX_STATE_PATH {
            self.path.push(state);
        }
    }

    /// A 64-bit offset from `base` for `seq`, closest to the highest seen.
    fn offset_of(&self, seq: SeqNumber) -> u64 {
        let Some(base) = self.base else { return 0 };
        let rel = u64::from(seq.relative_to(base));
        let epoch = self.high & !0xffff_ffff;
        let candidates = [
            epoch.wrapping_sub(1 << 32) | rel,
            epoch | rel,
            (epoch + (1 << 32)) | rel,
        ];
        candidates
            .into_iter()
            .filter(|c| *c < (1 << 62))
            .min_by_key(|c| c.abs_diff(self.high))
            .unwrap_or(rel)
    }
}

/// The handshake as seen so far.
#[derive(Clone, Copy, Debug, Default)]
struct Opening {
    /// Side that sent the first SYN (no ACK).
    syn_from: Option<usize>,
    /// Side that sent the first SYN-ACK.
    synack_from: Option<usize>,
    /// Time of the last SYN before the first SYN-ACK.
    last_syn_ns: Option<u64>,
    /// When the ACK of the SYN-ACK came.
    complete_ns: Option<u64>,
}

/// One TCP connection.
#[derive(Clone, Debug)]
pub struct Connection {
    index: u64,
    first_frame: u64,
    first_ns: u64,
    last_ns: u64,
    sides: [Side; 2],
    opening: Opening,
    /// Side of the first FIN; whether the FINs crossed; how the second
    /// FIN answered the first.
    first_fin: Option<usize>,
    fin_kind: Option<CloseKind>,
    /// Side of the first RST, if it came before the FIN exchange was done.
    rst_first: Option<usize>,
    any_rst: bool,
    anomalies: Anomalies,
    retransmissions: u64,
    history: History,
    snaplen_cut: u64,
    offloaded: u64,
    completeness: u8,
    options: Options,
    ladder: Vec<LadderRow>,
    ladder_omitted: u64,
    tunnel: Option<Tunnel>,
    /// It resumes a connection reported earlier (see [`Tombstone`]), or it
    /// has been reported at its close and lingers for late packets.
    continued: bool,
    /// The counters of the report made at its close (it lingers).
    reported: Option<Box<Counters>>,
}

/// What is kept of a connection once it has been reported (closed or
/// evicted): enough to give a tuple that comes back without a new SYN the
/// same index and the same relative sequence numbers, as tshark keeps one
/// `tcp.stream`. About 80 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Tombstone {
    pub index: u64,
    /// Side 0's endpoint (the sender of the first packet).
    first: (std::net::IpAddr, u16),
    bases: [Option<SeqNumber>; 2],
    isns: [Option<SeqNumber>; 2],
    syn_from: Option<u8>,
    synack_from: Option<u8>,
    /// The FIN exchange completed or a RST was seen.
    pub closed: bool,
    /// Capture time of its last packet.
    pub last_ns: u64,
}

impl Tombstone {
    fn side_of(&self, seg: &TcpSegment<'_>) -> usize {
        usize::from(!(self.first.0 == seg.src && self.first.1 == seg.src_port))
    }

    /// Whether a SYN (no ACK) starts a new connection rather than
    /// continuing this one (the rule of [`Connection::is_reused_by`]).
    pub fn is_reused_by(&self, seg: &TcpSegment<'_>) -> bool {
        let from = self.side_of(seg);
        let new_isn = self.isns[from] != Some(seg.seq);
        let over = self.closed || self.synack_from.is_none();
        new_isn && over && (self.syn_from.is_some() || self.closed)
    }
}

impl Connection {
    /// A connection whose first packet is `seg` (fed separately).
    pub fn new(
        index: u64,
        frame: u64,
        ts_ns: u64,
        seg: &TcpSegment<'_>,
        options: Options,
    ) -> Connection {
        Connection {
            index,
            first_frame: frame,
            first_ns: ts_ns,
            last_ns: ts_ns,
            sides: [
                Side::new(seg.src, seg.src_port),
                Side::new(seg.dst, seg.dst_port),
            ],
            opening: Opening::default(),
            first_fin: None,
            fin_kind: None,
            rst_first: None,
            any_rst: false,
            anomalies: Anomalies::default(),
            retransmissions: 0,
            history: History::default(),
            snaplen_cut: 0,
            offloaded: 0,
            completeness: 0,
            options,
            ladder: Vec::new(),
            ladder_omitted: 0,
            tunnel: seg.tunnel,
            continued: false,
            reported: None,
        }
    }

    /// Whether it has been reported at its close (it lingers for late
    /// packets: see [`Connection::report_close`]).
    pub fn is_reported(&self) -> bool {
        self.reported.is_some()
    }

    /// Packets seen since the report at its close.
    pub fn late_packets(&self) -> u64 {
        let now = self.sides[0].packets + self.sides[1].packets;
        self.reported
            .as_ref()
            .map_or(0, |r| now.saturating_sub(r.packets.c2s + r.packets.s2c))
    }

    /// The report at its close, made while it stays: late packets (a
    /// retransmitted FIN, a TIME-WAIT ACK) are still judged with its whole
    /// state, and [`Connection::finish_late`] reports them.
    pub fn report_close(&mut self) -> ConnectionReport {
        let ladder = std::mem::take(&mut self.ladder);
        let omitted = std::mem::take(&mut self.ladder_omitted);
        let mut copy = self.clone();
        copy.ladder = ladder;
        copy.ladder_omitted = omitted;
        let report = copy.finish_as(Ended::Close);
        self.reported = Some(Box::new(report.counters()));
        report
    }

    /// After [`Connection::report_close`]: the report of the late packets
    /// (counters since the close's report, the rest for the whole
    /// connection), if any came.
    pub fn finish_late(self) -> Option<ConnectionReport> {
        let earlier = self.reported.clone()?;
        if self.late_packets() == 0 {
            return None;
        }
        let mut report = self.finish_as(Ended::Close);
        report.continued = true;
        report.subtract(&earlier);
        Some(report)
    }

    /// The continuation of a reported connection, whose first packet is
    /// `seg` (fed separately): same index, same sides, same sequence bases.
    pub fn resume(
        tomb: &Tombstone,
        frame: u64,
        ts_ns: u64,
        seg: &TcpSegment<'_>,
        options: Options,
    ) -> Connection {
        let mut conn = Connection::new(tomb.index, frame, ts_ns, seg, options);
        if tomb.side_of(seg) == 1 {
            conn.sides.swap(0, 1);
        }
        for (side, (base, isn)) in conn
            .sides
            .iter_mut()
            .zip(tomb.bases.into_iter().zip(tomb.isns))
        {
            side.base = base;
            side.isn = isn;
        }
        conn.opening.syn_from = tomb.syn_from.map(usize::from);
        conn.opening.synack_from = tomb.synack_from.map(usize::from);
        conn.continued = true;
        conn
    }

    /// What to keep once it is reported.
    pub fn tombstone(&self) -> Tombstone {
        let e = |i: usize| (self.sides[i].endpoint.ip, self.sides[i].endpoint.port);
        Tombstone {
            index: self.index,
            first: e(0),
            bases: [self.sides[0].base, self.sides[1].base],
            isns: [self.sides[0].isn, self.sides[1].isn],
            syn_from: self.opening.syn_from.map(|d| d as u8),
            synack_from: self.opening.synack_from.map(|d| d as u8),
            closed: self.is_closed(),
            last_ns: self.last_ns,
        }
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn first_ts_ns(&self) -> u64 {
        self.first_ns
    }

    /// Only SYNs (no ACK) seen so far: an attempt nobody answered.
    pub fn is_attempt(&self) -> bool {
        self.completeness == completeness_bits(true, false, false, false, false)
    }

    pub fn last_ts_ns(&self) -> u64 {
        self.last_ns
    }

    /// Both FINs acknowledged, or a RST seen.
    pub fn is_closed(&self) -> bool {
        self.any_rst || self.fin_exchange_done()
    }

    fn fin_exchange_done(&self) -> bool {
        self.sides.iter().all(|s| s.fin.is_some() && s.fin_acked)
    }

    /// Whether a SYN (no ACK) starts a new connection on this tuple: the
    /// old one is closed (or was never answered) and the ISN is new.
    pub fn is_reused_by(&self, seg: &TcpSegment<'_>) -> bool {
        let from = self.side_of(seg);
        let new_isn = self.sides[from].isn != Some(seg.seq);
        let over = self.is_closed() || self.opening.synack_from.is_none();
        new_isn && over && (self.opening.syn_from.is_some() || self.is_closed())
    }

    /// Which side sent `seg`: 0 for the sender of the first packet seen,
    /// 1 for the other end.
    pub fn side_of(&self, seg: &TcpSegment<'_>) -> usize {
        let s = &self.sides[0].endpoint;
        usize::from(!(s.ip == seg.src && s.port == seg.src_port))
    }

    /// The RFC 9293 states `side` (as [`Connection::side_of`] numbers
    /// them) went through so far, as the wire shows them (`synack watch`
    /// narrates each segment's changes from this).
    pub fn state_path(&self, side: usize) -> &[State] {
        &self.sides[side.min(1)].path
    }

    /// `n`, a sequence number of `side`, relative to that side's base
    /// (Wireshark's relative numbers; `n` itself before any base is known).
    pub fn relative(&self, side: usize, n: SeqNumber) -> u32 {
        self.sides[side.min(1)]
            .base
            .map_or(n.0, |base| n.relative_to(base))
    }

    /// Frames marked as a retransmission of any kind so far.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Feeds one segment of this connection.
    pub fn on_segment(&mut self, frame: u64, ts_ns: u64, seg: &TcpSegment<'_>) {
        let d = self.side_of(seg);
        self.last_ns = self.last_ns.max(ts_ns);
        let f = seg.flags;
        let (syn, ack, fin, rst) = (f.syn(), f.ack(), f.fin(), f.rst());
        let len = seg.payload_len;
        if seg.header_cut || (seg.payload.len() as u64) < u64::from(len) {
            self.snaplen_cut += 1;
        }
        if seg.checksum == Checksum::Offloaded {
            self.offloaded += 1;
        }
        self.completeness |= completeness_bits(syn, ack, fin, rst, len > 0);
        self.set_bases(d, seg);
        self.count_bytes(d, seg);
        self.track_handshake(d, ts_ns, seg);
        // Window scaling, once both SYNs are known.
        if syn {
            self.update_window_scaling();
        }
        let verdict = self.wireshark_verdict(d, ts_ns, seg);
        self.count(verdict, seg.checksum == Checksum::Bad);
        self.track_close(d, seg);
        // Zeek.
        {
            let (me, peer) = self.me_and_peer(d);
            zeek::on_segment(&mut me.zeek, &mut peer.zeek, syn, ack, fin, rst);
        }
        self.record_history(d, seg, verdict);

        // RFC 9293 states of both ends.
        let before = (self.sides[0].state(), self.sides[1].state());
        self.update_states(d, seg);
        let after = (self.sides[0].state(), self.sides[1].state());

        if self.options.ladder {
            self.add_row(frame, ts_ns, d, seg, verdict, before, after);
        }
    }

    /// Side `d` and its peer, both mutable.
    fn me_and_peer(&mut self, d: usize) -> (&mut Side, &mut Side) {
        let (a, b) = self.sides.split_at_mut(1);
        if d == 0 {
            (&mut a[0], &mut b[0])
        } else {
            (&mut b[0], &mut a[0])
        }
    }

    /// Relative-number bases, Wireshark's way: the first segment of a side
    /// (its SYN, or one before its first byte) and the first ACK of it.
    fn set_bases(&mut self, d: usize, seg: &TcpSegment<'_>) {
        let p = 1 - d;
        let syn = seg.flags.syn();
        if self.sides[d].base.is_none() {
            self.sides[d].base = Some(if syn {
                seg.seq
            } else {
                SeqNumber(seg.seq.0.wrapping_sub(1))
            });
        }
        if seg.flags.ack() && self.sides[p].base.is_none() {
            self.sides[p].base = Some(SeqNumber(seg.ack.0.wrapping_sub(1)));
        }
    }

    /// Counters and unique bytes of side `d`.
    fn count_bytes(&mut self, d: usize, seg: &TcpSegment<'_>) {
        let len = seg.payload_len;
        let side = &mut self.sides[d];
        side.packets += 1;
        side.wire_bytes += u64::from(len);
        if len > 0 {
            let start = side.offset_of(seg.seq) + u64::from(seg.flags.syn());
            let end = start + u64::from(len);
            side.high = side.high.max(end);
            side.unique.insert(start, end);
        }
    }

    /// The handshake: each side's ISN and SYNs, who opened, and when the
    /// third segment completed it.
    fn track_handshake(&mut self, d: usize, ts_ns: u64, seg: &TcpSegment<'_>) {
        let p = 1 - d;
        let ack = seg.flags.ack();
        if seg.flags.syn() {
            let side = &mut self.sides[d];
            if side.isn == Some(seg.seq) {
                side.syns += 1;
            } else if side.isn.is_none() {
                side.isn = Some(seg.seq);
                side.syns = 1;
                side.offered = Some(seg.options);
            }
            if ack {
                side.sent_syn_ack = true;
                if self.opening.synack_from.is_none() {
                    self.opening.synack_from = Some(d);
                }
            } else {
                if self.opening.syn_from.is_none() {
                    self.opening.syn_from = Some(d);
                }
                if self.opening.synack_from.is_none() {
                    self.opening.last_syn_ns = Some(ts_ns);
                }
            }
        } else if ack
            && self.opening.complete_ns.is_none()
            && self.opening.syn_from == Some(d)
            && self.opening.synack_from == Some(p)
            && self.sides[p].isn.is_some_and(|isn| seg.ack > isn)
        {
            self.opening.complete_ns = Some(ts_ns);
        }
    }

    /// Wireshark's verdict on the segment (the `seq::flag` bits).
    fn wireshark_verdict(&mut self, d: usize, ts_ns: u64, seg: &TcpSegment<'_>) -> u32 {
        let first_rtt = match (self.opening.last_syn_ns, self.opening.complete_ns) {
            (Some(syn_ns), Some(done)) => Some(done.saturating_sub(syn_ns)),
            _ => None,
        };
        let f = seg.flags;
        let (fwd, rev) = self.me_and_peer(d);
        seq::analyze(
            &mut fwd.flow,
            &mut rev.flow,
            &seq::Seg {
                seq: seg.seq.0,
                ack: seg.ack.0,
                seglen: seg.payload_len,
                syn: f.syn(),
                fin: f.fin(),
                rst: f.rst(),
                ack_flag: f.ack(),
                window: u32::from(seg.window),
                now_ns: ts_ns,
            },
            first_rtt,
        )
    }

    /// The close: ACK of the peer's FIN first, then our own FIN; and who
    /// reset first.
    fn track_close(&mut self, d: usize, seg: &TcpSegment<'_>) {
        let p = 1 - d;
        let f = seg.flags;
        let (ack, fin, rst) = (f.ack(), f.fin(), f.rst());
        if ack {
            if let Some(peer_fin) = self.sides[p].fin {
                if seg.ack > peer_fin && !self.sides[p].fin_acked {
                    self.sides[p].fin_acked = true;
                    if !fin && self.sides[d].fin.is_none() {
                        self.sides[d].acked_peer_fin_first = true;
                    }
                }
            }
        }
        if fin && self.sides[d].fin.is_none() {
            let fin_seq = seg.seq + seg.payload_len as usize;
            self.sides[d].fin = Some(fin_seq);
            match self.sides[p].fin {
                None => self.first_fin = Some(d),
                Some(peer_fin) => {
                    let answers = ack && seg.ack > peer_fin;
                    self.fin_kind = Some(if !answers {
                        CloseKind::Simultaneous
                    } else if self.sides[d].acked_peer_fin_first {
                        CloseKind::Fin4way
                    } else {
                        CloseKind::Fin3way
                    });
                }
            }
        }
        if rst {
            if !self.any_rst && !self.fin_exchange_done() {
                self.rst_first = Some(d);
            }
            self.any_rst = true;
            self.sides[d].rst = true;
        }
    }

    fn update_window_scaling(&mut self) {
        let offered = |s: &Side| s.offered.map(|o| o.wscale);
        match (offered(&self.sides[0]), offered(&self.sides[1])) {
            (Some(Some(a)), Some(Some(b))) => {
                self.sides[0].flow.win_scale = WindowScale::Shift(a);
                self.sides[1].flow.win_scale = WindowScale::Shift(b);
            }
            (Some(_), Some(_)) => {
                self.sides[0].flow.win_scale = WindowScale::NotUsed;
                self.sides[1].flow.win_scale = WindowScale::NotUsed;
            }
            _ => {}
        }
    }

    fn count(&mut self, verdict: u32, bad_checksum: bool) {
        let a = &mut self.anomalies;
        let bump = |bit: u32, counter: &mut u64| {
            if verdict & bit != 0 {
                *counter += 1;
            }
        };
        bump(flag::ANY_RETRANSMISSION, &mut a.retransmission);
        bump(flag::FAST_RETRANSMISSION, &mut a.fast_retransmission);
        bump(
            flag::SPURIOUS_RETRANSMISSION,
            &mut a.spurious_retransmission,
        );
        bump(flag::OUT_OF_ORDER, &mut a.out_of_order);
        bump(flag::DUPLICATE_ACK, &mut a.duplicate_ack);
        bump(flag::ZERO_WINDOW, &mut a.zero_window);
        bump(flag::ZERO_WINDOW_PROBE, &mut a.zero_window_probe);
        bump(flag::ZERO_WINDOW_PROBE_ACK, &mut a.zero_window_probe_ack);
        bump(flag::WINDOW_FULL, &mut a.window_full);
        bump(flag::WINDOW_UPDATE, &mut a.window_update);
        bump(flag::KEEP_ALIVE, &mut a.keep_alive);
        bump(flag::KEEP_ALIVE_ACK, &mut a.keep_alive_ack);
        bump(flag::LOST_PACKET, &mut a.lost_segment);
        bump(flag::ACK_LOST_PACKET, &mut a.ack_lost_segment);
        if bad_checksum {
            a.bad_checksum += 1;
        }
        if verdict & flag::ANY_RETRANSMISSION != 0 {
            self.retransmissions += 1;
        }
    }

    fn record_history(&mut self, d: usize, seg: &TcpSegment<'_>, verdict: u32) {
        let f = seg.flags;
        let (syn, ack, fin, rst) = (f.syn(), f.ack(), f.fin(), f.rst());
        let h = &mut self.history;
        if seg.checksum == Checksum::Bad {
            h.logarithmic(letter::BAD_CHECKSUM, d);
        }
        if syn && (fin || rst) {
            h.once(letter::MULTI_FLAG, d);
        }
        if fin && rst {
            h.once(letter::INCONSISTENT, d);
        }
        if syn {
            h.with_seq(
                if ack { letter::SYN_ACK } else { letter::SYN },
                d,
                seg.seq.0,
            );
        }
        if fin {
            h.with_seq(letter::FIN, d, seg.seq.0);
        }
        if rst {
            h.with_seq(letter::RST, d, seg.seq.0);
        }
        if seg.payload_len > 0 {
            h.once(letter::DATA, d);
            if verdict & flag::ANY_RETRANSMISSION != 0 {
                h.logarithmic(letter::RETRANSMISSION, d);
            }
        } else if ack && !(syn || fin || rst) {
            h.once(letter::PURE_ACK, d);
        }
        if verdict & flag::LOST_PACKET != 0 {
            h.logarithmic(letter::GAP, d);
        }
        if seg.window == 0 && !(syn || rst) {
            h.logarithmic(letter::ZERO_WINDOW, d);
        }
    }

    /// RFC 9293 §3.10.7: what sending (for `d`) and receiving (for the
    /// other end) this segment does to each end, as far as the wire shows:
    /// first the sender's state, then the receiver's.
    fn update_states(&mut self, d: usize, seg: &TcpSegment<'_>) {
        self.update_sender_state(d, seg);
        self.update_receiver_state(d, seg);
    }

    /// The state of side `d`, which sent the segment.
    fn update_sender_state(&mut self, d: usize, seg: &TcpSegment<'_>) {
        let f = seg.flags;
        let (syn, ack, fin, rst) = (f.syn(), f.ack(), f.fin(), f.rst());
        let peer_fin = self.sides[1 - d].fin;
        let s = &mut self.sides[d];
        match (s.state(), syn, ack) {
            // A SYN from CLOSED: an active OPEN.
            (None | Some(State::Closed), true, false) => {
                if s.state().is_none() {
                    s.enter(State::Closed);
                }
                s.enter(State::SynSent);
            }
            // A SYN-ACK answers a SYN in LISTEN (or crosses ours).
            (None | Some(State::Listen) | Some(State::SynSent), true, true) => {
                if s.state().is_none() {
                    s.enter(State::Listen);
                }
                s.enter(State::SynReceived);
            }
            // Mid-stream: it was already synchronized.
            (None, false, _) if !rst => s.enter(State::Established),
            _ => {}
        }
        if rst {
            if s.state() == Some(State::Listen) || s.state().is_none() {
                // Nobody listened: a refused SYN.
                s.path.clear();
            }
            s.enter(State::Closed);
        } else if fin {
            // A FIN that does not acknowledge the peer's FIN was sent
            // before that FIN arrived: the FINs crossed (§3.10.7.4,
            // simultaneous close), so this end was in FIN-WAIT-1 and
            // went to CLOSING, not CLOSE-WAIT.
            let crossed = peer_fin.is_some_and(|pf| !(ack && seg.ack > pf));
            match s.state() {
                Some(State::Established | State::SynReceived) => s.enter(State::FinWait1),
                Some(State::CloseWait) if crossed => {
                    s.path.pop();
                    s.enter(State::FinWait1);
                    s.enter(State::Closing);
                }
                Some(State::CloseWait) => s.enter(State::LastAck),
                _ => {}
            }
        }
    }

    /// The state of the peer of side `d`, which receives the segment.
    fn update_receiver_state(&mut self, d: usize, seg: &TcpSegment<'_>) {
        let p = 1 - d;
        let f = seg.flags;
        let (syn, ack, fin, rst) = (f.syn(), f.ack(), f.fin(), f.rst());
        let peer_isn = self.sides[p].isn;
        let my_fin = self.sides[d].fin;
        let r = &mut self.sides[p];
        if rst {
            if r.state()
                .is_some_and(|st| st != State::Listen && st != State::Closed)
            {
                r.enter(State::Closed);
            }
            return;
        }
        if syn && !ack && r.state().is_none() {
            r.enter(State::Listen);
            return;
        }
        let acks_my_syn = ack && r.isn.is_some_and(|isn| seg.ack > isn) && peer_isn.is_some();
        let acks_my_fin = ack && r.fin.is_some_and(|fs| seg.ack > fs);
        match r.state() {
            Some(State::SynSent) if syn && ack && acks_my_syn => r.enter(State::Established),
            Some(State::SynReceived) if acks_my_syn && !syn => r.enter(State::Established),
            None if !syn => r.enter(State::Established),
            _ => {}
        }
        if acks_my_fin {
            match r.state() {
                Some(State::FinWait1) if !fin => r.enter(State::FinWait2),
                Some(State::Closing) => r.enter(State::TimeWait),
                Some(State::LastAck) => r.enter(State::Closed),
                _ => {}
            }
        }
        if fin && my_fin.is_some() {
            match r.state() {
                Some(State::Established | State::SynReceived) => r.enter(State::CloseWait),
                Some(State::FinWait1) if acks_my_fin => r.enter(State::TimeWait),
                Some(State::FinWait1) => r.enter(State::Closing),
                Some(State::FinWait2) => r.enter(State::TimeWait),
                _ => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_row(
        &mut self,
        frame: u64,
        ts_ns: u64,
        d: usize,
        seg: &TcpSegment<'_>,
        verdict: u32,
        before: (Option<State>, Option<State>),
        after: (Option<State>, Option<State>),
    ) {
        if self.ladder.len() >= MAX_LADDER_ROWS {
            self.ladder_omitted += 1;
            return;
        }
        let rel = |side: &Side, n: SeqNumber| side.base.map_or(n.0, |b| n.relative_to(b));
        let mut notes = Vec::new();
        for (bit, name) in VERDICT_NAMES {
            if verdict & bit != 0 {
                notes.push(name);
            }
        }
        if seg.checksum == Checksum::Bad {
            notes.push("bad checksum");
        }
        let changed0 = (before.0 != after.0).then_some(after.0).flatten();
        let changed1 = (before.1 != after.1).then_some(after.1).flatten();
        // Stored physically (side 0 first); `finish` orients them.
        self.ladder.push(LadderRow {
            frame,
            t_us: ts_ns.saturating_sub(self.first_ns) / 1000,
            direction: if d == 0 {
                Direction::C2s
            } else {
                Direction::S2c
            },
            flags: Flags(seg.flags.0),
            seq: rel(&self.sides[d], seg.seq),
            ack: seg.flags.ack().then(|| rel(&self.sides[1 - d], seg.ack)),
            len: seg.payload_len,
            window: seg.window,
            notes,
            client_state: changed0,
            server_state: changed1,
        });
    }

    /// The report at the end of the capture.
    pub fn finish(self) -> ConnectionReport {
        self.finish_as(Ended::EndOfCapture)
    }

    /// The report, with the client decided; `ended` says why now.
    pub fn finish_as(self, ended: Ended) -> ConnectionReport {
        let (client, rule) = self.client_side();
        let server = 1 - client;
        let (c, s) = (&self.sides[client], &self.sides[server]);
        let per = |f: &dyn Fn(&Side) -> u64| PerDirection {
            c2s: f(c),
            s2c: f(s),
        };
        let handshake = self.handshake(client);
        let close = self.close(client);

        let flipped = client != 0;
        let history = self.history.render(client, flipped);
        let conn_state =
            zeek::conn_state(c.zeek, s.zeek, c.unique.total(), s.unique.total(), &history);

        let mut ladder = self.ladder;
        if client != 0 {
            for row in &mut ladder {
                row.direction = match row.direction {
                    Direction::C2s => Direction::S2c,
                    Direction::S2c => Direction::C2s,
                };
                std::mem::swap(&mut row.client_state, &mut row.server_state);
            }
        }

        ConnectionReport {
            index: self.index,
            first_frame: self.first_frame,
            client: c.endpoint,
            server: s.endpoint,
            client_rule: rule,
            start_us: self.first_ns / 1000,
            duration_us: self.last_ns.saturating_sub(self.first_ns) / 1000,
            packets: per(&|x| x.packets),
            bytes: per(&|x| x.unique.total()),
            wire_bytes: per(&|x| x.wire_bytes),
            handshake,
            close,
            retransmissions: self.retransmissions,
            anomalies: self.anomalies,
            zeek: Zeek {
                conn_state,
                history,
            },
            states: States {
                client: c.path.clone(),
                server: s.path.clone(),
            },
            snaplen_cut_frames: self.snaplen_cut,
            offloaded_checksums: self.offloaded,
            tcp_completeness: self.completeness,
            tunnel: self.tunnel,
            ladder,
            ladder_omitted: self.ladder_omitted,
            continued: self.continued,
            ended,
        }
    }

    /// Which side is the client, and by which rule: the SYN's sender, the
    /// peer of the SYN-ACK's sender, the higher port, or the first packet's
    /// sender.
    fn client_side(&self) -> (usize, ClientRule) {
        if let Some(d) = self.opening.syn_from {
            (d, ClientRule::Syn)
        } else if let Some(d) = self.opening.synack_from {
            (1 - d, ClientRule::SynAck)
        } else if self.sides[0].endpoint.port != self.sides[1].endpoint.port {
            let higher = usize::from(self.sides[1].endpoint.port > self.sides[0].endpoint.port);
            (higher, ClientRule::Port)
        } else {
            (0, ClientRule::FirstPacket)
        }
    }

    /// The handshake as seen with `client` as the client side.
    fn handshake(&self, client: usize) -> Handshake {
        let (c, s) = (&self.sides[client], &self.sides[1 - client]);
        let offered = |side: &Side| {
            side.offered.map(|o| Offered {
                mss: o.mss,
                window_scale: o.wscale,
                sack_permitted: o.sack_permitted,
                timestamps: o.timestamps.is_some(),
            })
        };
        let complete = self.opening.complete_ns.is_some();
        let rtt_us = match (self.opening.last_syn_ns, self.opening.complete_ns) {
            // Rounded to the nearest µs, as tshark shows it.
            (Some(a), Some(b)) => Some((b.saturating_sub(a) + 500) / 1000),
            _ => None,
        };
        Handshake {
            complete,
            rtt_us,
            syn_retransmissions: if c.sent_syn_ack {
                0
            } else {
                c.syns.saturating_sub(1)
            },
            synack_retransmissions: if s.sent_syn_ack {
                s.syns.saturating_sub(1)
            } else {
                0
            },
            client_options: offered(c),
            server_options: offered(s),
        }
    }

    /// How the connection closed, and who closed first, with `client` as
    /// the client side.
    fn close(&self, client: usize) -> Close {
        let side_of = |d: usize| {
            if d == client {
                Closer::Client
            } else {
                Closer::Server
            }
        };
        let done = self.fin_exchange_done();
        let kind = match (self.rst_first, self.fin_kind) {
            (Some(d), _) => {
                if d == client {
                    CloseKind::RstClient
                } else {
                    CloseKind::RstServer
                }
            }
            (None, Some(kind)) if done => kind,
            _ => CloseKind::None,
        };
        let first_closer = match kind {
            CloseKind::Simultaneous => Some(Closer::Both),
            CloseKind::RstClient => Some(Closer::Client),
            CloseKind::RstServer => Some(Closer::Server),
            _ => self.first_fin.map(side_of),
        };
        Close { kind, first_closer }
    }
}

/// Wireshark's `tcp.completeness` bits for one segment.
fn completeness_bits(syn: bool, ack: bool, fin: bool, rst: bool, data: bool) -> u8 {
    const SYN: u8 = 1;
    const SYN_ACK: u8 = 2;
    const ACK: u8 = 4;
    const DATA: u8 = 8;
    const FIN: u8 = 16;
    const RST: u8 = 32;
    let mut bits = 0;
    if syn {
        bits |= if ack { SYN_ACK } else { SYN };
    } else if ack {
        bits |= ACK;
    }
    if data {
        bits |= DATA;
    }
    if fin {
        bits |= FIN;
    }
    if rst {
        bits |= RST;
    }
    bits
}

/// Verdict bits and the words the ladder shows for them.
const VERDICT_NAMES: [(u32, &str); 14] = [
    (flag::RETRANSMISSION, "retransmission"),
    (flag::FAST_RETRANSMISSION, "fast retransmission"),
    (flag::SPURIOUS_RETRANSMISSION, "spurious retransmission"),
    (flag::OUT_OF_ORDER, "out-of-order"),
    (flag::DUPLICATE_ACK, "dup ACK"),
    (flag::ZERO_WINDOW, "zero window"),
    (flag::ZERO_WINDOW_PROBE, "zero window probe"),
    (flag::ZERO_WINDOW_PROBE_ACK, "zero window probe ACK"),
    (flag::WINDOW_FULL, "window full"),
    (flag::WINDOW_UPDATE, "window update"),
    (flag::KEEP_ALIVE, "keep-alive"),
    (flag::KEEP_ALIVE_ACK, "keep-alive ACK"),
    (flag::LOST_PACKET, "previous segment not captured"),
    (flag::ACK_LOST_PACKET, "ACKed unseen segment"),
];

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::capture::decap::Checksum;
    use std::net::{IpAddr, Ipv4Addr};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

    /// A segment from the client (`c2s`) or the server.
    pub(in crate::capture::analyze) fn seg(
        c2s: bool,
        flags: Flags,
        seq: u32,
        ack: u32,
        len: u32,
    ) -> TcpSegment<'static> {
        let (src, dst, sp, dp) = if c2s {
            (CLIENT, SERVER, 40000, 8080)
        } else {
            (SERVER, CLIENT, 8080, 40000)
        };
        TcpSegment {
            src,
            dst,
            src_port: sp,
            dst_port: dp,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window: 1000,
            options: TcpOptions::default(),
            payload_len: len,
            payload: &[],
            checksum: Checksum::Good,
            header_cut: false,
            tunnel: None,
        }
    }

    fn run(segments: &[TcpSegment<'static>]) -> ConnectionReport {
        let mut conn = Connection::new(
            0,
            1,
            0,
            &segments[0],
            Options {
                ladder: true,
                ..Options::default()
            },
        );
        for (i, s) in segments.iter().enumerate() {
            conn.on_segment(i as u64 + 1, i as u64 * 1_000_000, s);
        }
        conn.finish()
    }

    fn open() -> Vec<TcpSegment<'static>> {
        vec![
            seg(true, Flags::SYN, 100, 0, 0),
            seg(false, Flags::SYN_ACK, 500, 101, 0),
            seg(true, Flags::ACK, 101, 501, 0),
            seg(true, Flags::PSH_ACK, 101, 501, 5),
            seg(false, Flags::ACK, 501, 106, 0),
        ]
    }

    #[test]
    fn client_first_four_way_close() {
        let mut s = open();
        s.push(seg(true, Flags::FIN_ACK, 106, 501, 0));
        s.push(seg(false, Flags::ACK, 501, 107, 0));
        s.push(seg(false, Flags::FIN_ACK, 501, 107, 0));
        s.push(seg(true, Flags::ACK, 107, 502, 0));
        let r = run(&s);
        assert_eq!(r.client_rule, ClientRule::Syn);
        assert!(r.handshake.complete);
        assert_eq!(r.handshake.rtt_us, Some(2000));
        assert_eq!(r.close.kind, CloseKind::Fin4way);
        assert_eq!(r.close.first_closer, Some(Closer::Client));
        assert_eq!(r.bytes, PerDirection { c2s: 5, s2c: 0 });
        assert_eq!(r.zeek.conn_state, "SF");
        assert_eq!(r.zeek.history, "ShADaFf");
        use State::*;
        assert_eq!(
            r.states.client,
            vec![Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]
        );
        assert_eq!(
            r.states.server,
            vec![Listen, SynReceived, Established, CloseWait, LastAck, Closed]
        );
        assert_eq!(r.retransmissions, 0);
    }

    #[test]
    fn fin_then_fin_ack_is_three_way() {
        let mut s = open();
        s.push(seg(false, Flags::FIN_ACK, 501, 106, 0));
        s.push(seg(true, Flags::FIN_ACK, 106, 502, 0));
        s.push(seg(false, Flags::ACK, 502, 107, 0));
        let r = run(&s);
        assert_eq!(r.close.kind, CloseKind::Fin3way);
        assert_eq!(r.close.first_closer, Some(Closer::Server));
    }

    #[test]
    fn crossing_fins_are_simultaneous() {
        let mut s = open();
        s.push(seg(true, Flags::FIN_ACK, 106, 501, 0));
        s.push(seg(false, Flags::FIN_ACK, 501, 106, 0));
        s.push(seg(true, Flags::ACK, 107, 502, 0));
        s.push(seg(false, Flags::ACK, 502, 107, 0));
        let r = run(&s);
        assert_eq!(r.close.kind, CloseKind::Simultaneous);
        assert_eq!(r.close.first_closer, Some(Closer::Both));
        assert_eq!(r.states.client.last(), Some(&State::TimeWait));
        assert_eq!(r.states.server.last(), Some(&State::TimeWait));
    }

    #[test]
    fn a_refused_syn_is_rst_server_and_rej() {
        let r = run(&[
            seg(true, Flags::SYN, 100, 0, 0),
            seg(false, Flags::RST_ACK, 0, 101, 0),
        ]);
        assert_eq!(r.close.kind, CloseKind::RstServer);
        assert!(!r.handshake.complete);
        assert_eq!(r.zeek.conn_state, "REJ");
        assert_eq!(r.zeek.history, "Sr");
        assert_eq!(r.states.server, vec![State::Closed]);
    }

    #[test]
    fn unanswered_syns_are_retransmissions_and_s0() {
        let r = run(&[
            seg(true, Flags::SYN, 100, 0, 0),
            seg(true, Flags::SYN, 100, 0, 0),
            seg(true, Flags::SYN, 100, 0, 0),
        ]);
        assert_eq!(r.handshake.syn_retransmissions, 2);
        assert_eq!(r.retransmissions, 2);
        assert_eq!(r.close.kind, CloseKind::None);
        assert_eq!(r.zeek.conn_state, "S0");
    }

    #[test]
    fn mid_stream_uses_the_port_rule() {
        let r = run(&[
            seg(false, Flags::PSH_ACK, 501, 106, 10),
            seg(true, Flags::ACK, 106, 511, 0),
        ]);
        assert_eq!(r.client_rule, ClientRule::Port);
        assert_eq!(r.client.port, 40000);
        assert_eq!(r.bytes.s2c, 10);
        assert!(r.zeek.history.starts_with('^'));
        assert_eq!(r.zeek.conn_state, "OTH");
    }

    #[test]
    fn ranges_merge_and_count_once() {
        let mut set = RangeSet::default();
        set.insert(0, 10);
        set.insert(20, 30);
        set.insert(5, 25);
        set.insert(0, 10);
        assert_eq!(set.total(), 30);
        for i in 0..100u64 {
            set.insert(100 + i * 10, 105 + i * 10);
        }
        assert!(set.ranges.len() <= MAX_RANGES);
        // 30 + 100 × 5 bytes seen; the merged holes do not count.
        assert_eq!(set.total(), 530);
    }

    #[test]
    fn many_huge_holes_never_count() {
        let mut set = RangeSet::default();
        // 500 ten-byte pieces 2 GB apart (the odd GBs of 1,000).
        for i in (1..1000u64).step_by(2) {
            set.insert(i << 30, (i << 30) + 10);
        }
        assert!(set.ranges.len() <= MAX_RANGES);
        assert_eq!(set.total(), 5_000);
        // A repeat adds nothing; a hole still known (the newest) counts
        // when filled.
        set.insert(999 << 30, (999 << 30) + 10);
        assert_eq!(set.total(), 5_000);
        set.insert(998 << 30, (998 << 30) + 10);
        assert_eq!(set.total(), 5_010);
        // A forgotten hole filled late is not counted (under, never over).
        set.insert(2 << 30, (2 << 30) + 10);
        assert_eq!(set.total(), 5_010);
    }
}
