//! The kernel's own view of TCP sockets, read without privileges:
//!
//! - [`tcp_info`]: `getsockopt(IPPROTO_TCP, TCP_INFO)` on a socket this
//!   process holds (state, RTT, retransmissions, window), as `ss -ti` shows;
//! - [`sockets_on_port`]: one `NETLINK_SOCK_DIAG` dump of every IPv4 TCP
//!   socket in the caller's network namespace, in every state including the
//!   request sockets of half-open connections (`TCP_NEW_SYN_RECV`), as
//!   `ss -tan` shows, filtered on a port.
//!
//! Both report states as [`State`] (RFC 9293 names, via
//! [`State::from_linux`]). Neither needs root. The only `unsafe` code is the
//! `getsockopt` call in the private `sys` module below.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use crate::tcp::State;
pub use crate::tcp::TcpInfo;

/// Linux's `TCP_NEW_SYN_RECV` (`include/net/tcp_states.h`): the request
/// socket the kernel keeps for a connection whose SYN it has answered but
/// whose handshake is not complete (RFC 9293's SYN-RECEIVED).
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// How long one `sockets_on_port` call may wait for the kernel's answer.
pub const SOCK_DIAG_TIMEOUT: Duration = Duration::from_secs(2);

/// The receive buffer for one netlink read: the kernel's dump messages are
/// at most 32 KiB (`NLMSG_GOODSIZE` grown up to 32 KiB by `netlink_dump`).
const NETLINK_RECV_BUFFER_LEN: usize = 64 * 1024;

/// An upper bound on the netlink reads of one dump (each carries dozens of
/// sockets), so that a misbehaving kernel cannot keep us looping.
const MAX_NETLINK_READS: usize = 100_000;

/// The sequence number we put on our dump request and expect back.
const DUMP_SEQUENCE: u32 = 0x5_1_A_C;

/// Reads the kernel's `TCP_INFO` for a TCP socket this process holds
/// (a `TcpStream`, a `TcpListener`, a socket2 `Socket`…).
///
/// # Errors
///
/// The `getsockopt` error (`ENOTSOCK`, `EOPNOTSUPP` for a non-TCP socket),
/// or `InvalidData` if the kernel reports a state number it does not
/// document.
pub fn tcp_info(sock: &impl AsFd) -> io::Result<TcpInfo> {
    let raw = sys::tcp_info(sock)?;
    let state = State::from_linux(raw.tcpi_state).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("TCP_INFO reports unknown state {}", raw.tcpi_state),
        )
    })?;
    let micros = |us: u32| Duration::from_micros(u64::from(us));
    let millis = |ms: u32| Duration::from_millis(u64::from(ms));
    Ok(TcpInfo {
        state,
        rtt: micros(raw.tcpi_rtt),
        rttvar: micros(raw.tcpi_rttvar),
        rto: micros(raw.tcpi_rto),
        // `~0U` when no RTT sample exists yet (listeners).
        min_rtt: if raw.tcpi_min_rtt == u32::MAX {
            Duration::ZERO
        } else {
            micros(raw.tcpi_min_rtt)
        },
        retransmits: raw.tcpi_retransmits,
        backoff: raw.tcpi_backoff,
        total_retrans: raw.tcpi_total_retrans,
        snd_cwnd: raw.tcpi_snd_cwnd,
        snd_ssthresh: raw.tcpi_snd_ssthresh,
        unacked: raw.tcpi_unacked,
        rcv_mss: raw.tcpi_rcv_mss,
        snd_mss: raw.tcpi_snd_mss,
        snd_wnd: raw.tcpi_snd_wnd,
        rcv_wnd: raw.tcpi_rcv_wnd,
        bytes_acked: raw.tcpi_bytes_acked,
        bytes_received: raw.tcpi_bytes_received,
        segs_out: raw.tcpi_segs_out,
        segs_in: raw.tcpi_segs_in,
        last_data_sent: millis(raw.tcpi_last_data_sent),
        last_data_recv: millis(raw.tcpi_last_data_recv),
    })
}

/// One IPv4 TCP socket as `ss -tan` lists it, from the kernel's
/// `inet_diag_msg` (`include/uapi/linux/inet_diag.h`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSocket {
    /// Our end (`0.0.0.0:port` for a listener bound to every address).
    pub local: SocketAddr,
    /// The peer (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// The state in RFC 9293 names; a request socket is `SynReceived`.
    pub state: State,
    /// The kernel's own state number (`TCP_ESTABLISHED` = 1 …
    /// `TCP_CLOSING` = 11). sock_diag reports a request socket
    /// (`TCP_NEW_SYN_RECV` inside the kernel) as `TCP_SYN_RECV` (3): see
    /// [`KernelSocket::is_request`].
    pub linux_state: u8,
    /// Listener: connections waiting in the accept queue. Otherwise: bytes
    /// received and not yet read.
    pub recv_queue: u32,
    /// Listener: the backlog. Otherwise: bytes sent and not yet acknowledged.
    pub send_queue: u32,
    /// The retransmissions the kernel counts on the active timer (SYN-ACK
    /// retransmissions for a request socket).
    pub retransmits: u8,
    /// The owner's user id.
    pub uid: u32,
    /// The socket's inode (0 for request and TIME-WAIT sockets).
    pub inode: u32,
}

impl KernelSocket {
    /// Whether this is a half-open connection held as a request socket: a
    /// SYN answered by SYN-ACK whose handshake has not completed, so no full
    /// socket (and no inode) exists yet. `inet_req_diag_fill` reports these
    /// as SYN-RECV with inode 0. (A TCP Fast Open child not yet accepted
    /// looks the same.)
    pub fn is_request(&self) -> bool {
        self.state == State::SynReceived && self.inode == 0
    }

    fn from_header(header: &InetResponseHeader) -> Option<KernelSocket> {
        let id = &header.socket_id;
        let retransmits = match header.timer {
            Some(netlink_packet_sock_diag::inet::Timer::Retransmit(_, n)) => n,
            _ => 0,
        };
        Some(KernelSocket {
            local: SocketAddr::new(id.source_address, id.source_port),
            remote: SocketAddr::new(id.destination_address, id.destination_port),
            state: State::from_linux(header.state)?,
            linux_state: header.state,
            recv_queue: header.recv_queue,
            send_queue: header.send_queue,
            retransmits,
            uid: header.uid,
            inode: header.inode,
        })
    }

    /// Whether the local or the remote port is `port`.
    pub fn uses_port(&self, port: u16) -> bool {
        self.local.port() == port || self.remote.port() == port
    }
}

/// Lists the IPv4 TCP sockets of the caller's network namespace, in every
/// state (request sockets in SYN-RECEIVED and TIME-WAIT included), whose
/// local or remote port is `port`: what `ss -tan` shows for that port.
///
/// One `NETLINK_SOCK_DIAG` socket and one dump request per call, bounded by
/// [`SOCK_DIAG_TIMEOUT`]. IPv6 sockets (including dual-stack listeners on
/// `[::]` and their IPv4-mapped connections) are not listed.
///
/// # Errors
///
/// The netlink socket's errors, an error the kernel returns for the dump,
/// `TimedOut` if the dump does not finish in time, or `InvalidData` for a
/// message that does not parse.
pub fn sockets_on_port(port: u16) -> io::Result<Vec<KernelSocket>> {
    let mut sockets = Vec::new();
    dump_ipv4_tcp(|socket| {
        if socket.uses_port(port) {
            sockets.push(socket);
        }
    })?;
    Ok(sockets)
}

/// Dumps every IPv4 TCP socket of the namespace into `each`.
fn dump_ipv4_tcp(mut each: impl FnMut(KernelSocket)) -> io::Result<()> {
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    socket2::SockRef::from(&socket).set_read_timeout(Some(SOCK_DIAG_TIMEOUT))?;

    let request = dump_request();
    let mut out = vec![0; request.buffer_len()];
    request.serialize(&mut out);
    socket.send(&out, 0)?;

    let deadline = Instant::now() + SOCK_DIAG_TIMEOUT;
    let mut buf = vec![0u8; NETLINK_RECV_BUFFER_LEN];
    for _ in 0..MAX_NETLINK_READS {
        if Instant::now() > deadline {
            break;
        }
        let len = socket.recv(&mut &mut buf[..], libc::MSG_TRUNC)?;
        if len > buf.len() {
            return Err(invalid(format!(
                "netlink message of {len} bytes truncated to {}",
                buf.len()
            )));
        }
        if parse_dump_chunk(&buf[..len], &mut each)? {
            return Ok(());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the kernel's socket dump did not finish",
    ))
}

/// The `SOCK_DIAG_BY_FAMILY` dump request for IPv4 TCP, every state.
fn dump_request() -> NetlinkMessage<SockDiagMessage> {
    inet_request(
        NLM_F_REQUEST | NLM_F_DUMP,
        DUMP_SEQUENCE,
        AF_INET,
        SocketId::new_v4(),
    )
}

/// An `inet_diag_req_v2` for IPv4 TCP sockets in every state. StateFlags
/// names states 1..=11 only; bit 12 asks for the request sockets
/// (TCP_NEW_SYN_RECV) as well, as `ss` does.
fn inet_request(
    flags: u16,
    sequence: u32,
    family: u8,
    socket_id: SocketId,
) -> NetlinkMessage<SockDiagMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let states = StateFlags::from_bits_retain(StateFlags::all().bits() | 1 << TCP_NEW_SYN_RECV);
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states,
            socket_id,
        })
        .into(),
    );
    message.finalize();
    message
}

/// Parses one datagram of the dump; `Ok(true)` once the dump is done.
fn parse_dump_chunk(mut chunk: &[u8], each: &mut impl FnMut(KernelSocket)) -> io::Result<bool> {
    while !chunk.is_empty() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(chunk)
            .map_err(|e| invalid(format!("sock_diag message: {e}")))?;
        let len = message.header.length as usize;
        if len == 0 {
            return Err(invalid("netlink message of length 0".to_string()));
        }
        if message.header.sequence_number == DUMP_SEQUENCE {
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    if let Some(socket) = KernelSocket::from_header(&response.header) {
                        each(socket);
                    }
                }
                NetlinkPayload::Done(_) => return Ok(true),
                NetlinkPayload::Error(error) => {
                    return Err(match error.code {
                        Some(code) => io::Error::from_raw_os_error(-code.get()),
                        None => invalid("netlink acknowledgement instead of a dump".into()),
                    })
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(invalid("netlink overrun".to_string()));
                }
                _ => {}
            }
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        let aligned = (len + 3) & !3;
        chunk = chunk.get(aligned..).unwrap_or_default();
    }
    Ok(false)
}

/// The sequence number of exact look-ups.
const LOOKUP_SEQUENCE: u32 = 0x5_1_A_D;

/// A sock_diag socket kept open for exact look-ups of one connection.
///
/// A dump ([`sockets_on_port`]) walks the kernel's whole established-hash
/// table, which is sized by the host's memory: about 2 ms here, whatever the
/// namespace holds. An exact request names the 4-tuple, and the kernel
/// answers from one hash lookup (tens of microseconds, socket reused), fast
/// enough to ask between two segments of a live handshake.
pub struct SockDiag {
    socket: netlink_sys::Socket,
    buf: Vec<u8>,
}

impl SockDiag {
    /// Opens the netlink socket.
    ///
    /// # Errors
    /// The socket calls' errors.
    pub fn open() -> io::Result<SockDiag> {
        let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        socket2::SockRef::from(&socket).set_read_timeout(Some(SOCK_DIAG_TIMEOUT))?;
        Ok(SockDiag {
            socket,
            buf: vec![0u8; NETLINK_RECV_BUFFER_LEN],
        })
    }

    /// The IPv4 TCP socket whose local end is `local` and remote end
    /// `remote` (a request socket in SYN-RECV included), or `None` when the
    /// kernel has no such connection (a listener on `local` does not count).
    ///
    /// # Errors
    /// The netlink calls' errors, or an answer that does not parse.
    pub fn lookup(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<KernelSocket>> {
        let request = lookup_request(local, remote);
        let mut out = vec![0; request.buffer_len()];
        request.serialize(&mut out);
        self.socket.send(&out, 0)?;
        for _ in 0..MAX_LOOKUP_READS {
            let len = self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC)?;
            let chunk = self
                .buf
                .get(..len)
                .ok_or_else(|| invalid(format!("netlink answer of {len} bytes was truncated")))?;
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(chunk)
                .map_err(|e| invalid(format!("sock_diag answer: {e}")))?;
            if message.header.sequence_number != LOOKUP_SEQUENCE {
                continue;
            }
            return match message.payload {
                // The kernel's lookup falls back to a listener on the local
                // port; only the connection itself counts.
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    Ok(KernelSocket::from_header(&response.header)
                        .filter(|sock| sock.remote == remote))
                }
                NetlinkPayload::Error(error) => match error.code {
                    Some(code) if -code.get() == libc::ENOENT => Ok(None),
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    None => Ok(None),
                },
                other => Err(invalid(format!("unexpected sock_diag answer {other:?}"))),
            };
        }
        Err(invalid("no sock_diag answer to the look-up".into()))
    }
}

/// Stale answers to skip at most before the one asked for.
const MAX_LOOKUP_READS: usize = 16;

/// `inet_diag_req_v2` for exactly one 4-tuple (no `NLM_F_DUMP`).
fn lookup_request(local: SocketAddr, remote: SocketAddr) -> NetlinkMessage<SockDiagMessage> {
    let mut socket_id = if local.is_ipv6() {
        SocketId::new_v6()
    } else {
        SocketId::new_v4()
    };
    socket_id.source_port = local.port();
    socket_id.destination_port = remote.port();
    socket_id.source_address = local.ip();
    socket_id.destination_address = remote.ip();
    // INET_DIAG_NOCOOKIE: match on the addresses, not on a cookie.
    socket_id.cookie = [0xff; 8];
    let family = if local.is_ipv6() { AF_INET6 } else { AF_INET };
    inet_request(NLM_F_REQUEST, LOOKUP_SEQUENCE, family, socket_id)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The one system call the safe crates do not wrap.
#[allow(unsafe_code)]
mod sys {
    use std::io;
    use std::mem;
    use std::os::fd::{AsFd, AsRawFd};

    /// `getsockopt(fd, IPPROTO_TCP, TCP_INFO)`.
    pub(super) fn tcp_info(sock: &impl AsFd) -> io::Result<libc::tcp_info> {
        // SAFETY: `tcp_info` is a plain C struct of integers, for which
        // all-zero bytes are a valid value.
        let mut info: libc::tcp_info = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the fd is borrowed from a live `AsFd` for the whole call;
        // `info` is a writable buffer of `len` bytes that outlives the call,
        // and the kernel writes at most `len` bytes (it copies
        // min(len, sizeof(struct tcp_info)) and updates `len`).
        let rc = unsafe {
            libc::getsockopt(
                sock.as_fd().as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&raw mut info).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(info)
    }

    /// `setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, seconds)`: a listener
    /// that keeps a handshake's request socket until data arrives (tests
    /// use it to hold a connection in SYN-RECEIVED without root).
    #[cfg(test)]
    pub(super) fn set_tcp_defer_accept(sock: &impl AsFd, seconds: libc::c_int) -> io::Result<()> {
        // SAFETY: the fd is borrowed from a live `AsFd` for the whole call;
        // the option value is a `c_int` on our stack whose exact size we pass.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_fd().as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&raw const seconds).cast::<libc::c_void>(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::thread;

    /// Polls `probe` until it returns `Some`, for at most two seconds:
    /// state changes after a FIN are asynchronous.
    fn eventually<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(found) = probe() {
                return Some(found);
            }
            thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn loopback_pair() -> (TcpListener, TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (listener, client, server)
    }

    #[test]
    fn tcp_info_of_a_listener_says_listen() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let info = tcp_info(&listener).expect("TCP_INFO");
        assert_eq!(info.state, State::Listen);
    }

    #[test]
    fn tcp_info_follows_a_close_from_both_ends() {
        let (_listener, client, mut server) = loopback_pair();
        let info = tcp_info(&client).expect("TCP_INFO");
        assert_eq!(info.state, State::Established);
        assert!(info.snd_mss > 0 && info.rcv_mss > 0, "{info:?}");
        assert!(info.snd_cwnd > 0, "{info:?}");
        assert_eq!(
            tcp_info(&server).expect("TCP_INFO").state,
            State::Established
        );

        // The client closes first: its FIN is acknowledged at once, so it
        // sits in FIN-WAIT-2 and the server in CLOSE-WAIT.
        client.shutdown(Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).expect("read EOF");
        let client_state =
            eventually(|| Some(tcp_info(&client).ok()?.state).filter(|s| *s == State::FinWait2));
        assert_eq!(client_state, Some(State::FinWait2));
        assert_eq!(tcp_info(&server).expect("TCP_INFO").state, State::CloseWait);

        // Then the server closes. The client's socket takes the FIN into
        // TIME-WAIT, but Linux hands that state to a minisocket at once
        // (tcp_time_wait) and closes the full socket, so TCP_INFO on the
        // fd says CLOSED while sock_diag shows the TIME-WAIT entry. The
        // server's socket closes once the last ACK arrives (via LAST-ACK).
        let client_addr = client.local_addr().expect("addr");
        let port = client.peer_addr().expect("addr").port();
        server.shutdown(Shutdown::Write).expect("shutdown");
        let server_state =
            eventually(|| Some(tcp_info(&server).ok()?.state).filter(|s| *s == State::Closed));
        assert_eq!(server_state, Some(State::Closed));
        let client_state =
            eventually(|| Some(tcp_info(&client).ok()?.state).filter(|s| *s == State::Closed));
        assert_eq!(client_state, Some(State::Closed));
        let time_wait = sockets_on_port(port)
            .expect("dump")
            .into_iter()
            .find(|s| s.local == client_addr)
            .map(|s| s.state);
        assert_eq!(time_wait, Some(State::TimeWait));
    }

    #[test]
    fn tcp_info_on_a_udp_socket_is_an_error() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert!(tcp_info(&udp).is_err());
    }

    #[test]
    fn tcp_info_reports_rtt_once_data_was_acknowledged() {
        use std::io::Write;
        let (_listener, mut client, mut server) = loopback_pair();
        client.write_all(b"hello").expect("write");
        let mut got = [0u8; 5];
        server.read_exact(&mut got).expect("read");
        let info = eventually(|| tcp_info(&client).ok().filter(|i| i.bytes_acked >= 5))
            .expect("data acknowledged");
        assert!(info.rtt > Duration::ZERO, "{info:?}");
        assert_eq!(info.retransmits, 0);
        assert!(info.segs_out >= 2, "{info:?}");
    }

    #[test]
    fn sockets_on_port_lists_the_listener_and_both_ends() {
        let (listener, client, server) = loopback_pair();
        let port = listener.local_addr().expect("addr").port();
        let found = sockets_on_port(port).expect("sock_diag dump");

        let listen: Vec<_> = found.iter().filter(|s| s.state == State::Listen).collect();
        assert_eq!(listen.len(), 1, "{found:#?}");
        assert_eq!(listen[0].local, listener.local_addr().expect("addr"));
        assert!(listen[0].inode != 0);

        let client_end = found
            .iter()
            .find(|s| s.local == client.local_addr().expect("addr"))
            .expect("the client's socket");
        assert_eq!(client_end.state, State::Established);
        assert_eq!(client_end.remote.port(), port);
        let server_end = found
            .iter()
            .find(|s| s.local == server.local_addr().expect("addr") && s.state != State::Listen)
            .expect("the accepted socket");
        assert_eq!(server_end.state, State::Established);
        assert_eq!(server_end.remote, client.local_addr().expect("addr"));
        assert!(found.iter().all(|s| s.uses_port(port)));
        assert!(found.iter().all(|s| !s.is_request()));
    }

    #[test]
    fn sockets_on_port_sees_close_wait_and_fin_wait_2() {
        let (listener, client, _server) = loopback_pair();
        let port = listener.local_addr().expect("addr").port();
        client.shutdown(Shutdown::Write).expect("shutdown");
        let states = eventually(|| {
            let found = sockets_on_port(port).ok()?;
            let mut states: Vec<State> = found.iter().map(|s| s.state).collect();
            states.sort_by_key(|s| s.name());
            (states == [State::CloseWait, State::FinWait2, State::Listen]).then_some(states)
        });
        assert!(states.is_some(), "{:#?}", sockets_on_port(port));
    }

    #[test]
    fn sockets_on_port_of_an_unused_port_is_empty() {
        // Bind and drop: the port is free (nothing else binds a port the
        // kernel just handed out in this instant, on loopback).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        let found = sockets_on_port(port).expect("dump");
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn sockets_on_port_lists_a_request_socket_in_syn_received() {
        // With TCP_DEFER_ACCEPT the listener drops the handshake's bare ACK
        // and keeps only the request socket (TCP_NEW_SYN_RECV), while the
        // client already believes it is ESTABLISHED.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        sys::set_tcp_defer_accept(&listener, 10).expect("TCP_DEFER_ACCEPT");
        let port = listener.local_addr().expect("addr").port();
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let client_addr = client.local_addr().expect("addr");

        let found = sockets_on_port(port).expect("dump");
        let request = found
            .iter()
            .find(|s| s.remote == client_addr)
            .unwrap_or_else(|| panic!("no server-side socket for {client_addr}: {found:#?}"));
        assert!(request.is_request(), "{request:?}");
        assert_eq!(
            request.linux_state, 3,
            "TCP_SYN_RECV as sock_diag reports it"
        );
        assert_eq!(request.state, State::SynReceived);
        assert_eq!(request.local, listener.local_addr().expect("addr"));
        let client_end = found
            .iter()
            .find(|s| s.local == client_addr)
            .expect("client");
        assert_eq!(client_end.state, State::Established);
    }

    #[test]
    fn lookup_finds_both_ends_of_a_connection_and_nothing_else() {
        let (listener, client, server) = loopback_pair();
        let (client_addr, server_addr) =
            (client.local_addr().unwrap(), server.local_addr().unwrap());
        let mut diag = SockDiag::open().unwrap();
        let found = diag.lookup(server_addr, client_addr).unwrap().unwrap();
        assert_eq!(found.state, State::Established);
        assert_eq!(found.local, server_addr);
        let other = diag.lookup(client_addr, server_addr).unwrap().unwrap();
        assert_eq!(other.remote, server_addr);
        // The same socket answers again (the netlink socket is reused).
        assert!(diag.lookup(server_addr, client_addr).unwrap().is_some());
        let nobody = SocketAddr::new(client_addr.ip(), 1);
        assert_eq!(diag.lookup(server_addr, nobody).unwrap(), None);
        drop(listener);
    }

    #[test]
    fn lookup_finds_an_ipv6_connection() {
        // `lab -6` asks about [2001:2::1]:port ⇄ [2001:2::2]:port the same way.
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback here; skipped");
            return;
        };
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (client_addr, server_addr) =
            (client.local_addr().unwrap(), server.local_addr().unwrap());
        assert!(server_addr.is_ipv6());
        let mut diag = SockDiag::open().unwrap();
        let found = diag.lookup(server_addr, client_addr).unwrap().unwrap();
        assert_eq!(found.state, State::Established);
        assert_eq!((found.local, found.remote), (server_addr, client_addr));
        let nobody = SocketAddr::new(client_addr.ip(), 1);
        assert_eq!(diag.lookup(server_addr, nobody).unwrap(), None);
    }

    #[test]
    fn parse_dump_chunk_rejects_garbage() {
        let mut seen = 0;
        let result = parse_dump_chunk(&[0xff; 7], &mut |_| seen += 1);
        assert!(result.is_err());
        assert_eq!(seen, 0);
    }

    #[test]
    fn dump_request_asks_for_request_sockets_too() {
        let request = dump_request();
        let NetlinkPayload::InnerMessage(SockDiagMessage::InetRequest(inner)) = &request.payload
        else {
            panic!("not an inet request: {request:?}");
        };
        assert_ne!(inner.states.bits() & (1 << TCP_NEW_SYN_RECV), 0);
        assert_ne!(inner.states.bits() & (1 << 10), 0, "LISTEN");
        assert_eq!(request.header.flags, NLM_F_REQUEST | NLM_F_DUMP);
    }
}
