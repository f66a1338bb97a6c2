//! synack's hand-built client: the loop `Link::recv` → `wire::parse` →
//! `Connection::on_segment` → `wire::emit` → `Link::send`, plus ARP.
//!
//! Generic over [`Link`] and [`Observer`], so tests drive it with a scripted
//! peer and no privileges. Every frame in and out is handed to the observer
//! (which records and narrates it off this thread).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use super::handshake;
use super::scenario::{DropItem, DropSpec, Teardown};
use crate::net::link::Link;
use crate::report::Direction;
use crate::tcp::{self, Connection, Event, SendReason, State};
use crate::wire::{self, ArpOp, ArpRepr, Frame, Ipv4Repr, MacAddr, SegmentRepr, UdpRepr};

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
    /// The application writes, sent in order once the connection is
    /// established: each one is one `send()` (one segment when it fits the
    /// MSS), or one datagram with `udp`.
    pub data: Vec<Vec<u8>>,
    /// Send the writes as UDP datagrams: no connection at all.
    pub udp: bool,
    /// Close after this many reply bytes arrived (0: once our data is
    /// acknowledged).
    pub expect_reply: usize,
    /// The whole exchange must end within this.
    pub timeout: Duration,
    /// The server's MAC when already known (skips ARP).
    pub server_mac: Option<MacAddr>,
    /// Close only after the peer's FIN (the server closes first).
    pub wait_for_peer_close: bool,
    /// How the connection ends beyond who closes first: crossing FINs, an
    /// abort by either side, a half-close.
    pub teardown: Teardown,
    /// Segments lost on purpose, each once per time it is named.
    pub drops: DropSpec,
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
    /// A UDP datagram of the exchange (`--udp`).
    Datagram {
        datagram: UdpRepr,
        checksums_ok: bool,
        /// Its number among the datagrams sent, or received, from 1.
        number: usize,
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
    /// Whether write number `index` (from 0) may go now; the lab holds a
    /// write back until the server application has read the one before.
    fn may_write(&mut self, _index: usize) -> bool {
        true
    }
    /// What the handshake agreed, explained line by line, right after the
    /// SYN-ACK.
    fn negotiated(&mut self, _at: Instant, _lines: Vec<String>) {}
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
    /// The server did not do what the scenario needs.
    #[error("the scenario did not happen: {0}")]
    Scenario(String),
    #[error("{from} answered with ICMP destination unreachable, code {code} ({})", icmp_unreachable_meaning(*code))]
    Unreachable {
        from: Ipv4Addr,
        code: u8,
        at: Instant,
    },
    #[error("interrupted in {state}")]
    Interrupted { state: State },
    #[error(
        "UDP: {got} of the {expected} reply bytes arrived within {after:?}; nothing \
         retransmits a lost datagram"
    )]
    NoReply {
        got: usize,
        expected: usize,
        after: Duration,
    },
    #[error("cannot {0}")]
    InvalidState(#[from] tcp::InvalidState),
    #[error("building a frame: {0}")]
    Wire(#[from] wire::WireError),
    #[error("on the link: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The peer or the network did not behave (exit status 1), as opposed
    /// to synack not being able to run (exit status 2).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. }
                | ClientError::GaveUp { .. }
                | ClientError::Refused { .. }
                | ClientError::Reset { .. }
                | ClientError::NoArpReply { .. }
                | ClientError::Unreachable { .. }
                | ClientError::NoReply { .. }
                | ClientError::Scenario(_)
        )
    }
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
    /// Segments the server's kernel sent again after we ignored them on
    /// purpose (`--drop synack|server-fin|data-reply|final-ack`).
    pub server_retransmissions: usize,
    /// Segments lost on purpose (`--drop`).
    pub dropped: usize,
    /// The client went through TIME-WAIT (it closed first or at once).
    pub time_wait_entered: bool,
    pub final_state: Option<State>,
}

/// What the scenarios need to remember across the loop.
#[derive(Debug, Default)]
struct ScenarioState {
    data_sent: bool,
    close_sent: bool,
    /// `(item, losses left)` for every `--drop` item.
    drops_left: Vec<(DropItem, usize)>,
    /// The sequence number of each data segment, in the order first sent.
    data_seqs: Vec<wire::SeqNumber>,
    /// Server segments ignored on purpose: what, its sequence number, when.
    ignored: Vec<(DropItem, wire::SeqNumber, Instant)>,
    /// The final ACK was lost on purpose; the server's FIN came again.
    final_ack_lost: bool,
    fin_again_in_time_wait: bool,
    /// The server's RST ended the connection, as `--abort server` asked.
    reset_as_asked: bool,
    /// Bytes that arrived after our FIN left (the half-close).
    bytes_after_our_fin: usize,
    went_through_closing: bool,
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
    /// UDP datagrams of the exchange received so far.
    datagrams_received: usize,
    scenario: ScenarioState,
    /// Whom to ARP for when the server is behind a gateway.
    next_hop: Option<Ipv4Addr>,
    closing: Closing,
    /// The last segment of this connection that arrived.
    last_rx_at: Option<Instant>,
}

impl<'a, L: Link, O: Observer> Client<'a, L, O> {
    pub fn new(link: &'a mut L, observer: &'a mut O, params: ClientParams, now: Instant) -> Self {
        let local_mac = link.mac();
        let conn = Connection::new(params.conn.clone(), now);
        let remote_mac = params.server_mac;
        let scenario = ScenarioState {
            drops_left: params
                .drops
                .items()
                .into_iter()
                .map(|item| (item, params.drops.count(item)))
                .collect(),
            ..ScenarioState::default()
        };
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
            datagrams_received: 0,
            scenario,
            next_hop: None,
            closing: Closing::AsParams,
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
        if self.params.udp {
            return self.exchange_datagrams(deadline);
        }
        let events = self.conn.connect(Instant::now())?;
        self.dispatch(events, None)?;
        let mut writes_sent = 0;
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
            let wait_until = self.wait_until(now, deadline);
            if let Some(bytes) = self.link.recv(wait_until)? {
                self.on_frame(bytes)?;
            }
            let now = Instant::now();
            if self.conn.poll_at().is_some_and(|at| now >= at) {
                let events = self.conn.poll(now);
                self.dispatch(events, None)?;
            }
            let data_sent = writes_sent == self.params.data.len();
            self.scenario.data_sent = data_sent;
            match self.conn.state() {
                State::Established if !data_sent && self.observer.may_write(writes_sent) => {
                    let data = self.params.data[writes_sent].clone();
                    writes_sent += 1;
                    let events = self.conn.send(Instant::now(), &data)?;
                    self.outcome.bytes_sent += data.len();
                    self.dispatch(events, None)?;
                }
                // Held back until the server read the write before.
                State::Established if !data_sent => {}
                State::Established | State::CloseWait if data_sent && !self.scenario.close_sent => {
                    self.maybe_close()?;
                }
                State::Closing => self.scenario.went_through_closing = true,
                State::TimeWait => self.outcome.time_wait_entered = true,
                State::Closed => {
                    self.check_scenario()?;
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

    /// Until when the loop may sleep waiting for a frame: the connection's
    /// next timer (a retransmission, the end of TIME-WAIT), the run's
    /// deadline, and, with [`Closing::WhenQuiet`], the end of the quiet
    /// window. Once that window has passed it no longer counts: the close
    /// then waits for our data to be acknowledged, which only a frame or
    /// the retransmission timer can bring (counting it would make every
    /// wake-up "now", a busy loop until the turn cap; issue 11).
    fn wait_until(&self, now: Instant, deadline: Instant) -> Instant {
        let mut wait_until = self.conn.poll_at().map_or(deadline, |at| at.min(deadline));
        if let (Closing::WhenQuiet { quiet, .. }, Some(last), false) =
            (self.closing, self.last_rx_at, self.scenario.close_sent)
        {
            let quiet_ends = last + quiet;
            if quiet_ends > now {
                wait_until = wait_until.min(quiet_ends);
            }
        }
        wait_until
    }

    /// `--udp`: each write goes as one datagram, at once (there is no
    /// connection to open); then the replies are awaited until the whole
    /// expected reply arrived. Nothing is acknowledged or retransmitted.
    fn exchange_datagrams(mut self, deadline: Instant) -> Result<Outcome, ClientError> {
        let start = Instant::now();
        for (index, payload) in self.params.data.clone().into_iter().enumerate() {
            let datagram = UdpRepr {
                src_port: self.params.conn.local_port,
                dst_port: self.params.conn.remote_port,
                payload,
            };
            self.ip_ident = self.ip_ident.wrapping_add(1);
            let ip = Ipv4Repr {
                src: self.params.local_ip,
                dst: self.params.remote_ip,
                ident: self.ip_ident,
                ttl: wire::DEFAULT_TTL,
            };
            let remote_mac = self.remote_mac.unwrap_or(MacAddr::broadcast());
            let bytes = wire::emit_udp(self.local_mac, remote_mac, &ip, &datagram)?;
            self.outcome.bytes_sent += datagram.payload.len();
            let kind = FrameKind::Datagram {
                datagram,
                checksums_ok: true,
                number: index + 1,
            };
            let at = self.transmit(bytes, kind, true)?;
            self.outcome.first_syn_at.get_or_insert(at);
            self.outcome.last_sent_at = Some(at);
        }
        for _ in 0..MAX_TURNS {
            if self.outcome.bytes_received >= self.params.expect_reply {
                self.outcome.server_mac = self.remote_mac;
                return Ok(self.outcome);
            }
            if self.observer.interrupted() {
                return Err(ClientError::Interrupted {
                    state: self.conn.state(),
                });
            }
            if Instant::now() >= deadline {
                break;
            }
            if let Some(bytes) = self.link.recv(deadline)? {
                self.on_frame(bytes)?;
            }
        }
        Err(ClientError::NoReply {
            got: self.outcome.bytes_received,
            expected: self.params.expect_reply,
            after: start.elapsed(),
        })
    }

    fn is_our_datagram(&self, frame: &wire::UdpFrame) -> bool {
        frame.ip.src == self.params.remote_ip
            && frame.ip.dst == self.params.local_ip
            && frame.datagram.src_port == self.params.conn.remote_port
            && frame.datagram.dst_port == self.params.conn.local_port
    }

    /// Closes (FIN), aborts (RST) or keeps waiting, as the scenario says.
    fn maybe_close(&mut self) -> Result<(), ClientError> {
        let acked = self.conn.all_acked();
        let replied = self.outcome.bytes_received >= self.params.expect_reply;
        let peer_closed = self.conn.state() == State::CloseWait;
        let may_close = match self.params.teardown {
            // The server's RST ends it; a FIN instead is a failure.
            Teardown::AbortServer if peer_closed => {
                return Err(ClientError::Scenario(
                    "--abort server: the server closed with FIN, not RST (SO_LINGER 0)".into(),
                ));
            }
            Teardown::AbortServer => false,
            // The FIN goes when the server's FIN arrives (see on_frame);
            // a FIN processed before that means they did not cross.
            Teardown::Simultaneous if peer_closed => {
                return Err(ClientError::Scenario(
                    "--close simultaneous: the server's FIN was processed before ours left".into(),
                ));
            }
            Teardown::Simultaneous => false,
            // Shut down the sending side as soon as the data is acked,
            // without waiting for the reply.
            Teardown::HalfClose => true,
            Teardown::Fin | Teardown::AbortClient if self.params.wait_for_peer_close => peer_closed,
            Teardown::Fin | Teardown::AbortClient => match self.closing {
                Closing::AsParams => replied || peer_closed,
                // `synack connect`: the reply's length is unknown, so it
                // ends when nothing arrived for `quiet`.
                Closing::WhenQuiet { quiet, .. } => {
                    let now = Instant::now();
                    let since = self.last_rx_at.unwrap_or(now);
                    peer_closed || now.saturating_duration_since(since) >= quiet
                }
            },
        };
        if !(acked && may_close) {
            return Ok(());
        }
        self.scenario.close_sent = true;
        let abort = match self.closing {
            Closing::WhenQuiet { abort, .. } => abort,
            Closing::AsParams => false,
        };
        let events = if abort || self.params.teardown == Teardown::AbortClient {
            self.conn.abort(Instant::now())
        } else {
            self.conn.close(Instant::now())?
        };
        self.dispatch(events, None)
    }

    /// At the end: did the server do what the scenario needs?
    fn check_scenario(&self) -> Result<(), ClientError> {
        let fail = |text: &str| Err(ClientError::Scenario(text.into()));
        match self.params.teardown {
            Teardown::AbortServer if !self.scenario.reset_as_asked => {
                return fail("--abort server: no RST came from the server");
            }
            Teardown::Simultaneous if !self.scenario.went_through_closing => {
                return fail("--close simultaneous: the client never was in CLOSING");
            }
            Teardown::HalfClose if self.scenario.bytes_after_our_fin == 0 => {
                return fail("--half-close: the server sent no data after our FIN");
            }
            _ => {}
        }
        if self.scenario.final_ack_lost && !self.scenario.fin_again_in_time_wait {
            return fail(
                "--drop final-ack: the server did not retransmit its FIN within TIME-WAIT",
            );
        }
        Ok(())
    }

    /// Whether an outgoing segment is to be lost (and counts the loss).
    fn drop_outgoing(&mut self, seg: &SegmentRepr) -> Option<DropItem> {
        if !seg.payload.is_empty() && !self.scenario.data_seqs.contains(&seg.seq) {
            self.scenario.data_seqs.push(seg.seq);
        }
        let data_index = self
            .scenario
            .data_seqs
            .iter()
            .position(|s| *s == seg.seq)
            .filter(|_| !seg.payload.is_empty());
        let in_time_wait = self.conn.state() == State::TimeWait;
        let final_ack_lost = self.scenario.final_ack_lost;
        let is = |item: DropItem| match item {
            DropItem::Syn => seg.flags.syn() && !seg.flags.ack(),
            DropItem::Data(n) => data_index == Some(n as usize - 1),
            DropItem::Fin => seg.flags.fin(),
            // The ACK of the server's FIN that takes us into TIME-WAIT.
            DropItem::FinalAck => {
                in_time_wait
                    && seg.flags == wire::Flags::ACK
                    && seg.payload.is_empty()
                    && !final_ack_lost
            }
            _ => false,
        };
        let item = self.take_drop(is);
        if item == Some(DropItem::FinalAck) {
            self.scenario.final_ack_lost = true;
        }
        item
    }

    /// Whether an incoming segment is to be ignored (and counts it).
    fn drop_incoming(&mut self, seg: &SegmentRepr) -> Option<DropItem> {
        let is = |item: DropItem| match item {
            DropItem::SynAck => seg.flags.syn() && seg.flags.ack(),
            DropItem::ServerFin => seg.flags.fin(),
            DropItem::DataReply => !seg.payload.is_empty(),
            _ => false,
        };
        self.take_drop(is)
    }

    fn take_drop(&mut self, is: impl Fn(DropItem) -> bool) -> Option<DropItem> {
        let (item, left) = self
            .scenario
            .drops_left
            .iter_mut()
            .find(|(item, left)| *left > 0 && is(*item))?;
        *left -= 1;
        self.outcome.dropped += 1;
        Some(*item)
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
                self.transmit(bytes, FrameKind::Arp(request.clone()), true)?;
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
                    self.transmit(frame, FrameKind::Arp(reply), true)?;
                }
            }
            Ok(Frame::Tcp(frame)) if self.is_ours(&frame) => {
                let segment = frame.segment;
                if segment.flags.syn() && segment.flags.ack() {
                    // The round trip is the network's, even when this
                    // SYN-ACK is then ignored on purpose.
                    if let Some(syn_at) = self.last_syn_at {
                        self.outcome.handshake_rtt.get_or_insert(at - syn_at);
                    }
                }
                if let Some(item) = self.drop_incoming(&segment) {
                    // Recorded as it arrived, then ignored once: the
                    // server's kernel must send it again.
                    self.scenario.ignored.push((item, segment.seq, at));
                    let note = format!(
                        "dropped on purpose (--drop {item}): ignored once, so the server's \
                         kernel must retransmit it"
                    );
                    self.observer.frame(FrameRecord {
                        dir: Direction::ServerToClient,
                        at,
                        wall,
                        bytes,
                        kind: FrameKind::Segment {
                            segment,
                            checksums_ok: frame.checksums_ok,
                            changes: Vec::new(),
                            state_after: self.conn.state(),
                            note,
                        },
                    });
                    return Ok(());
                }
                let again = self.server_retransmission(&segment, at);
                if self.params.teardown == Teardown::Simultaneous
                    && segment.flags.fin()
                    && !segment.flags.rst()
                    && self.conn.state() == State::Established
                    && self.scenario.data_sent
                    && !self.scenario.close_sent
                {
                    return self.cross_fins(segment, frame.checksums_ok, bytes, at, wall);
                }
                let in_time_wait = self.conn.state() == State::TimeWait;
                self.last_rx_at = Some(at);
                let events = self.conn.on_segment(at, &segment);
                let changes = Event::state_changes(&events);
                let mut note = describe_incoming(&segment, &events);
                if segment.flags.rst() && self.params.teardown == Teardown::AbortServer {
                    note = "RST: the server aborted (SO_LINGER 0 then close), as asked".into();
                }
                if let Some(text) = again {
                    note = text;
                    if in_time_wait && segment.flags.fin() {
                        self.scenario.fin_again_in_time_wait = true;
                    }
                }
                let opened = changes.contains(&(State::SynSent, State::Established));
                let syn_ack_options = segment.options;
                let syn_ack_window = segment.window;
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
                if let (true, Some(agreed)) = (opened, self.conn.negotiated()) {
                    let lines = handshake::explain(
                        self.conn.config(),
                        &syn_ack_options,
                        syn_ack_window,
                        &agreed,
                    );
                    self.observer.negotiated(at, lines);
                }
                self.dispatch(events, Some(at))?;
            }
            Ok(Frame::Udp(frame)) if self.params.udp && self.is_our_datagram(&frame) => {
                self.datagrams_received += 1;
                let payload = &frame.datagram.payload;
                self.outcome.bytes_received += payload.len();
                self.outcome.received.extend_from_slice(payload);
                self.observer.frame(FrameRecord {
                    dir: Direction::ServerToClient,
                    at,
                    wall,
                    bytes,
                    kind: FrameKind::Datagram {
                        datagram: frame.datagram,
                        checksums_ok: frame.checksums_ok,
                        number: self.datagrams_received,
                    },
                });
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

    /// When `seg` is the server's kernel sending again what we ignored on
    /// purpose (or the FIN our lost final ACK should have acknowledged),
    /// counts it and says so.
    fn server_retransmission(&mut self, seg: &SegmentRepr, at: Instant) -> Option<String> {
        let matches = |item: DropItem| match item {
            DropItem::SynAck => seg.flags.syn() && seg.flags.ack(),
            DropItem::ServerFin => seg.flags.fin(),
            DropItem::DataReply => !seg.payload.is_empty(),
            _ => false,
        };
        let pos = self
            .scenario
            .ignored
            .iter()
            .position(|(item, seq, _)| *seq == seg.seq && matches(*item));
        if let Some(pos) = pos {
            let (item, _, first) = self.scenario.ignored.remove(pos);
            self.outcome.server_retransmissions += 1;
            return Some(format!(
                "{}: the server's kernel retransmitted it {:.0} ms after the one we dropped",
                match item {
                    DropItem::SynAck => "SYN-ACK",
                    DropItem::ServerFin => "the server's FIN",
                    _ => "the server's data",
                },
                (at - first).as_secs_f64() * 1e3
            ));
        }
        if self.scenario.final_ack_lost
            && !self.scenario.fin_again_in_time_wait
            && seg.flags.fin()
            && self.conn.state() == State::TimeWait
        {
            self.outcome.server_retransmissions += 1;
            return Some(
                "the server's FIN again: our final ACK was lost, so the server's kernel \
                 (LAST-ACK) retransmitted its FIN"
                    .into(),
            );
        }
        None
    }

    /// `--close simultaneous`: the server's FIN arrived while we are
    /// ESTABLISHED. Record it, send our own FIN first (its ACK does not
    /// cover the server's FIN: on the wire the two FINs crossed), then
    /// process the held FIN: FIN-WAIT-1 → CLOSING, and ACK it.
    fn cross_fins(
        &mut self,
        segment: SegmentRepr,
        checksums_ok: bool,
        bytes: Vec<u8>,
        at: Instant,
        wall: SystemTime,
    ) -> Result<(), ClientError> {
        self.observer.frame(FrameRecord {
            dir: Direction::ServerToClient,
            at,
            wall,
            bytes,
            kind: FrameKind::Segment {
                segment: segment.clone(),
                checksums_ok,
                changes: Vec::new(),
                state_after: self.conn.state(),
                note: "the server's FIN, held: simultaneous close, our FIN goes first as if \
                       the two crossed on the wire"
                    .into(),
            },
        });
        self.scenario.close_sent = true;
        let events = self.conn.close(Instant::now())?;
        self.dispatch(events, None)?;
        let events = self.conn.on_segment(Instant::now(), &segment);
        // The state change (FIN-WAIT-1 → CLOSING) goes on the ACK's line.
        self.dispatch(events, None)
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
                    if self.scenario.close_sent {
                        self.scenario.bytes_after_our_fin += data.len();
                    }
                    self.outcome.bytes_received += data.len();
                    self.outcome.received.extend_from_slice(&data);
                }
                Event::PeerClosed | Event::Ignored { .. } => {}
                Event::Reset { state }
                    if self.params.teardown == Teardown::AbortServer && state.is_synchronized() =>
                {
                    // Exactly what `--abort server` asked for.
                    self.scenario.reset_as_asked = true;
                }
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
        let mut note = describe_reason(reason);
        if let SendReason::Retransmission { attempt } = reason {
            self.outcome.retransmissions += 1;
            // RFC 6298 §5.5: the timer was doubled before this went out.
            note = format!(
                "retransmission #{attempt}: the RTO expired; the timer backs off to {} ms \
                 (RFC 6298 §5.5)",
                self.conn.rto().as_millis()
            );
        }
        if let SendReason::GoBackN { .. } = reason {
            self.outcome.retransmissions += 1;
        }
        if reason == SendReason::DuplicateAck && self.conn.state() == State::TimeWait {
            note = "ACK again from TIME-WAIT, 2·MSL timer restarted: this is why TIME-WAIT \
                    exists (RFC 9293 §3.10.7.4)"
                .into();
        }
        let dropped = self.drop_outgoing(&segment);
        if let Some(item) = dropped {
            note = if item == DropItem::FinalAck {
                "dropped on purpose (--drop final-ack): recorded leaving, never delivered; \
                 an ACK is not retransmitted, so the server's FIN will come again"
                    .into()
            } else {
                format!(
                    "{note}; dropped on purpose (--drop {item}): recorded leaving, never \
                     delivered; the client's RTO ({} ms) will resend it",
                    self.conn.rto().as_millis()
                )
            };
        }
        let is_syn = segment.flags.syn() && !segment.flags.ack();
        let kind = FrameKind::Segment {
            checksums_ok: true,
            changes,
            state_after: self.conn.state(),
            note,
            segment,
        };
        let at = self.transmit(bytes, kind, dropped.is_none())?;
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
    /// With `deliver` false the frame is recorded as leaving but never
    /// reaches the link (a loss on purpose, `--drop`).
    fn transmit(
        &mut self,
        bytes: Vec<u8>,
        kind: FrameKind,
        deliver: bool,
    ) -> Result<Instant, ClientError> {
        let at = Instant::now();
        let wall = SystemTime::now();
        if deliver {
            self.link.send(&bytes)?;
        }
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
        SendReason::Abort => "RST: abort instead of FIN (RFC 9293 §3.10.5)".into(),
        SendReason::ResetUnacceptableAck => "RST: the ACK acknowledged nothing we sent".into(),
        SendReason::Retransmission { attempt } => format!("retransmission #{attempt}"),
        SendReason::GoBackN { sacked_skipped } => {
            let skipped = if sacked_skipped > 0 {
                format!(", after {sacked_skipped} bytes the server SACKed (not sent again)")
            } else {
                String::new()
            };
            format!(
                "retransmission (go-back-N): outstanding when the RTO expired, sent again now \
                 that the first one is acknowledged{skipped} (RFC 5681 §3.1, RFC 2018)"
            )
        }
        SendReason::WindowProbe { attempt, next } => format!(
            "zero-window probe #{attempt}: one byte into the server's zero window when the \
             persist timer expired; next probe in {} ms unless the window opens (RFC 9293 \
             §3.8.6.1)",
            next.as_millis()
        ),
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
