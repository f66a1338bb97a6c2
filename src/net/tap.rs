//! `synack lab --server-side FILE`: the server's end of the veth (srv0)
//! captured while the lab runs, by an AF_PACKET socket of its own, into its
//! own file. (Not a second interface of the client's pcapng: Wireshark does
//! not separate TCP streams by interface and would take every second copy
//! of a segment for a retransmission.)
//!
//! The socket is opened before the client sends anything, so the capture
//! starts before the first ARP request and SYN; frames queue in the socket
//! until the capture thread reads them. Each frame carries the kernel's
//! receive timestamp (`SO_TIMESTAMPNS`). At the end the thread drains the
//! socket for a bounded time and flushes the file.
//!
//! Privileged: an AF_PACKET socket needs CAP_NET_RAW.

use std::fs::File;
use std::io::{self, BufWriter, IoSliceMut, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags,
    SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

use crate::capture::writer::CaptureWriter;

/// How long one read waits, so the stop flag is seen promptly.
const READ_TIMEOUT: Duration = Duration::from_millis(5);
/// At the end, the socket is read until it stays empty this long …
const DRAIN_QUIET: Duration = Duration::from_millis(20);
/// … or at most this long in all.
const DRAIN_MAX: Duration = Duration::from_millis(500);
/// A frame larger than any the lab's veth carries (MTU 1500, offload off).
const FRAME_BUFFER: usize = 65_536;
/// Receive buffer asked for, so a burst waits in the kernel, not lost.
const SOCKET_BUFFER: usize = 4 << 20;
/// Frames of other interfaces skipped in one [`Tap::recv`] at most.
const MAX_SKIPPED: usize = 1024;
/// An upper bound on reads, whatever the clock says.
const MAX_READS: u64 = 10_000_000;

/// An AF_PACKET socket that keeps the frames of one interface.
pub struct Tap {
    fd: OwnedFd,
    ifindex: usize,
}

impl Tap {
    /// Opens a packet socket for every protocol and keeps the frames of
    /// `ifname` (both directions), with kernel timestamps.
    ///
    /// # Errors
    /// `PermissionDenied` without CAP_NET_RAW; `NotFound` for an unknown
    /// interface.
    pub fn open(ifname: &str) -> io::Result<Tap> {
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|e| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface '{ifname}': {e}"),
            )
        })? as usize;
        // Unbound, the socket sees every interface of the namespace; the
        // source address of each frame names its interface, so the others
        // are skipped (binding would need a hand-made sockaddr_ll).
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )?;
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(0, READ_TIMEOUT.as_micros() as _),
        )?;
        // Best effort: the default buffer holds a few hundred frames already.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &SOCKET_BUFFER);
        Ok(Tap { fd, ifindex })
    }

    /// From now on keeps only the frames the classic BPF `program` accepts
    /// (`lab -6 --server-side`: no MLD), and drops what queued before.
    ///
    /// # Errors
    /// The kernel rejects the program.
    pub fn keep_only(&self, program: &[crate::wire::bpf::Insn]) -> io::Result<()> {
        super::sys::attach_filter(&self.fd, program)
    }

    /// The next frame of the interface and when the kernel received or sent
    /// it; `Ok(None)` when none came within the read timeout.
    ///
    /// # Errors
    /// The socket's error.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(SystemTime, usize, usize)>> {
        // Frames of other interfaces are skipped, a bounded number per call.
        for _ in 0..MAX_SKIPPED {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match recvmsg::<LinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_TRUNC,
            ) {
                Ok(msg) => msg,
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if msg.address.map(|a| a.ifindex()) != Some(self.ifindex) {
                continue;
            }
            let mut at = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        at = Some(
                            SystemTime::UNIX_EPOCH
                                + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
                        );
                    }
                }
            }
            let len = msg.bytes;
            let kept = len.min(buf.len());
            return Ok(Some((at.unwrap_or_else(SystemTime::now), len, kept)));
        }
        Ok(None)
    }
}

/// The capture thread of `--server-side`.
pub struct ServerSideCapture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<usize>>,
}

impl ServerSideCapture {
    /// Starts recording `tap`'s frames into `writer`; the tap was opened
    /// before, so nothing sent after [`Tap::open`] is missed.
    ///
    /// # Errors
    /// Starting the thread.
    pub fn start(
        mut tap: Tap,
        mut writer: CaptureWriter<BufWriter<File>>,
    ) -> io::Result<ServerSideCapture> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("server-side-capture".into())
            .spawn(move || {
                let mut buf = vec![0u8; FRAME_BUFFER];
                let mut frames = 0usize;
                let mut drain_started: Option<Instant> = None;
                let mut last_frame = Instant::now();
                for _ in 0..MAX_READS {
                    if drain_started.is_none() && stopping.load(Ordering::Acquire) {
                        drain_started = Some(Instant::now());
                        last_frame = Instant::now();
                    }
                    match tap.recv(&mut buf)? {
                        Some((at, len, kept)) => {
                            frames += 1;
                            last_frame = Instant::now();
                            let frame = &buf[..kept];
                            if len > kept {
                                log::warn!("server side: a {len}-byte frame was cut to {kept}");
                            }
                            writer.record(at, frame, None).map_err(io::Error::other)?;
                        }
                        // Idle: put what was captured on disk.
                        None => writer.flush()?,
                    }
                    if let Some(started) = drain_started {
                        if last_frame.elapsed() >= DRAIN_QUIET || started.elapsed() >= DRAIN_MAX {
                            break;
                        }
                    }
                }
                writer.into_inner().flush()?;
                Ok(frames)
            })?;
        Ok(ServerSideCapture { stop, thread })
    }

    /// Drains the socket (for at most [`DRAIN_MAX`]), flushes the file and
    /// returns how many frames it holds.
    ///
    /// # Errors
    /// Reading the socket or writing the file.
    pub fn finish(self) -> io::Result<usize> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the server-side capture thread panicked")))
    }
}
