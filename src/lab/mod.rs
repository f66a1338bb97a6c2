//! `synack lab`: the self-contained demo. A private network namespace, a
//! kernel TCP server (`std::net::TcpListener`) on one end of a veth pair,
//! synack's hand-built client on the other, every frame narrated and
//! written to a pcap.
//!
//! Privileged (CAP_NET_ADMIN and CAP_NET_RAW): the namespace, the veth pair
//! and the AF_PACKET socket. Root has them; anyone else gets them inside a
//! user namespace, where the host allows it ([`crate::net::userns`]). The
//! client loop itself ([`crate::client`]) is generic and tested without
//! privileges.

pub mod bench;
pub mod scenario;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::writer::Interface;
use crate::client::faults::{DropItem, DropSpec, Faults, Teardown};
use crate::client::{
    ephemeral_port, random_u32, Client, ClientCall, ClientError, ClientParams, FrameRecord,
    Observer, Outcome,
};
use crate::framing::{self, Framing, FramingError};
use crate::net::labnet::{
    self, CLIENT_IF, CLIENT_IP, CLIENT_IP6, SERVER_IF, SERVER_IP, SERVER_IP6,
};
use crate::net::link::{Link, PnetLink};
use crate::net::sockinfo::SockDiag;
use crate::net::tap::{ServerSideCapture, Tap};
use crate::report::{LabEvent, Summary};
use crate::server::{LabServer, LabServerConfig, Reading};
use crate::session::{
    self, Forwarder, KernelView, Message, Narration, Output, Outputs, ReportError, Session,
    SessionError,
};
use crate::tcp::{self, State};
use crate::wire::bpf::Filter;
use crate::wire::SeqNumber;

/// Everything `synack lab` can be asked for.
#[derive(Clone, Debug)]
pub struct LabConfig {
    pub port: u16,
    /// The client's application writes, in order (unframed).
    pub data: Vec<Vec<u8>>,
    /// The server reads only once every write has arrived.
    pub sticky: bool,
    /// Frame each write and each reply; the server reads whole messages.
    pub framing: Option<Framing>,
    /// The same exchange over UDP.
    pub udp: bool,
    /// The same lab over IPv6 (`-6`): 2001:2::1 and 2001:2::2, Neighbor
    /// Discovery instead of ARP.
    pub ipv6: bool,
    /// What the client offers in its SYN.
    pub offer: Offer,
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
    /// How the connection ends beyond who closes first (`--close
    /// simultaneous`, `--abort`, `--half-close`).
    pub teardown: Teardown,
    /// Segments lost on purpose (`--drop`).
    pub drops: DropSpec,
    pub pcap: PathBuf,
    pub output: Output,
    /// Comments, ladder, Mermaid, explanations (issue 6).
    pub narration: Narration,
    /// Capture the server's end of the veth (srv0) into this file too.
    pub server_side: Option<PathBuf>,
}

/// The options of the client's SYN (RFC 9293 §3.7.1, RFC 7323, RFC 2018)
/// and its receive window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub mss: u16,
    /// The window scale shift offered; `None` offers none.
    pub wscale: Option<u8>,
    pub sack: bool,
    pub timestamps: bool,
    /// The receive window in bytes.
    pub window: u32,
    /// Narrate what the server answered to each option.
    pub explain: bool,
}

impl Default for Offer {
    /// What Linux 6.x offers: MSS 1460, window scale 7, SACK, timestamps,
    /// a 64240-byte window.
    fn default() -> Offer {
        Offer {
            mss: tcp::DEFAULT_MSS,
            wscale: Some(tcp::DEFAULT_WSCALE),
            sack: true,
            timestamps: true,
            window: tcp::DEFAULT_WINDOW,
            explain: false,
        }
    }
}

/// The MSS over IPv6 on the lab's 1500-byte link: the MTU less the
/// 40-byte IPv6 and 20-byte TCP headers (RFC 8200 §5, RFC 9293 §3.7.1).
pub const IPV6_MSS: u16 = 1440;

impl LabConfig {
    /// The server's address: 198.18.0.1, or 2001:2::1 with `-6`.
    pub fn server_ip(&self) -> IpAddr {
        if self.ipv6 {
            SERVER_IP6.into()
        } else {
            SERVER_IP.into()
        }
    }

    /// The address synack's client plays: 198.18.0.2, or 2001:2::2.
    pub fn client_ip(&self) -> IpAddr {
        if self.ipv6 {
            CLIENT_IP6.into()
        } else {
            CLIENT_IP.into()
        }
    }

    /// The largest segment the link carries (MTU less the IP and TCP
    /// headers): 1460 over IPv4, 1440 over IPv6.
    pub fn link_mss(&self) -> u16 {
        if self.ipv6 {
            IPV6_MSS
        } else {
            tcp::DEFAULT_MSS
        }
    }

    /// The bytes of each application write as they go on the wire (framed
    /// when asked).
    ///
    /// # Errors
    /// A message too long for the framing's 32-bit length.
    /// An empty write sends nothing, so it is left out (a framed empty
    /// message is a 4-byte frame, and stays).
    pub fn writes(&self) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut writes = Vec::with_capacity(self.data.len());
        for body in &self.data {
            let bytes = match self.framing {
                Some(framing) => framing::encode_to_vec(framing, body)?,
                None => body.clone(),
            };
            if !bytes.is_empty() {
                writes.push(bytes);
            }
        }
        Ok(writes)
    }

    /// How many reply bytes the client waits for before it closes: one
    /// reply per read of the server (one read in all when sticky), or one
    /// framed reply per message.
    pub fn expected_reply_len(&self) -> usize {
        let writes = self.writes().map_or(0, |w| w.len());
        if self.reply.is_empty() {
            return 0;
        }
        match self.framing {
            Some(framing) => {
                framing::encode_to_vec(framing, &self.reply).map_or(0, |f| f.len()) * writes
            }
            None if self.sticky && !self.udp => self.reply.len() * writes.min(1),
            // After a half-close the server answers once, after EOF.
            None if self.teardown == Teardown::HalfClose => self.reply.len() * writes.min(1),
            None => self.reply.len() * writes,
        }
    }

    /// How many data segments the client sends: each write split at the
    /// MSS it will send with (ours or Linux's 1460, whichever is smaller,
    /// less the timestamps option).
    pub fn data_segments(&self) -> usize {
        let mut mss = usize::from(self.offer.mss.min(self.link_mss()));
        if self.offer.timestamps {
            mss = mss.saturating_sub(tcp::TIMESTAMPS_OPTION_LEN);
        }
        let writes = self.writes().unwrap_or_default();
        writes.iter().map(|w| w.len().div_ceil(mss.max(1))).sum()
    }

    /// The server closes right after its reply (`--close server`, and the
    /// server's half of `--close simultaneous`).
    fn server_closes_right_after_reply(&self) -> bool {
        self.server_closes_first || self.teardown == Teardown::Simultaneous
    }

    /// The lab's TCP server for this scenario, on `addr`: one connection;
    /// it closes first, aborts or answers after the half-close as the
    /// teardown asks, and reads the client's `writes` plain, sticky or
    /// framed.
    fn server_config(&self, addr: SocketAddr, writes: &[Vec<u8>]) -> LabServerConfig {
        LabServerConfig {
            addr,
            reply: self.reply.clone(),
            quickack: self.quickack,
            timeout: self.timeout,
            connections: 1,
            close_first: self.server_closes_right_after_reply(),
            linger0: self.teardown == Teardown::AbortServer,
            reply_after_eof: self.teardown == Teardown::HalfClose,
            reading: Reading {
                writes: writes.len(),
                sticky_bytes: self.sticky.then(|| writes.iter().map(Vec::len).sum()),
                framing: self.framing,
            },
        }
    }

    /// What [`scenario::check`] judges.
    pub fn scenario_options(&self) -> scenario::ScenarioOptions<'_> {
        scenario::ScenarioOptions {
            teardown: self.teardown,
            server_closes_first: self.server_closes_first,
            refused: self.refused,
            delayed_ack: !self.quickack,
            drops: &self.drops,
            data_len: self.data.iter().map(Vec::len).sum(),
            data_segments: self.data_segments(),
            reply_len: self.reply.len(),
            time_wait: self.time_wait,
            timeout: self.timeout,
            udp: self.udp,
            ipv6: self.ipv6,
            largest_write: self.data.iter().map(Vec::len).max().unwrap_or(0),
        }
    }
}

/// Why the lab could not run, or how it failed. The messages name what
/// failed; the operating system's reason is the error's source, printed
/// once after it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Net(#[from] labnet::LabNetError),
    #[error("starting the server on {addr}")]
    Server {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("opening an AF_PACKET socket on {CLIENT_IF}")]
    Link(#[source] io::Error),
    #[error("opening an AF_PACKET socket on {SERVER_IF} for --server-side")]
    ServerSide(#[source] io::Error),
    #[error("the client: {0}")]
    Client(#[from] ClientError),
    #[error("framing the data: {0}")]
    Framing(#[from] FramingError),
    /// The output files, the capture, the narration.
    #[error(transparent)]
    Session(#[from] SessionError),
}

session::run_failure!(LabError);

impl From<ReportError> for LabError {
    fn from(e: ReportError) -> LabError {
        LabError::Session(e.into())
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
    // Opened before the namespace: the credentials are still the host's,
    // and a file that cannot be written stops the run before anything ran.
    let outputs = open_outputs(cfg)?;
    session::keeping_outputs(outputs, |outputs| run_with(cfg, outputs, interrupted))
}

/// `-w`, `--server-side` and `--mermaid`, in that order.
fn open_outputs(cfg: &LabConfig) -> Result<Outputs, LabError> {
    let more: Vec<(&'static str, &Path)> = cfg
        .server_side
        .iter()
        .map(|path| ("--server-side", path.as_path()))
        .collect();
    Ok(Outputs::open(&cfg.pcap, &cfg.narration, &more)?)
}

/// Starts the lab's server application (none for `--refused`): UDP, or
/// the tutorial's TCP server for this scenario. Its calls go to the
/// reporter; each of the client's `writes` it takes is counted in
/// `taken`.
fn start_server(
    cfg: &LabConfig,
    addr: SocketAddr,
    writes: &[Vec<u8>],
    tx: &Sender<Message>,
    taken: &Arc<AtomicUsize>,
) -> Result<Option<LabServer>, LabError> {
    if cfg.refused {
        return Ok(None);
    }
    let server_tx = tx.clone();
    let started = if let (true, SocketAddr::V4(addr)) = (cfg.udp, addr) {
        LabServer::start_udp(
            addr,
            cfg.reply.clone(),
            writes.len(),
            cfg.timeout,
            Box::new(move |at, event, state| {
                let _ = server_tx.send(Message::Server { at, event, state });
            }),
        )
    } else {
        let framed = cfg.framing.is_some();
        let server_taken = Arc::clone(taken);
        LabServer::start(
            cfg.server_config(addr, writes),
            Box::new(move |at, event, state| {
                if event.took_a_write(framed) {
                    server_taken.fetch_add(1, Ordering::SeqCst);
                }
                let _ = server_tx.send(Message::Server { at, event, state });
            }),
        )
    };
    started
        .map(Some)
        .map_err(|source| LabError::Server { addr, source })
}

fn run_with(
    cfg: &LabConfig,
    outputs: Outputs,
    interrupted: Arc<AtomicBool>,
) -> Result<Summary, LabError> {
    let setup_start = Instant::now();
    let ns = labnet::enter_private_namespace()?;
    if cfg.ipv6 {
        labnet::build_lab_network_ipv6(ns)?;
    } else {
        labnet::build_lab_network(ns)?;
    }
    let setup = setup_start.elapsed();

    let Outputs {
        capture,
        mermaid,
        more,
        ..
    } = outputs;
    // The server side's socket opens before anything is sent, so its file
    // starts with the first ARP request.
    let server_side = match more.into_iter().next().zip(cfg.server_side.as_ref()) {
        Some((file, path)) => {
            let iface = Interface {
                name: SERVER_IF.to_string(),
                description: format!("the server's end of the lab's veth ({})", cfg.server_ip()),
            };
            let writer = session::capture_writer(file, path, false, &iface)?;
            let tap = Tap::open(SERVER_IF).map_err(LabError::ServerSide)?;
            if cfg.ipv6 {
                no_mld()
                    .and_then(|program| tap.keep_only(&program))
                    .map_err(LabError::ServerSide)?;
            }
            Some(ServerSideCapture::start(tap, writer).map_err(LabError::ServerSide)?)
        }
        None => None,
    };
    let session = Session::start(
        capture,
        mermaid,
        session::Setup {
            pcap: &cfg.pcap,
            narration: &cfg.narration,
            output: cfg.output,
            iface: client_interface(cfg.client_ip()),
            server_port: cfg.port,
            client_initial: (!cfg.udp).then_some(State::Closed),
            server_initial: match (cfg.udp, cfg.refused) {
                (true, _) => None,
                (false, true) => Some(State::Closed),
                (false, false) => Some(State::Listen),
            },
        },
    )?;
    let send = |msg: Message| session.send(msg);
    send(Message::Event(LabEvent::Setup {
        setup_us: setup.as_micros() as u64,
        server: match (cfg.udp, cfg.ipv6) {
            (true, _) => format!("{SERVER_IF} {SERVER_IP}/24 (kernel UDP, std::net::UdpSocket)"),
            (false, false) => {
                format!("{SERVER_IF} {SERVER_IP}/24 (kernel TCP, std::net::TcpListener)")
            }
            (false, true) => format!(
                "{SERVER_IF} {SERVER_IP6}/{} (kernel TCP, std::net::TcpListener)",
                labnet::PREFIX6_LEN
            ),
        },
        client: if cfg.ipv6 {
            format!("{CLIENT_IF} (IPv6 off; synack plays {CLIENT_IP6})")
        } else {
            format!("{CLIENT_IF} (no IPv4; synack plays {CLIENT_IP})")
        },
    }));

    let server_addr = SocketAddr::new(cfg.server_ip(), cfg.port);
    // How many of the client's writes the server application has taken
    // (reads with data, or whole messages): without --sticky the client
    // sends the next write only after the server read the last.
    let taken = Arc::new(AtomicUsize::new(0));
    let writes = cfg.writes()?;
    let server = start_server(cfg, server_addr, &writes, &session.sender(), &taken)?;

    let mut link = open_client_link(cfg.ipv6).map_err(LabError::Link)?;
    let params = client_params(cfg, cfg.isn, cfg.time_wait, None);
    let local_port = params.conn.local_port;
    let view = match SockDiag::open() {
        Ok(diag) => Some(KernelView::new(
            diag,
            server_addr,
            SocketAddr::new(cfg.client_ip(), local_port),
            // Before the connection's socket exists, only the listener
            // does, if any.
            Some(if cfg.refused {
                State::Closed
            } else {
                State::Listen
            }),
        )),
        Err(e) => {
            log::warn!("no sock_diag, so no kernel view of the server: {e}");
            None
        }
    };
    let mut observer = LabObserver {
        taken: (!cfg.sticky).then_some(taken),
        explain_options: cfg.offer.explain,
        forward: session.forwarder(interrupted, view),
    };
    let result = exchange(cfg, &mut link, &mut observer, params);
    drop(observer);

    let outcome = match result {
        Ok(outcome) => {
            // The server has closed by now; its thread ends at once.
            if let Some(server) = server {
                server.join();
            }
            if cfg.udp {
                send(Message::Said {
                    at: Instant::now(),
                    text: udp_epilogue(writes.len(), &outcome),
                });
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
            Outcome {
                final_state: Some(State::Closed),
                ..Outcome::default()
            }
        }
        Err(err) => {
            // The server may still wait (for a SYN that never came, for
            // data): stop it, so its thread ends and lets go of its sender,
            // which the reporter waits for. Then flush the captures and
            // the narration before reporting.
            if let Some(server) = server {
                server.stop();
                server.join();
            }
            session.abandon();
            if let Some(capture) = server_side {
                if let Err(e) = capture.finish() {
                    log::warn!("finishing the server-side capture: {e}");
                }
            }
            return Err(err.into());
        }
    };
    // The server's last frames are on srv0 by now: drain and close its file
    // before the summary says the run is over.
    if let Some(capture) = server_side {
        let frames = capture.finish().map_err(LabError::ServerSide)?;
        log::debug!("server side: {frames} frames captured on {SERVER_IF}");
    }
    let mut summary = session.summary(&outcome, cfg.time_wait, cfg.refused);
    if cfg.udp {
        // Over UDP there is no cycle to time: no SYN, no last ACK.
        summary.cycle_ns = None;
    }
    Ok(session.finish(summary)?)
}

/// What a UDP exchange did not have, said once it is over.
fn udp_epilogue(datagrams: usize, outcome: &Outcome) -> String {
    format!(
        "UDP: no handshake, no teardown, no ACKs, no retransmissions: {datagrams} datagram(s) \
         out, their replies back ({} bytes), and each recvfrom() returned exactly one datagram \
         (boundaries kept, unlike TCP's byte stream)",
        outcome.bytes_received
    )
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
    conn.mss = cfg.offer.mss;
    conn.wscale = cfg.offer.wscale;
    conn.sack_permitted = cfg.offer.sack;
    conn.timestamps = cfg.offer.timestamps;
    conn.window = cfg.offer.window;
    if cfg.drops.contains(DropItem::SynAck) && !cfg.drops.contains(DropItem::Syn) {
        // Linux resends an unanswered SYN-ACK after 1 s; a 1 s SYN timer
        // would race it. RFC 6298 §5.7's 3 s lets the server's
        // retransmission be the one that arrives.
        conn.initial_rto = SYNACK_DROP_SYN_RTO;
    }
    ClientParams {
        local_ip: cfg.client_ip(),
        remote_ip: cfg.server_ip(),
        conn,
        // Checked when the lab starts (`LabConfig::writes`); a benchmark
        // cycle sends the writes unframed.
        data: cfg.writes().unwrap_or_else(|_| cfg.data.clone()),
        expect_reply: cfg.expected_reply_len(),
        timeout: cfg.timeout,
        server_mac,
        wait_for_peer_close: cfg.server_closes_right_after_reply(),
    }
}

/// Runs one exchange as the lab's options say: TCP or UDP datagrams, with
/// the scenario's faults.
fn exchange<L: Link, O: Observer>(
    cfg: &LabConfig,
    link: &mut L,
    observer: &mut O,
    params: ClientParams,
) -> Result<Outcome, ClientError> {
    let faults = Faults {
        teardown: cfg.teardown,
        drops: cfg.drops.clone(),
    };
    let client = Client::new(link, observer, params, Instant::now()).faults(faults);
    if cfg.udp {
        client.run_datagrams()
    } else {
        client.run()
    }
}

/// The client's SYN timer when the SYN-ACK is dropped on purpose.
pub const SYNACK_DROP_SYN_RTO: Duration = Duration::from_secs(3);

/// The interface the client's capture names.
fn client_interface(client_ip: IpAddr) -> Interface {
    Interface {
        name: CLIENT_IF.to_string(),
        description: format!("synack's client ({client_ip}), the client's end of the lab's veth"),
    }
}

/// The client's AF_PACKET socket on `cli0`. Over IPv6 the server's kernel
/// sends MLD reports for 2001:2::1's solicited-node group (no sysctl stops
/// them): a BPF filter keeps them out of the socket, so they reach
/// neither the capture nor the narration.
fn open_client_link(ipv6: bool) -> io::Result<PnetLink> {
    if ipv6 {
        PnetLink::open_filtered(CLIENT_IF, &no_mld()?)
    } else {
        PnetLink::open(CLIENT_IF)
    }
}

/// The BPF program that drops MLD (`not (icmp6 types 130, 131, 132,
/// 143)`), keeping Neighbor Discovery and TCP.
fn no_mld() -> io::Result<Vec<crate::wire::bpf::Insn>> {
    Filter::mld()
        .not()
        .compile()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// The lab's observer: every frame to the reporter (with the server's
/// kernel state), each write held back until the server application read
/// the one before, and the handshake's options explained when asked.
struct LabObserver {
    forward: Forwarder,
    /// How many writes the server application took, when the client
    /// waits for each to be read before the next.
    taken: Option<Arc<AtomicUsize>>,
    /// Narrate what the server answered to each SYN option.
    explain_options: bool,
}

impl Observer for LabObserver {
    fn frame(&mut self, record: FrameRecord) {
        self.forward.frame(record);
    }

    fn state_changed(&mut self, at: Instant, changes: Vec<(State, State)>) {
        self.forward.state_changed(at, changes);
    }

    fn interrupted(&self) -> bool {
        self.forward.interrupted()
    }

    fn may_write(&mut self, index: usize) -> bool {
        self.taken
            .as_ref()
            .is_none_or(|taken| taken.load(Ordering::SeqCst) >= index)
    }

    fn wants_negotiated(&self) -> bool {
        self.explain_options
    }

    fn negotiated(&mut self, at: Instant, lines: Vec<String>) {
        if self.explain_options {
            self.forward.send(Message::Options { at, lines });
        }
    }

    fn call(&mut self, at: Instant, call: ClientCall) {
        self.forward.call(at, call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(data: &[&str]) -> LabConfig {
        LabConfig {
            port: 8080,
            data: data.iter().map(|d| d.as_bytes().to_vec()).collect(),
            sticky: false,
            framing: None,
            udp: false,
            ipv6: false,
            offer: Offer::default(),
            reply: b"hello, client".to_vec(),
            time_wait: Duration::ZERO,
            timeout: Duration::from_secs(1),
            quickack: true,
            server_closes_first: false,
            refused: false,
            teardown: Teardown::Fin,
            drops: DropSpec::default(),
            isn: Some(1000),
            pcap: PathBuf::from("x.pcap"),
            output: Output::Quiet,
            narration: Narration::default(),
            server_side: None,
        }
    }

    #[test]
    fn plain_writes_are_the_data_less_the_empty_ones() {
        let c = cfg(&["hello", "", "world"]);
        assert_eq!(c.writes().unwrap(), [b"hello".to_vec(), b"world".to_vec()]);
        // One reply per read, one read per write.
        assert_eq!(c.expected_reply_len(), 26);
    }

    #[test]
    fn a_sticky_server_reads_once_and_answers_once() {
        let c = LabConfig {
            sticky: true,
            ..cfg(&["hello", "world"])
        };
        assert_eq!(c.expected_reply_len(), 13);
        // Over UDP every datagram is read, and answered, alone.
        let u = LabConfig {
            udp: true,
            ..cfg(&["hello", "world"])
        };
        assert_eq!(u.expected_reply_len(), 26);
    }

    #[test]
    fn framed_writes_and_replies_carry_their_frames() {
        let c = LabConfig {
            framing: Some(Framing::LengthPrefix),
            sticky: true,
            ..cfg(&["hello", ""])
        };
        // The empty message is still a 4-byte frame, and is answered.
        assert_eq!(
            c.writes().unwrap(),
            [b"\0\0\0\x05hello".to_vec(), b"\0\0\0\0".to_vec()]
        );
        assert_eq!(c.expected_reply_len(), 2 * (4 + 13));
        let quiet = LabConfig {
            reply: Vec::new(),
            ..c
        };
        assert_eq!(quiet.expected_reply_len(), 0);
    }

    #[test]
    fn the_client_offers_what_the_config_says() {
        let c = LabConfig {
            offer: Offer {
                mss: 100,
                wscale: None,
                sack: false,
                timestamps: false,
                window: 30_000,
                explain: true,
            },
            ..cfg(&["hello"])
        };
        let p = client_params(&c, c.isn, c.time_wait, None);
        assert_eq!(p.conn.mss, 100);
        assert_eq!(p.conn.wscale, None);
        assert!(!p.conn.sack_permitted && !p.conn.timestamps);
        assert_eq!(p.conn.window, 30_000);
        assert_eq!(p.conn.iss, SeqNumber(1000));
        // Today's defaults are Linux's.
        let d = client_params(&cfg(&["hello"]), None, Duration::ZERO, None);
        let linux = tcp::Config::new(1, 2, SeqNumber(0));
        assert_eq!(
            (d.conn.mss, d.conn.wscale, d.conn.window),
            (linux.mss, linux.wscale, linux.window)
        );
        assert!(d.conn.sack_permitted && d.conn.timestamps);
    }

    #[test]
    fn data_segments_follow_the_mss_and_the_writes() {
        assert_eq!(cfg(&[]).data_segments(), 0);
        assert_eq!(cfg(&["hello"]).data_segments(), 1);
        assert_eq!(cfg(&["hello", "world"]).data_segments(), 2);
        // 1460 less the 12-byte timestamps option per segment.
        let long = "x".repeat(1449);
        assert_eq!(cfg(&[&long]).data_segments(), 2);
        let small = LabConfig {
            offer: Offer {
                mss: 100,
                timestamps: false,
                ..Offer::default()
            },
            ..cfg(&[&long])
        };
        assert_eq!(small.data_segments(), 15);
    }

    #[test]
    fn a_half_closing_client_gets_one_answer_after_its_fin() {
        let c = LabConfig {
            teardown: Teardown::HalfClose,
            ..cfg(&["hello", "world"])
        };
        assert_eq!(c.expected_reply_len(), 13);
    }
}
