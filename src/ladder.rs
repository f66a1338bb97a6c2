//! Ladder diagrams, shared by `synack inspect` (stored captures) and
//! `synack lab --ladder` / `--mermaid` (a run as it happened): the client
//! on the left, the server on the right, one arrow per segment in the
//! direction it travelled, with each side's state beside it.
//!
//! Pure: rows in, text out.

use std::fmt::Write as _;

use crate::tcp::State;

/// The width of the arrow column.
pub const ARROW_WIDTH: usize = 58;
/// The width of the client's state column.
pub const STATE_WIDTH: usize = 13;

/// Which way an arrow points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    ClientToServer,
    ServerToClient,
}

/// One side's state beside a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub state: State,
    /// The row changed it (shown in colour).
    pub changed: bool,
}

impl Cell {
    /// A state the row changed.
    pub fn changed(state: State) -> Cell {
        Cell {
            state,
            changed: true,
        }
    }
}

/// What the middle of a row shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Middle {
    /// A segment (or another frame) travelling one way.
    Arrow {
        way: Way,
        label: String,
        color: Color,
    },
    /// Something one side did without a frame (a socket call, a timer):
    /// written next to that side's column.
    Event { client_side: bool, text: String },
}

/// The colour of an arrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Plain,
    Syn,
    Fin,
    Rst,
    /// Not TCP (ARP).
    Other,
}

impl Color {
    /// The colour for a segment with these flags.
    pub fn for_flags(flags: crate::wire::Flags) -> Color {
        if flags.rst() {
            Color::Rst
        } else if flags.syn() {
            Color::Syn
        } else if flags.fin() {
            Color::Fin
        } else {
            Color::Plain
        }
    }

    fn code(self) -> &'static str {
        match self {
            Color::Plain => "0",
            Color::Syn => "32",
            Color::Fin => "33",
            Color::Rst => "31",
            Color::Other => "2",
        }
    }
}

/// One row of a ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct Rung {
    /// Microseconds since the start (negative before it).
    pub t_us: f64,
    pub middle: Middle,
    /// The client's state to show, if any.
    pub client: Option<Cell>,
    pub server: Option<Cell>,
    /// Remarks after the server's column (anomalies).
    pub notes: Vec<String>,
}

/// The label of a segment's arrow: `[SYN, ACK] seq=0 ack=1 len=0 win=65160`
/// (relative numbers, as Wireshark shows them).
pub fn segment_label(
    flags: crate::wire::Flags,
    seq: u32,
    ack: Option<u32>,
    len: u32,
    window: u16,
) -> String {
    let mut label = String::with_capacity(48);
    push_segment_label(&mut label, flags, seq, ack, len, window);
    label
}

/// [`segment_label`], appended to `label`.
pub fn push_segment_label(
    label: &mut String,
    flags: crate::wire::Flags,
    seq: u32,
    ack: Option<u32>,
    len: u32,
    window: u16,
) {
    // Written piece by piece: a big capture's ladders have a million rows.
    label.push('[');
    flags.push_names(label);
    label.push_str("] seq=");
    push_number(label, u64::from(seq));
    if let Some(ack) = ack {
        label.push_str(" ack=");
        push_number(label, u64::from(ack));
    }
    label.push_str(" len=");
    push_number(label, u64::from(len));
    label.push_str(" win=");
    push_number(label, u64::from(window));
}

/// `n` in decimal, without the formatting machinery (itoa).
fn push_number(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `us` µs as seconds with 6 decimals, right-aligned in 10 columns
/// (`{:>10.6}` of the seconds; whole microseconds skip the float code).
fn push_seconds(out: &mut String, us: f64) {
    if !(us >= 0.0 && us.fract() == 0.0 && us < 1e15) {
        let _ = write!(out, "{:>10.6}", us / 1e6);
        return;
    }
    let n = us as u64;
    let mut whole = itoa::Buffer::new();
    let whole = whole.format(n / 1_000_000);
    let mut frac = itoa::Buffer::new();
    let frac = frac.format(n % 1_000_000);
    // The whole seconds, the point and 6 decimals.
    push_repeated(out, ' ', 10usize.saturating_sub(whole.len() + 7));
    out.push_str(whole);
    out.push('.');
    push_repeated(out, '0', 6 - frac.len());
    out.push_str(frac);
}

/// `text` padded with spaces to `width` characters.
fn push_padded(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    push_repeated(out, ' ', width.saturating_sub(text.chars().count()));
}

/// `c` `n` times: from a ready-made run of them for the arrow's dashes and
/// the padding, one at a time beyond it.
fn push_repeated(out: &mut String, c: char, n: usize) {
    const SPACES: &str = "                                                                ";
    const DASHES: &str = "────────────────────────────────────────────────────────────────";
    const ZEROS: &str = "000000";
    let run = match c {
        ' ' => SPACES,
        '0' => ZEROS,
        '─' => DASHES,
        _ => "",
    };
    let per = c.len_utf8();
    if !run.is_empty() && n * per <= run.len() {
        out.push_str(&run[..n * per]);
    } else {
        for _ in 0..n {
            out.push(c);
        }
    }
}

/// `text` in the colour `code`, or plain.
fn push_painted(out: &mut String, color: bool, code: &str, f: impl FnOnce(&mut String)) {
    if color {
        out.push_str("\x1b[");
        out.push_str(code);
        out.push('m');
        f(out);
        out.push_str("\x1b[0m");
    } else {
        f(out);
    }
}

/// The middle of a row, padded to [`ARROW_WIDTH`].
fn push_middle(out: &mut String, m: &Middle) {
    match m {
        Middle::Arrow { way, label, .. } => {
            let n = label.chars().count();
            let dashes = ARROW_WIDTH.saturating_sub(n + 3).max(2);
            match way {
                Way::ClientToServer => {
                    out.push_str(label);
                    out.push(' ');
                    push_repeated(out, '─', dashes);
                    out.push('▶');
                }
                Way::ServerToClient => {
                    out.push('◀');
                    push_repeated(out, '─', dashes);
                    out.push(' ');
                    out.push_str(label);
                }
            }
            push_repeated(out, ' ', ARROW_WIDTH.saturating_sub(n + dashes + 2));
        }
        other => push_padded(out, &middle(other), ARROW_WIDTH),
    }
}

fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n >= width {
        text.to_string()
    } else {
        format!("{text}{}", " ".repeat(width - n))
    }
}

fn pad_left(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n >= width {
        text.to_string()
    } else {
        format!("{}{text}", " ".repeat(width - n))
    }
}

fn middle(m: &Middle) -> String {
    match m {
        Middle::Arrow { way, label, .. } => {
            let dashes = ARROW_WIDTH.saturating_sub(label.chars().count() + 3).max(2);
            match way {
                Way::ClientToServer => format!("{label} {}▶", "─".repeat(dashes)),
                Way::ServerToClient => format!("◀{} {label}", "─".repeat(dashes)),
            }
        }
        Middle::Event {
            client_side: true,
            text,
        } => format!("· {text}"),
        Middle::Event {
            client_side: false,
            text,
        } => pad_left(&format!("{text} ·"), ARROW_WIDTH),
    }
}

/// The ladder: a heading, the initial states, then one line per rung with
/// the time since the start and since the previous rung (never negative),
/// in seconds.
pub fn render(
    initial_client: Option<State>,
    initial_server: Option<State>,
    rungs: &[Rung],
    color: bool,
) -> String {
    let mut out = String::new();
    push_heading(&mut out, initial_client, initial_server);
    let mut prev = rungs.first().map_or(0.0, |r| r.t_us);
    for rung in rungs {
        push_rung(&mut out, rung, prev, color);
        prev = rung.t_us;
    }
    out
}

/// The ladder's two heading lines: the column names, then the initial
/// states.
pub fn push_heading(
    out: &mut String,
    initial_client: Option<State>,
    initial_server: Option<State>,
) {
    let state = |s: Option<State>| s.map_or_else(String::new, |s| s.name().to_string());
    let _ = writeln!(
        out,
        "{:>10} {:>10}  {} {} server",
        "t (s)",
        "Δt (s)",
        pad("client", STATE_WIDTH),
        pad("", ARROW_WIDTH),
    );
    let _ = writeln!(
        out,
        "{:>10} {:>10}  {} {} {}",
        "",
        "",
        pad(&state(initial_client), STATE_WIDTH),
        pad("", ARROW_WIDTH),
        state(initial_server)
    );
}

/// One line of the ladder: `rung`, `prev_us` being the time of the rung
/// before (the first rung's own time for the first).
pub fn push_rung(out: &mut String, rung: &Rung, prev_us: f64, color: bool) {
    let cell = |out: &mut String, c: Option<Cell>, width: usize| match c {
        Some(c) if c.changed => {
            push_painted(out, color, "36", |o| push_padded(o, c.state.name(), width));
        }
        Some(c) => push_padded(out, c.state.name(), width),
        None => push_padded(out, "", width),
    };
    let code = match &rung.middle {
        Middle::Arrow { color, .. } => color.code(),
        Middle::Event { .. } => "35",
    };
    push_seconds(out, rung.t_us);
    out.push(' ');
    push_seconds(out, (rung.t_us - prev_us).max(0.0));
    out.push_str("  ");
    cell(out, rung.client, STATE_WIDTH);
    out.push(' ');
    push_painted(out, color, code, |o| push_middle(o, &rung.middle));
    out.push(' ');
    cell(out, rung.server, 0);
    if !rung.notes.is_empty() {
        push_painted(out, color, "35", |o| {
            o.push_str("  [");
            o.push_str(&rung.notes.join(", "));
            o.push(']');
        });
    }
    out.push('\n');
}

/// Text that is safe inside a Mermaid message or note: no `;` (ends a
/// statement), no `#` (starts an entity code), no line breaks, no `<`/`>`
/// (read as HTML), and no leading `wrap:`/`nowrap:` directive.
pub fn mermaid_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            ';' => ',',
            '#' => '№',
            '\n' | '\r' => ' ',
            '<' => '‹',
            '>' => '›',
            c => c,
        })
        .collect();
    out = out.trim().to_string();
    for directive in ["wrap:", "nowrap:"] {
        if out.to_ascii_lowercase().starts_with(directive) {
            out.insert(0, '·');
        }
    }
    if out.is_empty() {
        out.push('·');
    }
    out
}

/// The same rows as a Mermaid `sequenceDiagram`: participants Client and
/// Server, one message per segment (dotted for frames that are not TCP),
/// a note for every state change and every event.
pub fn mermaid(
    initial_client: Option<State>,
    initial_server: Option<State>,
    rungs: &[Rung],
) -> String {
    let mut out = String::from("sequenceDiagram\n    participant Client\n    participant Server\n");
    if let Some(s) = initial_client {
        let _ = writeln!(out, "    Note over Client: {}", s.name());
    }
    if let Some(s) = initial_server {
        let _ = writeln!(out, "    Note over Server: {}", s.name());
    }
    for rung in rungs {
        match &rung.middle {
            Middle::Arrow { way, label, color } => {
                let (from, to) = match way {
                    Way::ClientToServer => ("Client", "Server"),
                    Way::ServerToClient => ("Server", "Client"),
                };
                let arrow = if *color == Color::Other {
                    "-->>"
                } else {
                    "->>"
                };
                let _ = writeln!(out, "    {from}{arrow}{to}: {}", mermaid_text(label));
            }
            Middle::Event { client_side, text } => {
                let side = if *client_side {
                    "left of Client"
                } else {
                    "right of Server"
                };
                let _ = writeln!(out, "    Note {side}: {}", mermaid_text(text));
            }
        }
        let changed = |c: Option<Cell>| c.filter(|c| c.changed).map(|c| c.state.name());
        match (changed(rung.client), changed(rung.server)) {
            (Some(c), Some(s)) => {
                let _ = writeln!(out, "    Note over Client: {c}");
                let _ = writeln!(out, "    Note over Server: {s}");
            }
            (Some(c), None) => {
                let _ = writeln!(out, "    Note over Client: {c}");
            }
            (None, Some(s)) => {
                let _ = writeln!(out, "    Note over Server: {s}");
            }
            (None, None) => {}
        }
        if !rung.notes.is_empty() {
            let _ = writeln!(
                out,
                "    Note over Client,Server: {}",
                mermaid_text(&rung.notes.join(", "))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_numbers_are_written_as_format_writes_them() {
        for us in [
            0.0,
            1.0,
            999_999.0,
            1_000_000.0,
            1_234_567.0,
            86_400_000_000.0,
            10_000_000_000_000.0,
            999_999_999_999_999.0,
            1_000_050.0,
            12.5,
            1e16,
            -3.0,
        ] {
            let mut out = String::new();
            push_seconds(&mut out, us);
            assert_eq!(out, format!("{:>10.6}", us / 1e6), "{us}");
        }
        for n in [0, 7, 10, 65535, u64::from(u32::MAX), u64::MAX] {
            let mut out = String::new();
            push_number(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
    use crate::wire::Flags;
    use State::*;

    fn arrow(t_us: f64, way: Way, flags: Flags, seq: u32, ack: Option<u32>) -> Middle {
        let _ = t_us;
        Middle::Arrow {
            way,
            label: segment_label(flags, seq, ack, 0, 512),
            color: Color::for_flags(flags),
        }
    }

    fn handshake() -> Vec<Rung> {
        vec![
            Rung {
                t_us: 0.0,
                middle: arrow(0.0, Way::ClientToServer, Flags::SYN, 0, None),
                client: Some(Cell::changed(SynSent)),
                server: Some(Cell::changed(SynReceived)),
                notes: vec![],
            },
            Rung {
                t_us: 31.0,
                middle: arrow(31.0, Way::ServerToClient, Flags::SYN_ACK, 0, Some(1)),
                client: Some(Cell::changed(Established)),
                server: Some(Cell {
                    state: SynReceived,
                    changed: false,
                }),
                notes: vec![],
            },
            Rung {
                t_us: 80.0,
                middle: arrow(80.0, Way::ClientToServer, Flags::ACK, 1, Some(1)),
                client: Some(Cell {
                    state: Established,
                    changed: false,
                }),
                server: Some(Cell::changed(Established)),
                notes: vec![],
            },
            Rung {
                t_us: 115.0,
                middle: Middle::Event {
                    client_side: false,
                    text: "accept() → 198.18.0.2:40000".into(),
                },
                client: None,
                server: None,
                notes: vec![],
            },
        ]
    }

    #[test]
    fn the_ladder_is_golden() {
        let text = render(Some(Closed), Some(Listen), &handshake(), false);
        let expected = "     t (s)     Δt (s)  client                                                                   server
                       CLOSED                                                                   LISTEN
  0.000000   0.000000  SYN-SENT      [SYN] seq=0 len=0 win=512 ──────────────────────────────▶  SYN-RECEIVED
  0.000031   0.000031  ESTABLISHED   ◀─────────────────── [SYN, ACK] seq=0 ack=1 len=0 win=512  SYN-RECEIVED
  0.000080   0.000049  ESTABLISHED   [ACK] seq=1 ack=1 len=0 win=512 ────────────────────────▶  ESTABLISHED
  0.000115   0.000035                                             accept() → 198.18.0.2:40000 · 
";
        assert_eq!(text, expected);
    }

    #[test]
    fn colour_marks_changes_and_flags() {
        let text = render(Some(Closed), Some(Listen), &handshake(), true);
        assert!(text.contains("\x1b[32m[SYN] seq=0"), "{text}");
        assert!(text.contains("\x1b[36mSYN-SENT"), "{text}");
        // An unchanged state is not painted.
        assert_eq!(text.matches("\x1b[36mSYN-RECEIVED").count(), 1, "{text}");
        assert!(text.contains("\x1b[0m SYN-RECEIVED\n"), "{text}");
    }

    #[test]
    fn mermaid_is_golden() {
        let text = mermaid(Some(Closed), Some(Listen), &handshake());
        let expected = "sequenceDiagram
    participant Client
    participant Server
    Note over Client: CLOSED
    Note over Server: LISTEN
    Client->>Server: [SYN] seq=0 len=0 win=512
    Note over Client: SYN-SENT
    Note over Server: SYN-RECEIVED
    Server->>Client: [SYN, ACK] seq=0 ack=1 len=0 win=512
    Note over Client: ESTABLISHED
    Client->>Server: [ACK] seq=1 ack=1 len=0 win=512
    Note over Server: ESTABLISHED
    Note right of Server: accept() → 198.18.0.2:40000
";
        assert_eq!(text, expected);
    }

    #[test]
    fn mermaid_text_cannot_break_the_diagram() {
        assert_eq!(mermaid_text("a; b # c\nd <e>"), "a, b № c d ‹e›");
        assert_eq!(mermaid_text("wrap: x"), "·wrap: x");
        assert_eq!(mermaid_text(""), "·");
        assert_eq!(
            mermaid_text("recv() → 5 bytes \"hello\": ok"),
            "recv() → 5 bytes \"hello\": ok"
        );
    }
}
