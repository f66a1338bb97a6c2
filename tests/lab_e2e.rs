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
        // Each end's change on the row that caused it (issue 13): the
        // server enters LAST-ACK with its own FIN, CLOSED with our ACK.
        "FIN-WAIT-1 → FIN-WAIT-2 | CLOSE-WAIT",
        "FIN-WAIT-2 → TIME-WAIT | CLOSE-WAIT → LAST-ACK",
        "TIME-WAIT | LAST-ACK → CLOSED",
        "TIME-WAIT → CLOSED",
        "handshake RTT",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    // Our FIN moves the server on its own row: CLOSE-WAIT, whatever the
    // kernel's later sample says.
    let fin_line = stdout
        .lines()
        .find(|l| l.contains("ESTABLISHED → FIN-WAIT-1 |"))
        .unwrap_or_else(|| panic!("no FIN line in:\n{stdout}"));
    assert!(
        fin_line.contains("| ESTABLISHED → CLOSE-WAIT"),
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
    // The caller's own directory: synack opens the file as them (issue 11).
    let dir = tempfile::tempdir().unwrap();
    nix::unistd::chown(dir.path(), Some(65534.into()), Some(65534.into())).unwrap();
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
    // The client never waits for a FIN; the server goes through FIN-WAIT.
    let client_columns: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" | "))
        .filter_map(|l| l.split(" | ").next())
        .collect();
    assert!(
        client_columns.iter().all(|c| !c.contains("FIN-WAIT")),
        "the client never waits for a FIN:\n{stdout}"
    );
    assert!(
        stdout.contains("| ESTABLISHED → FIN-WAIT-1"),
        "the server's FIN moves the server:\n{stdout}"
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

// The close and loss scenarios (issue 6). Each run's pcap is read by tshark:
// the flag sequence, tcp.completeness, the analysis flags the scenario must
// and must not produce, checksums.

/// Raw fields of every TCP frame, as tshark prints them.
fn tshark_fields(pcap: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", "tcp", "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// `tcp.completeness` of the whole connection: tshark's second pass (`-2`)
/// knows every flag; in one pass a frame shows what was seen before it (a
/// final RST would not count).
fn completeness(pcap: &std::path::Path) -> u32 {
    let out = Command::new("tshark")
        .args(["-2", "-n", "-r"])
        .arg(pcap)
        .args(["-Y", "tcp", "-T", "fields", "-e", "tcp.completeness"])
        .output()
        .expect("running tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap_or("").parse().unwrap_or(0)
}

/// The frames tshark marks with `field` (e.g. tcp.analysis.retransmission),
/// as (index, source port).
fn marked(pcap: &std::path::Path, field: &str) -> Vec<(usize, u16)> {
    tshark_fields(pcap, &[field, "tcp.srcport"])
        .iter()
        .enumerate()
        .filter(|(_, f)| !f[0].is_empty())
        .map(|(i, f)| (i, f[1].parse().unwrap()))
        .collect()
}

/// Runs a scenario that must exit 0 and leave the host as it was.
fn run_scenario(pcap: &std::path::Path, extra: &[&str]) -> String {
    let before = host_network();
    let out = run_lab(pcap, extra);
    assert_lab_ok(&out, &before)
}

fn line_with<'a>(stdout: &'a str, part: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(part))
        .unwrap_or_else(|| panic!("no line with {part:?} in:\n{stdout}"))
}

#[test]
fn simultaneous_close_takes_both_ends_through_closing() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("simultaneous.pcap");
    let stdout = run_scenario(&pcap, &["--close", "simultaneous"]);
    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "FIN-ACK",
            "ACK", "ACK"
        ]
    );
    assert_eq!(frames.last().unwrap().completeness, 31);
    assert!(frames.iter().all(|f| f.analysis.is_empty()), "{frames:?}");
    // Each FIN's ACK number does not cover the other's FIN: they crossed.
    let f = tshark_fields(
        &pcap,
        &["tcp.srcport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags.fin"],
    );
    let fin = |port: &str| {
        f.iter()
            .find(|r| r[0] == port && r[3] == "1")
            .unwrap_or_else(|| panic!("no FIN from {port}: {f:?}"))
    };
    let n = |s: &String| s.parse::<u32>().unwrap();
    let (server, client) = (
        fin("8080"),
        f.iter().find(|r| r[0] != "8080" && r[3] == "1").unwrap(),
    );
    assert!(
        n(&client[2]) <= n(&server[1]),
        "client FIN acks the server's: {f:?}"
    );
    assert!(
        n(&server[2]) <= n(&client[1]),
        "server FIN acks the client's: {f:?}"
    );
    // The client's path, and the server's kernel seen in CLOSING.
    for part in [
        "held: simultaneous close",
        "ESTABLISHED → FIN-WAIT-1",
        "FIN-WAIT-1 → CLOSING",
        "CLOSING → TIME-WAIT",
        "TIME-WAIT → CLOSED",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    let server_states: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("client → server") || l.contains("server → client"))
        .filter_map(|l| l.split(" | ").nth(1))
        .collect();
    assert!(
        server_states.iter().any(|s| s.starts_with("CLOSING")),
        "the server's kernel never showed CLOSING:\n{stdout}"
    );
}

#[test]
fn abort_client_ends_with_the_clients_rst() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("abort-client.pcap");
    let stdout = run_scenario(&pcap, &["--abort", "client"]);
    let frames = tshark_tcp(&pcap);
    assert!(frames
        .iter()
        .all(|f| f.tcp_checksum_good && f.ip_checksum_good && !f.malformed));
    assert_eq!(
        flag_names(&frames),
        ["SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "RST"]
    );
    // SYN, SYN-ACK, ACK, data, RST (1+2+4+8+32); no FIN.
    assert_eq!(completeness(&pcap), 47);
    // Only the RST carries a warning ("Connection reset").
    let warned: Vec<usize> = (0..frames.len())
        .filter(|i| frames[*i].max_severity >= common::PI_WARN)
        .collect();
    assert_eq!(warned, [frames.len() - 1]);
    let rst = tshark_fields(&pcap, &["tcp.srcport"]);
    assert_ne!(rst.last().unwrap()[0], "8080", "the client sent the RST");
    assert!(
        line_with(&stdout, "[RST]").contains("ESTABLISHED → CLOSED | ESTABLISHED → CLOSED"),
        "{stdout}"
    );
    assert!(stdout.contains("recv() failed"), "{stdout}");
    assert!(stdout.contains("no TIME-WAIT"), "{stdout}");
}

#[test]
fn abort_server_ends_with_the_kernels_rst() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("abort-server.pcap");
    let stdout = run_scenario(&pcap, &["--abort", "server"]);
    let frames = tshark_tcp(&pcap);
    assert!(frames
        .iter()
        .all(|f| f.tcp_checksum_good && f.ip_checksum_good && !f.malformed));
    assert_eq!(
        flag_names(&frames),
        ["SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "RST-ACK"]
    );
    assert_eq!(completeness(&pcap), 47);
    let ports = tshark_fields(&pcap, &["tcp.srcport"]);
    assert_eq!(ports.last().unwrap()[0], "8080", "the server sent the RST");
    assert!(stdout.contains("SO_LINGER, 0"), "{stdout}");
    assert!(
        line_with(&stdout, "[RST,ACK]").contains("ESTABLISHED → CLOSED | ESTABLISHED → CLOSED"),
        "{stdout}"
    );
}

#[test]
fn half_close_lets_the_server_send_after_the_clients_fin() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("half-close.pcap");
    let stdout = run_scenario(&pcap, &["--half-close"]);
    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "ACK", "PSH-ACK", "ACK",
            "FIN-ACK", "ACK"
        ]
    );
    assert_eq!(frames[7].len, 13, "the reply comes after the client's FIN");
    assert_eq!(frames.last().unwrap().completeness, 31);
    assert!(frames.iter().all(|f| f.analysis.is_empty()), "{frames:?}");
    // The server read EOF before it sent; the client took the data in
    // FIN-WAIT-2.
    let eof = stdout.find("EOF, the client closed").expect(&stdout);
    let sent = stdout.find("sendall() 13 bytes").expect(&stdout);
    assert!(eof < sent, "{stdout}");
    let data_line = stdout
        .lines()
        .find(|l| l.contains("server → client  [PSH,ACK]"))
        .expect(&stdout);
    assert!(data_line.contains("FIN-WAIT-2 |"), "{data_line}");
}

#[test]
fn dropped_client_segments_are_retransmitted_on_the_clients_timer() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("drop-client.pcap");
    // TIME-WAIT must outlast the server's RTO to answer its FIN again.
    let before = host_network();
    let out = synack()
        .args(["lab", "--time-wait", "1s", "-w"])
        .arg(&pcap)
        .args(["--drop", "data:1,fin,final-ack"])
        .output()
        .expect("running synack lab");
    let stdout = assert_lab_ok(&out, &before);
    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK",
            "FIN-ACK", "ACK", "FIN-ACK", "ACK", "FIN-ACK", "ACK"
        ]
    );
    assert_eq!(frames.last().unwrap().completeness, 31);
    // The client resent its data and its FIN; the server's kernel resent
    // its FIN (our final ACK was lost), and the re-ACK from TIME-WAIT is a
    // duplicate ACK.
    let retx = marked(&pcap, "tcp.analysis.retransmission");
    assert_eq!(
        retx.iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 9, 13],
        "{retx:?}"
    );
    assert_eq!(retx.iter().filter(|r| r.1 == 8080).count(), 1);
    assert_eq!(marked(&pcap, "tcp.analysis.duplicate_ack").len(), 1);
    for never in [
        "tcp.analysis.spurious_retransmission",
        "tcp.analysis.lost_segment",
        "tcp.analysis.ack_lost_segment",
        "tcp.analysis.out_of_order",
    ] {
        assert!(marked(&pcap, never).is_empty(), "{never}");
    }
    // The data waits the RTO's 1 s floor; the FIN the RTO that the data's
    // loss doubled (Karn: no new sample from a retransmitted segment).
    let times = tshark_fields(&pcap, &["frame.time_relative"]);
    let t = |i: usize| times[i][0].parse::<f64>().unwrap();
    assert!(
        (0.99..1.5).contains(&(t(4) - t(3))),
        "data resent after {}",
        t(4) - t(3)
    );
    assert!(
        (1.99..2.5).contains(&(t(9) - t(8))),
        "FIN resent after {}",
        t(9) - t(8)
    );
    for part in [
        "dropped on purpose (--drop data:1)",
        "dropped on purpose (--drop fin)",
        "dropped on purpose (--drop final-ack)",
        "retransmission #1: the RTO expired; the timer backs off to 2000 ms",
        "our final ACK was lost",
        "this is why TIME-WAIT exists",
        "lost on purpose (--drop)        3",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
}

#[test]
fn a_dropped_syn_is_resent_after_one_second() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("drop-syn.pcap");
    let stdout = run_scenario(&pcap, &["--drop", "syn"]);
    let frames = assert_clean_capture(&pcap);
    let names = flag_names(&frames);
    assert_eq!(names[..3], ["SYN", "SYN", "SYN-ACK"], "{names:?}");
    assert_eq!(frames.last().unwrap().completeness, 31);
    let retx = marked(&pcap, "tcp.analysis.retransmission");
    assert_eq!(retx.iter().map(|r| r.0).collect::<Vec<_>>(), [1]);
    let times = tshark_fields(&pcap, &["frame.time_relative"]);
    let gap = times[1][0].parse::<f64>().unwrap() - times[0][0].parse::<f64>().unwrap();
    assert!((0.99..1.5).contains(&gap), "SYN resent after {gap}");
    // The server's kernel never saw the first SYN: still only LISTEN.
    assert!(
        line_with(&stdout, "(--drop syn)").contains("CLOSED → SYN-SENT | LISTEN"),
        "{stdout}"
    );
}

#[test]
fn ignored_server_segments_are_retransmitted_by_the_servers_kernel() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("drop-server.pcap");
    let stdout = run_scenario(&pcap, &["--drop", "synack,data-reply,server-fin"]);
    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "PSH-ACK", "ACK",
            "FIN-ACK", "ACK", "FIN-ACK", "FIN-ACK", "ACK"
        ]
    );
    assert_eq!(frames.last().unwrap().completeness, 31);
    let retx = marked(&pcap, "tcp.analysis.retransmission");
    assert_eq!(retx.len(), 3, "{retx:?}");
    assert!(
        retx.iter().all(|r| r.1 == 8080),
        "all from the server: {retx:?}"
    );
    for never in [
        "tcp.analysis.duplicate_ack",
        "tcp.analysis.spurious_retransmission",
        "tcp.analysis.lost_segment",
    ] {
        assert!(marked(&pcap, never).is_empty(), "{never}");
    }
    // Linux resends an unanswered SYN-ACK after 1 s; the client's SYN
    // timer (3 s in this scenario) does not race it.
    let times = tshark_fields(&pcap, &["frame.time_relative"]);
    let gap = times[2][0].parse::<f64>().unwrap() - times[1][0].parse::<f64>().unwrap();
    assert!((0.9..2.0).contains(&gap), "SYN-ACK resent after {gap}");
    assert_eq!(
        stdout
            .matches("the server's kernel retransmitted it")
            .count(),
        3,
        "{stdout}"
    );
}

#[test]
fn a_lost_fin_of_the_client_in_last_ack_is_resent() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("drop-fin-server-first.pcap");
    let stdout = run_scenario(&pcap, &["--close", "server", "--drop", "fin"]);
    let frames = assert_clean_capture(&pcap);
    let names = flag_names(&frames);
    assert_eq!(
        names[names.len() - 5..],
        ["FIN-ACK", "ACK", "FIN-ACK", "FIN-ACK", "ACK"],
        "{names:?}"
    );
    let retx = marked(&pcap, "tcp.analysis.retransmission");
    assert_eq!(retx.len(), 1);
    assert_ne!(retx[0].1, 8080, "the client resent its FIN");
    assert!(stdout.contains("CLOSE-WAIT → LAST-ACK"), "{stdout}");
    assert!(stdout.contains("LAST-ACK → CLOSED"), "{stdout}");
}
