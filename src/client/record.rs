//! What the client engine tells its observer about every frame, as data:
//! which way it went, when, its bytes and what it meant. The views (the
//! narration, the ladder, the pcapng comments) read these; they depend on
//! this vocabulary, never the other way round.

use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::Note;
use crate::tcp::State;
use crate::wire::{ArpRepr, Ipv6Repr, NdpRepr, SegmentRepr, UdpRepr};

/// Which way a frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Direction {
    #[serde(rename = "c2s")]
    ClientToServer,
    #[serde(rename = "s2c")]
    ServerToClient,
}

/// A socket call of the client's application, as the engine makes it:
/// the calls a tutorial's client would write (RFC 9293 §3.10: OPEN, SEND,
/// CLOSE, ABORT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCall {
    /// `connect()`: the active open.
    Connect,
    /// `send()` of this many bytes.
    Send(usize),
    /// `close()`: the FIN once everything sent before it.
    Close,
    /// `shutdown(SHUT_WR)`: the FIN, and the client keeps reading.
    ShutdownWrite,
    /// `close()` with `SO_LINGER` 0: RST instead of FIN.
    Abort,
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
    /// A Neighbor Solicitation or Advertisement (IPv6's ARP, RFC 4861),
    /// with the IPv6 header that carried it.
    Ndp {
        ip: Ipv6Repr,
        ndp: NdpRepr,
    },
    Segment {
        segment: SegmentRepr,
        checksums_ok: bool,
        /// The client's state changes this frame caused or came with.
        changes: Vec<(State, State)>,
        state_after: State,
        /// Why it was sent or what it was, as data.
        note: Note,
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
