//! What `synack inspect` prints: the connection table, a ladder diagram per
//! connection, one `--summary` line per connection, and `--json`.
//!
//! Pure formatting: reports in, strings out.

use std::fmt::Write as _;

use serde::Serialize;

use crate::capture::analyze::{Closer, ConnectionReport, Direction, FileSummary, LinkTypeCount};
use crate::ladder::{self, Cell, Middle, Rung, Way};

/// `{"event": "connection", "file": …, …}`: one connection, as it ends.
#[derive(Debug, Serialize)]
pub struct ConnectionEvent<'a> {
    pub event: &'static str,
    pub file: &'a str,
    #[serde(flatten)]
    pub connection: &'a ConnectionReport,
}

impl<'a> ConnectionEvent<'a> {
    pub fn new(file: &'a str, connection: &'a ConnectionReport) -> ConnectionEvent<'a> {
        ConnectionEvent {
            event: "connection",
            file,
            connection,
        }
    }
}

/// `{"event": "file", …}`: one file, after its connections.
#[derive(Debug, Serialize)]
pub struct FileEvent<'a> {
    pub event: &'static str,
    pub file: &'a str,
    pub packets: u64,
    pub tcp_packets: u64,
    /// Connections (a continued one counts once).
    pub connections: u64,
    pub link_types: &'a [LinkTypeCount],
    pub warnings: Vec<String>,
    /// The whole file was read.
    pub complete: bool,
}

impl<'a> FileEvent<'a> {
    /// The event of `file`; a read error becomes the last warning.
    pub fn new(file: &'a str, summary: &'a FileSummary) -> FileEvent<'a> {
        let mut warnings = summary.warnings.clone();
        if let Some(err) = &summary.error {
            warnings.push(err.to_string());
        }
        FileEvent {
            event: "file",
            file,
            packets: summary.packets,
            tcp_packets: summary.tcp_packets,
            connections: summary.connections,
            link_types: &summary.link_types,
            warnings,
            complete: summary.error.is_none(),
        }
    }
}

/// `{"event": "summary", …}`: the last line of a run that read every
/// file whole.
#[derive(Debug, Default, Serialize)]
pub struct SummaryEvent {
    pub event: &'static str,
    pub files: u64,
    pub packets: u64,
    pub tcp_packets: u64,
    pub connections: u64,
}

impl SummaryEvent {
    pub fn new() -> SummaryEvent {
        SummaryEvent {
            event: "summary",
            ..SummaryEvent::default()
        }
    }

    /// Counts one more file.
    pub fn add(&mut self, summary: &FileSummary) {
        self.files += 1;
        self.packets += summary.packets;
        self.tcp_packets += summary.tcp_packets;
        self.connections += summary.connections;
    }
}

/// One object on one line.
///
/// # Errors
/// Only if serde_json fails, which these types do not make it do.
pub fn json_line<T: Serialize>(event: &T) -> serde_json::Result<String> {
    serde_json::to_string(event)
}

/// ANSI colours, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

fn endpoint(e: &crate::capture::analyze::Endpoint) -> String {
    match e.ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", e.port),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", e.port),
    }
}

fn closer(c: Option<Closer>) -> &'static str {
    match c {
        Some(Closer::Client) => "client",
        Some(Closer::Server) => "server",
        Some(Closer::Both) => "both",
        None => "-",
    }
}

fn rtt(us: Option<u64>) -> String {
    match us {
        Some(us) if us >= 10_000 => format!("{:.1}ms", us as f64 / 1000.0),
        Some(us) => format!("{us}µs"),
        None => "-".to_string(),
    }
}

/// The anomalies with a non-zero count, `name×n`.
fn anomaly_list(c: &ConnectionReport) -> String {
    let parts: Vec<String> = c
        .anomalies
        .iter()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}×{n}"))
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

/// The table's column headings.
pub fn table_head() -> String {
    format!(
        "{:>3}  {:<28} {:<28} {:>11} {:>15} {:<10} {:>8} {:<12} {:<6} {:<6} {:<12} {:>4}  anomalies\n",
        "#", "client", "server", "pkts c/s", "bytes c/s", "handshake", "rtt", "close", "closer",
        "zeek", "history", "retx"
    )
}

/// One row of the table (a continued connection's number carries a `+`).
pub fn table_row(c: &ConnectionReport) -> String {
    let hs = if c.handshake.complete {
        "complete"
    } else {
        "incomplete"
    };
    format!(
        "{:>3}  {:<28} {:<28} {:>11} {:>15} {:<10} {:>8} {:<12} {:<6} {:<6} {:<12} {:>4}  {}\n",
        if c.continued {
            format!("{}+", c.index)
        } else {
            c.index.to_string()
        },
        endpoint(&c.client),
        endpoint(&c.server),
        format!("{}/{}", c.packets.c2s, c.packets.s2c),
        format!("{}/{}", c.bytes.c2s, c.bytes.s2c),
        hs,
        rtt(c.handshake.rtt_us),
        c.close.kind.name(),
        closer(c.close.first_closer),
        c.zeek.conn_state,
        c.zeek.history,
        c.retransmissions,
        anomaly_list(c)
    )
}

/// The file's totals and warnings, after its connections.
pub fn file_totals(file: &str, summary: &FileSummary) -> String {
    let mut out = String::new();
    let links: Vec<String> = summary
        .link_types
        .iter()
        .map(|l| format!("{} ({}) ×{}", l.name, l.link_type, l.packets))
        .collect();
    let _ = writeln!(
        out,
        "{file}: {} packets, {} TCP, {} connection(s); link types: {}",
        summary.packets,
        summary.tcp_packets,
        summary.connections,
        if links.is_empty() {
            "-".to_string()
        } else {
            links.join(", ")
        }
    );
    for w in &summary.warnings {
        let _ = writeln!(out, "{file}: warning: {w}");
    }
    out
}

/// One line per connection, for large files.
pub fn summary_line(file: &str, c: &ConnectionReport) -> String {
    format!(
        "{file} #{}{} {} -> {} rule={} hs={} rtt_us={} close={} closer={} zeek={} history={} pkts={}/{} bytes={}/{} retx={} anomalies={}",
        c.index,
        if c.continued { "+" } else { "" },
        endpoint(&c.client),
        endpoint(&c.server),
        serde_plain(&c.client_rule),
        if c.handshake.complete { "complete" } else { "incomplete" },
        c.handshake
            .rtt_us
            .map_or_else(|| "-".to_string(), |v| v.to_string()),
        c.close.kind.name(),
        closer(c.close.first_closer),
        c.zeek.conn_state,
        c.zeek.history,
        c.packets.c2s,
        c.packets.s2c,
        c.bytes.c2s,
        c.bytes.s2c,
        c.retransmissions,
        anomaly_list(c)
    )
}

/// A unit enum's serde name (`syn_ack`).
fn serde_plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The ladder of one connection, heading and rows, appended to `out`: a
/// state is shown where it changed. One [`Rung`] is rewritten for each row
/// (a big capture has a million of them).
fn push_rungs(out: &mut String, c: &ConnectionReport, color: bool) {
    ladder::push_heading(
        out,
        c.states.client.first().copied(),
        c.states.server.first().copied(),
    );
    // One rung, rewritten for each row: its label keeps its buffer.
    let mut rung = Rung {
        t_us: 0.0,
        middle: Middle::Arrow {
            way: Way::ClientToServer,
            label: String::with_capacity(64),
            color: ladder::Color::Plain,
        },
        client: None,
        server: None,
        notes: Vec::new(),
    };
    let mut prev = c.ladder.first().map_or(0.0, |row| row.t_us as f64);
    for row in &c.ladder {
        rung.t_us = row.t_us as f64;
        if let Middle::Arrow { way, label, color } = &mut rung.middle {
            *way = match row.direction {
                Direction::C2s => Way::ClientToServer,
                Direction::S2c => Way::ServerToClient,
            };
            label.clear();
            ladder::push_segment_label(label, row.flags, row.seq, row.ack, row.len, row.window);
            *color = ladder::Color::for_flags(row.flags);
        }
        rung.client = row.client_state.map(Cell::changed);
        rung.server = row.server_state.map(Cell::changed);
        rung.notes.clear();
        rung.notes.extend(row.notes.iter().map(|n| n.to_string()));
        ladder::push_rung(out, &rung, prev, color);
        prev = rung.t_us;
    }
}

/// The ladder diagram of one connection: the client on the left, the
/// server on the right, one arrow per segment with flags, relative
/// seq/ack, length, window, the time since the previous segment, and each
/// end's state when it changes (drawn by [`crate::ladder`], which the lab's
/// `--ladder` shares).
pub fn ladder(c: &ConnectionReport, style: Style) -> String {
    // About 130 bytes a row (the arrow column is 58 characters, its
    // dashes 3 bytes each).
    let mut out = String::with_capacity(256 + c.ladder.len() * 136);
    let _ = writeln!(
        out,
        "connection #{}{}: {} → {} ({}, {})",
        c.index,
        if c.continued { " (continued)" } else { "" },
        endpoint(&c.client),
        endpoint(&c.server),
        c.close.kind.name(),
        c.zeek.conn_state
    );
    push_rungs(&mut out, c, style.color);
    if c.ladder_omitted > 0 {
        let _ = writeln!(out, "… {} more segment(s) not shown", c.ladder_omitted);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::analyze::{Connection, Options};
    use crate::capture::decap::{Checksum, TcpSegment};
    use crate::wire::{Flags, SeqNumber, TcpOptions};
    use std::net::{IpAddr, Ipv4Addr};

    fn report() -> ConnectionReport {
        let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let b = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let mk = |c2s: bool, flags: Flags, seq: u32, ack: u32| TcpSegment {
            src: if c2s { a } else { b },
            dst: if c2s { b } else { a },
            src_port: if c2s { 40000 } else { 8080 },
            dst_port: if c2s { 8080 } else { 40000 },
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window: 512,
            options: TcpOptions::default(),
            payload_len: 0,
            payload: &[],
            checksum: Checksum::Good,
            header_cut: false,
            tunnel: None,
        };
        let segs = [
            mk(true, Flags::SYN, 10, 0),
            mk(false, Flags::RST_ACK, 0, 11),
        ];
        let mut conn = Connection::new(
            0,
            1,
            0,
            &segs[0],
            Options {
                ladder: true,
                ..Options::default()
            },
        );
        for (i, s) in segs.iter().enumerate() {
            conn.on_segment(i as u64 + 1, i as u64 * 1000, s);
        }
        conn.finish()
    }

    #[test]
    fn the_ladder_shows_arrows_flags_and_states() {
        let text = ladder(&report(), Style { color: false });
        assert!(text.contains("[SYN] seq=0 len=0 win=512"), "{text}");
        assert!(text.contains("▶"), "{text}");
        assert!(text.contains("◀"), "{text}");
        assert!(text.contains("SYN-SENT"), "{text}");
        assert!(text.contains("rst_server"), "{text}");
        assert!(!text.contains("\x1b["), "{text}");
        let colored = ladder(&report(), Style { color: true });
        assert!(colored.contains("\x1b[31m"), "{colored}");
    }

    #[test]
    fn the_summary_line_has_the_verdict() {
        let line = summary_line("x.pcap", &report());
        assert!(
            line.starts_with("x.pcap #0 198.18.0.2:40000 -> 198.18.0.1:8080 rule=syn"),
            "{line}"
        );
        assert!(
            line.contains("close=rst_server closer=server zeek=REJ history=Sr"),
            "{line}"
        );
    }

    #[test]
    fn json_lines_have_the_documented_fields() {
        let summary = FileSummary {
            packets: 2,
            connections: 1,
            tcp_packets: 2,
            link_types: Vec::new(),
            warnings: Vec::new(),
            error: None,
        };
        let conn = report();
        let line = json_line(&ConnectionEvent::new("x.pcap", &conn)).expect("json");
        assert!(!line.contains('\n'), "{line}");
        let c: serde_json::Value = serde_json::from_str(&line).expect("parse");
        assert_eq!(c["event"], "connection");
        assert_eq!(c["file"], "x.pcap");
        assert_eq!(c["client"]["port"], 40000);
        assert_eq!(c["client_rule"], "syn");
        assert_eq!(c["handshake"]["complete"], false);
        assert!(c["handshake"]["rtt_us"].is_null());
        assert_eq!(c["close"]["kind"], "rst_server");
        assert_eq!(c["close"]["first_closer"], "server");
        assert_eq!(c["zeek"]["conn_state"], "REJ");
        assert_eq!(c["states"]["server"][0], "CLOSED");
        assert_eq!(c["anomalies"]["retransmission"], 0);
        assert_eq!(c["packets"]["c2s"], 1);
        assert_eq!(c["continued"], false);
        assert_eq!(c["ended"], "end_of_capture");
        let line = json_line(&FileEvent::new("x.pcap", &summary)).expect("json");
        let f: serde_json::Value = serde_json::from_str(&line).expect("parse");
        assert_eq!(f["event"], "file");
        assert_eq!(f["complete"], true);
        assert_eq!(f["connections"], 1);
        let mut total = SummaryEvent::new();
        total.add(&summary);
        let line = json_line(&total).expect("json");
        let t: serde_json::Value = serde_json::from_str(&line).expect("parse");
        assert_eq!(t["event"], "summary");
        assert_eq!(
            (t["files"].as_u64(), t["connections"].as_u64()),
            (Some(1), Some(1))
        );
    }
}
