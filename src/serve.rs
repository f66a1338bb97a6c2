//! `synack serve`: the tutorials' TCP server done properly, on the kernel's
//! own stack, narrating every socket event beside the kernel's view of the
//! socket (`TCP_INFO`, and sock_diag for TIME-WAIT).
//!
//! The listener is built with socket2 (SO_REUSEADDR and the backlog are
//! ours to choose; `std::net::TcpListener::bind` forces SO_REUSEADDR on and
//! a backlog of 128), then handed to `std::net::TcpListener`. Each client
//! gets a thread, bounded by `max_clients`: accept, read, reply, close.
//!
//! Pure parts, tested without sockets: [`Responder`] (what to answer to the
//! bytes of one read, in each reply mode and framing), [`format_event`]
//! (one narration line per event) and [`format_json`] (one `--json` line
//! per event). The rest does socket I/O and needs no
//! privileges. Stopping ([`Stopper::stop`], wired to SIGINT, SIGTERM and
//! SIGHUP by [`stop_on_signals`]) wakes the blocked `accept` by shutting
//! the listening socket down, lets open clients finish within
//! [`Config::grace`], then shuts the stragglers' sockets down. Every
//! client's events reach the sink before the summary: the run waits for
//! the client threads themselves, not only for their sockets.
//!
//! Memory: a framed message is held until it is whole, so each is capped
//! ([`Config::max_message`]) and all clients' held bytes together are
//! charged to one budget ([`Config::memory_budget`]); a client over either
//! gets an error in its own framing and is closed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::framing::{self, Decoder, Framing, FramingError};
use crate::net::sockinfo::{self, TcpInfo};
use crate::tcp::State;

/// `synack serve`'s address when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// The listen backlog when none is given.
pub const DEFAULT_BACKLOG: i32 = 1024;
/// The bound on concurrent clients when none is given.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// The reply when neither `--reply` nor `--echo` is given.
pub const DEFAULT_REPLY: &str = "hello, client\n";
/// How long a client may stay silent before the server closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open clients may take to finish after a stop.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Bytes asked for in one `read`.
pub const READ_BUFFER_LEN: usize = 16 * 1024;
/// The stack of a client thread (the handler's frames are shallow).
const CLIENT_STACK_SIZE: usize = 256 * 1024;
/// Reads per connection at most (a client streaming forever is cut off).
const MAX_READS_PER_CLIENT: usize = 1_000_000;
/// How long to watch a socket after our FIN for the kernel's next state
/// (LAST-ACK → CLOSED, FIN-WAIT-1 → FIN-WAIT-2), and how often to look.
const STATE_WATCH_LIMIT: Duration = Duration::from_millis(200);
const STATE_WATCH_STEP: Duration = Duration::from_millis(1);
/// What a client's connection says when the grace period cut it short.
const FORCED: &str = "shut down by the server: the grace period after the stop ended";
/// After the grace period, how long the shut-down stragglers get.
const STRAGGLER_LIMIT: Duration = Duration::from_secs(2);
/// The largest framed message by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;
/// The bytes of framed messages all clients may hold at once by default
/// (64 MiB).
pub const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;
/// After a refusal (an error frame and our FIN), how long the client's
/// remaining bytes are read and dropped, so that our close is a FIN and
/// the error frame is not lost to a RST.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// How long the accept loop waits before retrying after a failed `accept`
/// (EMFILE, ENOBUFS), so that a full table does not spin it.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// What the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The same text for each read (or each framed message).
    Text(Vec<u8>),
    /// The bytes read (or each framed message's body), sent back.
    Echo,
}

/// Who closes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// After its first reply the server sends FIN (FIN-WAIT-1, FIN-WAIT-2,
    /// then TIME-WAIT on the server's side).
    First,
    /// The server answers until the peer's FIN, then closes (CLOSE-WAIT,
    /// LAST-ACK on the server's side; TIME-WAIT on the client's).
    AfterPeer,
}

/// How much of the kernel's view each event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelView {
    /// None (a load test: no extra system calls).
    Off,
    /// `TCP_INFO` on each event.
    TcpInfo,
    /// `TCP_INFO`, the state changes after our FIN, and a sock_diag lookup
    /// for the TIME-WAIT the kernel keeps once the socket is gone.
    Full,
}

/// Everything `synack serve` needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// SO_REUSEADDR on the listener (lets a restart bind while connections
    /// from the previous run sit in TIME-WAIT).
    pub reuse_address: bool,
    /// The `listen` backlog (capped by `net.core.somaxconn`).
    pub backlog: i32,
    /// At most this many clients are served at once; more wait in the
    /// kernel's accept queue.
    pub max_clients: usize,
    /// Stop after this many connections (None: until stopped).
    pub max_connections: Option<u64>,
    /// What to answer.
    pub reply: Reply,
    /// Message framing (None: answer each read).
    pub framing: Option<Framing>,
    /// Who closes first.
    pub close: CloseMode,
    /// Abort with RST (SO_LINGER 0) instead of closing with FIN.
    pub linger0: bool,
    /// A client silent for this long is closed.
    pub idle_timeout: Duration,
    /// Open clients get this long to finish after a stop.
    pub grace: Duration,
    /// How much of the kernel's view to report.
    pub kernel_view: KernelView,
    /// With framing: the largest message body accepted; a bigger one is
    /// refused (an error frame, then the close).
    pub max_message: usize,
    /// With framing: the bytes of incomplete messages all clients may hold
    /// together; a read that would go past it is refused.
    pub memory_budget: usize,
}

impl Config {
    /// The defaults of `synack serve` on `addr`.
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            reuse_address: true,
            backlog: DEFAULT_BACKLOG,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_connections: None,
            reply: Reply::Text(DEFAULT_REPLY.as_bytes().to_vec()),
            framing: None,
            close: CloseMode::AfterPeer,
            linger0: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            grace: DEFAULT_GRACE,
            kernel_view: KernelView::Full,
            max_message: DEFAULT_MAX_MESSAGE,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// EADDRINUSE, with what the kernel's socket table says about the port.
    #[error("cannot listen on {addr}: address in use{}", in_use_hint(*.reuse_address, *.listening, *.time_wait))]
    AddrInUse {
        addr: SocketAddr,
        reuse_address: bool,
        /// A socket already listens on the port.
        listening: bool,
        /// Connections on the port in TIME-WAIT.
        time_wait: usize,
    },
    /// EADDRNOTAVAIL.
    #[error("cannot listen on {addr}: {} is not an address of this host", .addr.ip())]
    AddrNotAvailable { addr: SocketAddr },
    /// EACCES.
    #[error("cannot listen on {addr}: ports below 1024 need root or CAP_NET_BIND_SERVICE (try sudo, or a port above 1023)")]
    PermissionDenied { addr: SocketAddr },
    /// A setting that cannot work.
    #[error("{reason}")]
    Config { reason: String },
    /// Any other failure to set up the listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn in_use_hint(reuse_address: bool, listening: bool, time_wait: usize) -> String {
    let plural = if time_wait == 1 { "" } else { "s" };
    match (listening, reuse_address, time_wait) {
        (true, _, _) => " (another socket is listening on that port: `ss -tlnp`)".to_string(),
        (false, false, 0) => " (--no-reuseaddr: without SO_REUSEADDR even a connection \
             in TIME-WAIT on this port blocks the bind)"
            .to_string(),
        (false, false, n) => format!(
            " ({n} connection{plural} on this port in TIME-WAIT from an earlier run; \
             without SO_REUSEADDR (--no-reuseaddr) the kernel refuses the bind until \
             TIME-WAIT ends, 60 s on Linux; leave SO_REUSEADDR on to restart at once)"
        ),
        (false, true, n) if n > 0 => format!(
            " ({n} connection{plural} in TIME-WAIT hold the port and were made \
             without SO_REUSEADDR)"
        ),
        (false, true, _) => String::new(),
    }
}

/// Builds the listener with socket2: SO_REUSEADDR as asked, bind, listen
/// with `backlog`, then hands it over as a `std::net::TcpListener`.
///
/// # Errors
///
/// [`ServeError`], with the kernel's socket table consulted (sock_diag) to
/// say why an address is in use.
pub fn listen(
    addr: SocketAddr,
    reuse_address: bool,
    backlog: i32,
) -> Result<TcpListener, ServeError> {
    let setup = |source| ServeError::Listen { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(setup)?;
    socket.set_reuse_address(reuse_address).map_err(setup)?;
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error(addr, reuse_address, e))?;
    socket
        .listen(backlog)
        .map_err(|e| bind_error(addr, reuse_address, e))?;
    Ok(socket.into())
}

fn bind_error(addr: SocketAddr, reuse_address: bool, source: io::Error) -> ServeError {
    match source.kind() {
        io::ErrorKind::AddrInUse => {
            let sockets = sockinfo::sockets_on_port(addr.port()).unwrap_or_default();
            let ours = |s: &&sockinfo::KernelSocket| s.local.port() == addr.port();
            ServeError::AddrInUse {
                addr,
                reuse_address,
                listening: sockets
                    .iter()
                    .filter(ours)
                    .any(|s| s.state == State::Listen),
                time_wait: sockets
                    .iter()
                    .filter(ours)
                    .filter(|s| s.state == State::TimeWait)
                    .count(),
            }
        }
        io::ErrorKind::AddrNotAvailable => ServeError::AddrNotAvailable { addr },
        io::ErrorKind::PermissionDenied => ServeError::PermissionDenied { addr },
        _ => ServeError::Listen { addr, source },
    }
}

/// One client: its number (from 1, in accept order) and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientId {
    pub n: u64,
    pub peer: SocketAddr,
}

/// What happened. Serialized (`--json`) as the `"event"` key and the
/// variant's fields: see [`format_json`] and docs/serve.md for the names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The listener is up.
    Listening {
        addr: SocketAddr,
        backlog: i32,
        reuse_address: bool,
        max_clients: usize,
    },
    /// `accept` returned a connection (its handshake is already complete).
    #[serde(rename = "accept")]
    Accepted,
    /// `max_clients` are being served: new ones wait in the accept queue.
    Saturated { open: usize },
    /// One `read` returned data.
    #[serde(rename = "recv")]
    Read { bytes: usize },
    /// A framed message was complete.
    Message { bytes: usize },
    /// The reply was written.
    #[serde(rename = "send")]
    Replied { bytes: usize },
    /// `read` returned 0: the peer's FIN arrived (we are in CLOSE-WAIT, or
    /// on from FIN-WAIT-2 if we closed first).
    #[serde(rename = "eof")]
    PeerClosed,
    /// Bytes the peer sent after our FIN, read and dropped.
    #[serde(rename = "discard")]
    Discarded { bytes: usize },
    /// `shutdown(Write)`: our FIN is on its way.
    #[serde(rename = "shutdown")]
    SentFin,
    /// The kernel moved the socket on by itself (an ACK or FIN arrived).
    #[serde(rename = "state_change")]
    KernelMoved { from: State, to: State },
    /// The kernel keeps the connection in TIME-WAIT after the socket is
    /// gone (seen with sock_diag).
    TimeWait,
    /// The socket was closed, `elapsed` after the accept.
    #[serde(rename = "close")]
    Closed {
        #[serde(rename = "elapsed_ns", serialize_with = "nanos")]
        elapsed: Duration,
    },
    /// The socket was closed with SO_LINGER 0 (`--linger0`): RST instead
    /// of FIN. The server's own choice, not an error.
    #[serde(rename = "abort")]
    Aborted {
        #[serde(rename = "elapsed_ns", serialize_with = "nanos")]
        elapsed: Duration,
    },
    /// A message over a limit (`max_message`, `memory_budget`): the client
    /// got an error frame and is closed.
    Refused { reason: String },
    /// The client's connection failed (reset, timeout, bad frame…).
    /// Not `"error"` in JSON: that name ends a failed run.
    #[serde(rename = "client_error")]
    ClientError {
        #[serde(rename = "message")]
        error: String,
    },
    /// The grace period after a stop ended with the client still open:
    /// its socket was shut down.
    #[serde(rename = "forced_shutdown")]
    Forced,
    /// The accept loop hit an error (and goes on).
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

/// One event, with the kernel's view of the socket at that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When, from the start of [`Server::run`] (the listening event is at
    /// about 0), on the monotonic clock. Events reach the sink in this
    /// order.
    pub t: Duration,
    /// The client it concerns (None for listener events).
    pub client: Option<ClientId>,
    pub kind: EventKind,
    /// `TCP_INFO` right after the event (when asked for and available).
    pub kernel: Option<TcpInfo>,
}

/// Where events go (the binary prints them; tests collect them).
pub type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

/// What a run did.
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

/// One narration line for an event (without a trailing newline).
pub fn format_event(event: &Event) -> String {
    let mut line = match event.client {
        Some(client) => format!("#{:<4} {:<21} ", client.n, client.peer),
        None => String::new(),
    };
    let _ = match &event.kind {
        EventKind::Listening {
            addr,
            backlog,
            reuse_address,
            max_clients,
        } => write!(
            line,
            "listening on {addr} (backlog {backlog}, SO_REUSEADDR {}, up to {max_clients} clients at once)",
            if *reuse_address { "on" } else { "off" }
        ),
        EventKind::Accepted => write!(line, "accepted"),
        EventKind::Saturated { open } => write!(
            line,
            "{open} clients open (--max-clients): new connections wait in the accept queue"
        ),
        EventKind::Read { bytes } => write!(line, "read {bytes} bytes"),
        EventKind::Message { bytes } => write!(line, "message of {bytes} bytes"),
        EventKind::Replied { bytes } => write!(line, "replied {bytes} bytes"),
        EventKind::PeerClosed => write!(line, "read EOF: the peer's FIN arrived"),
        EventKind::Discarded { bytes } => write!(line, "dropped {bytes} bytes sent after our FIN"),
        EventKind::SentFin => match event.kernel.as_ref().map(|k| k.state) {
            // On loopback the peer's ACK comes back inside the call.
            Some(State::Closed) => write!(
                line,
                "shutdown(Write): our FIN sent and ACKed (LAST-ACK over before the call returned)"
            ),
            _ => write!(line, "shutdown(Write): our FIN sent"),
        },
        EventKind::KernelMoved { from, to } => write!(line, "kernel moved the socket {from} -> {to}"),
        EventKind::TimeWait => write!(line, "kernel keeps the connection in TIME-WAIT (sock_diag)"),
        EventKind::Closed { elapsed } => write!(line, "closed after {}", human(*elapsed)),
        EventKind::Aborted { elapsed } => {
            write!(line, "aborted with RST (SO_LINGER 0) after {}", millis(*elapsed))
        }
        EventKind::Refused { reason } => write!(
            line,
            "refused: {reason}; sent an error frame, closing"
        ),
        EventKind::ClientError { error } => write!(line, "error: {error}"),
        EventKind::Forced => write!(line, "{FORCED}"),
        EventKind::AcceptError { error } => write!(line, "accept failed: {error}"),
        EventKind::Stopping { open, grace } => write!(
            line,
            "stopping: no more accepts; {open} open client(s) get {} to finish",
            human(*grace)
        ),
        EventKind::Stopped { summary } => {
            let refused = match summary.refused {
                0 => String::new(),
                n => format!(", {n} refused (over --max-message or --memory-budget)"),
            };
            let aborted = match summary.aborted {
                0 => String::new(),
                n => format!(", {n} aborted with RST (--linger0)"),
            };
            write!(
                line,
                "stopped: {} connection(s), {} error(s){refused}{aborted}, {} shut down at the end of the grace period, at most {} at once",
                summary.accepted, summary.errors, summary.forced, summary.peak
            )
        }
    };
    if let Some(info) = &event.kernel {
        let pad = 58usize.saturating_sub(line.chars().count());
        if info.state == State::Listen {
            let _ = write!(line, "{:pad$}  kernel: {}", "", info.state);
            return line;
        }
        let _ = write!(
            line,
            "{:pad$}  kernel: {:<12} rtt {} retrans {}/{}",
            "",
            info.state,
            millis(info.rtt),
            info.retransmits,
            info.total_retrans
        );
    }
    line
}

fn millis(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1e3)
}

fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        millis(d)
    }
}

/// A duration as integer nanoseconds (the JSON envelope's `*_ns`).
fn nanos<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One `--json` line: the event's kind and fields, then when, which
/// connection, and the kernel's view.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    kind: &'a EventKind,
    #[serde(serialize_with = "nanos")]
    t_ns: Duration,
    /// The client's number (from 1, in accept order).
    #[serde(skip_serializing_if = "Option::is_none")]
    conn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<KernelJson>,
}

/// The `TCP_INFO` fields the narration shows: the state, and for a
/// connection (not the listener) the smoothed RTT and retransmissions.
#[derive(Serialize)]
struct KernelJson {
    state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retransmits: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_retrans: Option<u32>,
}

impl From<&TcpInfo> for KernelJson {
    fn from(info: &TcpInfo) -> KernelJson {
        let connection = info.state != State::Listen;
        KernelJson {
            state: info.state,
            rtt_us: connection.then(|| u64::try_from(info.rtt.as_micros()).unwrap_or(u64::MAX)),
            retransmits: connection.then_some(info.retransmits),
            total_retrans: connection.then_some(info.total_retrans),
        }
    }
}

/// One JSON line for an event (without a trailing newline): `"event"`,
/// the kind's fields, `t_ns`, and on a connection's events `conn` and
/// `peer`; `kernel` when the kernel's view was taken. docs/serve.md has
/// the table.
pub fn format_json(event: &Event) -> String {
    let line = JsonLine {
        kind: &event.kind,
        t_ns: event.t,
        conn: event.client.map(|c| c.n),
        peer: event.client.map(|c| c.peer),
        kernel: event.kernel.as_ref().map(KernelJson::from),
    };
    // Nothing in a line can fail to serialize (no maps with non-string
    // keys, no floats); say so rather than print nothing if it ever does.
    serde_json::to_string(&line).unwrap_or_else(|e| {
        serde_json::json!({
            "event": "client_error",
            "t_ns": u64::try_from(event.t.as_nanos()).unwrap_or(u64::MAX),
            "message": format!("this event could not be written as JSON: {e}"),
        })
        .to_string()
    })
}

/// The pure reply logic: bytes of one read in, bytes to send out.
#[derive(Debug)]
pub struct Responder {
    reply: Reply,
    decoder: Option<Decoder>,
    close: CloseMode,
    replies: u64,
}

/// What one read produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The sizes of the framed messages completed by this read.
    pub messages: Vec<usize>,
    /// Bytes to write back (possibly none).
    pub out: Vec<u8>,
}

impl Responder {
    /// A responder with the [`DEFAULT_MAX_MESSAGE`] limit.
    pub fn new(reply: Reply, framing: Option<Framing>, close: CloseMode) -> Responder {
        Responder::with_max_message(reply, framing, close, DEFAULT_MAX_MESSAGE)
    }

    /// A responder that refuses framed messages over `max_message` bytes.
    pub fn with_max_message(
        reply: Reply,
        framing: Option<Framing>,
        close: CloseMode,
        max_message: usize,
    ) -> Responder {
        Responder {
            reply,
            decoder: framing.map(|f| Decoder::with_max_body_len(f, max_message)),
            close,
            replies: 0,
        }
    }

    /// Answers the bytes of one read: each read (unframed) or each complete
    /// message (framed) gets one reply.
    ///
    /// # Errors
    ///
    /// A frame that cannot be decoded.
    pub fn on_read(&mut self, bytes: &[u8]) -> Result<Response, FramingError> {
        let mut response = Response::default();
        match &mut self.decoder {
            None => {
                let body = match &self.reply {
                    Reply::Text(text) => text.as_slice(),
                    Reply::Echo => bytes,
                };
                response.out.extend_from_slice(body);
                self.replies += 1;
            }
            Some(decoder) => {
                decoder.push(bytes);
                // Each message is at least the 4-byte prefix, so a read
                // completes at most pending / 4 + 1 messages.
                for _ in 0..=decoder.pending() / framing::LENGTH_PREFIX_LEN {
                    let Some(message) = decoder.next_message()? else {
                        break;
                    };
                    response.messages.push(message.body.len());
                    let body = match &self.reply {
                        Reply::Text(text) => text.as_slice(),
                        Reply::Echo => message.body.as_slice(),
                    };
                    framing::encode(decoder.framing(), body, &mut response.out)?;
                    self.replies += 1;
                }
            }
        }
        Ok(response)
    }

    /// Whether the server should close now (`--close first` after the
    /// first reply).
    pub fn done(&self) -> bool {
        self.close == CloseMode::First && self.replies > 0
    }

    /// Bytes of an incomplete frame held back (at EOF: a message cut short).
    pub fn pending(&self) -> usize {
        self.decoder.as_ref().map_or(0, Decoder::pending)
    }

    /// The memory held for incomplete messages (none without framing).
    pub fn held(&self) -> usize {
        self.decoder.as_ref().map_or(0, Decoder::held)
    }

    /// What [`Responder::held`] will be after a read of `len` bytes.
    pub fn held_after_read(&self, len: usize) -> usize {
        self.decoder.as_ref().map_or(0, |d| d.held_after_push(len))
    }

    /// `text` as one frame of this responder's framing (as is, unframed):
    /// how a refusal is told to the client.
    pub fn error_frame(&self, text: &str) -> Vec<u8> {
        match &self.decoder {
            Some(decoder) => framing::encode_to_vec(decoder.framing(), text.as_bytes())
                .unwrap_or_else(|_| text.as_bytes().to_vec()),
            None => text.as_bytes().to_vec(),
        }
    }
}

/// Asks a running [`Server`] to stop; cheap to clone, usable from any
/// thread.
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    /// Stops accepting (the blocked `accept` returns at once) and lets open
    /// clients finish within the grace period.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_listener();
        // Under the lock: a waiter between its check of `stop` and its
        // wait cannot miss the wake-up.
        let _clients = self.shared.clients();
        self.shared.changed.notify_all();
    }
}

/// Stops `stopper`'s server on the first SIGINT, SIGTERM or SIGHUP (a
/// closed terminal); a second one exits at once with status 130.
///
/// # Errors
///
/// Installing the signal handlers failed.
pub fn stop_on_signals(stopper: Stopper) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for _ in signals.forever().take(2) {
                seen += 1;
                if seen == 1 {
                    stopper.stop();
                } else {
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}

/// The clients being served.
struct Clients {
    /// A clone of each open client's stream, to shut stragglers down.
    streams: HashMap<u64, TcpStream>,
    /// Client threads still running. A thread outlives its socket by its
    /// last events (`closed`, `aborted`): the summary waits for this.
    live: usize,
}

struct Shared {
    stop: AtomicBool,
    /// The grace period ended and the open clients' sockets were shut down.
    forced: AtomicBool,
    /// A clone of the listening socket, to shut it down from `stop`.
    listener: TcpListener,
    clients: Mutex<Clients>,
    changed: Condvar,
    /// The summary's counts, one per kind of event (see [`Shared::emit`]).
    errors: AtomicU64,
    refused: AtomicU64,
    aborted: AtomicU64,
    forced_clients: AtomicU64,
    /// Bytes held for incomplete messages, all clients together (at most
    /// `config.memory_budget`).
    buffered: AtomicUsize,
    /// Held while an event is stamped and handed to the sink, so that the
    /// sink sees the events in the order of their times, one at a time.
    order: Mutex<Order>,
    sink: Sink,
    config: Config,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, Clients> {
        // A client thread that panicked while holding the lock leaves the
        // map itself intact: keep going with it.
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits at most `timeout` for a change (a client leaving, a stop).
    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Clients>,
        timeout: Duration,
    ) -> MutexGuard<'a, Clients> {
        match self.changed.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    /// No more accepts: the socket leaves LISTEN (connections still in
    /// the accept queue get RST) and a blocked accept(2) returns (EINVAL):
    /// shutdown(SHUT_RD) on a listening socket does both on Linux.
    fn close_listener(&self) {
        let _ = SockRef::from(&self.listener).shutdown(Shutdown::Read);
    }

    /// Hands an event to the sink. The summary's counts are counted here,
    /// from the events themselves, so that the two always agree.
    fn emit(&self, client: Option<ClientId>, kind: EventKind, kernel: Option<TcpInfo>) {
        let counter = match kind {
            EventKind::ClientError { .. } => Some(&self.errors),
            EventKind::Refused { .. } => Some(&self.refused),
            EventKind::Aborted { .. } => Some(&self.aborted),
            EventKind::Forced => Some(&self.forced_clients),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        let mut order = self.order();
        if order.finished {
            return;
        }
        order.finished = matches!(kind, EventKind::Stopped { .. });
        (self.sink)(&Event {
            t: order.epoch.elapsed(),
            client,
            kind,
            kernel,
        });
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The events' clock, and whether the summary is out: an event after it
/// (a straggler's, when the straggler limit ended) is dropped, so that the
/// summary is the last event of a run.
struct Order {
    /// When the run started (just before the listening event): the
    /// events' `t` counts from here.
    epoch: Instant,
    finished: bool,
}

/// A listening `synack serve`.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Builds the listener ([`listen`]) for `config`.
    ///
    /// # Errors
    ///
    /// [`ServeError`]; [`ServeError::Config`] for an idle timeout of 0 or
    /// a memory budget that cannot hold one message of `max_message`.
    pub fn bind(config: Config, sink: Sink) -> Result<Server, ServeError> {
        check(&config)?;
        let listener = listen(config.addr, config.reuse_address, config.backlog)?;
        let setup = |source| ServeError::Listen {
            addr: config.addr,
            source,
        };
        let clone = listener.try_clone().map_err(setup)?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                forced: AtomicBool::new(false),
                listener: clone,
                clients: Mutex::new(Clients {
                    streams: HashMap::new(),
                    live: 0,
                }),
                changed: Condvar::new(),
                errors: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                aborted: AtomicU64::new(0),
                forced_clients: AtomicU64::new(0),
                buffered: AtomicUsize::new(0),
                order: Mutex::new(Order {
                    epoch: Instant::now(),
                    finished: false,
                }),
                sink,
                config,
            }),
        })
    }

    /// The bound address (the real port when port 0 was asked for).
    ///
    /// # Errors
    ///
    /// `getsockname` failed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to stop the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accepts and serves clients until stopped (or `max_connections`),
    /// then waits for the open clients (after a stop, within the grace
    /// period). Every client's events are emitted before the summary.
    pub fn run(self) -> Summary {
        let shared = &self.shared;
        let config = &shared.config;
        // The events' clock starts with the run: the listening event is
        // at (about) 0, however long the caller took between bind and run.
        shared.order().epoch = Instant::now();
        let kernel = match config.kernel_view {
            KernelView::Off => None,
            _ => sockinfo::tcp_info(&self.listener).ok(),
        };
        let addr = self.listener.local_addr().unwrap_or(config.addr);
        shared.emit(
            None,
            EventKind::Listening {
                addr,
                backlog: config.backlog,
                reuse_address: config.reuse_address,
                max_clients: config.max_clients,
            },
            kernel,
        );

        let mut summary = Summary::default();
        let limit = config.max_connections.unwrap_or(u64::MAX);
        // Bounded by `max_connections`, and ended by `stop`.
        while summary.accepted < limit && self.wait_for_slot() {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    summary.accepted += 1;
                    let client = ClientId {
                        n: summary.accepted,
                        peer,
                    };
                    summary.peak = summary.peak.max(self.spawn_client(client, stream));
                }
                Err(_) if shared.stop.load(Ordering::SeqCst) => break,
                Err(e) => {
                    shared.emit(
                        None,
                        EventKind::AcceptError {
                            error: e.to_string(),
                        },
                        None,
                    );
                    let clients = shared.clients();
                    let _clients = shared.wait(clients, ACCEPT_RETRY_DELAY);
                }
            }
        }
        // The descriptor itself closes when run returns.
        shared.close_listener();
        self.finish_clients();
        summary.errors = shared.errors.load(Ordering::SeqCst);
        summary.refused = shared.refused.load(Ordering::SeqCst);
        summary.aborted = shared.aborted.load(Ordering::SeqCst);
        summary.forced = shared.forced_clients.load(Ordering::SeqCst);
        shared.emit(None, EventKind::Stopped { summary }, None);
        summary
    }

    /// Waits until fewer than `max_clients` are open; false once stopped.
    fn wait_for_slot(&self) -> bool {
        let shared = &self.shared;
        let mut clients = shared.clients();
        let mut said = false;
        while clients.live >= shared.config.max_clients.max(1)
            && !shared.stop.load(Ordering::SeqCst)
        {
            if !said {
                said = true;
                shared.emit(None, EventKind::Saturated { open: clients.live }, None);
            }
            // Woken by each client that ends, and by stop.
            clients = shared.wait(clients, Duration::from_secs(1));
        }
        !shared.stop.load(Ordering::SeqCst)
    }

    /// Starts the client's thread; returns how many are open.
    fn spawn_client(&self, client: ClientId, stream: TcpStream) -> usize {
        let shared = Arc::clone(&self.shared);
        let open = {
            let mut clients = shared.clients();
            if let Ok(clone) = stream.try_clone() {
                clients.streams.insert(client.n, clone);
            }
            clients.live += 1;
            clients.live
        };
        let thread_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("client-{}", client.n))
            .stack_size(CLIENT_STACK_SIZE)
            .spawn(move || {
                let _leave = LeaveGuard {
                    shared: &thread_shared,
                    n: client.n,
                };
                serve_client(&thread_shared, client, stream);
            });
        if let Err(e) = spawned {
            {
                let mut clients = shared.clients();
                clients.streams.remove(&client.n);
                clients.live -= 1;
            }
            shared.emit(
                Some(client),
                EventKind::ClientError {
                    error: format!("no thread for this client: {e}"),
                },
                None,
            );
        }
        open
    }

    /// Waits for the client threads, so that all their events are out.
    /// Once `max_connections` is reached they finish in their own time,
    /// unless a stop comes; after a stop they get the grace period, then
    /// their sockets are shut down and they get [`STRAGGLER_LIMIT`] more.
    fn finish_clients(&self) {
        let shared = &self.shared;
        if self.wait_for_clients(None) == 0 {
            return;
        }
        // Clients whose socket is already closed only have their last
        // line to write: they are not "open".
        let open = shared.clients().streams.len();
        if open > 0 {
            shared.emit(
                None,
                EventKind::Stopping {
                    open,
                    grace: shared.config.grace,
                },
                None,
            );
        }
        if self.wait_for_clients(Some(shared.config.grace)) == 0 {
            return;
        }
        shared.forced.store(true, Ordering::SeqCst);
        for stream in shared.clients().streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.wait_for_clients(Some(STRAGGLER_LIMIT));
    }

    /// Waits until no client thread runs: at most `limit`, or with no
    /// limit until a stop. Returns how many still run.
    fn wait_for_clients(&self, limit: Option<Duration>) -> usize {
        let shared = &self.shared;
        let deadline = limit.map(|limit| Instant::now() + limit);
        let mut clients = shared.clients();
        while clients.live > 0 {
            let step = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None if shared.stop.load(Ordering::SeqCst) => Duration::ZERO,
                None => Duration::from_secs(1),
            };
            if step.is_zero() {
                break;
            }
            clients = shared.wait(clients, step);
        }
        clients.live
    }
}

/// Refuses a configuration that cannot work.
fn check(config: &Config) -> Result<(), ServeError> {
    // A read timeout of 0 is refused by the kernel call (EINVAL): every
    // client would fail on its first read.
    if config.idle_timeout.is_zero() {
        return Err(ServeError::Config {
            reason: "the idle timeout must be more than 0".into(),
        });
    }
    // One message of the largest size, its header, and the read that
    // completes it must fit.
    let least = config
        .max_message
        .saturating_add(framing::LENGTH_PREFIX_LEN + framing::MAX_HEADER_LEN + READ_BUFFER_LEN);
    if config.framing.is_some() && config.memory_budget < least {
        return Err(ServeError::Config {
            reason: format!(
                "a memory budget of {} bytes cannot hold one message of the largest size \
                 (--max-message {} bytes): it needs at least {least} bytes",
                config.memory_budget, config.max_message
            ),
        });
    }
    Ok(())
}

/// Takes the client off the open list when its thread ends, however it
/// ends, after its last event.
struct LeaveGuard<'a> {
    shared: &'a Shared,
    n: u64,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        let mut clients = self.shared.clients();
        clients.streams.remove(&self.n);
        clients.live = clients.live.saturating_sub(1);
        self.shared.changed.notify_all();
    }
}

/// The bytes one client holds for incomplete messages, charged to the
/// shared budget; given back when dropped.
struct Charge<'a> {
    shared: &'a Shared,
    held: usize,
}

impl Charge<'_> {
    /// Charges `held` bytes in all, if the budget has room; false (and
    /// nothing charged) if not.
    fn grow_to(&mut self, held: usize) -> bool {
        let more = held.saturating_sub(self.held);
        let budget = self.shared.config.memory_budget;
        let charged = self
            .shared
            .buffered
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |total| {
                total.checked_add(more).filter(|&t| t <= budget)
            })
            .is_ok();
        if charged {
            self.held += more;
        }
        charged
    }

    /// Charges what the client really holds now (less, once messages are
    /// answered).
    fn settle(&mut self, held: usize) {
        if held >= self.held {
            self.shared
                .buffered
                .fetch_add(held - self.held, Ordering::SeqCst);
        } else {
            self.shared
                .buffered
                .fetch_sub(self.held - held, Ordering::SeqCst);
        }
        self.held = held;
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.settle(0);
    }
}

/// How a client's exchange ended.
enum Outcome {
    /// The peer's FIN arrived.
    PeerClosed,
    /// `--close first`: the first reply is out.
    Replied,
    /// A message over a limit: tell the client (`frame`) and close.
    Refused { reason: String, frame: Vec<u8> },
}

/// One client's whole life: read, reply, close.
fn serve_client(shared: &Shared, client: ClientId, stream: TcpStream) {
    let accepted_at = Instant::now();
    let conn = Conn {
        shared,
        client,
        stream,
    };
    conn.event(EventKind::Accepted);
    match conn.exchange() {
        Ok(Outcome::PeerClosed) => conn.close(true, accepted_at),
        Ok(Outcome::Replied) => conn.close(false, accepted_at),
        Ok(Outcome::Refused { reason, frame }) => conn.refuse(reason, &frame, accepted_at),
        Err(error) => {
            conn.fail(&error);
            if shared.config.linger0 {
                conn.abort(accepted_at);
            } else {
                // Closes it (with RST if unread data remains).
                conn.release();
            }
        }
    }
}

fn describe(error: &io::Error, idle: Duration) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("idle for {}, closing", human(idle))
        }
        io::ErrorKind::ConnectionReset => "connection reset by peer (RST)".to_string(),
        io::ErrorKind::BrokenPipe => "broken pipe: the peer is gone".to_string(),
        _ => error.to_string(),
    }
}

struct Conn<'a> {
    shared: &'a Shared,
    client: ClientId,
    stream: TcpStream,
}

impl Conn<'_> {
    fn kernel(&self) -> Option<TcpInfo> {
        match self.shared.config.kernel_view {
            KernelView::Off => None,
            _ => sockinfo::tcp_info(&self.stream).ok(),
        }
    }

    fn event(&self, kind: EventKind) {
        self.shared.emit(Some(self.client), kind, self.kernel());
    }

    /// The connection failed: an error, or, once the grace period ended
    /// and the server shut the socket down, the server's own doing.
    fn fail(&self, error: &io::Error) {
        if self.shared.forced.load(Ordering::SeqCst) {
            self.event(EventKind::Forced);
        } else {
            self.event(EventKind::ClientError {
                error: describe(error, self.shared.config.idle_timeout),
            });
        }
    }

    /// Reads and answers until the peer's FIN, or with `--close first`
    /// the first reply, or a message over a limit.
    fn exchange(&self) -> io::Result<Outcome> {
        let config = &self.shared.config;
        self.stream.set_read_timeout(Some(config.idle_timeout))?;
        self.stream.set_write_timeout(Some(config.idle_timeout))?;
        self.stream.set_nodelay(true)?;
        let sock = SockRef::from(&self.stream);
        // Declared first, dropped last: the budget gets the bytes back
        // once the responder has freed them.
        let mut charge = Charge {
            shared: self.shared,
            held: 0,
        };
        let mut responder = Responder::with_max_message(
            config.reply.clone(),
            config.framing,
            config.close,
            config.max_message,
        );
        let mut buf = vec![0u8; READ_BUFFER_LEN];
        for _ in 0..MAX_READS_PER_CLIENT {
            // ACK at once (no delayed ACK), so that the peer's FIN is
            // acknowledged on its own: FIN / ACK / FIN / ACK.
            let _ = sock.set_tcp_quickack(true);
            let n = (&self.stream).read(&mut buf)?;
            if n == 0 && self.shared.forced.load(Ordering::SeqCst) {
                return Err(io::Error::other(FORCED));
            }
            if n == 0 {
                self.event(EventKind::PeerClosed);
                if responder.pending() > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the peer closed in the middle of a message ({} bytes held)",
                            responder.pending()
                        ),
                    ));
                }
                return Ok(Outcome::PeerClosed);
            }
            self.event(EventKind::Read { bytes: n });
            let needed = responder.held_after_read(n);
            if needed > charge.held && !charge.grow_to(needed) {
                let reason = format!(
                    "the server's memory budget for messages is full ({} of {} bytes held \
                     by all clients, this read needs {} more; --memory-budget)",
                    self.shared.buffered.load(Ordering::SeqCst),
                    config.memory_budget,
                    needed - charge.held
                );
                return Ok(self.refusal(&responder, reason));
            }
            let response = match responder.on_read(&buf[..n]) {
                Ok(response) => response,
                Err(e @ FramingError::BodyTooLong { .. }) => {
                    return Ok(self.refusal(&responder, format!("{e} (--max-message)")));
                }
                Err(e @ FramingError::HeaderTooLong { .. }) => {
                    return Ok(self.refusal(&responder, e.to_string()));
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            };
            charge.settle(responder.held());
            for bytes in response.messages {
                self.event(EventKind::Message { bytes });
            }
            if !response.out.is_empty() {
                (&self.stream).write_all(&response.out)?;
                self.event(EventKind::Replied {
                    bytes: response.out.len(),
                });
            }
            if responder.done() {
                return Ok(Outcome::Replied);
            }
        }
        Err(io::Error::other("too many reads on one connection"))
    }

    fn refusal(&self, responder: &Responder, reason: String) -> Outcome {
        let frame = responder.error_frame(&format!("error: {reason}"));
        Outcome::Refused { reason, frame }
    }

    /// Tells the client why (an error frame), sends our FIN, then reads
    /// and drops what it still sends, for at most [`REFUSAL_LINGER`]:
    /// closing with its bytes unread would send RST, and the RST could
    /// destroy the error frame before the client reads it.
    fn refuse(self, reason: String, frame: &[u8], accepted_at: Instant) {
        self.event(EventKind::Refused { reason });
        let sent = (&self.stream)
            .write_all(frame)
            .and_then(|()| self.stream.shutdown(Shutdown::Write));
        if sent.is_ok() {
            self.event(EventKind::SentFin);
            let deadline = Instant::now() + REFUSAL_LINGER;
            let mut buf = vec![0u8; READ_BUFFER_LEN];
            for _ in 0..MAX_READS_PER_CLIENT {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match (&self.stream).read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if self.shared.config.linger0 {
            self.abort(accepted_at);
            return;
        }
        let (shared, client) = (self.shared, self.client);
        let elapsed = accepted_at.elapsed();
        self.release();
        shared.emit(Some(client), EventKind::Closed { elapsed }, None);
    }

    fn close(self, peer_closed: bool, accepted_at: Instant) {
        if self.shared.config.linger0 {
            self.abort(accepted_at);
            return;
        }
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            self.fail(&e);
            self.release();
            return;
        }
        self.event(EventKind::SentFin);
        self.watch_state();
        if !peer_closed {
            // We closed first: wait for the peer's FIN (FIN-WAIT-2).
            match self.drain() {
                Ok(()) => self.event(EventKind::PeerClosed),
                Err(e) => self.fail(&e),
            }
            if self.shared.config.kernel_view == KernelView::Full && self.in_time_wait() {
                self.shared
                    .emit(Some(self.client), EventKind::TimeWait, None);
            }
        }
        let (shared, client) = (self.shared, self.client);
        let elapsed = accepted_at.elapsed();
        self.release();
        shared.emit(Some(client), EventKind::Closed { elapsed }, None);
    }

    /// SO_LINGER 0 and close: the kernel sends RST and forgets the socket.
    fn abort(self, accepted_at: Instant) {
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        let (shared, client) = (self.shared, self.client);
        let elapsed = accepted_at.elapsed();
        self.release();
        shared.emit(Some(client), EventKind::Aborted { elapsed }, None);
    }

    /// Closes the socket now: our stream and the open list's clone of it
    /// (the kernel closes a socket with its last descriptor).
    fn release(self) {
        self.shared.clients().streams.remove(&self.client.n);
        drop(self.stream);
    }

    /// After our FIN, reports the states the kernel moves the socket
    /// through by itself (FIN-WAIT-1 → FIN-WAIT-2, LAST-ACK → CLOSED),
    /// watching for at most [`STATE_WATCH_LIMIT`].
    fn watch_state(&self) {
        if self.shared.config.kernel_view != KernelView::Full {
            return;
        }
        let Ok(first) = sockinfo::tcp_info(&self.stream) else {
            return;
        };
        let settled = |s: State| matches!(s, State::FinWait2 | State::Closed | State::TimeWait);
        let mut from = first.state;
        let deadline = Instant::now() + STATE_WATCH_LIMIT;
        while !settled(from) && Instant::now() < deadline {
            thread::sleep(STATE_WATCH_STEP);
            let Ok(now) = sockinfo::tcp_info(&self.stream) else {
                return;
            };
            if now.state != from {
                self.shared.emit(
                    Some(self.client),
                    EventKind::KernelMoved {
                        from,
                        to: now.state,
                    },
                    Some(now.clone()),
                );
                from = now.state;
            }
        }
    }

    /// Reads and drops what the peer still sends until its FIN.
    fn drain(&self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUFFER_LEN];
        for _ in 0..MAX_READS_PER_CLIENT {
            let n = (&self.stream).read(&mut buf)?;
            if n == 0 && self.shared.forced.load(Ordering::SeqCst) {
                return Err(io::Error::other(FORCED));
            }
            if n == 0 {
                return Ok(());
            }
            self.event(EventKind::Discarded { bytes: n });
        }
        Err(io::Error::other("the peer kept sending after our FIN"))
    }

    /// Whether sock_diag shows this connection in TIME-WAIT.
    fn in_time_wait(&self) -> bool {
        let Ok(local) = self.stream.local_addr() else {
            return false;
        };
        sockinfo::sockets_on_port(local.port())
            .map(|sockets| {
                sockets.iter().any(|s| {
                    s.local == local && s.remote == self.client.peer && s.state == State::TimeWait
                })
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_to_vec;

    fn text(reply: &str) -> Reply {
        Reply::Text(reply.as_bytes().to_vec())
    }

    #[test]
    fn unframed_text_reply_answers_each_read() {
        let mut r = Responder::new(text("hi\n"), None, CloseMode::AfterPeer);
        assert_eq!(r.on_read(b"hello").expect("reply").out, b"hi\n");
        assert!(!r.done());
        assert_eq!(r.on_read(b"again").expect("reply").out, b"hi\n");
    }

    #[test]
    fn unframed_echo_sends_the_read_back() {
        let mut r = Responder::new(Reply::Echo, None, CloseMode::AfterPeer);
        let response = r.on_read(b"hello").expect("reply");
        assert_eq!(response.out, b"hello");
        assert!(response.messages.is_empty());
    }

    #[test]
    fn close_first_is_done_after_the_first_reply() {
        let mut r = Responder::new(text("bye"), None, CloseMode::First);
        assert!(!r.done());
        r.on_read(b"x").expect("reply");
        assert!(r.done());
    }

    #[test]
    fn framed_echo_answers_each_message_of_one_read() {
        for framing in [Framing::LengthPrefix, Framing::JsonHeader] {
            let mut wire = encode_to_vec(framing, b"one").expect("encode");
            wire.extend(encode_to_vec(framing, b"two").expect("encode"));
            wire.extend(encode_to_vec(framing, b"three").expect("encode"));
            let mut r = Responder::new(Reply::Echo, Some(framing), CloseMode::AfterPeer);
            let response = r.on_read(&wire).expect("reply");
            assert_eq!(response.messages, vec![3, 3, 5]);
            assert_eq!(response.out, wire, "{framing:?}: an echo of the frames");
        }
    }

    #[test]
    fn framed_reply_waits_for_the_whole_message() {
        let wire = encode_to_vec(Framing::LengthPrefix, b"hello").expect("encode");
        let mut r = Responder::new(text("ok"), Some(Framing::LengthPrefix), CloseMode::First);
        for byte in &wire[..wire.len() - 1] {
            let response = r.on_read(std::slice::from_ref(byte)).expect("partial");
            assert!(response.out.is_empty() && response.messages.is_empty());
            assert!(!r.done());
        }
        assert_eq!(r.pending(), wire.len() - 1);
        let response = r.on_read(&wire[wire.len() - 1..]).expect("reply");
        assert_eq!(response.messages, vec![5]);
        assert_eq!(response.out, b"\x00\x00\x00\x02ok");
        assert!(r.done());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn a_bad_frame_is_an_error() {
        let mut r = Responder::new(Reply::Echo, Some(Framing::JsonHeader), CloseMode::AfterPeer);
        assert!(r.on_read(b"\x00\x00\x00\x03{x}").is_err());
    }

    #[test]
    fn events_format_with_the_kernel_view() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().expect("addr");
        let event = Event {
            t: Duration::from_micros(1500),
            client: Some(ClientId { n: 3, peer }),
            kind: EventKind::PeerClosed,
            kernel: Some(TcpInfo {
                state: State::CloseWait,
                rtt: Duration::from_micros(52),
                rttvar: Duration::ZERO,
                rto: Duration::ZERO,
                min_rtt: Duration::ZERO,
                retransmits: 0,
                backoff: 0,
                total_retrans: 0,
                snd_cwnd: 10,
                snd_ssthresh: 0,
                unacked: 0,
                rcv_mss: 0,
                snd_mss: 0,
                snd_wnd: 0,
                rcv_wnd: 0,
                bytes_acked: 0,
                bytes_received: 0,
                segs_out: 0,
                segs_in: 0,
                last_data_sent: Duration::ZERO,
                last_data_recv: Duration::ZERO,
            }),
        };
        let line = format_event(&event);
        assert!(
            line.starts_with("#3    127.0.0.1:51234       read EOF"),
            "{line}"
        );
        assert!(line.contains("kernel: CLOSE-WAIT"), "{line}");
        assert!(line.contains("rtt 0.052ms retrans 0/0"), "{line}");
        let listening = format_event(&Event {
            t: Duration::ZERO,
            client: None,
            kind: EventKind::Listening {
                addr: "127.0.0.1:8080".parse().expect("addr"),
                backlog: 1024,
                reuse_address: false,
                max_clients: 8,
            },
            kernel: None,
        });
        assert_eq!(
            listening,
            "listening on 127.0.0.1:8080 (backlog 1024, SO_REUSEADDR off, up to 8 clients at once)"
        );
    }

    fn closing_info() -> TcpInfo {
        TcpInfo {
            state: State::CloseWait,
            rtt: Duration::from_micros(52),
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            min_rtt: Duration::ZERO,
            retransmits: 1,
            backoff: 0,
            total_retrans: 2,
            snd_cwnd: 10,
            snd_ssthresh: 0,
            unacked: 0,
            rcv_mss: 0,
            snd_mss: 0,
            snd_wnd: 0,
            rcv_wnd: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_out: 0,
            segs_in: 0,
            last_data_sent: Duration::ZERO,
            last_data_recv: Duration::ZERO,
        }
    }

    fn json(event: &Event) -> serde_json::Value {
        serde_json::from_str(&format_json(event)).expect("one JSON object")
    }

    #[test]
    fn events_serialize_as_json_lines_of_the_envelope() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().expect("addr");
        let client = Some(ClientId { n: 3, peer });
        let recv = json(&Event {
            t: Duration::from_nanos(1_500_123),
            client,
            kind: EventKind::Read { bytes: 5 },
            kernel: Some(closing_info()),
        });
        assert_eq!(
            recv,
            serde_json::json!({
                "event": "recv", "bytes": 5, "t_ns": 1_500_123, "conn": 3,
                "peer": "127.0.0.1:51234",
                "kernel": {"state": "CLOSE-WAIT", "rtt_us": 52, "retransmits": 1, "total_retrans": 2},
            })
        );
        // A unit variant: only its name; durations in integer ns.
        let eof = json(&Event {
            t: Duration::from_secs(2),
            client,
            kind: EventKind::PeerClosed,
            kernel: None,
        });
        assert_eq!(
            eof,
            serde_json::json!({"event": "eof", "t_ns": 2_000_000_000u64, "conn": 3, "peer": "127.0.0.1:51234"})
        );
        let close = json(&Event {
            t: Duration::ZERO,
            client,
            kind: EventKind::Closed {
                elapsed: Duration::from_micros(310),
            },
            kernel: None,
        });
        assert_eq!(close["event"], "close");
        assert_eq!(close["elapsed_ns"], 310_000);
        // The listener's kernel view is its state alone, as in the text.
        let mut listen_info = closing_info();
        listen_info.state = State::Listen;
        let listening = json(&Event {
            t: Duration::ZERO,
            client: None,
            kind: EventKind::Listening {
                addr: "127.0.0.1:8080".parse().expect("addr"),
                backlog: 1024,
                reuse_address: true,
                max_clients: 8,
            },
            kernel: Some(listen_info),
        });
        assert_eq!(
            listening,
            serde_json::json!({
                "event": "listening", "addr": "127.0.0.1:8080", "backlog": 1024,
                "reuse_address": true, "max_clients": 8, "t_ns": 0,
                "kernel": {"state": "LISTEN"},
            })
        );
        // A connection's error is not the run's "error" object.
        let failed = json(&Event {
            t: Duration::ZERO,
            client,
            kind: EventKind::ClientError {
                error: "connection reset by peer (RST)".into(),
            },
            kernel: None,
        });
        assert_eq!(failed["event"], "client_error");
        assert_eq!(failed["message"], "connection reset by peer (RST)");
        // The summary's counts sit beside "event", not in an object.
        let summary = json(&Event {
            t: Duration::from_millis(7),
            client: None,
            kind: EventKind::Stopped {
                summary: Summary {
                    accepted: 4,
                    errors: 1,
                    refused: 1,
                    aborted: 0,
                    forced: 0,
                    peak: 2,
                },
            },
            kernel: None,
        });
        assert_eq!(
            summary,
            serde_json::json!({
                "event": "summary", "connections": 4, "errors": 1, "refused": 1,
                "aborted": 0, "forced": 0, "peak": 2, "t_ns": 7_000_000,
            })
        );
        let stopping = json(&Event {
            t: Duration::ZERO,
            client: None,
            kind: EventKind::Stopping {
                open: 1,
                grace: Duration::from_secs(5),
            },
            kernel: None,
        });
        assert_eq!(stopping["grace_ns"], 5_000_000_000u64);
    }

    #[test]
    fn address_in_use_explains_time_wait_without_reuseaddr() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let err = ServeError::AddrInUse {
            addr,
            reuse_address: false,
            listening: false,
            time_wait: 2,
        };
        let text = err.to_string();
        assert!(
            text.starts_with("cannot listen on 127.0.0.1:8080: address in use"),
            "{text}"
        );
        assert!(
            text.contains("2 connections on this port in TIME-WAIT"),
            "{text}"
        );
        assert!(text.contains("--no-reuseaddr"), "{text}");
        let listening = ServeError::AddrInUse {
            addr,
            reuse_address: true,
            listening: true,
            time_wait: 0,
        };
        assert!(listening
            .to_string()
            .contains("another socket is listening"));
    }

    fn collecting_sink() -> (Sink, Arc<Mutex<Vec<Event>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&events);
        let sink: Sink = Arc::new(move |e: &Event| {
            store.lock().expect("events").push(e.clone());
        });
        (sink, events)
    }

    #[test]
    fn the_server_side_sees_close_wait_then_last_ack_or_closed() {
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
        config.max_connections = Some(1);
        let (sink, events) = collecting_sink();
        let server = Server::bind(config, sink).expect("bind");
        let addr = server.local_addr().expect("addr");
        let runner = thread::spawn(move || server.run());

        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client.write_all(b"hello").expect("write");
        let mut reply = [0u8; DEFAULT_REPLY.len()];
        client.read_exact(&mut reply).expect("reply");
        assert_eq!(&reply, DEFAULT_REPLY.as_bytes());
        client.shutdown(Shutdown::Write).expect("FIN");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("server's FIN");
        assert!(rest.is_empty());
        let summary = runner.join().expect("server thread");
        assert_eq!(summary.accepted, 1);
        assert_eq!(summary.errors, 0);

        let events = events.lock().expect("events");
        let peer_closed = events
            .iter()
            .find(|e| e.kind == EventKind::PeerClosed)
            .expect("PeerClosed");
        assert_eq!(
            peer_closed.kernel.as_ref().map(|k| k.state),
            Some(State::CloseWait)
        );
        let sent_fin = events
            .iter()
            .find(|e| e.kind == EventKind::SentFin)
            .expect("SentFin");
        let state = sent_fin.kernel.as_ref().map(|k| k.state);
        assert!(
            matches!(state, Some(State::LastAck | State::Closed)),
            "{state:?}"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Closed { .. })));
        assert!(matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::Stopped { .. })
        ));
        // The sink sees the events in the order of their times.
        assert!(
            events.windows(2).all(|w| w[0].t <= w[1].t),
            "{:?}",
            events.iter().map(|e| e.t).collect::<Vec<_>>()
        );
    }

    /// A sink as slow as a stdout piped to a busy reader: 50 ms per line.
    fn slow_collecting_sink() -> (Sink, Arc<Mutex<Vec<Event>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&events);
        let sink: Sink = Arc::new(move |e: &Event| {
            if e.client.is_some() {
                thread::sleep(Duration::from_millis(50));
            }
            store.lock().expect("events").push(e.clone());
        });
        (sink, events)
    }

    /// One client with `--close first`: the reply, then the server's RST
    /// (`linger0`) or FIN.
    fn one_exchange(addr: SocketAddr) {
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client.write_all(b"hello").expect("write");
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got);
    }

    #[test]
    fn every_event_of_the_last_connection_comes_before_the_summary() {
        for linger0 in [true, false] {
            let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
            config.max_connections = Some(1);
            config.close = CloseMode::First;
            config.linger0 = linger0;
            let (sink, events) = slow_collecting_sink();
            let server = Server::bind(config, sink).expect("bind");
            let addr = server.local_addr().expect("addr");
            let runner = thread::spawn(move || server.run());
            one_exchange(addr);
            let summary = runner.join().expect("server thread");
            let events = events.lock().expect("events");
            let kinds: Vec<_> = events.iter().map(|e| &e.kind).collect();
            // --count reached is no stop: no "stopping" line ahead of the
            // client's own events, and its last event before the summary.
            assert!(
                !kinds
                    .iter()
                    .any(|k| matches!(k, EventKind::Stopping { .. })),
                "{kinds:?}"
            );
            let last_client_event = &kinds[kinds.len() - 2];
            if linger0 {
                assert!(
                    matches!(last_client_event, EventKind::Aborted { .. }),
                    "{kinds:?}"
                );
            } else {
                assert!(
                    matches!(last_client_event, EventKind::Closed { .. }),
                    "{kinds:?}"
                );
            }
            assert!(
                matches!(kinds.last(), Some(EventKind::Stopped { .. })),
                "{kinds:?}"
            );
            // The summary counts what the events say.
            let count = |f: fn(&EventKind) -> bool| kinds.iter().filter(|k| f(k)).count() as u64;
            assert_eq!(
                summary.aborted,
                count(|k| matches!(k, EventKind::Aborted { .. }))
            );
            assert_eq!(summary.aborted, u64::from(linger0));
            assert_eq!(
                summary.errors,
                count(|k| matches!(k, EventKind::ClientError { .. }))
            );
            assert_eq!(summary.errors, 0, "{kinds:?}");
        }
    }

    #[test]
    fn a_stop_waits_for_the_events_of_a_connection_in_flight() {
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
        config.close = CloseMode::First;
        config.linger0 = true;
        let (sink, events) = slow_collecting_sink();
        let server = Server::bind(config, sink).expect("bind");
        let addr = server.local_addr().expect("addr");
        let stopper = server.stopper();
        let runner = thread::spawn(move || server.run());
        // The RST arrives while the server still narrates (50 ms a line):
        // the stop comes in the middle of the client's events.
        one_exchange(addr);
        stopper.stop();
        let summary = runner.join().expect("server thread");
        let events = events.lock().expect("events");
        let kinds: Vec<_> = events.iter().map(|e| &e.kind).collect();
        assert!(
            matches!(kinds[kinds.len() - 2], EventKind::Aborted { .. }),
            "{kinds:?}"
        );
        assert!(matches!(kinds.last(), Some(EventKind::Stopped { .. })));
        assert_eq!((summary.aborted, summary.errors, summary.forced), (1, 0, 0));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let (sink, _events) = collecting_sink();
        let mut idle = Config::new("127.0.0.1:0".parse().expect("addr"));
        idle.idle_timeout = Duration::ZERO;
        let err = Server::bind(idle, Arc::clone(&sink))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("idle timeout"), "{err}");
        let mut small = Config::new("127.0.0.1:0".parse().expect("addr"));
        small.framing = Some(Framing::LengthPrefix);
        small.memory_budget = small.max_message;
        let err = Server::bind(small, sink).err().expect("refused");
        assert!(err.to_string().contains("memory budget"), "{err}");
    }

    #[test]
    fn a_message_over_the_limit_is_refused_in_its_own_framing() {
        let mut r = Responder::with_max_message(
            Reply::Echo,
            Some(Framing::LengthPrefix),
            CloseMode::AfterPeer,
            1024,
        );
        let err = r
            .on_read(&2048u32.to_be_bytes())
            .expect_err("over the limit");
        assert_eq!(
            err,
            FramingError::BodyTooLong {
                len: 2048,
                max: 1024
            }
        );
        let frame = r.error_frame("error: too big");
        assert_eq!(frame, b"\x00\x00\x00\x0eerror: too big");
    }

    #[test]
    fn stop_wakes_a_blocked_accept() {
        let (sink, _events) = collecting_sink();
        let server =
            Server::bind(Config::new("127.0.0.1:0".parse().expect("addr")), sink).expect("bind");
        let stopper = server.stopper();
        let started = Instant::now();
        let runner = thread::spawn(move || server.run());
        thread::sleep(Duration::from_millis(50));
        stopper.stop();
        let summary = runner.join().expect("server thread");
        assert_eq!(summary, Summary::default());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
