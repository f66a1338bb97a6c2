//! `synack connect HOST:PORT`: the lab's hand-built client against any
//! IPv4 server this host can reach (tests: loopback or a namespace of
//! their own), with the same narration and pcap.
//!
//! The run: look up the route (interface, source, next hop), keep the
//! kernel from resetting our connection ([`guard`]), open an AF_PACKET link
//! on the route's interface, run [`crate::client::Client`] and narrate
//! it through the lab's reporter thread.
//!
//! Privileged: CAP_NET_RAW for the link, CAP_NET_ADMIN for the guard (not
//! needed with `--source` on an address no kernel interface owns, nor with
//! `--let-kernel-rst`). IPv4 only.

pub mod explain;
pub mod guard;
pub mod route;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet::datalink;

use crate::capture::writer::Interface;
use crate::client::{
    self, random_u32, Client, ClientCall, ClientError, ClientParams, Closing, Direction, FrameKind,
    FrameRecord, Note, Observer, What,
};
use crate::net::link::PnetLink;
use crate::net::sockinfo::SockDiag;
use crate::report::Summary;
use crate::session::{
    self, Forwarder, KernelView, Message, Narration, Output, Outputs, Session, SessionError,
};
use crate::tcp::{self, State};
use crate::wire::bpf::Filter;
use crate::wire::{self, MacAddr, SeqNumber};

use guard::{Flow, GuardError, RstGuard};
use route::{Route, RouteError};

/// `--close client`: how long the reply must be quiet before our FIN.
pub const REPLY_QUIET: Duration = Duration::from_millis(200);

/// With `-q`, the frames are handed to the reporter (which writes the
/// capture) in batches of at least this many.
const QUIET_BATCH: usize = 64;

/// Who ends the connection, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// synack sends FIN once the reply has been quiet for [`REPLY_QUIET`].
    Client,
    /// synack sends FIN as soon as this many reply bytes arrived.
    AfterReply(usize),
    /// synack waits for the server's FIN, then closes its half.
    Server,
    /// synack sends RST instead of FIN (RFC 9293 §3.10.5, ABORT).
    Abort,
}

/// Everything `synack connect` can be asked for.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    pub target: SocketAddrV4,
    /// Each `--data`, sent with its own send call.
    pub data: Vec<Vec<u8>>,
    pub close: CloseMode,
    pub timeout: Duration,
    pub time_wait: Duration,
    pub iface: Option<String>,
    pub source: Option<Ipv4Addr>,
    pub let_kernel_rst: bool,
    pub isn: Option<u32>,
    pub pcap: PathBuf,
    pub output: Output,
    /// `--ladder`, `--mermaid`, `--explain`, as the lab has them.
    pub narration: Narration,
}

/// Why `synack connect` could not run, or how the connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "connect needs root (CAP_NET_RAW to send and capture raw frames{} on this host's \
         network); try sudo",
        if *.needs_admin { " and CAP_NET_ADMIN for the rule that stops the kernel's RST" } else { "" }
    )]
    NotPrivileged { needs_admin: bool },
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("no IPv4 source address for {target} on {dev}; give one with --source")]
    NoSource { target: Ipv4Addr, dev: String },
    #[error("no interface '{0}' (see `ip link`)")]
    NoInterface(String),
    #[error("interface '{0}' has no MAC address (synack speaks Ethernet)")]
    NotEthernet(String),
    #[error("reserving a port on {addr}: {source}")]
    Port {
        addr: Ipv4Addr,
        #[source]
        source: io::Error,
    },
    #[error("the RST guard: {0}")]
    Guard(#[source] GuardError),
    #[error("opening an AF_PACKET socket on {dev}")]
    Link {
        dev: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The first line, before anything was sent.
    #[error("writing to stdout")]
    Stdout(#[source] io::Error),
    /// The output files, the capture, the narration.
    #[error(transparent)]
    Session(#[from] SessionError),
}

session::run_failure!(ConnectError);

/// Rejects a `--time-wait` that cannot end within `--timeout` (a usage
/// error, exit status 2): the timeout bounds the whole run, TIME-WAIT
/// included, so the run would give up in TIME-WAIT after a completed
/// exchange. Only the closes that go through TIME-WAIT (the client's FIN
/// first) are concerned.
///
/// # Errors
/// A sentence naming both options and what to give instead.
pub fn check_times(close: CloseMode, timeout: Duration, time_wait: Duration) -> Result<(), String> {
    let through_time_wait = matches!(close, CloseMode::Client | CloseMode::AfterReply(_));
    if through_time_wait && time_wait >= timeout {
        return Err(format!(
            "--time-wait {tw:?} does not fit in --timeout {to:?}: the timeout bounds the whole \
             run, TIME-WAIT included, so a completed exchange would end as a timeout; give \
             --timeout more than {tw:?} (the handshake and the reply need time too) or a \
             shorter --time-wait",
            tw = time_wait,
            to = timeout
        ));
    }
    Ok(())
}

/// Where the connection goes, as decided before the first frame.
#[derive(Clone, Debug)]
pub struct Plan {
    pub dev: String,
    pub source: Ipv4Addr,
    /// The gateway to ARP for, when the target is not on the link.
    pub gateway: Option<Ipv4Addr>,
    pub loopback: bool,
    /// A kernel interface owns the source address (so the kernel would
    /// answer the SYN-ACK with RST).
    pub kernel_owns_source: bool,
    /// The target is one of this host's addresses (its server's sockets
    /// are visible to sock_diag).
    pub target_is_local: bool,
    pub mac: MacAddr,
}

/// Decides the interface, source address and next hop.
///
/// # Errors
/// No route, no source address, an unknown interface.
pub fn plan(cfg: &ConnectConfig) -> Result<Plan, ConnectError> {
    let target = *cfg.target.ip();
    let route = match (&cfg.iface, cfg.source) {
        // Both given (the benchmark lab's way): the target is on that link.
        (Some(dev), Some(_)) => Route {
            dev: dev.clone(),
            prefsrc: None,
            gateway: None,
            local: false,
        },
        (iface, _) => route::route_get(target, iface.as_deref())?,
    };
    let source =
        explain::pick_source(cfg.source, route.prefsrc).ok_or_else(|| ConnectError::NoSource {
            target,
            dev: route.dev.clone(),
        })?;
    let interfaces = datalink::interfaces();
    let iface = interfaces
        .iter()
        .find(|i| i.name == route.dev)
        .ok_or_else(|| ConnectError::NoInterface(route.dev.clone()))?;
    let loopback = iface.is_loopback();
    let mac = match iface.mac {
        Some(mac) => MacAddr::from(mac.octets()),
        None if loopback => MacAddr::zero(),
        None => return Err(ConnectError::NotEthernet(route.dev.clone())),
    };
    // The kernel owns every address of its interfaces, and all of
    // 127.0.0.0/8 (the `local 127.0.0.0/8 dev lo` route), not only
    // 127.0.0.1.
    let owned = |addr: Ipv4Addr| {
        addr.is_loopback()
            || interfaces
                .iter()
                .flat_map(|i| i.ips.iter())
                .any(|net| net.ip() == std::net::IpAddr::V4(addr))
    };
    let kernel_owns_source = owned(source);
    let target_is_local = owned(target);
    Ok(Plan {
        dev: route.dev,
        source,
        gateway: route.gateway,
        loopback,
        kernel_owns_source,
        target_is_local,
        mac,
    })
}

/// Checks the capabilities before touching anything.
fn check_privileges(needs_admin: bool) -> Result<(), ConnectError> {
    let Some(caps) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| explain::effective_caps(&s))
    else {
        // Not Linux's /proc: let the socket calls say it.
        return Ok(());
    };
    let ok = explain::has_cap(caps, explain::CAP_NET_RAW)
        && (!needs_admin || explain::has_cap(caps, explain::CAP_NET_ADMIN));
    if ok {
        Ok(())
    } else {
        Err(ConnectError::NotPrivileged { needs_admin })
    }
}

/// A local port for our end. When the kernel owns the source address, a
/// kernel socket bound to it holds the port for the run, so no connection
/// of the kernel's own takes the same 4-tuple (it does not stop the RST:
/// a bound socket that does not listen takes no SYN-ACK).
fn local_port(plan: &Plan) -> Result<(u16, Option<TcpListener>), ConnectError> {
    if !plan.kernel_owns_source {
        return Ok((client::ephemeral_port(), None));
    }
    let err = |source| ConnectError::Port {
        addr: plan.source,
        source,
    };
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).map_err(err)?;
    sock.bind(&SocketAddrV4::new(plan.source, 0).into())
        .map_err(err)?;
    let port = sock
        .local_addr()
        .map_err(err)?
        .as_socket_ipv4()
        .map(|a| a.port())
        .ok_or_else(|| err(io::Error::other("not an IPv4 socket")))?;
    // A bound, never-listening socket: held only so the port stays ours.
    Ok((port, Some(TcpListener::from(sock))))
}

/// What a finished run reports.
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
}

/// Runs `synack connect` once. Messages about the host's firewall go to
/// stderr; the narration (or JSON) to stdout.
///
/// # Errors
/// See [`ConnectError`]. The capture is complete whatever the error.
pub fn run(cfg: &ConnectConfig, interrupted: Arc<AtomicBool>) -> Result<Finished, ConnectError> {
    let plan = plan(cfg)?;
    let mut let_kernel_rst = cfg.let_kernel_rst;
    let wants_guard = plan.kernel_owns_source && !let_kernel_rst;
    check_privileges(wants_guard)?;
    let (port, _port_holder) = local_port(&plan)?;
    let ours = SocketAddrV4::new(plan.source, port);

    // The guard first: from here on every exit path passes its Drop.
    let guard = if wants_guard {
        match RstGuard::install(Flow {
            src: ours,
            dst: cfg.target,
        }) {
            Ok(guard) => {
                eprintln!("synack: guard: {}", guard.describe());
                Some(guard)
            }
            Err(GuardError::NoTool) => {
                eprintln!(
                    "synack: guard: {}; going on as with --let-kernel-rst",
                    GuardError::NoTool
                );
                let_kernel_rst = true;
                None
            }
            Err(e) => return Err(ConnectError::Guard(e)),
        }
    } else {
        None
    };

    let result = run_client(
        cfg,
        &plan,
        ours,
        let_kernel_rst,
        guard.is_some(),
        interrupted,
    );
    if let Some(guard) = guard {
        match guard.remove() {
            Ok(text) => eprintln!("synack: guard: {text}"),
            Err(e) => eprintln!("synack: guard: REMOVING FAILED: {e}"),
        }
    }
    result
}

/// Opens the output files (as the user who ran sudo, when sudo did), runs
/// the client, and removes the files again if they were new and the run
/// failed before it recorded anything worth keeping.
fn run_client(
    cfg: &ConnectConfig,
    plan: &Plan,
    ours: SocketAddrV4,
    let_kernel_rst: bool,
    guarded: bool,
    interrupted: Arc<AtomicBool>,
) -> Result<Finished, ConnectError> {
    let outputs = Outputs::open(&cfg.pcap, &cfg.narration, &[])?;
    session::keeping_outputs(outputs, |outputs| {
        run_client_with(
            cfg,
            plan,
            ours,
            let_kernel_rst,
            guarded,
            outputs,
            interrupted,
        )
    })
}

fn run_client_with(
    cfg: &ConnectConfig,
    plan: &Plan,
    ours: SocketAddrV4,
    let_kernel_rst: bool,
    guarded: bool,
    outputs: Outputs,
    interrupted: Arc<AtomicBool>,
) -> Result<Finished, ConnectError> {
    let filter = capture_filter(plan, ours, cfg.target)
        .compile()
        .map_err(|e| ConnectError::Link {
            dev: plan.dev.clone(),
            source: io::Error::other(e),
        })?;
    let opened = if plan.loopback {
        PnetLink::open_loopback(
            &plan.dev,
            guarded.then_some(guard::SYNACK_MARK),
            Some(&filter),
        )
    } else {
        PnetLink::open_filtered(&plan.dev, &filter)
    };
    let mut link = opened.map_err(|source| {
        if source.kind() == io::ErrorKind::PermissionDenied {
            ConnectError::NotPrivileged { needs_admin: false }
        } else {
            ConnectError::Link {
                dev: plan.dev.clone(),
                source,
            }
        }
    })?;
    print_plan(cfg, plan, ours, let_kernel_rst).map_err(ConnectError::Stdout)?;

    // A `.pcapng` name gives pcapng with a comment on every segment, as
    // in the lab.
    let session = Session::start(
        outputs.capture,
        outputs.mermaid,
        session::Setup {
            pcap: &cfg.pcap,
            narration: &cfg.narration,
            output: cfg.output,
            iface: Interface {
                name: plan.dev.clone(),
                description: format!("synack connect's client ({})", plan.source),
            },
            server_port: cfg.target.port(),
            client_initial: Some(State::Closed),
            // A server of the user's: its state is known only when it runs
            // on this host (sock_diag).
            server_initial: None,
        },
    )?;

    let iss = SeqNumber(cfg.isn.unwrap_or_else(random_u32));
    let mut conn = tcp::Config::new(ours.port(), cfg.target.port(), iss);
    conn.time_wait = cfg.time_wait;
    let params = ClientParams {
        local_ip: plan.source.into(),
        remote_ip: (*cfg.target.ip()).into(),
        conn,
        data: cfg.data.clone(),
        expect_reply: match cfg.close {
            CloseMode::AfterReply(bytes) => bytes,
            _ => 0,
        },
        timeout: cfg.timeout,
        // lo has no ARP: its frames carry all-zero MACs.
        server_mac: plan.loopback.then(MacAddr::zero),
        wait_for_peer_close: cfg.close == CloseMode::Server,
    };
    let closing = match cfg.close {
        CloseMode::Client => Closing::WhenQuiet {
            quiet: REPLY_QUIET,
            abort: false,
        },
        CloseMode::Abort => Closing::WhenQuiet {
            quiet: REPLY_QUIET,
            abort: true,
        },
        CloseMode::Server | CloseMode::AfterReply(_) => Closing::AsParams,
    };
    // The server's kernel state, when the server is on this host and the
    // narration shows it: each look-up costs tens of µs before synack
    // answers a segment, so -q (and benchmarks) go without.
    let view = if plan.target_is_local && !matches!(cfg.output, Output::Quiet) {
        SockDiag::open()
            .ok()
            .map(|diag| KernelView::new(diag, cfg.target.into(), ours.into(), None))
    } else {
        None
    };
    // The reporter gets each frame once the client waits for the next one,
    // not before it answered; with -q nothing is printed live, so it gets
    // them in batches (all at the end of a short run).
    let hold = if matches!(cfg.output, Output::Quiet) {
        QUIET_BATCH
    } else {
        1
    };
    let mut observer = ConnectObserver {
        forward: session.forwarder(interrupted, view).holding(hold),
        ours,
        server: cfg.target,
        loopback: plan.loopback,
        dev: plan.dev.clone(),
        checksum_note_sent: false,
        rst_explained: false,
        let_kernel_rst,
        last_state: State::Closed,
        first_syn: None,
    };
    let mut client = Client::new(&mut link, &mut observer, params, Instant::now()).closing(closing);
    if let Some(gateway) = plan.gateway {
        client = client.via(gateway);
    }
    let result = client.run();
    drop(observer);

    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => {
            session.abandon();
            return Err(err.into());
        }
    };
    let summary = session.summary(&outcome, cfg.time_wait, false);
    let summary = session.finish(summary)?;
    Ok(Finished { summary })
}

/// What the link receives, and so what the pcap holds: the connection's
/// segments both ways, an ICMP destination unreachable quoting one of
/// ours, and (off `lo`) ARP between our address and the next hop. Every
/// other flow on the interface stays out (issue 11).
pub fn capture_filter(plan: &Plan, ours: SocketAddrV4, server: SocketAddrV4) -> Filter {
    let mut parts = vec![
        Filter::tcp_connection(ours, server),
        Filter::IcmpUnreachableAbout {
            from: ours,
            to: server,
        },
    ];
    if !plan.loopback {
        let next_hop = plan.gateway.unwrap_or(*server.ip());
        parts.push(Filter::and([
            Filter::ArpHost(*ours.ip()),
            Filter::ArpHost(next_hop),
        ]));
    }
    Filter::or(parts)
}

/// The first line: what goes where, before the reporter owns stdout.
fn print_plan(
    cfg: &ConnectConfig,
    plan: &Plan,
    ours: SocketAddrV4,
    let_kernel_rst: bool,
) -> io::Result<()> {
    let rst = if !plan.kernel_owns_source {
        format!(
            "no kernel interface owns {}: synack answers ARP for it and no kernel answers the \
             SYN-ACK with RST",
            plan.source
        )
    } else if let_kernel_rst {
        "the kernel owns the source address and nothing stops its RST (--let-kernel-rst)".into()
    } else {
        "the kernel owns the source address: its RST is dropped for the run".into()
    };
    let link = if plan.loopback {
        "loopback: no ARP, all-zero MACs".to_string()
    } else if let Some(gw) = plan.gateway {
        format!("via gateway {gw}")
    } else {
        "on the link".to_string()
    };
    let mut out = io::stdout().lock();
    match cfg.output {
        Output::Json => {
            let value = serde_json::json!({
                "event": "connect",
                "target": cfg.target.to_string(),
                "source": ours.to_string(),
                "iface": plan.dev,
                "gateway": plan.gateway.map(|g| g.to_string()),
                "kernel_owns_source": plan.kernel_owns_source,
                "let_kernel_rst": let_kernel_rst,
            });
            writeln!(out, "{value}")?;
        }
        Output::Quiet => {}
        Output::Text(_) => writeln!(
            out,
            "connect {} from {ours} on {} ({link}); {rst}",
            cfg.target, plan.dev
        )?,
    }
    out.flush()
}

/// Forwards every frame to the reporter, and explains what only
/// `connect` meets: partial checksums (checksum offload, on `lo` and on
/// any interface where it is on) and the kernel's RST.
struct ConnectObserver {
    /// Every frame to the reporter, with the server's kernel state when
    /// the server is on this host.
    forward: Forwarder,
    ours: SocketAddrV4,
    server: SocketAddrV4,
    loopback: bool,
    /// The interface's name, for the checksum offload note.
    dev: String,
    checksum_note_sent: bool,
    rst_explained: bool,
    let_kernel_rst: bool,
    last_state: State,
    first_syn: Option<Instant>,
}

impl ConnectObserver {
    /// A line of explanation, printed right after the frame it explains
    /// (the reporter's notes speak for the client, so this is an event).
    fn explain(&mut self, at: Instant, text: String) {
        self.forward.send(Message::Said { at, text });
    }
}

impl Observer for ConnectObserver {
    fn frame(&mut self, mut record: FrameRecord) {
        let mut notes = Vec::new();
        match &mut record.kind {
            FrameKind::Segment {
                checksums_ok,
                state_after,
                segment,
                ..
            } => {
                if segment.flags.syn() && !segment.flags.ack() {
                    self.first_syn.get_or_insert(record.at);
                }
                if record.dir == Direction::ServerToClient
                    && segment.flags.rst()
                    && self.last_state == State::SynSent
                {
                    notes.push(format!(
                        "refused: nothing listens on {}, so the server's kernel answered the SYN \
                         with RST+ACK (RFC 9293 §3.10.7.1: a connection that does not exist)",
                        self.server
                    ));
                }
                self.last_state = *state_after;
                // A partial checksum (the pseudo-header sum alone) on a
                // frame captured on this host is checksum offload, on any
                // interface: lo always, a veth or a NIC with TX offload on.
                if record.dir == Direction::ServerToClient
                    && !*checksums_ok
                    && explain::is_partial_checksum(&record.bytes)
                {
                    *checksums_ok = true;
                    if !self.checksum_note_sent {
                        self.checksum_note_sent = true;
                        notes.push(if self.loopback {
                            explain::LOOPBACK_CHECKSUM_NOTE.to_string()
                        } else {
                            explain::offload_checksum_note(&self.dev)
                        });
                    }
                }
            }
            FrameKind::Noise => {
                if let Some(icmp) = wire::parse_icmp_unreachable(&record.bytes)
                    .filter(|i| i.quoted_src_port == self.ours.port())
                {
                    notes.push(format!(
                        "server → client  ICMP destination unreachable from {}, code {} ({}), \
                         about our segment to {}:{}",
                        icmp.from,
                        icmp.code,
                        client::icmp_unreachable_meaning(icmp.code),
                        icmp.quoted_dst,
                        icmp.quoted_dst_port
                    ));
                } else if let Ok(frame) = wire::parse(&record.bytes) {
                    if explain::is_kernel_rst(&frame, self.ours, self.server) {
                        if let wire::Frame::Tcp(tcp) = frame {
                            record.dir = Direction::ClientToServer;
                            record.kind = FrameKind::Segment {
                                checksums_ok: tcp.checksums_ok
                                    || explain::is_partial_checksum(&record.bytes),
                                segment: tcp.segment,
                                changes: Vec::new(),
                                state_after: self.last_state,
                                note: Note::new(What::KernelRst),
                            };
                        }
                        if !self.rst_explained {
                            self.rst_explained = true;
                            let mut text = explain::kernel_rst_explanation(self.ours, self.server);
                            if !self.let_kernel_rst {
                                text.push_str(" (the guard should have dropped it: is another firewall in the way?)");
                            }
                            notes.push(text);
                        }
                    }
                }
            }
            FrameKind::Arp(_) | FrameKind::Ndp { .. } | FrameKind::Datagram { .. } => {}
        }
        let at = record.at;
        self.forward.frame(record);
        for text in notes {
            self.explain(at, text);
        }
    }

    fn state_changed(&mut self, at: Instant, changes: Vec<(State, State)>) {
        self.forward.state_changed(at, changes);
    }

    fn interrupted(&self) -> bool {
        self.forward.interrupted()
    }

    fn call(&mut self, at: Instant, call: ClientCall) {
        self.forward.call(at, call);
    }

    fn idle(&mut self) {
        self.forward.idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_wait_longer_than_the_timeout_is_a_usage_error() {
        let s = Duration::from_secs;
        let err = check_times(CloseMode::Client, s(2), s(3)).unwrap_err();
        assert!(
            err.contains("--time-wait 3s does not fit in --timeout 2s"),
            "{err}"
        );
        assert!(check_times(CloseMode::AfterReply(5), s(2), s(2)).is_err());
        assert!(check_times(CloseMode::Client, s(10), s(1)).is_ok());
        // No TIME-WAIT on our side: the server closes first, or RST.
        assert!(check_times(CloseMode::Server, s(2), s(3)).is_ok());
        assert!(check_times(CloseMode::Abort, s(2), s(3)).is_ok());
    }
}
