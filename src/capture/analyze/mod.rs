//! The connection tracker behind `synack inspect`: TCP segments in, one
//! [`ConnectionReport`] out per connection, as soon as it ends.
//!
//! A connection is a 4-tuple from its SYN; a new SYN with a new ISN on a
//! closed tuple starts a new one (port reuse). State is kept only for live
//! connections, so memory follows the number of connections open at one
//! moment, not the file's size. A connection is reported (and its state
//! dropped) when it closes (FIN exchange done, or a RST), when it is an
//! attempt that saw only SYNs for [`ATTEMPT_TIMEOUT_NS`], when it has been
//! quiet for [`Options::idle_timeout_ns`], or at the end of the capture;
//! all in capture time. What it leaves is a small [`Tombstone`]: a packet
//! of the same tuple that comes later without a new SYN continues the same
//! connection (same index, a report with `continued`), as tshark keeps one
//! `tcp.stream` across gaps of any length. Tombstones are bounded: a closed
//! connection's lasts [`CLOSED_LINGER_NS`], another's [`TOMBSTONE_TTL_NS`],
//! and at most [`MAX_TOMBSTONES`] are kept (the oldest go first).
//!
//! Pure: no I/O, no clock; time comes from the capture.

pub mod conn;
pub mod seq;
pub mod zeek;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::Serialize;

use crate::capture::decap::{TcpSegment, Tunnel};
use crate::tcp::State;

pub use conn::{Connection, Tombstone};

/// A closed connection's tombstone lasts this long after its last packet
/// (capture time): a late retransmission or TIME-WAIT ACK within it
/// continues the connection; anything later starts a new one. Linux's
/// TIME-WAIT, 60 s.
pub const CLOSED_LINGER_NS: u64 = 60_000_000_000;
/// An attempt that saw only SYNs is reported this long after its first SYN
/// (Zeek's `tcp_attempt_delay`, 5 s).
pub const ATTEMPT_TIMEOUT_NS: u64 = 5_000_000_000;
/// The default [`Options::idle_timeout_ns`]: 30 s.
pub const DEFAULT_IDLE_TIMEOUT_NS: u64 = 30_000_000_000;
/// The tombstone of a connection that did not close lasts this long after
/// its last packet (capture time): 1 hour.
pub const TOMBSTONE_TTL_NS: u64 = 3_600_000_000_000;
/// At most this many tombstones are kept (about 10 MB with their index and
/// queue); beyond, the oldest is dropped first.
pub const MAX_TOMBSTONES: usize = 50_000;
/// Ladder rows kept per connection (the rest are counted).
pub const MAX_LADDER_ROWS: usize = 400;

/// What to collect besides the summary, and when to let go.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Keep each segment for the ladder diagram.
    pub ladder: bool,
    /// A connection quiet this long (capture time) is reported and its
    /// state dropped; it continues if its tuple comes back.
    pub idle_timeout_ns: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ladder: false,
            idle_timeout_ns: DEFAULT_IDLE_TIMEOUT_NS,
        }
    }
}

/// Why a connection was reported when it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// The FIN exchange completed, or a RST came.
    Close,
    /// Only SYNs for [`ATTEMPT_TIMEOUT_NS`].
    AttemptTimeout,
    /// Quiet for the idle timeout.
    IdleTimeout,
    /// A SYN with a new ISN started a new connection on its tuple.
    Reused,
    /// The capture ended with it still open.
    EndOfCapture,
}

/// One side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// A count per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerDirection {
    pub c2s: u64,
    pub s2c: u64,
}

impl PerDirection {
    /// The counts of `self` less those of `earlier`.
    pub fn since(self, earlier: PerDirection) -> PerDirection {
        PerDirection {
            c2s: self.c2s.saturating_sub(earlier.c2s),
            s2c: self.s2c.saturating_sub(earlier.s2c),
        }
    }
}

/// The counters of a report, to count only what came after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: PerDirection,
    pub bytes: PerDirection,
    pub wire_bytes: PerDirection,
    pub retransmissions: u64,
    pub anomalies: Anomalies,
    pub snaplen_cut_frames: u64,
    pub offloaded_checksums: u64,
}

impl ConnectionReport {
    pub fn counters(&self) -> Counters {
        Counters {
            packets: self.packets,
            bytes: self.bytes,
            wire_bytes: self.wire_bytes,
            retransmissions: self.retransmissions,
            anomalies: self.anomalies,
            snaplen_cut_frames: self.snaplen_cut_frames,
            offloaded_checksums: self.offloaded_checksums,
        }
    }

    /// Adds a later report of the same connection (`continued`): its
    /// counters, its completeness bits, its end time. The rest stays.
    pub fn absorb(&mut self, later: &ConnectionReport) {
        let add = |a: PerDirection, b: PerDirection| PerDirection {
            c2s: a.c2s + b.c2s,
            s2c: a.s2c + b.s2c,
        };
        self.packets = add(self.packets, later.packets);
        self.bytes = add(self.bytes, later.bytes);
        self.wire_bytes = add(self.wire_bytes, later.wire_bytes);
        self.retransmissions += later.retransmissions;
        let mut sum = self.anomalies;
        let zero = Anomalies::default();
        // a + b = a - (0 - b) does not work unsigned: add field by field.
        let b = later.anomalies.since(&zero);
        sum.retransmission += b.retransmission;
        sum.fast_retransmission += b.fast_retransmission;
        sum.spurious_retransmission += b.spurious_retransmission;
        sum.out_of_order += b.out_of_order;
        sum.duplicate_ack += b.duplicate_ack;
        sum.zero_window += b.zero_window;
        sum.zero_window_probe += b.zero_window_probe;
        sum.zero_window_probe_ack += b.zero_window_probe_ack;
        sum.window_full += b.window_full;
        sum.window_update += b.window_update;
        sum.keep_alive += b.keep_alive;
        sum.keep_alive_ack += b.keep_alive_ack;
        sum.lost_segment += b.lost_segment;
        sum.ack_lost_segment += b.ack_lost_segment;
        sum.bad_checksum += b.bad_checksum;
        self.anomalies = sum;
        self.snaplen_cut_frames += later.snaplen_cut_frames;
        self.offloaded_checksums += later.offloaded_checksums;
        self.tcp_completeness |= later.tcp_completeness;
        self.ladder.extend(later.ladder.iter().cloned());
        self.ladder_omitted += later.ladder_omitted;
        let end = (later.start_us + later.duration_us).max(self.start_us + self.duration_us);
        self.duration_us = end.saturating_sub(self.start_us);
    }

    /// The reports of a whole capture with each connection's `continued`
    /// parts absorbed into its first, in order of index.
    pub fn merge_parts(mut reports: Vec<ConnectionReport>) -> Vec<ConnectionReport> {
        reports.sort_by_key(|r| (r.index, r.continued));
        let mut merged: Vec<ConnectionReport> = Vec::with_capacity(reports.len());
        for r in reports {
            match merged.last_mut() {
                Some(first) if first.index == r.index => first.absorb(&r),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// Keeps only what came after `earlier` in the counters.
    pub fn subtract(&mut self, earlier: &Counters) {
        self.packets = self.packets.since(earlier.packets);
        self.bytes = self.bytes.since(earlier.bytes);
        self.wire_bytes = self.wire_bytes.since(earlier.wire_bytes);
        self.retransmissions = self.retransmissions.saturating_sub(earlier.retransmissions);
        self.anomalies = self.anomalies.since(&earlier.anomalies);
        self.snaplen_cut_frames = self
            .snaplen_cut_frames
            .saturating_sub(earlier.snaplen_cut_frames);
        self.offloaded_checksums = self
            .offloaded_checksums
            .saturating_sub(earlier.offloaded_checksums);
    }
}

/// How the client was told from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRule {
    /// It sent the SYN.
    Syn,
    /// It received the SYN-ACK (the SYN was not captured).
    SynAck,
    /// No handshake seen: the side with the higher (ephemeral) port.
    Port,
    /// Same ports: the side that sent the first packet.
    FirstPacket,
}

/// The options one side offered on its SYN (or SYN-ACK).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Offered {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
}

/// The opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Handshake {
    /// SYN, SYN-ACK and the ACK that acknowledges the SYN-ACK were seen.
    pub complete: bool,
    /// From the last SYN before the SYN-ACK to the completing ACK
    /// (tshark's `tcp.analysis.initial_rtt`).
    pub rtt_us: Option<u64>,
    /// Repeated SYNs (same ISN).
    pub syn_retransmissions: u32,
    /// Repeated SYN-ACKs (same ISN).
    pub synack_retransmissions: u32,
    pub client_options: Option<Offered>,
    pub server_options: Option<Offered>,
}

/// How the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseKind {
    /// FIN, an ACK (or data) for it, later the other FIN and its ACK.
    #[serde(rename = "fin_4way")]
    Fin4way,
    /// FIN, then the other side's FIN+ACK, then the last ACK.
    #[serde(rename = "fin_3way")]
    Fin3way,
    /// The two FINs crossed.
    Simultaneous,
    /// The client sent the first RST before the FIN exchange completed.
    RstClient,
    /// The server did (including a refused SYN).
    RstServer,
    /// Still open, unanswered, or cut.
    None,
}

impl CloseKind {
    pub fn name(self) -> &'static str {
        match self {
            CloseKind::Fin4way => "fin_4way",
            CloseKind::Fin3way => "fin_3way",
            CloseKind::Simultaneous => "simultaneous",
            CloseKind::RstClient => "rst_client",
            CloseKind::RstServer => "rst_server",
            CloseKind::None => "none",
        }
    }
}

/// Who started the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    Client,
    Server,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Close {
    pub kind: CloseKind,
    pub first_closer: Option<Closer>,
}

/// Frames per anomaly, by Wireshark's rules (bad checksums: our own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Anomalies {
    /// Every frame tshark marks `tcp.analysis.retransmission` (plain, fast
    /// and spurious ones).
    pub retransmission: u64,
    pub fast_retransmission: u64,
    pub spurious_retransmission: u64,
    pub out_of_order: u64,
    pub duplicate_ack: u64,
    pub zero_window: u64,
    pub zero_window_probe: u64,
    pub zero_window_probe_ack: u64,
    pub window_full: u64,
    pub window_update: u64,
    pub keep_alive: u64,
    pub keep_alive_ack: u64,
    /// "Previous segment not captured".
    pub lost_segment: u64,
    /// "ACKed segment that wasn't captured".
    pub ack_lost_segment: u64,
    pub bad_checksum: u64,
}

impl Anomalies {
    /// The counts of `self` less those of `earlier`.
    pub fn since(&self, earlier: &Anomalies) -> Anomalies {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        Anomalies {
            retransmission: d(self.retransmission, earlier.retransmission),
            fast_retransmission: d(self.fast_retransmission, earlier.fast_retransmission),
            spurious_retransmission: d(
                self.spurious_retransmission,
                earlier.spurious_retransmission,
            ),
            out_of_order: d(self.out_of_order, earlier.out_of_order),
            duplicate_ack: d(self.duplicate_ack, earlier.duplicate_ack),
            zero_window: d(self.zero_window, earlier.zero_window),
            zero_window_probe: d(self.zero_window_probe, earlier.zero_window_probe),
            zero_window_probe_ack: d(self.zero_window_probe_ack, earlier.zero_window_probe_ack),
            window_full: d(self.window_full, earlier.window_full),
            window_update: d(self.window_update, earlier.window_update),
            keep_alive: d(self.keep_alive, earlier.keep_alive),
            keep_alive_ack: d(self.keep_alive_ack, earlier.keep_alive_ack),
            lost_segment: d(self.lost_segment, earlier.lost_segment),
            ack_lost_segment: d(self.ack_lost_segment, earlier.ack_lost_segment),
            bad_checksum: d(self.bad_checksum, earlier.bad_checksum),
        }
    }

    /// `(name, count)` for every kind, in the JSON's order.
    pub fn iter(&self) -> [(&'static str, u64); 15] {
        [
            ("retransmission", self.retransmission),
            ("fast_retransmission", self.fast_retransmission),
            ("spurious_retransmission", self.spurious_retransmission),
            ("out_of_order", self.out_of_order),
            ("duplicate_ack", self.duplicate_ack),
            ("zero_window", self.zero_window),
            ("zero_window_probe", self.zero_window_probe),
            ("zero_window_probe_ack", self.zero_window_probe_ack),
            ("window_full", self.window_full),
            ("window_update", self.window_update),
            ("keep_alive", self.keep_alive),
            ("keep_alive_ack", self.keep_alive_ack),
            ("lost_segment", self.lost_segment),
            ("ack_lost_segment", self.ack_lost_segment),
            ("bad_checksum", self.bad_checksum),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Zeek {
    pub conn_state: &'static str,
    pub history: String,
}

/// The RFC 9293 states each end went through, as the wire shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct States {
    pub client: Vec<State>,
    pub server: Vec<State>,
}

/// Which way a ladder row goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    C2s,
    S2c,
}

/// One segment of the ladder diagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LadderRow {
    /// Frame number in the file (1-based, as Wireshark counts).
    pub frame: u64,
    /// Since the connection's first packet.
    pub t_us: u64,
    pub direction: Direction,
    #[serde(serialize_with = "flags_as_text")]
    pub flags: crate::wire::Flags,
    /// Relative to the sender's ISN (Wireshark's relative numbers).
    pub seq: u32,
    /// Relative to the receiver's ISN; `None` without the ACK flag.
    pub ack: Option<u32>,
    pub len: u32,
    pub window: u16,
    /// Anomaly names (Wireshark's verdicts, bad checksum).
    pub notes: Vec<&'static str>,
    /// The client's and the server's state after this segment, when it
    /// changed.
    pub client_state: Option<State>,
    pub server_state: Option<State>,
}

/// Flags as Wireshark spells them (`SYN, ACK`).
fn flags_as_text<S: serde::Serializer>(
    flags: &crate::wire::Flags,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(flags)
}

/// Everything `inspect` says about one connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionReport {
    /// Order of the first packet in the file (0-based).
    pub index: u64,
    /// 1-based frame number of the first packet.
    pub first_frame: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub client_rule: ClientRule,
    /// Capture time of the first and last packet, µs since the epoch.
    pub start_us: u64,
    pub duration_us: u64,
    pub packets: PerDirection,
    /// Unique payload bytes (the union of sequence ranges).
    pub bytes: PerDirection,
    /// Payload bytes on the wire, retransmissions included.
    pub wire_bytes: PerDirection,
    pub handshake: Handshake,
    pub close: Close,
    /// Frames Wireshark's rules mark as a retransmission of any kind.
    pub retransmissions: u64,
    pub anomalies: Anomalies,
    pub zeek: Zeek,
    pub states: States,
    /// Frames whose TCP header or payload the snaplen cut.
    pub snaplen_cut_frames: u64,
    /// Frames whose checksum field holds only the pseudo-header sum
    /// (captured before checksum offload filled it in: not counted bad).
    pub offloaded_checksums: u64,
    /// Wireshark's `tcp.completeness` bits: 1 SYN, 2 SYN-ACK, 4 ACK,
    /// 8 data, 16 FIN, 32 RST (each seen at least once).
    pub tcp_completeness: u8,
    /// The tunnel its first segment came through (VXLAN, GRE, …), with
    /// the outer addresses; absent when it was not tunnelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    #[serde(skip)]
    pub ladder: Vec<LadderRow>,
    /// Segments beyond [`MAX_LADDER_ROWS`].
    #[serde(skip)]
    pub ladder_omitted: u64,
    /// This report continues connection `index`, reported earlier (idle,
    /// an attempt, or closed and then late packets): its counters cover
    /// only the packets since.
    pub continued: bool,
    /// Why it was reported when it was.
    pub ended: Ended,
}

/// A 64-bit multiplicative hash (FxHash's), enough for 4-tuples and much
/// faster than SipHash on this path.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.add(word);
        }
        for b in chunks.remainder() {
            self.add(u64::from(*b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The unordered 4-tuple: the lower (address, port) first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
}

impl Key {
    /// The key and whether the segment goes from `lo` to `hi`.
    pub fn of(seg: &TcpSegment<'_>) -> (Key, bool) {
        let a = (seg.src, seg.src_port);
        let b = (seg.dst, seg.dst_port);
        if a <= b {
            (Key { lo: a, hi: b }, true)
        } else {
            (Key { lo: b, hi: a }, false)
        }
    }
}

/// SYNs kept per attempt before it becomes a full [`Connection`].
const ATTEMPT_SYNS: usize = 4;

/// A new connection that has seen only SYNs (no ACK, no payload) from one
/// side, kept as those segments (about 100 bytes each) rather than as a
/// full [`Connection`] (about 1 KB): a SYN scan or flood holds many of
/// them. Its segments are replayed into a [`Connection`] when anything
/// else comes, or when it is reported, so the result is the same.
struct Attempt {
    index: u64,
    syns: Vec<(u64, u64, TcpSegment<'static>)>,
}

impl Attempt {
    fn first_ns(&self) -> u64 {
        self.syns.first().map_or(0, |s| s.1)
    }

    fn last_ns(&self) -> u64 {
        self.syns.iter().map(|s| s.1).max().unwrap_or(0)
    }

    /// Whether `seg` is one more SYN of it: same sender, same ISN, no
    /// payload, and room left.
    fn takes(&self, seg: &TcpSegment<'_>) -> bool {
        let Some((_, _, first)) = self.syns.first() else {
            return false;
        };
        seg.flags == first.flags
            && seg.payload_len == 0
            && seg.seq == first.seq
            && seg.src == first.src
            && seg.src_port == first.src_port
            && self.syns.len() < ATTEMPT_SYNS
    }
}

/// A SYN (no ACK) without payload, owned.
fn owned_syn(seg: &TcpSegment<'_>) -> Option<TcpSegment<'static>> {
    let plain = seg.flags.syn() && !seg.flags.ack() && !seg.flags.fin() && !seg.flags.rst();
    (plain && seg.payload_len == 0).then(|| TcpSegment {
        payload: &[],
        ..seg.clone()
    })
}

/// A live connection: an attempt of SYNs only, or a full one.
enum Live {
    Attempt(Box<Attempt>),
    Full(Box<Connection>),
}

impl Live {
    fn index(&self) -> u64 {
        match self {
            Live::Attempt(a) => a.index,
            Live::Full(c) => c.index(),
        }
    }

    /// The full connection (an attempt's SYNs replayed).
    fn into_full(self, options: Options) -> Box<Connection> {
        match self {
            Live::Full(c) => c,
            Live::Attempt(a) => {
                let (frame, ts, first) = &a.syns[0];
                let mut conn = Box::new(Connection::new(a.index, *frame, *ts, first, options));
                for (frame, ts, seg) in &a.syns {
                    conn.on_segment(*frame, *ts, seg);
                }
                conn
            }
        }
    }
}

/// Every live connection of one capture (closed ones linger, already
/// reported), and the tombstones of those evicted.
pub struct Tracker {
    live: HashMap<Key, Live, BuildHasherDefault<FxHasher>>,
    tombs: HashMap<Key, Tombstone, BuildHasherDefault<FxHasher>>,
    /// Tombstones in order of creation: (last packet, key). Entries whose
    /// tombstone was replaced or used are skipped when they come out.
    tomb_order: VecDeque<(u64, Key)>,
    options: Options,
    next_index: u64,
    since_sweep: u64,
}

impl Tracker {
    pub fn new(options: Options) -> Tracker {
        Tracker {
            live: HashMap::default(),
            tombs: HashMap::default(),
            tomb_order: VecDeque::new(),
            options,
            next_index: 0,
            since_sweep: 0,
        }
    }

    /// Connections currently held (closed ones lingering included).
    pub fn open_connections(&self) -> usize {
        self.live.len()
    }

    /// Connections seen so far (distinct indices).
    pub fn connections(&self) -> u64 {
        self.next_index
    }

    /// Tombstones currently held.
    pub fn tombstones(&self) -> usize {
        self.tombs.len()
    }

    /// Why `live` should be let go at `now_ns`, if it should.
    fn expired(&self, live: &Live, now_ns: u64) -> Option<Ended> {
        let conn = match live {
            Live::Full(conn) => conn,
            Live::Attempt(a) => {
                return if now_ns.saturating_sub(a.first_ns()) >= ATTEMPT_TIMEOUT_NS {
                    Some(Ended::AttemptTimeout)
                } else if now_ns.saturating_sub(a.last_ns()) >= self.options.idle_timeout_ns {
                    Some(Ended::IdleTimeout)
                } else {
                    None
                };
            }
        };
        let quiet = now_ns.saturating_sub(conn.last_ts_ns());
        if conn.is_reported() {
            (quiet >= CLOSED_LINGER_NS).then_some(Ended::Close)
        } else if conn.is_attempt()
            && now_ns.saturating_sub(conn.first_ts_ns()) >= ATTEMPT_TIMEOUT_NS
        {
            Some(Ended::AttemptTimeout)
        } else if quiet >= self.options.idle_timeout_ns {
            Some(Ended::IdleTimeout)
        } else {
            None
        }
    }

    /// Lets `conn` go: a closed one reports its late packets, if any; any
    /// other is reported and leaves its tombstone.
    fn retire(
        &mut self,
        key: Key,
        live: Live,
        ended: Ended,
        done: &mut dyn FnMut(ConnectionReport),
    ) {
        let conn = live.into_full(self.options);
        if conn.is_reported() {
            if let Some(late) = conn.finish_late() {
                done(late);
            }
            return;
        }
        let tomb = conn.tombstone();
        self.tomb_order.push_back((tomb.last_ns, key));
        self.tombs.insert(key, tomb);
        done(conn.finish_as(ended));
        self.trim_tombstones();
    }

    /// Drops tombstones past [`TOMBSTONE_TTL_NS`].
    fn expire_tombstones(&mut self, now_ns: u64) {
        while let Some(&(last, _)) = self.tomb_order.front() {
            if now_ns.saturating_sub(last) < TOMBSTONE_TTL_NS {
                break;
            }
            self.drop_oldest_tombstone();
        }
    }

    /// Keeps at most [`MAX_TOMBSTONES`] (and as many stale queue entries).
    fn trim_tombstones(&mut self) {
        while self.tombs.len() > MAX_TOMBSTONES || self.tomb_order.len() > 2 * MAX_TOMBSTONES {
            if !self.drop_oldest_tombstone() {
                break;
            }
        }
    }

    fn drop_oldest_tombstone(&mut self) -> bool {
        let Some((last, key)) = self.tomb_order.pop_front() else {
            return false;
        };
        if self.tombs.get(&key).is_some_and(|t| t.last_ns == last) {
            self.tombs.remove(&key);
        }
        true
    }

    /// Feeds one segment (frame number 1-based, time in ns); connections
    /// that end go to `done` at once.
    pub fn on_segment(
        &mut self,
        frame: u64,
        ts_ns: u64,
        seg: &TcpSegment<'_>,
        done: &mut dyn FnMut(ConnectionReport),
    ) {
        let (key, _) = Key::of(seg);
        let fresh_syn = seg.flags.syn() && !seg.flags.ack();
        // A live connection that a SYN replaces, or that should have been
        // let go before this packet (what a sweep would have done had it
        // run in between), goes first.
        if let Some(live) = self.live.get(&key) {
            let ended = self.expired(live, ts_ns);
            if let Some(ended) = ended {
                if let Some(live) = self.live.remove(&key) {
                    self.retire(key, live, ended, done);
                }
            }
        }
        // One more SYN of an attempt; anything else makes it a full one.
        match self.live.get_mut(&key) {
            Some(Live::Attempt(a)) if a.takes(seg) => {
                if let Some(syn) = owned_syn(seg) {
                    a.syns.push((frame, ts_ns, syn));
                }
                self.count_and_sweep(ts_ns, done);
                return;
            }
            Some(Live::Attempt(_)) => {
                if let Some(live) = self.live.remove(&key) {
                    let full = live.into_full(self.options);
                    self.live.insert(key, Live::Full(full));
                }
            }
            _ => {}
        }
        if let Some(Live::Full(conn)) = self.live.get(&key) {
            if fresh_syn && conn.is_reused_by(seg) {
                if let Some(live) = self.live.remove(&key) {
                    self.retire(key, live, Ended::Reused, done);
                }
            }
        }
        let live = match self.live.get_mut(&key) {
            Some(live) => live,
            None => {
                let live = self.begin(key, frame, ts_ns, seg);
                self.live.entry(key).or_insert(live)
            }
        };
        let Live::Full(conn) = live else {
            // A new attempt: its SYN is kept.
            self.count_and_sweep(ts_ns, done);
            return;
        };
        conn.on_segment(frame, ts_ns, seg);
        if conn.is_closed() && !conn.is_reported() {
            done(conn.report_close());
        }
        self.count_and_sweep(ts_ns, done);
    }

    /// What a segment of no live connection begins: the connection a
    /// recent tombstone leaves off (unless a SYN reuses its ports), an
    /// attempt (a SYN), or a connection seen from its middle.
    fn begin(&mut self, key: Key, frame: u64, ts_ns: u64, seg: &TcpSegment<'_>) -> Live {
        let fresh_syn = seg.flags.syn() && !seg.flags.ack();
        let continues = self.tombs.remove(&key).filter(|t| {
            ts_ns.saturating_sub(t.last_ns) < TOMBSTONE_TTL_NS
                && !(fresh_syn && t.is_reused_by(seg))
        });
        if let Some(tomb) = continues {
            return Live::Full(Box::new(Connection::resume(
                &tomb,
                frame,
                ts_ns,
                seg,
                self.options,
            )));
        }
        let index = self.next_index;
        self.next_index += 1;
        if let Some(syn) = owned_syn(seg) {
            return Live::Attempt(Box::new(Attempt {
                index,
                syns: vec![(frame, ts_ns, syn)],
            }));
        }
        Live::Full(Box::new(Connection::new(
            index,
            frame,
            ts_ns,
            seg,
            self.options,
        )))
    }

    /// Counts a packet; sweeps when it is time.
    fn count_and_sweep(&mut self, ts_ns: u64, done: &mut dyn FnMut(ConnectionReport)) {
        self.since_sweep += 1;
        // Sweep about every quarter of the live connections' count in
        // packets, so the cost per packet stays constant.
        if self.since_sweep >= (self.live.len() as u64 / 4).max(1024) {
            self.since_sweep = 0;
            self.sweep(ts_ns, done);
        }
    }

    /// Lets go of the live connections past their time, and drops the
    /// tombstones past theirs.
    fn sweep(&mut self, now_ns: u64, done: &mut dyn FnMut(ConnectionReport)) {
        let mut expired: Vec<(u64, Key, Ended)> = self
            .live
            .iter()
            .filter_map(|(k, c)| self.expired(c, now_ns).map(|e| (c.index(), *k, e)))
            .collect();
        expired.sort_unstable_by_key(|(index, _, _)| *index);
        for (_, key, ended) in expired {
            if let Some(conn) = self.live.remove(&key) {
                self.retire(key, conn, ended, done);
            }
        }
        self.expire_tombstones(now_ns);
    }

    /// Reports every remaining connection (and the late packets of closed
    /// ones), in order of their first packet.
    pub fn finish(self, done: &mut dyn FnMut(ConnectionReport)) {
        let mut rest: Vec<Live> = self.live.into_values().collect();
        rest.sort_unstable_by_key(Live::index);
        let options = self.options;
        for live in rest {
            let conn = live.into_full(options);
            if conn.is_reported() {
                if let Some(late) = conn.finish_late() {
                    done(late);
                }
            } else {
                done(conn.finish_as(Ended::EndOfCapture));
            }
        }
    }
}

/// Frames of one link type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkTypeCount {
    pub link_type: u32,
    pub name: &'static str,
    pub packets: u64,
    /// Whether synack decodes it (others are counted and skipped).
    pub supported: bool,
}

/// What reading one file gave, besides its connections.
#[derive(Debug)]
pub struct FileSummary {
    pub packets: u64,
    /// Connections (distinct indices; a continued one counts once).
    pub connections: u64,
    pub tcp_packets: u64,
    pub link_types: Vec<LinkTypeCount>,
    /// Findings that are not failures: unsupported link types, cut or
    /// malformed headers, fragments.
    pub warnings: Vec<String>,
    /// The record or block where reading stopped, when the file did not
    /// end cleanly.
    pub error: Option<crate::capture::reader::CaptureError>,
}

/// The name of a LINKTYPE_* value.
pub fn link_type_name(link_type: u32) -> &'static str {
    use crate::capture::link::linktype as lt;
    match link_type {
        lt::NULL => "NULL",
        lt::ETHERNET => "ETHERNET",
        lt::RAW | lt::RAW_DLT12 | lt::RAW_DLT14 => "RAW",
        lt::LOOP => "LOOP",
        lt::LINUX_SLL => "LINUX_SLL",
        lt::IPV4 => "IPV4",
        lt::IPV6 => "IPV6",
        lt::LINUX_SLL2 => "LINUX_SLL2",
        lt::PPP => "PPP",
        lt::PPP_HDLC => "PPP_HDLC",
        lt::C_HDLC => "C_HDLC",
        lt::ARCNET_BSD => "ARCNET_BSD",
        lt::ARCNET_LINUX => "ARCNET_LINUX",
        lt::JUNIPER_ETHER => "JUNIPER_ETHER",
        lt::IPOIB => "IPOIB",
        _ => "unsupported",
    }
}

/// Packets between two calls of the progress callback.
pub const PROGRESS_EVERY: u64 = 16_384;

/// Reads a whole capture and reports every connection to `done` as it
/// ends.
pub fn run<R: std::io::Read>(
    reader: crate::capture::reader::CaptureReader<R>,
    options: Options,
    done: &mut dyn FnMut(ConnectionReport),
) -> FileSummary {
    run_with_progress(reader, options, done, &mut |_| {})
}

/// Counts a frame of `link_type` in `link_types` (`last_link`: the entry
/// of the frame before, the one to try first).
fn count_link_type(
    link_types: &mut Vec<LinkTypeCount>,
    last_link: &mut Option<usize>,
    link_type: u32,
) {
    let slot = match *last_link {
        Some(i) if link_types[i].link_type == link_type => i,
        _ => {
            let i = link_types
                .iter()
                .position(|l| l.link_type == link_type)
                .unwrap_or_else(|| {
                    let name = link_type_name(link_type);
                    link_types.push(LinkTypeCount {
                        link_type,
                        name,
                        packets: 0,
                        supported: name != "unsupported",
                    });
                    link_types.len() - 1
                });
            *last_link = Some(i);
            i
        }
    };
    link_types[slot].packets += 1;
}

/// The warnings about what was read past: `held` fragmented datagrams not
/// captured whole, `orphans` fragments without their first, frames of
/// unsupported link types, and the `skips` (kind, count, first frame).
fn read_past(
    held: u64,
    orphans: u64,
    link_types: &[LinkTypeCount],
    skips: Vec<(crate::capture::link::Skip, u64, u64)>,
) -> Vec<String> {
    use crate::capture::link::Skip;
    let mut warnings = Vec::new();
    if held > 0 {
        warnings.push(format!(
            "{held} fragmented TCP datagram(s) not captured whole: their first fragment's \
             segment is counted with the bytes it carries"
        ));
    }
    if orphans > 0 {
        warnings.push(format!(
            "{orphans} IP fragment(s) of TCP datagrams whose first fragment was not captured"
        ));
    }
    for l in link_types {
        if !l.supported {
            warnings.push(format!(
                "{} frame(s) of link type {} skipped (not decoded)",
                l.packets, l.link_type
            ));
        }
    }
    for (skip, count, first) in skips {
        let what = match skip {
            Skip::Truncated => "with a link, IP or TCP header cut short".to_string(),
            Skip::Malformed => "with a malformed header".to_string(),
            Skip::Fragment => "that are later IP fragments (no TCP header: the first \
                               fragment's segment is tracked)"
                .to_string(),
            Skip::Unopened(what, code) => {
                format!("in an encapsulation not opened ({what} 0x{code:04x})")
            }
            _ => "skipped".to_string(),
        };
        warnings.push(format!("{count} frame(s) {what}, first: frame {first}"));
    }
    warnings
}

/// [`run`], calling `progress` with the byte offset reached every
/// [`PROGRESS_EVERY`] packets.
pub fn run_with_progress<R: std::io::Read>(
    mut reader: crate::capture::reader::CaptureReader<R>,
    options: Options,
    done: &mut dyn FnMut(ConnectionReport),
    progress: &mut dyn FnMut(u64),
) -> FileSummary {
    use crate::capture::decap;
    use crate::capture::link::Skip;
    use crate::capture::reader::Event;

    let mut tracker = Tracker::new(options);
    let mut packets = 0u64;
    let mut tcp_packets = 0u64;
    let mut link_types: Vec<LinkTypeCount> = Vec::new();
    let mut skips: Vec<(Skip, u64, u64)> = Vec::new();
    let mut error = None;
    let mut last_link: Option<usize> = None;
    let mut defrag = decap::Defrag::new();
    while let Some(event) = reader.next_event() {
        let record = match event {
            Ok(Event::Packet(record)) => record,
            Ok(Event::Other) => continue,
            Err(err) => {
                error = Some(err);
                break;
            }
        };
        packets += 1;
        count_link_type(&mut link_types, &mut last_link, record.link_type);
        // Several segments when the frame carries sFlow samples; none
        // while a fragmented datagram is incomplete.
        let at = decap::Position {
            frame: packets,
            ts_ns: record.ts_ns,
        };
        decap::segments_reassembling(
            record.link_type,
            record.data,
            &mut defrag,
            at,
            &mut |segment| match segment {
                Ok(seg) => {
                    tcp_packets += 1;
                    tracker.on_segment(packets, record.ts_ns, &seg, done);
                }
                Err(Skip::NotIp | Skip::NotTcp | Skip::UnsupportedLink(_)) => {}
                Err(skip) => match skips.iter_mut().find(|(s, _, _)| *s == skip) {
                    Some(entry) => entry.1 += 1,
                    None => skips.push((skip, 1, packets)),
                },
            },
        );
        if packets % PROGRESS_EVERY == 0 {
            progress(reader.offset());
        }
    }
    let mut held = 0u64;
    let orphans = defrag.finish(&mut |at, seg| {
        held += 1;
        tcp_packets += 1;
        tracker.on_segment(at.frame, at.ts_ns, &seg, done);
    });
    let connections = tracker.connections();
    tracker.finish(done);
    let mut warnings = reader.warnings();
    warnings.extend(read_past(held, orphans, &link_types, skips));
    FileSummary {
        packets,
        connections,
        tcp_packets,
        link_types,
        warnings,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::conn::tests::seg;
    use super::*;
    use crate::wire::Flags;

    const SECOND: u64 = 1_000_000_000;

    /// One complete connection, client first, starting at `t` with the
    /// client's ISN `isn`.
    fn feed_connection(
        tracker: &mut Tracker,
        t: u64,
        isn: u32,
        done: &mut dyn FnMut(ConnectionReport),
    ) {
        let script = [
            seg(true, Flags::SYN, isn, 0, 0),
            seg(false, Flags::SYN_ACK, 500, isn + 1, 0),
            seg(true, Flags::ACK, isn + 1, 501, 0),
            seg(true, Flags::FIN_ACK, isn + 1, 501, 0),
            seg(false, Flags::FIN_ACK, 501, isn + 2, 0),
            seg(true, Flags::ACK, isn + 2, 502, 0),
        ];
        for (i, s) in script.iter().enumerate() {
            tracker.on_segment(1, t + i as u64 * 1000, s, done);
        }
    }

    /// `seg` moved to client port `port`.
    fn on_port(mut s: TcpSegment<'static>, port: u16) -> TcpSegment<'static> {
        if s.src_port == 8080 {
            s.dst_port = port;
        } else {
            s.src_port = port;
        }
        s
    }

    #[test]
    fn a_connection_is_reported_as_soon_as_it_closes() {
        let mut tracker = Tracker::new(Options::default());
        let mut reports = Vec::new();
        for i in 0..5_000u32 {
            let t = u64::from(i) * SECOND;
            let script = [
                seg(true, Flags::SYN, 100, 0, 0),
                seg(false, Flags::SYN_ACK, 500, 101, 0),
                seg(true, Flags::ACK, 101, 501, 0),
                seg(true, Flags::FIN_ACK, 101, 501, 0),
                seg(false, Flags::FIN_ACK, 501, 102, 0),
                seg(true, Flags::ACK, 102, 502, 0),
            ];
            for (j, s) in script.into_iter().enumerate() {
                let s = on_port(s, 10_000 + i as u16);
                tracker.on_segment(1, t + j as u64 * 1000, &s, &mut |r| reports.push(r));
            }
            assert_eq!(reports.len(), i as usize + 1);
            // Closed connections linger 60 s (plus a sweep interval).
            let bound = 60 + 1024 / 6 + 2;
            assert!(
                tracker.open_connections() <= bound,
                "{}",
                tracker.open_connections()
            );
        }
        let indices: Vec<u64> = reports.iter().map(|r| r.index).collect();
        assert!(indices.windows(2).all(|w| w[0] < w[1]));
        assert!(reports.iter().all(|r| r.ended == Ended::Close));
    }

    #[test]
    fn the_same_tuple_and_isn_after_the_linger_is_a_new_connection() {
        let mut tracker = Tracker::new(Options::default());
        let mut reports = Vec::new();
        feed_connection(&mut tracker, 0, 100, &mut |r| reports.push(r));
        // Within the linger, the same SYN continues the old one.
        feed_connection(&mut tracker, 10 * SECOND, 100, &mut |r| reports.push(r));
        // After it, an identical connection is a new one.
        feed_connection(&mut tracker, 200 * SECOND, 100, &mut |r| reports.push(r));
        tracker.finish(&mut |r| reports.push(r));
        let seen: Vec<(u64, bool, u64)> = reports
            .iter()
            .map(|r| (r.index, r.continued, r.packets.c2s + r.packets.s2c))
            .collect();
        // Reported at its close, then its late packets (6 repeats), then
        // the new one.
        assert_eq!(seen, [(0, false, 6), (0, true, 6), (1, false, 6)]);
        assert!(reports[1].retransmissions > 0);
    }

    #[test]
    fn an_attempt_of_syns_only_is_reported_after_5_s() {
        let mut tracker = Tracker::new(Options::default());
        let mut reports = Vec::new();
        let syn = seg(true, Flags::SYN, 100, 0, 0);
        tracker.on_segment(1, 0, &syn, &mut |r| reports.push(r));
        // Other traffic, enough packets for a sweep, up to 6 s.
        for i in 0..3_000u64 {
            let other = on_port(seg(true, Flags::ACK, 1, 1, 10), 50_000);
            tracker.on_segment(2 + i, SECOND + i * 2_000_000, &other, &mut |r| {
                reports.push(r)
            });
        }
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].index, 0);
        assert_eq!(reports[0].ended, Ended::AttemptTimeout);
        assert_eq!(reports[0].close.kind, CloseKind::None);
        assert_eq!(tracker.open_connections(), 1);
        // Its retransmission (same ISN) continues it; a new ISN is new.
        tracker.on_segment(3_000, 7 * SECOND, &syn, &mut |r| reports.push(r));
        let new = seg(true, Flags::SYN, 9_000, 0, 0);
        tracker.on_segment(3_001, 20 * SECOND, &new, &mut |r| reports.push(r));
        tracker.finish(&mut |r| reports.push(r));
        let seen: Vec<(u64, bool, Ended)> = reports
            .iter()
            .map(|r| (r.index, r.continued, r.ended))
            .collect();
        assert_eq!(
            seen,
            [
                (0, false, Ended::AttemptTimeout),
                (0, true, Ended::AttemptTimeout),
                (1, false, Ended::EndOfCapture),
                (2, false, Ended::EndOfCapture),
            ]
        );
    }

    #[test]
    fn a_gap_of_10_minutes_mid_stream_continues_the_connection() {
        let mut tracker = Tracker::new(Options::default());
        let mut reports = Vec::new();
        let open = [
            seg(true, Flags::SYN, 100, 0, 0),
            seg(false, Flags::SYN_ACK, 500, 101, 0),
            seg(true, Flags::ACK, 101, 501, 0),
            seg(true, Flags::PSH_ACK, 101, 501, 5),
        ];
        for (i, s) in open.iter().enumerate() {
            tracker.on_segment(i as u64 + 1, i as u64 * 1000, s, &mut |r| reports.push(r));
        }
        let later = 600 * SECOND;
        let rest = [
            seg(false, Flags::PSH_ACK, 501, 106, 7),
            seg(true, Flags::FIN_ACK, 106, 508, 0),
            seg(false, Flags::FIN_ACK, 508, 107, 0),
            seg(true, Flags::ACK, 107, 509, 0),
        ];
        for (i, s) in rest.iter().enumerate() {
            tracker.on_segment(i as u64 + 5, later + i as u64 * 1000, s, &mut |r| {
                reports.push(r)
            });
        }
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!((reports[0].index, reports[0].continued), (0, false));
        assert_eq!(reports[0].ended, Ended::IdleTimeout);
        assert_eq!(reports[0].close.kind, CloseKind::None);
        assert_eq!((reports[1].index, reports[1].continued), (0, true));
        assert_eq!(reports[1].ended, Ended::Close);
        assert_eq!(reports[1].close.kind, CloseKind::Fin3way);
        // The client is still the SYN's sender, the bytes still relative.
        assert_eq!(reports[1].client_rule, ClientRule::Syn);
        assert_eq!(reports[1].bytes.s2c, 7);
        assert_eq!(tracker.connections(), 1);
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut tracker = Tracker::new(Options::default());
        let mut reported = 0u64;
        // SYN-only attempts from many addresses, 20,000 a second.
        let n = MAX_TOMBSTONES as u64 + 30_000;
        for i in 0..n {
            let mut s = seg(true, Flags::SYN, 100, 0, 0);
            s.src = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            tracker.on_segment(i + 1, i * 50_000, &s, &mut |_| reported += 1);
        }
        assert!(tracker.tombstones() <= MAX_TOMBSTONES);
        // At most 5 s of attempts (plus a sweep interval) are live.
        assert!(
            tracker.open_connections() < 130_000,
            "{}",
            tracker.open_connections()
        );
        tracker.finish(&mut |_| reported += 1);
        assert_eq!(reported, n);
    }
}
