//! synack shows, packet by packet, how a TCP connection is opened and closed.
//!
//! The layers, from pure to privileged:
//! - [`wire`]: segment and frame representations; emit with pnet, parse
//!   with etherparse.
//! - [`tcp`]: the RFC 9293 connection state machine; segments and time in,
//!   segments to send out.
//! - [`capture`]: pcap writing over any `io::Write`.
//! - [`report`]: the narration, one line per segment, and JSON.
//! - [`narrate`]: what each segment is and did, in words: the pcapng
//!   comments and the `--explain` sentences with their RFC 9293 sections.
//! - [`ladder`]: ladder diagrams (inspect and `lab --ladder`) and Mermaid.
//! - [`net`]: the only privileged code: the lab's namespace and veth pair,
//!   the `TcpListener` server, the AF_PACKET link.
//! - [`lab`]: the client loop that ties them together.
//! - [`connect`]: the same client against any IPv4 server, with the RST
//!   guard (a firewall rule of its own for the run).

pub mod capture;
pub mod client;
pub mod connect;
pub mod framing;
pub mod inspect_report;
pub mod lab;
pub mod ladder;
pub mod narrate;
pub mod net;
pub mod report;
pub mod serve;
pub mod session;
pub mod tcp;
pub mod wire;

/// The run did what it could and the connection (or the analysis) failed:
/// the server refused or stayed silent, a capture was cut. Exit status 1;
/// every other error is a usage or environment error (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);
