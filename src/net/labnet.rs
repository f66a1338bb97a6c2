//! The lab's private network: a network namespace that only this process
//! holds, with a veth pair inside it.
//!
//! ```text
//!  [ server: kernel TCP ]  srv0 198.18.0.1/24  ==veth==  cli0 (no IPv4)  [ synack plays 198.18.0.2 ]
//! ```
//!
//! Privileged: needs CAP_NET_ADMIN and CAP_NET_RAW. Root gets them on its
//! own; anyone else gets them in a new user namespace created together with
//! the network namespace ([`super::userns`]), where the kernel allows it.
//! The namespaces die with the process, even on SIGKILL, so nothing stays
//! on the host.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getegid, geteuid};

use super::sys;
use super::userns::{self, Blocker, UsernsStep, UsernsSysctls};

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
    #[error(
        "user namespaces are blocked on this host ({0}), so the lab needs root here: \
         `sudo synack lab` works instead"
    )]
    UsernsBlocked(Blocker),
    #[error("could not create a network namespace: {0}")]
    Unshare(#[source] Errno),
    #[error("could not enter a user namespace: {step}: {errno}")]
    Userns {
        step: UsernsStep,
        #[source]
        errno: Errno,
    },
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

/// How the lab got its private network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// Run as root: a new network namespace only.
    Root,
    /// Run as anyone else: a new user namespace too, where the caller
    /// (`uid`, `gid` outside) is root. Files it creates belong to the caller.
    User { uid: u32, gid: u32 },
}

/// Moves the calling thread (and every thread it starts later) into a new,
/// empty network namespace: as root, just that; otherwise inside a new user
/// namespace where the caller is root.
///
/// Call it from the main thread before any other thread starts: threads
/// that already exist stay in the old namespace, and the kernel refuses a
/// new user namespace to a process with threads (EINVAL).
///
/// # Errors
/// [`LabNetError::UsernsBlocked`] when a host setting forbids user
/// namespaces; [`LabNetError::NotPrivileged`] for other refusals;
/// `NotEmpty` if the new namespace is not what we asked for.
pub fn enter_private_namespace() -> Result<Namespace, LabNetError> {
    let ns = if geteuid().is_root() {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| match errno {
            Errno::EPERM => LabNetError::NotPrivileged,
            other => LabNetError::Unshare(other),
        })?;
        Namespace::Root
    } else {
        // Read before unshare: inside, until the maps are written, both
        // are the overflow id 65534.
        let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
        enter_user_namespace(uid, gid)
            .map_err(|(step, errno)| userns_error(step, errno, &UsernsSysctls::read()))?;
        Namespace::User { uid, gid }
    };
    let names: Vec<String> = nix::net::if_::if_nameindex()
        .map_err(LabNetError::Unshare)?
        .iter()
        .map(|iface| iface.name().to_string_lossy().into_owned())
        .collect();
    if names.iter().any(|name| name != "lo") {
        return Err(LabNetError::NotEmpty(names.join(", ")));
    }
    log::debug!("entered a private network namespace: {ns:?}");
    Ok(ns)
}

/// `unshare(CLONE_NEWUSER | CLONE_NEWNET)`, then map `uid`/`gid` to root
/// inside (user_namespaces(7): setgroups must be denied before an
/// unprivileged process may write gid_map).
fn enter_user_namespace(uid: u32, gid: u32) -> Result<(), (UsernsStep, Errno)> {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(|errno| (UsernsStep::Unshare, errno))?;
    let write = |step, path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| {
            let errno = e
                .raw_os_error()
                .map_or(Errno::UnknownErrno, Errno::from_raw);
            (step, errno)
        })
    };
    match write(UsernsStep::Setgroups, "/proc/self/setgroups", "deny".into()) {
        // Kernels before 3.19 have no such file and need no such step.
        Err((_, Errno::ENOENT)) | Ok(()) => {}
        Err(e) => return Err(e),
    }
    write(
        UsernsStep::UidMap,
        "/proc/self/uid_map",
        userns::id_map_line(0, uid),
    )?;
    write(
        UsernsStep::GidMap,
        "/proc/self/gid_map",
        userns::id_map_line(0, gid),
    )
}

/// The error for a user namespace step that failed: the host setting to
/// blame if one is, the generic "needs root" for other refusals.
fn userns_error(step: UsernsStep, errno: Errno, sysctls: &UsernsSysctls) -> LabNetError {
    match userns::diagnose(step, errno, sysctls) {
        Some(blocker) => LabNetError::UsernsBlocked(blocker),
        None if errno == Errno::EPERM => LabNetError::NotPrivileged,
        None => LabNetError::Userns { step, errno },
    }
}

impl LabNetError {
    /// The refusal behind a failed network set-up step (EPERM or EACCES),
    /// if that is what it was.
    fn refusal(&self) -> Option<Errno> {
        let errno = match self {
            LabNetError::Sysctl { source, .. } | LabNetError::Offload { source, .. } => {
                Errno::from_raw(source.raw_os_error()?)
            }
            // RTNETLINK's answer, as iproute2 prints strerror(EPERM).
            LabNetError::IpFailed { stderr, .. } if stderr.contains("Operation not permitted") => {
                Errno::EPERM
            }
            _ => return None,
        };
        matches!(errno, Errno::EPERM | Errno::EACCES).then_some(errno)
    }
}

/// [`build_veth_pair`] in the namespace `ns` entered: inside a user
/// namespace, a refusal is explained by the host setting that made the
/// namespace powerless (Ubuntu's AppArmor restriction), if one did.
///
/// # Errors
/// As [`build_veth_pair`], or [`LabNetError::UsernsBlocked`].
pub fn build_lab_network(ns: Namespace) -> Result<(), LabNetError> {
    explain_refusal(ns, build_veth_pair())
}

/// [`build_veth_pair_ipv6`] in the namespace `ns` entered (`lab -6`),
/// refusals explained as for [`build_lab_network`].
///
/// # Errors
/// As [`build_veth_pair_ipv6`], or [`LabNetError::UsernsBlocked`].
pub fn build_lab_network_ipv6(ns: Namespace) -> Result<(), LabNetError> {
    explain_refusal(ns, build_veth_pair_ipv6())
}

/// Inside a user namespace, a refusal is put down to the host setting
/// that made the namespace powerless, if one did.
fn explain_refusal(ns: Namespace, built: Result<(), LabNetError>) -> Result<(), LabNetError> {
    built.map_err(|err| match (ns, err.refusal()) {
        (Namespace::User { .. }, Some(errno)) => {
            match userns::diagnose(UsernsStep::NetworkSetup, errno, &UsernsSysctls::read()) {
                Some(blocker) => LabNetError::UsernsBlocked(blocker),
                None => err,
            }
        }
        _ => err,
    })
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
    disable_tail_loss_probes();
    wait_until_running(&[SERVER_IF, CLIENT_IF], LINK_READY_WITHIN);
    Ok(())
}

/// How long [`build_veth_pair`] waits for the veths to carry traffic.
pub const LINK_READY_WITHIN: Duration = Duration::from_secs(2);

/// Waits (bounded) until every link in `names` is operationally up
/// (`IFF_RUNNING`). Until the kernel's link watcher has run, a freshly
/// raised veth still has its no-op queue and silently drops what is sent:
/// under load that took the first ARP request, and the lab waited a
/// second for its retry. Past `within` the lab goes on (the ARP retry
/// still covers it).
fn wait_until_running(names: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let running = |name: &&str| {
            nix::ifaddrs::getifaddrs().is_ok_and(|mut addrs| {
                addrs.any(|a| {
                    a.interface_name == *name
                        && a.flags.contains(nix::net::if_::InterfaceFlags::IFF_RUNNING)
                })
            })
        };
        if names.iter().all(running) {
            return;
        }
        if Instant::now() >= deadline {
            log::debug!("links not running after {within:?}: {names:?}");
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Switches Linux's tail loss probes off in the lab's namespace
/// (`net.ipv4.tcp_early_retrans=0`), so the server's kernel retransmits on
/// its RFC 6298 timer alone, as the narration explains. With probes on,
/// a server whose reply and FIN were both unacknowledged resent its FIN
/// after 2·SRTT + 2 jiffies, about 5 ms on the veth: whenever synack's
/// client was held up that long (a loaded machine), the textbook close
/// grew a retransmission (3 of 30 runs with six busy loops on two cores).
/// Best effort: the lab still runs where the sysctl cannot be written.
fn disable_tail_loss_probes() {
    let path = "/proc/sys/net/ipv4/tcp_early_retrans";
    if let Err(e) = std::fs::write(path, b"0") {
        log::debug!("could not write {path}: {e}");
    }
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
    widen_ephemeral_ports()?;
    run_ip_batch(&format!(
        "link set lo up\n\
         addr add {KERNEL_CLIENT_IP}/{PREFIX_LEN} dev {KERNEL_CLIENT_IF}\n\
         link set {KERNEL_CLIENT_IF} up\n"
    ))
}

/// The ephemeral ports of the benchmark's kernel client: the widest range
/// Linux allows below the reserved ports, 64,512 ports instead of the
/// default 32768–60999 (28,232).
pub const KERNEL_CLIENT_PORTS: (u16, u16) = (1024, 65535);

/// Makes room, in the calling thread's namespace, for the benchmark's
/// kernel client and its tens of thousands of connections. It closes
/// first, so each cycle leaves its port in TIME-WAIT for 60 s: with the
/// default range, connect() ran out of ports after about 28,000 cycles
/// (EADDRNOTAVAIL). Both sysctls belong to the network namespace, so the
/// host keeps its own: `ip_local_port_range` widened to
/// [`KERNEL_CLIENT_PORTS`], and `tcp_tw_reuse` = 1, which lets connect()
/// take a port whose TIME-WAIT is more than a second old (the timestamps
/// option keeps the old connection's segments apart, RFC 7323 §5), so any
/// `--count` finishes however fast the cycles go.
///
/// # Errors
/// When a sysctl is refused.
pub fn widen_ephemeral_ports() -> Result<(), LabNetError> {
    let (low, high) = KERNEL_CLIENT_PORTS;
    for (path, value) in [
        (
            "/proc/sys/net/ipv4/ip_local_port_range",
            format!("{low} {high}"),
        ),
        ("/proc/sys/net/ipv4/tcp_tw_reuse", "1".to_string()),
    ] {
        std::fs::write(path, value).map_err(|source| LabNetError::Sysctl { path, source })?;
    }
    Ok(())
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

/// The server's IPv6 address: 2001:2::/48 is IPv6's benchmarking range
/// (RFC 5180), as 198.18.0.0/15 is IPv4's.
pub const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// The IPv6 address synack's client plays (no interface holds it, as for
/// IPv4: the client must answer Neighbor Solicitations for it itself).
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
/// The prefix length of the lab's IPv6 link.
pub const PREFIX6_LEN: u8 = 64;

/// The sysctls written before any link exists, so that every link made
/// afterwards inherits them from `default` (and `all` cannot override
/// them: for `accept_dad` the kernel takes the larger of `all` and the
/// link's own): no Duplicate Address Detection (an address is usable at
/// once instead of "tentative" for about a second, during which `bind`
/// fails with EADDRNOTAVAIL), no Router Solicitations, and IPv6 off
/// unless a link is given it back ([`build_veth_pair_ipv6`] does for
/// `srv0` only).
const IPV6_QUIET_DEFAULTS: [(&str, &[u8]); 6] = [
    ("/proc/sys/net/ipv6/conf/all/accept_dad", b"0"),
    ("/proc/sys/net/ipv6/conf/default/accept_dad", b"0"),
    ("/proc/sys/net/ipv6/conf/all/router_solicitations", b"0"),
    ("/proc/sys/net/ipv6/conf/default/router_solicitations", b"0"),
    ("/proc/sys/net/ipv6/conf/default/disable_ipv6", b"1"),
    ("/proc/sys/net/ipv6/conf/all/disable_ipv6", b"1"),
];

/// `srv0`'s own IPv6 settings, written once it exists and before it is
/// up: IPv6 on, and no link-local address generated (`addr_gen_mode` 1),
/// so 2001:2::1 is its only address: half the MLD reports (measured: 2
/// instead of 4 in the first 3 s) and every NDP message of the server's
/// comes from 2001:2::1.
const IPV6_SERVER_LINK: [(&str, &[u8]); 3] = [
    ("/proc/sys/net/ipv6/conf/srv0/accept_dad", b"0"),
    ("/proc/sys/net/ipv6/conf/srv0/addr_gen_mode", b"1"),
    ("/proc/sys/net/ipv6/conf/srv0/disable_ipv6", b"0"),
];

fn write_sysctls(settings: &[(&'static str, &[u8])]) -> Result<(), LabNetError> {
    for (path, value) in settings {
        std::fs::write(path, value).map_err(|source| LabNetError::Sysctl { path, source })?;
    }
    Ok(())
}

/// The lab's network for IPv6, in the current (private) namespace: the
/// same veth pair as [`build_veth_pair`] (198.18.0.1/24 on `srv0` too),
/// plus 2001:2::1/64 on `srv0`, usable at once (no DAD, `nodad`), no
/// link-local address, no router solicitations; `cli0` and every other
/// link keep IPv6 off, so the kernel never answers for the client.
///
/// What this does not silence: MLD. The kernel joins 2001:2::1's
/// solicited-node group and reports it (MLDv2, ICMPv6 143, from `::`),
/// twice in the first second (measured on Linux 6.x). A capture drops
/// those with `wire::bpf::Filter::mld().not()`.
///
/// # Errors
/// When `ip` is missing or fails, or a sysctl or ioctl is refused (no
/// IPv6 in this kernel: the IPv6 sysctls do not exist).
pub fn build_veth_pair_ipv6() -> Result<(), LabNetError> {
    write_sysctls(&IPV6_QUIET_DEFAULTS)?;
    run_ip_batch(&format!(
        "link set lo up\n\
         link add {SERVER_IF} type veth peer name {CLIENT_IF}\n\
         addr add {SERVER_IP}/{PREFIX_LEN} dev {SERVER_IF}\n"
    ))?;
    write_sysctls(&IPV6_SERVER_LINK)?;
    run_ip_batch(&format!(
        "addr add {SERVER_IP6}/{PREFIX6_LEN} dev {SERVER_IF} nodad\n\
         link set {SERVER_IF} up\n\
         link set {CLIENT_IF} up\n"
    ))?;
    for ifname in [SERVER_IF, CLIENT_IF] {
        sys::disable_checksum_offload(ifname)
            .map_err(|source| LabNetError::Offload { ifname, source })?;
    }
    disable_tail_loss_probes();
    wait_until_running(&[SERVER_IF, CLIENT_IF], LINK_READY_WITHIN);
    Ok(())
}

/// Binds a kernel `TcpListener` on [2001:2::1]:`port` (0: any free port)
/// and returns the address it got: the check that the server side of an
/// IPv6 lab is ready, right after [`build_veth_pair_ipv6`].
///
/// # Errors
/// The bind's error: EADDRNOTAVAIL while the address is still tentative
/// (DAD on) or absent.
pub fn bind_server_ipv6(port: u16) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddrV6::new(SERVER_IP6, port, 0, 0))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::userns::Sysctl;

    fn sysctls(clone: Sysctl, max: Sysctl, apparmor: Sysctl) -> UsernsSysctls {
        UsernsSysctls {
            unprivileged_userns_clone: clone,
            max_user_namespaces: max,
            apparmor_restrict_unprivileged_userns: apparmor,
        }
    }

    #[test]
    fn a_blocked_user_namespace_names_the_setting_and_sudo() {
        let cases = [
            (
                Errno::EPERM,
                sysctls(Sysctl::Value(0), Sysctl::Value(1000), Sysctl::Absent),
                "kernel.unprivileged_userns_clone=0",
            ),
            (
                Errno::ENOSPC,
                sysctls(Sysctl::Absent, Sysctl::Value(0), Sysctl::Absent),
                "user.max_user_namespaces=0",
            ),
            (
                Errno::EPERM,
                sysctls(Sysctl::Value(1), Sysctl::Value(1000), Sysctl::Value(1)),
                "kernel.apparmor_restrict_unprivileged_userns=1",
            ),
        ];
        for (errno, sysctls, setting) in cases {
            let message = userns_error(UsernsStep::Unshare, errno, &sysctls).to_string();
            assert_eq!(
                message,
                format!(
                    "user namespaces are blocked on this host ({setting}), so the lab \
                     needs root here: `sudo synack lab` works instead"
                )
            );
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn another_refusal_keeps_the_generic_needs_root_message() {
        // A seccomp filter (Docker's default) refuses unshare with EPERM
        // whatever the sysctls say.
        let open = sysctls(Sysctl::Absent, Sysctl::Value(1000), Sysctl::Absent);
        let err = userns_error(UsernsStep::Unshare, Errno::EPERM, &open);
        assert!(matches!(err, LabNetError::NotPrivileged));
        assert_eq!(
            err.to_string(),
            "needs root (or CAP_NET_ADMIN and CAP_NET_RAW): try sudo"
        );
    }

    #[test]
    fn other_errnos_say_which_step_failed() {
        let open = sysctls(Sysctl::Absent, Sysctl::Value(1000), Sysctl::Absent);
        let err = userns_error(UsernsStep::Unshare, Errno::EINVAL, &open);
        assert_eq!(
            err.to_string(),
            "could not enter a user namespace: unshare(CLONE_NEWUSER | CLONE_NEWNET): \
             EINVAL: Invalid argument"
        );
    }

    #[test]
    fn refusals_are_found_in_sysctl_ioctl_and_ip_failures() {
        let sysctl = LabNetError::Sysctl {
            path: "/proc/sys/net/ipv6/conf/all/disable_ipv6",
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(sysctl.refusal(), Some(Errno::EACCES));
        let ip = LabNetError::IpFailed {
            status: "exit status: 2".into(),
            stderr: "RTNETLINK answers: Operation not permitted\nCommand failed -:2".into(),
        };
        assert_eq!(ip.refusal(), Some(Errno::EPERM));
        let missing = LabNetError::Offload {
            ifname: SERVER_IF,
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert_eq!(missing.refusal(), None);
    }
}
