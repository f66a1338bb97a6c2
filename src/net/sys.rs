//! The only `unsafe` code of the lab's network set-up: the SIOCETHTOOL ioctl
//! that switches checksum offload off, in-process (a fresh machine has no
//! `ethtool` binary).
//!
//! Privileged: needs CAP_NET_ADMIN in the current network namespace.
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
