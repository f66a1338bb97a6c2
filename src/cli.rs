//! The command line, as clap derive types only: no logic here.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shows, packet by packet, how a TCP connection is opened and closed.
#[derive(Debug, Parser)]
#[command(name = "synack", version, about, long_about = None)]
pub struct Cli {
    /// More detail (-v: each segment's reason and timers; -vv: debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only the summary (and errors).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// When to colour the output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The self-contained lab: a private network namespace, a kernel TCP
    /// server (std::net::TcpListener) and synack's hand-built client, with
    /// the whole exchange narrated and written to a pcap.
    ///
    /// Needs no sudo where the host allows unprivileged user namespaces:
    /// synack then creates one and is root only inside it. Where the host
    /// forbids them, the error names the setting; run `sudo synack lab`.
    Lab(LabArgs),
    /// synack's hand-built client against a real server: SYN, SYN-ACK, ACK,
    /// the data, the reply and the close, narrated and written to a pcap.
    ///
    /// IPv4 only. Needs root (CAP_NET_RAW, and CAP_NET_ADMIN for the RST
    /// guard): it sends raw frames on this host's network; try sudo.
    ///
    /// When the kernel owns the source address it answers the server's
    /// SYN-ACK with RST (it has no socket for synack's port). By default
    /// synack adds one nftables rule for the run (table `ip
    /// synack_guard_<pid>_<random>`, falling back to iptables) that drops only
    /// outgoing RSTs from its port to the target, prints it, and removes it
    /// on every exit (end, error, timeout, Ctrl-C, SIGTERM, SIGHUP,
    /// SIGQUIT; each exits 130). With
    /// --source on an address no kernel interface owns, no rule is needed.
    Connect(ConnectArgs),
    /// The tutorials' TCP server on the kernel's own stack: bind, listen,
    /// accept, read, reply, close, narrated with the kernel's view of each
    /// socket (TCP_INFO: state, rtt, retransmissions). Ctrl-C stops it.
    Serve(ServeArgs),
    /// Reconstruct and judge every TCP connection in pcap/pcapng files:
    /// handshake, RTT, bytes, close, anomalies, Zeek conn_state/history.
    Inspect(InspectArgs),
    /// Narrate every TCP connection on an interface live: each segment
    /// with both ends' RFC 9293 states as the wire shows them, as your own
    /// server and client talk.
    ///
    /// Needs root or CAP_NET_RAW (a packet socket); try sudo. IPv4 only.
    /// Ctrl-C, SIGTERM or SIGHUP end it with a summary (exit 0).
    Watch(WatchArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `synack completions bash > ~/.local/share/bash-completion/completions/synack`;
    /// zsh: `synack completions zsh > "${fpath[1]}/_synack"`;
    /// fish: `synack completions fish > ~/.config/fish/completions/synack.fish`.
    Completions(CompletionsArgs),
    /// Print a manual page (roff) to stdout: `synack man | man -l -`, or
    /// one subcommand's page: `synack man lab | man -l -`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (synack-lab(1), …); without it,
    /// synack(1).
    #[arg(value_parser = ["lab", "connect", "serve", "inspect", "watch", "completions"])]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `--close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Closer {
    Client,
    Server,
    /// Both FINs cross: CLOSING, then TIME-WAIT, on both ends.
    Simultaneous,
}

/// `--abort`: which side sends RST instead of FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Side {
    Client,
    Server,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where to write the capture of every frame the client sent and
    /// received; a name ending in .pcapng writes pcapng [default:
    /// synack-lab.pcap, or synack-lab.pcapng with --pcapng].
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Write the capture as pcapng, with a comment on every frame saying
    /// what it is and what it did (Wireshark: Packet comments; tshark:
    /// frame.comment).
    #[arg(long)]
    pub pcapng: bool,

    /// Also capture the server's end of the veth (srv0) into FILE, at the
    /// same time, with kernel timestamps (pcap, or pcapng when FILE ends in
    /// .pcapng).
    #[arg(long, value_name = "FILE", conflicts_with = "count")]
    pub server_side: Option<PathBuf>,

    /// After the run, draw it as a ladder diagram: client and server
    /// columns, an arrow per segment with flags, relative seq/ack, length,
    /// Δt, and each side's state.
    #[arg(long, conflicts_with = "count")]
    pub ladder: bool,

    /// Write the run as a Mermaid sequenceDiagram into FILE (for slides and
    /// Markdown documents).
    #[arg(long, value_name = "FILE", conflicts_with = "count")]
    pub mermaid: Option<PathBuf>,

    /// After each segment, one plain-language sentence on what it did and
    /// the RFC 9293 section it follows.
    #[arg(long, conflicts_with = "count")]
    pub explain: bool,

    /// Application data the client sends after the handshake. Repeat it
    /// for several application writes: each one is one send() and one
    /// segment (or one datagram with --udp), and without --sticky the next
    /// one waits until the server has read the last [default: hello].
    #[arg(long, value_name = "TEXT")]
    pub data: Vec<String>,

    /// Show TCP's "sticky packets" (粘包): the server reads only once all
    /// the --data writes have arrived, so one recv() returns them joined.
    #[arg(long)]
    pub sticky: bool,

    /// Frame every --data message and every reply (the fix for sticky
    /// packets, as `synack serve --framing`): length-prefix (4-byte
    /// big-endian length, then the message) or json-header (4-byte length
    /// of a JSON header {"length": N, "encoding": "utf-8"}, the header, the
    /// body). The server reads whole messages, one at a time.
    #[arg(long, value_enum, value_name = "FRAMING")]
    pub framing: Option<FramingArg>,

    /// The same exchange over UDP: a std::net::UdpSocket server, datagrams
    /// built by hand. No handshake, no teardown, message boundaries kept.
    #[arg(long, conflicts_with_all = [
        "close", "abort", "half_close", "drop", "refused", "delayed_ack", "isn", "count",
        "framing", "sticky", "mss", "wscale", "no_wscale", "sack", "no_sack", "timestamps",
        "no_timestamps", "window",
    ])]
    pub udp: bool,

    /// The same lab over IPv6: the server on 2001:2::1, synack's client
    /// playing 2001:2::2, Neighbor Discovery instead of ARP, MSS 1440
    /// (every scenario but --udp and --count).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// The MSS the client announces in its SYN (and keeps to itself): the
    /// largest segment the server may send it; 1440 with -6 [default:
    /// 1460].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(48..))]
    pub mss: Option<u16>,

    /// The window scale shift the client offers (0–14; RFC 7323)
    /// [default: 7].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=14))]
    pub wscale: Option<u8>,

    /// Offer no window scale option: window fields are plain bytes.
    #[arg(long, conflicts_with = "wscale")]
    pub no_wscale: bool,

    /// Offer SACK (the default; RFC 2018).
    #[arg(long, overrides_with = "no_sack")]
    pub sack: bool,

    /// Do not offer SACK.
    #[arg(long, overrides_with = "sack")]
    pub no_sack: bool,

    /// Offer timestamps (the default; RFC 7323).
    #[arg(long, overrides_with = "no_timestamps")]
    pub timestamps: bool,

    /// Do not offer timestamps.
    #[arg(long, overrides_with = "timestamps")]
    pub no_timestamps: bool,

    /// The client's receive window in bytes; above 65535 it needs window
    /// scaling [default: 64240].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_073_725_440))]
    pub window: Option<u32>,

    /// The server's reply (an empty string: no reply).
    #[arg(long, value_name = "TEXT", default_value = "hello, client")]
    pub reply: String,

    /// The server's port (1–65535).
    #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// How long the client stays in TIME-WAIT (Linux: 60s). Accepts 2s,
    /// 500ms, 0.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub time_wait: Duration,

    /// Give up after this long without finishing (SYN retransmissions back
    /// off 1s, 2s, 4s … within it); more than 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Who closes first: the client (FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT on
    /// the client), the server (CLOSE-WAIT and LAST-ACK on the client,
    /// TIME-WAIT on the server), or both at once: simultaneous, the FINs
    /// cross and both ends go FIN-WAIT-1 → CLOSING → TIME-WAIT.
    #[arg(long, value_enum, default_value_t = Closer::Client)]
    pub close: Closer,

    /// End with RST instead of FIN. client: synack's client aborts after
    /// the exchange (RFC 9293 §3.10.5); server: the server sets SO_LINGER 0
    /// and closes, so its kernel sends RST.
    #[arg(long, value_enum, value_name = "SIDE", conflicts_with_all = ["close", "half_close", "refused", "count"])]
    pub abort: Option<Side>,

    /// The client shuts down its sending side (FIN) right after its data;
    /// the server reads EOF, still sends its reply, then closes. The client
    /// receives that reply in FIN-WAIT-2.
    #[arg(long, conflicts_with_all = ["close", "refused", "count", "framing"])]
    pub half_close: bool,

    /// Lose segments on purpose, comma-separated: the client's own syn,
    /// data:N (its Nth data segment), fin, final-ack (its ACK of the
    /// server's FIN) are recorded as leaving but never delivered, then
    /// retransmitted on the client's RTO (1 s, doubling); the server's
    /// synack, server-fin, data-reply are recorded on arrival and ignored,
    /// so the server's kernel retransmits them. Name an item twice to lose
    /// its retransmission too (syn,syn shows the back-off).
    #[arg(long, value_name = "SPEC", conflicts_with = "count")]
    pub drop: Option<synack::client::faults::DropSpec>,

    /// Start no server: the SYN meets a closed port and the kernel answers
    /// RST+ACK (connection refused).
    #[arg(long, conflicts_with_all = ["close", "delayed_ack", "count"])]
    pub refused: bool,

    /// Let the server's ACK of our FIN ride on its own FIN (Linux's delayed
    /// ACK): the close becomes FIN / FIN+ACK / ACK.
    #[arg(long)]
    pub delayed_ack: bool,

    /// The client's initial sequence number (default: random).
    #[arg(long, value_name = "N")]
    pub isn: Option<u32>,

    /// Print each event as a JSON line instead of the narration.
    #[arg(long)]
    pub json: bool,

    /// Run N full cycles (1–100000) and print latency figures against the
    /// kernel's own client, measured in the same run (a benchmark). On a
    /// terminal, stderr shows the progress; Ctrl-C prints the figures of
    /// the cycles done (exit 130).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(synack::lab::bench::MAX_COUNT)),
          conflicts_with_all = ["sticky", "framing"])]
    pub count: Option<u32>,
}

/// `--close` of `connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConnectClose {
    /// synack sends FIN once the reply has been quiet for 200 ms.
    Client,
    /// synack waits for the server's FIN (CLOSE-WAIT, LAST-ACK).
    Server,
    /// synack sends RST instead of FIN once the reply is quiet.
    Abort,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The server: IPv4:PORT or NAME:PORT (a name must resolve to an IPv4
    /// address; IPv6 is not supported).
    #[arg(value_name = "HOST:PORT", value_parser = parse_connect_target)]
    pub target: SocketAddrV4,

    /// Data to send once connected; repeat it for several sends (one
    /// segment each).
    #[arg(long, value_name = "TEXT")]
    pub data: Vec<String>,

    /// Who closes: client (FIN after the reply has been quiet for 200 ms),
    /// server (wait for its FIN), abort (RST instead of FIN).
    #[arg(long, value_enum, default_value_t = ConnectClose::Client)]
    pub close: ConnectClose,

    /// With --close client: send FIN as soon as BYTES of reply arrived
    /// instead of waiting for 200 ms of quiet (for a server whose reply
    /// length is known, as in a benchmark).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    pub expect_reply: Option<u32>,

    /// Where to write the capture of every frame sent and received (a
    /// `.pcapng` name writes pcapng, with a comment on every segment).
    #[arg(
        short = 'w',
        long = "write",
        value_name = "FILE",
        default_value = "synack-connect.pcap"
    )]
    pub write: PathBuf,

    /// Give up after this long: the whole attempt, ARP and SYN
    /// retransmissions (1s, 2s, 4s … apart) included. Accepts 3, 3s, 500ms;
    /// more than 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// How long the client stays in TIME-WAIT after closing first (Linux:
    /// 60s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub time_wait: Duration,

    /// The interface to use (default: the route's; `lo` for this host's
    /// own addresses).
    #[arg(short = 'i', long = "iface", value_name = "IF")]
    pub iface: Option<String>,

    /// The client's address (default: the route's). An address on the
    /// link that no kernel interface owns needs no RST guard at all:
    /// synack answers ARP for it itself and no kernel resets the
    /// connection (the benchmark lab's way: -i veth1 --source 198.18.0.2).
    #[arg(long, value_name = "IP")]
    pub source: Option<Ipv4Addr>,

    /// Add no firewall rule: let the kernel answer the SYN-ACK with RST,
    /// capture it and explain it (RFC 9293 §3.10.7.1). The connection then
    /// fails (exit 1).
    #[arg(long)]
    pub let_kernel_rst: bool,

    /// The client's initial sequence number (default: random).
    #[arg(long, value_name = "N")]
    pub isn: Option<u32>,

    /// After the run, draw it as a ladder diagram: client and server
    /// columns, an arrow per segment with flags, relative seq/ack, length,
    /// Δt, and each side's state (the server's when it runs on this host).
    #[arg(long)]
    pub ladder: bool,

    /// Write the run as a Mermaid sequenceDiagram into FILE (for slides and
    /// Markdown documents).
    #[arg(long, value_name = "FILE")]
    pub mermaid: Option<PathBuf>,

    /// After each segment, one plain-language sentence on what it did and
    /// the RFC 9293 section it follows.
    #[arg(long)]
    pub explain: bool,

    /// Print each event as a JSON line instead of the narration.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Capture files (pcap or pcapng, any tool); `-` reads standard input
    /// as a stream (`tcpdump -U -w - | synack inspect -`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// JSON lines instead of the table and ladders: one object per
    /// connection as it ends, one per file, then a summary.
    #[arg(long, conflicts_with = "summary")]
    pub json: bool,

    /// One line per connection, printed as each one ends.
    #[arg(long)]
    pub summary: bool,

    /// The table only, no ladder diagrams.
    #[arg(long, conflicts_with_all = ["json", "summary"])]
    pub no_ladder: bool,

    /// Report a connection quiet for this long (capture time) and drop its
    /// state; if its 4-tuple comes back without a new SYN, it continues
    /// under the same number. An attempt that saw only SYNs is reported
    /// after 5 s.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The interface to watch (default: the default route's; `lo` for
    /// this host's own connections).
    #[arg(short = 'i', long = "iface", value_name = "IF")]
    pub iface: Option<String>,

    /// Only segments to or from this port; repeat it for several (any of
    /// them).
    #[arg(long, value_name = "PORT")]
    pub port: Vec<u16>,

    /// Only segments to or from this IPv4 address; repeat it for several
    /// (any of them; with --port, both must match).
    #[arg(long, value_name = "ADDR")]
    pub host: Vec<Ipv4Addr>,

    /// UDP datagrams too, one line each, by flow.
    #[arg(long)]
    pub udp: bool,

    /// One plain-language sentence per segment, with its RFC 9293 section.
    #[arg(long)]
    pub explain: bool,

    /// A ladder diagram of each connection when it ends.
    #[arg(long)]
    pub ladder: bool,

    /// JSON lines on stdout: a `segment` object per segment, a
    /// `connection_end` per connection, a `summary` last.
    #[arg(long)]
    pub json: bool,

    /// Write every frame seen to FILE: pcap, or pcapng with a comment on
    /// every frame when the name ends in .pcapng.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: ADDR:PORT, or a PORT alone for 127.0.0.1. Port 0
    /// lets the kernel pick a free port (printed on the first line).
    #[arg(value_name = "ADDR:PORT", default_value = "127.0.0.1:8080", value_parser = parse_listen_addr)]
    pub addr: SocketAddr,

    /// Leave SO_REUSEADDR off. A restart right after the server closed
    /// connections first then fails with "address in use" while they sit
    /// in TIME-WAIT (60 s on Linux).
    #[arg(long)]
    pub no_reuseaddr: bool,

    /// The listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub backlog: i32,

    /// Serve at most N clients at once (a thread each); more wait in the
    /// kernel's accept queue.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_clients: u32,

    /// Answer each read (or each framed message) with TEXT
    /// [default: "hello, client" and a newline].
    #[arg(long, value_name = "TEXT", conflicts_with = "echo")]
    pub reply: Option<String>,

    /// Send back what was read (or each framed message's body).
    #[arg(long)]
    pub echo: bool,

    /// Read and answer whole messages: length-prefix (4-byte big-endian
    /// length, then the message) or json-header (4-byte big-endian length
    /// of a JSON header {"length": N, "encoding": "utf-8"}, the header,
    /// then the body).
    #[arg(long, value_enum, value_name = "FRAMING")]
    pub framing: Option<FramingArg>,

    /// Who closes first: the server right after its first reply (it goes
    /// through FIN-WAIT and TIME-WAIT), or after the peer's FIN (it goes
    /// through CLOSE-WAIT and LAST-ACK).
    #[arg(long, value_enum, default_value_t = CloseArg::AfterPeer)]
    pub close: CloseArg,

    /// Close with SO_LINGER 0: the kernel sends RST instead of FIN and
    /// skips TIME-WAIT.
    #[arg(long)]
    pub linger0: bool,

    /// Close a client that sends nothing for this long (more than 0).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_idle_timeout)]
    pub idle_timeout: Duration,

    /// With --framing: the largest message accepted (1048576, 512KiB,
    /// 1MiB; binary units). A client announcing a bigger one gets an error
    /// message in its framing, then the server closes the connection.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_message: usize,

    /// With --framing: the bytes of incomplete messages all clients
    /// together may make the server hold (a message is held until it is
    /// whole). A client whose read would go past it gets an error message
    /// in its framing and is closed. It must hold one --max-message.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub memory_budget: usize,

    /// After Ctrl-C or SIGTERM, how long open clients get to finish.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Stop after N connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Print each event as a JSON line instead of the narration, ending
    /// with a summary (or an error) object; every event, even with -q.
    #[arg(long)]
    pub json: bool,
}

/// `--framing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FramingArg {
    LengthPrefix,
    JsonHeader,
}

/// `--close` of `serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CloseArg {
    First,
    AfterPeer,
}

/// Parses `serve --idle-timeout`: a duration ([`parse_duration`]) above 0.
pub fn parse_idle_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("the idle timeout must be more than 0".into()),
        d => Ok(d),
    }
}

/// Parses a size in bytes: `1048576`, `512k`, `512KiB`, `1M`, `1MiB`,
/// `1G` (binary units: K = 1024; `KB`, `MB`, `GB` too). Above 0, at most
/// 1 TiB.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 65536, 512KiB, 1MiB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit in '{text}' (use KiB, MiB, GiB or none for bytes)"
            ))
        }
    };
    match value.checked_mul(scale) {
        Some(0) => Err("a size must be more than 0".into()),
        Some(bytes) if bytes <= 1 << 40 => {
            usize::try_from(bytes).map_err(|_| format!("'{text}' is too big for this machine"))
        }
        _ => Err(format!("'{text}' is out of range (1 byte to 1 TiB)")),
    }
}

/// Parses `ADDR:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`)
/// or a bare `PORT` (on 127.0.0.1).
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let bad = || format!("'{text}' is not ADDR:PORT (try 127.0.0.1:8080 or 8080)");
    // Names only (a malformed number is not worth a DNS query).
    let (host, _) = text.rsplit_once(':').ok_or_else(bad)?;
    if !host.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("'{text}' does not resolve: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(bad)
}

/// Parses the target of `connect`: `IPv4:PORT`, or `NAME:PORT` resolved
/// to its first IPv4 address. IPv6 is refused with a clear message.
pub fn parse_connect_target(text: &str) -> Result<SocketAddrV4, String> {
    match text.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(addr)) => return check_port(addr),
        Ok(SocketAddr::V6(_)) => {
            return Err(format!(
                "'{text}' is IPv6; synack connect speaks IPv4 only (try an IPv4 address)"
            ))
        }
        Err(_) => {}
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}' is not HOST:PORT (try 127.0.0.1:8080)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port (1 to 65535)"))?;
    if host.is_empty() || host.contains(':') || !host.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "'{text}' is not HOST:PORT with an IPv4 address or a name"
        ));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("'{host}' does not resolve: {e}"))?
        .collect();
    let v4 = addrs.iter().find_map(|a| match a {
        SocketAddr::V4(a) => Some(*a),
        SocketAddr::V6(_) => None,
    });
    match v4 {
        Some(addr) => check_port(addr),
        None if !addrs.is_empty() => Err(format!(
            "'{host}' resolves to IPv6 only; synack connect speaks IPv4 only"
        )),
        None => Err(format!("'{host}' does not resolve")),
    }
}

fn check_port(addr: SocketAddrV4) -> Result<SocketAddrV4, String> {
    if addr.port() == 0 {
        Err("port 0 is not a port to connect to".into())
    } else {
        Ok(addr)
    }
}

/// Parses `3`, `3s`, `500ms`, `250us`, `1.5s`, `2m` into a duration
/// (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 3, 3s, 500ms)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (use s, ms, us, m)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("'{text}' is out of range (0 to 24h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `--timeout`: a duration ([`parse_duration`]) above 0, since a
/// run given no time at all fails before its first segment.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "a timeout of {text} gives up before the first segment: give more than 0 (e.g. 10s)"
        )),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:9000"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(
            parse_listen_addr("9000"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(
            parse_listen_addr("localhost:9000").map(|a| a.port()),
            Ok(9000)
        );
        assert!(parse_listen_addr("[::1]:9000").is_ok_and(|a| a.is_ipv6()));
        assert!(parse_listen_addr("300.1.2.3:80").is_err());
        assert!(parse_listen_addr("127.0.0.1:99999").is_err());
        assert!(parse_listen_addr("nonsense").is_err());
    }

    #[test]
    fn connect_targets_parse() {
        assert_eq!(
            parse_connect_target("127.0.0.1:8080"),
            Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080))
        );
        assert_eq!(
            parse_connect_target("localhost:8080"),
            Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080))
        );
        let v6 = parse_connect_target("[::1]:8080").unwrap_err();
        assert!(v6.contains("IPv4 only"), "{v6}");
        assert!(parse_connect_target("127.0.0.1:0").is_err());
        assert!(parse_connect_target("127.0.0.1:99999").is_err());
        assert!(parse_connect_target("300.1.2.3:80").is_err());
        assert!(parse_connect_target("127.0.0.1").is_err());
        assert!(parse_connect_target("no-such-host.invalid:80")
            .unwrap_err()
            .contains("does not resolve"));
    }

    #[test]
    fn connect_options_parse() {
        let cli = Cli::try_parse_from([
            "synack",
            "connect",
            "198.18.0.1:8080",
            "-i",
            "veth1",
            "--source",
            "198.18.0.2",
            "--data",
            "a",
            "--data",
            "b",
            "--close",
            "abort",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        let Command::Connect(args) = cli.command else {
            panic!("not connect");
        };
        assert_eq!(args.iface.as_deref(), Some("veth1"));
        assert_eq!(args.source, Some(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(args.data, ["a", "b"]);
        assert_eq!(args.close, ConnectClose::Abort);
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert!(!args.let_kernel_rst);
        assert_eq!(args.write, PathBuf::from("synack-connect.pcap"));
    }

    #[test]
    fn serve_idle_timeout_is_above_0() {
        assert!(parse_idle_timeout("0").is_err());
        assert!(parse_idle_timeout("0ms").is_err());
        assert_eq!(parse_idle_timeout("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn serve_sizes_parse() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("64 MB"), Ok(64 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("2048G").is_err());
    }

    #[test]
    fn durations_parse_like_a_user_writes_them() {
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn zero_is_refused_where_it_cannot_work() {
        assert_eq!(parse_timeout("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
        for zero in ["0", "0s", "0ms", "0.0"] {
            let err = parse_timeout(zero).unwrap_err();
            assert!(err.contains("more than 0"), "{err}");
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|_| ()).map_err(|e| e.kind());
        let invalid = Err(clap::error::ErrorKind::ValueValidation);
        assert_eq!(parse(&["synack", "lab", "--port", "0"]), invalid);
        assert_eq!(parse(&["synack", "lab", "--timeout", "0"]), invalid);
        assert_eq!(
            parse(&["synack", "connect", "127.0.0.1:1", "--timeout", "0"]),
            invalid
        );
        assert_eq!(
            parse(&["synack", "lab", "--port", "1", "--timeout", "1ms"]),
            Ok(())
        );
        // TIME-WAIT may be skipped.
        assert_eq!(parse(&["synack", "lab", "--time-wait", "0"]), Ok(()));
    }
}
