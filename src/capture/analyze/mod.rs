//! The connection tracker behind `synack inspect`: TCP segments in, one
//! [`ConnectionReport`] out per connection.
//!
//! A connection is a 4-tuple from its SYN; a new SYN with a new ISN on a
//! closed tuple starts a new one (port reuse). State is kept only for open
//! connections: a closed one (FIN exchange done or RST) that stays quiet
//! for [`CLOSED_LINGER_NS`] of capture time is reported and dropped, so
//! memory follows the number of open connections, not the file's size.
//!
//! Pure: no I/O, no clock; time comes from the capture.

pub mod conn;
pub mod seq;
pub mod zeek;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::Serialize;

use crate::capture::decap::{TcpSegment, Tunnel};
use crate::tcp::State;

pub use conn::Connection;

/// A closed connection is kept this long after its last packet (capture
/// time), to catch late retransmissions and TIME-WAIT ACKs: Linux's
/// TIME-WAIT, 60 s.
pub const CLOSED_LINGER_NS: u64 = 60_000_000_000;
/// Ladder rows kept per connection (the rest are counted).
pub const MAX_LADDER_ROWS: usize = 400;

/// What to collect besides the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Keep each segment for the ladder diagram.
    pub ladder: bool,
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

/// Every open (or recently closed) connection of one capture.
pub struct Tracker {
    conns: HashMap<Key, Connection, BuildHasherDefault<FxHasher>>,
    options: Options,
    next_index: u64,
    since_sweep: u64,
}

impl Tracker {
    pub fn new(options: Options) -> Tracker {
        Tracker {
            conns: HashMap::default(),
            options,
            next_index: 0,
            since_sweep: 0,
        }
    }

    /// Connections currently held.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Feeds one segment (frame number 1-based, time in ns); finished
    /// connections go to `done`.
    pub fn on_segment(
        &mut self,
        frame: u64,
        ts_ns: u64,
        seg: &TcpSegment<'_>,
        done: &mut dyn FnMut(ConnectionReport),
    ) {
        let (key, _) = Key::of(seg);
        let fresh_syn = seg.flags.syn() && !seg.flags.ack();
        match self.conns.get_mut(&key) {
            // A new connection on the tuple: a SYN with a new ISN after the
            // old one ended, or anything after the old one's linger ran out
            // (what a sweep would have done had it run in between).
            Some(conn)
                if (fresh_syn && conn.is_reused_by(seg))
                    || (conn.is_closed()
                        && ts_ns.saturating_sub(conn.last_ts_ns()) >= CLOSED_LINGER_NS) =>
            {
                let index = self.next_index;
                self.next_index += 1;
                let new = Connection::new(index, frame, ts_ns, seg, self.options);
                if let Some(old) = self.conns.insert(key, new) {
                    done(old.finish());
                }
                if let Some(conn) = self.conns.get_mut(&key) {
                    conn.on_segment(frame, ts_ns, seg);
                }
            }
            Some(conn) => conn.on_segment(frame, ts_ns, seg),
            None => {
                let index = self.next_index;
                self.next_index += 1;
                let mut conn = Connection::new(index, frame, ts_ns, seg, self.options);
                conn.on_segment(frame, ts_ns, seg);
                self.conns.insert(key, conn);
            }
        }
        self.since_sweep += 1;
        // Sweep about as often as there are connections, so the cost per
        // packet stays constant.
        if self.since_sweep >= (self.conns.len() as u64).max(4096) {
            self.since_sweep = 0;
            self.sweep(ts_ns, done);
        }
    }

    /// Reports and drops closed connections quiet for [`CLOSED_LINGER_NS`].
    fn sweep(&mut self, now_ns: u64, done: &mut dyn FnMut(ConnectionReport)) {
        let mut expired: Vec<(u64, Key)> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.is_closed() && now_ns.saturating_sub(c.last_ts_ns()) >= CLOSED_LINGER_NS
            })
            .map(|(k, c)| (c.index(), *k))
            .collect();
        expired.sort_unstable_by_key(|(index, _)| *index);
        for (_, key) in expired {
            if let Some(conn) = self.conns.remove(&key) {
                done(conn.finish());
            }
        }
    }

    /// Reports every remaining connection, in order of their first packet.
    pub fn finish(self, done: &mut dyn FnMut(ConnectionReport)) {
        let mut rest: Vec<Connection> = self.conns.into_values().collect();
        rest.sort_unstable_by_key(Connection::index);
        for conn in rest {
            done(conn.finish());
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

/// Reads a whole capture and reports every connection to `done`.
pub fn run<R: std::io::Read>(
    mut reader: crate::capture::reader::CaptureReader<R>,
    options: Options,
    done: &mut dyn FnMut(ConnectionReport),
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
        let slot = match last_link {
            Some(i) if link_types[i].link_type == record.link_type => i,
            _ => {
                let i = link_types
                    .iter()
                    .position(|l| l.link_type == record.link_type)
                    .unwrap_or_else(|| {
                        let name = link_type_name(record.link_type);
                        link_types.push(LinkTypeCount {
                            link_type: record.link_type,
                            name,
                            packets: 0,
                            supported: name != "unsupported",
                        });
                        link_types.len() - 1
                    });
                last_link = Some(i);
                i
            }
        };
        link_types[slot].packets += 1;
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
    }
    let mut held = 0u64;
    let orphans = defrag.finish(&mut |at, seg| {
        held += 1;
        tcp_packets += 1;
        tracker.on_segment(at.frame, at.ts_ns, &seg, done);
    });
    tracker.finish(done);
    let mut warnings = reader.warnings();
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
    for l in &link_types {
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
    FileSummary {
        packets,
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

    #[test]
    fn closed_connections_past_their_linger_are_reported_and_dropped() {
        let mut tracker = Tracker::new(Options::default());
        let mut reports = Vec::new();
        // 5,000 closed connections, one a second (on 5,000 tuples: the
        // server port differs), far more packets than a sweep interval.
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
            for (j, mut s) in script.into_iter().enumerate() {
                if s.src_port == 8080 {
                    s.src_port = 10_000 + i as u16;
                } else {
                    s.dst_port = 10_000 + i as u16;
                }
                tracker.on_segment(1, t + j as u64 * 1000, &s, &mut |r| reports.push(r));
            }
            // At most the last 60 s of connections, plus one sweep interval.
            assert!(tracker.open_connections() <= 60 + 4096 / 6 + 1);
        }
        assert!(
            reports.len() >= 5_000 - 60 - 4096 / 6 - 1,
            "{}",
            reports.len()
        );
        tracker.finish(&mut |r| reports.push(r));
        assert_eq!(reports.len(), 5_000);
        // Reported in the order they started.
        let indices: Vec<u64> = reports.iter().map(|r| r.index).collect();
        assert!(indices.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_same_tuple_and_isn_after_the_linger_is_a_new_connection() {
        let mut tracker = Tracker::new(Options::default());
        let mut reports = Vec::new();
        feed_connection(&mut tracker, 0, 100, &mut |r| reports.push(r));
        // Within the linger, the same SYN is a retransmission of the old one.
        feed_connection(&mut tracker, 10 * SECOND, 100, &mut |r| reports.push(r));
        assert_eq!(tracker.open_connections(), 1);
        // After it, an identical connection is a new one, even though no
        // sweep ran in between.
        feed_connection(&mut tracker, 200 * SECOND, 100, &mut |r| reports.push(r));
        tracker.finish(&mut |r| reports.push(r));
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.close.kind == CloseKind::Fin3way));
    }
}
