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

use crate::framing::Framing;
use crate::tcp::State;
use crate::tcp::TcpInfo;

/// One socket call of a server, or what the kernel did meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// complete).
    Accepted { peer: SocketAddr },
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
    Received { len: usize, data: Option<Vec<u8>> },
    /// The first `recv()` of a sticky server returned `writes` application
    /// writes joined in `len` bytes.
    Sticky { writes: usize, len: usize },
    /// The framing decoder took one whole message out of what was read.
    Message { body: Vec<u8>, framing: Framing },
    /// `send()` (sendall) wrote the reply, `len` bytes.
    Sent { len: usize },
    /// `recv()` returned 0: EOF, the peer's FIN arrived (CLOSE-WAIT, or on
    /// from FIN-WAIT-2 when the server closed first).
    PeerClosed,
    /// Bytes the peer sent after our FIN, read and dropped.
    Discarded { len: usize },
    /// `recvfrom()` returned one datagram (UDP).
    Datagram { data: Vec<u8>, peer: SocketAddr },
    /// `sendto()` sent one datagram of `len` bytes (UDP).
    SentTo { len: usize, peer: SocketAddr },
    /// `setsockopt(TCP_QUICKACK, 1)`: the pending ACK of the peer's FIN
    /// goes at once.
    QuickAck,
    /// `shutdown(Write)`: our FIN is on its way.
    SentFin,
    /// The kernel moved the socket on by itself (an ACK or FIN arrived).
    KernelMoved { from: State, to: State },
    /// The kernel keeps the connection in TIME-WAIT after the socket is
    /// gone (seen with sock_diag).
    TimeWait,
    /// `close()`, `elapsed` after the accept.
    Closed { elapsed: Duration },
    /// `setsockopt(SO_LINGER, 0)` and `close()`: the kernel sends RST
    /// instead of FIN. The server's own choice, not an error.
    Aborted { elapsed: Duration },
    /// A message over a limit (the message cap, the memory budget): the
    /// client got an error frame and is closed.
    Refused { reason: String },
    /// A call failed (`call` names it: `accept`, `recv`, `decode`…);
    /// `error` says why, in words.
    Failed { call: &'static str, error: String },
    /// The grace period after a stop ended with the client still open:
    /// its socket was shut down.
    Forced,
    /// A stop was asked for: no more accepts.
    Stopping { open: usize, grace: Duration },
    /// The server is done.
    Stopped { summary: Summary },
}

impl ServerEvent {
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
    /// The client it concerns (None for listener events).
    pub client: Option<ClientId>,
    pub kind: ServerEvent,
    /// `TCP_INFO` right after the event (when asked for and available).
    pub kernel: Option<TcpInfo>,
}

/// What a run of `synack serve` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
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

impl Event {
    /// The count this event adds to (a failed call counts only for a
    /// client: an `accept` that failed ends no connection).
    pub fn tally(&self) -> Option<Tally> {
        match self.kind {
            ServerEvent::Failed { .. } if self.client.is_some() => Some(Tally::Errors),
            ServerEvent::Refused { .. } => Some(Tally::Refused),
            ServerEvent::Aborted { .. } => Some(Tally::Aborted),
            ServerEvent::Forced => Some(Tally::Forced),
            _ => None,
        }
    }
}
