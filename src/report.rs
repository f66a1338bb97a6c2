//! The narration: what the lab prints, one line per segment and per server
//! socket call, as text or as JSON lines.
//!
//! Pure: events in, strings out.

use std::fmt::Write as _;

use serde::Serialize;

use crate::client::faults::{DropItem, ServerRetransmission};
use crate::client::{Direction, Note, Received, What};
use crate::tcp::{SendReason, State};
use crate::wire::{Flags, TcpOptions};

/// How the narration shows which way a frame went.
fn arrow(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "client → server",
        Direction::ServerToClient => "server → client",
    }
}

/// Which end of the connection a row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One TCP segment as the narration shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentLine {
    /// Nanoseconds since the first SYN, on the client's clock (negative
    /// before it).
    pub t_ns: i64,
    pub dir: Direction,
    #[serde(serialize_with = "flags_text")]
    pub flags: Flags,
    /// Raw sequence number and relative to the sender's ISN.
    pub seq: u32,
    pub seq_rel: u32,
    /// Raw acknowledgment number and relative to the receiver's ISN
    /// (`None` without the ACK flag).
    pub ack: Option<u32>,
    pub ack_rel: Option<u32>,
    pub len: usize,
    /// The window field as sent, and scaled when scaling was agreed.
    pub win: u16,
    #[serde(serialize_with = "options_text")]
    pub options: TcpOptions,
    /// It reached the receiver's TCP when it was recorded (not lost on
    /// purpose, not held).
    pub delivered: bool,
    /// Held to stage crossing FINs: the receiver takes it on a later
    /// `process` row.
    #[serde(skip_serializing_if = "is_false")]
    pub held: bool,
    /// Sequence space its sender had sent before.
    pub retransmission: bool,
    /// The client's state changes this segment caused (or that sent it).
    pub client: Vec<(State, State)>,
    /// The server's state changes this segment caused, inferred from what
    /// the server sent and received (RFC 9293 §3.10.7).
    pub server: Vec<(State, State)>,
    /// The client's state after the segment.
    pub client_state: State,
    /// The server's state after the segment, as inferred (`None` while not
    /// known: a server of `connect` before it answered).
    pub server_state: Option<State>,
    /// The server socket's state as the kernel reported it, sampled when
    /// the client handled the segment: a cross-check, ahead of the wire
    /// when the application already called `close()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_server_state: Option<State>,
    /// The text says once that the kernel is ahead of the wire (the first
    /// row where it is).
    #[serde(skip)]
    pub tell_kernel_ahead: bool,
    /// Why it was sent, or what it did (worded by [`note_text`]).
    #[serde(serialize_with = "note_json")]
    pub note: Note,
    /// Both checksums were right.
    pub checksums_ok: bool,
}

/// One UDP datagram as the narration shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DatagramLine {
    /// Nanoseconds since the first datagram.
    pub t_ns: i64,
    pub dir: Direction,
    pub src_port: u16,
    pub dst_port: u16,
    /// Its number among the datagrams that went this way, from 1.
    pub number: usize,
    pub len: usize,
    /// The payload as text (lossy).
    pub text: String,
    /// Both checksums were right.
    pub checksums_ok: bool,
}

fn flags_text<S: serde::Serializer>(flags: &Flags, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(flags)
}

fn opt_flags_text<S: serde::Serializer>(flags: &Option<Flags>, s: S) -> Result<S::Ok, S::Error> {
    match flags {
        Some(flags) => s.collect_str(flags),
        None => s.serialize_none(),
    }
}

fn note_json<S: serde::Serializer>(note: &Note, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&note_text(note))
}

fn options_text<S: serde::Serializer>(opts: &TcpOptions, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(opts)
}

/// Everything the lab narrates.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LabEvent {
    /// The namespace and veth pair are ready.
    Setup {
        setup_us: u64,
        server: String,
        client: String,
    },
    /// An ARP frame.
    Arp {
        t_ns: i64,
        dir: Direction,
        text: String,
    },
    /// A Neighbor Discovery frame (IPv6's ARP, `lab -6`).
    Ndp {
        t_ns: i64,
        dir: Direction,
        text: String,
    },
    Segment(SegmentLine),
    /// A UDP datagram (`--udp`).
    Datagram(DatagramLine),
    /// A socket call of an application: the client's own (connect, send,
    /// close, abort) or the server's. The server's transitions sit on
    /// segment rows only; the kernel's view of its socket is a sample.
    App {
        t_ns: i64,
        side: Side,
        call: String,
        client: Vec<(State, State)>,
        server: Vec<(State, State)>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kernel_server_state: Option<State>,
    },
    /// A timer of one side expired (`rto`, `time-wait-end`).
    Timer {
        t_ns: i64,
        side: Side,
        what: &'static str,
        client: Vec<(State, State)>,
        server: Vec<(State, State)>,
    },
    /// A side took a segment that was held before (crossing FINs).
    Process {
        t_ns: i64,
        client: Vec<(State, State)>,
        server: Vec<(State, State)>,
    },
    /// Anything else worth a line.
    Note {
        t_ns: i64,
        text: String,
    },
    /// `--explain`: what the segment just before did, in one sentence, and
    /// the RFC 9293 sections it follows (`["3.5", "3.4.1"]`).
    Explain {
        t_ns: i64,
        dir: Direction,
        /// The segment's flags (none for a UDP datagram).
        #[serde(serialize_with = "opt_flags_text")]
        flags: Option<Flags>,
        text: String,
        rfc9293: Vec<&'static str>,
    },
    /// `--ladder`: the whole run as a ladder diagram (several lines).
    Ladder {
        text: String,
    },
    Summary(Summary),
}

/// The end of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// SYN sent → SYN-ACK received, ns.
    pub handshake_rtt_ns: Option<u64>,
    /// First SYN → the last ACK of the teardown (the segment that closed
    /// the last side still waiting for one), ns.
    pub cycle_ns: Option<u64>,
    pub bytes_c2s: usize,
    pub bytes_s2c: usize,
    pub frames: usize,
    pub retransmissions: usize,
    /// Segments the server's kernel sent again after we ignored them on
    /// purpose (`--drop`).
    pub server_retransmissions: usize,
    /// Segments lost on purpose (`--drop`).
    pub dropped: usize,
    pub final_state: Option<State>,
    pub time_wait_ms: u64,
    /// The client went through TIME-WAIT (not when the server closed
    /// first or a RST ended the connection).
    pub time_wait_entered: bool,
    /// The connection was refused (the `--refused` scenario).
    pub refused: bool,
    /// The server's state at the end of the run, as inferred (TIME-WAIT
    /// when it closed first: its kernel holds that 60 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_final_state: Option<State>,
    pub pcap: String,
}

/// How the text narration looks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// `-v`: full timestamps options and the reason of each segment.
    pub verbose: bool,
    /// ANSI colours for directions and state changes.
    pub color: bool,
}

fn paint(style: Style, code: &str, text: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The options as the narration shows them: timestamps only as `ts` unless
/// verbose.
fn options_short(opts: &TcpOptions, verbose: bool) -> String {
    if verbose || opts.timestamps.is_none() {
        return opts.to_string();
    }
    let mut text = opts.to_string();
    if let Some((val, ecr)) = opts.timestamps {
        text = text.replace(&format!("ts={val}/{ecr}"), "ts");
    }
    text
}

fn time(t_ns: i64) -> String {
    format!("{:>10.0} µs", t_ns as f64 / 1e3)
}

/// `A → B → C`, or nothing without changes.
fn chain(changes: &[(State, State)]) -> Option<String> {
    let (first, _) = changes.first()?;
    let mut text = first.to_string();
    for (_, to) in changes {
        let _ = write!(text, " → {to}");
    }
    Some(text)
}

/// What the kernel's sampled state adds to a row whose inferred state it
/// is ahead of: the application already called `close()`.
pub fn kernel_ahead(model: Option<State>, kernel: Option<State>) -> Option<String> {
    let kernel = kernel?;
    crate::tcp::peer::closed_ahead_of_wire(model, Some(kernel)).then(|| {
        format!("the kernel is already in {kernel}: the server application called close()")
    })
}

/// The heading printed above the segment lines.
pub fn header() -> String {
    format!(
        "{:>13}  {:<15}  {:<10} {:<22} {:<22} {:>4} {:>6}  {}",
        "time",
        "direction",
        "flags",
        "seq (rel/raw)",
        "ack (rel/raw)",
        "len",
        "win",
        "client | server"
    )
}

/// One event as one line of text (or several for the summary).
pub fn format_text(event: &LabEvent, style: Style) -> String {
    match event {
        LabEvent::Setup {
            setup_us,
            server,
            client,
        } => format!(
            "lab ready in {:.1} ms: a private network namespace with {server} ⇄ {client}",
            *setup_us as f64 / 1000.0
        ),
        LabEvent::Arp { t_ns, dir, text } => {
            format!("{}  {:<15}  ARP        {text}", time(*t_ns), arrow(*dir))
        }
        LabEvent::Ndp { t_ns, dir, text } => {
            format!("{}  {:<15}  NDP        {text}", time(*t_ns), arrow(*dir))
        }
        LabEvent::Segment(seg) => format_segment(seg, style),
        LabEvent::Datagram(d) => {
            let dir_color = match d.dir {
                Direction::ClientToServer => "36",
                Direction::ServerToClient => "33",
            };
            let mut line = format!(
                "{}  {}  {:<10} {:<45} {:>4}         datagram #{} {:?}",
                time(d.t_ns),
                paint(style, dir_color, &format!("{:<15}", arrow(d.dir))),
                "[UDP]",
                format!("port {} → {}", d.src_port, d.dst_port),
                d.len,
                d.number,
                d.text
            );
            if !d.checksums_ok {
                line.push_str("  (bad checksum)");
            }
            line
        }
        LabEvent::App {
            t_ns,
            side,
            call,
            client,
            kernel_server_state,
            ..
        } => {
            let who = match side {
                Side::Client => "client app",
                Side::Server => "server app",
            };
            let mut line = format!("{}  {:<15}  {}", time(*t_ns), who, paint(style, "35", call));
            if let Some(states) = chain(client) {
                let _ = write!(line, "  {}", paint(style, "1", &states));
            }
            if let (true, Some(state)) = (style.verbose, kernel_server_state) {
                let _ = write!(line, "  [kernel: {state}]");
            }
            line
        }
        LabEvent::Timer {
            t_ns,
            side,
            what,
            client,
            server,
        } => {
            let who = match side {
                Side::Client => "client",
                Side::Server => "server",
            };
            let states = chain(client).or_else(|| chain(server)).unwrap_or_default();
            let what = match *what {
                "time-wait-end" => "the TIME-WAIT timer expired:",
                "rto" => "the retransmission timer expired",
                other => other,
            };
            format!(
                "{}  {:<15}  {what} {}",
                time(*t_ns),
                who,
                paint(style, "1", &states)
            )
            .trim_end()
            .to_string()
        }
        LabEvent::Process {
            t_ns,
            client,
            server,
        } => {
            let (who, states) = match chain(client) {
                Some(states) => ("client", states),
                None => ("server", chain(server).unwrap_or_default()),
            };
            format!(
                "{}  {:<15}  takes the held FIN now: {}",
                time(*t_ns),
                who,
                paint(style, "1", &states)
            )
        }
        LabEvent::Note { t_ns, text } => format!("{}  {text}", time(*t_ns)),
        LabEvent::Explain { text, rfc9293, .. } => format!(
            "{:>13}  {}",
            "",
            paint(style, "2", &format!("↳ {}", explanation(text, rfc9293)))
        ),
        LabEvent::Ladder { text } => format!("ladder:\n{}", text.trim_end()),
        LabEvent::Summary(summary) => format_summary(summary),
    }
}

/// `The SYN opens … (RFC 9293 §3.5, §3.4.1).`
fn explanation(text: &str, sections: &[&str]) -> String {
    if sections.is_empty() {
        return format!("{text}.");
    }
    let sections: Vec<String> = sections.iter().map(|s| format!("§{s}")).collect();
    format!("{text} (RFC 9293 {}).", sections.join(", "))
}

/// An explanation on a line of its own, for `-q --explain` where the
/// segment line above it is not printed: time, direction and flags first.
pub fn format_explain_alone(event: &LabEvent) -> Option<String> {
    match event {
        LabEvent::Explain {
            t_ns,
            dir,
            flags,
            text,
            rfc9293,
        } => Some(format!(
            "{}  {:<15}  {:<10} {}",
            time(*t_ns),
            arrow(*dir),
            flags.map_or_else(
                || "[UDP]".to_string(),
                |f| format!("[{}]", compact_flags(f))
            ),
            explanation(text, rfc9293)
        )),
        _ => None,
    }
}

fn format_segment(seg: &SegmentLine, style: Style) -> String {
    let seq = format!("{} / {}", seg.seq_rel, seg.seq);
    let ack = match (seg.ack_rel, seg.ack) {
        (Some(rel), Some(raw)) => format!("{rel} / {raw}"),
        _ => "-".to_string(),
    };
    let client = match chain(&seg.client) {
        Some(text) => paint(style, "1", &text),
        None => seg.client_state.to_string(),
    };
    let server = match chain(&seg.server) {
        Some(text) => paint(style, "1", &text),
        None => seg
            .server_state
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".to_string()),
    };
    let dir_color = match seg.dir {
        Direction::ClientToServer => "36",
        Direction::ServerToClient => "33",
    };
    let mut line = format!(
        "{}  {}  {:<10} {:<22} {:<22} {:>4} {:>6}  {client} | {server}",
        time(seg.t_ns),
        paint(style, dir_color, &format!("{:<15}", arrow(seg.dir))),
        format!("[{}]", compact_flags(seg.flags)),
        seq,
        ack,
        seg.len,
        seg.win,
    );
    let opts = options_short(&seg.options, style.verbose);
    if !opts.is_empty() {
        let _ = write!(line, "  <{opts}>");
    }
    let note = note_text(&seg.note);
    if !note.is_empty() && (style.verbose || is_notable(&seg.note)) {
        let _ = write!(line, "  ({note})");
    }
    if !seg.checksums_ok {
        line.push_str("  (bad checksum)");
    }
    if let (true, Some(ahead)) = (
        seg.tell_kernel_ahead,
        kernel_ahead(seg.server_state, seg.kernel_server_state),
    ) {
        let _ = write!(line, "  ({ahead})");
    }
    line
}

/// Notes shown even without `-v`: what a scenario is about (a loss on
/// purpose, a retransmission, crossing FINs, an abort, TIME-WAIT at work).
fn is_notable(note: &Note) -> bool {
    note.lost.is_some()
        || matches!(
            note.what,
            What::Retransmission { .. }
                | What::Sent(
                    SendReason::Retransmission { .. }
                        | SendReason::GoBackN { .. }
                        | SendReason::WindowProbe { .. }
                        | SendReason::SynAck
                        | SendReason::Abort
                )
                | What::AckFromTimeWait
                | What::ServerRetransmission(_)
                | What::SeenAgain
                | What::FinHeld
                | What::ServerAborted
        )
}

/// One part of a note in words. The narration line shows every part,
/// `; `-separated; the comments and explanations keep the parts that say
/// more than the flags do (not `plain`), and the explanations leave out
/// what cites an RFC itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotePart {
    pub text: String,
    /// Only names the segment ("data", "FIN: active close").
    pub plain: bool,
    /// Cites an RFC itself.
    pub cites_rfc: bool,
}

impl NotePart {
    fn plain(text: impl Into<String>) -> NotePart {
        NotePart {
            text: text.into(),
            plain: true,
            cites_rfc: false,
        }
    }

    fn says(text: impl Into<String>) -> NotePart {
        NotePart {
            text: text.into(),
            plain: false,
            cites_rfc: false,
        }
    }

    fn cites(text: impl Into<String>) -> NotePart {
        NotePart {
            text: text.into(),
            plain: false,
            cites_rfc: true,
        }
    }
}

/// The client's note in words, part by part.
pub fn note_parts(note: &Note) -> Vec<NotePart> {
    let mut parts = what_parts(&note.what);
    if let Some(loss) = note.lost {
        let item = loss.item;
        if item == DropItem::FinalAck {
            parts.push(NotePart::says(
                "dropped on purpose (--drop final-ack): recorded leaving, never delivered",
            ));
            parts.push(NotePart::says(
                "an ACK is not retransmitted, so the server's FIN will come again",
            ));
        } else if item.is_outgoing() {
            parts.push(NotePart::says(format!(
                "dropped on purpose (--drop {item}): recorded leaving, never delivered"
            )));
            parts.push(NotePart::says(format!(
                "the client's RTO ({} ms) will resend it",
                loss.rto.as_millis()
            )));
        } else {
            parts.push(NotePart::says(format!(
                "dropped on purpose (--drop {item}): ignored once, so the server's kernel must \
                 retransmit it"
            )));
        }
    }
    parts
}

/// The client's note in words, as the narration line and JSON show it.
pub fn note_text(note: &Note) -> String {
    note_parts(note)
        .into_iter()
        .map(|part| part.text)
        .collect::<Vec<_>>()
        .join("; ")
}

fn what_parts(what: &What) -> Vec<NotePart> {
    let part = match *what {
        What::Nothing => return Vec::new(),
        What::Sent(reason) => reason_part(reason),
        What::Retransmission { attempt, rto } => {
            return vec![
                NotePart::plain(format!("retransmission #{attempt}: the RTO expired")),
                NotePart::cites(format!(
                    "the timer backs off to {} ms (RFC 6298 §5.5)",
                    rto.as_millis()
                )),
            ];
        }
        What::AckFromTimeWait => NotePart::cites(
            "ACK again from TIME-WAIT, 2·MSL timer restarted: this is why TIME-WAIT exists \
             (RFC 9293 §3.10.7.4)",
        ),
        What::Received(Received::Ignored(why)) => NotePart::says(format!("ignored: {why}")),
        What::Received(Received::Rst) => NotePart::plain("RST"),
        What::Received(Received::SynAck) => NotePart::plain("SYN-ACK"),
        What::Received(Received::Fin) => NotePart::plain("the server's FIN"),
        What::Received(Received::Data(len)) => NotePart::plain(format!("{len} bytes of data")),
        What::Received(Received::Ack) => NotePart::plain("ACK"),
        What::ServerAborted => {
            NotePart::says("RST: the server aborted (SO_LINGER 0 then close), as asked")
        }
        What::ServerRetransmission(ServerRetransmission::Of { item, after }) => {
            NotePart::says(format!(
                "{}: the server's kernel retransmitted it {:.0} ms after the one we dropped",
                match item {
                    DropItem::SynAck => "SYN-ACK",
                    DropItem::ServerFin => "the server's FIN",
                    _ => "the server's data",
                },
                after.as_secs_f64() * 1e3
            ))
        }
        What::ServerRetransmission(ServerRetransmission::FinAfterLostFinalAck) => NotePart::says(
            "the server's FIN again: our final ACK was lost, so the server's kernel \
                 (LAST-ACK) retransmitted its FIN",
        ),
        What::FinHeld => NotePart::says(
            "the server's FIN, held: simultaneous close, our FIN goes first as if the two \
             crossed on the wire",
        ),
        What::KernelRst => NotePart::says("the kernel's RST"),
        What::SeenAgain => NotePart::says("retransmission"),
    };
    vec![part]
}

fn reason_part(reason: SendReason) -> NotePart {
    match reason {
        SendReason::Syn => NotePart::plain("SYN: active open"),
        SendReason::SynAck => NotePart::says("SYN-ACK: simultaneous open"),
        SendReason::HandshakeAck => NotePart::plain("ACK: completes the handshake"),
        SendReason::Data => NotePart::plain("data"),
        SendReason::Ack => NotePart::plain("ACK of what arrived"),
        SendReason::DuplicateAck => NotePart::says("ACK for an unacceptable segment"),
        SendReason::ChallengeAck => NotePart::cites("challenge ACK (RFC 5961)"),
        SendReason::Fin => NotePart::plain("FIN: active close"),
        SendReason::Abort => NotePart::cites("RST: abort instead of FIN (RFC 9293 §3.10.5)"),
        SendReason::ResetUnacceptableAck => {
            NotePart::says("RST: the ACK acknowledged nothing we sent")
        }
        SendReason::Retransmission { attempt } => {
            NotePart::plain(format!("retransmission #{attempt}"))
        }
        SendReason::GoBackN { sacked_skipped } => {
            let skipped = if sacked_skipped > 0 {
                format!(", after {sacked_skipped} bytes the server SACKed (not sent again)")
            } else {
                String::new()
            };
            NotePart::cites(format!(
                "retransmission (go-back-N): outstanding when the RTO expired, sent again now \
                 that the first one is acknowledged{skipped} (RFC 5681 §3.1, RFC 2018)"
            ))
        }
        SendReason::WindowProbe { attempt, next } => NotePart::cites(format!(
            "zero-window probe #{attempt}: one byte into the server's zero window when the \
             persist timer expired; next probe in {} ms unless the window opens (RFC 9293 \
             §3.8.6.1)",
            next.as_millis()
        )),
    }
}

/// Flags without spaces, so the column stays narrow: `SYN,ACK`.
fn compact_flags(flags: Flags) -> String {
    flags.to_string().replace(", ", ",")
}

fn format_summary(s: &Summary) -> String {
    let mut out = String::from("summary:");
    if let Some(rtt) = s.handshake_rtt_ns {
        let _ = write!(
            out,
            "\n  handshake RTT (SYN → SYN-ACK)   {:.0} µs",
            rtt as f64 / 1e3
        );
    }
    if let Some(cycle) = s.cycle_ns {
        let _ = write!(
            out,
            "\n  whole cycle (SYN → last ACK)    {:.0} µs",
            cycle as f64 / 1e3
        );
    }
    let _ = write!(
        out,
        "\n  bytes client → server / back    {} / {}",
        s.bytes_c2s, s.bytes_s2c
    );
    if s.refused {
        let _ = write!(
            out,
            "\n  client ended in                 CLOSED: refused, the connection never opened (no TIME-WAIT)\n  pcap                            {}",
            s.pcap
        );
        return out;
    }
    let _ = write!(
        out,
        "\n  frames captured                 {}{}",
        s.frames,
        if s.retransmissions > 0 {
            format!(" ({} retransmissions)", s.retransmissions)
        } else {
            String::new()
        }
    );
    if s.dropped > 0 {
        let _ = write!(
            out,
            "\n  lost on purpose (--drop)        {} (retransmitted: {} by the client, {} by the server's kernel)",
            s.dropped, s.retransmissions, s.server_retransmissions
        );
    }
    match s.final_state {
        Some(state) if s.time_wait_entered => {
            let _ = write!(
                out,
                "\n  client ended in                 {state} (TIME-WAIT held {} ms; Linux holds it 60 s)",
                s.time_wait_ms
            );
        }
        Some(state) => {
            let _ = write!(
                out,
                "\n  client ended in                 {state} (no TIME-WAIT on the client's side)"
            );
        }
        None => {}
    }
    if s.server_final_state == Some(State::TimeWait) {
        let _ = write!(
            out,
            "\n  server ended in                 TIME-WAIT (it closed first; its kernel holds TIME-WAIT 60 s, past the end of this run)"
        );
    }
    let _ = write!(out, "\n  pcap                            {}", s.pcap);
    out
}

/// One event as one JSON line.
pub fn format_json(event: &LabEvent) -> String {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string(event).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn_ack() -> SegmentLine {
        SegmentLine {
            t_ns: 41_400,
            dir: Direction::ServerToClient,
            flags: Flags::SYN_ACK,
            seq: 1_723_412_341,
            seq_rel: 0,
            ack: Some(3_918_266_130),
            ack_rel: Some(1),
            len: 0,
            win: 65160,
            options: TcpOptions {
                mss: Some(1460),
                sack_permitted: true,
                timestamps: Some((99, 12)),
                wscale: Some(7),
                ..TcpOptions::default()
            },
            delivered: true,
            held: false,
            retransmission: false,
            client: vec![(State::SynSent, State::Established)],
            server: Vec::new(),
            client_state: State::Established,
            server_state: Some(State::SynReceived),
            kernel_server_state: None,
            tell_kernel_ahead: false,
            note: Note::new(What::Received(Received::SynAck)),
            checksums_ok: true,
        }
    }

    #[test]
    fn a_segment_line_has_every_field() {
        let line = format_text(&LabEvent::Segment(syn_ack()), Style::default());
        for part in [
            "41 µs",
            "server → client",
            "[SYN,ACK]",
            "0 / 1723412341",
            "1 / 3918266130",
            "65160",
            "SYN-SENT → ESTABLISHED | SYN-RECEIVED",
            "<mss=1460,sack_perm,ts,ws=7>",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        assert!(!line.contains('\x1b'));
        let verbose = format_text(
            &LabEvent::Segment(syn_ack()),
            Style {
                verbose: true,
                color: true,
            },
        );
        assert!(verbose.contains("ts=99/12"));
        assert!(verbose.contains("(SYN-ACK)"));
        assert!(verbose.contains('\x1b'));
    }

    #[test]
    fn json_lines_carry_the_same_fields() {
        let json = format_json(&LabEvent::Segment(syn_ack()));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["event"], "segment");
        assert_eq!(value["dir"], "s2c");
        assert_eq!(value["flags"], "SYN, ACK");
        assert_eq!(value["seq"], 1_723_412_341u32);
        assert_eq!(value["ack_rel"], 1);
        assert_eq!(value["client"][0][1], "ESTABLISHED");
        assert_eq!(value["server_state"], "SYN-RECEIVED");
    }

    #[test]
    fn explanations_follow_their_segment_or_stand_alone() {
        let event = LabEvent::Explain {
            t_ns: 0,
            dir: Direction::ClientToServer,
            flags: Some(Flags::SYN),
            text: "The SYN opens the connection".into(),
            rfc9293: vec!["3.5", "3.4.1"],
        };
        assert_eq!(
            format_text(&event, Style::default()),
            "               ↳ The SYN opens the connection (RFC 9293 §3.5, §3.4.1)."
        );
        assert_eq!(
            format_explain_alone(&event).as_deref(),
            Some(
                "         0 µs  client → server  [SYN]      The SYN opens the connection (RFC 9293 §3.5, §3.4.1)."
            )
        );
        let json: serde_json::Value = serde_json::from_str(&format_json(&event)).unwrap();
        assert_eq!(json["event"], "explain");
        assert_eq!(json["flags"], "SYN");
        assert_eq!(json["rfc9293"][1], "3.4.1");
    }

    #[test]
    fn a_datagram_line_names_ports_length_and_text() {
        let d = DatagramLine {
            t_ns: 29_400,
            dir: Direction::ClientToServer,
            src_port: 43610,
            dst_port: 8080,
            number: 2,
            len: 5,
            text: "world".into(),
            checksums_ok: true,
        };
        let line = format_text(&LabEvent::Datagram(d.clone()), Style::default());
        for part in [
            "29 µs",
            "client → server",
            "[UDP]",
            "port 43610 → 8080",
            " 5 ",
            "datagram #2 \"world\"",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        assert!(!line.contains("bad checksum"));
        let json: serde_json::Value =
            serde_json::from_str(&format_json(&LabEvent::Datagram(d))).unwrap();
        assert_eq!(json["event"], "datagram");
        assert_eq!(json["dir"], "c2s");
        assert_eq!(json["number"], 2);
        assert_eq!(json["text"], "world");
    }

    #[test]
    fn the_summary_names_the_pcap_and_time_wait() {
        let text = format_text(
            &LabEvent::Summary(Summary {
                handshake_rtt_ns: Some(38_000),
                cycle_ns: Some(412_000),
                bytes_c2s: 5,
                bytes_s2c: 13,
                frames: 10,
                retransmissions: 0,
                server_retransmissions: 0,
                dropped: 0,
                final_state: Some(State::Closed),
                time_wait_ms: 1000,
                time_wait_entered: true,
                refused: false,
                server_final_state: None,
                pcap: "synack-lab.pcap".into(),
            }),
            Style::default(),
        );
        assert!(text.contains("38 µs"));
        assert!(text.contains("5 / 13"));
        assert!(text.contains("synack-lab.pcap"));
        assert!(text.contains("60 s"));
    }
}
