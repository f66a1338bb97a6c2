//! `synack watch`: live narration of every TCP connection (and, when
//! asked, UDP flow) on an interface.
//!
//! [`Watch`] is the pure model: `(timestamp, frame bytes)` in, [`Event`]s
//! and the frame's pcapng comment out. It feeds each TCP segment to the
//! same per-connection tracker `inspect` uses
//! ([`crate::capture::analyze::Connection`]), so the RFC 9293 states of both
//! ends are inferred from the wire exactly as `inspect` infers them from a
//! capture, and narrates each segment with [`crate::narrate`]. Rendering is
//! in [`render`]; the privileged capture loop, thin, in [`live`].

pub mod live;
pub mod render;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::capture::analyze::{self, CloseKind, Connection, ConnectionReport, Key};
use crate::capture::decap::{self, Checksum, TcpSegment};
use crate::capture::link::{self, Network};
use crate::client::{Direction, Note, What};
use crate::narrate::{self, Narrator};
use crate::report::SegmentLine;
use crate::tcp::State;
use crate::wire::Flags;

/// A connection that ended (FIN exchange done or RST) stays known this long
/// (capture time) for its late segments: a retransmitted FIN, the ACK from
/// TIME-WAIT. Linux's TIME-WAIT, 60 s, as `inspect` keeps it.
pub const LINGER_NS: u64 = analyze::CLOSED_LINGER_NS;
/// At most this many connections (and as many UDP flows) are held; beyond,
/// the one quiet for the longest is ended ("evicted"), so memory stays
/// bounded on a busy interface.
pub const MAX_TRACKED: usize = 16_384;
/// Ended connections are swept out after this many frames.
const SWEEP_EVERY: u64 = 1024;

/// What to produce besides the segment events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Narrate UDP datagrams too.
    pub udp: bool,
    /// Keep each connection's rows for a ladder diagram at its end.
    pub ladder: bool,
    /// One plain-language sentence per segment.
    pub explain: bool,
    /// Build each frame's pcapng comment.
    pub comments: bool,
}

/// Why a connection's end was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Its FIN exchange completed, or a RST ended it.
    Closed,
    /// Still open when the watch stopped.
    Stopped,
    /// Dropped to keep memory bounded ([`MAX_TRACKED`]).
    Evicted,
    /// A new connection (a new SYN) took over its 4-tuple.
    Replaced,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Stopped => "stopped",
            EndReason::Evicted => "evicted",
            EndReason::Replaced => "replaced",
        }
    }
}

/// One TCP segment, narrated.
#[derive(Clone, Debug)]
pub struct Segment {
    /// The connection's id (1, 2, … in order of first appearance).
    pub conn: u64,
    /// Since the watch's first frame.
    pub t_ns: u64,
    pub dir: Direction,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: Flags,
    pub seq: u32,
    pub seq_rel: u32,
    /// `None` without the ACK flag.
    pub ack: Option<u32>,
    pub ack_rel: Option<u32>,
    pub len: u32,
    pub window: u16,
    pub retransmission: bool,
    /// The RFC 9293 transitions this segment caused at each end.
    pub client: Vec<(State, State)>,
    pub server: Vec<(State, State)>,
    /// Each end's state after it (`None`: nothing known yet).
    pub client_state: Option<State>,
    pub server_state: Option<State>,
    /// The `--explain` sentence.
    pub explain: Option<String>,
}

/// One UDP datagram.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// The flow's id (u1, u2, …: its own numbering).
    pub flow: u64,
    pub t_ns: u64,
    /// `c2s`: from the end that sent the flow's first datagram.
    pub dir: Direction,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub len: u32,
    /// The payload's first bytes as text (lossy).
    pub text: String,
}

/// A connection's end.
#[derive(Clone, Debug)]
pub struct End {
    pub conn: u64,
    pub t_ns: u64,
    pub reason: EndReason,
    pub report: ConnectionReport,
}

/// What the model says.
#[derive(Clone, Debug)]
pub enum Event {
    /// A connection's first segment is next.
    Open {
        conn: u64,
        t_ns: u64,
        client: SocketAddr,
        server: SocketAddr,
    },
    Segment(Segment),
    End(Box<End>),
    Datagram(Datagram),
}

/// Counts for the final summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Since the first frame, to the last one.
    pub t_ns: u64,
    pub frames: u64,
    pub segments: u64,
    pub connections: u64,
    /// Connections whose FIN exchange completed or that a RST ended.
    pub closed: u64,
    /// Still open when the watch stopped.
    pub open: u64,
    pub retransmissions: u64,
    pub datagrams: u64,
    pub flows: u64,
    /// Frames that were neither a TCP segment nor (with --udp) a UDP
    /// datagram: cut, malformed, IP fragments, other protocols.
    pub skipped: u64,
}

/// What one frame gave.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub events: Vec<Event>,
    /// The frame's pcapng comment (when [`Options::comments`]).
    pub comment: Option<String>,
}

struct Tracked {
    id: u64,
    conn: Connection,
    /// The client's side as [`Connection::side_of`] numbers it.
    client: usize,
    narrator: Narrator,
    ended: bool,
}

/// A UDP flow: the unordered 4-tuple, the first sender first.
struct Flow {
    id: u64,
    first: SocketAddr,
    last_ns: u64,
}

/// The live model of everything seen on the interface.
pub struct Watch {
    options: Options,
    first_ns: Option<u64>,
    last_ns: u64,
    conns: HashMap<Key, Tracked>,
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    next_conn: u64,
    next_flow: u64,
    since_sweep: u64,
    summary: Summary,
}

/// The unordered pair, lower first.
fn flow_key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// The transitions from `before` to `after` (a state path that grew, or
/// whose tail the tracker revised): from the last state before through
/// every state the path gained. A path that starts here starts quietly.
fn transitions(before: &[State], after: &[State]) -> Vec<(State, State)> {
    let common = before.iter().zip(after).take_while(|(a, b)| a == b).count();
    if common == before.len() && common == after.len() {
        return Vec::new();
    }
    let mut prev = before.last().copied();
    let mut out = Vec::new();
    for &state in &after[common..] {
        if let Some(from) = prev {
            if from != state {
                out.push((from, state));
            }
        }
        prev = Some(state);
    }
    out
}

impl Watch {
    pub fn new(options: Options) -> Watch {
        Watch {
            options,
            first_ns: None,
            last_ns: 0,
            conns: HashMap::new(),
            flows: HashMap::new(),
            next_conn: 1,
            next_flow: 1,
            since_sweep: 0,
            summary: Summary::default(),
        }
    }

    /// Connections (ended ones lingering included) currently held.
    pub fn tracked(&self) -> usize {
        self.conns.len()
    }

    /// One Ethernet frame captured at `ts_ns` (ns since the epoch).
    pub fn on_frame(&mut self, ts_ns: u64, frame: &[u8]) -> Outcome {
        let first = *self.first_ns.get_or_insert(ts_ns);
        let t_ns = ts_ns.saturating_sub(first);
        self.last_ns = self.last_ns.max(t_ns);
        self.summary.frames += 1;
        let mut out = Outcome::default();
        // The IP packet right behind the Ethernet header (VLAN tags
        // skipped): watch reads its own interface, no tunnels to open.
        let ip = match link::network(link::linktype::ETHERNET, frame) {
            Ok(Network::EtherType(link::ETHER_TYPE_IPV4 | link::ETHER_TYPE_IPV6, ip)) => ip,
            _ => {
                self.summary.skipped += 1;
                return out;
            }
        };
        match decap::tcp_segment(ip) {
            Ok(seg) => self.on_segment(t_ns, &seg, &mut out),
            Err(_) if self.options.udp => self.on_datagram(t_ns, ip, &mut out),
            Err(_) => self.summary.skipped += 1,
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.sweep(t_ns);
        }
        out
    }

    fn on_segment(&mut self, t_ns: u64, seg: &TcpSegment<'_>, out: &mut Outcome) {
        self.summary.segments += 1;
        let (key, _) = Key::of(seg);
        let fresh_syn = seg.flags.syn() && !seg.flags.ack();
        let replace = self.conns.get(&key).is_some_and(|t| {
            (fresh_syn && t.conn.is_reused_by(seg))
                || (t.conn.is_closed() && t_ns.saturating_sub(t.conn.last_ts_ns()) >= LINGER_NS)
        });
        if replace {
            if let Some(old) = self.conns.remove(&key) {
                self.end(old, t_ns, EndReason::Replaced, &mut out.events);
            }
        }
        if !self.conns.contains_key(&key) {
            if self.conns.len() >= MAX_TRACKED {
                self.evict_one(t_ns, &mut out.events);
            }
            let tracked = self.open(t_ns, seg);
            let (c, s) = endpoints(&tracked, seg);
            out.events.push(Event::Open {
                conn: tracked.id,
                t_ns,
                client: c,
                server: s,
            });
            self.conns.insert(key, tracked);
        }
        let Some(tracked) = self.conns.get_mut(&key) else {
            return;
        };
        let frame = self.summary.frames;
        let segment = narrate_segment(tracked, frame, t_ns, seg, self.options, &mut out.comment);
        self.summary.retransmissions += u64::from(segment.retransmission);
        out.events.push(Event::Segment(segment));
        if !tracked.ended && tracked.conn.is_closed() {
            tracked.ended = true;
            let id = tracked.id;
            let report = tracked.conn.clone().finish();
            self.summary.closed += 1;
            out.events.push(Event::End(Box::new(End {
                conn: id,
                t_ns,
                reason: EndReason::Closed,
                report,
            })));
        }
    }

    fn open(&mut self, t_ns: u64, seg: &TcpSegment<'_>) -> Tracked {
        let id = self.next_conn;
        self.next_conn += 1;
        self.summary.connections += 1;
        let options = analyze::Options {
            ladder: self.options.ladder,
            ..analyze::Options::default()
        };
        // The client, decided at the first segment as `inspect` decides it
        // at the end: the SYN's sender, the SYN-ACK's receiver, else the
        // higher (ephemeral) port.
        let client = if seg.flags.syn() && !seg.flags.ack() {
            0
        } else if seg.flags.syn() {
            1
        } else {
            usize::from(seg.dst_port > seg.src_port)
        };
        Tracked {
            id,
            conn: Connection::new(id, self.summary.frames, t_ns, seg, options),
            client,
            narrator: Narrator::new(),
            ended: false,
        }
    }

    fn end(&mut self, tracked: Tracked, t_ns: u64, reason: EndReason, events: &mut Vec<Event>) {
        if tracked.ended {
            return;
        }
        if reason == EndReason::Stopped {
            self.summary.open += 1;
        }
        events.push(Event::End(Box::new(End {
            conn: tracked.id,
            t_ns,
            reason,
            report: tracked.conn.finish(),
        })));
    }

    /// Ends the connection quiet for the longest (an ended one first).
    fn evict_one(&mut self, t_ns: u64, events: &mut Vec<Event>) {
        let victim = self
            .conns
            .iter()
            .min_by_key(|(_, t)| (!t.ended, t.conn.last_ts_ns()))
            .map(|(k, _)| *k);
        if let Some(tracked) = victim.and_then(|k| self.conns.remove(&k)) {
            self.end(tracked, t_ns, EndReason::Evicted, events);
        }
    }

    /// Forgets ended connections past their linger, and quiet UDP flows.
    fn sweep(&mut self, t_ns: u64) {
        self.conns
            .retain(|_, t| !(t.ended && t_ns.saturating_sub(t.conn.last_ts_ns()) >= LINGER_NS));
        self.flows
            .retain(|_, f| t_ns.saturating_sub(f.last_ns) < LINGER_NS);
    }

    fn on_datagram(&mut self, t_ns: u64, ip: &[u8], out: &mut Outcome) {
        let Some((src, dst, payload, len)) = udp_datagram(ip) else {
            self.summary.skipped += 1;
            return;
        };
        self.summary.datagrams += 1;
        let key = flow_key(src, dst);
        if !self.flows.contains_key(&key) && self.flows.len() >= MAX_TRACKED {
            if let Some(oldest) = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_ns)
                .map(|(k, _)| *k)
            {
                self.flows.remove(&oldest);
            }
        }
        let next = &mut self.next_flow;
        let summary = &mut self.summary;
        let flow = self.flows.entry(key).or_insert_with(|| {
            let id = *next;
            *next += 1;
            summary.flows += 1;
            Flow {
                id,
                first: src,
                last_ns: t_ns,
            }
        });
        flow.last_ns = t_ns;
        let dir = if src == flow.first {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let text: String = String::from_utf8_lossy(&payload[..payload.len().min(40)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        if self.options.comments {
            out.comment = Some(format!(
                "UDP flow u{}: {len} bytes {}",
                flow.id,
                match dir {
                    Direction::ClientToServer => "first sender → peer",
                    Direction::ServerToClient => "peer → first sender",
                }
            ));
        }
        out.events.push(Event::Datagram(Datagram {
            flow: flow.id,
            t_ns,
            dir,
            src,
            dst,
            len,
            text,
        }));
    }

    /// The watch stopped: every connection still open ends, then the
    /// summary.
    pub fn finish(mut self) -> (Vec<Event>, Summary) {
        let mut events = Vec::new();
        let mut rest: Vec<Tracked> = self.conns.drain().map(|(_, t)| t).collect();
        rest.sort_unstable_by_key(|t| t.id);
        let t_ns = self.last_ns;
        for tracked in rest {
            self.end(tracked, t_ns, EndReason::Stopped, &mut events);
        }
        self.summary.t_ns = self.last_ns;
        (events, self.summary)
    }
}

/// (client, server) of a tracked connection, from one of its segments.
fn endpoints(t: &Tracked, seg: &TcpSegment<'_>) -> (SocketAddr, SocketAddr) {
    let src = SocketAddr::new(seg.src, seg.src_port);
    let dst = SocketAddr::new(seg.dst, seg.dst_port);
    if t.conn.side_of(seg) == t.client {
        (src, dst)
    } else {
        (dst, src)
    }
}

/// Feeds `seg` to the connection's tracker and says what it did.
fn narrate_segment(
    t: &mut Tracked,
    frame: u64,
    t_ns: u64,
    seg: &TcpSegment<'_>,
    options: Options,
    comment: &mut Option<String>,
) -> Segment {
    let d = t.conn.side_of(seg);
    let (ci, si) = (t.client, 1 - t.client);
    let before = [
        t.conn.state_path(ci).to_vec(),
        t.conn.state_path(si).to_vec(),
    ];
    let retransmissions = t.conn.retransmissions();
    t.conn.on_segment(frame, t_ns, seg);
    let client = transitions(&before[0], t.conn.state_path(ci));
    let server = transitions(&before[1], t.conn.state_path(si));
    let client_state = t.conn.state_path(ci).last().copied();
    let server_state = t.conn.state_path(si).last().copied();
    let dir = if d == ci {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let ack_flag = seg.flags.ack();
    let segment = Segment {
        conn: t.id,
        t_ns,
        dir,
        src: SocketAddr::new(seg.src, seg.src_port),
        dst: SocketAddr::new(seg.dst, seg.dst_port),
        flags: Flags(seg.flags.0),
        seq: seg.seq.0,
        seq_rel: t.conn.relative(d, seg.seq),
        ack: ack_flag.then_some(seg.ack.0),
        ack_rel: ack_flag.then(|| t.conn.relative(1 - d, seg.ack)),
        len: seg.payload_len,
        window: seg.window,
        retransmission: t.conn.retransmissions() > retransmissions,
        client,
        server,
        client_state,
        server_state,
        explain: None,
    };
    if options.explain || options.comments {
        let line = segment_line(&segment, seg);
        let ctx = t.narrator.step(&line);
        if options.comments {
            *comment = Some(format!("#{} {}", t.id, narrate::comment(&line, &ctx)));
        }
        if options.explain {
            return Segment {
                explain: Some(narrate::explain(&line, &ctx).to_string()),
                ..segment
            };
        }
    }
    segment
}

/// The segment as the narration module reads it: the client's transitions
/// and both ends' inferred states.
fn segment_line(s: &Segment, seg: &TcpSegment<'_>) -> SegmentLine {
    SegmentLine {
        t_ns: i64::try_from(s.t_ns).unwrap_or(i64::MAX),
        dir: s.dir,
        flags: s.flags,
        seq: s.seq,
        seq_rel: s.seq_rel,
        ack: s.ack,
        ack_rel: s.ack_rel,
        len: s.len as usize,
        win: s.window,
        options: seg.options,
        delivered: true,
        held: false,
        retransmission: s.retransmission,
        client: s.client.clone(),
        server: s.server.clone(),
        client_state: s.client_state.unwrap_or(State::Closed),
        server_state: s.server_state,
        kernel_server_state: None,
        tell_kernel_ahead: false,
        note: Note::new(if s.retransmission {
            What::SeenAgain
        } else {
            What::Nothing
        }),
        checksums_ok: seg.checksum != Checksum::Bad,
    }
}

/// Source, destination, captured payload and its length (from the UDP
/// header) of the UDP datagram in an IP packet.
fn udp_datagram(ip: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8], u32)> {
    use etherparse::{LaxIpSlice, LaxIpSlice as L};
    let (slice, _) = LaxIpSlice::from_slice(ip).ok()?;
    let (src, dst, proto, payload): (IpAddr, IpAddr, _, &[u8]) = match &slice {
        L::Ipv4(v4) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
            v4.payload().ip_number,
            v4.payload().payload,
        ),
        L::Ipv6(v6) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
            v6.payload().ip_number,
            v6.payload().payload,
        ),
    };
    if proto != etherparse::IpNumber::UDP || payload.len() < 8 {
        return None;
    }
    if matches!(&slice, L::Ipv4(v4) if v4.payload().fragmented) {
        return None;
    }
    let sport = u16::from_be_bytes([payload[0], payload[1]]);
    let dport = u16::from_be_bytes([payload[2], payload[3]]);
    let declared = u32::from(u16::from_be_bytes([payload[4], payload[5]])).saturating_sub(8);
    let data = &payload[8..];
    Some((
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
        data,
        declared,
    ))
}

/// Whether a connection's close is one of the orderly ones.
pub fn orderly(kind: CloseKind) -> bool {
    matches!(
        kind,
        CloseKind::Fin4way | CloseKind::Fin3way | CloseKind::Simultaneous
    )
}
