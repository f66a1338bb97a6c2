//! The only `unsafe` code of the network set-up: the SIOCETHTOOL ioctl
//! that switches checksum offload off, in-process (a fresh machine has no
//! `ethtool` binary), and an AF_PACKET socket with `PACKET_IGNORE_OUTGOING`
//! for `synack connect` on `lo`.
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

/// A new AF_PACKET socket that will not see outgoing frames, for pnet to
/// bind (pnet's `Config::socket_fd`). Created with protocol 0, so it
/// receives nothing until pnet binds it to one interface with ETH_P_ALL.
///
/// On `lo` every frame is sent and received: without this, each kernel
/// segment arrives twice (the outgoing and the incoming copy).
///
/// # Errors
/// `EPERM` without CAP_NET_RAW; `ENOPROTOOPT` before Linux 4.20.
pub fn packet_socket_ignoring_outgoing() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
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
    Ok(sock)
}
