//! `synack lab` end to end, as root: a real namespace, a real kernel
//! server, and the pcap checked by tshark (not by our own parser).

mod common;

use std::process::{Command, Output};

use common::{assert_clean_capture, assert_lab_ok, flag_names, host_network, tshark_tcp};

fn synack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synack"))
}

fn run_lab(pcap: &std::path::Path, extra: &[&str]) -> Output {
    synack()
        .args(["lab", "--time-wait", "0", "-w"])
        .arg(pcap)
        .args(extra)
        .output()
        .expect("running synack lab")
}

#[test]
fn the_default_lab_is_a_textbook_exchange_that_tshark_accepts() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lab.pcap");
    let before = host_network();
    let out = run_lab(&pcap, &[]);
    let stdout = assert_lab_ok(&out, &before);

    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "ACK",
            "FIN-ACK", "ACK"
        ]
    );
    // SYN, SYN-ACK, ACK, data and FIN all seen (1+2+4+8+16).
    assert_eq!(frames.last().unwrap().completeness, 31);
    assert_eq!(frames[3].len, 5, "hello");

    // The narration shows both ends' states.
    for part in [
        "CLOSED → SYN-SENT",
        "SYN-SENT → ESTABLISHED | SYN-RECEIVED",
        "accept() → 198.18.0.2:",
        "recv() → 5 bytes \"hello\"",
        "FIN-WAIT-1 → FIN-WAIT-2",
        "FIN-WAIT-2 → TIME-WAIT | LAST-ACK",
        "TIME-WAIT | CLOSED",
        "TIME-WAIT → CLOSED",
        "handshake RTT",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    // The server's kernel state is read right after our FIN left: CLOSE-WAIT,
    // or LAST-ACK when the server app already read EOF and closed (it runs
    // on the other core; under load it can beat the look-up).
    let fin_line = stdout
        .lines()
        .find(|l| l.contains("ESTABLISHED → FIN-WAIT-1 |"))
        .unwrap_or_else(|| panic!("no FIN line in:\n{stdout}"));
    assert!(
        fin_line.contains("| CLOSE-WAIT") || fin_line.contains("| LAST-ACK"),
        "{fin_line}"
    );
}

#[test]
fn delayed_ack_gives_a_three_segment_close() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("delayed.pcap");
    let out = run_lab(&pcap, &["--delayed-ack"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = assert_clean_capture(&pcap);
    let names = flag_names(&frames);
    assert_eq!(
        names[names.len() - 3..],
        ["FIN-ACK", "FIN-ACK", "ACK"],
        "{names:?}"
    );
}

#[test]
fn json_lines_are_one_event_each() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("json.pcap");
    let out = run_lab(&pcap, &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let segments: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "segment").collect();
    assert_eq!(segments.len(), 11);
    assert_eq!(segments[0]["flags"], "SYN");
    assert_eq!(segments[0]["seq_rel"], 0);
    assert_eq!(segments[1]["ack_rel"], 1);
    assert_eq!(events.last().unwrap()["event"], "summary");
    assert_eq!(events.last().unwrap()["bytes_c2s"], 5);
}

#[test]
fn quiet_prints_only_the_summary() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("quiet.pcap");
    let out = synack()
        .args(["-q", "lab", "--time-wait", "0", "-w"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("summary:"), "{stdout}");
    assert!(!stdout.contains("SYN-SENT →"));
}

#[test]
fn under_sudo_the_pcap_belongs_to_the_invoking_user() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("owned.pcap");
    let out = synack()
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .args(["-q", "lab", "--time-wait", "0", "-w"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(&pcap).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

#[test]
fn sigint_during_the_run_exits_cleanly_with_a_readable_pcap() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("interrupted.pcap");
    let child = synack()
        .args(["lab", "--time-wait", "30s", "-w"])
        .arg(&pcap)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut child = child;
    // Wait (bounded) until the client sits in TIME-WAIT, then Ctrl-C.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = String::new();
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("TIME-WAIT | ") {
            break;
        }
    }
    assert!(
        seen.contains("TIME-WAIT | "),
        "never reached TIME-WAIT:\n{seen}"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted in TIME-WAIT"), "{stderr}");
    assert_eq!(tshark_tcp(&pcap).len(), 11);
}

#[test]
fn the_benchmark_measures_both_clients_in_one_run() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bench.pcap");
    let before = host_network();
    let out = synack()
        .args(["lab", "--count", "20", "-w"])
        .arg(&pcap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("20 cycles each"), "{stdout}");
    for row in [
        "handshake (SYN sent → ACK sent)",
        "whole cycle (hello/reply, close)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {stdout}"));
        // Four figures in µs and a ratio, all positive.
        let numbers: Vec<f64> = line[row.len()..]
            .split_whitespace()
            .map(|w| w.trim_end_matches('×').parse().unwrap())
            .collect();
        assert_eq!(numbers.len(), 5, "{line}");
        assert!(numbers.iter().all(|n| *n > 0.0), "{line}");
    }
    assert_eq!(before, host_network());
    // 20 cycles of 11 segments each, plus ARP.
    let frames = common::tshark_tcp(&pcap);
    assert_eq!(frames.len(), 20 * 11);
}

#[test]
fn when_the_server_closes_first_the_client_sees_close_wait_and_last_ack() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("server-first.pcap");
    let out = run_lab(&pcap, &["--close", "server"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = assert_clean_capture(&pcap);
    let names = flag_names(&frames);
    // The server's FIN comes first; the client's FIN and the server's ACK last.
    assert_eq!(
        names[names.len() - 4..],
        ["FIN-ACK", "ACK", "FIN-ACK", "ACK"],
        "{names:?}"
    );
    assert_eq!(frames.last().unwrap().completeness, 31);
    for part in [
        "ESTABLISHED → CLOSE-WAIT",
        "CLOSE-WAIT → LAST-ACK",
        "LAST-ACK → CLOSED",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    // Client-side transitions carry an arrow; the server column has none.
    assert!(
        !stdout.contains("→ FIN-WAIT"),
        "the client never waits for a FIN:\n{stdout}"
    );
}

#[test]
fn refused_shows_the_kernels_rst_and_exits_0() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("refused.pcap");
    let out = run_lab(&pcap, &["--refused"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // tshark flags every RST as an expert warning ("Connection reset"), so
    // only checksums and well-formedness are asked of this capture.
    let frames = tshark_tcp(&pcap);
    assert!(frames
        .iter()
        .all(|f| f.tcp_checksum_good && f.ip_checksum_good && !f.malformed));
    assert_eq!(flag_names(&frames), ["SYN", "RST-ACK"]);
    assert!(stdout.contains("SYN-SENT → CLOSED | CLOSED"), "{stdout}");
    assert!(stdout.contains("RFC 9293 §3.10.7.1"), "{stdout}");
}
