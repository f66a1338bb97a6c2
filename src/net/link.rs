//! The client's wire: a `Link` sends and receives whole Ethernet frames.
//! [`PnetLink`] is an AF_PACKET socket through pnet's datalink channel;
//! tests use an in-memory fake.
//!
//! Privileged: opening a [`PnetLink`] needs CAP_NET_RAW.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::socket::{recv, send, MsgFlags};
use nix::sys::time::TimeSpec;
use pnet::datalink::{self, Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};

use crate::wire::bpf::Insn;
use crate::wire::{MacAddr, ETHERNET_HEADER_LEN};

/// The longest [`Link::recv`] blocks in one call, so the caller checks its
/// flags (Ctrl-C) at least this often.
pub const READ_TIMEOUT: Duration = Duration::from_millis(1);

/// After each frame sent or received, [`PnetLink`] polls its socket
/// without sleeping for this long before it blocks: the answer to a
/// segment tends to come within tens of microseconds, and a thread woken
/// from sleep takes about as long again to run (a kernel client answers
/// from the softirq that received the segment). It yields the CPU between
/// polls, so a server on the same CPU runs first. Bounded, so a quiet
/// connection costs at most this much CPU per frame.
pub const SPIN: Duration = Duration::from_micros(500);

/// At most this many non-blocking reads in one [`PnetLink::recv`] call
/// (each is a system call of about a microsecond, so [`SPIN`] ends first).
const MAX_READS: usize = 100_000;

/// The largest frame [`PnetLink`] reads (the MTU of `lo` is 65536).
const FRAME_BUFFER: usize = 65536 + 64;

/// A link that carries Ethernet frames.
pub trait Link {
    /// Sends one frame.
    ///
    /// # Errors
    /// The socket's error.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;

    /// Waits for the next frame until `deadline`. `Ok(None)` means the
    /// deadline passed, or an early return so the caller can check a flag
    /// (at most [`READ_TIMEOUT`] late).
    ///
    /// # Errors
    /// The socket's error.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>>;

    /// This end's MAC address.
    fn mac(&self) -> MacAddr;
}

/// How many of our own sent frames [`PnetLink`] remembers to recognise
/// their looped-back copies on `lo`.
const ECHO_MEMORY: usize = 16;

/// An AF_PACKET socket on one interface, bound by pnet's datalink
/// channel; frames are read and written on the socket directly (pnet's
/// sender polls before every write, its receiver sleeps in `poll()` by
/// whole milliseconds).
pub struct PnetLink {
    /// pnet's channel, kept for the socket it bound (it closes it).
    _channel: (Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>),
    /// The same socket, for our own reads and writes.
    sock: OwnedFd,
    buf: Vec<u8>,
    /// Until when [`Link::recv`] polls without sleeping ([`SPIN`]).
    spin_until: Option<Instant>,
    /// Whether it does so at all: `synack connect`'s links do. The lab's
    /// does not: its client checks between frames whether its server
    /// thread has read the last write (`Observer::may_write`), which a
    /// spinning wait would leave unchecked until the next frame.
    spin: bool,
    mac: MacAddr,
    /// Frames we sent whose looped-back copy has not come back yet
    /// (only on a loopback link).
    echoes: Option<VecDeque<Vec<u8>>>,
    /// On `lo`: a raw IPv4 socket that sends our packets (see
    /// [`PnetLink::open_loopback`]).
    raw_tx: Option<socket2::Socket>,
}

impl PnetLink {
    /// Opens an AF_PACKET channel on the interface called `name`.
    ///
    /// # Errors
    /// `NotFound` for an unknown interface, `PermissionDenied` without
    /// CAP_NET_RAW.
    pub fn open(name: &str) -> io::Result<PnetLink> {
        Self::open_with(name, false, false, None)
    }

    /// As [`PnetLink::open`], receiving only the frames `filter` accepts
    /// (a classic BPF program from [`crate::wire::bpf`], attached before
    /// the socket is bound, so no frame gets past it), and polling
    /// [`SPIN`] long after each frame before it sleeps (`synack connect`).
    ///
    /// # Errors
    /// As [`PnetLink::open`]; `InvalidInput` when the kernel rejects the
    /// program.
    pub fn open_filtered(name: &str, filter: &[Insn]) -> io::Result<PnetLink> {
        Self::open_with(name, false, true, Some(filter))
    }

    /// A receive-only capture of the frames `filter` accepts on `name`
    /// (`synack watch`). With `ignore_outgoing` the socket skips the frames
    /// the host sends (`PACKET_IGNORE_OUTGOING`): right on `lo`, where each
    /// frame is both sent and received; elsewhere outgoing frames are the
    /// host's own traffic and must be seen.
    ///
    /// # Errors
    /// As [`PnetLink::open_filtered`].
    pub fn open_capture(
        name: &str,
        ignore_outgoing: bool,
        filter: &[Insn],
    ) -> io::Result<PnetLink> {
        Self::open_with(name, ignore_outgoing, false, Some(filter))
    }

    /// A link on the loopback interface `name`, where every frame is both
    /// sent and received:
    /// - the AF_PACKET socket ignores outgoing frames
    ///   (`PACKET_IGNORE_OUTGOING`, set on a socket handed to pnet, whose
    ///   receiver drops the packet type), so each kernel segment arrives
    ///   once, and the copy of each frame we sent that comes back in is
    ///   dropped;
    /// - frames are sent through a raw IPv4 socket (`IPPROTO_RAW`, the
    ///   Ethernet header stripped): a packet injected with AF_PACKET has no
    ///   route attached, and the kernel drops one from 127.0.0.0/8 arriving
    ///   on an interface as a martian (unless `route_localnet`). The raw
    ///   socket's packets pass the output hook, so they carry `mark`
    ///   (SO_MARK, needs CAP_NET_ADMIN) for a firewall rule to spare them.
    ///
    /// # Errors
    /// As [`PnetLink::open`].
    pub fn open_loopback(
        name: &str,
        mark: Option<u32>,
        filter: Option<&[Insn]>,
    ) -> io::Result<PnetLink> {
        let mut link = Self::open_with(name, true, true, filter)?;
        link.echoes = Some(VecDeque::new());
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
        )?;
        if let Some(mark) = mark {
            raw.set_mark(mark)?;
        }
        link.raw_tx = Some(raw);
        Ok(link)
    }

    fn open_with(
        name: &str,
        ignore_outgoing: bool,
        spin: bool,
        filter: Option<&[Insn]>,
    ) -> io::Result<PnetLink> {
        let iface: NetworkInterface = datalink::interfaces()
            .into_iter()
            .find(|iface| iface.name == name)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no interface '{name}'"))
            })?;
        let mac = iface.mac.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface '{name}' has no MAC address"),
            )
        })?;
        // Our own socket, not yet bound: pnet binds it (and owns and
        // closes it from here on), so the filter is in place before the
        // first frame can be queued. We keep a duplicate to read and write.
        let sock = super::sys::packet_socket(ignore_outgoing)?;
        if let Some(program) = filter {
            super::sys::attach_filter(&sock, program).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("attaching the capture filter: {e}"),
                )
            })?;
        }
        let ours = sock.try_clone()?;
        let config = datalink::Config {
            read_timeout: Some(READ_TIMEOUT),
            read_buffer_size: 2048,
            write_buffer_size: 2048,
            promiscuous: false,
            socket_fd: Some(sock.into_raw_fd()),
            ..datalink::Config::default()
        };
        match datalink::channel(&iface, config)? {
            Channel::Ethernet(tx, rx) => Ok(PnetLink {
                _channel: (tx, rx),
                sock: ours,
                buf: vec![0; FRAME_BUFFER],
                spin_until: None,
                spin,
                mac,
                echoes: None,
                raw_tx: None,
            }),
            _ => Err(io::Error::other("pnet returned a non-Ethernet channel")),
        }
    }

    /// One frame if one is queued, without waiting.
    fn read_now(&mut self) -> io::Result<Option<usize>> {
        match recv(self.sock.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => Ok(Some(n)),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sleeps until a frame is queued or `timeout` passed (`ppoll`, to the
    /// nanosecond); whether one is.
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Link for PnetLink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if let Some(echoes) = &mut self.echoes {
            if echoes.len() == ECHO_MEMORY {
                echoes.pop_front();
            }
            echoes.push_back(frame.to_vec());
        }
        if let Some(raw) = &self.raw_tx {
            let packet = frame.get(ETHERNET_HEADER_LEN..).unwrap_or_default();
            // The IPv4 destination: bytes 16..20 of the header.
            let dst = packet
                .get(16..20)
                .map(|b| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                .ok_or_else(|| io::Error::other("a frame too short for IPv4"))?;
            raw.send_to(packet, &std::net::SocketAddrV4::new(dst, 0).into())?;
        } else {
            // Bound to the interface: no address needed.
            send(self.sock.as_raw_fd(), frame, MsgFlags::empty())?;
        }
        if self.spin {
            self.spin_until = Some(Instant::now() + SPIN);
        }
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        for _ in 0..MAX_READS {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if let Some(n) = self.read_now()? {
                if self.spin {
                    self.spin_until = Some(Instant::now() + SPIN);
                }
                let frame = &self.buf[..n];
                if let Some(echoes) = &mut self.echoes {
                    if let Some(i) = echoes.iter().position(|sent| sent == frame) {
                        // Our own frame, back in through lo.
                        echoes.remove(i);
                        return Ok(None);
                    }
                }
                return Ok(Some(frame.to_vec()));
            }
            if self.spin_until.is_some_and(|until| now < until) {
                // Lets a task waiting for this CPU (often the server the
                // frame is for) run first.
                std::thread::yield_now();
                continue;
            }
            if !self.wait_readable((deadline - now).min(READ_TIMEOUT))? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }
}
