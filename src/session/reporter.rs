//! The lab's reporter thread: it takes every frame and server call from a
//! channel, writes the capture (with a comment per frame in pcapng) and
//! prints the narration, the explanations and at the end the ladder, and
//! writes the Mermaid diagram, so none of that runs on the client's hot
//! path.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::capture::writer::CaptureWriter;
use crate::ladder::{self, Cell, Middle, Rung, Way};
use crate::narrate::{self, Narrator};
use crate::report::{self, DatagramLine, LabEvent, SegmentLine, Side, Style};
use crate::server::{self, ServerEvent, Voice};
use crate::tcp::{PeerModel, SendReason, State};
use crate::wire::{ArpOp, SeqNumber};

use crate::client::{ClientCall, Direction, FrameKind, FrameRecord, Note, What};

/// What the reporter prints.
#[derive(Clone, Copy, Debug)]
pub enum Output {
    /// The narration, one line per segment.
    Text(Style),
    /// Only the summary.
    Quiet,
    /// Every event as a JSON line.
    Json,
}

/// What the reporter is told.
pub enum Message {
    Frame {
        record: FrameRecord,
        server_state: Option<State>,
    },
    Server {
        at: Instant,
        event: ServerEvent,
        state: Option<State>,
    },
    /// The client's state changes that no frame carried.
    StateChanged {
        at: Instant,
        changes: Vec<(State, State)>,
    },
    /// A socket call of the client's application.
    ClientCall {
        at: Instant,
        call: ClientCall,
    },
    /// A line of the command's own, at its time.
    Said {
        at: Instant,
        text: String,
    },
    /// A line about the client (the lab's refusal, as asked).
    Note {
        at: Instant,
        text: String,
        changes: Vec<(State, State)>,
    },
    /// What the handshake agreed, one line per option.
    Options {
        at: Instant,
        lines: Vec<String>,
    },
    Event(LabEvent),
}

/// Frames and server calls reach the reporter from two threads; each is
/// held this long so the narration comes out in the order things happened.
const REORDER_WINDOW: Duration = Duration::from_millis(5);

/// What the reporter adds to the narration lines (issue 6).
#[derive(Default)]
pub struct Extras {
    /// A sentence with its RFC 9293 sections after each segment.
    pub explain: bool,
    /// The ladder diagram at the end.
    pub ladder: bool,
    /// Where to write the Mermaid diagram at the end (the file is open).
    pub mermaid: Option<(PathBuf, BufWriter<File>)>,
    /// ANSI colours in the ladder.
    pub color: bool,
    /// The client's state before the first frame (CLOSED; none over UDP).
    pub client_initial: Option<State>,
    /// The server's state before the first frame (LISTEN, or CLOSED when
    /// nothing listens; none over UDP).
    pub server_initial: Option<State>,
    /// The capture's file, for the messages.
    pub capture_path: PathBuf,
}

/// What stopped the reporter.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Stdout failed (a full disk, a closed pipe). The narration stopped
    /// there, but every frame still went into the capture.
    #[error("writing the narration to stdout")]
    Stdout(#[source] io::Error),
    /// The capture or the Mermaid file: the reporter stopped at once.
    #[error("writing {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the reporter thread panicked")]
    Panicked,
}

pub struct Reporter {
    thread: JoinHandle<Result<(), ReportError>>,
}

impl Reporter {
    /// Starts the thread. The pcap file header is written at once.
    ///
    /// # Errors
    /// Writing the pcap header, or starting the thread.
    pub fn spawn(
        rx: Receiver<Message>,
        recorder: CaptureWriter<BufWriter<File>>,
        output: Output,
        server_port: u16,
        extras: Extras,
    ) -> io::Result<Reporter> {
        let thread = thread::Builder::new()
            .name("lab-reporter".into())
            .spawn(move || {
                let mut state = ReporterState {
                    recorder,
                    output,
                    out: io::stdout().lock(),
                    first_syn: None,
                    held: Vec::new(),
                    next_seq: 0,
                    iss: None,
                    irs: None,
                    _server_port: server_port,
                    header_printed: false,
                    narrator: Narrator::new(),
                    rungs: (extras.ladder || extras.mermaid.is_some()).then(Vec::new),
                    server: PeerModel::new(extras.server_initial),
                    held_fin: false,
                    teardown_done_at: None,
                    kernel_ahead_told: None,
                    ladder_printed: false,
                    stdout_error: None,
                    extras,
                };
                loop {
                    match rx.recv_timeout(REORDER_WINDOW) {
                        Ok(msg) => state.handle(msg)?,
                        // Idle: put what was captured on disk, so even a
                        // killed run leaves a readable pcap.
                        Err(RecvTimeoutError::Timeout) => state.flush_capture()?,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    state.print_ready(false);
                }
                state.finish()
            })?;
        Ok(Reporter { thread })
    }

    /// Waits until every message was handled, the pcap flushed and the
    /// narration printed.
    ///
    /// # Errors
    /// Writing the capture or the Mermaid file; then stdout, whose failure
    /// left the capture whole.
    pub fn finish(self) -> Result<(), ReportError> {
        self.thread.join().unwrap_or(Err(ReportError::Panicked))
    }
}

struct ReporterState {
    recorder: CaptureWriter<BufWriter<File>>,
    output: Output,
    out: io::StdoutLock<'static>,
    /// Times are shown relative to the first SYN; events wait for it, and
    /// for the reorder window.
    first_syn: Option<Instant>,
    held: Vec<Held>,
    next_seq: u64,
    iss: Option<SeqNumber>,
    irs: Option<SeqNumber>,
    _server_port: u16,
    header_printed: bool,
    /// Follows the segments for comments and explanations.
    narrator: Narrator,
    /// The ladder's rows so far, in time order (when a ladder or a Mermaid
    /// diagram was asked for).
    rungs: Option<Vec<Rung>>,
    /// The server's state, inferred from the segments it sent and
    /// received.
    server: PeerModel,
    /// The server's FIN was held (crossing FINs): the client's next state
    /// changes are its taking it.
    held_fin: bool,
    /// When the last row that closed a side's teardown happened (the last
    /// ACK of the teardown, or a RST).
    teardown_done_at: Option<Instant>,
    /// The kernel state the text last said was ahead of the wire.
    kernel_ahead_told: Option<State>,
    ladder_printed: bool,
    /// The first failure of stdout; nothing is printed after it, the
    /// capture goes on.
    stdout_error: Option<io::Error>,
    extras: Extras,
}

/// An event waiting to be printed: when it happened, the order it arrived
/// in, and how to build it once its time relative to the first SYN is known.
struct Held {
    at: Instant,
    seq: u64,
    make: Box<dyn FnOnce(i64) -> LabEvent + Send>,
    rung: Option<Seed>,
}

/// A ladder row before its time is known; the server's column is settled
/// in time order, where "changed" can be told.
enum Seed {
    Arrow {
        way: Way,
        label: String,
        color: ladder::Color,
        /// None for frames that are not TCP.
        client: Option<Cell>,
        server: Option<Cell>,
        /// Shown beside the arrow: a loss on purpose, a retransmission.
        notes: Vec<String>,
    },
    Event {
        client_side: bool,
        text: String,
        client: Option<Cell>,
    },
}

/// What the ladder shows beside a segment's arrow, from the client's note
/// on it: the losses of `--drop` and the retransmissions, which the arrow
/// alone does not tell apart from the first copy.
fn ladder_notes(note: &Note) -> Vec<String> {
    let mut notes = Vec::new();
    match note.what {
        What::Sent(SendReason::GoBackN { .. }) => {
            notes.push("retransmission (go-back-N)".to_string());
        }
        What::Retransmission { .. }
        | What::Sent(SendReason::Retransmission { .. })
        | What::ServerRetransmission(_)
        | What::SeenAgain => notes.push("retransmission".to_string()),
        What::Sent(SendReason::WindowProbe { .. }) => {
            notes.push("zero-window probe".to_string());
        }
        _ => {}
    }
    if let Some(loss) = note.lost {
        let what = if loss.item.is_outgoing() {
            "lost"
        } else {
            "ignored once"
        };
        notes.push(format!("{what}: --drop {}", loss.item));
    }
    if note.what == What::AckFromTimeWait {
        notes.push("ACK again from TIME-WAIT".to_string());
    }
    notes
}

impl ReporterState {
    fn handle(&mut self, msg: Message) -> Result<(), ReportError> {
        match msg {
            Message::Frame {
                record,
                server_state,
            } => {
                let wall = record.wall;
                let bytes = record.bytes.clone();
                let comment = self.on_frame(record, server_state);
                self.recorder
                    .record(wall, &bytes, comment.as_deref())
                    .map_err(|e| self.capture_error(io::Error::other(e)))
            }
            Message::Server { at, event, state } => {
                let call = server::describe(&event, Voice::Lab, state);
                let rung = Seed::Event {
                    client_side: false,
                    text: call.clone(),
                    client: None,
                };
                self.emit_with(at, Some(rung), move |t_ns| LabEvent::App {
                    t_ns,
                    side: Side::Server,
                    call,
                    client: Vec::new(),
                    server: Vec::new(),
                    kernel_server_state: state,
                });
                Ok(())
            }
            Message::ClientCall { at, call } => {
                let text = client_call_text(call);
                let rung = Seed::Event {
                    client_side: true,
                    text: text.clone(),
                    client: None,
                };
                self.emit_with(at, Some(rung), move |t_ns| LabEvent::App {
                    t_ns,
                    side: Side::Client,
                    call: text,
                    client: Vec::new(),
                    server: Vec::new(),
                    kernel_server_state: None,
                });
                Ok(())
            }
            Message::Said { at, text } => {
                self.emit_at(at, move |t_ns| LabEvent::Note { t_ns, text });
                Ok(())
            }
            Message::StateChanged { at, changes } => {
                let what = match changes.first() {
                    Some((State::TimeWait, _)) => "time-wait-end",
                    _ => "rto",
                };
                let rung = changes.last().map(|(_, to)| Seed::Event {
                    client_side: true,
                    text: chain_text(&changes),
                    client: Some(Cell::changed(*to)),
                });
                self.emit_with(at, rung, move |t_ns| LabEvent::Timer {
                    t_ns,
                    side: Side::Client,
                    what,
                    client: changes,
                    server: Vec::new(),
                });
                Ok(())
            }
            Message::Note { at, text, changes } => {
                // Only a note that changed the client's state is a rung.
                let rung = changes.last().map(|(_, to)| Seed::Event {
                    client_side: true,
                    text: text.clone(),
                    client: Some(Cell::changed(*to)),
                });
                self.emit_with(at, rung, move |t_ns| LabEvent::Note {
                    t_ns,
                    text: format!("client {text}"),
                });
                Ok(())
            }
            Message::Options { at, lines } => {
                for line in lines {
                    self.emit_at(at, move |t_ns| LabEvent::Note {
                        t_ns,
                        text: format!("  agreed: {line}"),
                    });
                }
                Ok(())
            }
            Message::Event(mut event) => {
                self.print_ready(true);
                if let LabEvent::Summary(summary) = &mut event {
                    // A run with a cycle to time (not UDP, not refused)
                    // ends it at the last ACK of the teardown.
                    if let (Some(first), Some(done), Some(_)) =
                        (self.first_syn, self.teardown_done_at, summary.cycle_ns)
                    {
                        summary.cycle_ns = Some(nanos_between(done, first));
                    }
                    summary.server_final_state = self.server.state();
                    self.print_server_epilogue();
                    self.print_ladder()?;
                }
                self.print(&event);
                Ok(())
            }
        }
    }

    /// Narrates a frame; returns its pcapng comment when the capture keeps
    /// comments.
    fn on_frame(&mut self, record: FrameRecord, server_state: Option<State>) -> Option<String> {
        let FrameRecord { dir, at, kind, .. } = record;
        let comments = self.recorder.keeps_comments();
        match kind {
            FrameKind::Arp(arp) => {
                let text = match arp.op {
                    ArpOp::Request => format!("who has {}? tell {}", arp.target_ip, arp.sender_ip),
                    ArpOp::Reply => format!("{} is at {}", arp.sender_ip, arp.sender_mac),
                };
                let comment = comments.then(|| narrate::arp_comment(dir, arp.op, &text));
                let rung = Seed::Arrow {
                    way: way(dir),
                    label: format!("ARP {text}"),
                    color: ladder::Color::Other,
                    client: None,
                    server: None,
                    notes: Vec::new(),
                };
                self.emit_with(at, Some(rung), move |t_ns| LabEvent::Arp {
                    t_ns,
                    dir,
                    text,
                });
                comment
            }
            FrameKind::Ndp { ip, ndp } => {
                let text = narrate::ndp_text(&ip, &ndp);
                let comment = comments.then(|| narrate::ndp_comment(dir, &ndp, &text));
                let rung = Seed::Arrow {
                    way: way(dir),
                    // The ladder's arrows are short: NS/NA, as tshark's
                    // Info column abbreviates them.
                    label: format!(
                        "NDP {}",
                        text.replace("Neighbor Solicitation:", "NS")
                            .replace("Neighbor Advertisement:", "NA")
                    ),
                    color: ladder::Color::Other,
                    client: None,
                    server: None,
                    notes: Vec::new(),
                };
                self.emit_with(at, Some(rung), move |t_ns| LabEvent::Ndp {
                    t_ns,
                    dir,
                    text,
                });
                comment
            }
            FrameKind::Segment {
                segment,
                checksums_ok,
                changes,
                state_after,
                note,
            } => {
                if dir == Direction::ClientToServer && segment.flags.syn() && !segment.flags.ack() {
                    // A SYN with a new ISN opens a new connection (the
                    // benchmark runs many): numbers and the narration's
                    // memory start again. A retransmitted SYN keeps its ISN.
                    if self.iss != Some(segment.seq) {
                        self.iss = Some(segment.seq);
                        self.irs = None;
                        self.narrator = Narrator::new();
                    }
                    self.first_syn.get_or_insert(at);
                }
                if dir == Direction::ServerToClient && segment.flags.syn() {
                    self.irs.get_or_insert(segment.seq);
                }
                let (own, other) = match dir {
                    Direction::ClientToServer => (self.iss, self.irs),
                    Direction::ServerToClient => (self.irs, self.iss),
                };
                let rel =
                    |n: SeqNumber, base: Option<SeqNumber>| base.map_or(0, |b| n.relative_to(b));
                let lost = note.lost.is_some();
                let held = note.what == What::FinHeld;
                let delivered = !lost && !held;
                let mut client = changes;
                let (server, server_again) = match dir {
                    Direction::ClientToServer if delivered => {
                        (self.server.received(&segment), false)
                    }
                    Direction::ClientToServer => (Vec::new(), false),
                    Direction::ServerToClient => {
                        let sent = self.server.sent(&segment);
                        (sent.changes, sent.retransmission)
                    }
                };
                if dir == Direction::ClientToServer
                    && self.held_fin
                    && !segment.flags.fin()
                    && !client.is_empty()
                {
                    // The client takes the server's held FIN now: its
                    // changes are that, not this ACK's.
                    self.held_fin = false;
                    let taken = std::mem::take(&mut client);
                    self.emit_at(at, move |t_ns| LabEvent::Process {
                        t_ns,
                        client: taken,
                        server: Vec::new(),
                    });
                }
                if held {
                    self.held_fin = true;
                }
                let closes = |c: &[(State, State)]| {
                    c.iter()
                        .any(|(_, to)| matches!(to, State::Closed | State::TimeWait))
                };
                if closes(&client) || closes(&server) {
                    self.teardown_done_at = Some(at);
                }
                let retransmission = server_again || is_retransmission(&note);
                let ahead = report::kernel_ahead(self.server.state(), server_state);
                let tell_kernel_ahead = ahead.is_some() && self.kernel_ahead_told != server_state;
                if tell_kernel_ahead {
                    self.kernel_ahead_told = server_state;
                }
                let line = SegmentLine {
                    t_ns: 0,
                    dir,
                    flags: segment.flags,
                    seq: segment.seq.0,
                    seq_rel: rel(segment.seq, own),
                    ack: segment.ack_number().map(|a| a.0),
                    ack_rel: segment.ack_number().map(|a| rel(a, other)),
                    len: segment.payload.len(),
                    win: segment.window,
                    options: segment.options,
                    delivered,
                    held,
                    retransmission,
                    client,
                    server,
                    client_state: state_after,
                    server_state: self.server.state(),
                    kernel_server_state: server_state,
                    tell_kernel_ahead,
                    note,
                    checksums_ok,
                };
                let ctx = self.narrator.step(&line);
                let comment = comments.then(|| narrate::comment(&line, &ctx));
                let explanation = self.extras.explain.then(|| narrate::explain(&line, &ctx));
                let rung = Seed::Arrow {
                    way: way(dir),
                    label: ladder::segment_label(
                        line.flags,
                        line.seq_rel,
                        line.ack_rel,
                        line.len as u32,
                        line.win,
                    ),
                    color: ladder::Color::for_flags(line.flags),
                    client: Some(Cell {
                        state: line.client_state,
                        changed: !line.client.is_empty(),
                    }),
                    server: line.server_state.map(|state| Cell {
                        state,
                        changed: !line.server.is_empty(),
                    }),
                    notes: ladder_notes(&line.note),
                };
                let flags = line.flags;
                self.emit_with(at, Some(rung), move |t_ns| {
                    LabEvent::Segment(SegmentLine { t_ns, ..line })
                });
                if let Some(exp) = explanation {
                    self.emit_at(at, move |t_ns| LabEvent::Explain {
                        t_ns,
                        dir,
                        flags: Some(flags),
                        text: exp.text,
                        rfc9293: exp.sections,
                    });
                }
                comment
            }
            FrameKind::Datagram {
                datagram,
                checksums_ok,
                number,
            } => {
                if dir == Direction::ClientToServer {
                    // No SYN over UDP: times count from the first datagram.
                    self.first_syn.get_or_insert(at);
                }
                let line = DatagramLine {
                    t_ns: 0,
                    dir,
                    src_port: datagram.src_port,
                    dst_port: datagram.dst_port,
                    number,
                    len: datagram.payload.len(),
                    text: String::from_utf8_lossy(&datagram.payload).into_owned(),
                    checksums_ok,
                };
                let comment = comments.then(|| narrate::datagram_comment(&line));
                let explanation = self
                    .extras
                    .explain
                    .then(|| narrate::datagram_explain(&line));
                let rung = Seed::Arrow {
                    way: way(dir),
                    label: format!("[UDP] #{number} len={}", line.len),
                    color: ladder::Color::Plain,
                    client: None,
                    server: None,
                    notes: Vec::new(),
                };
                self.emit_with(at, Some(rung), move |t_ns| {
                    LabEvent::Datagram(DatagramLine { t_ns, ..line })
                });
                if let Some(exp) = explanation {
                    self.emit_at(at, move |t_ns| LabEvent::Explain {
                        t_ns,
                        dir,
                        flags: None,
                        text: exp.text,
                        rfc9293: exp.sections,
                    });
                }
                comment
            }
            FrameKind::Noise => None,
        }
    }

    fn emit_at(&mut self, at: Instant, make: impl FnOnce(i64) -> LabEvent + Send + 'static) {
        self.emit_with(at, None, make);
    }

    /// Holds an event (and its ladder row) until the reorder window passed.
    fn emit_with(
        &mut self,
        at: Instant,
        rung: Option<Seed>,
        make: impl FnOnce(i64) -> LabEvent + Send + 'static,
    ) {
        self.held.push(Held {
            at,
            seq: self.next_seq,
            make: Box::new(make),
            rung: if self.rungs.is_some() { rung } else { None },
        });
        self.next_seq += 1;
    }

    /// Turns a held row into a ladder rung, in time order.
    fn add_rung(&mut self, t_us: f64, seed: Seed) {
        let Some(rungs) = self.rungs.as_mut() else {
            return;
        };
        let rung = match seed {
            Seed::Arrow {
                way,
                label,
                color,
                client,
                server,
                notes,
            } => Rung {
                t_us,
                middle: Middle::Arrow { way, label, color },
                client,
                server,
                notes,
            },
            Seed::Event {
                client_side,
                text,
                client,
            } => Rung {
                t_us,
                middle: Middle::Event { client_side, text },
                client,
                server: None,
                notes: Vec::new(),
            },
        };
        rungs.push(rung);
    }

    /// The server's story when the run ends before it does: its kernel
    /// holds TIME-WAIT for 60 s after it closed first.
    fn print_server_epilogue(&mut self) {
        if self.server.state() != Some(State::TimeWait) {
            return;
        }
        let t_ns = self
            .first_syn
            .map_or(0, |first| signed_nanos(Instant::now(), first));
        self.print(&LabEvent::Note {
            t_ns,
            text: "server: its kernel holds TIME-WAIT 60 s (2·MSL, Linux's TCP_TIMEWAIT_LEN), \
                   past the end of this run"
                .to_string(),
        });
    }

    /// Prints the ladder (once), and writes the Mermaid diagram.
    fn print_ladder(&mut self) -> Result<(), ReportError> {
        if self.ladder_printed {
            return Ok(());
        }
        self.ladder_printed = true;
        let Some(rungs) = self.rungs.take() else {
            return Ok(());
        };
        let server_initial = self.extras.server_initial;
        if let Some((path, mut file)) = self.extras.mermaid.take() {
            let text = ladder::mermaid(self.extras.client_initial, server_initial, &rungs);
            file.write_all(text.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|source| ReportError::File { path, source })?;
        }
        if self.extras.ladder {
            let text = ladder::render(
                self.extras.client_initial,
                server_initial,
                &rungs,
                self.extras.color,
            );
            self.print(&LabEvent::Ladder { text });
        }
        Ok(())
    }

    /// Prints, in time order, the held events older than the reorder window
    /// (all of them with `all`). Nothing is printed before the first SYN is
    /// known, unless `all`.
    fn print_ready(&mut self, all: bool) {
        if self.held.is_empty() {
            return;
        }
        let base = match (self.first_syn, all) {
            (Some(base), _) => base,
            (None, true) => self
                .held
                .iter()
                .map(|h| h.at)
                .min()
                .unwrap_or_else(Instant::now),
            (None, false) => return,
        };
        self.held.sort_by_key(|h| (h.at, h.seq));
        let cutoff = Instant::now().checked_sub(REORDER_WINDOW);
        let ready = if all {
            self.held.len()
        } else {
            self.held
                .iter()
                .take_while(|h| cutoff.is_some_and(|c| h.at <= c))
                .count()
        };
        for held in self.held.drain(..ready).collect::<Vec<_>>() {
            let t_ns = signed_nanos(held.at, base);
            if let Some(seed) = held.rung {
                self.add_rung(t_ns as f64 / 1e3, seed);
            }
            let event = (held.make)(t_ns);
            self.print(&event);
        }
    }

    /// Prints one event. After stdout first fails nothing more is printed
    /// (the failure is reported at the end), and the capture goes on: the
    /// pcap is the run's record, and a full disk under the narration or a
    /// closed pipe (`| head`) must not cut it short.
    fn print(&mut self, event: &LabEvent) {
        if self.stdout_error.is_some() {
            return;
        }
        if let Err(e) = self.write_event(event) {
            self.stdout_error = Some(e);
        }
    }

    fn write_event(&mut self, event: &LabEvent) -> io::Result<()> {
        match self.output {
            Output::Json => writeln!(self.out, "{}", report::format_json(event)),
            // Quiet: the summary, and what was asked for by name.
            Output::Quiet => match event {
                LabEvent::Summary(_) | LabEvent::Ladder { .. } => {
                    writeln!(self.out, "{}", report::format_text(event, Style::default()))
                }
                LabEvent::Explain { .. } => match report::format_explain_alone(event) {
                    Some(line) => writeln!(self.out, "{line}"),
                    None => Ok(()),
                },
                _ => Ok(()),
            },
            Output::Text(style) => {
                let is_frame = matches!(
                    event,
                    LabEvent::Segment(_)
                        | LabEvent::Datagram(_)
                        | LabEvent::Arp { .. }
                        | LabEvent::App { .. }
                        | LabEvent::Ndp { .. }
                );
                if is_frame && !self.header_printed {
                    self.header_printed = true;
                    writeln!(self.out, "{}", report::header())?;
                }
                writeln!(self.out, "{}", report::format_text(event, style))
            }
        }
    }

    /// A failure of the capture file.
    fn capture_error(&self, source: io::Error) -> ReportError {
        ReportError::File {
            path: self.extras.capture_path.clone(),
            source,
        }
    }

    fn flush_capture(&mut self) -> Result<(), ReportError> {
        self.recorder.flush().map_err(|e| self.capture_error(e))
    }

    fn finish(mut self) -> Result<(), ReportError> {
        self.print_ready(true);
        // A run that failed has no summary: the ladder shows how far it got.
        self.print_ladder()?;
        let flushed = self.recorder.into_inner().flush();
        flushed.map_err(|source| ReportError::File {
            path: self.extras.capture_path.clone(),
            source,
        })?;
        if self.stdout_error.is_none() {
            if let Err(e) = self.out.flush() {
                self.stdout_error = Some(e);
            }
        }
        match self.stdout_error {
            Some(e) => Err(ReportError::Stdout(e)),
            None => Ok(()),
        }
    }
}

fn way(dir: Direction) -> Way {
    match dir {
        Direction::ClientToServer => Way::ClientToServer,
        Direction::ServerToClient => Way::ServerToClient,
    }
}

fn signed_nanos(at: Instant, base: Instant) -> i64 {
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    if at >= base {
        ns(at - base)
    } else {
        -ns(base - at)
    }
}

fn nanos_between(later: Instant, earlier: Instant) -> u64 {
    u64::try_from(later.saturating_duration_since(earlier).as_nanos()).unwrap_or(u64::MAX)
}

/// `A → B → C`.
fn chain_text(changes: &[(State, State)]) -> String {
    let mut text = changes
        .first()
        .map(|(from, _)| from.to_string())
        .unwrap_or_default();
    for (_, to) in changes {
        text.push_str(&format!(" → {to}"));
    }
    text
}

/// The client's socket call as the narration words it.
fn client_call_text(call: ClientCall) -> String {
    match call {
        ClientCall::Connect => "connect()".to_string(),
        ClientCall::Send(len) => format!("send() {len} bytes"),
        ClientCall::Close => "close()".to_string(),
        ClientCall::ShutdownWrite => "shutdown(SHUT_WR): FIN, and keep reading".to_string(),
        ClientCall::Abort => "close() with SO_LINGER 0: abort".to_string(),
    }
}

/// The client's note says it sent, or the server's kernel sent, sequence
/// space again.
fn is_retransmission(note: &Note) -> bool {
    matches!(
        note.what,
        What::Retransmission { .. }
            | What::Sent(SendReason::Retransmission { .. } | SendReason::GoBackN { .. })
            | What::ServerRetransmission(_)
            | What::SeenAgain
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::faults::{DropItem, ServerRetransmission};
    use crate::client::Loss;

    #[test]
    fn the_ladder_marks_losses_and_retransmissions() {
        let ms = Duration::from_millis;
        let lost = |item, what| Note {
            what,
            lost: Some(Loss {
                item,
                rto: ms(1000),
            }),
        };
        assert!(ladder_notes(&Note::default()).is_empty());
        assert!(ladder_notes(&Note::new(What::Sent(SendReason::Data))).is_empty());
        assert_eq!(
            ladder_notes(&lost(DropItem::Fin, What::Sent(SendReason::Fin))),
            ["lost: --drop fin"]
        );
        let again = What::Retransmission {
            attempt: 1,
            rto: ms(2000),
        };
        assert_eq!(
            ladder_notes(&lost(DropItem::Syn, again)),
            ["retransmission", "lost: --drop syn"]
        );
        assert_eq!(
            ladder_notes(&lost(DropItem::SynAck, What::Nothing)),
            ["ignored once: --drop synack"]
        );
        let synack_again = ServerRetransmission::Of {
            item: DropItem::SynAck,
            after: ms(1003),
        };
        assert_eq!(
            ladder_notes(&Note::new(What::ServerRetransmission(synack_again))),
            ["retransmission"]
        );
        assert_eq!(
            ladder_notes(&Note::new(What::AckFromTimeWait)),
            ["ACK again from TIME-WAIT"]
        );
    }
}
