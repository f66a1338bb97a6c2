//! The lab's private network: a network namespace that only this process
//! holds, with a veth pair inside it.
//!
//! ```text
//!  [ server: kernel TCP ]  srv0 198.18.0.1/24  ==veth==  cli0 (no IPv4)  [ synack plays 198.18.0.2 ]
//! ```
//!
//! Privileged: needs CAP_NET_ADMIN and CAP_NET_RAW (root, or a user
//! namespace). The namespace dies with the process, even on SIGKILL, so
//! nothing stays on the host.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};

use super::sys;

/// The server's side of the veth pair.
pub const SERVER_IF: &str = "srv0";
/// The client's side: no IPv4 address, so the kernel never answers for it.
pub const CLIENT_IF: &str = "cli0";
/// The server's address (RFC 2544 benchmarking range).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The address synack's client plays.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The prefix length of the lab's link.
pub const PREFIX_LEN: u8 = 24;

/// Why the lab's network could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LabNetError {
    #[error("needs root (or CAP_NET_ADMIN and CAP_NET_RAW): try sudo")]
    NotPrivileged,
    #[error("could not create a network namespace: {0}")]
    Unshare(#[source] Errno),
    #[error("the new network namespace is not empty: it holds {0}")]
    NotEmpty(String),
    #[error("could not run `ip` (iproute2): {0}")]
    IpMissing(#[source] io::Error),
    #[error("`ip -batch` failed ({status}): {stderr}")]
    IpFailed { status: String, stderr: String },
    #[error("could not switch checksum offload off on {ifname}: {source}")]
    Offload {
        ifname: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("could not write {path}: {source}")]
    Sysctl {
        path: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Moves the calling thread (and every thread it starts later) into a new,
/// empty network namespace.
///
/// Call it from the main thread before any other thread starts: threads
/// that already exist stay in the old namespace.
///
/// # Errors
/// [`LabNetError::NotPrivileged`] without CAP_SYS_ADMIN; `NotEmpty` if the
/// new namespace is not what we asked for.
pub fn enter_private_namespace() -> Result<(), LabNetError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| match errno {
        Errno::EPERM => LabNetError::NotPrivileged,
        other => LabNetError::Unshare(other),
    })?;
    let names: Vec<String> = nix::net::if_::if_nameindex()
        .map_err(LabNetError::Unshare)?
        .iter()
        .map(|iface| iface.name().to_string_lossy().into_owned())
        .collect();
    if names.iter().any(|name| name != "lo") {
        return Err(LabNetError::NotEmpty(names.join(", ")));
    }
    Ok(())
}

/// Builds the veth pair inside the current (private) namespace: IPv6 off
/// (no MLD/DAD/RS noise), `lo` up, `srv0` with 198.18.0.1/24, `cli0` with no
/// address, checksum offload off on both ends.
///
/// # Errors
/// When `ip` is missing or fails, or a sysctl or ioctl is refused.
pub fn build_veth_pair() -> Result<(), LabNetError> {
    // Before the veths exist, so they inherit it from `default`.
    disable_ipv6()?;
    let script = format!(
        "link set lo up\n\
         link add {SERVER_IF} type veth peer name {CLIENT_IF}\n\
         addr add {SERVER_IP}/{PREFIX_LEN} dev {SERVER_IF}\n\
         link set {SERVER_IF} up\n\
         link set {CLIENT_IF} up\n"
    );
    run_ip_batch(&script)?;
    for ifname in [SERVER_IF, CLIENT_IF] {
        sys::disable_checksum_offload(ifname)
            .map_err(|source| LabNetError::Offload { ifname, source })?;
    }
    Ok(())
}

/// The benchmark's second veth pair: the kernel client's link, identical to
/// the lab's but with an address on both ends.
pub const KERNEL_SERVER_IF: &str = "srv1";
pub const KERNEL_CLIENT_IF: &str = "kcli0";
pub const KERNEL_SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const KERNEL_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

/// Builds `srv1` (198.18.1.1/24) ⇄ `kcli0`, offload off on both, in the
/// current namespace. Move `kcli0` away with [`move_link_to_thread`].
///
/// # Errors
/// As [`build_veth_pair`].
pub fn build_kernel_client_pair() -> Result<(), LabNetError> {
    run_ip_batch(&format!(
        "link add {KERNEL_SERVER_IF} type veth peer name {KERNEL_CLIENT_IF}\n\
         addr add {KERNEL_SERVER_IP}/{PREFIX_LEN} dev {KERNEL_SERVER_IF}\n\
         link set {KERNEL_SERVER_IF} up\n"
    ))?;
    for ifname in [KERNEL_SERVER_IF, KERNEL_CLIENT_IF] {
        sys::disable_checksum_offload(ifname)
            .map_err(|source| LabNetError::Offload { ifname, source })?;
    }
    Ok(())
}

/// Moves `ifname` into the network namespace of thread `tid`
/// (`ip link set IF netns TID`).
///
/// # Errors
/// As [`build_veth_pair`].
pub fn move_link_to_thread(ifname: &str, tid: i32) -> Result<(), LabNetError> {
    run_ip_batch(&format!("link set {ifname} netns {tid}\n"))
}

/// In a thread that called `unshare(CLONE_NEWNET)` for itself and received
/// `kcli0`: IPv6 off, `lo` and `kcli0` up, 198.18.1.2/24 on `kcli0`.
///
/// # Errors
/// As [`build_veth_pair`].
pub fn configure_kernel_client() -> Result<(), LabNetError> {
    run_ip_batch(&format!(
        "link set lo up\n\
         addr add {KERNEL_CLIENT_IP}/{PREFIX_LEN} dev {KERNEL_CLIENT_IF}\n\
         link set {KERNEL_CLIENT_IF} up\n"
    ))
}

/// Silences IPv6 in the calling thread's namespace (before links arrive).
///
/// # Errors
/// When the sysctl is refused.
pub fn disable_ipv6() -> Result<(), LabNetError> {
    for path in [
        "/proc/sys/net/ipv6/conf/default/disable_ipv6",
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
    ] {
        match std::fs::write(path, b"1") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LabNetError::Sysctl { path, source }),
        }
    }
    Ok(())
}

/// Runs `ip -batch -` with `script` on its stdin: one process for every
/// change.
fn run_ip_batch(script: &str) -> Result<(), LabNetError> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(LabNetError::IpMissing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(LabNetError::IpMissing)?;
    }
    let out = child.wait_with_output().map_err(LabNetError::IpMissing)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabNetError::IpFailed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
