//! Issue 14, end to end as root: the client keeps inside the kernel
//! server's receive window (RFC 9293 §3.8.6) with writes larger than that
//! window, and the pcap is checked with tshark's fields (tshark 4.0 has no
//! "window exceeded" analysis flag, so the check is done here from its
//! SEQ/LEN/ACK/calculated-window fields).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{assert_lab_ok, host_network, tshark_tcp, PI_WARN};

const SERVER_IP: &str = "198.18.0.1";

fn run_lab(pcap: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["--color", "never", "lab", "--time-wait", "0", "-w"])
        .arg(pcap)
        .args(extra)
        .output()
        .expect("running synack lab")
}

/// `ip.src`, `tcp.seq`, `tcp.len`, `tcp.ack`, `tcp.window_size` (scaled
/// as tshark computes it) and the SYN bit of every TCP frame, in order.
fn tcp_rows(pcap: &Path) -> Vec<(String, u64, u64, u64, u64, bool)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", "tcp", "-T", "fields", "-E", "separator=;"])
        .args(["-e", "ip.src", "-e", "tcp.seq", "-e", "tcp.len"])
        .args([
            "-e",
            "tcp.ack",
            "-e",
            "tcp.window_size",
            "-e",
            "tcp.flags.syn",
        ])
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            (
                f[0].to_string(),
                num(f[1]),
                num(f[2]),
                num(f[3]),
                num(f[4]),
                f[5] == "1",
            )
        })
        .collect()
}

/// The client's data segments that reach beyond the window the server last
/// advertised (SEG.SEQ + SEG.LEN > the server's ACK + window), and the
/// number of client data segments.
fn beyond_the_window(pcap: &Path) -> (Vec<String>, usize) {
    let mut edge = None;
    let mut beyond = Vec::new();
    let mut data = 0;
    for (src, seq, len, ack, win, syn) in tcp_rows(pcap) {
        if src == SERVER_IP {
            if !syn {
                edge = Some(ack + win);
            }
        } else if len > 0 {
            data += 1;
            if edge.is_some_and(|edge| seq + len > edge) {
                beyond.push(format!("seq {seq} len {len} beyond {edge:?}"));
            }
        }
    }
    (beyond, data)
}

fn count(pcap: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", filter])
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Good checksums, nothing malformed, and no expert warning but "window
/// full": a segment that fills the window exactly is what keeping inside
/// it looks like, so tshark's warning there is expected.
fn assert_clean_but_window_full(pcap: &Path) -> usize {
    let frames = tshark_tcp(pcap);
    assert!(!frames.is_empty());
    for (i, f) in frames.iter().enumerate() {
        assert!(
            f.tcp_checksum_good && f.ip_checksum_good,
            "frame {i}: checksum"
        );
        assert!(!f.malformed, "frame {i}: malformed");
    }
    let filter = format!("_ws.expert.severity >= {PI_WARN} && !tcp.analysis.window_full");
    assert_eq!(
        count(pcap, &filter),
        0,
        "expert warnings other than window full"
    );
    count(pcap, "tcp.analysis.window_full")
}

fn write_of(byte: u8, len: usize) -> String {
    String::from_utf8(vec![byte; len]).unwrap()
}

/// Issue 14: `--data <120 KB> --data <120 KB>` used to overrun the
/// server's window and recover one segment per RTO (exit 1 after 46 s).
#[test]
fn issue_14_two_120_kb_writes_stay_inside_the_servers_window() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("window.pcap");
    let (a, b) = (write_of(b'a', 120_000), write_of(b'b', 120_000));
    let before = host_network();
    let start = Instant::now();
    let out = run_lab(&pcap, &["--timeout", "30s", "--data", &a, "--data", &b]);
    let took = start.elapsed();
    let stdout = assert_lab_ok(&out, &before);
    assert!(
        stdout.contains("bytes client → server / back    240000 /"),
        "{stdout}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let full = assert_clean_but_window_full(&pcap);
    let (beyond, data) = beyond_the_window(&pcap);
    assert!(beyond.is_empty(), "beyond the window: {beyond:?}");
    assert!(data >= 240_000 / 1448, "{data} data segments");
    assert_eq!(count(&pcap, "tcp.analysis.retransmission"), 0);
    eprintln!("2×120 KB: {took:?}, {data} data segments, {full} filled the window");
}

/// `--sticky` with writes that fill one read of the server (65536 bytes,
/// more than the 65160-byte window of the SYN-ACK) still runs, inside the
/// window.
#[test]
fn sticky_writes_larger_than_the_first_window_wait_for_it() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("sticky-window.pcap");
    let (a, b) = (write_of(b'a', 32_768), write_of(b'b', 32_768));
    let before = host_network();
    let out = run_lab(&pcap, &["--sticky", "--data", &a, "--data", &b]);
    let stdout = assert_lab_ok(&out, &before);
    assert!(
        stdout.contains("2 writes, 1 read of 65536 bytes"),
        "{stdout}"
    );
    assert_clean_but_window_full(&pcap);
    let (beyond, _) = beyond_the_window(&pcap);
    assert!(beyond.is_empty(), "beyond the window: {beyond:?}");
    assert_eq!(count(&pcap, "tcp.analysis.retransmission"), 0);
}

/// Issue 14 with `--sticky`: 240 KB cannot all sit in the server's receive
/// buffer while it waits to read them at once, so the run is refused up
/// front (exit 2) with the reason, and nothing is left on the host.
#[test]
fn issue_14_sticky_writes_beyond_one_read_are_refused_up_front() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("refused.pcap");
    let (a, b) = (write_of(b'a', 120_000), write_of(b'b', 120_000));
    let out = run_lab(&pcap, &["--sticky", "--data", &a, "--data", &b]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--sticky: the writes total 240000 bytes")
            && stderr.contains("at most 65536 bytes in all"),
        "{stderr}"
    );
    assert!(!pcap.exists(), "refused before anything ran");
}

/// Issue 14, the other half: after an RTO the ACK of the first
/// retransmission releases what is still missing at once (go-back-N), and
/// with SACK agreed only the holes go again. Two segments lost on purpose:
/// the second is resent right after the first's ACK, not one RTO later, and
/// nothing the server SACKed is sent twice.
#[test]
fn after_an_rto_only_the_holes_go_again_and_at_once() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("go-back-n.pcap");
    let data = write_of(b'g', 8000);
    let before = host_network();
    let out = run_lab(
        &pcap,
        &["--data", &data, "--drop", "data:2,data:4", "--explain"],
    );
    let stdout = assert_lab_ok(&out, &before);
    assert!(stdout.contains("(go-back-N)"), "{stdout}");
    let (beyond, _) = beyond_the_window(&pcap);
    assert!(beyond.is_empty(), "beyond the window: {beyond:?}");
    let times: Vec<f64> = {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&pcap)
            .args(["-Y", "tcp.analysis.retransmission", "-T", "fields"])
            .args(["-e", "frame.time_relative"])
            .output()
            .expect("running tshark");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    assert_eq!(times.len(), 2, "the two lost segments, nothing else");
    assert!(
        times[1] - times[0] < 0.5,
        "the second hole waited for another RTO: {times:?}"
    );
    assert_eq!(count(&pcap, "tcp.analysis.spurious_retransmission"), 0);
}
