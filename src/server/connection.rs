//! One client's connection of `synack serve`, in its own thread: read,
//! answer (the shared [`super::reply`] logic, within the memory budget),
//! then close with FIN, abort with RST, or refuse with an error frame;
//! with the kernel's view of the socket after each call (`TCP_INFO`, the
//! states it moves through after our FIN, sock_diag for TIME-WAIT).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::config::{Config, KernelView, READ_BUFFER_LEN};
use super::event::{ClientId, ServerEvent};
use super::render::{describe_error, FORCED};
use super::reply::{Response, Taken};
use super::shared::Shared;
use crate::net::sockinfo;
use crate::tcp::State;
use crate::tcp::TcpInfo;

/// Reads per connection at most (a client streaming forever is cut off).
const MAX_READS_PER_CLIENT: usize = 1_000_000;
/// How long to watch a socket after our FIN for the kernel's next state
/// (LAST-ACK → CLOSED, FIN-WAIT-1 → FIN-WAIT-2), and how often to look.
const STATE_WATCH_LIMIT: Duration = Duration::from_millis(200);
const STATE_WATCH_STEP: Duration = Duration::from_millis(1);
/// After a refusal (an error frame and our FIN), how long the client's
/// remaining bytes are read and dropped, so that our close is a FIN and
/// the error frame is not lost to a RST.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// How a client's exchange ended.
enum Outcome {
    /// The peer's FIN arrived.
    PeerClosed,
    /// `--close first`: the first reply is out.
    Replied,
    /// A message over a limit: tell the client (`frame`) and close.
    Refused { reason: String, frame: Vec<u8> },
}

/// A socket call that failed, and how.
type CallError = (&'static str, io::Error);

/// One client's whole life: read, reply, close.
pub(super) fn serve_client(shared: &Shared, client: ClientId, stream: TcpStream) {
    let accepted_at = Instant::now();
    let conn = Conn {
        shared,
        client,
        stream,
    };
    conn.event(ServerEvent::Accepted { peer: client.peer });
    match conn.exchange() {
        Ok(Outcome::PeerClosed) => conn.close(true, accepted_at),
        Ok(Outcome::Replied) => conn.close(false, accepted_at),
        Ok(Outcome::Refused { reason, frame }) => conn.refuse(reason, &frame, accepted_at),
        Err((call, error)) => {
            conn.fail(call, &error);
            if shared.config.linger0 {
                conn.abort(accepted_at);
            } else {
                // Closes it (with RST if unread data remains).
                conn.release();
            }
        }
    }
}

struct Conn<'a> {
    shared: &'a Shared,
    client: ClientId,
    stream: TcpStream,
}

impl Conn<'_> {
    fn kernel(&self) -> Option<TcpInfo> {
        match self.shared.config.kernel_view {
            KernelView::Off => None,
            _ => sockinfo::tcp_info(&self.stream).ok(),
        }
    }

    fn event(&self, kind: ServerEvent) {
        self.shared.emit(Some(self.client), kind, self.kernel());
    }

    /// The connection failed: an error, or, once the grace period ended
    /// and the server shut the socket down, the server's own doing.
    fn fail(&self, call: &'static str, error: &io::Error) {
        if self.shared.forced.load(Ordering::SeqCst) {
            self.event(ServerEvent::Forced);
        } else {
            self.event(ServerEvent::Failed {
                call,
                error: describe_error(error, self.shared.config.idle_timeout),
            });
        }
    }

    /// One `read`, with EOF told apart from the server's own shutdown of
    /// the socket at the end of the grace period.
    fn recv(&self, buf: &mut [u8]) -> Result<usize, CallError> {
        let n = (&self.stream).read(buf).map_err(|e| ("recv", e))?;
        if n == 0 && self.shared.forced.load(Ordering::SeqCst) {
            return Err(("recv", io::Error::other(FORCED)));
        }
        Ok(n)
    }

    /// Reads and answers until the peer's FIN, or with `--close first`
    /// the first reply, or a message over a limit.
    fn exchange(&self) -> Result<Outcome, CallError> {
        let config = &self.shared.config;
        let setsockopt = |e| ("setsockopt", e);
        let stream = &self.stream;
        stream
            .set_read_timeout(Some(config.idle_timeout))
            .map_err(setsockopt)?;
        stream
            .set_write_timeout(Some(config.idle_timeout))
            .map_err(setsockopt)?;
        stream.set_nodelay(true).map_err(setsockopt)?;
        let sock = SockRef::from(stream);
        // Declared first, dropped last: the budget gets the bytes back
        // once the responder has freed them.
        let mut charge = self.shared.budget.charge();
        let mut responder = config.responder();
        let mut buf = vec![0u8; READ_BUFFER_LEN];
        for _ in 0..MAX_READS_PER_CLIENT {
            // ACK at once (no delayed ACK), so that the peer's FIN is
            // acknowledged on its own: FIN / ACK / FIN / ACK.
            let _ = sock.set_tcp_quickack(true);
            let n = self.recv(&mut buf)?;
            if n == 0 {
                self.event(ServerEvent::PeerClosed);
                return match responder.pending() {
                    0 => Ok(Outcome::PeerClosed),
                    held => Err((
                        "recv",
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the peer closed in the middle of a message ({held} bytes held)"
                            ),
                        ),
                    )),
                };
            }
            self.event(ServerEvent::Received { len: n, data: None });
            let taken = responder
                .on_read_within(&buf[..n], &mut charge)
                .map_err(|e| ("decode", io::Error::new(io::ErrorKind::InvalidData, e)))?;
            let response = match taken {
                Taken::Answered(response) => response,
                Taken::Refused { reason, frame } => return Ok(Outcome::Refused { reason, frame }),
            };
            self.answer(response, config)?;
            if responder.done() {
                return Ok(Outcome::Replied);
            }
        }
        Err(("recv", io::Error::other("too many reads on one connection")))
    }

    /// Reports the read's messages, then sends every reply of the read in
    /// one write.
    fn answer(&self, response: Response, config: &Config) -> Result<(), CallError> {
        let out = response.joined_reply();
        for answer in response.answers {
            if let (Some(body), Some(framing)) = (answer.message, config.framing) {
                self.event(ServerEvent::Message { body, framing });
            }
        }
        if !out.is_empty() {
            (&self.stream).write_all(&out).map_err(|e| ("send", e))?;
            self.event(ServerEvent::Sent { len: out.len() });
        }
        Ok(())
    }

    /// Tells the client why (an error frame), sends our FIN, then reads
    /// and drops what it still sends, for at most [`REFUSAL_LINGER`]:
    /// closing with its bytes unread would send RST, and the RST could
    /// destroy the error frame before the client reads it.
    fn refuse(self, reason: String, frame: &[u8], accepted_at: Instant) {
        self.event(ServerEvent::Refused { reason });
        let sent = (&self.stream)
            .write_all(frame)
            .and_then(|()| self.stream.shutdown(Shutdown::Write));
        if sent.is_ok() {
            self.event(ServerEvent::SentFin);
            let deadline = Instant::now() + REFUSAL_LINGER;
            let mut buf = vec![0u8; READ_BUFFER_LEN];
            for _ in 0..MAX_READS_PER_CLIENT {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                match (&self.stream).read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if self.shared.config.linger0 {
            self.abort(accepted_at);
            return;
        }
        let (shared, client) = (self.shared, self.client);
        let elapsed = accepted_at.elapsed();
        self.release();
        shared.emit(Some(client), ServerEvent::Closed { elapsed }, None);
    }

    fn close(self, peer_closed: bool, accepted_at: Instant) {
        if self.shared.config.linger0 {
            self.abort(accepted_at);
            return;
        }
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            self.fail("shutdown", &e);
            self.release();
            return;
        }
        self.event(ServerEvent::SentFin);
        self.watch_state();
        if !peer_closed {
            // We closed first: wait for the peer's FIN (FIN-WAIT-2).
            match self.drain() {
                Ok(()) => self.event(ServerEvent::PeerClosed),
                Err((call, e)) => self.fail(call, &e),
            }
            if self.shared.config.kernel_view == KernelView::Full && self.in_time_wait() {
                self.shared
                    .emit(Some(self.client), ServerEvent::TimeWait, None);
            }
        }
        let (shared, client) = (self.shared, self.client);
        let elapsed = accepted_at.elapsed();
        self.release();
        shared.emit(Some(client), ServerEvent::Closed { elapsed }, None);
    }

    /// SO_LINGER 0 and close: the kernel sends RST and forgets the socket.
    fn abort(self, accepted_at: Instant) {
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        let (shared, client) = (self.shared, self.client);
        let elapsed = accepted_at.elapsed();
        self.release();
        shared.emit(Some(client), ServerEvent::Aborted { elapsed }, None);
    }

    /// Closes the socket now: our stream and the open list's clone of it
    /// (the kernel closes a socket with its last descriptor).
    fn release(self) {
        self.shared.clients().streams.remove(&self.client.n);
        drop(self.stream);
    }

    /// After our FIN, reports the states the kernel moves the socket
    /// through by itself (FIN-WAIT-1 → FIN-WAIT-2, LAST-ACK → CLOSED),
    /// watching for at most [`STATE_WATCH_LIMIT`].
    fn watch_state(&self) {
        if self.shared.config.kernel_view != KernelView::Full {
            return;
        }
        let Ok(first) = sockinfo::tcp_info(&self.stream) else {
            return;
        };
        let settled = |s: State| matches!(s, State::FinWait2 | State::Closed | State::TimeWait);
        let mut from = first.state;
        let deadline = Instant::now() + STATE_WATCH_LIMIT;
        while !settled(from) && Instant::now() < deadline {
            thread::sleep(STATE_WATCH_STEP);
            let Ok(now) = sockinfo::tcp_info(&self.stream) else {
                return;
            };
            if now.state != from {
                self.shared.emit(
                    Some(self.client),
                    ServerEvent::KernelMoved {
                        from,
                        to: now.state,
                    },
                    Some(now.clone()),
                );
                from = now.state;
            }
        }
    }

    /// Reads and drops what the peer still sends until its FIN.
    fn drain(&self) -> Result<(), CallError> {
        let mut buf = vec![0u8; READ_BUFFER_LEN];
        for _ in 0..MAX_READS_PER_CLIENT {
            let n = self.recv(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.event(ServerEvent::Discarded { len: n });
        }
        Err((
            "recv",
            io::Error::other("the peer kept sending after our FIN"),
        ))
    }

    /// Whether sock_diag shows this connection in TIME-WAIT.
    fn in_time_wait(&self) -> bool {
        let Ok(local) = self.stream.local_addr() else {
            return false;
        };
        sockinfo::sockets_on_port(local.port())
            .map(|sockets| {
                sockets.iter().any(|s| {
                    s.local == local && s.remote == self.client.peer && s.state == State::TimeWait
                })
            })
            .unwrap_or(false)
    }
}
