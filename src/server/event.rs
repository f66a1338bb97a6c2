//! The one event type of both servers (`synack serve` and the lab's
//! server thread): each socket call they make (listen, accept, recv,
//! send, shutdown, close, abort), what the kernel did meanwhile, and the
//! errors and refusals. Pure data: no sockets here.
//!
//! Each server emits the calls it makes: the lab's server never listens
//! on more than one client (no [`ServerEvent::Saturated`]), `synack
//! serve` never waits for sticky packets (no [`ServerEvent::Waited`]).
//! [`super::render`] words them for either.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::framing::Framing;
use crate::tcp::State;
use crate::tcp::TcpInfo;

/// One socket call of a server, or what the kernel did meanwhile.
///
/// Serialized (`synack serve --json`) as the `"event"` key and the
/// variant's fields: see [`super::render::format_json`] and docs/serve.md
/// for the names. The bytes themselves are never in it, only their count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServerEvent {
    /// `listen()` returned: the listener is up.
    Listening {
        addr: SocketAddr,
        backlog: i32,
        reuse_address: bool,
        max_clients: usize,
    },
    /// `max_clients` are being served: new ones wait in the accept queue.
    Saturated { open: usize },
    /// `accept()` returned a connection (its handshake is already
    /// complete). `synack serve` names the peer on every line instead.
    #[serde(rename = "accept")]
    Accepted {
        #[serde(skip)]
        peer: SocketAddr,
    },
    /// A sticky server waited until the `expected` bytes of `writes`
    /// application writes sat in its receive queue; `queued` were there
    /// when it stopped waiting (fewer at EOF or when the time was up).
    Waited {
        queued: usize,
        expected: usize,
        writes: usize,
    },
    /// `recv()` returned `len` bytes; `data` holds them when the server
    /// keeps them for the narration (the lab does, `synack serve` only
    /// counts).
    #[serde(rename = "recv")]
    Received {
        #[serde(rename = "bytes")]
        len: usize,
        #[serde(skip)]
        data: Option<Vec<u8>>,
    },
    /// The first `recv()` of a sticky server returned `writes` application
    /// writes joined in `len` bytes.
    Sticky { writes: usize, len: usize },
    /// The framing decoder took one whole message out of what was read.
    Message {
        #[serde(rename = "bytes", serialize_with = "len_of")]
        body: Vec<u8>,
        #[serde(skip)]
        framing: Framing,
    },
    /// `send()` (sendall) wrote the reply, `len` bytes.
    #[serde(rename = "send")]
    Sent {
        #[serde(rename = "bytes")]
        len: usize,
    },
    /// `recv()` returned 0: EOF, the peer's FIN arrived (CLOSE-WAIT, or on
    /// from FIN-WAIT-2 when the server closed first).
    #[serde(rename = "eof")]
    PeerClosed,
    /// Bytes the peer sent after our FIN, read and dropped.
    #[serde(rename = "discard")]
    Discarded {
        #[serde(rename = "bytes")]
        len: usize,
    },
    /// `recvfrom()` returned one datagram (UDP).
    #[serde(rename = "recvfrom")]
    Datagram {
        #[serde(rename = "bytes", serialize_with = "len_of")]
        data: Vec<u8>,
        #[serde(skip)]
        peer: SocketAddr,
    },
    /// `sendto()` sent one datagram of `len` bytes (UDP).
    #[serde(rename = "sendto")]
    SentTo {
        #[serde(rename = "bytes")]
        len: usize,
        #[serde(skip)]
        peer: SocketAddr,
    },
    /// `setsockopt(TCP_QUICKACK, 1)`: the pending ACK of the peer's FIN
    /// goes at once.
    QuickAck,
    /// `shutdown(Write)`: our FIN is on its way.
    #[serde(rename = "shutdown")]
    SentFin,
    /// The kernel moved the socket on by itself (an ACK or FIN arrived).
    #[serde(rename = "state_change")]
    KernelMoved { from: State, to: State },
    /// The kernel keeps the connection in TIME-WAIT after the socket is
    /// gone (seen with sock_diag).
    TimeWait,
    /// `close()`, `elapsed` after the accept.
    #[serde(rename = "close")]
    Closed {
        #[serde(rename = "elapsed_ns", serialize_with = "nanos")]
        elapsed: Duration,
    },
    /// `setsockopt(SO_LINGER, 0)` and `close()`: the kernel sends RST
    /// instead of FIN. The server's own choice, not an error.
    #[serde(rename = "abort")]
    Aborted {
        #[serde(rename = "elapsed_ns", serialize_with = "nanos")]
        elapsed: Duration,
    },
    /// A message over a limit (the message cap, the memory budget): the
    /// client got an error frame and is closed.
    Refused { reason: String },
    /// A connection's call failed (`call` names it: `accept`, `recv`,
    /// `decode`…); `error` says why, in words. Not `"error"` in JSON: that
    /// name ends a failed run.
    #[serde(rename = "client_error")]
    Failed {
        #[serde(skip)]
        call: &'static str,
        #[serde(rename = "message")]
        error: String,
    },
    /// The grace period after a stop ended with the client still open:
    /// its socket was shut down.
    #[serde(rename = "forced_shutdown")]
    Forced,
    /// `synack serve`'s accept loop hit an error (and goes on).
    AcceptError {
        #[serde(rename = "message")]
        error: String,
    },
    /// A stop was asked for: no more accepts.
    Stopping {
        open: usize,
        #[serde(rename = "grace_ns", serialize_with = "nanos")]
        grace: Duration,
    },
    /// The server is done: the last event of a run.
    #[serde(rename = "summary")]
    Stopped {
        #[serde(flatten)]
        summary: Summary,
    },
}

impl ServerEvent {
    /// The count of the [`Summary`] this event adds to, if any (a failed
    /// `accept` ends no connection: it counts for none).
    pub fn tally(&self) -> Option<Tally> {
        match self {
            ServerEvent::Failed { .. } => Some(Tally::Errors),
            ServerEvent::Refused { .. } => Some(Tally::Refused),
            ServerEvent::Aborted { .. } => Some(Tally::Aborted),
            ServerEvent::Forced => Some(Tally::Forced),
            _ => None,
        }
    }

    /// Whether the server application took one of the client's writes:
    /// a read with data, or with `framed` a whole message.
    pub fn took_a_write(&self, framed: bool) -> bool {
        match self {
            ServerEvent::Message { .. } => framed,
            ServerEvent::Received { .. } => !framed,
            _ => false,
        }
    }
}

/// Where `synack serve`'s events go (the binary prints them; tests
/// collect them).
pub type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

/// One client of `synack serve`: its number (from 1, in accept order) and
/// address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientId {
    pub n: u64,
    pub peer: SocketAddr,
}

/// One event of `synack serve`, with the kernel's view of the socket at
/// that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When, from the start of the run (the listening event is at about
    /// 0), on the monotonic clock. Events reach the sink in this order.
    pub t: Duration,
    /// The client it concerns (None for listener events).
    pub client: Option<ClientId>,
    pub kind: ServerEvent,
    /// `TCP_INFO` right after the event (when asked for and available).
    pub kernel: Option<TcpInfo>,
}

/// What a run of `synack serve` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Connections accepted.
    #[serde(rename = "connections")]
    pub accepted: u64,
    /// Connections that ended in an error (the `error:` lines).
    pub errors: u64,
    /// Connections refused for a message over a limit (the `refused:`
    /// lines).
    pub refused: u64,
    /// Connections closed with RST by `--linger0` (the `aborted` lines).
    pub aborted: u64,
    /// Connections still open when the grace period ended, shut down
    /// (the `shut down by the server` lines).
    pub forced: u64,
    /// The most clients served at once.
    pub peak: usize,
}

/// Which of the [`Summary`]'s counts an event adds to, if any: the summary
/// is counted from the events themselves, so that the two always agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    Errors,
    Refused,
    Aborted,
    Forced,
}

/// A duration as integer nanoseconds (the JSON envelope's `*_ns`).
pub(super) fn nanos<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Bytes as their count (the JSON lines carry no payload).
fn len_of<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(bytes.len() as u64)
}
