//! One run of the client engine as `synack lab` and `synack connect` both
//! narrate it: the output files (opened first, removed again when a run
//! fails before it recorded anything), the capture writer, the
//! [`reporter`] thread that prints and writes off the client's hot path,
//! the observer that feeds it, the summary, and how a failed run ends
//! (exit status, files kept or not).
//!
//! What differs between the two commands stays with them: the lab's
//! namespace and server, connect's route and RST guard.

pub mod reporter;

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::writer::{CaptureWriter, Format, Interface};
use crate::client::{ClientCall, ClientError, FrameKind, FrameRecord, Observer, Outcome};
use crate::net::outfile::{self, OutFileError, Receipt};
use crate::net::sockinfo::SockDiag;
use crate::report::{LabEvent, Summary};
use crate::tcp::State;

use reporter::{Extras, Reporter};
pub use reporter::{Message, Output, ReportError};

/// What a run narrates besides its lines of text.
#[derive(Clone, Debug, Default)]
pub struct Narration {
    /// Write the capture as pcapng, with a comment on every frame (also
    /// chosen by a `.pcapng` file name).
    pub pcapng: bool,
    /// Print a ladder diagram at the end.
    pub ladder: bool,
    /// Write the run as a Mermaid sequence diagram into this file.
    pub mermaid: Option<PathBuf>,
    /// A sentence with its RFC 9293 section after each segment.
    pub explain: bool,
    /// Colours in the ladder.
    pub color: bool,
}

/// Why the session's own parts failed: an output file, the capture, the
/// reporter. The messages name what failed; the operating system's reason
/// is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Opening an output file (`-w`, `--mermaid`, `--server-side`).
    #[error(transparent)]
    Output(#[from] OutFileError),
    #[error("writing {}", path.display())]
    Pcap {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the narration or the files of the reporter.
    #[error(transparent)]
    Reporter(#[from] ReportError),
    #[error(transparent)]
    Report(io::Error),
}

/// How a failed run of `lab` or `connect` ends: its exit status, and
/// whether the files it created stay.
pub trait RunFailure {
    /// The client's error, when the client is what failed.
    fn client(&self) -> Option<&ClientError>;
    /// The session's error, when its files or its reporter failed.
    fn session(&self) -> Option<&SessionError>;

    /// The connection itself failed (exit status 1), as opposed to synack
    /// not being able to run (exit status 2).
    fn is_connection_failure(&self) -> bool {
        self.client()
            .is_some_and(ClientError::is_connection_failure)
    }

    /// A signal stopped the run (exit status 130).
    fn is_interrupted(&self) -> bool {
        matches!(self.client(), Some(ClientError::Interrupted { .. }))
    }

    /// Only stdout failed: the capture holds the whole run.
    fn is_stdout(&self) -> bool {
        matches!(
            self.session(),
            Some(SessionError::Reporter(ReportError::Stdout(_)))
        )
    }

    /// The run leaves no record worth keeping: the output files it created
    /// go again. A connection that failed (exit 1), an interrupted run
    /// (130) and a failed stdout keep their capture.
    fn discards_outputs(&self) -> bool {
        !(self.is_connection_failure() || self.is_interrupted() || self.is_stdout())
    }
}

/// Implements [`RunFailure`] for a command's error enum whose
/// `Client(ClientError)` and `Session(SessionError)` variants carry the
/// engine's and the session's errors.
macro_rules! run_failure {
    ($error:ident) => {
        impl $crate::session::RunFailure for $error {
            fn client(&self) -> Option<&$crate::client::ClientError> {
                match self {
                    $error::Client(e) => Some(e),
                    _ => None,
                }
            }

            fn session(&self) -> Option<&$crate::session::SessionError> {
                match self {
                    $error::Session(e) => Some(e),
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use run_failure;

/// The output files of a run, opened (as the user who ran sudo, when sudo
/// did) before anything runs: `-w`, `--mermaid`, and any of the command's
/// own.
pub struct Outputs {
    pub capture: File,
    pub mermaid: Option<File>,
    /// The command's own files, in the order asked.
    pub more: Vec<File>,
    receipts: Vec<Receipt>,
}

impl Outputs {
    /// Opens `pcap` (`-w`), then `more`, then `--mermaid` when asked.
    ///
    /// # Errors
    /// A file that cannot be created or written; none is left behind.
    pub fn open(
        pcap: &Path,
        narration: &Narration,
        more: &[(&'static str, &Path)],
    ) -> Result<Outputs, SessionError> {
        let mut wanted: Vec<(&'static str, &Path)> = vec![("-w", pcap)];
        wanted.extend_from_slice(more);
        if let Some(path) = &narration.mermaid {
            wanted.push(("--mermaid", path));
        }
        let (files, receipts): (Vec<File>, Vec<Receipt>) = outfile::create_all(&wanted)?
            .into_iter()
            .map(|f| (f.file, f.receipt))
            .unzip();
        let mut files = files.into_iter();
        let missing = |flag: &str| {
            SessionError::Report(io::Error::other(format!("no file opened for {flag}")))
        };
        let capture = files.next().ok_or_else(|| missing("-w"))?;
        let more: Vec<File> = files.by_ref().take(more.len()).collect();
        let mermaid = match &narration.mermaid {
            Some(_) => Some(files.next().ok_or_else(|| missing("--mermaid"))?),
            None => None,
        };
        Ok(Outputs {
            capture,
            mermaid,
            more,
            receipts,
        })
    }
}

/// Runs `run` with the opened files; when it fails in a way that leaves no
/// record worth keeping, removes the files it created.
///
/// # Errors
/// Whatever `run` returned.
pub fn keeping_outputs<T, E: RunFailure>(
    mut outputs: Outputs,
    run: impl FnOnce(Outputs) -> Result<T, E>,
) -> Result<T, E> {
    let receipts = std::mem::take(&mut outputs.receipts);
    let result = run(outputs);
    if let Err(err) = &result {
        if err.discards_outputs() {
            for receipt in &receipts {
                match receipt.remove_created() {
                    Ok(true) => log::info!("removed {}", receipt.path().display()),
                    Ok(false) => {}
                    Err(e) => log::warn!("{e}"),
                }
            }
        }
    }
    result
}

/// What the reporter needs to know before the first frame.
pub struct Setup<'a> {
    /// `-w`'s path (its format follows the name, or `narration.pcapng`).
    pub pcap: &'a Path,
    pub narration: &'a Narration,
    pub output: Output,
    /// The interface the capture names.
    pub iface: Interface,
    pub server_port: u16,
    /// The client's state before the first frame (CLOSED; none over UDP).
    pub client_initial: Option<State>,
    /// The server's state before the first frame, when known (LISTEN, or
    /// CLOSED when nothing listens).
    pub server_initial: Option<State>,
}

/// A run being narrated: the capture writer and the reporter thread, and
/// the channel to it.
pub struct Session {
    tx: Sender<Message>,
    reporter: Reporter,
    pcap: PathBuf,
}

impl Session {
    /// Writes the capture's file header and starts the reporter thread.
    ///
    /// # Errors
    /// Writing the capture header, or starting the thread.
    pub fn start(
        capture: File,
        mermaid: Option<File>,
        setup: Setup<'_>,
    ) -> Result<Session, SessionError> {
        let writer = capture_writer(capture, setup.pcap, setup.narration.pcapng, &setup.iface)?;
        let narration = setup.narration;
        let extras = Extras {
            explain: narration.explain,
            ladder: narration.ladder,
            mermaid: mermaid
                .zip(narration.mermaid.clone())
                .map(|(file, path)| (path, BufWriter::new(file))),
            color: narration.color,
            client_initial: setup.client_initial,
            server_initial: setup.server_initial,
            capture_path: setup.pcap.to_path_buf(),
        };
        let (tx, rx) = mpsc::channel::<Message>();
        let reporter = Reporter::spawn(rx, writer, setup.output, setup.server_port, extras)
            .map_err(SessionError::Report)?;
        Ok(Session {
            tx,
            reporter,
            pcap: setup.pcap.to_path_buf(),
        })
    }

    /// A sender for the reporter (the server's thread, the observer).
    pub fn sender(&self) -> Sender<Message> {
        self.tx.clone()
    }

    pub fn send(&self, msg: Message) {
        // The reporter lives until every sender is dropped.
        let _ = self.tx.send(msg);
    }

    /// An observer that forwards every frame, with the server's kernel
    /// state when `view` is given.
    pub fn forwarder(&self, interrupted: Arc<AtomicBool>, view: Option<KernelView>) -> Forwarder {
        Forwarder {
            tx: self.sender(),
            interrupted,
            view,
            held: Vec::new(),
            hold: None,
        }
    }

    /// The run failed: flushes the capture and the narration so far (a
    /// failure there is only logged), before the error is reported.
    pub fn abandon(self) {
        drop(self.tx);
        if let Err(e) = self.reporter.finish() {
            log::warn!("finishing the capture: {e}");
        }
    }

    /// The summary of a completed exchange: what the client measured.
    pub fn summary(&self, outcome: &Outcome, time_wait: Duration, refused: bool) -> Summary {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Summary {
            handshake_rtt_ns: outcome.handshake_rtt.map(nanos),
            // The reporter sets the time of the last ACK of the teardown;
            // the client's last segment stands in until then.
            cycle_ns: outcome
                .first_syn_at
                .zip(outcome.last_sent_at)
                .map(|(first, last)| nanos(last - first)),
            bytes_c2s: outcome.bytes_sent,
            bytes_s2c: outcome.bytes_received,
            frames: outcome.frames,
            retransmissions: outcome.retransmissions,
            server_retransmissions: outcome.server_retransmissions,
            dropped: outcome.dropped,
            final_state: outcome.final_state,
            time_wait_ms: if outcome.time_wait_entered {
                time_wait.as_millis() as u64
            } else {
                0
            },
            time_wait_entered: outcome.time_wait_entered,
            refused,
            server_final_state: None,
            pcap: self.pcap.display().to_string(),
        }
    }

    /// Prints `summary` last (after the ladder) and waits for the reporter
    /// to write everything.
    ///
    /// # Errors
    /// Writing the capture, the Mermaid file, or stdout.
    pub fn finish(self, summary: Summary) -> Result<Summary, SessionError> {
        self.send(Message::Event(LabEvent::Summary(summary.clone())));
        self.close()?;
        Ok(summary)
    }

    /// Waits for the reporter to write everything, with no summary.
    ///
    /// # Errors
    /// As [`Session::finish`].
    pub fn close(self) -> Result<(), SessionError> {
        drop(self.tx);
        self.reporter.finish()?;
        Ok(())
    }
}

/// Starts a capture (pcap, or pcapng with a comment per frame) in its
/// opened file: writes the file header.
///
/// # Errors
/// Writing the header.
pub fn capture_writer(
    file: File,
    path: &Path,
    pcapng: bool,
    iface: &Interface,
) -> Result<CaptureWriter<BufWriter<File>>, SessionError> {
    CaptureWriter::new(BufWriter::new(file), Format::for_path(path, pcapng), iface).map_err(|e| {
        SessionError::Pcap {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        }
    })
}

/// The kernel's view of the server's socket (sock_diag, what `ss -tan`
/// reads), looked up for every segment: the only place where the
/// half-open connection, a request socket in SYN-RECV, is visible. It
/// costs tens of microseconds before the client answers a segment, so
/// quiet runs and benchmarks go without.
pub struct KernelView {
    pub diag: SockDiag,
    pub server: SocketAddr,
    pub client: SocketAddr,
    /// The server's state before its socket for this connection exists:
    /// LISTEN when a server listens, CLOSED when none does, unknown (a
    /// server of the user's elsewhere).
    pub before: Option<State>,
    synchronized: bool,
}

impl KernelView {
    pub fn new(
        diag: SockDiag,
        server: SocketAddr,
        client: SocketAddr,
        before: Option<State>,
    ) -> KernelView {
        KernelView {
            diag,
            server,
            client,
            before,
            synchronized: false,
        }
    }

    fn server_state(&mut self) -> Option<State> {
        match self.diag.lookup(self.server, self.client).ok()? {
            Some(sock) => {
                self.synchronized = true;
                Some(sock.state)
            }
            // Gone after the handshake: the kernel deleted it (CLOSED).
            None if self.synchronized => Some(State::Closed),
            // Not there yet: only the listener is, if any.
            None => self.before,
        }
    }
}

/// Forwards every frame to the reporter thread, with the server socket's
/// state when a [`KernelView`] is open: asked before the client answers a
/// received segment and right after it sent one, so the state is the one
/// that segment left.
pub struct Forwarder {
    tx: Sender<Message>,
    interrupted: Arc<AtomicBool>,
    view: Option<KernelView>,
    /// Messages not sent yet (see [`Forwarder::holding`]).
    held: Vec<Message>,
    hold: Option<usize>,
}

impl Forwarder {
    /// Holds the messages back while the client is busy, and sends them
    /// when it waits for a frame ([`Observer::idle`]) and `at_least` are
    /// held, or when the forwarder is dropped: waking the reporter thread
    /// costs the client a system call, and on a busy machine the reporter
    /// then takes the CPU the client or its server needs. The reporter
    /// sees the same messages in the same order, later; use it only where
    /// nothing else sends to the reporter during the run (`connect`).
    pub fn holding(mut self, at_least: usize) -> Forwarder {
        self.hold = Some(at_least.max(1));
        self
    }

    /// Sends a message of the command's own to the reporter.
    pub fn send(&mut self, msg: Message) {
        if self.hold.is_some() {
            self.held.push(msg);
        } else {
            let _ = self.tx.send(msg);
        }
    }

    /// Sends what is held.
    fn flush(&mut self) {
        for msg in self.held.drain(..) {
            let _ = self.tx.send(msg);
        }
    }

    /// The client's application made a socket call.
    pub fn call(&mut self, at: Instant, call: ClientCall) {
        self.send(Message::ClientCall { at, call });
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Observer for Forwarder {
    fn frame(&mut self, record: FrameRecord) {
        let server_state = match (&record.kind, self.view.as_mut()) {
            (FrameKind::Segment { .. }, Some(view)) => view.server_state(),
            _ => None,
        };
        self.send(Message::Frame {
            record,
            server_state,
        });
    }

    fn state_changed(&mut self, at: Instant, changes: Vec<(State, State)>) {
        self.send(Message::StateChanged { at, changes });
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    fn call(&mut self, at: Instant, call: ClientCall) {
        Forwarder::call(self, at, call);
    }

    fn idle(&mut self) {
        if self
            .hold
            .is_some_and(|at_least| self.held.len() >= at_least)
        {
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarder(tx: Sender<Message>) -> Forwarder {
        Forwarder {
            tx,
            interrupted: Arc::new(AtomicBool::new(false)),
            view: None,
            held: Vec::new(),
            hold: None,
        }
    }

    fn changed(fwd: &mut Forwarder, from: State, to: State) {
        fwd.state_changed(Instant::now(), vec![(from, to)]);
    }

    fn received(rx: &mpsc::Receiver<Message>) -> Vec<(State, State)> {
        rx.try_iter()
            .flat_map(|msg| match msg {
                Message::StateChanged { changes, .. } => changes,
                _ => Vec::new(),
            })
            .collect()
    }

    /// A holding forwarder sends nothing while the client is busy, then
    /// everything in order when it waits with enough held, or when the
    /// run ends; a plain one sends at once.
    #[test]
    fn a_holding_forwarder_sends_when_the_client_waits_or_the_run_ends() {
        use State::{Closed, Established, FinWait1, SynSent};
        let (tx, rx) = mpsc::channel();
        let mut fwd = forwarder(tx.clone()).holding(2);
        changed(&mut fwd, Closed, SynSent);
        fwd.idle();
        assert_eq!(received(&rx), []);
        changed(&mut fwd, SynSent, Established);
        assert_eq!(received(&rx), []);
        fwd.idle();
        assert_eq!(received(&rx), [(Closed, SynSent), (SynSent, Established)]);
        changed(&mut fwd, Established, FinWait1);
        assert_eq!(received(&rx), []);
        drop(fwd);
        assert_eq!(received(&rx), [(Established, FinWait1)]);

        let mut plain = forwarder(tx);
        changed(&mut plain, Closed, SynSent);
        assert_eq!(received(&rx), [(Closed, SynSent)]);
    }
}
