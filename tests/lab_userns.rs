//! `synack lab` without root (issue 7): the test starts as root, drops to
//! `nobody` and runs the binary, which must enter a user namespace by
//! itself and produce the same pcap as the root run, owned by `nobody`.
//! tshark checks the pcap, not our own parser.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_clean_capture, assert_lab_ok, flag_names, host_network};
use nix::unistd::{Gid, Uid, User};

/// The unprivileged user the test runs the lab as, and its primary group.
fn nobody() -> (Uid, Gid) {
    let user = User::from_name("nobody")
        .expect("reading the user database")
        .expect("this system has no user 'nobody'");
    (user.uid, user.gid)
}

/// A fresh directory that `nobody` can enter and write, holding a copy of
/// the binary it can run (the build directory may be closed to it).
fn nobody_dir(uid: Uid, gid: Gid) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let bin = dir.path().join("synack");
    common::copy_binary(&bin);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755");
    nix::unistd::chown(dir.path(), Some(uid), Some(gid)).expect("chown to nobody");
    (dir, bin)
}

/// `bin args…` as `uid`/`gid` with no supplementary groups (what
/// `setpriv --reuid --regid --clear-groups` does), from the directory `cwd`.
fn run_as(uid: Uid, gid: Gid, bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd);
    // SAFETY: between fork and exec only async-signal-safe calls
    // (setgroups, setgid, setuid), and no allocation.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&[])?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(uid)?;
            Ok(())
        });
    }
    cmd.output().expect("running synack as nobody")
}

#[test]
fn nobody_runs_the_lab_in_a_user_namespace_and_owns_the_pcap() {
    require_root!();
    require_tool!("tshark");
    let (uid, gid) = nobody();
    let (dir, bin) = nobody_dir(uid, gid);
    let pcap = dir.path().join("u.pcap");
    let pcap_arg = pcap.to_str().expect("a UTF-8 temp path");
    let before = host_network();
    let out = run_as(
        uid,
        gid,
        &bin,
        dir.path(),
        &["lab", "--time-wait", "0", "-w", pcap_arg],
    );
    let stdout = assert_lab_ok(&out, &before);

    let meta = std::fs::metadata(&pcap).expect("the pcap exists");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid.as_raw(), gid.as_raw()),
        "the pcap must belong to the user who ran the lab"
    );

    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "ACK",
            "FIN-ACK", "ACK"
        ]
    );
    // SYN, SYN-ACK, ACK, data and FIN all seen (1+2+4+8+16).
    assert_eq!(frames.last().map(|f| f.completeness), Some(31));
    assert_eq!(frames[3].len, 5, "hello");
    // The same narration as root's: both ends' changes on their rows.
    for part in [
        "SYN-SENT → ESTABLISHED | SYN-RECEIVED",
        "FIN-WAIT-2 → TIME-WAIT | CLOSE-WAIT → LAST-ACK",
        "handshake RTT",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
}

/// Waits (bounded) until process `pid` is in another user namespace than
/// this test.
fn wait_for_new_userns(pid: u32) {
    let ours = std::fs::read_link("/proc/self/ns/user").expect("reading our user namespace");
    for _ in 0..400 {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user"));
        if theirs.is_ok_and(|ns| ns != ours) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("process {pid} never entered a user namespace");
}

#[test]
fn a_zero_user_namespace_limit_names_the_setting_and_sudo() {
    require_root!();
    require_tool!("unshare");
    require_tool!("setpriv");
    let (uid, gid) = nobody();
    let (dir, bin) = nobody_dir(uid, gid);
    let pcap = dir.path().join("blocked.pcap");
    // Block user namespaces for real, but only inside a throwaway user
    // namespace: `unshare --user` makes one, this test (root outside) maps
    // ids 0-65535 through, the shell sets that namespace's own
    // user.max_user_namespaces to 0 and drops to nobody. The host's
    // setting is never touched.
    // The shell lost its capabilities when unshare exec'd it unmapped, so
    // once mapped it execs a second shell, which is root in there.
    let inner = "echo 0 > /proc/sys/user/max_user_namespaces && \
                 exec setpriv --reuid=\"$2\" --regid=\"$3\" --clear-groups \
                 \"$0\" lab --time-wait 0 -w \"$1\"";
    let script = "read _ && exec sh -c \"$4\" \"$0\" \"$1\" \"$2\" \"$3\"";
    let mut child = Command::new("unshare")
        .args(["--user", "--", "sh", "-c", script])
        .arg(&bin)
        .arg(&pcap)
        .args([&uid.to_string(), &gid.to_string(), inner])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running unshare");
    wait_for_new_userns(child.id());
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{}/{map}", child.id()), "0 0 65536\n")
            .unwrap_or_else(|e| panic!("writing {map}: {e}"));
    }
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("a piped stdin");
        stdin.write_all(b"go\n").expect("waking the shell");
    }
    let out = child.wait_with_output().expect("waiting for synack");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "synack: user namespaces are blocked on this host (user.max_user_namespaces=0), \
         so the lab needs root here: `sudo synack lab` works instead"
    );
    assert!(!pcap.exists(), "no pcap when the lab could not start");
}

#[test]
fn nobody_runs_the_ipv6_lab_in_a_user_namespace() {
    require_root!();
    require_tool!("tshark");
    let (uid, gid) = nobody();
    let (dir, bin) = nobody_dir(uid, gid);
    let pcap = dir.path().join("u6.pcap");
    let pcap_arg = pcap.to_str().expect("a UTF-8 temp path");
    let before = host_network();
    let out = run_as(
        uid,
        gid,
        &bin,
        dir.path(),
        &["lab", "-6", "--time-wait", "0", "-w", pcap_arg],
    );
    let stdout = assert_lab_ok(&out, &before);
    let meta = std::fs::metadata(&pcap).expect("the pcap exists");
    assert_eq!((meta.uid(), meta.gid()), (uid.as_raw(), gid.as_raw()));
    let names = common::ipv6::assert_clean_ipv6_capture(&pcap, false);
    assert_eq!(
        names,
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "ACK",
            "FIN-ACK", "ACK"
        ]
    );
    assert_eq!(common::ipv6::completeness(&pcap), 31);
    for part in [
        "Neighbor Solicitation: who has 2001:2::1? tell 2001:2::2",
        "SYN-SENT → ESTABLISHED | SYN-RECEIVED",
        "FIN-WAIT-2 → TIME-WAIT | CLOSE-WAIT → LAST-ACK",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
}
