//! The lab's data, sticky-packet, framing, UDP and handshake-option
//! scenarios end to end, as root: a real namespace, a real kernel server,
//! and each pcap checked by tshark (not by our own parser).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_clean_capture, assert_lab_ok, flag_names, host_network, PI_WARN};

fn run_lab(pcap: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["--color", "never", "lab", "--time-wait", "0", "-w"])
        .arg(pcap)
        .args(extra)
        .output()
        .expect("running synack lab")
}

/// Runs the lab with `extra`, asserts exit 0 and a clean host; returns
/// stdout and the pcap's path (inside `dir`).
fn lab_ok(dir: &tempfile::TempDir, name: &str, extra: &[&str]) -> (String, std::path::PathBuf) {
    let pcap = dir.path().join(name);
    let before = host_network();
    let out = run_lab(&pcap, extra);
    (assert_lab_ok(&out, &before), pcap)
}

/// `fields` of every frame matching `filter`, as tshark prints them (with
/// checksum checks on).
fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(pcap).args([
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    for field in fields {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

/// The payload lengths of the TCP segments from `port` (the server: 8080).
fn payloads_from(pcap: &Path, port: u16) -> Vec<usize> {
    tshark_fields(
        pcap,
        &format!("tcp.srcport == {port} && tcp.len > 0"),
        &["tcp.len"],
    )
    .iter()
    .map(|f| f[0].parse().expect("tcp.len"))
    .collect()
}

fn assert_contains(stdout: &str, parts: &[&str]) {
    for part in parts {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
}

#[test]
fn each_data_write_is_one_segment_and_one_server_read() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, pcap) = lab_ok(
        &dir,
        "writes.pcap",
        &["--data", "hello", "--data", "world", "--data", "!"],
    );
    let frames = assert_clean_capture(&pcap);
    assert_eq!(frames.last().unwrap().completeness, 31);
    assert_eq!(payloads_from(&pcap, 8080), [13, 13, 13], "a reply per read");
    let client = tshark_fields(&pcap, "tcp.dstport == 8080 && tcp.len > 0", &["tcp.len"]);
    assert_eq!(client, [["5"], ["5"], ["1"]]);
    assert_contains(
        &stdout,
        &[
            "recv() → 5 bytes \"hello\"",
            "recv() → 5 bytes \"world\"",
            "recv() → 1 bytes \"!\"",
            "bytes client → server / back    11 / 39",
        ],
    );
}

#[test]
fn sticky_packets_two_writes_one_read() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, pcap) = lab_ok(
        &dir,
        "sticky.pcap",
        &["--sticky", "--data", "hello", "--data", "world"],
    );
    assert_clean_capture(&pcap);
    // Two segments on the wire, one read and one reply on the server.
    let client = tshark_fields(&pcap, "tcp.dstport == 8080 && tcp.len > 0", &["tcp.len"]);
    assert_eq!(client, [["5"], ["5"]]);
    assert_eq!(payloads_from(&pcap, 8080), [13]);
    assert_contains(
        &stdout,
        &[
            "writes (10 bytes) had all arrived",
            "recv() → 10 bytes \"helloworld\"",
            "2 writes, 1 read of 10 bytes",
        ],
    );
    assert_eq!(stdout.matches("recv() → ").count(), 2, "one read and EOF");
}

#[test]
fn framing_reads_whole_messages_even_when_they_stuck_together() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, pcap) = lab_ok(
        &dir,
        "framed.pcap",
        &[
            "--framing",
            "length-prefix",
            "--sticky",
            "--data",
            "hello",
            "--data",
            "world",
        ],
    );
    assert_clean_capture(&pcap);
    let client = tshark_fields(
        &pcap,
        "tcp.dstport == 8080 && tcp.len > 0",
        &["tcp.len", "tcp.payload"],
    );
    assert_eq!(
        client,
        [["9", "0000000568656c6c6f"], ["9", "00000005776f726c64"]]
    );
    // One framed reply (4 + 13 bytes) per message.
    assert_eq!(payloads_from(&pcap, 8080).iter().sum::<usize>(), 34);
    assert_contains(
        &stdout,
        &[
            "recv() → 18 bytes",
            "length-prefix message: 5 bytes \"hello\"",
            "length-prefix message: 5 bytes \"world\"",
        ],
    );
}

#[test]
fn a_framed_message_that_spans_segments_is_read_whole() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let long = "a message longer than one 48-byte segment, so it spans two";
    let (stdout, pcap) = lab_ok(
        &dir,
        "span.pcap",
        &["--framing", "json-header", "--mss", "60", "--data", long],
    );
    assert_clean_capture(&pcap);
    let client: Vec<usize> =
        tshark_fields(&pcap, "tcp.dstport == 8080 && tcp.len > 0", &["tcp.len"])
            .iter()
            .map(|f| f[0].parse().unwrap())
            .collect();
    // MSS 60 less the 12-byte timestamps option: 48 bytes per segment.
    assert!(client.len() >= 2, "{client:?}");
    assert!(client.iter().all(|&len| len <= 48), "{client:?}");
    assert_contains(
        &stdout,
        &[&format!(
            "json-header message: {} bytes {long:?}",
            long.len()
        )],
    );
}

#[test]
fn a_small_mss_makes_the_kernel_send_small_segments() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let reply = "x".repeat(300);
    let (stdout, pcap) = lab_ok(&dir, "mss.pcap", &["--mss", "100", "--reply", &reply]);
    let frames = assert_clean_capture(&pcap);
    assert_eq!(frames.last().unwrap().completeness, 31);
    let syns = tshark_fields(&pcap, "tcp.flags.syn == 1", &["tcp.options.mss_val"]);
    assert_eq!(syns, [["100"], ["1460"]], "ours, then the kernel's");
    let server = payloads_from(&pcap, 8080);
    assert_eq!(server.iter().sum::<usize>(), 300);
    // 100 less the 12-byte timestamps option.
    assert!(server.iter().all(|&len| len <= 88), "{server:?}");
    assert_eq!(server[0], 88, "{server:?}");
    assert_contains(
        &stdout,
        &[
            "agreed: MSS: the server announced 1460, ours 100",
            "88 of data beside the 12-byte timestamps option",
            "sendall() 300 bytes",
        ],
    );
}

#[test]
fn every_option_on_is_answered_and_used() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, pcap) = lab_ok(
        &dir,
        "on.pcap",
        &[
            "--wscale",
            "14",
            "--window",
            "1000000",
            "--sack",
            "--timestamps",
        ],
    );
    assert_clean_capture(&pcap);
    let syns = tshark_fields(
        &pcap,
        "tcp.flags.syn == 1",
        &[
            "tcp.options.wscale.shift",
            "tcp.options.sack_perm",
            "tcp.options.timestamp.tsval",
            "tcp.window_size_value",
        ],
    );
    assert_eq!(syns.len(), 2);
    assert_eq!(syns[0][0], "14");
    assert!(
        !syns[0][1].is_empty() && !syns[1][1].is_empty(),
        "SACK both"
    );
    assert!(!syns[1][2].is_empty(), "the server answered timestamps");
    assert_eq!(syns[0][3], "65535", "a SYN's window is never scaled");
    // Every segment carries a timestamp; ours say 1000000 >> 14 = 61,
    // which tshark scales back (61 × 16384).
    let all = tshark_fields(&pcap, "tcp", &["tcp.options.timestamp.tsval"]);
    assert!(all.iter().all(|f| !f[0].is_empty()), "{all:?}");
    let ours = tshark_fields(
        &pcap,
        "tcp.dstport == 8080 && tcp.flags.syn == 0",
        &["tcp.window_size_value", "tcp.window_size"],
    );
    assert!(
        ours.iter().all(|f| f[0] == "61" && f[1] == "999424"),
        "{ours:?}"
    );
    assert_contains(
        &stdout,
        &[
            "agreed: window scale: both sides offered it (ours 14",
            "agreed: SACK permitted by both",
            "agreed: timestamps: both offered them",
            "later segments 61 × 16384 = 999424 bytes",
        ],
    );
}

#[test]
fn options_not_offered_are_off_on_both_sides() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, pcap) = lab_ok(
        &dir,
        "off.pcap",
        &["--no-wscale", "--no-sack", "--no-timestamps"],
    );
    let frames = assert_clean_capture(&pcap);
    assert_eq!(
        flag_names(&frames)[..3],
        ["SYN", "SYN-ACK", "ACK"],
        "{frames:?}"
    );
    // The kernel answers only what was offered: no option but MSS in
    // either SYN, and no timestamps anywhere.
    let all = tshark_fields(
        &pcap,
        "tcp",
        &[
            "tcp.options.wscale.shift",
            "tcp.options.sack_perm",
            "tcp.options.timestamp.tsval",
        ],
    );
    assert!(
        all.iter().all(|f| f.iter().all(String::is_empty)),
        "{all:?}"
    );
    // Windows are plain bytes: ours is 64240 on every segment.
    let ours = tshark_fields(&pcap, "tcp.dstport == 8080", &["tcp.window_size_value"]);
    assert!(ours.iter().all(|f| f[0] == "64240"), "{ours:?}");
    assert_contains(
        &stdout,
        &[
            "agreed: window scale: we did not offer it, so it is off",
            "agreed: SACK: we did not offer it, so it is off",
            "agreed: timestamps: we did not offer them",
        ],
    );
}

#[test]
fn udp_has_no_handshake_and_keeps_datagram_boundaries() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, pcap) = lab_ok(
        &dir,
        "udp.pcap",
        &["--udp", "--data", "hello", "--data", "world"],
    );
    assert!(
        tshark_fields(&pcap, "tcp", &["frame.number"]).is_empty(),
        "no TCP at all"
    );
    let udp = tshark_fields(
        &pcap,
        "udp",
        &[
            "udp.srcport",
            "udp.length",
            "udp.checksum.status",
            "ip.checksum.status",
            "_ws.expert.severity",
            "_ws.malformed",
        ],
    );
    let summary: Vec<(&str, &str)> = udp.iter().map(|f| (f[0].as_str(), f[1].as_str())).collect();
    assert_eq!(summary.len(), 4, "{udp:?}");
    // Two datagrams out (8 + 5 bytes each), two replies (8 + 13).
    let out: Vec<&str> = summary
        .iter()
        .filter(|(port, _)| *port != "8080")
        .map(|(_, len)| *len)
        .collect();
    let back: Vec<&str> = summary
        .iter()
        .filter(|(port, _)| *port == "8080")
        .map(|(_, len)| *len)
        .collect();
    assert_eq!((out, back), (vec!["13", "13"], vec!["21", "21"]));
    for f in &udp {
        assert_eq!(
            (f[2].as_str(), f[3].as_str()),
            ("1", "1"),
            "checksums {f:?}"
        );
        let severity = f[4].split(',').filter_map(|s| s.parse::<u32>().ok()).max();
        assert!(severity.unwrap_or(0) < PI_WARN, "expert warning {f:?}");
        assert!(f[5].is_empty(), "malformed {f:?}");
    }
    assert_contains(
        &stdout,
        &[
            "kernel UDP, std::net::UdpSocket",
            "datagram #1 \"hello\"",
            "datagram #2 \"world\"",
            "recvfrom() → 5 bytes \"hello\"",
            "recvfrom() → 5 bytes \"world\"",
            "UDP: no handshake, no teardown",
        ],
    );
    assert!(!stdout.contains("SYN"), "{stdout}");
    assert!(!stdout.contains("whole cycle"), "{stdout}");
}

/// The largest datagram the lab accepts (1472 bytes: the MTU 1500 less the
/// IPv4 and UDP headers) goes whole, both ways; one more byte is refused
/// before the run (tests/cli.rs).
#[test]
fn udp_datagrams_of_1472_bytes_go_whole() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(1472);
    let (_, pcap) = lab_ok(
        &dir,
        "udp.pcap",
        &["--udp", "--data", &big, "--reply", &big],
    );
    let udp = tshark_fields(&pcap, "udp", &["udp.length", "ip.flags.mf", "ip.len"]);
    assert_eq!(udp.len(), 2, "{udp:?}");
    for f in &udp {
        assert_eq!(
            (f[0].as_str(), f[1].as_str(), f[2].as_str()),
            ("1480", "0", "1500")
        );
    }
}
