//! The only `unsafe` code of the network set-up: the SIOCETHTOOL ioctl
//! that switches checksum offload off, in-process (a fresh machine has no
//! `ethtool` binary), and the AF_PACKET socket of `synack connect`
//! (`PACKET_IGNORE_OUTGOING` on `lo`, and the kernel filter that keeps only
//! the connection's frames).
//!
//! Privileged: needs CAP_NET_ADMIN (ethtool) or CAP_NET_RAW (the socket)
//! in the current network namespace.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// `ETHTOOL_SRXCSUM` (include/uapi/linux/ethtool.h): set RX checksum offload.
const ETHTOOL_SRXCSUM: u32 = 0x0000_0015;
/// `ETHTOOL_STXCSUM`: set TX checksum offload. Turning it off also turns off
/// the features that depend on it (scatter-gather, TSO, GSO on veth).
const ETHTOOL_STXCSUM: u32 = 0x0000_0017;

/// `struct ethtool_value` (include/uapi/linux/ethtool.h).
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Switches RX and TX checksum offload off on `ifname`, like
/// `ethtool -K IFNAME rx off tx off`.
///
/// # Errors
/// The ioctl's error: `EPERM` without CAP_NET_ADMIN, `ENODEV` for an unknown
/// interface, `EOPNOTSUPP` where the driver has no such switch.
pub fn disable_checksum_offload(ifname: &str) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    for cmd in [ETHTOOL_STXCSUM, ETHTOOL_SRXCSUM] {
        let mut value = EthtoolValue { cmd, data: 0 };
        // SAFETY: an all-zero ifreq is a valid value (a C struct of arrays and
        // a union of plain data).
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        let name = ifname.as_bytes();
        if name.len() >= req.ifr_name.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name '{ifname}' is too long"),
            ));
        }
        for (dst, src) in req.ifr_name.iter_mut().zip(name) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
        // SAFETY: SIOCETHTOOL reads `req` (a NUL-terminated name and a pointer
        // to `value`), both alive and exclusively borrowed for the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `PACKET_IGNORE_OUTGOING` (include/uapi/linux/if_packet.h, Linux 4.20):
/// the socket no longer receives the frames the host sends.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `SO_ATTACH_FILTER` (include/uapi/asm-generic/socket.h; the same number
/// on every architecture Linux has).
const SO_ATTACH_FILTER: libc::c_int = 26;
/// At most this many frames are thrown away by [`attach_filter`]'s drain.
const MAX_DRAINED: usize = 100_000;

/// A new AF_PACKET socket for pnet to bind (pnet's `Config::socket_fd`).
/// Created with protocol 0, so it receives nothing until pnet binds it to
/// one interface with ETH_P_ALL: a filter attached before then
/// ([`attach_filter`]) sees every frame the socket will ever queue.
///
/// With `ignore_outgoing` it will not see the frames the host sends
/// (`PACKET_IGNORE_OUTGOING`): on `lo` every frame is sent and received,
/// and without this each kernel segment arrives twice.
///
/// # Errors
/// `EPERM` without CAP_NET_RAW; `ENOPROTOOPT` for `ignore_outgoing`
/// before Linux 4.20.
pub fn packet_socket(ignore_outgoing: bool) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    if ignore_outgoing {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `one` (an int, its size given) during the call.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(sock)
}

/// Attaches the classic BPF `program` ([`crate::wire::bpf`]) to `sock`
/// (`SO_ATTACH_FILTER`): from then on the kernel queues only the frames
/// it accepts. Then drains what the socket queued before (a socket
/// already bound may hold frames that no filter saw; one from
/// [`packet_socket`], not yet bound, holds none).
///
/// # Errors
/// `EINVAL` when the kernel's checker rejects the program, `ENOMEM`.
pub fn attach_filter(sock: &impl AsRawFd, program: &[crate::wire::bpf::Insn]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a BPF program too long"))?;
    let filters: Vec<libc::sock_filter> = program
        .iter()
        .map(|insn| libc::sock_filter {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len,
        // The kernel copies the program and never writes through this.
        filter: filters.as_ptr().cast_mut(),
    };
    // SAFETY: setsockopt reads `fprog` and the `len` instructions it points
    // to (`filters`, alive until the end of this function) during the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1];
    for _ in 0..MAX_DRAINED {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf` (a frame
        // longer than that is cut, and thrown away anyway).
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::bpf::{Dir, Filter};
    use std::net::{SocketAddrV6, UdpSocket};

    /// The kernel's checker (`sk_chk_filter`) takes every IPv6 program
    /// the lab's tap may attach: any socket can carry a classic BPF
    /// filter, so a UDP socket on loopback is enough, without root.
    #[test]
    fn the_kernel_accepts_the_ipv6_programs() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b): (SocketAddrV6, SocketAddrV6) = (
            "[2001:2::2]:40000".parse().unwrap(),
            "[2001:2::1]:8080".parse().unwrap(),
        );
        for filter in [
            Filter::mld().not(),
            Filter::tcp6_connection(a, b),
            Filter::or([
                Filter::tcp6_connection(a, b),
                Filter::and([Filter::Icmp6Type(135), Filter::Host6(Dir::Either, *a.ip())]),
            ]),
        ] {
            let program = filter.compile().unwrap();
            attach_filter(&sock, &program).unwrap_or_else(|e| panic!("{filter:?}: {e}"));
        }
    }
}
