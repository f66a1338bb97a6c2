//! `synack watch`'s output: a short text line per event (a `#N` tag on
//! each, so interleaved connections stay readable; at most 100 columns for
//! ordinary numbers), or one JSON object per line (docs/watch.md lists the
//! fields).
//!
//! Pure: events in, strings out.

use serde_json::{json, Value};

use super::{Datagram, End, Event, Segment, Summary};
use crate::client::Direction;
use crate::tcp::State;

/// The text narration's widest line, in characters.
pub const TEXT_WIDTH: usize = 100;

/// How the text looks.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextStyle {
    /// Colour in the ladder diagrams.
    pub color: bool,
    /// Print each connection's ladder at its end.
    pub ladder: bool,
}

fn dir_name(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "c2s",
        Direction::ServerToClient => "s2c",
    }
}

fn arrow(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "c→s",
        Direction::ServerToClient => "s→c",
    }
}

fn seconds(t_ns: u64) -> String {
    format!(
        "{}.{:06}",
        t_ns / 1_000_000_000,
        t_ns % 1_000_000_000 / 1000
    )
}

/// `CLOSED→SYN-SENT`, or the state alone when nothing changed.
fn states_text(changes: &[(State, State)], now: Option<State>) -> String {
    match changes.first() {
        None => now.map_or_else(|| "?".to_string(), |s| s.name().to_string()),
        Some((from, _)) => {
            let mut text = from.name().to_string();
            for (_, to) in changes {
                text.push('→');
                text.push_str(to.name());
            }
            text
        }
    }
}

fn transitions_json(changes: &[(State, State)]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|(a, b)| json!([a.name(), b.name()]))
            .collect(),
    )
}

/// One event as text lines (no trailing newline on the last).
pub fn text(event: &Event, style: TextStyle) -> String {
    match event {
        Event::Open {
            conn,
            t_ns,
            client,
            server,
        } => format!(
            "#{conn:<3} {:>10}  new connection {client} → {server}",
            seconds(*t_ns)
        ),
        Event::Segment(s) => segment_text(s),
        Event::End(end) => end_text(end, style),
        Event::Datagram(d) => datagram_text(d),
    }
}

fn segment_text(s: &Segment) -> String {
    let ack = s.ack_rel.map_or_else(|| "-".to_string(), |a| a.to_string());
    let head = format!(
        "#{:<3} {:>10}  {}  {:<13} seq={} ack={} len={}",
        s.conn,
        seconds(s.t_ns),
        arrow(s.dir),
        s.flags.to_string(),
        s.seq_rel,
        ack,
        s.len,
    );
    let retrans = if s.retransmission {
        " (retransmission)"
    } else {
        ""
    };
    let states = format!(
        "client {}  server {}",
        states_text(&s.client, s.client_state),
        states_text(&s.server, s.server_state)
    );
    let one = format!("{head}{retrans}  {states}");
    let mut out = if one.chars().count() <= TEXT_WIDTH {
        one
    } else {
        format!("{head}{retrans}\n{:16}{states}", "")
    };
    if let Some(sentence) = &s.explain {
        for line in wrap(sentence, TEXT_WIDTH - 6) {
            out.push_str("\n      ");
            out.push_str(&line);
        }
    }
    out
}

/// Words of `text` in lines of at most `width` characters (a longer word
/// gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn end_text(end: &End, style: TextStyle) -> String {
    let r = &end.report;
    let closer = match r.close.first_closer {
        Some(crate::capture::analyze::Closer::Client) => ", client closed first",
        Some(crate::capture::analyze::Closer::Server) => ", server closed first",
        Some(crate::capture::analyze::Closer::Both) => ", both at once",
        None => "",
    };
    let why = match end.reason {
        super::EndReason::Closed => "end",
        super::EndReason::Stopped => "open at exit",
        super::EndReason::Evicted => "dropped (too many)",
        super::EndReason::Replaced => "replaced",
    };
    let retrans = match r.retransmissions {
        0 => String::new(),
        1 => ", 1 retransmission".to_string(),
        n => format!(", {n} retransmissions"),
    };
    let mut out = format!(
        "#{:<3} {:>10}  {why} {}{closer}; {} packets, bytes {} c→s {} s→c{retrans}",
        end.conn,
        seconds(end.t_ns),
        r.close.kind.name(),
        r.packets.c2s + r.packets.s2c,
        r.bytes.c2s,
        r.bytes.s2c,
    );
    if style.ladder {
        let ladder =
            crate::inspect_report::ladder(r, crate::inspect_report::Style { color: style.color });
        out.push('\n');
        out.push_str(ladder.trim_end_matches('\n'));
    }
    out
}

fn datagram_text(d: &Datagram) -> String {
    let line = format!(
        "u{:<3} {:>10}  {}  UDP {} → {} len={} {:?}",
        d.flow,
        seconds(d.t_ns),
        arrow(d.dir),
        d.src,
        d.dst,
        d.len,
        d.text
    );
    line.chars().take(TEXT_WIDTH).collect()
}

/// The closing line.
pub fn summary_text(s: &Summary) -> String {
    let mut text = format!(
        "synack watch: {} connection{} ({} closed, {} still open), {} segments, {} \
         retransmission{} in {} s",
        s.connections,
        if s.connections == 1 { "" } else { "s" },
        s.closed,
        s.open,
        s.segments,
        s.retransmissions,
        if s.retransmissions == 1 { "" } else { "s" },
        seconds(s.t_ns),
    );
    if s.flows > 0 || s.datagrams > 0 {
        text.push_str(&format!(
            "; {} UDP datagrams in {} flows",
            s.datagrams, s.flows
        ));
    }
    text
}

/// One event as a JSON line (`ladder`: the connection's ladder text goes
/// into its `connection_end` object).
pub fn json(event: &Event, ladder: bool) -> String {
    let value = match event {
        Event::Open {
            conn,
            t_ns,
            client,
            server,
        } => json!({
            "event": "connection",
            "conn": conn,
            "t_ns": t_ns,
            "client": client.to_string(),
            "server": server.to_string(),
        }),
        Event::Segment(s) => segment_json(s),
        Event::End(end) => end_json(end, ladder),
        Event::Datagram(d) => json!({
            "event": "datagram",
            "flow": d.flow,
            "t_ns": d.t_ns,
            "dir": dir_name(d.dir),
            "src": d.src.to_string(),
            "dst": d.dst.to_string(),
            "len": d.len,
            "delivered": true,
        }),
    };
    value.to_string()
}

/// A segment event's JSON object.
fn segment_json(s: &Segment) -> Value {
    let mut v = json!({
        "event": "segment",
        "conn": s.conn,
        "t_ns": s.t_ns,
        "dir": dir_name(s.dir),
        "src": s.src.to_string(),
        "dst": s.dst.to_string(),
        "flags": s.flags.to_string(),
        "seq": s.seq,
        "seq_rel": s.seq_rel,
        "ack": s.ack,
        "ack_rel": s.ack_rel,
        "len": s.len,
        "win": s.window,
        "delivered": true,
        "retransmission": s.retransmission,
        "client": transitions_json(&s.client),
        "server": transitions_json(&s.server),
        "client_state": s.client_state.map(State::name),
        "server_state": s.server_state.map(State::name),
    });
    if let Some(sentence) = &s.explain {
        v["explain"] = json!(sentence);
    }
    v
}

/// A connection end's JSON object, with its ladder text if `ladder`.
fn end_json(end: &End, ladder: bool) -> Value {
    let r = &end.report;
    let names = |states: &[State]| states.iter().map(|s| s.name()).collect::<Vec<_>>();
    let mut v = json!({
        "event": "connection_end",
        "conn": end.conn,
        "t_ns": end.t_ns,
        "reason": end.reason.name(),
        "client": format!("{}", std::net::SocketAddr::new(r.client.ip, r.client.port)),
        "server": format!("{}", std::net::SocketAddr::new(r.server.ip, r.server.port)),
        "close": r.close.kind.name(),
        "first_closer": r.close.first_closer,
        "handshake_complete": r.handshake.complete,
        "packets": r.packets,
        "bytes": r.bytes,
        "retransmissions": r.retransmissions,
        "duration_us": r.duration_us,
        "conn_state": r.zeek.conn_state,
        "history": r.zeek.history,
        "client_states": names(&r.states.client),
        "server_states": names(&r.states.server),
    });
    if ladder {
        let text = crate::inspect_report::ladder(r, crate::inspect_report::Style { color: false });
        v["ladder"] = json!(text);
    }
    v
}

/// The last JSON line.
pub fn summary_json(s: &Summary) -> String {
    json!({
        "event": "summary",
        "t_ns": s.t_ns,
        "frames": s.frames,
        "segments": s.segments,
        "connections": s.connections,
        "closed": s.closed,
        "open": s.open,
        "retransmissions": s.retransmissions,
        "datagrams": s.datagrams,
        "flows": s.flows,
        "skipped": s.skipped,
    })
    .to_string()
}
