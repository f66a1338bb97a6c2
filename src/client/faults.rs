//! Fault injection and teardown choreography for the client: which
//! segments are lost on purpose ([`DropSpec`], parsed from `--drop SPEC`),
//! how the connection ends beyond a plain FIN exchange ([`Teardown`]), and
//! the small policy object ([`Faults`]) the client asks, segment by
//! segment, whether to deliver, ignore or cross.
//!
//! Pure: no sockets, no clock (times are passed in). The engine without
//! faults ([`Faults::default`]) is what `synack connect` drives.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use crate::tcp::State;
use crate::wire::{self, SegmentRepr, SeqNumber};

/// How the connection ends, beyond who sends the first FIN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Teardown {
    /// The FIN exchange (`--close client|server`).
    #[default]
    Fin,
    /// Both FINs cross: both ends go FIN-WAIT-1 → CLOSING → TIME-WAIT
    /// (RFC 9293 §3.10.7.4, Figure 13). The server closes right after its
    /// reply; the client, on seeing that FIN in ESTABLISHED, first sends its
    /// own FIN whose ACK does not cover the server's FIN, then processes it.
    Simultaneous,
    /// The client sends RST instead of FIN after the exchange (§3.10.5).
    AbortClient,
    /// The server sets SO_LINGER 0 and closes: its kernel sends RST.
    AbortServer,
    /// The client shuts down its sending side after its data; the server
    /// reads EOF, still sends its reply, then closes (§3.10.7.4: FIN-WAIT-2
    /// still receives).
    HalfClose,
}

/// One segment to lose once (see [`DropSpec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropItem {
    /// The client's SYN.
    Syn,
    /// The client's Nth data segment (from 1).
    Data(u32),
    /// The client's FIN.
    Fin,
    /// The client's ACK of the server's FIN, sent on entering TIME-WAIT.
    FinalAck,
    /// The server's SYN-ACK.
    SynAck,
    /// The server's FIN.
    ServerFin,
    /// The server's first data segment (its reply).
    DataReply,
}

impl DropItem {
    /// Whether the client sends this segment (lost on the way out: recorded
    /// as leaving, not delivered) rather than receives it (recorded on
    /// arrival, ignored).
    pub fn is_outgoing(self) -> bool {
        matches!(
            self,
            DropItem::Syn | DropItem::Data(_) | DropItem::Fin | DropItem::FinalAck
        )
    }
}

impl fmt::Display for DropItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropItem::Syn => f.write_str("syn"),
            DropItem::Data(n) => write!(f, "data:{n}"),
            DropItem::Fin => f.write_str("fin"),
            DropItem::FinalAck => f.write_str("final-ack"),
            DropItem::SynAck => f.write_str("synack"),
            DropItem::ServerFin => f.write_str("server-fin"),
            DropItem::DataReply => f.write_str("data-reply"),
        }
    }
}

/// The accepted words, for error messages and help.
pub const DROP_WORDS: &str = "syn, data:N, fin, final-ack, synack, server-fin, data-reply";

/// `--drop SPEC`: the segments to lose, each once per time it is named
/// (`syn,syn` loses the SYN and its first retransmission, so the RTO's
/// back-off shows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropSpec {
    items: Vec<DropItem>,
}

/// Why a `--drop` SPEC is not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropSpecError {
    #[error("empty --drop SPEC; give a comma-separated list of: {DROP_WORDS}")]
    Empty,
    #[error("empty item in --drop SPEC {0:?} (two commas in a row, or a trailing comma)")]
    EmptyItem(String),
    #[error("unknown segment {0:?} in --drop SPEC; known: {DROP_WORDS}")]
    Unknown(String),
    #[error("data:N wants a segment number from 1, not {0:?}")]
    BadDataIndex(String),
    #[error("{item} is named {times} times in --drop SPEC; at most {max}")]
    TooMany {
        item: DropItem,
        times: usize,
        max: usize,
    },
}

/// How often one item may be named: each loss costs a timeout that doubles
/// (1 s, 2 s, 4 s for the SYN), and `--timeout` must still fit them.
pub const MAX_REPEATS: usize = 3;

impl FromStr for DropSpec {
    type Err = DropSpecError;

    fn from_str(spec: &str) -> Result<DropSpec, DropSpecError> {
        if spec.trim().is_empty() {
            return Err(DropSpecError::Empty);
        }
        let mut items = Vec::new();
        for word in spec.split(',') {
            let word = word.trim();
            let item = match word.to_ascii_lowercase().as_str() {
                "" => return Err(DropSpecError::EmptyItem(spec.to_string())),
                "syn" => DropItem::Syn,
                "fin" => DropItem::Fin,
                "final-ack" => DropItem::FinalAck,
                "synack" | "syn-ack" => DropItem::SynAck,
                "server-fin" => DropItem::ServerFin,
                "data-reply" => DropItem::DataReply,
                "data" => DropItem::Data(1),
                other => match other.strip_prefix("data:") {
                    Some(n) => match n.parse::<u32>() {
                        Ok(n) if n >= 1 => DropItem::Data(n),
                        _ => return Err(DropSpecError::BadDataIndex(n.to_string())),
                    },
                    None => return Err(DropSpecError::Unknown(word.to_string())),
                },
            };
            items.push(item);
        }
        let spec = DropSpec { items };
        for item in &spec.items {
            let times = spec.count(*item);
            if times > MAX_REPEATS {
                return Err(DropSpecError::TooMany {
                    item: *item,
                    times,
                    max: MAX_REPEATS,
                });
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for DropSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.items.iter().map(ToString::to_string).collect();
        f.write_str(&words.join(","))
    }
}

impl DropSpec {
    /// Nothing is lost.
    pub fn none() -> DropSpec {
        DropSpec::default()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// How many times `item` is to be lost.
    pub fn count(&self, item: DropItem) -> usize {
        self.items.iter().filter(|i| **i == item).count()
    }
    pub fn contains(&self, item: DropItem) -> bool {
        self.count(item) > 0
    }
    /// The distinct items, in the order first named.
    pub fn items(&self) -> Vec<DropItem> {
        let mut seen = Vec::new();
        for item in &self.items {
            if !seen.contains(item) {
                seen.push(*item);
            }
        }
        seen
    }
}

/// What the client is asked to do beyond a plain exchange: how the
/// connection ends, and which segments are lost. The default is none of
/// it, which is what `synack connect` runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub teardown: Teardown,
    pub drops: DropSpec,
}

/// The policy at work: what [`Faults`] asked for and what of it happened,
/// consulted by the client for every segment in and out.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    teardown: Teardown,
    /// `(item, losses left)` for every `--drop` item.
    drops_left: Vec<(DropItem, usize)>,
    /// The sequence number of each data segment, in the order first sent.
    data_seqs: Vec<SeqNumber>,
    /// Server segments ignored on purpose: what, its sequence number, when.
    ignored: Vec<(DropItem, SeqNumber, Instant)>,
    /// The final ACK was lost on purpose; the server's FIN came again.
    final_ack_lost: bool,
    fin_again_in_time_wait: bool,
    /// The server's RST ended the connection, as `--abort server` asked.
    reset_as_asked: bool,
    /// Bytes that arrived after our FIN left (the half-close).
    bytes_after_our_fin: usize,
    went_through_closing: bool,
}

/// A server segment that is the server's kernel sending again what we
/// ignored on purpose (or the FIN our lost final ACK should have
/// acknowledged).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServerRetransmission {
    /// Of `item`, this long after the copy we ignored.
    Of {
        item: DropItem,
        after: std::time::Duration,
    },
    /// The server's FIN, because our final ACK was lost.
    FinAfterLostFinalAck,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> FaultState {
        let drops = &faults.drops;
        FaultState {
            teardown: faults.teardown,
            drops_left: drops
                .items()
                .into_iter()
                .map(|item| (item, drops.count(item)))
                .collect(),
            ..FaultState::default()
        }
    }

    pub(crate) fn teardown(&self) -> Teardown {
        self.teardown
    }

    pub(crate) fn went_through_closing(&mut self) {
        self.went_through_closing = true;
    }

    pub(crate) fn received_after_our_fin(&mut self, bytes: usize) {
        self.bytes_after_our_fin += bytes;
    }

    /// Whether the peer's RST in `state` is what `--abort server` asked
    /// for (then it is no failure).
    pub(crate) fn reset_as_asked(&mut self, state: State) -> bool {
        let asked = self.teardown == Teardown::AbortServer && state.is_synchronized();
        self.reset_as_asked |= asked;
        asked
    }

    /// Whether the client may close now, when the teardown decides it
    /// (`None`: the client's own rule decides). An `Err` says why the
    /// scenario cannot happen any more.
    pub(crate) fn may_close(&self, peer_closed: bool) -> Option<Result<bool, String>> {
        match self.teardown {
            // The server's RST ends it; a FIN instead is a failure.
            Teardown::AbortServer if peer_closed => Some(Err(
                "--abort server: the server closed with FIN, not RST (SO_LINGER 0)".into(),
            )),
            Teardown::AbortServer => Some(Ok(false)),
            // The FIN goes when the server's FIN arrives (see
            // `crosses_fins`); a FIN processed before that means they did
            // not cross.
            Teardown::Simultaneous if peer_closed => Some(Err(
                "--close simultaneous: the server's FIN was processed before ours left".into(),
            )),
            Teardown::Simultaneous => Some(Ok(false)),
            // Shut down the sending side as soon as the data is acked,
            // without waiting for the reply.
            Teardown::HalfClose => Some(Ok(true)),
            Teardown::Fin | Teardown::AbortClient => None,
        }
    }

    /// `--close simultaneous`: whether the server's FIN, arriving in
    /// `state`, is to be held while our own FIN goes first.
    pub(crate) fn crosses_fins(
        &self,
        seg: &SegmentRepr,
        state: State,
        data_sent: bool,
        close_sent: bool,
    ) -> bool {
        self.teardown == Teardown::Simultaneous
            && seg.flags.fin()
            && !seg.flags.rst()
            && state == State::Established
            && data_sent
            && !close_sent
    }

    /// At the end: did the server do what the scenario needs?
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.teardown {
            Teardown::AbortServer if !self.reset_as_asked => {
                return Err("--abort server: no RST came from the server".into());
            }
            Teardown::Simultaneous if !self.went_through_closing => {
                return Err("--close simultaneous: the client never was in CLOSING".into());
            }
            Teardown::HalfClose if self.bytes_after_our_fin == 0 => {
                return Err("--half-close: the server sent no data after our FIN".into());
            }
            _ => {}
        }
        if self.final_ack_lost && !self.fin_again_in_time_wait {
            return Err(
                "--drop final-ack: the server did not retransmit its FIN within TIME-WAIT".into(),
            );
        }
        Ok(())
    }

    /// Whether an outgoing segment is to be lost (and counts the loss).
    pub(crate) fn drop_outgoing(
        &mut self,
        seg: &SegmentRepr,
        in_time_wait: bool,
    ) -> Option<DropItem> {
        if !seg.payload.is_empty() && !self.data_seqs.contains(&seg.seq) {
            self.data_seqs.push(seg.seq);
        }
        let data_index = self
            .data_seqs
            .iter()
            .position(|s| *s == seg.seq)
            .filter(|_| !seg.payload.is_empty());
        let final_ack_lost = self.final_ack_lost;
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
            self.final_ack_lost = true;
        }
        item
    }

    /// Whether an incoming segment is to be ignored; remembers it, so its
    /// retransmission can be told.
    pub(crate) fn drop_incoming(&mut self, seg: &SegmentRepr, at: Instant) -> Option<DropItem> {
        let item = self.take_drop(|item| incoming_is(item, seg))?;
        self.ignored.push((item, seg.seq, at));
        Some(item)
    }

    /// When `seg` is the server's kernel sending again what we ignored on
    /// purpose (or the FIN our lost final ACK should have acknowledged).
    pub(crate) fn server_retransmission(
        &mut self,
        seg: &SegmentRepr,
        at: Instant,
        in_time_wait: bool,
    ) -> Option<ServerRetransmission> {
        let pos = self
            .ignored
            .iter()
            .position(|(item, seq, _)| *seq == seg.seq && incoming_is(*item, seg));
        let again = if let Some(pos) = pos {
            let (item, _, first) = self.ignored.remove(pos);
            ServerRetransmission::Of {
                item,
                after: at - first,
            }
        } else if self.final_ack_lost
            && !self.fin_again_in_time_wait
            && seg.flags.fin()
            && in_time_wait
        {
            ServerRetransmission::FinAfterLostFinalAck
        } else {
            return None;
        };
        if in_time_wait && seg.flags.fin() {
            self.fin_again_in_time_wait = true;
        }
        Some(again)
    }

    fn take_drop(&mut self, is: impl Fn(DropItem) -> bool) -> Option<DropItem> {
        let (item, left) = self
            .drops_left
            .iter_mut()
            .find(|(item, left)| *left > 0 && is(*item))?;
        *left -= 1;
        Some(*item)
    }
}

/// Whether `seg` from the server is the kind of segment `item` names.
fn incoming_is(item: DropItem, seg: &SegmentRepr) -> bool {
    match item {
        DropItem::SynAck => seg.flags.syn() && seg.flags.ack(),
        DropItem::ServerFin => seg.flags.fin(),
        DropItem::DataReply => !seg.payload.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DropSpec, DropSpecError> {
        s.parse()
    }

    #[test]
    fn every_word_parses() {
        let spec = parse("syn,data:1,fin,final-ack,synack,server-fin,data-reply").unwrap();
        assert_eq!(
            spec.items(),
            [
                DropItem::Syn,
                DropItem::Data(1),
                DropItem::Fin,
                DropItem::FinalAck,
                DropItem::SynAck,
                DropItem::ServerFin,
                DropItem::DataReply
            ]
        );
        assert_eq!(
            spec.to_string(),
            "syn,data:1,fin,final-ack,synack,server-fin,data-reply"
        );
    }

    #[test]
    fn spaces_case_and_aliases() {
        let spec = parse(" SYN , syn-ack,data ").unwrap();
        assert_eq!(
            spec.items(),
            [DropItem::Syn, DropItem::SynAck, DropItem::Data(1)]
        );
        assert_eq!(parse("data:12").unwrap().items(), [DropItem::Data(12)]);
    }

    #[test]
    fn repeats_count() {
        let spec = parse("syn,syn,fin").unwrap();
        assert_eq!(spec.count(DropItem::Syn), 2);
        assert_eq!(spec.count(DropItem::Fin), 1);
        assert_eq!(spec.count(DropItem::SynAck), 0);
        assert_eq!(spec.items(), [DropItem::Syn, DropItem::Fin]);
        assert_eq!(
            parse("syn,syn,syn,syn"),
            Err(DropSpecError::TooMany {
                item: DropItem::Syn,
                times: 4,
                max: 3
            })
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert_eq!(parse(""), Err(DropSpecError::Empty));
        assert_eq!(parse("  "), Err(DropSpecError::Empty));
        assert_eq!(
            parse("syn,,fin"),
            Err(DropSpecError::EmptyItem("syn,,fin".into()))
        );
        assert_eq!(parse("syn,"), Err(DropSpecError::EmptyItem("syn,".into())));
        assert_eq!(parse("ack"), Err(DropSpecError::Unknown("ack".into())));
        assert_eq!(
            parse("data:0"),
            Err(DropSpecError::BadDataIndex("0".into()))
        );
        assert_eq!(
            parse("data:x"),
            Err(DropSpecError::BadDataIndex("x".into()))
        );
        assert_eq!(
            parse("data:-1"),
            Err(DropSpecError::BadDataIndex("-1".into()))
        );
        let msg = parse("synak").unwrap_err().to_string();
        assert!(msg.contains("synak") && msg.contains(DROP_WORDS), "{msg}");
    }

    #[test]
    fn direction_of_each_item() {
        assert!(DropItem::Syn.is_outgoing());
        assert!(DropItem::Data(2).is_outgoing());
        assert!(DropItem::FinalAck.is_outgoing());
        assert!(!DropItem::SynAck.is_outgoing());
        assert!(!DropItem::ServerFin.is_outgoing());
        assert!(!DropItem::DataReply.is_outgoing());
    }
}
