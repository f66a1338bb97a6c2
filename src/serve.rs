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
//! bytes of one read, in each reply mode and framing) and [`format_event`]
//! (one narration line per event). The rest does socket I/O and needs no
//! privileges. Stopping ([`Stopper::stop`], wired to SIGINT and SIGTERM by
//! [`stop_on_signals`]) wakes the blocked `accept` by shutting the
//! listening socket down, lets open clients finish within
//! [`Config::grace`], then shuts the stragglers' sockets down.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

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

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The listener is up.
    Listening {
        addr: SocketAddr,
        backlog: i32,
        reuse_address: bool,
        max_clients: usize,
    },
    /// `accept` returned a connection (its handshake is already complete).
    Accepted,
    /// `max_clients` are being served: new ones wait in the accept queue.
    Saturated { open: usize },
    /// One `read` returned data.
    Read { bytes: usize },
    /// A framed message was complete.
    Message { bytes: usize },
    /// The reply was written.
    Replied { bytes: usize },
    /// `read` returned 0: the peer's FIN arrived (we are in CLOSE-WAIT, or
    /// on from FIN-WAIT-2 if we closed first).
    PeerClosed,
    /// Bytes the peer sent after our FIN, read and dropped.
    Discarded { bytes: usize },
    /// `shutdown(Write)`: our FIN is on its way.
    SentFin,
    /// The kernel moved the socket on by itself (an ACK or FIN arrived).
    KernelMoved { from: State, to: State },
    /// The kernel keeps the connection in TIME-WAIT after the socket is
    /// gone (seen with sock_diag).
    TimeWait,
    /// The socket was closed, `elapsed` after the accept.
    Closed { elapsed: Duration },
    /// The socket was closed with SO_LINGER 0: RST instead of FIN.
    Aborted { elapsed: Duration },
    /// The client's connection failed (reset, timeout, bad frame…).
    ClientError { error: String },
    /// The accept loop hit an error (and goes on).
    AcceptError { error: String },
    /// A stop was asked for: no more accepts.
    Stopping { open: usize, grace: Duration },
    /// The server is done.
    Stopped { summary: Summary },
}

/// One event, with the kernel's view of the socket at that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The client it concerns (None for listener events).
    pub client: Option<ClientId>,
    pub kind: EventKind,
    /// `TCP_INFO` right after the event (when asked for and available).
    pub kernel: Option<TcpInfo>,
}

/// Where events go (the binary prints them; tests collect them).
pub type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended in an error.
    pub errors: u64,
    /// Connections still open when the grace period ended, shut down.
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
        EventKind::ClientError { error } => write!(line, "error: {error}"),
        EventKind::AcceptError { error } => write!(line, "accept failed: {error}"),
        EventKind::Stopping { open, grace } => write!(
            line,
            "stopping: no more accepts; {open} open client(s) get {} to finish",
            human(*grace)
        ),
        EventKind::Stopped { summary } => write!(
            line,
            "stopped: {} connection(s), {} error(s), {} shut down at the end of the grace period, at most {} at once",
            summary.accepted, summary.errors, summary.forced, summary.peak
        ),
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
    pub fn new(reply: Reply, framing: Option<Framing>, close: CloseMode) -> Responder {
        Responder {
            reply,
            decoder: framing.map(Decoder::new),
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
        // shutdown(SHUT_RD) on a listening socket stops it listening and
        // wakes a thread blocked in accept(2) (EINVAL) on Linux.
        let _ = SockRef::from(&self.shared.listener).shutdown(Shutdown::Read);
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

struct Shared {
    stop: AtomicBool,
    /// The grace period ended and the open clients' sockets were shut down.
    forced: AtomicBool,
    /// A clone of the listening socket, to shut it down from `stop`.
    listener: TcpListener,
    /// Open clients: a clone of each stream, to shut stragglers down.
    open: Mutex<HashMap<u64, TcpStream>>,
    changed: Condvar,
    errors: AtomicU64,
    sink: Sink,
    config: Config,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        // A client thread that panicked while holding the lock leaves the
        // map itself intact: keep going with it.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, client: Option<ClientId>, kind: EventKind, kernel: Option<TcpInfo>) {
        (self.sink)(&Event {
            client,
            kind,
            kernel,
        });
    }
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
    /// [`ServeError`].
    pub fn bind(config: Config, sink: Sink) -> Result<Server, ServeError> {
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
                open: Mutex::new(HashMap::new()),
                changed: Condvar::new(),
                errors: AtomicU64::new(0),
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
    /// then waits for open clients within the grace period.
    pub fn run(self) -> Summary {
        let shared = &self.shared;
        let config = &shared.config;
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
                    let open = shared.open();
                    let _ = shared.changed.wait_timeout(open, ACCEPT_RETRY_DELAY);
                }
            }
        }
        // Stop listening (the socket leaves LISTEN; connections still in
        // the accept queue get RST); the descriptor closes when run returns.
        Stopper {
            shared: Arc::clone(shared),
        }
        .stop();
        summary.forced = self.finish_open_clients();
        summary.errors = shared.errors.load(Ordering::SeqCst);
        shared.emit(None, EventKind::Stopped { summary }, None);
        summary
    }

    /// Waits until fewer than `max_clients` are open; false once stopped.
    fn wait_for_slot(&self) -> bool {
        let shared = &self.shared;
        let mut open = shared.open();
        let mut said = false;
        while open.len() >= shared.config.max_clients.max(1) && !shared.stop.load(Ordering::SeqCst)
        {
            if !said {
                said = true;
                shared.emit(None, EventKind::Saturated { open: open.len() }, None);
            }
            // Woken by each client that ends, and by stop.
            open = match shared.changed.wait_timeout(open, Duration::from_secs(1)) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        !shared.stop.load(Ordering::SeqCst)
    }

    /// Starts the client's thread; returns how many are open.
    fn spawn_client(&self, client: ClientId, stream: TcpStream) -> usize {
        let shared = Arc::clone(&self.shared);
        let open = {
            let mut open = shared.open();
            if let Ok(clone) = stream.try_clone() {
                open.insert(client.n, clone);
            }
            open.len()
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
            shared.open().remove(&client.n);
            shared.errors.fetch_add(1, Ordering::SeqCst);
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

    /// After a stop: waits for open clients within the grace period, then
    /// shuts the rest down and waits a little more. Returns how many had
    /// to be shut down.
    fn finish_open_clients(&self) -> u64 {
        let shared = &self.shared;
        let open_now = shared.open().len();
        if open_now == 0 {
            return 0;
        }
        shared.emit(
            None,
            EventKind::Stopping {
                open: open_now,
                grace: shared.config.grace,
            },
            None,
        );
        let remaining = self.wait_until_empty(shared.config.grace);
        if remaining == 0 {
            return 0;
        }
        shared.forced.store(true, Ordering::SeqCst);
        for stream in shared.open().values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.wait_until_empty(STRAGGLER_LIMIT);
        remaining as u64
    }

    fn wait_until_empty(&self, limit: Duration) -> usize {
        let shared = &self.shared;
        let deadline = Instant::now() + limit;
        let mut open = shared.open();
        while !open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            open = match shared.changed.wait_timeout(open, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        open.len()
    }
}

/// Takes the client off the open list when its thread ends, however it ends.
struct LeaveGuard<'a> {
    shared: &'a Shared,
    n: u64,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        self.shared.open().remove(&self.n);
        self.shared.changed.notify_all();
    }
}

/// One client's whole life: read, reply, close.
fn serve_client(shared: &Shared, client: ClientId, stream: TcpStream) {
    let config = &shared.config;
    let accepted_at = Instant::now();
    let conn = Conn {
        shared,
        client,
        stream,
    };
    conn.event(EventKind::Accepted);
    match conn.exchange() {
        Ok(peer_closed) => conn.close(peer_closed, accepted_at),
        Err(error) => {
            if !shared.forced.load(Ordering::SeqCst) {
                shared.errors.fetch_add(1, Ordering::SeqCst);
            }
            conn.event(EventKind::ClientError {
                error: describe(&error, config.idle_timeout),
            });
            if config.linger0 {
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

    /// Reads and answers until the peer's FIN (`Ok(true)`) or, with
    /// `--close first`, the first reply (`Ok(false)`).
    fn exchange(&self) -> io::Result<bool> {
        let config = &self.shared.config;
        self.stream.set_read_timeout(Some(config.idle_timeout))?;
        self.stream.set_write_timeout(Some(config.idle_timeout))?;
        self.stream.set_nodelay(true)?;
        let sock = SockRef::from(&self.stream);
        let mut responder = Responder::new(config.reply.clone(), config.framing, config.close);
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
                return Ok(true);
            }
            self.event(EventKind::Read { bytes: n });
            let response = responder
                .on_read(&buf[..n])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
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
                return Ok(false);
            }
        }
        Err(io::Error::other("too many reads on one connection"))
    }

    fn close(self, peer_closed: bool, accepted_at: Instant) {
        if self.shared.config.linger0 {
            self.abort(accepted_at);
            return;
        }
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            self.shared.errors.fetch_add(1, Ordering::SeqCst);
            self.event(EventKind::ClientError {
                error: describe(&e, self.shared.config.idle_timeout),
            });
            return;
        }
        self.event(EventKind::SentFin);
        self.watch_state();
        if !peer_closed {
            // We closed first: wait for the peer's FIN (FIN-WAIT-2).
            match self.drain() {
                Ok(()) => self.event(EventKind::PeerClosed),
                Err(e) => {
                    self.shared.errors.fetch_add(1, Ordering::SeqCst);
                    self.event(EventKind::ClientError {
                        error: describe(&e, self.shared.config.idle_timeout),
                    });
                }
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
        self.shared.open().remove(&self.client.n);
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
