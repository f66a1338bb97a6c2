//! `synack lab -6` end to end, as root (issue 17): the same lab over IPv6
//! in its private namespace. tshark reads every frame of the pcap, not
//! only the TCP ones: Neighbor Discovery must be there, MLD must not, and
//! nothing but IPv6 may be.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ipv6::{assert_clean_ipv6_capture, completeness, tshark_frames};
use common::{assert_lab_ok, host_network};

fn run_lab6(pcap: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["lab", "-6", "--time-wait", "0", "-w"])
        .arg(pcap)
        .args(extra)
        .output()
        .expect("running synack lab -6")
}

fn run_ok(pcap: &Path, extra: &[&str]) -> String {
    let before = host_network();
    let out = run_lab6(pcap, extra);
    assert_lab_ok(&out, &before)
}

#[test]
fn lab_6_is_the_textbook_exchange_over_ipv6_with_ndp_and_no_mld() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lab6.pcap");
    let stdout = run_ok(&pcap, &[]);
    let names = assert_clean_ipv6_capture(&pcap, false);
    assert_eq!(
        names,
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "ACK",
            "FIN-ACK", "ACK"
        ]
    );
    assert_eq!(completeness(&pcap), 31);
    // MSS = MTU − 60 over IPv6, on both SYNs (Linux announces the same).
    let mss: Vec<u16> = tshark_frames(&pcap, false)
        .iter()
        .filter_map(|f| f.mss)
        .collect();
    assert_eq!(mss, [1440, 1440]);
    for part in [
        "srv0 2001:2::1/64",
        "synack plays 2001:2::2",
        "NDP        Neighbor Solicitation: who has 2001:2::1? tell 2001:2::2",
        "NDP        Neighbor Advertisement: 2001:2::1 is at ",
        "accept() → [2001:2::2]:",
        "SYN-SENT → ESTABLISHED | SYN-RECEIVED",
        "FIN-WAIT-2 → TIME-WAIT | CLOSE-WAIT → LAST-ACK",
        "<mss=1440,",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("ARP"), "{stdout}");
}

#[test]
fn mld_reaches_neither_capture_while_the_client_waits_in_time_wait() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (pcap, server_side) = (dir.path().join("c.pcap"), dir.path().join("s.pcap"));
    // The server's kernel sends its MLD reports about 10 ms and about 1 s
    // after srv0 comes up (measured): a run of over a second spans both.
    let out = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["lab", "-6", "-q", "--time-wait", "1200ms", "-w"])
        .arg(&pcap)
        .arg("--server-side")
        .arg(&server_side)
        .output()
        .expect("running synack lab -6");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [&pcap, &server_side] {
        let names = assert_clean_ipv6_capture(file, false);
        assert_eq!(names.len(), 11, "{}: {names:?}", file.display());
    }
}

#[test]
fn lab_6_close_server_drop_fin_and_abort_client() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();

    let pcap = dir.path().join("close-server.pcap");
    let stdout = run_ok(&pcap, &["--close", "server"]);
    let names = assert_clean_ipv6_capture(&pcap, false);
    assert_eq!(
        names[names.len() - 4..],
        ["FIN-ACK", "ACK", "FIN-ACK", "ACK"]
    );
    assert_eq!(completeness(&pcap), 31);
    assert!(stdout.contains("CLOSE-WAIT"), "{stdout}");
    assert!(stdout.contains("LAST-ACK → CLOSED"), "{stdout}");

    let pcap = dir.path().join("drop-fin.pcap");
    let stdout = run_ok(&pcap, &["--drop", "fin"]);
    let names = assert_clean_ipv6_capture(&pcap, false);
    // The FIN twice (recorded as leaving, then resent on the RTO).
    assert_eq!(
        names.iter().filter(|n| **n == "FIN-ACK").count(),
        3,
        "{names:?}"
    );
    assert_eq!(completeness(&pcap), 31);
    assert!(stdout.contains("lost on purpose"), "{stdout}");

    let pcap = dir.path().join("abort-client.pcap");
    let stdout = run_ok(&pcap, &["--abort", "client"]);
    let names = assert_clean_ipv6_capture(&pcap, true);
    assert_eq!(
        names,
        ["SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "RST"]
    );
    // SYN, SYN-ACK, ACK, data, RST (1+2+4+8+32).
    assert_eq!(completeness(&pcap), 47);
    assert!(stdout.contains("ESTABLISHED → CLOSED"), "{stdout}");
}

#[test]
fn lab_6_refuses_what_is_not_built_over_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("never.pcap");
    for (extra, says) in [
        (&["--udp"][..], "--udp is not built over IPv6"),
        (&["--count", "3"][..], "--count is not built over IPv6"),
    ] {
        let out = run_lab6(&pcap, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!pcap.exists());
    }
}
