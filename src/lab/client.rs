//! synack's hand-built client: the loop `Link::recv` → `wire::parse` →
//! `Connection::on_segment` → `wire::emit` → `Link::send`, plus ARP.
//!
//! Generic over [`Link`] and [`Observer`], so tests drive it with a scripted
//! peer and no privileges. Every frame in and out is handed to the observer
//! (which records and narrates it off this thread).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use crate::net::link::Link;
use crate::report::Direction;
use crate::tcp::{self, Connection, Event, SendReason, State};
use crate::wire::{self, ArpOp, ArpRepr, Frame, Ipv4Repr, MacAddr, SegmentRepr};

/// How often an unanswered ARP request is repeated.
pub const ARP_RETRY: Duration = Duration::from_secs(1);
/// An upper bound on loop turns, whatever the clock says (each turn waits
/// for a frame or at most a millisecond).
pub const MAX_TURNS: u64 = 10_000_000;

/// What the client does.
#[derive(Clone, Debug)]
pub struct ClientParams {
    pub local_ip: Ipv4Addr,
    pub remote_ip: Ipv4Addr,
    pub conn: tcp::Config,
    /// Sent once the connection is established.
    pub data: Vec<u8>,
    /// Close after this many reply bytes arrived (0: once our data is
    /// acknowledged).
    pub expect_reply: usize,
    /// The whole exchange must end within this.
    pub timeout: Duration,
    /// The server's MAC when already known (skips ARP).
    pub server_mac: Option<MacAddr>,
    /// Close only after the peer's FIN (the server closes first).
    pub wait_for_peer_close: bool,
}

/// When the client sends its FIN (or RST). The lab uses
/// [`Closing::AsParams`]; `synack connect` cannot know how long the reply
/// is, so it waits for the reply to go quiet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Closing {
    /// As [`ClientParams`] says: after `expect_reply` bytes arrived, or
    /// after the peer's FIN with `wait_for_peer_close`.
    #[default]
    AsParams,
    /// Once our data is acknowledged and nothing arrived for `quiet` (or
    /// the peer closed): FIN, or RST with `abort` (RFC 9293 §3.10.5).
    WhenQuiet { quiet: Duration, abort: bool },
}

/// A frame that went in or out, and what it meant.
#[derive(Clone, Debug)]
pub struct FrameRecord {
    pub dir: Direction,
    pub at: Instant,
    pub wall: SystemTime,
    pub bytes: Vec<u8>,
    pub kind: FrameKind,
}

#[derive(Clone, Debug)]
pub enum FrameKind {
    Arp(ArpRepr),
    Segment {
        segment: SegmentRepr,
        checksums_ok: bool,
        /// The client's state changes this frame caused or came with.
        changes: Vec<(State, State)>,
        state_after: State,
        /// Why it was sent ("handshake ACK") or what it was.
        note: String,
    },
    /// Not for this connection (other protocols, other ports).
    Noise,
}

/// Sees everything the client does, as it happens: a received segment
/// before the client answers it, a sent one right after it left.
/// Implementations run on the client's hot path.
pub trait Observer {
    fn frame(&mut self, record: FrameRecord);
    /// A state change that no frame carried (the end of TIME-WAIT).
    fn note(&mut self, at: Instant, text: String, changes: Vec<(State, State)>);
    /// Whether the user asked to stop (Ctrl-C).
    fn interrupted(&self) -> bool {
        false
    }
}

/// How a run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no ARP reply from {ip} within {after:?}")]
    NoArpReply { ip: Ipv4Addr, after: Duration },
    #[error("gave up in {state} after {after:?} (--timeout)")]
    Timeout { state: State, after: Duration },
    #[error("gave up in {state}: no acknowledgment after {retries} retransmissions")]
    GaveUp { state: State, retries: u32 },
    #[error("connection refused: the server answered the SYN with RST")]
    Refused { at: Instant },
    #[error("the server reset the connection in {state}")]
    Reset { state: State },
    #[error("{from} answered with ICMP destination unreachable, code {code} ({})", icmp_unreachable_meaning(*code))]
    Unreachable {
        from: Ipv4Addr,
        code: u8,
        at: Instant,
    },
    #[error("interrupted in {state}")]
    Interrupted { state: State },
    #[error("cannot {0}")]
    InvalidState(#[from] tcp::InvalidState),
    #[error("building a frame: {0}")]
    Wire(#[from] wire::WireError),
    #[error("on the link: {0}")]
    Io(#[from] std::io::Error),
}

/// What a completed exchange measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub first_syn_at: Option<Instant>,
    /// SYN (the last one sent) → SYN-ACK.
    pub handshake_rtt: Option<Duration>,
    /// The SYN-ACK → our ACK of it.
    pub syn_to_ack_sent: Option<Duration>,
    /// The first SYN sent → the ACK that completes the handshake sent.
    pub handshake_done: Option<Duration>,
    /// The server's MAC, as ARP found it.
    pub server_mac: Option<MacAddr>,
    pub last_sent_at: Option<Instant>,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub received: Vec<u8>,
    pub frames: usize,
    pub retransmissions: usize,
    pub final_state: Option<State>,
}

/// The client: one connection over one link.
pub struct Client<'a, L: Link, O: Observer> {
    link: &'a mut L,
    observer: &'a mut O,
    params: ClientParams,
    conn: Connection,
    local_mac: MacAddr,
    remote_mac: Option<MacAddr>,
    ip_ident: u16,
    outcome: Outcome,
    last_syn_at: Option<Instant>,
    /// Whom to ARP for when the server is behind a gateway.
    next_hop: Option<Ipv4Addr>,
    closing: Closing,
    /// The data as separate sends (one segment each, or more above the
    /// MSS); empty: `params.data` in one send.
    chunks: Vec<Vec<u8>>,
    /// The last segment of this connection that arrived.
    last_rx_at: Option<Instant>,
}

impl<'a, L: Link, O: Observer> Client<'a, L, O> {
    pub fn new(link: &'a mut L, observer: &'a mut O, params: ClientParams, now: Instant) -> Self {
        let local_mac = link.mac();
        let conn = Connection::new(params.conn.clone(), now);
        let remote_mac = params.server_mac;
        Client {
            link,
            observer,
            params,
            conn,
            local_mac,
            remote_mac,
            ip_ident: 0,
            outcome: Outcome::default(),
            last_syn_at: None,
            next_hop: None,
            closing: Closing::AsParams,
            chunks: Vec::new(),
            last_rx_at: None,
        }
    }

    /// ARP for `gateway` instead of the server (a route through a gateway).
    pub fn via(mut self, gateway: Ipv4Addr) -> Self {
        self.next_hop = Some(gateway);
        self
    }

    /// When to close; see [`Closing`].
    pub fn closing(mut self, closing: Closing) -> Self {
        self.closing = closing;
        self
    }

    /// Send each chunk with its own send call once established, instead
    /// of `params.data` (what `--data a --data b` asks for).
    pub fn data_chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.chunks = chunks;
        self
    }

    /// Resolves the server's MAC, runs handshake, data, teardown and
    /// TIME-WAIT, and returns what it measured.
    ///
    /// # Errors
    /// See [`ClientError`]: the server refused, reset, stayed silent, or
    /// the link failed.
    pub fn run(mut self) -> Result<Outcome, ClientError> {
        let start = Instant::now();
        let deadline = start + self.params.timeout;
        self.resolve_server(deadline)?;
        let events = self.conn.connect(Instant::now())?;
        self.dispatch(events, None)?;
        let mut data_sent = false;
        let mut close_sent = false;
        for _ in 0..MAX_TURNS {
            if self.observer.interrupted() {
                return Err(ClientError::Interrupted {
                    state: self.conn.state(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    state: self.conn.state(),
                    after: self.params.timeout,
                });
            }
            let mut wait_until = self.conn.poll_at().map_or(deadline, |at| at.min(deadline));
            if let (Closing::WhenQuiet { quiet, .. }, Some(last), false) =
                (self.closing, self.last_rx_at, close_sent)
            {
                wait_until = wait_until.min((last + quiet).max(now));
            }
            if let Some(bytes) = self.link.recv(wait_until)? {
                self.on_frame(bytes)?;
            }
            let now = Instant::now();
            if self.conn.poll_at().is_some_and(|at| now >= at) {
                let events = self.conn.poll(now);
                self.dispatch(events, None)?;
            }
            match self.conn.state() {
                State::Established if !data_sent => {
                    data_sent = true;
                    let chunks = if self.chunks.is_empty() {
                        vec![self.params.data.clone()]
                    } else {
                        self.chunks.clone()
                    };
                    for data in chunks.iter().filter(|d| !d.is_empty()) {
                        let events = self.conn.send(Instant::now(), data)?;
                        self.outcome.bytes_sent += data.len();
                        self.dispatch(events, None)?;
                    }
                }
                State::Established | State::CloseWait if data_sent && !close_sent => {
                    let acked = self.conn.snd_una() == self.conn.snd_nxt();
                    let replied = self.outcome.bytes_received >= self.params.expect_reply;
                    let peer_closed = self.conn.state() == State::CloseWait;
                    let (may_close, abort) = match self.closing {
                        Closing::AsParams if self.params.wait_for_peer_close => {
                            (peer_closed, false)
                        }
                        Closing::AsParams => (replied || peer_closed, false),
                        Closing::WhenQuiet { quiet, abort } => {
                            let since = self.last_rx_at.unwrap_or(now);
                            let quiet_now = Instant::now().saturating_duration_since(since);
                            (peer_closed || quiet_now >= quiet, abort)
                        }
                    };
                    if acked && may_close {
                        close_sent = true;
                        let now = Instant::now();
                        let events = if abort {
                            self.conn.abort(now)
                        } else {
                            self.conn.close(now)?
                        };
                        self.dispatch(events, None)?;
                    }
                }
                State::Closed => {
                    self.outcome.final_state = Some(State::Closed);
                    self.outcome.server_mac = self.remote_mac;
                    return Ok(self.outcome);
                }
                _ => {}
            }
        }
        Err(ClientError::Timeout {
            state: self.conn.state(),
            after: start.elapsed(),
        })
    }

    /// ARP for the server (RFC 826): a SYN sent to the broadcast MAC is
    /// silently dropped by the server's TCP, so learn its MAC first.
    fn resolve_server(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let start = Instant::now();
        let request = ArpRepr {
            op: ArpOp::Request,
            sender_mac: self.local_mac,
            sender_ip: self.params.local_ip,
            target_mac: MacAddr::zero(),
            target_ip: self.next_hop.unwrap_or(self.params.remote_ip),
        };
        let mut next_request = start;
        for _ in 0..MAX_TURNS {
            if self.remote_mac.is_some() {
                return Ok(());
            }
            if self.observer.interrupted() {
                return Err(ClientError::Interrupted {
                    state: self.conn.state(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_request {
                let bytes = wire::emit_arp(self.local_mac, MacAddr::broadcast(), &request);
                self.transmit(bytes, FrameKind::Arp(request.clone()))?;
                next_request = now + ARP_RETRY;
            }
            if let Some(bytes) = self.link.recv(next_request.min(deadline))? {
                self.on_frame(bytes)?;
            }
        }
        Err(ClientError::NoArpReply {
            ip: self.next_hop.unwrap_or(self.params.remote_ip),
            after: start.elapsed(),
        })
    }

    fn on_frame(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        let at = Instant::now();
        let wall = SystemTime::now();
        let parsed = wire::parse(&bytes);
        self.outcome.frames += 1;
        match parsed {
            Ok(Frame::Arp { arp, .. }) => {
                let for_us = arp.target_ip == self.params.local_ip;
                if arp.sender_ip == self.next_hop.unwrap_or(self.params.remote_ip) {
                    self.remote_mac = Some(arp.sender_mac);
                }
                let reply = (arp.op == ArpOp::Request && for_us).then_some(ArpRepr {
                    op: ArpOp::Reply,
                    sender_mac: self.local_mac,
                    sender_ip: self.params.local_ip,
                    target_mac: arp.sender_mac,
                    target_ip: arp.sender_ip,
                });
                self.observer.frame(FrameRecord {
                    dir: Direction::ServerToClient,
                    at,
                    wall,
                    bytes,
                    kind: FrameKind::Arp(arp.clone()),
                });
                if let Some(reply) = reply {
                    // Answer "who has 198.18.0.2?": no kernel owns it, so
                    // without this the server never sends its SYN-ACK.
                    let frame = wire::emit_arp(self.local_mac, arp.sender_mac, &reply);
                    self.transmit(frame, FrameKind::Arp(reply))?;
                }
            }
            Ok(Frame::Tcp(frame)) if self.is_ours(&frame) => {
                let segment = frame.segment;
                if segment.flags.syn() && segment.flags.ack() {
                    if let Some(syn_at) = self.last_syn_at {
                        self.outcome.handshake_rtt.get_or_insert(at - syn_at);
                    }
                }
                self.last_rx_at = Some(at);
                let events = self.conn.on_segment(at, &segment);
                let changes = Event::state_changes(&events);
                let note = describe_incoming(&segment, &events);
                self.observer.frame(FrameRecord {
                    dir: Direction::ServerToClient,
                    at,
                    wall,
                    bytes,
                    kind: FrameKind::Segment {
                        segment,
                        checksums_ok: frame.checksums_ok,
                        changes,
                        state_after: self.conn.state(),
                        note,
                    },
                });
                self.dispatch(events, Some(at))?;
            }
            _ => {
                let unreachable =
                    wire::parse_icmp_unreachable(&bytes).filter(|icmp| self.is_about_ours(icmp));
                self.observer.frame(FrameRecord {
                    dir: Direction::ServerToClient,
                    at,
                    wall,
                    bytes,
                    kind: FrameKind::Noise,
                });
                if let Some(icmp) = unreachable {
                    return Err(ClientError::Unreachable {
                        from: icmp.from,
                        code: icmp.code,
                        at,
                    });
                }
            }
        }
        Ok(())
    }

    fn is_ours(&self, frame: &wire::TcpFrame) -> bool {
        frame.ip.src == self.params.remote_ip
            && frame.ip.dst == self.params.local_ip
            && frame.segment.src_port == self.params.conn.remote_port
            && frame.segment.dst_port == self.params.conn.local_port
    }

    /// An ICMP error that quotes a segment of this connection (RFC 792:
    /// the IP header and the first 8 bytes, which hold both ports).
    fn is_about_ours(&self, icmp: &wire::IcmpUnreachable) -> bool {
        icmp.quoted_src == self.params.local_ip
            && icmp.quoted_dst == self.params.remote_ip
            && icmp.quoted_src_port == self.params.conn.local_port
            && icmp.quoted_dst_port == self.params.conn.remote_port
    }

    /// Acts on the connection's events: sends segments, reports the rest.
    /// `incoming` is set when a received segment caused them (its line
    /// already shows the state changes).
    fn dispatch(
        &mut self,
        events: Vec<Event>,
        incoming: Option<Instant>,
    ) -> Result<(), ClientError> {
        let mut pending: Vec<(State, State)> = Vec::new();
        for event in events {
            match event {
                Event::StateChanged { from, to } if incoming.is_none() => pending.push((from, to)),
                Event::StateChanged { .. } => {}
                Event::Send { segment, reason } => {
                    let changes = std::mem::take(&mut pending);
                    self.send_segment(segment, reason, changes, incoming)?;
                }
                Event::Received(data) => {
                    self.outcome.bytes_received += data.len();
                    self.outcome.received.extend_from_slice(&data);
                }
                Event::PeerClosed | Event::Ignored { .. } => {}
                Event::Reset { state } => {
                    return Err(if state == State::SynSent {
                        ClientError::Refused {
                            at: incoming.unwrap_or_else(Instant::now),
                        }
                    } else {
                        ClientError::Reset { state }
                    });
                }
                Event::GaveUp { state } => {
                    return Err(ClientError::GaveUp {
                        state,
                        retries: self.params.conn.max_retries,
                    });
                }
            }
        }
        if !pending.is_empty() {
            let text = pending
                .iter()
                .map(|(from, to)| format!("{from} → {to}"))
                .collect::<Vec<_>>()
                .join(", ");
            self.observer.note(Instant::now(), text, pending);
        }
        Ok(())
    }

    fn send_segment(
        &mut self,
        segment: SegmentRepr,
        reason: SendReason,
        changes: Vec<(State, State)>,
        incoming: Option<Instant>,
    ) -> Result<(), ClientError> {
        let remote_mac = self.remote_mac.unwrap_or(MacAddr::broadcast());
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let ip = Ipv4Repr {
            src: self.params.local_ip,
            dst: self.params.remote_ip,
            ident: self.ip_ident,
            ttl: wire::DEFAULT_TTL,
        };
        let bytes = wire::emit_tcp(self.local_mac, remote_mac, &ip, &segment)?;
        if let SendReason::Retransmission { .. } = reason {
            self.outcome.retransmissions += 1;
        }
        let is_syn = segment.flags.syn() && !segment.flags.ack();
        let kind = FrameKind::Segment {
            checksums_ok: true,
            changes,
            state_after: self.conn.state(),
            note: describe_reason(reason),
            segment,
        };
        let at = self.transmit(bytes, kind)?;
        if is_syn {
            self.last_syn_at = Some(at);
            self.outcome.first_syn_at.get_or_insert(at);
        }
        if reason == SendReason::HandshakeAck {
            if let Some(syn_ack_at) = incoming {
                self.outcome.syn_to_ack_sent = Some(at - syn_ack_at);
            }
            if let Some(first) = self.outcome.first_syn_at {
                self.outcome.handshake_done = Some(at - first);
            }
        }
        Ok(())
    }

    /// Sends a frame and hands it to the observer; returns when it was
    /// handed to the kernel (the time the capture shows).
    fn transmit(&mut self, bytes: Vec<u8>, kind: FrameKind) -> Result<Instant, ClientError> {
        let at = Instant::now();
        let wall = SystemTime::now();
        self.link.send(&bytes)?;
        self.outcome.frames += 1;
        if matches!(kind, FrameKind::Segment { .. }) {
            self.outcome.last_sent_at = Some(at);
        }
        self.observer.frame(FrameRecord {
            dir: Direction::ClientToServer,
            at,
            wall,
            bytes,
            kind,
        });
        Ok(at)
    }
}

/// RFC 792 / RFC 1122 §3.2.2.1 names of the destination-unreachable codes.
pub fn icmp_unreachable_meaning(code: u8) -> &'static str {
    match code {
        0 => "net unreachable",
        1 => "host unreachable",
        2 => "protocol unreachable",
        3 => "port unreachable",
        4 => "fragmentation needed and DF set",
        5 => "source route failed",
        6 => "destination network unknown",
        7 => "destination host unknown",
        9 | 10 => "communication with the destination administratively prohibited",
        11 | 12 => "unreachable for the type of service",
        13 => "communication administratively prohibited (a firewall's reject)",
        _ => "see RFC 1812 §5.2.7.1",
    }
}

fn describe_reason(reason: SendReason) -> String {
    match reason {
        SendReason::Syn => "SYN: active open".into(),
        SendReason::SynAck => "SYN-ACK: simultaneous open".into(),
        SendReason::HandshakeAck => "ACK: completes the handshake".into(),
        SendReason::Data => "data".into(),
        SendReason::Ack => "ACK of what arrived".into(),
        SendReason::DuplicateAck => "ACK for an unacceptable segment".into(),
        SendReason::ChallengeAck => "challenge ACK (RFC 5961)".into(),
        SendReason::Fin => "FIN: active close".into(),
        SendReason::Abort => "RST: abort".into(),
        SendReason::ResetUnacceptableAck => "RST: the ACK acknowledged nothing we sent".into(),
        SendReason::Retransmission { attempt } => format!("retransmission #{attempt}"),
    }
}

fn describe_incoming(seg: &SegmentRepr, events: &[Event]) -> String {
    let ignored = events.iter().find_map(|e| match e {
        Event::Ignored { why } => Some(*why),
        _ => None,
    });
    if let Some(why) = ignored {
        return format!("ignored: {why}");
    }
    if seg.flags.rst() {
        return "RST".into();
    }
    match (seg.flags.syn(), seg.flags.fin(), seg.payload.is_empty()) {
        (true, _, _) => "SYN-ACK".into(),
        (_, true, _) => "the server's FIN".into(),
        (_, _, false) => format!("{} bytes of data", seg.payload.len()),
        _ => "ACK".into(),
    }
}

#[cfg(test)]
mod tests;
