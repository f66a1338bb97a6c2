//! The lab's server: a real `std::net::TcpListener` on the kernel's TCP
//! stack, written the way the socket tutorials write it (bind, listen,
//! accept, recv, sendall, recv until EOF, close), in its own thread. It
//! reports each socket call as a [`ServerEvent`].
//!
//! Privileged only through where it runs (inside the lab's namespace).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Socket, Type};

use super::sockinfo;
use crate::tcp::State;

/// An upper bound on reads after the first one (each one bounded by the
/// read timeout).
const MAX_READS: usize = 1024;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub addr: SocketAddrV4,
    /// What it sends back after the first read (nothing when empty).
    pub reply: Vec<u8>,
    /// Set `TCP_QUICKACK` once the read returned EOF, so the kernel ACKs
    /// the client's FIN at once instead of letting the ACK ride on the
    /// server's own FIN.
    pub quickack: bool,
    /// The longest any call may block (accept, each read).
    pub timeout: Duration,
    /// How many connections to serve, one after the other.
    pub connections: usize,
    /// Close right after the reply instead of reading until the client's
    /// EOF: the server closes first.
    pub close_first: bool,
    /// Once the reply is acknowledged, set `SO_LINGER` 0 and close: the
    /// kernel sends RST instead of FIN (an abort).
    pub linger0: bool,
    /// Read until EOF first, then reply, then close: the client's
    /// half-close (its FIN) does not stop the server from sending.
    pub reply_after_eof: bool,
}

/// One socket call of the server, as the tutorial code would print it.
#[derive(Debug)]
pub enum ServerEvent {
    /// `accept()` returned.
    Accepted { peer: SocketAddr },
    /// `recv()` returned `data` (empty: EOF, the client's FIN).
    Received { data: Vec<u8> },
    /// `sendall()` wrote this many bytes.
    Sent { len: usize },
    /// `setsockopt(TCP_QUICKACK, 1)`.
    QuickAck,
    /// `close()`.
    Closed,
    /// `setsockopt(SO_LINGER, 0)` and `close()`: the kernel sends RST.
    Aborted,
    /// A call failed; the server stops.
    Failed {
        call: &'static str,
        error: io::Error,
    },
}

/// Where the server reports each call: the time it returned, the call, and
/// the socket's state as the kernel reports it right after (`TCP_INFO`).
pub type Notify = Box<dyn Fn(Instant, ServerEvent, Option<State>) + Send>;

/// The running server thread.
pub struct Server {
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds and listens on the caller's thread (so the port is ready when
    /// this returns), then serves one connection in a new thread.
    ///
    /// # Errors
    /// `bind()`/`listen()` errors (address in use, no such address).
    pub fn start(cfg: ServerConfig, notify: Notify) -> io::Result<Server> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::V4(cfg.addr).into())?;
        socket.listen(128)?;
        let listener: TcpListener = socket.into();
        let thread = thread::Builder::new()
            .name("lab-server".into())
            .spawn(move || {
                for _ in 0..cfg.connections {
                    if !serve_one(&listener, &cfg, &notify) {
                        break;
                    }
                }
            })?;
        Ok(Server {
            thread: Some(thread),
        })
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

/// Reports a call, with the kernel's view of `socket` when there is one.
fn emit(tx: &Notify, event: ServerEvent, socket: Option<&TcpStream>) {
    let at = Instant::now();
    let state = socket.and_then(kernel_state);
    tx(at, event, state);
}

/// The socket's state from `TCP_INFO`.
fn kernel_state(socket: &TcpStream) -> Option<State> {
    sockinfo::tcp_info(socket).ok().map(|info| info.state)
}

/// accept, recv, sendall, recv until EOF, close: the tutorial's server.
/// Returns false when `accept()` failed (nobody came within the timeout).
fn serve_one(listener: &TcpListener, cfg: &ServerConfig, tx: &Notify) -> bool {
    let (stream, peer) = match accept_within(listener, cfg.timeout) {
        Ok(pair) => pair,
        Err(error) => {
            let call = "accept";
            emit(tx, ServerEvent::Failed { call, error }, None);
            return false;
        }
    };
    emit(tx, ServerEvent::Accepted { peer }, Some(&stream));
    if let Err((call, error)) = converse(stream, cfg, tx) {
        emit(tx, ServerEvent::Failed { call, error }, None);
    }
    true
}

fn converse(
    mut stream: TcpStream,
    cfg: &ServerConfig,
    tx: &Notify,
) -> Result<(), (&'static str, io::Error)> {
    stream
        .set_read_timeout(Some(cfg.timeout))
        .map_err(|e| ("setsockopt(SO_RCVTIMEO)", e))?;
    let mut buf = [0u8; 4096];
    let n = recv_and_report(&mut stream, &mut buf, tx)?;
    if n > 0 && cfg.reply_after_eof {
        return reply_after_eof(stream, cfg, tx, &mut buf);
    }
    if n > 0 && cfg.linger0 {
        send_reply(&mut stream, cfg, tx)?;
        return abort(stream, cfg, tx);
    }
    if n > 0 {
        if !cfg.reply.is_empty() {
            stream.write_all(&cfg.reply).map_err(|e| ("sendall", e))?;
            emit(
                tx,
                ServerEvent::Sent {
                    len: cfg.reply.len(),
                },
                Some(&stream),
            );
        }
        // Read until EOF (the client's FIN), unless we close first.
        let reads = if cfg.close_first { 0 } else { MAX_READS };
        for _ in 0..reads {
            if recv_and_report(&mut stream, &mut buf, tx)? == 0 {
                break;
            }
        }
    }
    if cfg.quickack && !cfg.close_first {
        // Receiving the FIN put the socket in CLOSE-WAIT and in delayed-ACK
        // ("pingpong") mode, so its ACK would wait and ride on our FIN.
        // TCP_QUICKACK now sends the pending ACK at once: FIN / ACK / FIN /
        // ACK, the textbook four-way close.
        socket2::SockRef::from(&stream)
            .set_tcp_quickack(true)
            .map_err(|e| ("setsockopt(TCP_QUICKACK)", e))?;
        emit(tx, ServerEvent::QuickAck, Some(&stream));
    }
    drop(stream);
    emit(tx, ServerEvent::Closed, None);
    Ok(())
}

fn send_reply(
    stream: &mut TcpStream,
    cfg: &ServerConfig,
    tx: &Notify,
) -> Result<(), (&'static str, io::Error)> {
    if !cfg.reply.is_empty() {
        stream.write_all(&cfg.reply).map_err(|e| ("sendall", e))?;
        let len = cfg.reply.len();
        emit(tx, ServerEvent::Sent { len }, Some(stream));
    }
    Ok(())
}

/// The half-close, server side: recv until EOF (the client shut down its
/// sending side), then still send the reply, then close.
fn reply_after_eof(
    mut stream: TcpStream,
    cfg: &ServerConfig,
    tx: &Notify,
    buf: &mut [u8],
) -> Result<(), (&'static str, io::Error)> {
    let mut eof = false;
    for _ in 0..MAX_READS {
        if recv_and_report(&mut stream, buf, tx)? == 0 {
            eof = true;
            break;
        }
    }
    if eof && cfg.quickack {
        // As in the textbook close: ACK the FIN at once, so the reply
        // that follows is plainly data after EOF.
        socket2::SockRef::from(&stream)
            .set_tcp_quickack(true)
            .map_err(|e| ("setsockopt(TCP_QUICKACK)", e))?;
        emit(tx, ServerEvent::QuickAck, Some(&stream));
    }
    send_reply(&mut stream, cfg, tx)?;
    drop(stream);
    emit(tx, ServerEvent::Closed, None);
    Ok(())
}

/// SO_LINGER 0 and close once the reply is acknowledged (TCP_INFO's
/// unacked count is 0, checked every millisecond within the timeout), so
/// the RST follows a finished exchange and no late ACK meets a socket that
/// is gone.
fn abort(
    stream: TcpStream,
    cfg: &ServerConfig,
    tx: &Notify,
) -> Result<(), (&'static str, io::Error)> {
    let deadline = Instant::now() + cfg.timeout;
    while Instant::now() < deadline {
        match sockinfo::tcp_info(&stream) {
            Ok(info) if info.unacked > 0 => thread::sleep(Duration::from_millis(1)),
            _ => break,
        }
    }
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| ("setsockopt(SO_LINGER)", e))?;
    drop(stream);
    emit(tx, ServerEvent::Aborted, None);
    Ok(())
}

/// One `recv()`, reported with what it returned (empty: EOF).
fn recv_and_report(
    stream: &mut TcpStream,
    buf: &mut [u8],
    tx: &Notify,
) -> Result<usize, (&'static str, io::Error)> {
    let n = stream.read(buf).map_err(|e| ("recv", e))?;
    let data = buf[..n].to_vec();
    emit(tx, ServerEvent::Received { data }, Some(stream));
    Ok(n)
}

/// `accept()` that gives up after `timeout`.
fn accept_within(listener: &TcpListener, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no connection arrived",
            ));
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => return listener.accept(),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}
