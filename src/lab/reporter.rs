//! The lab's reporter thread: it takes every frame and server call from a
//! channel, writes the pcap and prints the narration, so none of that runs
//! on the client's hot path.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::capture::writer::PcapRecorder;
use crate::net::server::ServerEvent;
use crate::report::{self, DatagramLine, Direction, LabEvent, SegmentLine, Style};
use crate::tcp::State;
use crate::wire::{ArpOp, SeqNumber};

use super::client::{FrameKind, FrameRecord};

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

pub struct Reporter {
    thread: JoinHandle<io::Result<()>>,
}

impl Reporter {
    /// Starts the thread. The pcap file header is written at once.
    ///
    /// # Errors
    /// Writing the pcap header, or starting the thread.
    pub fn spawn(
        rx: Receiver<Message>,
        pcap: BufWriter<File>,
        output: Output,
        server_port: u16,
    ) -> io::Result<Reporter> {
        let recorder = PcapRecorder::new(pcap).map_err(io::Error::other)?;
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
                };
                loop {
                    match rx.recv_timeout(REORDER_WINDOW) {
                        Ok(msg) => state.handle(msg)?,
                        // Idle: put what was captured on disk, so even a
                        // killed run leaves a readable pcap.
                        Err(RecvTimeoutError::Timeout) => state.flush_capture()?,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    state.print_ready(false)?;
                }
                state.finish()
            })?;
        Ok(Reporter { thread })
    }

    /// Waits until every message was handled, the pcap flushed and the
    /// narration printed.
    ///
    /// # Errors
    /// Writing the pcap or stdout.
    pub fn finish(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reporter thread panicked")))
    }
}

struct ReporterState {
    recorder: PcapRecorder<BufWriter<File>>,
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
}

/// An event waiting to be printed: when it happened, the order it arrived
/// in, and how to build it once its time relative to the first SYN is known.
struct Held {
    at: Instant,
    seq: u64,
    make: Box<dyn FnOnce(f64) -> LabEvent + Send>,
}

impl ReporterState {
    fn handle(&mut self, msg: Message) -> io::Result<()> {
        match msg {
            Message::Frame {
                record,
                server_state,
            } => {
                self.recorder
                    .record(record.wall, &record.bytes)
                    .map_err(io::Error::other)?;
                self.on_frame(record, server_state)
            }
            Message::Server { at, event, state } => {
                let call = describe_server_call(&event);
                self.emit_at(at, move |t_us| LabEvent::Server {
                    t_us,
                    call,
                    server_state: state,
                })
            }
            Message::Note { at, text, changes } => {
                let _ = changes;
                self.emit_at(at, move |t_us| LabEvent::Note {
                    t_us,
                    text: format!("client {text}"),
                })
            }
            Message::Options { at, lines } => {
                for line in lines {
                    self.emit_at(at, move |t_us| LabEvent::Note {
                        t_us,
                        text: format!("  agreed: {line}"),
                    })?;
                }
                Ok(())
            }
            Message::Event(event) => {
                self.print_ready(true)?;
                self.print(&event)
            }
        }
    }

    fn on_frame(&mut self, record: FrameRecord, server_state: Option<State>) -> io::Result<()> {
        let FrameRecord { dir, at, kind, .. } = record;
        match kind {
            FrameKind::Arp(arp) => {
                let text = match arp.op {
                    ArpOp::Request => format!("who has {}? tell {}", arp.target_ip, arp.sender_ip),
                    ArpOp::Reply => format!("{} is at {}", arp.sender_ip, arp.sender_mac),
                };
                self.emit_at(at, move |t_us| LabEvent::Arp { t_us, dir, text })
            }
            FrameKind::Segment {
                segment,
                checksums_ok,
                changes,
                state_after,
                note,
            } => {
                if dir == Direction::ClientToServer && segment.flags.syn() && !segment.flags.ack() {
                    self.iss.get_or_insert(segment.seq);
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
                let line = SegmentLine {
                    t_us: 0.0,
                    dir,
                    flags: segment.flags,
                    seq: segment.seq.0,
                    seq_rel: rel(segment.seq, own),
                    ack: segment.ack_number().map(|a| a.0),
                    ack_rel: segment.ack_number().map(|a| rel(a, other)),
                    len: segment.payload.len(),
                    win: segment.window,
                    options: segment.options,
                    client: changes,
                    client_state: state_after,
                    server_state,
                    note,
                    checksums_ok,
                };
                self.emit_at(at, move |t_us| {
                    LabEvent::Segment(SegmentLine { t_us, ..line })
                })
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
                    t_us: 0.0,
                    dir,
                    src_port: datagram.src_port,
                    dst_port: datagram.dst_port,
                    number,
                    len: datagram.payload.len(),
                    text: String::from_utf8_lossy(&datagram.payload).into_owned(),
                    checksums_ok,
                };
                self.emit_at(at, move |t_us| {
                    LabEvent::Datagram(DatagramLine { t_us, ..line })
                })
            }
            FrameKind::Noise => Ok(()),
        }
    }

    fn emit_at(
        &mut self,
        at: Instant,
        make: impl FnOnce(f64) -> LabEvent + Send + 'static,
    ) -> io::Result<()> {
        self.held.push(Held {
            at,
            seq: self.next_seq,
            make: Box::new(make),
        });
        self.next_seq += 1;
        Ok(())
    }

    /// Prints, in time order, the held events older than the reorder window
    /// (all of them with `all`). Nothing is printed before the first SYN is
    /// known, unless `all`.
    fn print_ready(&mut self, all: bool) -> io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let base = match (self.first_syn, all) {
            (Some(base), _) => base,
            (None, true) => self
                .held
                .iter()
                .map(|h| h.at)
                .min()
                .unwrap_or_else(Instant::now),
            (None, false) => return Ok(()),
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
            let event = (held.make)(signed_micros(held.at, base));
            self.print(&event)?;
        }
        Ok(())
    }

    fn print(&mut self, event: &LabEvent) -> io::Result<()> {
        match self.output {
            Output::Json => writeln!(self.out, "{}", report::format_json(event)),
            Output::Quiet => match event {
                LabEvent::Summary(_) => {
                    writeln!(self.out, "{}", report::format_text(event, Style::default()))
                }
                _ => Ok(()),
            },
            Output::Text(style) => {
                let is_frame = matches!(
                    event,
                    LabEvent::Segment(_)
                        | LabEvent::Datagram(_)
                        | LabEvent::Arp { .. }
                        | LabEvent::Server { .. }
                );
                if is_frame && !self.header_printed {
                    self.header_printed = true;
                    writeln!(self.out, "{}", report::header())?;
                }
                writeln!(self.out, "{}", report::format_text(event, style))
            }
        }
    }

    fn flush_capture(&mut self) -> io::Result<()> {
        self.recorder.flush()
    }

    fn finish(mut self) -> io::Result<()> {
        self.print_ready(true)?;
        self.out.flush()?;
        self.recorder.into_inner().flush()
    }
}

fn signed_micros(at: Instant, base: Instant) -> f64 {
    if at >= base {
        (at - base).as_secs_f64() * 1e6
    } else {
        -((base - at).as_secs_f64() * 1e6)
    }
}

/// The server's socket call as the tutorial code would print it.
fn describe_server_call(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Accepted { peer } => format!("accept() → {peer}"),
        ServerEvent::Received { data } if data.is_empty() => {
            "recv() → 0 bytes: EOF, the client closed".into()
        }
        ServerEvent::Received { data } => format!(
            "recv() → {} bytes {:?}",
            data.len(),
            String::from_utf8_lossy(data)
        ),
        ServerEvent::Sent { len } => format!("sendall() {len} bytes"),
        ServerEvent::Waited {
            queued,
            expected,
            writes,
        } if queued >= expected => format!(
            "busy until the client's {writes} writes ({queued} bytes) had all arrived (it \
             looked with recv(MSG_PEEK)), as a slow server is"
        ),
        ServerEvent::Waited {
            queued, expected, ..
        } => {
            format!("stopped waiting with {queued} of the {expected} bytes queued (EOF or time up)")
        }
        ServerEvent::Sticky { writes, len } => format!(
            "{writes} writes, 1 read of {len} bytes: TCP is a byte stream and keeps no \
             message boundaries (\"sticky packets\", 粘包)"
        ),
        ServerEvent::Message { body, framing } => format!(
            "{} message: {} bytes {:?}",
            framing.name(),
            body.len(),
            String::from_utf8_lossy(body)
        ),
        ServerEvent::Datagram { data, peer } => format!(
            "recvfrom() → {} bytes {:?} from {peer}: one datagram, boundaries kept",
            data.len(),
            String::from_utf8_lossy(data)
        ),
        ServerEvent::SentTo { len, peer } => format!("sendto() {len} bytes to {peer}"),
        ServerEvent::QuickAck => "setsockopt(TCP_QUICKACK): ACK the FIN at once".into(),
        ServerEvent::Closed => "close()".into(),
        ServerEvent::Aborted => {
            "setsockopt(SO_LINGER, 0) and close(): the kernel sends RST, not FIN".into()
        }
        ServerEvent::Failed { call, error } => format!("{call}() failed: {error}"),
    }
}
