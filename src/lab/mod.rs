//! `synack lab`: the self-contained demo. A private network namespace, a
//! kernel TCP server (`std::net::TcpListener`) on one end of a veth pair,
//! synack's hand-built client on the other, every frame narrated and
//! written to a pcap.
//!
//! Privileged (CAP_NET_ADMIN and CAP_NET_RAW): the namespace, the veth pair
//! and the AF_PACKET socket. Root has them; anyone else gets them inside a
//! user namespace, where the host allows it ([`crate::net::userns`]). The
//! client loop itself ([`client`]) is generic and tested without
//! privileges.

pub mod bench;
pub mod client;
pub(crate) mod reporter;

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::labnet::{self, Namespace, CLIENT_IF, CLIENT_IP, SERVER_IF, SERVER_IP};
use crate::net::link::PnetLink;
use crate::net::server::{Server, ServerConfig};
use crate::net::sockinfo::SockDiag;
use crate::report::{LabEvent, Summary};
use crate::tcp::{self, State};
use crate::wire::SeqNumber;

use client::{Client, ClientError, ClientParams, FrameRecord, Observer};
pub use reporter::Output;
use reporter::{Message, Reporter};

/// Everything `synack lab` can be asked for.
#[derive(Clone, Debug)]
pub struct LabConfig {
    pub port: u16,
    pub data: Vec<u8>,
    pub reply: Vec<u8>,
    pub time_wait: Duration,
    pub timeout: Duration,
    /// Let the server ACK our FIN at once (`TCP_QUICKACK`): FIN / ACK /
    /// FIN / ACK. Off: the ACK rides on the server's FIN.
    pub quickack: bool,
    /// The server closes right after its reply.
    pub server_closes_first: bool,
    /// Start no server: the scenario is the refusal itself.
    pub refused: bool,
    pub isn: Option<u32>,
    pub pcap: PathBuf,
    pub output: Output,
}

/// Why the lab could not run, or how it failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Net(#[from] labnet::LabNetError),
    #[error("starting the server on {addr}: {source}")]
    Server {
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("opening an AF_PACKET socket on {CLIENT_IF}: {0}")]
    Link(#[source] io::Error),
    #[error("creating {path}: {source}")]
    Pcap {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the client: {0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Report(#[source] io::Error),
}

impl LabError {
    /// The connection itself failed (exit status 1), as opposed to the lab
    /// not being able to run (exit status 2).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            LabError::Client(
                ClientError::Timeout { .. }
                    | ClientError::GaveUp { .. }
                    | ClientError::Refused { .. }
                    | ClientError::Reset { .. }
                    | ClientError::NoArpReply { .. }
            )
        )
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, LabError::Client(ClientError::Interrupted { .. }))
    }
}

/// Runs the lab once.
///
/// Call from the main thread before any other thread exists: the namespace
/// applies to the calling thread and the threads it starts afterwards.
///
/// # Errors
/// See [`LabError`].
pub fn run(cfg: &LabConfig, interrupted: Arc<AtomicBool>) -> Result<Summary, LabError> {
    let setup_start = Instant::now();
    let ns = labnet::enter_private_namespace()?;
    labnet::build_lab_network(ns)?;
    let setup = setup_start.elapsed();

    let pcap = create_pcap(&cfg.pcap, ns)?;
    let (tx, rx) = mpsc::channel::<Message>();
    let reporter = Reporter::spawn(rx, pcap, cfg.output, cfg.port).map_err(LabError::Report)?;
    let send = |msg: Message| {
        // The reporter lives until every sender is dropped.
        let _ = tx.send(msg);
    };
    send(Message::Event(LabEvent::Setup {
        setup_us: setup.as_micros() as u64,
        server: format!("{SERVER_IF} {SERVER_IP}/24 (kernel TCP, std::net::TcpListener)"),
        client: format!("{CLIENT_IF} (no IPv4; synack plays {CLIENT_IP})"),
    }));

    let server_addr = SocketAddrV4::new(SERVER_IP, cfg.port);
    let server = if cfg.refused {
        None
    } else {
        let server_tx = tx.clone();
        let server = Server::start(
            ServerConfig {
                addr: server_addr,
                reply: cfg.reply.clone(),
                quickack: cfg.quickack,
                timeout: cfg.timeout,
                connections: 1,
                close_first: cfg.server_closes_first,
            },
            Box::new(move |at, event, state| {
                let _ = server_tx.send(Message::Server { at, event, state });
            }),
        )
        .map_err(|source| LabError::Server {
            addr: server_addr,
            source,
        })?;
        Some(server)
    };

    let mut link = PnetLink::open(CLIENT_IF).map_err(LabError::Link)?;
    let params = client_params(cfg, cfg.isn, cfg.time_wait, None);
    let local_port = params.conn.local_port;
    let mut observer = LabObserver {
        tx: tx.clone(),
        interrupted,
        server: server_addr,
        client: SocketAddrV4::new(CLIENT_IP, local_port),
        diag: match SockDiag::open() {
            Ok(diag) => Some(diag),
            Err(e) => {
                log::warn!("no sock_diag, so no kernel view of the server: {e}");
                None
            }
        },
        synchronized: false,
        listening: !cfg.refused,
    };
    let result = Client::new(&mut link, &mut observer, params, Instant::now()).run();
    drop(observer);

    let outcome = match result {
        Ok(outcome) => {
            // The server has closed by now; its thread ends at once.
            if let Some(server) = server {
                server.join();
            }
            outcome
        }
        Err(ClientError::Refused { at, .. }) if cfg.refused => {
            // The scenario asked for exactly this.
            send(Message::Note {
                at,
                text: format!(
                    "refused, as asked: no socket listens on {server_addr}, so the server's \
                     kernel answered the SYN with RST+ACK (RFC 9293 §3.10.7.1) and the \
                     client went back to CLOSED"
                ),
                changes: Vec::new(),
            });
            client::Outcome {
                final_state: Some(State::Closed),
                ..client::Outcome::default()
            }
        }
        Err(err) => {
            // Flush the capture and the narration before reporting.
            drop(tx);
            if let Err(e) = reporter.finish() {
                log::warn!("finishing the capture: {e}");
            }
            return Err(err.into());
        }
    };
    let summary = Summary {
        handshake_rtt_us: outcome.handshake_rtt.map(micros),
        cycle_us: outcome
            .first_syn_at
            .zip(outcome.last_sent_at)
            .map(|(first, last)| micros(last - first)),
        bytes_c2s: outcome.bytes_sent,
        bytes_s2c: outcome.bytes_received,
        frames: outcome.frames,
        retransmissions: outcome.retransmissions,
        final_state: outcome.final_state,
        time_wait_ms: if cfg.refused {
            0
        } else {
            cfg.time_wait.as_millis() as u64
        },
        refused: cfg.refused,
        pcap: cfg.pcap.display().to_string(),
    };
    send(Message::Event(LabEvent::Summary(summary.clone())));
    drop(tx);
    reporter.finish().map_err(LabError::Report)?;
    Ok(summary)
}

/// What the client of one lab cycle does: a fresh ephemeral port, the ISN
/// given or a random one.
fn client_params(
    cfg: &LabConfig,
    isn: Option<u32>,
    time_wait: Duration,
    server_mac: Option<crate::wire::MacAddr>,
) -> ClientParams {
    let iss = SeqNumber(isn.unwrap_or_else(random_u32));
    let mut conn = tcp::Config::new(ephemeral_port(), cfg.port, iss);
    conn.time_wait = time_wait;
    ClientParams {
        local_ip: CLIENT_IP,
        remote_ip: SERVER_IP,
        conn,
        data: cfg.data.clone(),
        expect_reply: cfg.reply.len(),
        timeout: cfg.timeout,
        server_mac,
        wait_for_peer_close: cfg.server_closes_first,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Creates the capture file; it belongs to the user who ran the lab, so
/// Wireshark opens it without root. Under sudo that takes a chown; inside a
/// user namespace it already does (root there is that user outside), and
/// no other owner could be set.
fn create_pcap(path: &Path, ns: Namespace) -> Result<BufWriter<File>, LabError> {
    let err = |source| LabError::Pcap {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(err)?;
    if ns == Namespace::Root {
        give_to_sudo_user(path).map_err(err)?;
    }
    Ok(BufWriter::new(file))
}

/// `chown $SUDO_UID:$SUDO_GID path` when run through sudo.
pub fn give_to_sudo_user(path: &Path) -> io::Result<()> {
    let id = |name| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
        nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
    }
    Ok(())
}

/// A port from Linux's default ephemeral range (32768–60999).
fn ephemeral_port() -> u16 {
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

/// Forwards every frame to the reporter thread. With `kernel_view`, it
/// first asks the kernel for the server socket's state (sock_diag, what
/// `ss -tan` reads): the only place where the half-open connection, a
/// request socket in SYN-RECV, is visible. The query runs before the client
/// answers a received segment and right after it sent one, so the state is
/// the one that segment left; it costs tens of microseconds, so benchmarks
/// turn it off.
struct LabObserver {
    tx: Sender<Message>,
    interrupted: Arc<AtomicBool>,
    server: SocketAddrV4,
    client: SocketAddrV4,
    /// Open when the kernel's view is wanted.
    diag: Option<SockDiag>,
    synchronized: bool,
    /// A server listens on the port.
    listening: bool,
}

impl LabObserver {
    fn server_state(&mut self) -> Option<State> {
        let diag = self.diag.as_mut()?;
        match diag.lookup(self.server, self.client).ok()? {
            Some(sock) => {
                self.synchronized = true;
                Some(sock.state)
            }
            // Gone after the handshake: the kernel deleted it (CLOSED).
            None if self.synchronized => Some(State::Closed),
            // Not there yet: only the listener is, if any.
            None if self.listening => Some(State::Listen),
            None => Some(State::Closed),
        }
    }
}

impl Observer for LabObserver {
    fn frame(&mut self, record: FrameRecord) {
        let server_state = match record.kind {
            client::FrameKind::Segment { .. } => self.server_state(),
            _ => None,
        };
        let _ = self.tx.send(Message::Frame {
            record,
            server_state,
        });
    }

    fn note(&mut self, at: Instant, text: String, changes: Vec<(State, State)>) {
        let _ = self.tx.send(Message::Note { at, text, changes });
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }
}
