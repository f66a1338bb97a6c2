//! synack's hand-built client engine, the one `synack lab` and
//! `synack connect` both drive: the loop `Link::recv` → `wire::parse` →
//! `Connection::on_segment` → `wire::emit` → `Link::send`.
//!
//! - this file: the driver between the link and the [`Connection`];
//! - `arp`: learning the server's MAC and answering for our address;
//! - `ndp`: the same over IPv6, by Neighbor Discovery (RFC 4861);
//! - `udp`: the same exchange as datagrams (`lab --udp`);
//! - [`faults`]: losses on purpose and the teardown choreography, a policy
//!   the driver asks segment by segment (none by default);
//! - `record` and `note`: what the engine tells its observers and the
//!   views, as data ([`FrameRecord`], [`Direction`], [`Note`]);
//! - [`handshake`]: what the SYN and SYN-ACK agreed, in words.
//!
//! Generic over [`Link`] and [`Observer`], so tests drive it with a scripted
//! peer and no privileges. Every frame in and out is handed to the observer
//! (which records and narrates it off this thread).

mod arp;
pub mod faults;
pub mod handshake;
mod ndp;
mod note;
mod record;
mod udp;

pub use note::{Loss, Note, Received, What};
pub use record::{ClientCall, Direction, FrameKind, FrameRecord};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};

use crate::net::link::Link;
use crate::tcp::{self, Connection, Event, SendReason, State};
use crate::wire::{self, Frame, Ipv4Repr, Ipv6Repr, MacAddr, SegmentRepr};

use faults::{DropItem, FaultState, Faults, Teardown};

/// How often an unanswered ARP request is repeated.
pub const ARP_RETRY: Duration = Duration::from_secs(1);
/// An upper bound on loop turns, whatever the clock says (each turn waits
/// for a frame or at most a millisecond).
pub const MAX_TURNS: u64 = 10_000_000;

/// What the client does.
#[derive(Clone, Debug)]
pub struct ClientParams {
    /// The address the client plays; of the same family as `remote_ip`
    /// (IPv4: ARP and IPv4 headers; IPv6: Neighbor Discovery and IPv6).
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    pub conn: tcp::Config,
    /// The application writes, sent in order once the connection is
    /// established: each one is one `send()` (one segment when it fits the
    /// MSS), or one datagram with [`Client::run_datagrams`].
    pub data: Vec<Vec<u8>>,
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

/// Sees everything the client does, as it happens: a received segment
/// before the client answers it, a sent one right after it left.
/// Implementations run on the client's hot path.
pub trait Observer {
    fn frame(&mut self, record: FrameRecord);
    /// State changes that no frame carried (the end of TIME-WAIT).
    fn state_changed(&mut self, at: Instant, changes: Vec<(State, State)>);
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
    /// The client's application made a socket call, right before the
    /// segments it causes.
    fn call(&mut self, _at: Instant, _call: ClientCall) {}
    /// Whether [`Observer::negotiated`] is wanted: the lines are made only
    /// then, so the client answers the SYN-ACK sooner.
    fn wants_negotiated(&self) -> bool {
        false
    }
    /// The client has answered everything that arrived and is about to
    /// wait for the next frame: the time to hand over what was held back.
    fn idle(&mut self) {}
}

/// How a run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no ARP reply from {ip} within {after:?}")]
    NoArpReply { ip: Ipv4Addr, after: Duration },
    #[error("no Neighbor Advertisement from {ip} within {after:?}")]
    NoNeighborAdvert { ip: Ipv6Addr, after: Duration },
    #[error("the client's address {local} and the server's {remote} are not of one family")]
    MixedFamilies { local: IpAddr, remote: IpAddr },
    #[error("{0} is not built over IPv6 yet")]
    NotOverIpv6(&'static str),
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
    #[error("{from} answered with ICMPv6 destination unreachable, code {code} ({})", wire::dest_unreachable_reason(*code))]
    Unreachable6 {
        from: Ipv6Addr,
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
                | ClientError::NoNeighborAdvert { .. }
                | ClientError::Unreachable { .. }
                | ClientError::Unreachable6 { .. }
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
    /// The server's MAC, as ARP (or Neighbor Discovery) found it.
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

/// The client: one connection over one link.
pub struct Client<'a, L: Link, O: Observer> {
    link: &'a mut L,
    observer: &'a mut O,
    params: ClientParams,
    conn: Connection,
    local_mac: MacAddr,
    remote_mac: Option<MacAddr>,
    ip_ident: u16,
    /// The IPv6 flow label of this connection (RFC 6437), fixed for its
    /// life as Linux's `auto_flowlabels` does.
    flow_label: u32,
    outcome: Outcome,
    last_syn_at: Option<Instant>,
    /// The exchange is UDP datagrams ([`Client::run_datagrams`]).
    udp: bool,
    /// UDP datagrams of the exchange received so far.
    datagrams_received: usize,
    /// Every application write went out.
    data_sent: bool,
    /// Our FIN (or RST) went out.
    close_sent: bool,
    /// Losses on purpose and the teardown choreography.
    faults: FaultState,
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
        Client {
            link,
            observer,
            params,
            conn,
            local_mac,
            remote_mac,
            ip_ident: 0,
            flow_label: random_u32() & wire::FLOW_LABEL_MAX,
            outcome: Outcome::default(),
            last_syn_at: None,
            udp: false,
            datagrams_received: 0,
            data_sent: false,
            close_sent: false,
            faults: FaultState::new(Faults::default()),
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

    /// Injects `faults` (the lab's scenarios); without, none.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = FaultState::new(faults);
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
        self.check_families()?;
        self.resolve_server(deadline)?;
        let now = Instant::now();
        self.observer.call(now, ClientCall::Connect);
        let events = self.conn.connect(now)?;
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
            self.observer.idle();
            if let Some(bytes) = self.link.recv(wait_until)? {
                self.on_frame(bytes)?;
            }
            let now = Instant::now();
            if self.conn.poll_at().is_some_and(|at| now >= at) {
                let events = self.conn.poll(now);
                self.dispatch(events, None)?;
            }
            let data_sent = writes_sent == self.params.data.len();
            self.data_sent = data_sent;
            match self.conn.state() {
                State::Established if !data_sent && self.observer.may_write(writes_sent) => {
                    let data = self.params.data[writes_sent].clone();
                    writes_sent += 1;
                    let now = Instant::now();
                    self.observer.call(now, ClientCall::Send(data.len()));
                    let events = self.conn.send(now, &data)?;
                    self.outcome.bytes_sent += data.len();
                    self.dispatch(events, None)?;
                }
                // Held back until the server read the write before.
                State::Established if !data_sent => {}
                State::Established | State::CloseWait if data_sent && !self.close_sent => {
                    self.maybe_close()?;
                }
                State::Closing => self.faults.went_through_closing(),
                State::TimeWait => self.outcome.time_wait_entered = true,
                State::Closed => {
                    self.faults.check().map_err(ClientError::Scenario)?;
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
            (self.closing, self.last_rx_at, self.close_sent)
        {
            let quiet_ends = last + quiet;
            if quiet_ends > now {
                wait_until = wait_until.min(quiet_ends);
            }
        }
        wait_until
    }

    /// Closes (FIN), aborts (RST) or keeps waiting, as the scenario says.
    fn maybe_close(&mut self) -> Result<(), ClientError> {
        let acked = self.conn.all_acked();
        let replied = self.outcome.bytes_received >= self.params.expect_reply;
        let peer_closed = self.conn.state() == State::CloseWait;
        let may_close = match self.faults.may_close(peer_closed) {
            Some(may_close) => may_close.map_err(ClientError::Scenario)?,
            None if self.params.wait_for_peer_close => peer_closed,
            None => match self.closing {
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
        self.close_sent = true;
        let abort = match self.closing {
            Closing::WhenQuiet { abort, .. } => abort,
            Closing::AsParams => false,
        };
        let now = Instant::now();
        let events = if abort || self.faults.teardown() == Teardown::AbortClient {
            self.observer.call(now, ClientCall::Abort);
            self.conn.abort(now)
        } else {
            let call = if self.faults.teardown() == Teardown::HalfClose {
                ClientCall::ShutdownWrite
            } else {
                ClientCall::Close
            };
            self.observer.call(now, call);
            self.conn.close(now)?
        };
        self.dispatch(events, None)
    }

    /// Takes one frame off the link: ARP, a segment or datagram of ours,
    /// or anything else (an ICMP error about ours ends the run).
    fn on_frame(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        let rx = Arrival {
            at: Instant::now(),
            wall: SystemTime::now(),
            bytes,
        };
        self.outcome.frames += 1;
        match wire::parse(&rx.bytes) {
            Ok(Frame::Arp { arp, .. }) => self.on_arp(rx, arp),
            Ok(Frame::Tcp(frame)) if self.is_ours(&frame) => {
                self.on_segment(rx, frame.segment, frame.checksums_ok)
            }
            Ok(Frame::Udp(frame)) if self.udp && self.is_our_datagram(&frame) => {
                self.on_datagram(rx, frame);
                Ok(())
            }
            Ok(Frame::Other {
                ether_type: wire::ETHERTYPE_IPV6,
                ..
            }) if self.params.remote_ip.is_ipv6() => self.on_ipv6(rx),
            _ => self.on_other(rx),
        }
    }

    /// A segment of this connection: ignored on purpose, crossed with our
    /// FIN, or handed to the [`Connection`] and answered.
    fn on_segment(
        &mut self,
        rx: Arrival,
        segment: SegmentRepr,
        checksums_ok: bool,
    ) -> Result<(), ClientError> {
        let at = rx.at;
        if segment.flags.syn() && segment.flags.ack() {
            // The round trip is the network's, even when this SYN-ACK is
            // then ignored on purpose.
            if let Some(syn_at) = self.last_syn_at {
                self.outcome.handshake_rtt.get_or_insert(at - syn_at);
            }
        }
        if let Some(item) = self.faults.drop_incoming(&segment, at) {
            // Recorded as it arrived, then ignored once: the server's
            // kernel must send it again.
            self.outcome.dropped += 1;
            let note = Note {
                what: What::Nothing,
                lost: Some(Loss {
                    item,
                    rto: self.conn.rto(),
                }),
            };
            let kind = self.segment_kind(segment, checksums_ok, Vec::new(), note);
            self.received(rx, kind);
            return Ok(());
        }
        let in_time_wait = self.conn.state() == State::TimeWait;
        let again = self
            .faults
            .server_retransmission(&segment, at, in_time_wait);
        if again.is_some() {
            self.outcome.server_retransmissions += 1;
        }
        if self
            .faults
            .crosses_fins(&segment, self.conn.state(), self.data_sent, self.close_sent)
        {
            return self.cross_fins(rx, segment, checksums_ok);
        }
        self.last_rx_at = Some(at);
        let events = self.conn.on_segment(at, &segment);
        let changes = Event::state_changes(&events);
        let what = match again {
            Some(again) => What::ServerRetransmission(again),
            None if segment.flags.rst() && self.faults.teardown() == Teardown::AbortServer => {
                What::ServerAborted
            }
            None => What::Received(received(&segment, &events)),
        };
        let note = Note::new(what);
        let opened = changes.contains(&(State::SynSent, State::Established));
        let (syn_ack_options, syn_ack_window) = (segment.options, segment.window);
        let kind = self.segment_kind(segment, checksums_ok, changes, note);
        self.received(rx, kind);
        let wanted = opened && self.observer.wants_negotiated();
        if let (true, Some(agreed)) = (wanted, self.conn.negotiated()) {
            let lines = handshake::explain(
                self.conn.config(),
                &syn_ack_options,
                syn_ack_window,
                &agreed,
            );
            self.observer.negotiated(at, lines);
        }
        self.dispatch(events, Some(at))
    }

    /// Neither ARP nor ours: recorded as noise, and an ICMP destination
    /// unreachable that quotes one of our segments ends the run.
    fn on_other(&mut self, rx: Arrival) -> Result<(), ClientError> {
        let unreachable =
            wire::parse_icmp_unreachable(&rx.bytes).filter(|icmp| self.is_about_ours(icmp));
        let at = rx.at;
        self.received(rx, FrameKind::Noise);
        match unreachable {
            Some(icmp) => Err(ClientError::Unreachable {
                from: icmp.from,
                code: icmp.code,
                at,
            }),
            None => Ok(()),
        }
    }

    /// A segment's record, in the client's state as it is now.
    fn segment_kind(
        &self,
        segment: SegmentRepr,
        checksums_ok: bool,
        changes: Vec<(State, State)>,
        note: Note,
    ) -> FrameKind {
        FrameKind::Segment {
            segment,
            checksums_ok,
            changes,
            state_after: self.conn.state(),
            note,
        }
    }

    /// Hands a frame that arrived to the observer.
    fn received(&mut self, rx: Arrival, kind: FrameKind) {
        self.observer.frame(FrameRecord {
            dir: Direction::ServerToClient,
            at: rx.at,
            wall: rx.wall,
            bytes: rx.bytes,
            kind,
        });
    }

    /// `--close simultaneous`: the server's FIN arrived while we are
    /// ESTABLISHED. Record it, send our own FIN first (its ACK does not
    /// cover the server's FIN: on the wire the two FINs crossed), then
    /// process the held FIN: FIN-WAIT-1 → CLOSING, and ACK it.
    fn cross_fins(
        &mut self,
        rx: Arrival,
        segment: SegmentRepr,
        checksums_ok: bool,
    ) -> Result<(), ClientError> {
        let note = Note::new(What::FinHeld);
        let kind = self.segment_kind(segment.clone(), checksums_ok, Vec::new(), note);
        self.received(rx, kind);
        self.close_sent = true;
        let now = Instant::now();
        self.observer.call(now, ClientCall::Close);
        let events = self.conn.close(now)?;
        self.dispatch(events, None)?;
        let events = self.conn.on_segment(Instant::now(), &segment);
        // The state change (FIN-WAIT-1 → CLOSING) goes on the ACK's line.
        self.dispatch(events, None)
    }

    fn is_ours(&self, frame: &wire::TcpFrame) -> bool {
        IpAddr::V4(frame.ip.src) == self.params.remote_ip
            && IpAddr::V4(frame.ip.dst) == self.params.local_ip
            && frame.segment.src_port == self.params.conn.remote_port
            && frame.segment.dst_port == self.params.conn.local_port
    }

    /// An ICMP error that quotes a segment of this connection (RFC 792:
    /// the IP header and the first 8 bytes, which hold both ports).
    fn is_about_ours(&self, icmp: &wire::IcmpUnreachable) -> bool {
        IpAddr::V4(icmp.quoted_src) == self.params.local_ip
            && IpAddr::V4(icmp.quoted_dst) == self.params.remote_ip
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
                    if self.close_sent {
                        self.faults.received_after_our_fin(data.len());
                    }
                    self.outcome.bytes_received += data.len();
                    self.outcome.received.extend_from_slice(&data);
                }
                Event::PeerClosed | Event::Ignored { .. } => {}
                // Exactly what `--abort server` asked for.
                Event::Reset { state } if self.faults.reset_as_asked(state) => {}
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
            self.observer.state_changed(Instant::now(), pending);
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
        let bytes = self.emit_segment(&segment)?;
        let in_time_wait = self.conn.state() == State::TimeWait;
        let what = match reason {
            SendReason::Retransmission { attempt } => What::Retransmission {
                attempt,
                // RFC 6298 §5.5: the timer was doubled before this went out.
                rto: self.conn.rto(),
            },
            SendReason::DuplicateAck if in_time_wait => What::AckFromTimeWait,
            reason => What::Sent(reason),
        };
        if reason.is_retransmission() {
            self.outcome.retransmissions += 1;
        }
        let dropped = self.faults.drop_outgoing(&segment, in_time_wait);
        let lost = dropped.map(|item| Loss {
            item,
            rto: self.conn.rto(),
        });
        if lost.is_some() {
            self.outcome.dropped += 1;
        }
        let note = Note {
            // A lost final ACK is only its loss.
            what: if dropped == Some(DropItem::FinalAck) {
                What::Nothing
            } else {
                what
            },
            lost,
        };
        let is_syn = segment.flags.syn() && !segment.flags.ack();
        let kind = self.segment_kind(segment, true, changes, note);
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

    /// The frame that carries `segment` to the server: Ethernet, then
    /// IPv4 or IPv6 as the addresses are.
    fn emit_segment(&mut self, segment: &SegmentRepr) -> Result<Vec<u8>, ClientError> {
        match (self.params.local_ip, self.params.remote_ip) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Repr {
                    src,
                    dst,
                    flow_label: self.flow_label,
                    hop_limit: wire::DEFAULT_HOP_LIMIT,
                };
                let remote_mac = self.remote_mac.unwrap_or(MacAddr::broadcast());
                Ok(wire::emit_tcp6(self.local_mac, remote_mac, &ip, segment)?)
            }
            _ => {
                let (remote_mac, ip) = self.next_packet();
                Ok(wire::emit_tcp(self.local_mac, remote_mac, &ip, segment)?)
            }
        }
    }

    /// The next IPv4 header to the server (a fresh identification), and
    /// the MAC to send it to.
    fn next_packet(&mut self) -> (MacAddr, Ipv4Repr) {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let (src, dst) = self.ipv4_addrs();
        let ip = Ipv4Repr {
            src,
            dst,
            ident: self.ip_ident,
            ttl: wire::DEFAULT_TTL,
        };
        (self.remote_mac.unwrap_or(MacAddr::broadcast()), ip)
    }

    /// Both addresses must be of one family; checked before anything is
    /// sent, so the helpers below may assume it.
    fn check_families(&self) -> Result<(), ClientError> {
        let (local, remote) = (self.params.local_ip, self.params.remote_ip);
        if local.is_ipv4() == remote.is_ipv4() {
            Ok(())
        } else {
            Err(ClientError::MixedFamilies { local, remote })
        }
    }

    /// Our address and the server's, over IPv4 (unspecified otherwise).
    fn ipv4_addrs(&self) -> (Ipv4Addr, Ipv4Addr) {
        let v4 = |ip: IpAddr| match ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        (v4(self.params.local_ip), v4(self.params.remote_ip))
    }

    /// Our address and the server's, over IPv6 (unspecified otherwise).
    fn ipv6_addrs(&self) -> (Ipv6Addr, Ipv6Addr) {
        let v6 = |ip: IpAddr| match ip {
            IpAddr::V6(ip) => ip,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
        };
        (v6(self.params.local_ip), v6(self.params.remote_ip))
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

/// A port from Linux's default ephemeral range (32768–60999).
pub fn ephemeral_port() -> u16 {
    32768 + (random_u32() % (60999 - 32768 + 1)) as u16
}

/// A random number from the kernel (for ISNs and ports; RFC 9293 §3.4.1
/// asks for unpredictable ISNs).
pub fn random_u32() -> u32 {
    // getrandom only fails where the kernel has no entropy source at all;
    // fall back to the clock rather than refuse to run.
    getrandom::u32().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    })
}

/// A frame as it came off the link.
struct Arrival {
    at: Instant,
    wall: SystemTime,
    bytes: Vec<u8>,
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

/// What an arriving segment was, or why the state machine ignored it.
fn received(seg: &SegmentRepr, events: &[Event]) -> Received {
    let ignored = events.iter().find_map(|e| match e {
        Event::Ignored { why } => Some(*why),
        _ => None,
    });
    if let Some(why) = ignored {
        return Received::Ignored(why);
    }
    if seg.flags.rst() {
        return Received::Rst;
    }
    match (seg.flags.syn(), seg.flags.fin(), seg.payload.is_empty()) {
        (true, _, _) => Received::SynAck,
        (_, true, _) => Received::Fin,
        (_, _, false) => Received::Data(seg.payload.len()),
        _ => Received::Ack,
    }
}

#[cfg(test)]
mod tests;
