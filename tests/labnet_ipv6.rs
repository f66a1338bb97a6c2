//! The lab's IPv6 network (issue 17): in a fresh private namespace,
//! `build_veth_pair_ipv6` puts 2001:2::1/64 on srv0 usable at once, so a
//! kernel `TcpListener` binds [2001:2::1]:port right away; the naive set-up
//! (DAD on) is shown to fail the same bind, which is why the sysctls are
//! written first. Each test runs in a thread of its own that unshared its
//! network namespace (namespaces are per thread; `ip` forked from it works
//! there), so the host is never touched.
//!
//! Needs root: skips loudly without, fails under CI=true.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener};
use std::process::Command;
use std::time::Instant;

use synack::net::labnet;

fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_server_binds_its_ipv6_address_at_once() {
    require_root!();
    let (took, addrs, checks) = in_private_netns(|| {
        let start = Instant::now();
        labnet::build_veth_pair_ipv6().expect("build the IPv6 lab network");
        let (listener, addr) = labnet::bind_server_ipv6(8080).expect("bind [2001:2::1]:8080");
        let took = start.elapsed();
        assert_eq!(addr.to_string(), "[2001:2::1]:8080");
        drop(listener);
        // A kernel-chosen port too.
        let (_l, any) = labnet::bind_server_ipv6(0).expect("bind [2001:2::1]:0");
        assert_ne!(any.port(), 0);
        let checks = [
            sysctl("/proc/sys/net/ipv6/conf/srv0/accept_dad"),
            sysctl("/proc/sys/net/ipv6/conf/srv0/router_solicitations"),
            sysctl("/proc/sys/net/ipv6/conf/srv0/disable_ipv6"),
            sysctl("/proc/sys/net/ipv6/conf/cli0/disable_ipv6"),
            sysctl("/proc/sys/net/ipv6/conf/lo/disable_ipv6"),
        ];
        (took, ip("-6 addr show"), checks)
    });
    eprintln!("IPv6 lab network built and bound in {took:?}");
    assert_eq!(checks, ["0", "0", "0", "1", "1"], "{addrs}");
    // 2001:2::1 is srv0's only IPv6 address (no link-local), and not
    // tentative; the IPv4 address is there too.
    assert!(addrs.contains("inet6 2001:2::1/64 scope global"), "{addrs}");
    assert!(!addrs.contains("tentative"), "{addrs}");
    assert!(!addrs.contains("fe80::"), "{addrs}");
    assert_eq!(addrs.matches("inet6").count(), 1, "{addrs}");
}

#[test]
fn with_dad_on_the_same_bind_fails_first() {
    require_root!();
    let err = in_private_netns(|| {
        // What a plain set-up does: DAD on (the default), no `nodad`.
        std::fs::write("/proc/sys/net/ipv6/conf/default/accept_dad", "1").unwrap();
        ip("link set lo up");
        ip("link add srv0 type veth peer name cli0");
        ip("link set srv0 up");
        ip("link set cli0 up");
        ip("addr add 2001:2::1/64 dev srv0");
        let addr = SocketAddrV6::new("2001:2::1".parse::<Ipv6Addr>().unwrap(), 8080, 0, 0);
        TcpListener::bind(addr).expect_err("bound a tentative address")
    });
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable, "{err}");
}

#[test]
fn the_ipv4_lab_address_is_still_there() {
    require_root!();
    in_private_netns(|| {
        labnet::build_veth_pair_ipv6().expect("build");
        let v4 = std::net::TcpListener::bind((labnet::SERVER_IP, 0)).expect("bind IPv4");
        assert!(v4.local_addr().unwrap().is_ipv4());
    });
}
