//! The client's wire: a `Link` sends and receives whole Ethernet frames.
//! [`PnetLink`] is an AF_PACKET socket through pnet's datalink channel;
//! tests use an in-memory fake.
//!
//! Privileged: opening a [`PnetLink`] needs CAP_NET_RAW.

use std::io;
use std::time::{Duration, Instant};

use pnet::datalink::{self, Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};

use crate::wire::MacAddr;

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

/// A pnet datalink channel on one interface.
pub struct PnetLink {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    mac: MacAddr,
}

impl PnetLink {
    /// Opens an AF_PACKET channel on the interface called `name`.
    ///
    /// # Errors
    /// `NotFound` for an unknown interface, `PermissionDenied` without
    /// CAP_NET_RAW.
    pub fn open(name: &str) -> io::Result<PnetLink> {
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
            ..datalink::Config::default()
        };
        match datalink::channel(&iface, config)? {
            Channel::Ethernet(tx, rx) => Ok(PnetLink { tx, rx, mac }),
            _ => Err(io::Error::other("pnet returned a non-Ethernet channel")),
        }
    }
}

impl Link for PnetLink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("the pnet sender is closed")))
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        if Instant::now() >= deadline {
            return Ok(None);
        }
        match self.rx.next() {
            Ok(frame) => Ok(Some(frame.to_vec())),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }
}
