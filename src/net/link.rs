//! The client's wire: a `Link` sends and receives whole Ethernet frames.
//! [`PnetLink`] is an AF_PACKET socket through pnet's datalink channel;
//! tests use an in-memory fake.
//!
//! Privileged: opening a [`PnetLink`] needs CAP_NET_RAW.

use std::collections::VecDeque;
use std::io;
use std::os::fd::IntoRawFd;
use std::time::{Duration, Instant};

use pnet::datalink::{self, Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};

use crate::wire::bpf::Insn;
use crate::wire::{MacAddr, ETHERNET_HEADER_LEN};

/// pnet's receive timeout is fixed when the channel is made (libpnet PR
/// #650 is unmerged), so it is short and [`Link::recv`] loops to its own
/// deadline. `poll()` counts milliseconds: 1 ms is the shortest.
pub const READ_TIMEOUT: Duration = Duration::from_millis(1);

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

/// A pnet datalink channel on one interface.
pub struct PnetLink {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
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
        Self::open_with(name, false, None)
    }

    /// As [`PnetLink::open`], receiving only the frames `filter` accepts
    /// (a classic BPF program from [`crate::wire::bpf`], attached before
    /// the socket is bound, so no frame gets past it).
    ///
    /// # Errors
    /// As [`PnetLink::open`]; `InvalidInput` when the kernel rejects the
    /// program.
    pub fn open_filtered(name: &str, filter: &[Insn]) -> io::Result<PnetLink> {
        Self::open_with(name, false, Some(filter))
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
        Self::open_with(name, ignore_outgoing, Some(filter))
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
        let mut link = Self::open_with(name, true, filter)?;
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

    fn open_with(name: &str, loopback: bool, filter: Option<&[Insn]>) -> io::Result<PnetLink> {
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
        let config = datalink::Config {
            read_timeout: Some(READ_TIMEOUT),
            read_buffer_size: 65536,
            write_buffer_size: 65536,
            promiscuous: false,
            socket_fd: if loopback || filter.is_some() {
                // Our own socket, not yet bound: pnet binds it (and owns
                // and closes it from here on), so the filter is in place
                // before the first frame can be queued.
                let sock = super::sys::packet_socket(loopback)?;
                if let Some(program) = filter {
                    super::sys::attach_filter(&sock, program).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("attaching the capture filter: {e}"),
                        )
                    })?;
                }
                Some(sock.into_raw_fd())
            } else {
                None
            },
            ..datalink::Config::default()
        };
        let echoes = loopback.then(VecDeque::new);
        match datalink::channel(&iface, config)? {
            Channel::Ethernet(tx, rx) => Ok(PnetLink {
                tx,
                rx,
                mac,
                echoes,
                raw_tx: None,
            }),
            _ => Err(io::Error::other("pnet returned a non-Ethernet channel")),
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
            return Ok(());
        }
        self.tx
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("the pnet sender is closed")))
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        if Instant::now() >= deadline {
            return Ok(None);
        }
        match self.rx.next() {
            Ok(frame) => {
                if let Some(echoes) = &mut self.echoes {
                    if let Some(i) = echoes.iter().position(|sent| sent == frame) {
                        // Our own frame, back in through lo.
                        echoes.remove(i);
                        return Ok(None);
                    }
                }
                Ok(Some(frame.to_vec()))
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }
}
