//! What the client says about each segment it sent or received, as data:
//! why it went (the state machine's [`SendReason`], a retransmission with
//! its backed-off timer), what an arriving one was or did, and the losses
//! and crossings of the lab's scenarios. The views word it
//! (`report::note_parts`); none of them reads English back.

use std::time::Duration;

use super::faults::{DropItem, ServerRetransmission};
use crate::tcp::SendReason;

/// The client's note on one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Note {
    /// What the segment is, or did.
    pub what: What,
    /// Lost on purpose (`--drop`).
    pub lost: Option<Loss>,
}

/// What a segment is, or did, in the client's eyes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum What {
    /// Nothing to say: the segment's loss says it all (an ignored
    /// arrival, a lost final ACK), or a test's blank line.
    #[default]
    Nothing,
    /// Sent for this reason (an RTO retransmission is
    /// [`What::Retransmission`]).
    Sent(SendReason),
    /// Sent again when the RTO expired; the timer has backed off to `rto`
    /// (RFC 6298 §5.5).
    Retransmission { attempt: u32, rto: Duration },
    /// Our ACK again from TIME-WAIT: the 2·MSL timer restarted (RFC 9293
    /// §3.10.7.4).
    AckFromTimeWait,
    /// A segment of the server's, as the client's state machine took it.
    Received(Received),
    /// The server's RST that `--abort server` asked for.
    ServerAborted,
    /// The server's kernel sent again what the client ignored on purpose.
    ServerRetransmission(ServerRetransmission),
    /// The server's FIN, held so ours goes first (`--close simultaneous`).
    FinHeld,
    /// The RST of this host's kernel, which knows nothing of synack's
    /// connection (`synack connect`).
    KernelRst,
    /// Sequence space already seen, sent again: a retransmission told
    /// from the capture (`synack watch`), not from the sender's timer.
    SeenAgain,
}

/// What a segment of the server's was, or why the state machine ignored
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Dropped without effect by the rule `why` names.
    Ignored(&'static str),
    Rst,
    SynAck,
    Fin,
    /// Data, this many bytes.
    Data(usize),
    Ack,
}

/// A segment lost on purpose: sent and recorded but never delivered
/// (ours), or recorded on arrival and ignored once (the server's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    pub item: DropItem,
    /// The client's retransmission timer when it was lost (ours resend
    /// after it).
    pub rto: Duration,
}

impl Note {
    /// A note with nothing lost.
    pub fn new(what: What) -> Note {
        Note { what, lost: None }
    }
}
