//! One TCP connection as RFC 9293 describes it: the send and receive
//! sequence variables, the state, and the rules that move them.
//!
//! Pure (smoltcp's socket idea): segments and the current time go in, events
//! come out ([`Event::Send`] is a segment for the caller to put on the wire).
//! Timers are deadlines; [`Connection::poll_at`] says when to call
//! [`Connection::poll`] again. Nothing here sleeps, reads a clock or touches
//! a socket.
//!
//! Heads up: read RFC 9293 §3.10 ("Event Processing") before changing the
//! segment rules; every arm of the big match names the rule it follows.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::wire::{Flags, SegmentRepr, SeqNumber, TcpFlags, TcpOptions};

use super::State;

/// RFC 6298 §2.1: the initial retransmission timeout.
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// RFC 6298 §5.7: the RTO once the handshake is done without an RTT
/// sample (the SYN was retransmitted). Linux: `TCP_TIMEOUT_FALLBACK`.
pub const FALLBACK_RTO: Duration = Duration::from_secs(3);
/// RFC 6298 §2.5: an upper bound on the RTO (60 s or more).
pub const MAX_RTO: Duration = Duration::from_secs(60);
/// The receive window Linux advertises on its first segments.
pub const DEFAULT_WINDOW: u32 = 64240;
/// The MSS on a 1500-byte Ethernet MTU (1500 − 20 − 20).
pub const DEFAULT_MSS: u16 = 1460;
/// The window scale Linux offers.
pub const DEFAULT_WSCALE: u8 = 7;
/// RFC 9293 §3.4.2: 2·MSL. Linux hard-codes TIME-WAIT at 60 s.
pub const LINUX_TIME_WAIT: Duration = Duration::from_secs(60);
/// RFC 9293 §3.7.1: the MSS assumed when the peer's SYN carried none.
pub const DEFAULT_PEER_MSS: u16 = 536;
/// RFC 7323 §2.3: the largest window scale shift.
pub const MAX_WSCALE: u8 = 14;
/// The size of the timestamps option as Linux lays it out (two NOPs, kind
/// 8, length 10): what each data segment loses to it (RFC 7323 §3.2).
pub const TIMESTAMPS_OPTION_LEN: usize = 12;

/// What the two SYNs agreed on (RFC 9293 §3.7.1, RFC 7323, RFC 2018): the
/// rules the rest of the connection follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The MSS the peer announced (536 when it announced none).
    pub peer_mss: u16,
    /// The largest payload we put in one segment: the smaller MSS, less the
    /// timestamps option when it is on every segment.
    pub send_mss: usize,
    /// `(ours, theirs)` shift counts, when both SYNs carried window scale.
    pub wscale: Option<(u8, u8)>,
    /// Both SYNs carried SACK-permitted.
    pub sack: bool,
    /// Both SYNs carried timestamps: every segment but a RST carries one.
    pub timestamps: bool,
}

/// How a connection is set up: addresses, what to offer in the SYN, timers.
#[derive(Clone, Debug)]
pub struct Config {
    pub local_port: u16,
    pub remote_port: u16,
    /// The initial send sequence number (RFC 9293 §3.4.1).
    pub iss: SeqNumber,
    /// Our receive window in bytes (before scaling).
    pub window: u32,
    /// The MSS to announce in the SYN.
    pub mss: u16,
    /// The window scale to offer (RFC 7323 §2); `None` offers none.
    pub wscale: Option<u8>,
    /// Offer SACK (RFC 2018). synack never sends SACK blocks itself.
    pub sack_permitted: bool,
    /// Offer timestamps (RFC 7323 §3); kept on every segment when agreed.
    pub timestamps: bool,
    /// The RTO before any RTT was measured (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// The lower bound of the RTO once an RTT was measured (RFC 6298 §2.4).
    pub min_rto: Duration,
    /// The RTO after a handshake that gave no RTT sample (RFC 6298 §5.7).
    pub fallback_rto: Duration,
    /// Give up after this many retransmissions of one segment.
    pub max_retries: u32,
    /// How long TIME-WAIT lasts (RFC 9293's 2·MSL; Linux: 60 s).
    pub time_wait: Duration,
}

impl Config {
    /// The options Linux 6.x puts on its SYN: MSS 1460, SACK, timestamps,
    /// window scale 7; RTO bounds from RFC 6298.
    pub fn new(local_port: u16, remote_port: u16, iss: SeqNumber) -> Config {
        Config {
            local_port,
            remote_port,
            iss,
            window: DEFAULT_WINDOW,
            mss: DEFAULT_MSS,
            wscale: Some(DEFAULT_WSCALE),
            sack_permitted: true,
            timestamps: true,
            initial_rto: INITIAL_RTO,
            min_rto: INITIAL_RTO,
            fallback_rto: FALLBACK_RTO,
            max_retries: 6,
            time_wait: LINUX_TIME_WAIT,
        }
    }
}

/// Why a segment is sent: the narration says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendReason {
    /// Active open (RFC 9293 §3.10.1).
    Syn,
    /// SYN-ACK in a simultaneous open (§3.10.7.3).
    SynAck,
    /// Completes the three-way handshake (§3.10.7.3).
    HandshakeAck,
    /// Application data (§3.10.2).
    Data,
    /// Acknowledges received data or FIN (§3.10.7.4, seventh and eighth).
    Ack,
    /// Answers an unacceptable segment (§3.10.7.4, first check).
    DuplicateAck,
    /// RFC 5961 challenge ACK for a RST or SYN inside the window.
    ChallengeAck,
    /// Our FIN (§3.10.4).
    Fin,
    /// Abort (§3.10.5).
    Abort,
    /// A reset answering a segment that acknowledges something we never sent
    /// (§3.10.7.3, SYN-SENT, first check).
    ResetUnacceptableAck,
    /// A retransmission after the RTO expired; `attempt` counts from 1.
    /// After it, the connection goes back to SND.UNA (go-back-N).
    Retransmission { attempt: u32 },
    /// Go-back-N after an RTO (RFC 5681 §3.1, RFC 6298 §5): data that was
    /// outstanding when the timer expired, sent again (within the window)
    /// once the ACK of the first retransmission arrived. With SACK agreed,
    /// what the peer SACKed is not sent again: `sacked_skipped` bytes were
    /// passed over just before this segment (RFC 2018, RFC 6675 §5.1).
    GoBackN { sacked_skipped: u32 },
    /// A zero-window probe (RFC 9293 §3.8.6.1): one octet of new data sent
    /// into a zero window when the persist timer expired; `attempt` counts
    /// from 1, `next` is the backed-off persist timer after it.
    WindowProbe { attempt: u32, next: Duration },
}

impl SendReason {
    /// The segment carries sequence space that was sent before.
    pub fn is_retransmission(self) -> bool {
        matches!(
            self,
            SendReason::Retransmission { .. } | SendReason::GoBackN { .. }
        )
    }
}

/// What the connection asks of its caller, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Put this segment on the wire.
    Send {
        segment: SegmentRepr,
        reason: SendReason,
    },
    /// The state changed (every change goes through one place).
    StateChanged { from: State, to: State },
    /// In-order payload for the application.
    Received(Vec<u8>),
    /// The peer's FIN arrived: no more data will come.
    PeerClosed,
    /// The peer reset the connection (RFC 9293 §3.10.7.3/§3.10.7.4).
    Reset { state: State },
    /// A segment was dropped without effect; `why` says which rule.
    Ignored { why: &'static str },
    /// A segment was retransmitted `max_retries` times without an ACK.
    GaveUp { state: State },
}

impl Event {
    /// The state changes among `events`, in order.
    pub fn state_changes(events: &[Event]) -> Vec<(State, State)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { from, to } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }
}

/// What §3.10.7.4's seventh step (the segment text) leaves for the next.
struct TextOutcome {
    /// The segment's FIN may still be processed: it carried no data past a
    /// gap or after the peer's FIN.
    fin_in_order: bool,
    /// The data calls for an ACK.
    need_ack: bool,
}

/// An operation that the current state does not allow (RFC 9293 §3.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {op} in state {state}")]
pub struct InvalidState {
    pub op: &'static str,
    pub state: State,
}

/// One TCP connection (the client end, active open).
#[derive(Debug)]
pub struct Connection {
    cfg: Config,
    state: State,
    /// The clock origin for timestamps.
    epoch: Instant,
    /// Initial receive sequence number: the peer's ISN.
    irs: Option<SeqNumber>,
    /// Oldest unacknowledged sequence number.
    snd_una: SeqNumber,
    /// Next sequence number to be sent.
    snd_nxt: SeqNumber,
    /// The highest sequence number sent so far plus one (BSD's
    /// `snd_max`): after an RTO, SND.NXT goes back to SND.UNA (go-back-N)
    /// while this remembers how far the first flight went.
    snd_max: SeqNumber,
    /// The peer's receive window, scaled, in bytes.
    snd_wnd: u32,
    /// The largest window the peer offered (for sender SWS avoidance,
    /// RFC 9293 §3.8.6.2.1).
    max_snd_wnd: u32,
    /// Segment sequence and acknowledgment numbers of the last window
    /// update (RFC 9293 §3.10.7.4: SND.WL1, SND.WL2).
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Next sequence number expected from the peer.
    rcv_nxt: SeqNumber,
    /// The peer's MSS (536 when it announced none, RFC 9293 §3.7.1).
    peer_mss: u16,
    /// Shift applied to the peer's window field (RFC 7323 §2.3).
    snd_wscale: u8,
    /// Shift applied to our own window field.
    rcv_wscale: u8,
    /// Timestamps were agreed; the latest TSval to echo.
    ts_recent: Option<u32>,
    /// Both SYNs carried window scale.
    wscale_agreed: bool,
    /// Both SYNs carried SACK-permitted.
    sack_agreed: bool,
    /// Our SYN while it is unacknowledged (retransmitted on RTO).
    syn: Option<SegmentRepr>,
    /// The send queue: bytes the application gave to SEND that are not yet
    /// acknowledged, sent or not (RFC 9293 §3.8.6: only what fits the
    /// peer's window goes out). `tx[0]` has sequence number `tx_seq`.
    tx: VecDeque<u8>,
    tx_seq: SeqNumber,
    /// CLOSE was called: a FIN follows the queued data (RFC 9293 §3.10.4).
    fin_queued: bool,
    /// After an RTO: SND.MAX at that moment. Data below it that goes out
    /// again is a go-back-N retransmission.
    recover: Option<SeqNumber>,
    /// What the peer SACKed above SND.UNA (RFC 2018), merged and sorted;
    /// empty unless SACK was agreed.
    sacked: Vec<(SeqNumber, SeqNumber)>,
    /// The persist timer (RFC 9293 §3.8.6.1): when to probe a zero window.
    persist_at: Option<Instant>,
    /// The persist interval, backed off after each probe.
    persist_backoff: Duration,
    /// Probes sent since the window was last seen open.
    probes: u32,
    /// The end of the last probe's octet: an ACK up to it is acceptable.
    probe_end: Option<SeqNumber>,
    /// When the oldest of them was (first) sent, for an RTT sample.
    rtt_probe: Option<(SeqNumber, Instant)>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    retries: u32,
    retransmit_at: Option<Instant>,
    time_wait_until: Option<Instant>,
}

impl Connection {
    /// A connection in CLOSED, not yet opened.
    pub fn new(cfg: Config, now: Instant) -> Connection {
        let iss = cfg.iss;
        let rto = cfg.initial_rto;
        Connection {
            cfg,
            state: State::Closed,
            epoch: now,
            irs: None,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            rcv_nxt: SeqNumber(0),
            peer_mss: DEFAULT_PEER_MSS,
            snd_wscale: 0,
            rcv_wscale: 0,
            ts_recent: None,
            wscale_agreed: false,
            sack_agreed: false,
            syn: None,
            tx: VecDeque::new(),
            tx_seq: iss + 1,
            fin_queued: false,
            recover: None,
            sacked: Vec::new(),
            persist_at: None,
            persist_backoff: rto,
            probes: 0,
            probe_end: None,
            rtt_probe: None,
            srtt: None,
            rttvar: Duration::ZERO,
            rto,
            retries: 0,
            retransmit_at: None,
            time_wait_until: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    /// Our initial sequence number.
    pub fn iss(&self) -> SeqNumber {
        self.cfg.iss
    }
    /// The peer's initial sequence number, once its SYN arrived.
    pub fn irs(&self) -> Option<SeqNumber> {
        self.irs
    }
    pub fn snd_una(&self) -> SeqNumber {
        self.snd_una
    }
    pub fn snd_nxt(&self) -> SeqNumber {
        self.snd_nxt
    }
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    /// The peer's receive window (scaled), as last updated (SND.WND).
    pub fn snd_wnd(&self) -> u32 {
        self.snd_wnd
    }
    /// Bytes given to SEND and not yet sent (waiting for the window).
    pub fn unsent(&self) -> usize {
        let sent = (self.snd_max - self.tx_seq).clamp(0, self.tx.len() as i64) as usize;
        self.tx.len() - sent
    }
    /// Everything sent and queued is acknowledged (nothing waits).
    pub fn all_acked(&self) -> bool {
        self.tx.is_empty() && self.snd_una == self.snd_max
    }
    /// The persist interval the next zero-window probe waits (RFC 9293
    /// §3.8.6.1), backed off after each probe.
    pub fn persist_backoff(&self) -> Duration {
        self.persist_backoff
    }
    /// The current retransmission timeout (RFC 6298), backed off after
    /// each retransmission (§5.5).
    pub fn rto(&self) -> Duration {
        self.rto
    }
    /// The smoothed RTT (RFC 6298), once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// What the handshake agreed, once the peer's SYN arrived.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.irs?;
        Some(Negotiated {
            peer_mss: self.peer_mss,
            send_mss: self.send_mss(),
            wscale: self
                .wscale_agreed
                .then_some((self.rcv_wscale, self.snd_wscale)),
            sack: self.sack_agreed,
            timestamps: self.ts_recent.is_some(),
        })
    }

    /// RFC 9293 §3.7.1: data per segment is the MSS less the TCP options
    /// that every segment carries (the timestamps, when agreed). synack
    /// also keeps to its own announced MSS, as Linux does with
    /// `TCP_MAXSEG`.
    fn send_mss(&self) -> usize {
        let options = if self.ts_recent.is_some() {
            TIMESTAMPS_OPTION_LEN
        } else {
            0
        };
        usize::from(self.peer_mss.min(self.cfg.mss))
            .saturating_sub(options)
            .max(1)
    }

    /// When [`Connection::poll`] has work to do next, if ever.
    pub fn poll_at(&self) -> Option<Instant> {
        [self.retransmit_at, self.time_wait_until, self.persist_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// RFC 9293 §3.10.1, active OPEN: send a SYN and enter SYN-SENT.
    ///
    /// # Errors
    /// When the connection is not CLOSED.
    pub fn connect(&mut self, now: Instant) -> Result<Vec<Event>, InvalidState> {
        self.require(&[State::Closed], "connect")?;
        let mut events = Vec::new();
        let options = TcpOptions {
            mss: Some(self.cfg.mss),
            wscale: self.cfg.wscale,
            sack_permitted: self.cfg.sack_permitted,
            timestamps: self.cfg.timestamps.then(|| (self.ts_now(now), 0)),
            ..TcpOptions::default()
        };
        let syn = SegmentRepr {
            seq: self.cfg.iss,
            flags: Flags::SYN,
            // RFC 7323 §2.2: the window of a SYN is never scaled.
            window: self.cfg.window.min(u32::from(u16::MAX)) as u16,
            options,
            ..self.segment_base()
        };
        self.snd_una = self.cfg.iss;
        self.snd_nxt = self.cfg.iss + 1;
        self.snd_max = self.snd_nxt;
        self.tx_seq = self.snd_nxt;
        self.set_state(State::SynSent, &mut events);
        self.syn = Some(syn.clone());
        self.rtt_probe = Some((self.snd_nxt, now));
        self.retransmit_at = Some(now + self.rto);
        events.push(Event::Send {
            segment: syn,
            reason: SendReason::Syn,
        });
        Ok(events)
    }

    /// RFC 9293 §3.10.2, SEND: queue `data`; segments of at most the
    /// peer's MSS go out while they fit the peer's window (§3.8.6), the
    /// rest when ACKs open it (returned by [`Connection::on_segment`]).
    ///
    /// # Errors
    /// Outside ESTABLISHED and CLOSE-WAIT, or after CLOSE.
    pub fn send(&mut self, now: Instant, data: &[u8]) -> Result<Vec<Event>, InvalidState> {
        self.require(&[State::Established, State::CloseWait], "send data")?;
        let mut events = Vec::new();
        self.tx.extend(data);
        self.output(now, &mut events);
        Ok(events)
    }

    /// RFC 9293 §3.10.4, CLOSE: send FIN (ESTABLISHED → FIN-WAIT-1,
    /// CLOSE-WAIT → LAST-ACK); in SYN-SENT just forget the connection.
    ///
    /// # Errors
    /// In states where the FIN was already sent, or nothing is open.
    pub fn close(&mut self, now: Instant) -> Result<Vec<Event>, InvalidState> {
        let mut events = Vec::new();
        let next = match self.state {
            // "Delete the TCB and return 'closing' responses to any queued SENDs."
            State::SynSent => {
                self.clear_timers();
                self.set_state(State::Closed, &mut events);
                return Ok(events);
            }
            State::Established | State::SynReceived => State::FinWait1,
            State::CloseWait => State::LastAck,
            state => return Err(InvalidState { op: "close", state }),
        };
        // "Queue this until all preceding SENDs have been segmentized, then
        // form a FIN segment and send it. In any case, enter FIN-WAIT-1."
        self.fin_queued = true;
        self.set_state(next, &mut events);
        self.output(now, &mut events);
        Ok(events)
    }

    /// RFC 9293 §3.10.5, ABORT: send RST and enter CLOSED.
    pub fn abort(&mut self, _now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        // "<SEQ=SND.NXT><CTL=RST>": no ACK bit, so the acknowledgment
        // field is zero (tshark notes a nonzero one without ACK).
        let rst =
            (self.state.is_synchronized() && self.state != State::TimeWait).then(|| SegmentRepr {
                seq: self.snd_nxt,
                ack: SeqNumber(0),
                flags: Flags::RST,
                ..self.segment_base()
            });
        self.clear_timers();
        // The state change comes first, as for close(): the RST's line
        // then carries ESTABLISHED → CLOSED.
        self.set_state(State::Closed, &mut events);
        if let Some(segment) = rst {
            events.push(Event::Send {
                segment,
                reason: SendReason::Abort,
            });
        }
        events
    }

    /// Timers: retransmission (RFC 6298 §5) and the end of TIME-WAIT.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if self.time_wait_until.is_some_and(|at| now >= at) {
            self.time_wait_until = None;
            // RFC 9293 §3.10.8: "If the time-wait timeout expires on a
            // connection, delete the TCB, enter the CLOSED state."
            self.set_state(State::Closed, &mut events);
        }
        if self.retransmit_at.is_some_and(|at| now >= at) {
            if self.retries >= self.cfg.max_retries {
                self.clear_timers();
                events.push(Event::GaveUp { state: self.state });
                self.set_state(State::Closed, &mut events);
                return events;
            }
            if self.snd_una != self.snd_max {
                self.retries += 1;
                // RFC 6298 §5.5: back off the timer.
                self.rto = (self.rto * 2).min(MAX_RTO);
                // Karn: no RTT sample from a retransmitted segment.
                self.rtt_probe = None;
                self.retransmit_at = Some(now + self.rto);
                let reason = SendReason::Retransmission {
                    attempt: self.retries,
                };
                match self.syn.clone() {
                    Some(syn) => {
                        let segment = self.refresh(now, syn);
                        events.push(Event::Send { segment, reason });
                    }
                    None => {
                        // Go-back-N (RFC 5681 §3.1, RFC 6298 §5.4): resend
                        // the oldest segment now; the ACK it draws releases
                        // the rest of what was outstanding.
                        self.recover = Some(self.snd_max);
                        self.snd_nxt = self.snd_una;
                        self.send_one(now, Some(reason), &mut events);
                    }
                }
            } else {
                self.retransmit_at = None;
            }
        }
        if self.persist_at.is_some_and(|at| now >= at) {
            self.persist_at = None;
            self.probe(now, &mut events);
        }
        events
    }

    /// RFC 9293 §3.8.6.1: the persist timer expired with data waiting and a
    /// zero window: send one octet of new data, back the timer off.
    fn probe(&mut self, now: Instant, events: &mut Vec<Event>) {
        if self.snd_wnd != 0 || self.snd_nxt != self.snd_una || self.unsent_at_nxt() == 0 {
            return;
        }
        // No give-up here: "as long as the receiving TCP continues to send
        // acknowledgments in response to the probe segments, the sending
        // TCP MUST allow the connection to stay open" (§3.8.6.1); the
        // caller's own deadline bounds the wait.
        self.probes += 1;
        self.persist_backoff = (self.persist_backoff * 2).min(MAX_RTO);
        let offset = (self.snd_nxt - self.tx_seq).max(0) as usize;
        let seg = SegmentRepr {
            seq: self.snd_nxt,
            flags: Flags::PSH_ACK,
            payload: self.tx.range(offset..offset + 1).copied().collect(),
            ..self.segment_base()
        };
        self.probe_end = Some(self.snd_nxt + 1);
        self.persist_at = Some(now + self.persist_backoff);
        let segment = self.stamp(now, seg);
        events.push(Event::Send {
            segment,
            reason: SendReason::WindowProbe {
                attempt: self.probes,
                next: self.persist_backoff,
            },
        });
    }

    /// Bytes queued at or after SND.NXT.
    fn unsent_at_nxt(&self) -> usize {
        let offset = (self.snd_nxt - self.tx_seq).max(0) as usize;
        self.tx.len().saturating_sub(offset)
    }

    /// Sends what the window allows (RFC 9293 §3.8.6): segments of at most
    /// the MSS while `SND.NXT + len <= SND.UNA + SND.WND`, then the queued
    /// FIN once all data is out; arms the persist timer when data waits for
    /// a zero window.
    fn output(&mut self, now: Instant, events: &mut Vec<Event>) {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return;
        }
        // Bounded: every turn sends a segment that advances SND.NXT.
        for _ in 0..=self.tx.len() + 1 {
            if !self.send_one(now, None, events) {
                break;
            }
        }
        let waiting = self.unsent_at_nxt() > 0;
        if waiting && self.snd_wnd == 0 && self.snd_nxt == self.snd_una {
            if self.persist_at.is_none() {
                if self.probes == 0 {
                    self.persist_backoff = self.rto;
                }
                self.persist_at = Some(now + self.persist_backoff);
            }
        } else {
            self.persist_at = None;
        }
    }

    /// Sends the segment at SND.NXT when the window (and, for a first
    /// transmission, sender SWS avoidance) allows; `forced` is the reason
    /// for the RTO's retransmission, which goes out whatever SWS says.
    /// Returns whether a segment went out.
    fn send_one(
        &mut self,
        now: Instant,
        forced: Option<SendReason>,
        events: &mut Vec<Event>,
    ) -> bool {
        let skipped = if forced.is_none() {
            self.skip_sacked()
        } else {
            0
        };
        let recovering = |nxt: SeqNumber| self.recover.is_some_and(|r| nxt < r);
        // A go-back-N segment ends where the next SACKed block starts.
        let sacked_edge = recovering(self.snd_nxt)
            .then(|| self.sacked.iter().map(|b| b.0).find(|l| *l > self.snd_nxt))
            .flatten();
        let offset = (self.snd_nxt - self.tx_seq).max(0) as usize;
        let mut avail = self.tx.len().saturating_sub(offset);
        if let Some(edge) = sacked_edge {
            avail = avail.min((edge - self.snd_nxt) as usize);
        }
        let win_end = self.snd_una + self.snd_wnd as usize;
        let room = (win_end - self.snd_nxt).max(0) as usize;
        let mss = self.send_mss();
        let in_flight = self.snd_nxt != self.snd_una;
        let (payload_len, fin) = if avail > 0 {
            // The RTO's retransmission into a window that closed meanwhile
            // is one octet: it probes the window (§3.8.6.1).
            let len = match forced {
                Some(_) if room == 0 => 1,
                _ => avail.min(mss).min(room),
            };
            // RFC 9293 §3.8.6.2.1: a full segment, the last of the queue,
            // or half the largest window seen; or anything when nothing is
            // in flight (no ACK would come to release it).
            let sws_ok =
                len == mss || len == avail || 2 * len >= self.max_snd_wnd as usize || !in_flight;
            if len == 0 || !(sws_ok || forced.is_some()) {
                return false;
            }
            (len, false)
        } else if self.fin_queued && self.snd_nxt == self.tx_seq + self.tx.len() {
            // The FIN takes no window (it carries no data).
            (0, true)
        } else {
            return false;
        };
        let seq = self.snd_nxt;
        let seg = SegmentRepr {
            seq,
            flags: if fin { Flags::FIN_ACK } else { Flags::PSH_ACK },
            payload: self
                .tx
                .range(offset..offset + payload_len)
                .copied()
                .collect(),
            ..self.segment_base()
        };
        let end = seq + seg.seq_len();
        let again = seq < self.snd_max;
        let reason = match forced {
            Some(reason) => reason,
            None if again && self.recover.is_some_and(|r| seq < r) => SendReason::GoBackN {
                sacked_skipped: skipped,
            },
            None if fin => SendReason::Fin,
            None => SendReason::Data,
        };
        self.record_sent(now, end, again);
        let segment = self.stamp(now, seg);
        events.push(Event::Send { segment, reason });
        true
    }

    /// Going back after an RTO: moves SND.NXT over what the peer already
    /// SACKed. Returns how many octets were passed over.
    fn skip_sacked(&mut self) -> u32 {
        let mut skipped = 0;
        if self.recover.is_some_and(|r| self.snd_nxt < r) {
            for &(left, right) in &self.sacked {
                if left <= self.snd_nxt && self.snd_nxt < right {
                    skipped += (right - self.snd_nxt) as u32;
                    self.snd_nxt = right;
                }
            }
        }
        skipped
    }

    /// A segment ending at `end` went out (`again`: it had gone out
    /// before): advances SND.NXT and SND.MAX, starts an RTT sample for new
    /// data (Karn: none after a retransmission) and arms the retransmission
    /// timer.
    fn record_sent(&mut self, now: Instant, end: SeqNumber, again: bool) {
        self.snd_nxt = end;
        if end > self.snd_max {
            self.snd_max = end;
        }
        if !again && self.rtt_probe.is_none() && self.retries == 0 {
            self.rtt_probe = Some((end, now));
        }
        if self.retransmit_at.is_none() {
            self.retransmit_at = Some(now + self.rto);
        }
    }

    /// RFC 9293 §3.10.7: processes one segment that arrived for this
    /// connection (the caller has matched the ports).
    pub fn on_segment(&mut self, now: Instant, seg: &SegmentRepr) -> Vec<Event> {
        let mut events = Vec::new();
        match self.state {
            // §3.10.7.1: "all data in the incoming segment is discarded";
            // a RST is answered by nothing, anything else by a RST. synack
            // leaves that RST to the caller's choice: it only reports.
            State::Closed | State::Listen => events.push(Event::Ignored {
                why: "no connection (CLOSED)",
            }),
            State::SynSent => self.on_segment_syn_sent(now, seg, &mut events),
            _ => self.on_segment_synchronized(now, seg, &mut events),
        }
        events
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &SegmentRepr, events: &mut Vec<Event>) {
        // First, check the ACK bit: it must acknowledge our SYN.
        let ack = seg.ack_number();
        let ack_acceptable = ack.map(|a| a > self.cfg.iss && a <= self.snd_nxt);
        if ack_acceptable == Some(false) {
            if seg.flags.rst() {
                events.push(Event::Ignored {
                    why: "RST with an unacceptable ACK in SYN-SENT",
                });
            } else {
                // "<SEQ=SEG.ACK><CTL=RST>" and discard the segment.
                let rst = SegmentRepr {
                    seq: seg.ack,
                    flags: Flags::RST,
                    ..self.segment_base()
                };
                events.push(Event::Send {
                    segment: rst,
                    reason: SendReason::ResetUnacceptableAck,
                });
            }
            return;
        }
        // Second, the RST bit: with an acceptable ACK the peer refused us.
        if seg.flags.rst() {
            if ack_acceptable == Some(true) {
                self.clear_timers();
                events.push(Event::Reset { state: self.state });
                self.set_state(State::Closed, events);
            } else {
                events.push(Event::Ignored {
                    why: "RST without ACK in SYN-SENT",
                });
            }
            return;
        }
        // Fourth, the SYN bit.
        if !seg.flags.syn() {
            events.push(Event::Ignored {
                why: "neither SYN nor RST in SYN-SENT",
            });
            return;
        }
        self.irs = Some(seg.seq);
        self.rcv_nxt = seg.seq + 1;
        self.learn_peer_options(seg);
        if let Some(ack) = ack {
            self.acknowledge(now, ack);
        }
        if self.snd_una > self.cfg.iss {
            self.complete_handshake(now, seg, events);
        } else {
            // Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment".
            self.set_state(State::SynReceived, events);
            let syn_ack = SegmentRepr {
                seq: self.cfg.iss,
                flags: Flags::SYN_ACK,
                ..self.segment_base()
            };
            events.push(Event::Send {
                segment: syn_ack,
                reason: SendReason::SynAck,
            });
        }
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT, fourth step, once our SYN is ACKed:
    /// "If SND.UNA > ISS (our SYN has been ACKed), change the connection
    /// state to ESTABLISHED, form an ACK segment."
    fn complete_handshake(&mut self, now: Instant, seg: &SegmentRepr, events: &mut Vec<Event>) {
        self.snd_wnd = u32::from(seg.window); // not scaled on a SYN
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = self.snd_una;
        if self.srtt.is_none() {
            // RFC 6298 §5.7: the SYN was retransmitted, so no RTT
            // sample (Karn); "the RTO MUST be re-initialized to 3
            // seconds when data transmission begins".
            self.rto = self.cfg.fallback_rto;
        }
        self.set_state(State::Established, events);
        let ack = self.stamp(
            now,
            SegmentRepr {
                flags: Flags::ACK,
                ..self.segment_base()
            },
        );
        events.push(Event::Send {
            segment: ack,
            reason: SendReason::HandshakeAck,
        });
    }

    /// RFC 9293 §3.10.7.4, every synchronized state.
    fn on_segment_synchronized(
        &mut self,
        now: Instant,
        seg: &SegmentRepr,
        events: &mut Vec<Event>,
    ) {
        // RFC 9293 §3.10.7.4 in its order; the third step (security) does
        // not apply, and each step may drop the segment.
        if self.check_sequence(now, seg, events).is_break()
            || self.check_rst(now, seg, events).is_break()
            || self.check_syn(now, seg, events).is_break()
        {
            return;
        }
        let ControlFlow::Continue(fin_acked) = self.check_ack(now, seg, events) else {
            return;
        };
        let text = self.process_text(seg, events);
        let fin_ack = self.check_fin(now, seg, fin_acked, text.fin_in_order, events);
        if text.need_ack || fin_ack {
            self.send_ack(now, events, SendReason::Ack);
        }
        // What the ACK (or the window update) released.
        self.output(now, events);
    }

    /// §3.10.7.4 first: check the sequence number. An unacceptable
    /// segment is dropped, and unless it is a RST it gets
    /// "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>".
    fn check_sequence(
        &mut self,
        now: Instant,
        seg: &SegmentRepr,
        events: &mut Vec<Event>,
    ) -> ControlFlow<()> {
        if !self.acceptable(seg) {
            if seg.flags.rst() {
                events.push(Event::Ignored {
                    why: "RST outside the receive window",
                });
            } else {
                // "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>": this is what a
                // duplicate SYN-ACK or a retransmitted FIN gets.
                if self.state == State::TimeWait && seg.flags.fin() {
                    // §3.10.7.4 eighth: restart the 2 MSL time-wait timeout.
                    self.time_wait_until = Some(now + self.cfg.time_wait);
                }
                self.send_ack(now, events, SendReason::DuplicateAck);
            }
            return ControlFlow::Break(());
        }
        self.remember_timestamp(seg);
        ControlFlow::Continue(())
    }

    /// §3.10.7.4 second: check the RST bit (with RFC 5961 §3.2: only an
    /// exact match resets, anything else in the window gets a challenge
    /// ACK).
    fn check_rst(
        &mut self,
        now: Instant,
        seg: &SegmentRepr,
        events: &mut Vec<Event>,
    ) -> ControlFlow<()> {
        if !seg.flags.rst() {
            return ControlFlow::Continue(());
        }
        if seg.seq == self.rcv_nxt {
            self.clear_timers();
            let state = self.state;
            if !matches!(state, State::Closing | State::LastAck | State::TimeWait) {
                events.push(Event::Reset { state });
            }
            self.set_state(State::Closed, events);
        } else {
            self.send_ack(now, events, SendReason::ChallengeAck);
        }
        ControlFlow::Break(())
    }

    /// §3.10.7.4 fourth: a SYN in a synchronized state gets an RFC 5961
    /// §4.2 challenge ACK.
    fn check_syn(
        &mut self,
        now: Instant,
        seg: &SegmentRepr,
        events: &mut Vec<Event>,
    ) -> ControlFlow<()> {
        if seg.flags.syn() {
            self.send_ack(now, events, SendReason::ChallengeAck);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// §3.10.7.4 fifth: check the ACK field ("if the ACK bit is off, drop
    /// the segment"). Continues with whether our FIN is now acknowledged.
    fn check_ack(
        &mut self,
        now: Instant,
        seg: &SegmentRepr,
        events: &mut Vec<Event>,
    ) -> ControlFlow<(), bool> {
        let Some(ack) = seg.ack_number() else {
            events.push(Event::Ignored {
                why: "no ACK bit in a synchronized state",
            });
            return ControlFlow::Break(());
        };
        if ack > self.ack_limit() {
            // "If the ACK acks something not yet sent, send an ACK, drop."
            self.send_ack(now, events, SendReason::DuplicateAck);
            return ControlFlow::Break(());
        }
        match self.state {
            // SYN-RECEIVED: an acceptable ACK completes the simultaneous open.
            State::SynReceived => {
                if ack > self.snd_una {
                    self.acknowledge(now, ack);
                    // "set SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK"
                    self.update_window(seg, ack);
                    self.set_state(State::Established, events);
                } else {
                    let rst = SegmentRepr {
                        seq: ack,
                        flags: Flags::RST,
                        ..self.segment_base()
                    };
                    events.push(Event::Send {
                        segment: rst,
                        reason: SendReason::ResetUnacceptableAck,
                    });
                    return ControlFlow::Break(());
                }
            }
            _ => {
                if ack > self.snd_una {
                    self.acknowledge(now, ack);
                }
                self.record_sack(seg);
                // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should
                // be updated. If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ
                // and SND.WL2 =< SEG.ACK))": no old segment shrinks it.
                if ack >= self.snd_una
                    && (self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= ack))
                {
                    self.update_window(seg, ack);
                }
            }
        }
        let fin_acked = self.fin_acked();
        match self.state {
            // FIN-WAIT-1: "if the FIN segment is now acknowledged, enter
            // FIN-WAIT-2".
            State::FinWait1 if fin_acked => self.set_state(State::FinWait2, events),
            // CLOSING: "if the ACK acknowledges our FIN, enter TIME-WAIT".
            State::Closing if fin_acked => self.enter_time_wait(now, events),
            // LAST-ACK: "if our FIN is now acknowledged, delete the TCB,
            // enter the CLOSED state".
            State::LastAck if fin_acked => {
                self.set_state(State::Closed, events);
                return ControlFlow::Break(());
            }
            _ => {}
        }
        ControlFlow::Continue(fin_acked)
    }

    /// §3.10.7.4 seventh: process the segment text, ours to read in
    /// ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2. Only data that starts at
    /// RCV.NXT (after trimming what we already have) is taken; later data
    /// is not queued.
    fn process_text(&mut self, seg: &SegmentRepr, events: &mut Vec<Event>) -> TextOutcome {
        let mut out = TextOutcome {
            fin_in_order: seg.flags.fin(),
            need_ack: false,
        };
        if seg.payload.is_empty() {
            return out;
        }
        let already = (self.rcv_nxt - seg.seq).max(0) as usize;
        if seg.seq > self.rcv_nxt {
            events.push(Event::Ignored {
                why: "out-of-order data (not queued)",
            });
            out.fin_in_order = false;
            out.need_ack = true;
        } else if matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            if already < seg.payload.len() {
                let fresh = seg.payload[already..].to_vec();
                self.rcv_nxt = self.rcv_nxt + fresh.len();
                events.push(Event::Received(fresh));
            }
            out.need_ack = true;
        } else {
            out.fin_in_order = false;
            events.push(Event::Ignored {
                why: "data after the peer's FIN",
            });
        }
        out
    }

    /// §3.10.7.4 eighth: check the FIN bit, when it is the next thing we
    /// expect. Returns whether the FIN calls for an ACK.
    fn check_fin(
        &mut self,
        now: Instant,
        seg: &SegmentRepr,
        fin_acked: bool,
        fin_in_order: bool,
        events: &mut Vec<Event>,
    ) -> bool {
        if fin_in_order && seg.seq + seg.payload.len() == self.rcv_nxt {
            self.rcv_nxt = self.rcv_nxt + 1;
            events.push(Event::PeerClosed);
            match self.state {
                // "ESTABLISHED STATE: Enter the CLOSE-WAIT state."
                State::SynReceived | State::Established => self.set_state(State::CloseWait, events),
                // "FIN-WAIT-1 STATE: If our FIN has been ACKed ..., then
                // enter TIME-WAIT ...; otherwise, enter the CLOSING state."
                State::FinWait1 if fin_acked => self.enter_time_wait(now, events),
                State::FinWait1 => self.set_state(State::Closing, events),
                // "FIN-WAIT-2 STATE: Enter the TIME-WAIT state."
                State::FinWait2 => self.enter_time_wait(now, events),
                // "TIME-WAIT STATE: Restart the 2 MSL time-wait timeout."
                State::TimeWait => self.time_wait_until = Some(now + self.cfg.time_wait),
                _ => {}
            }
            true
        } else if seg.flags.fin() && seg.payload.is_empty() && seg.seq > self.rcv_nxt {
            // A FIN beyond a gap (the data before it was lost): not
            // processed; RFC 5681 §4.2, an out-of-order segment is ACKed at
            // once (a duplicate ACK that tells the sender what is missing).
            events.push(Event::Ignored {
                why: "out-of-order FIN (the data before it is missing)",
            });
            true
        } else {
            false
        }
    }

    /// RFC 2018 §3: the peer holds the blocks of `seg`'s SACK option; keep
    /// those above SND.UNA, merged (a D-SACK below it, RFC 2883, is old).
    fn record_sack(&mut self, seg: &SegmentRepr) {
        if self.sack_agreed {
            for (left, right) in seg.options.sack.iter().flatten().copied() {
                if left < right && right > self.snd_una && right <= self.snd_max {
                    self.sacked.push((left.max(self.snd_una), right));
                }
            }
        }
        let una = self.snd_una;
        self.sacked.retain(|b| b.1 > una);
        for block in &mut self.sacked {
            block.0 = block.0.max(una);
        }
        self.sacked
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut merged: Vec<(SeqNumber, SeqNumber)> = Vec::with_capacity(self.sacked.len());
        for (left, right) in self.sacked.drain(..) {
            match merged.last_mut() {
                Some(last) if left <= last.1 => last.1 = last.1.max(right),
                _ => merged.push((left, right)),
            }
        }
        self.sacked = merged;
    }

    /// The largest acceptable SEG.ACK: SND.MAX, or the end of a zero-window
    /// probe's octet.
    fn ack_limit(&self) -> SeqNumber {
        match self.probe_end {
            Some(end) => end.max(self.snd_max),
            None => self.snd_max,
        }
    }

    /// Our FIN went out and is acknowledged.
    fn fin_acked(&self) -> bool {
        self.fin_queued && self.tx.is_empty() && self.snd_una == self.tx_seq + 1
    }

    /// SND.WND, SND.WL1, SND.WL2 from `seg` (RFC 9293 §3.10.7.4, fifth;
    /// RFC 7323 §2.3: windows of non-SYN segments are scaled).
    fn update_window(&mut self, seg: &SegmentRepr, ack: SeqNumber) {
        self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = ack;
        if self.snd_wnd > 0 {
            // The window opened: the probes are over, the next persist
            // period starts afresh.
            self.probes = 0;
            self.persist_at = None;
        }
    }

    /// RFC 9293 §3.10.7.4, the four cases of segment acceptability.
    fn acceptable(&self, seg: &SegmentRepr) -> bool {
        let rcv_wnd = self.rcv_wnd() as usize;
        let len = seg.seq_len();
        let in_window = |seq: SeqNumber| seq >= self.rcv_nxt && seq < self.rcv_nxt + rcv_wnd;
        match (len, rcv_wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => in_window(seg.seq),
            (_, 0) => false,
            (len, _) => in_window(seg.seq) || in_window(seg.seq + (len - 1)),
        }
    }

    /// SND.UNA moves to `ack`: drop what it covers from the retransmission
    /// queue and take an RTT sample (RFC 6298 §2, §5.3).
    fn acknowledge(&mut self, now: Instant, ack: SeqNumber) {
        self.snd_una = ack;
        if ack > self.cfg.iss {
            self.syn = None;
        }
        let acked = (ack - self.tx_seq).clamp(0, self.tx.len() as i64) as usize;
        self.tx.drain(..acked);
        self.tx_seq = self.tx_seq + acked;
        // A probe's octet may be acknowledged beyond SND.MAX.
        if ack > self.snd_max {
            self.snd_max = ack;
        }
        if ack > self.snd_nxt {
            self.snd_nxt = ack;
        }
        if self.probe_end.is_some_and(|end| ack >= end) {
            self.probe_end = None;
        }
        if self.recover.is_some_and(|r| ack >= r) {
            self.recover = None;
        }
        if let Some((probe_end, sent_at)) = self.rtt_probe {
            if ack >= probe_end {
                self.rtt_probe = None;
                self.sample_rtt(now.saturating_duration_since(sent_at));
            }
        }
        self.retries = 0;
        if self.snd_una == self.snd_max {
            self.retransmit_at = None;
        } else {
            // RFC 6298 §5.3: restart the timer when new data is ACKed.
            self.retransmit_at = Some(now + self.rto);
        }
    }

    /// RFC 6298 §2.2–2.4.
    fn sample_rtt(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = (srtt + self.rttvar * 4).clamp(self.cfg.min_rto, MAX_RTO);
    }

    fn learn_peer_options(&mut self, syn: &SegmentRepr) {
        if let Some(mss) = syn.options.mss {
            self.peer_mss = mss;
        }
        // RFC 7323 §2.2: scaling applies only when both SYNs carried it;
        // §2.3: a shift above 14 is taken as 14.
        if let (Some(ours), Some(theirs)) = (self.cfg.wscale, syn.options.wscale) {
            self.rcv_wscale = ours.min(MAX_WSCALE);
            self.snd_wscale = theirs.min(MAX_WSCALE);
            self.wscale_agreed = true;
        }
        // RFC 2018 §2: SACK may be used only when both SYNs permitted it.
        self.sack_agreed = self.cfg.sack_permitted && syn.options.sack_permitted;
        // RFC 7323 §3.2: timestamps only when both SYNs carried them.
        if self.cfg.timestamps {
            self.ts_recent = syn.options.timestamps.map(|(val, _)| val);
        }
    }

    fn remember_timestamp(&mut self, seg: &SegmentRepr) {
        if let (Some(_), Some((val, _))) = (self.ts_recent, seg.options.timestamps) {
            self.ts_recent = Some(val);
        }
    }

    fn enter_time_wait(&mut self, now: Instant, events: &mut Vec<Event>) {
        self.retransmit_at = None;
        self.persist_at = None;
        self.time_wait_until = Some(now + self.cfg.time_wait);
        self.set_state(State::TimeWait, events);
    }

    fn clear_timers(&mut self) {
        self.retransmit_at = None;
        self.time_wait_until = None;
        self.persist_at = None;
        self.syn = None;
        self.tx.clear();
        self.sacked.clear();
    }

    /// Every state change goes through here (smoltcp's `set_state`).
    fn set_state(&mut self, to: State, events: &mut Vec<Event>) {
        if self.state != to {
            log::debug!("state={}=>{}", self.state, to);
            events.push(Event::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn require(&self, allowed: &[State], op: &'static str) -> Result<(), InvalidState> {
        if allowed.contains(&self.state) {
            Ok(())
        } else {
            Err(InvalidState {
                op,
                state: self.state,
            })
        }
    }

    /// Milliseconds since the connection was made: our TSval clock.
    fn ts_now(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// The receive window as the peer sees it: the configured window,
    /// capped at what the 16-bit field can say with the agreed shift.
    fn rcv_wnd(&self) -> u32 {
        (self.cfg.window >> self.rcv_wscale).min(u32::from(u16::MAX)) << self.rcv_wscale
    }

    /// Ports, ACK, window for a segment sent now; timestamps are added by
    /// [`Connection::stamp`].
    fn segment_base(&self) -> SegmentRepr {
        let window = if self.state == State::Closed || self.state == State::SynSent {
            self.cfg.window.min(u32::from(u16::MAX))
        } else {
            (self.cfg.window >> self.rcv_wscale).min(u32::from(u16::MAX))
        };
        SegmentRepr {
            src_port: self.cfg.local_port,
            dst_port: self.cfg.remote_port,
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: window as u16,
            options: TcpOptions::default(),
            payload: Vec::new(),
        }
    }

    /// Adds the timestamp option when it was agreed (RFC 7323 §3.2: then
    /// every segment but a RST carries it).
    fn stamp(&self, now: Instant, mut seg: SegmentRepr) -> SegmentRepr {
        if let Some(recent) = self.ts_recent {
            if (!seg.flags.syn() || seg.flags.ack()) && !seg.flags.rst() {
                seg.options.timestamps = Some((self.ts_now(now), recent));
            }
        }
        seg
    }

    /// A queued segment as it goes out again: current ACK, window, stamp.
    fn refresh(&self, now: Instant, mut seg: SegmentRepr) -> SegmentRepr {
        if seg.flags.ack() {
            seg.ack = self.rcv_nxt;
            seg.window = self.segment_base().window;
        }
        if seg.flags.syn() && !seg.flags.ack() {
            if let Some((_, ecr)) = seg.options.timestamps {
                seg.options.timestamps = Some((self.ts_now(now), ecr));
            }
            return seg;
        }
        self.stamp(now, seg)
    }

    fn send_ack(&self, now: Instant, events: &mut Vec<Event>, reason: SendReason) {
        let seg = self.stamp(
            now,
            SegmentRepr {
                flags: Flags::ACK,
                ..self.segment_base()
            },
        );
        events.push(Event::Send {
            segment: seg,
            reason,
        });
    }
}

/// The flags byte of a RST that answers `seg` when no connection exists
/// (RFC 9293 §3.10.7.1): with ACK when `seg` had none.
pub fn reset_for(seg: &SegmentRepr) -> SegmentRepr {
    if seg.flags.ack() {
        SegmentRepr {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq: seg.ack,
            flags: Flags::RST,
            ..SegmentRepr::default()
        }
    } else {
        SegmentRepr {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq: SeqNumber(0),
            ack: seg.seq + seg.seq_len(),
            flags: Flags(TcpFlags::RST | TcpFlags::ACK),
            ..SegmentRepr::default()
        }
    }
}
