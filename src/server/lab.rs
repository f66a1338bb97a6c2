//! The lab's server's socket I/O: a real `std::net::TcpListener` on the
//! kernel's TCP stack, written the way the socket tutorials write it (bind,
//! listen, accept, recv, sendall, recv until EOF, close), in its own
//! thread; or, for `--udp`, a `std::net::UdpSocket` (bind, recvfrom,
//! sendto). What to answer and when to close come from the shared reply
//! logic ([`LabServerConfig::responder`]); each socket call is reported as a
//! [`ServerEvent`].
//!
//! Privileged only through where it runs (inside the lab's namespace).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Socket, Type};

use super::config::{LabServerConfig, READ_BUF_LEN};
use super::event::ServerEvent;
use super::reply::Responder;
use crate::net::sockinfo;
use crate::tcp::State;

/// An upper bound on reads after the first one (each one bounded by the
/// read timeout).
const MAX_READS: usize = 1024;
/// How often a sticky server looks at its receive queue while it waits.
const QUEUE_POLL: Duration = Duration::from_millis(1);

/// Where the server reports each call: the time it returned, the call, and
/// the socket's state as the kernel reports it right after (`TCP_INFO`).
pub type Notify = Box<dyn Fn(Instant, ServerEvent, Option<State>) + Send>;

/// The running server thread. Dropping it stops the thread (see
/// [`LabServer::stop`]).
pub struct LabServer {
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    /// Set, then shut down, by [`LabServer::stop`].
    stop: Arc<AtomicBool>,
    wake: UnixStream,
}

/// The server thread's side of [`LabServer::stop`]: every wait of the thread
/// (accept, recv, recvfrom, the sticky and the abort waits) polls `wake`
/// beside its socket, so a stop ends it at once, whatever its timeout.
struct Halt {
    stopped: Arc<AtomicBool>,
    /// Turns readable (EOF) when the other end is shut down or dropped.
    wake: UnixStream,
}

impl Halt {
    /// A `LabServer`'s stop flag and wake-up socket, and the thread's side.
    fn pair() -> io::Result<(Arc<AtomicBool>, UnixStream, Halt)> {
        let (wake, wake_peer) = UnixStream::pair()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let halt = Halt {
            stopped: Arc::clone(&stopped),
            wake: wake_peer,
        };
        Ok((stopped, wake, halt))
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Reports `event` unless the server was stopped: after a stop, what
    /// the woken calls return is not what the tutorial's server did.
    fn report(&self, tx: &Notify, at: Instant, event: ServerEvent, state: Option<State>) {
        if !self.is_stopped() {
            tx(at, event, state);
        }
    }

    /// Waits until `fd` is readable (data, EOF, an error or a pending
    /// connection), within `timeout`.
    ///
    /// # Errors
    /// `TimedOut` when nothing came in time; `Interrupted` when the server
    /// was stopped; `poll()` errors.
    fn wait_readable(&self, fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing arrived in time",
                ));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [
                PollFd::new(fd, PollFlags::POLLIN),
                PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) if fired(&fds[1]) || self.is_stopped() => return Err(stopped()),
                Ok(_) => return Ok(()),
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Sleeps for `d`; false when the server was stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let ms = u16::try_from(d.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
        let woken = matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0);
        !(woken || self.is_stopped())
    }
}

/// Whether poll() saw anything on `fd`.
fn fired(fd: &PollFd<'_>) -> bool {
    fd.revents().is_some_and(|r| !r.is_empty())
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the lab stopped the server")
}

impl LabServer {
    /// Binds and listens on the caller's thread (so the port is ready when
    /// this returns), then serves one connection in a new thread.
    ///
    /// # Errors
    /// `bind()`/`listen()` errors (address in use, no such address).
    pub fn start(cfg: LabServerConfig, notify: Notify) -> io::Result<LabServer> {
        let socket = Socket::new(Domain::for_address(cfg.addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&cfg.addr.into())?;
        socket.listen(128)?;
        let listener: TcpListener = socket.into();
        let addr = listener.local_addr()?;
        let (stop, wake, halt) = Halt::pair()?;
        let thread = thread::Builder::new()
            .name("lab-server".into())
            .spawn(move || {
                for _ in 0..cfg.connections {
                    if !serve_one(&listener, &cfg, &notify, &halt) {
                        break;
                    }
                }
            })?;
        Ok(LabServer {
            thread: Some(thread),
            addr,
            stop,
            wake,
        })
    }

    /// Stops the thread wherever it waits, at once: it reports nothing
    /// more and ends (closing its sockets). For a run that ends early
    /// (Ctrl-C, an error); a finished server has ended already.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the thread's poll(); it fails only on a socket already
        // shut down.
        let _ = self.wake.shutdown(Shutdown::Both);
    }

    /// The address it listens on (the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the thread to end.
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            // A panic in the server thread is reported by the runtime; the
            // lab's result does not depend on it.
            let _ = thread.join();
        }
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LabServer {
    /// The UDP counterpart (`synack lab --udp`): binds a
    /// `std::net::UdpSocket` on the caller's thread, then in a new thread
    /// answers each of `datagrams` datagrams with one `reply` datagram
    /// (none when it is empty) and closes. No accept, no connection: each
    /// `recvfrom()` returns exactly one datagram.
    ///
    /// # Errors
    /// `bind()` errors.
    pub fn start_udp(
        addr: SocketAddrV4,
        reply: Vec<u8>,
        datagrams: usize,
        timeout: Duration,
        notify: Notify,
    ) -> io::Result<LabServer> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(timeout))?;
        let addr = socket.local_addr()?;
        let (stop, wake, halt) = Halt::pair()?;
        let thread = thread::Builder::new()
            .name("lab-udp-server".into())
            .spawn(move || {
                let started = Instant::now();
                let emit_udp = |event| halt.report(&notify, Instant::now(), event, None);
                let mut buf = vec![0u8; READ_BUF_LEN];
                for _ in 0..datagrams {
                    let received = halt
                        .wait_readable(socket.as_fd(), timeout)
                        .and_then(|()| socket.recv_from(&mut buf));
                    let (n, peer) = match received {
                        Ok(got) => got,
                        Err(error) => {
                            let call = "recvfrom";
                            emit_udp(ServerEvent::Failed {
                                call,
                                error: error.to_string(),
                            });
                            return;
                        }
                    };
                    let data = buf[..n].to_vec();
                    emit_udp(ServerEvent::Datagram { data, peer });
                    if reply.is_empty() {
                        continue;
                    }
                    match socket.send_to(&reply, peer) {
                        Ok(len) => emit_udp(ServerEvent::SentTo { len, peer }),
                        Err(error) => {
                            let call = "sendto";
                            emit_udp(ServerEvent::Failed {
                                call,
                                error: error.to_string(),
                            });
                            return;
                        }
                    }
                }
                drop(socket);
                let elapsed = started.elapsed();
                emit_udp(ServerEvent::Closed { elapsed });
            })?;
        Ok(LabServer {
            thread: Some(thread),
            addr,
            stop,
            wake,
        })
    }
}

/// What the TCP server's calls share: where to report, and the stop.
struct Ctx<'a> {
    tx: &'a Notify,
    halt: &'a Halt,
    /// The longest one call may wait.
    timeout: Duration,
}

impl Ctx<'_> {
    /// Reports a call, with the kernel's view of `socket` when there is
    /// one.
    fn emit(&self, event: ServerEvent, socket: Option<&TcpStream>) {
        let at = Instant::now();
        let state = socket.and_then(kernel_state);
        self.halt.report(self.tx, at, event, state);
    }
}

/// The socket's state from `TCP_INFO`.
fn kernel_state(socket: &TcpStream) -> Option<State> {
    sockinfo::tcp_info(socket).ok().map(|info| info.state)
}

/// accept, recv, sendall, recv until EOF, close: the tutorial's server.
/// Returns false when `accept()` failed (nobody came within the timeout).
fn serve_one(listener: &TcpListener, cfg: &LabServerConfig, tx: &Notify, halt: &Halt) -> bool {
    let ctx = Ctx {
        tx,
        halt,
        timeout: cfg.timeout,
    };
    let (stream, peer) = match accept_within(listener, cfg.timeout, halt) {
        Ok(pair) => pair,
        Err(error) => {
            let error = error.to_string();
            ctx.emit(
                ServerEvent::Failed {
                    call: "accept",
                    error,
                },
                None,
            );
            return false;
        }
    };
    let accepted_at = Instant::now();
    ctx.emit(ServerEvent::Accepted { peer }, Some(&stream));
    if let Err((call, error)) = converse(stream, cfg, &ctx, accepted_at) {
        let error = error.to_string();
        ctx.emit(ServerEvent::Failed { call, error }, None);
    }
    !halt.is_stopped()
}

/// A socket call that failed, and how.
type CallError = (&'static str, io::Error);

/// One connection: the sticky wait, the reads and their answers, then
/// the close (or the abort).
fn converse(
    mut stream: TcpStream,
    cfg: &LabServerConfig,
    ctx: &Ctx<'_>,
    accepted_at: Instant,
) -> Result<(), CallError> {
    stream
        .set_read_timeout(Some(cfg.timeout))
        .map_err(|e| ("setsockopt(SO_RCVTIMEO)", e))?;
    let mut buf = vec![0u8; READ_BUF_LEN];
    if let Some(bytes) = cfg.reading.sticky_bytes {
        wait_sticky(&stream, bytes, cfg, ctx, &mut buf)?;
    }
    let mut responder = cfg.responder();
    let eof = read_and_answer(&mut stream, cfg, ctx, &mut responder, &mut buf)?;
    if cfg.linger0 {
        return abort(stream, cfg, ctx, accepted_at);
    }
    if cfg.quickack_at_eof() {
        // Receiving the FIN put the socket in CLOSE-WAIT and in delayed-ACK
        // ("pingpong") mode, so its ACK would wait and ride on our FIN.
        // TCP_QUICKACK now sends the pending ACK at once: FIN / ACK / FIN /
        // ACK, the textbook four-way close (and, after a half-close, the
        // reply that follows is plainly data after EOF).
        socket2::SockRef::from(&stream)
            .set_tcp_quickack(true)
            .map_err(|e| ("setsockopt(TCP_QUICKACK)", e))?;
        ctx.emit(ServerEvent::QuickAck, Some(&stream));
    }
    if eof {
        // The half-close, server side: the client shut down its sending
        // side; we still send (when the reply waits for the EOF).
        send(&mut stream, &responder.on_eof(), ctx)?;
    }
    drop(stream);
    let elapsed = accepted_at.elapsed();
    ctx.emit(ServerEvent::Closed { elapsed }, None);
    Ok(())
}

/// Sticky packets: waits until `bytes` sit in the receive queue, as a
/// busy server would, and reports how many did.
fn wait_sticky(
    stream: &TcpStream,
    bytes: usize,
    cfg: &LabServerConfig,
    ctx: &Ctx<'_>,
    buf: &mut [u8],
) -> Result<(), CallError> {
    let expected = bytes.min(READ_BUF_LEN);
    let queued = wait_until_queued(stream, expected, cfg.timeout, buf, ctx.halt)
        .map_err(|e| ("recv(MSG_PEEK)", e))?;
    let writes = cfg.reading.writes;
    let waited = ServerEvent::Waited {
        queued,
        expected,
        writes,
    };
    ctx.emit(waited, Some(stream));
    Ok(())
}

/// Reads and answers each read (or message) until the responder is done
/// (the server closes first) or the client's EOF; true at EOF.
fn read_and_answer(
    stream: &mut TcpStream,
    cfg: &LabServerConfig,
    ctx: &Ctx<'_>,
    responder: &mut Responder,
    buf: &mut [u8],
) -> Result<bool, CallError> {
    for read in 0..MAX_READS {
        if responder.done() {
            break;
        }
        let n = recv_and_report(stream, buf, ctx)?;
        if n == 0 {
            return Ok(true);
        }
        if read == 0 && cfg.reading.sticky_bytes.is_some() {
            let writes = cfg.reading.writes;
            ctx.emit(ServerEvent::Sticky { writes, len: n }, None);
        }
        let response = responder.on_read(&buf[..n]);
        for answer in response.answers {
            if let (Some(body), Some(framing)) = (answer.message, cfg.reading.framing) {
                ctx.emit(ServerEvent::Message { body, framing }, None);
            }
            send(stream, &answer.reply, ctx)?;
        }
        if let Some(e) = response.error {
            return Err(("decode", io::Error::new(io::ErrorKind::InvalidData, e)));
        }
    }
    Ok(false)
}

/// `sendall(reply)`, reported; nothing for an empty reply.
fn send(stream: &mut TcpStream, reply: &[u8], ctx: &Ctx<'_>) -> Result<(), CallError> {
    if reply.is_empty() {
        return Ok(());
    }
    stream.write_all(reply).map_err(|e| ("sendall", e))?;
    ctx.emit(ServerEvent::Sent { len: reply.len() }, Some(stream));
    Ok(())
}

/// Waits (bounded by `timeout`) until `bytes` bytes sit in the receive
/// queue, looking with `recv(MSG_PEEK)`, which leaves them there; returns
/// how many were queued. Stops early at EOF or when the time is up.
fn wait_until_queued(
    stream: &TcpStream,
    bytes: usize,
    timeout: Duration,
    buf: &mut [u8],
    halt: &Halt,
) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    let mut queued = 0;
    while Instant::now() < deadline {
        // Waits until at least one byte is there.
        halt.wait_readable(
            stream.as_fd(),
            deadline.saturating_duration_since(Instant::now()),
        )?;
        queued = stream.peek(buf)?;
        if queued == 0 || queued >= bytes || !halt.sleep(QUEUE_POLL) {
            break;
        }
    }
    Ok(queued)
}

/// SO_LINGER 0 and close once the reply is acknowledged (TCP_INFO's
/// unacked count is 0, checked every millisecond within the timeout), so
/// the RST follows a finished exchange and no late ACK meets a socket that
/// is gone.
fn abort(
    stream: TcpStream,
    cfg: &LabServerConfig,
    ctx: &Ctx<'_>,
    accepted_at: Instant,
) -> Result<(), CallError> {
    let deadline = Instant::now() + cfg.timeout;
    while Instant::now() < deadline {
        match sockinfo::tcp_info(&stream) {
            Ok(info) if info.unacked > 0 => {
                if !ctx.halt.sleep(Duration::from_millis(1)) {
                    return Err(("close", stopped()));
                }
            }
            _ => break,
        }
    }
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| ("setsockopt(SO_LINGER)", e))?;
    drop(stream);
    let elapsed = accepted_at.elapsed();
    ctx.emit(ServerEvent::Aborted { elapsed }, None);
    Ok(())
}

/// One `recv()`, reported with what it returned (empty: EOF).
fn recv_and_report(
    stream: &mut TcpStream,
    buf: &mut [u8],
    ctx: &Ctx<'_>,
) -> Result<usize, CallError> {
    let n = ctx
        .halt
        .wait_readable(stream.as_fd(), ctx.timeout)
        .and_then(|()| stream.read(buf))
        .map_err(|e| ("recv", e))?;
    let event = match n {
        0 => ServerEvent::PeerClosed,
        len => ServerEvent::Received {
            len,
            data: Some(buf[..len].to_vec()),
        },
    };
    ctx.emit(event, Some(stream));
    Ok(n)
}

/// `accept()` that gives up after `timeout`, or when the server is
/// stopped.
fn accept_within(
    listener: &TcpListener,
    timeout: Duration,
    halt: &Halt,
) -> io::Result<(TcpStream, SocketAddr)> {
    match halt.wait_readable(listener.as_fd(), timeout) {
        Ok(()) => listener.accept(),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no connection arrived",
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    //! The server's reading modes against a client on loopback (no
    //! privileges; the kernel picks the port).

    use super::*;
    use crate::framing::{self, Framing};
    use crate::server::config::Reading;
    use std::net::Shutdown;
    use std::sync::mpsc::{self, Receiver};

    const TIMEOUT: Duration = Duration::from_secs(5);
    /// Long enough for a write to reach the server before the next one.
    const GAP: Duration = Duration::from_millis(30);

    fn start(reading: Reading, close_first: bool) -> (LabServer, Receiver<ServerEvent>, TcpStream) {
        start_with(|cfg| {
            cfg.reading = reading;
            cfg.close_first = close_first;
        })
    }

    fn start_with(
        change: impl FnOnce(&mut LabServerConfig),
    ) -> (LabServer, Receiver<ServerEvent>, TcpStream) {
        let (tx, rx) = mpsc::channel();
        let mut cfg = LabServerConfig {
            addr: SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0).into(),
            reply: b"hello, client".to_vec(),
            quickack: true,
            timeout: TIMEOUT,
            connections: 1,
            close_first: false,
            linger0: false,
            reply_after_eof: false,
            reading: Reading::default(),
        };
        change(&mut cfg);
        let server = LabServer::start(
            cfg,
            Box::new(move |_, event, _| {
                let _ = tx.send(event);
            }),
        )
        .expect("server starts");
        let client = TcpStream::connect(server.local_addr()).expect("connects");
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        (server, rx, client)
    }

    /// Every event up to `close()`, then the thread's end.
    fn events(server: LabServer, rx: &Receiver<ServerEvent>) -> Vec<ServerEvent> {
        events_until(server, rx, |e| matches!(e, ServerEvent::Closed { .. }))
    }

    /// Every event up to the first `last` (or a failure), then the
    /// thread's end.
    fn events_until(
        server: LabServer,
        rx: &Receiver<ServerEvent>,
        last: impl Fn(&ServerEvent) -> bool,
    ) -> Vec<ServerEvent> {
        let mut all = Vec::new();
        while let Ok(event) = rx.recv_timeout(TIMEOUT) {
            let closed = last(&event) || matches!(event, ServerEvent::Failed { .. });
            all.push(event);
            if closed {
                break;
            }
        }
        server.join();
        all
    }

    fn reads(events: &[ServerEvent]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Received { data, .. } => data.clone(),
                ServerEvent::PeerClosed => Some(Vec::new()),
                _ => None,
            })
            .collect()
    }

    fn read_exactly(client: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        client.read_exact(&mut buf).expect("the reply");
        buf
    }

    #[test]
    fn plain_reads_are_answered_one_by_one() {
        let reading = Reading {
            writes: 2,
            ..Reading::default()
        };
        let (server, rx, mut client) = start(reading, false);
        client.write_all(b"hello").unwrap();
        assert_eq!(read_exactly(&mut client, 13), b"hello, client");
        client.write_all(b"world").unwrap();
        assert_eq!(read_exactly(&mut client, 13), b"hello, client");
        client.shutdown(Shutdown::Write).unwrap();
        let events = events(server, &rx);
        assert_eq!(
            reads(&events),
            [b"hello".to_vec(), b"world".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn after_a_half_close_the_server_answers_once_after_eof() {
        let (server, rx, mut client) = start_with(|cfg| {
            cfg.reply_after_eof = true;
            cfg.reading.writes = 2;
        });
        client.write_all(b"hello").unwrap();
        client.write_all(b"world").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).expect("the reply, then EOF");
        assert_eq!(reply, b"hello, client");
        let events = events(server, &rx);
        let eof = events
            .iter()
            .position(|e| matches!(e, ServerEvent::PeerClosed));
        let sent = events
            .iter()
            .position(|e| matches!(e, ServerEvent::Sent { len: 13 }));
        assert!(eof.is_some() && sent > eof, "{events:?}");
    }

    #[test]
    fn an_aborting_server_answers_then_resets() {
        let (server, rx, mut client) = start_with(|cfg| cfg.linger0 = true);
        client.write_all(b"hello").unwrap();
        assert_eq!(read_exactly(&mut client, 13), b"hello, client");
        let events = events_until(server, &rx, |e| matches!(e, ServerEvent::Aborted { .. }));
        assert!(
            matches!(events.last(), Some(ServerEvent::Aborted { .. })),
            "{events:?}"
        );
        let mut rest = [0u8; 16];
        let err = client.read(&mut rest).expect_err("a RST, not EOF");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn a_sticky_server_reads_two_writes_at_once_and_answers_once() {
        let reading = Reading {
            writes: 2,
            sticky_bytes: Some(10),
            framing: None,
        };
        let (server, rx, mut client) = start(reading, false);
        client.write_all(b"hello").unwrap();
        thread::sleep(GAP);
        client.write_all(b"world").unwrap();
        assert_eq!(read_exactly(&mut client, 13), b"hello, client");
        client.shutdown(Shutdown::Write).unwrap();
        let events = events(server, &rx);
        assert_eq!(reads(&events), [b"helloworld".to_vec(), Vec::new()]);
        assert!(events.iter().any(|e| matches!(
            e,
            ServerEvent::Waited {
                queued: 10,
                expected: 10,
                writes: 2
            }
        )));
        assert!(events
            .iter()
            .any(|e| matches!(e, ServerEvent::Sticky { writes: 2, len: 10 })));
        let sent = events
            .iter()
            .filter(|e| matches!(e, ServerEvent::Sent { .. }))
            .count();
        assert_eq!(sent, 1);
    }

    #[test]
    fn a_framed_server_reads_whole_messages_however_they_come() {
        let framing = Framing::LengthPrefix;
        let reading = Reading {
            writes: 2,
            sticky_bytes: None,
            framing: Some(framing),
        };
        let (server, rx, mut client) = start(reading, true);
        let mut wire = framing::encode_to_vec(framing, b"hello").unwrap();
        framing::encode(framing, b"world", &mut wire).unwrap();
        // The first message cut in two (the rest goes once the server has
        // read the first part), the second glued to its end.
        client.write_all(&wire[..3]).unwrap();
        let mut seen = Vec::new();
        while let Ok(event) = rx.recv_timeout(TIMEOUT) {
            let read = matches!(event, ServerEvent::Received { .. });
            seen.push(event);
            if read {
                break;
            }
        }
        client.write_all(&wire[3..]).unwrap();
        let one = framing::encode_to_vec(framing, b"hello, client").unwrap();
        let mut replies = read_exactly(&mut client, 2 * one.len());
        assert_eq!(replies.split_off(one.len()), one);
        assert_eq!(replies, one);
        // Closing first after its two answers: EOF, without our FIN.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let mut events = seen;
        events.extend(self::events(server, &rx));
        assert_eq!(reads(&events)[0], wire[..3]);
        let messages: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Message { body, .. } => Some(body.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(messages, [b"hello".to_vec(), b"world".to_vec()]);
    }

    /// No client comes, and the timeout is a minute: stop() ends the
    /// thread at once, and the woken accept() is not reported (issue 11).
    #[test]
    fn a_stopped_server_ends_at_once_and_reports_nothing_more() {
        let (tx, rx) = mpsc::channel();
        let notify = move |tx: mpsc::Sender<ServerEvent>| -> Notify {
            Box::new(move |_, event, _| {
                let _ = tx.send(event);
            })
        };
        let addr = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0);
        let tcp = LabServer::start(
            LabServerConfig {
                addr: addr.into(),
                reply: Vec::new(),
                quickack: false,
                timeout: Duration::from_secs(60),
                connections: 3,
                close_first: false,
                linger0: false,
                reply_after_eof: false,
                reading: Reading::default(),
            },
            notify(tx.clone()),
        )
        .expect("server starts");
        let udp = LabServer::start_udp(addr, Vec::new(), 1, Duration::from_secs(60), notify(tx))
            .expect("binds");
        thread::sleep(GAP);
        let started = Instant::now();
        tcp.stop();
        tcp.join();
        udp.stop();
        udp.join();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(rx.try_iter().next().is_none());
    }

    /// A client connected and said nothing: stop() wakes the recv().
    #[test]
    fn a_server_stopped_in_recv_ends_at_once() {
        let (server, rx, _client) = start_with(|cfg| cfg.timeout = Duration::from_secs(60));
        assert!(matches!(
            rx.recv_timeout(TIMEOUT),
            Ok(ServerEvent::Accepted { .. })
        ));
        let started = Instant::now();
        drop(server);
        // The thread let go of its sender: the channel says so at once.
        assert!(matches!(
            rx.recv_timeout(TIMEOUT),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_udp_server_reads_each_datagram_alone() {
        let (tx, rx) = mpsc::channel();
        let server = LabServer::start_udp(
            SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
            b"hi".to_vec(),
            2,
            TIMEOUT,
            Box::new(move |_, event, _| {
                let _ = tx.send(event);
            }),
        )
        .expect("binds");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        // Both datagrams queued before the server reads either.
        client.send_to(b"hello", server.local_addr()).unwrap();
        client.send_to(b"world", server.local_addr()).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..2 {
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hi");
        }
        let events = events(server, &rx);
        let datagrams: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Datagram { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(datagrams, [b"hello".to_vec(), b"world".to_vec()]);
    }
}
