//! `synack lab`'s narration outputs end to end (issue 6): the pcapng
//! comments and timestamps as tshark reads them, the server-side capture
//! against the client-side one, the ladder, the Mermaid file and the
//! explanations, alone and combined with the scenarios. The lab runs need
//! root; the timestamp check of the pcapng writer does not.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::{assert_clean_capture, assert_lab_ok, flag_names, host_network, tshark_tcp};

fn synack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synack"))
}

fn run_lab(args: &[&str]) -> Output {
    synack()
        .args(["--color", "never", "lab", "--time-wait", "0"])
        .args(args)
        .output()
        .expect("running synack lab")
}

fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `tshark -T fields` with these fields, one Vec per frame, checksums
/// checked.
fn tshark_fields(file: &Path, filter: Option<&str>, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file);
    for proto in ["ip", "tcp", "udp"] {
        cmd.args(["-o", &format!("{proto}.check_checksum:TRUE")]);
    }
    if let Some(filter) = filter {
        cmd.args(["-Y", filter]);
    }
    cmd.args(["-T", "fields", "-E", "separator=\t"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// What tshark says the file's format is (`pcapng` or `pcap`).
fn file_type(file: &Path) -> String {
    let bytes = std::fs::read(file).expect("reading the capture");
    match bytes.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => "pcapng".into(),
        Some([0x4d, 0x3c, 0xb2, 0xa1]) => "pcap-ns".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn pcapng_timestamps_read_by_tshark_are_the_nanoseconds_we_wrote() {
    require_tool!("tshark");
    use synack::capture::writer::{Interface, PcapNgRecorder};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.pcapng");
    let file = std::fs::File::create(&path).unwrap();
    let iface = Interface {
        name: "cli0".into(),
        description: "test".into(),
    };
    let mut rec = PcapNgRecorder::new(file, &iface).unwrap();
    // A minimal Ethernet frame (ARP type, zero payload).
    let mut frame = vec![0xffu8; 12];
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.extend_from_slice(&[0u8; 28]);
    let times = [
        Duration::new(1_700_000_000, 123_456_789),
        Duration::new(1_700_000_000, 123_456_790),
        Duration::new(1_800_000_001, 1),
    ];
    let comments = [
        "first → ünïcödé",
        "",
        "third; with: punctuation # and \"quotes\"",
    ];
    for (t, c) in times.iter().zip(comments) {
        rec.record(SystemTime::UNIX_EPOCH + *t, &frame, Some(c))
            .unwrap();
    }
    drop(rec);
    let rows = tshark_fields(&path, None, &["frame.time_epoch", "frame.comment"]);
    let got: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        got,
        [
            "1700000000.123456789",
            "1700000000.123456790",
            "1800000001.000000001"
        ]
    );
    let comments: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        comments,
        [
            "first → ünïcödé",
            "",
            "third; with: punctuation # and \"quotes\""
        ]
    );
}

#[test]
fn pcapng_comments_every_frame_and_tshark_and_inspect_read_it() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let before = host_network();
    let out = synack()
        .current_dir(dir.path())
        .args(["-q", "lab", "--time-wait", "0", "--isn", "1000", "--pcapng"])
        .output()
        .unwrap();
    assert_lab_ok(&out, &before);
    // --pcapng without -w names the file .pcapng.
    let pcapng = dir.path().join("synack-lab.pcapng");
    assert_eq!(file_type(&pcapng), "pcapng");
    let frames = assert_clean_capture(&pcapng);
    assert_eq!(
        flag_names(&frames),
        [
            "SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "ACK",
            "FIN-ACK", "ACK"
        ]
    );
    // Every frame has a comment; ARP ones too.
    let all = tshark_fields(&pcapng, None, &["frame.number"]).len();
    let commented = tshark_fields(&pcapng, Some("frame.comment"), &["frame.comment"]);
    assert_eq!(commented.len(), all);
    // (common::tshark_tcp splits on ';', which the comments contain.)
    let tcp_comments = tshark_fields(&pcapng, Some("tcp"), &["frame.comment"]);
    let tcp: Vec<&str> = tcp_comments.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(tcp.len(), 11);
    assert!(
        tcp[0].starts_with("SYN: client ISN 0x000003e8, offers MSS 1460"),
        "{}",
        tcp[0]
    );
    assert!(tcp[0].contains("; client CLOSED → SYN-SENT; server SYN-RECEIVED"));
    assert!(tcp[1].starts_with("SYN-ACK: server ISN 0x"), "{}", tcp[1]);
    assert!(
        tcp[1].contains("acks the client's ISN+1")
            && tcp[1].contains("; client SYN-SENT → ESTABLISHED; server SYN-RECEIVED"),
        "{}",
        tcp[1]
    );
    assert!(tcp[3].starts_with("data: 5 bytes from the client, seq 1–5"));
    assert!(tcp[7].starts_with("FIN: the client closes its sending side (seq 6)"));
    assert!(tcp[7].contains("client ESTABLISHED → FIN-WAIT-1"));
    assert!(tcp[10].starts_with("ACK: acks the server's FIN; client TIME-WAIT"));
    let arp = tshark_fields(&pcapng, Some("arp"), &["frame.comment"]);
    assert!(arp[0][0].starts_with("ARP request from the client: who has 198.18.0.1?"));

    // synack inspect reads it as the lab's default run.
    let inspect = synack()
        .args(["--color", "never", "inspect", "--summary"])
        .arg(&pcapng)
        .output()
        .unwrap();
    let text = stdout_of(&inspect);
    assert!(
        text.contains("hs=complete")
            && text.contains("close=fin_4way closer=client zeek=SF history=ShADadFf"),
        "{text}"
    );
}

#[test]
fn the_server_side_sees_the_same_segments_in_the_same_order() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("client.pcap");
    let server = dir.path().join("server.pcapng");
    let before = host_network();
    let out = synack()
        .args(["-q", "lab", "--time-wait", "0", "--close", "server", "-w"])
        .arg(&client)
        .arg("--server-side")
        .arg(&server)
        .output()
        .unwrap();
    assert_lab_ok(&out, &before);
    assert_eq!(file_type(&client), "pcap-ns");
    assert_eq!(file_type(&server), "pcapng");
    // Checksums good, no warnings: the kernel's segments are whole on srv0.
    let server_frames = assert_clean_capture(&server);
    let client_frames = assert_clean_capture(&client);
    assert_eq!(server_frames.len(), client_frames.len());
    // Each direction: the same segments, byte for byte in their numbers, in
    // the same order. (Across directions two segments in flight at once,
    // such as the client's ACK of the reply and the server's FIN under
    // --close server, cross on the wire: each end records its own order.)
    let fields = ["tcp.seq_raw", "tcp.ack_raw", "tcp.len", "tcp.flags"];
    for from in ["198.18.0.1", "198.18.0.2"] {
        let filter = format!("tcp && ip.src == {from}");
        let on_client = tshark_fields(&client, Some(&filter), &fields);
        let on_server = tshark_fields(&server, Some(&filter), &fields);
        assert!(on_client.len() >= 5, "{on_client:?}");
        assert_eq!(on_client, on_server, "from {from}");
    }
    // Both ARP frames are there too, and the times are the kernel's: each
    // server-side frame within 1 s of its client-side twin.
    let t = |f: &Path| -> Vec<f64> {
        tshark_fields(f, None, &["frame.time_epoch"])
            .iter()
            .map(|r| r[0].parse().unwrap())
            .collect()
    };
    let (tc, ts) = (t(&client), t(&server));
    assert_eq!(tc.len(), ts.len());
    for (a, b) in tc.iter().zip(&ts) {
        assert!((a - b).abs() < 1.0, "{a} vs {b}");
    }
    // The interface is named in the pcapng.
    let ifname = tshark_fields(&server, None, &["frame.interface_name"]);
    assert_eq!(ifname[0][0], "srv0");

    // The default run has no segments in flight at once: both ends record
    // the very same order.
    let server = dir.path().join("server.pcap");
    let out = synack()
        .args(["-q", "lab", "--time-wait", "0", "-w"])
        .arg(&client)
        .arg("--server-side")
        .arg(&server)
        .output()
        .unwrap();
    assert_lab_ok(&out, &before);
    assert_eq!(file_type(&server), "pcap-ns");
    assert_clean_capture(&server);
    let fields = [
        "ip.src",
        "tcp.seq_raw",
        "tcp.ack_raw",
        "tcp.len",
        "tcp.flags",
    ];
    let on_client = tshark_fields(&client, Some("tcp"), &fields);
    let on_server = tshark_fields(&server, Some("tcp"), &fields);
    assert_eq!(on_client.len(), 11);
    assert_eq!(on_client, on_server);
}

#[test]
fn ladder_mermaid_and_explanations_tell_the_same_run() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lab.pcap");
    let mmd = dir.path().join("run.mmd");
    let out = run_lab(&[
        "--ladder",
        "--explain",
        "--mermaid",
        mmd.to_str().unwrap(),
        "-w",
        pcap.to_str().unwrap(),
    ]);
    let stdout = stdout_of(&out);
    // One explanation after each of the 11 segments.
    let explained: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("↳ "))
        .collect();
    assert_eq!(explained.len(), 11, "{stdout}");
    assert!(explained.iter().all(|l| l.contains("(RFC 9293 §")));
    assert!(explained[0].contains("The SYN opens the connection"));
    assert!(explained[2].contains(
        "completes the three-way handshake: both sides are ESTABLISHED (RFC 9293 §3.5)."
    ));
    assert!(explained[7].contains("FIN-WAIT-1") && explained[7].contains("§3.6)."));
    // The ladder comes after the narration and before the summary.
    let ladder_at = stdout.find("ladder:\n").expect("a ladder");
    let summary_at = stdout.find("summary:").expect("a summary");
    assert!(ladder_at < summary_at);
    let ladder = &stdout[ladder_at..summary_at];
    let arrows: Vec<&str> = ladder
        .lines()
        .filter(|l| l.contains("seq=") && (l.contains('▶') || l.contains('◀')))
        .collect();
    assert_eq!(arrows.len(), 11, "{ladder}");
    assert!(arrows[0].contains("SYN-SENT") && arrows[0].contains("[SYN] seq=0 len=0 win=64240"));
    assert!(arrows[0].ends_with("SYN-RECEIVED"), "{}", arrows[0]);
    assert!(arrows[1].contains("◀") && arrows[1].contains("[SYN, ACK] seq=0 ack=1"));
    assert!(arrows[10].contains("TIME-WAIT") && arrows[10].ends_with("CLOSED"));
    assert!(ladder.contains("accept() → 198.18.0.2:"), "{ladder}");
    assert!(!ladder.contains('\x1b'), "--color never");

    let mermaid = std::fs::read_to_string(&mmd).unwrap();
    assert!(
        mermaid.starts_with("sequenceDiagram\n    participant Client\n    participant Server\n")
    );
    let messages: Vec<&str> = mermaid
        .lines()
        .filter(|l| l.contains("->>") && !l.contains("-->>"))
        .collect();
    assert_eq!(messages.len(), 11, "{mermaid}");
    assert_eq!(
        messages[0],
        "    Client->>Server: [SYN] seq=0 len=0 win=64240"
    );
    // Nothing in a message or a note that ends a Mermaid statement early.
    for line in mermaid.lines().skip(1) {
        let text = line.split_once(": ").map_or("", |(_, t)| t);
        assert!(!text.contains(';') && !text.contains('#'), "{line}");
    }
    assert!(mermaid.contains("    Note over Client: TIME-WAIT\n"));
}

#[test]
fn narration_combines_with_the_scenarios_and_json() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();

    // Refused: the RST+ACK commented and explained, exit 0.
    let refused = dir.path().join("refused.pcapng");
    let out = run_lab(&[
        "--refused",
        "--explain",
        "--ladder",
        "-w",
        refused.to_str().unwrap(),
    ]);
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("connection refused (RFC 9293 §3.10.7.1, §3.5.2, §3.10.7.3)."),
        "{stdout}"
    );
    let frames = tshark_tcp(&refused);
    assert_eq!(flag_names(&frames), ["SYN", "RST-ACK"]);
    let comments = tshark_fields(&refused, Some("tcp"), &["frame.comment"]);
    assert!(
        comments[1][0].starts_with(
            "RST+ACK: the server refuses the SYN (no socket listens on the port); client SYN-SENT → CLOSED"
        ),
        "{comments:?}"
    );

    // Delayed ACK, JSON: explain events follow their segments, the ladder
    // is one JSON event, stdout stays JSON lines.
    let pcap = dir.path().join("delayed.pcap");
    let out = run_lab(&[
        "--delayed-ack",
        "--json",
        "--explain",
        "--ladder",
        "-w",
        pcap.to_str().unwrap(),
    ]);
    let events: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for (i, kind) in kinds.iter().enumerate() {
        if *kind == "segment" {
            assert_eq!(kinds[i + 1], "explain", "{kinds:?}");
            assert_eq!(events[i + 1]["flags"], events[i]["flags"]);
        }
    }
    let rides = events
        .iter()
        .find(|e| {
            e["event"] == "explain" && e["text"].as_str().unwrap().contains("rides on its own FIN")
        })
        .expect("the delayed ACK explained");
    assert_eq!(rides["rfc9293"], serde_json::json!(["3.6", "3.8.6.3"]));
    assert_eq!(kinds[kinds.len() - 2], "ladder");
    assert_eq!(kinds[kinds.len() - 1], "summary");

    // -q with --explain: the explanations alone, each with its flags.
    let out = synack()
        .args([
            "-q",
            "lab",
            "--time-wait",
            "0",
            "--explain",
            "--close",
            "server",
            "-w",
        ])
        .arg(dir.path().join("quiet.pcap"))
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(!stdout.contains("SYN-SENT |"), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("(RFC 9293 §"))
        .collect();
    assert_eq!(lines.len(), 11, "{stdout}");
    assert!(lines[0].contains("client → server  [SYN]"), "{}", lines[0]);
    assert!(
        stdout.contains("The server closes first: the client enters CLOSE-WAIT"),
        "{stdout}"
    );
}

#[test]
fn one_file_for_two_outputs_is_a_usage_error() {
    let out = synack()
        .args(["lab", "-w", "same.pcap", "--server-side", "same.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--server-side same.pcap is also the file of -w"),
        "{stderr}"
    );
    // The narration outputs are not for the benchmark.
    let out = synack()
        .args(["lab", "--count", "3", "--ladder"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn nobody_gets_the_server_side_and_the_comments_too() {
    require_root!();
    require_tool!("tshark");
    require_tool!("setpriv");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let user = nix::unistd::User::from_name("nobody")
        .expect("reading the user database")
        .expect("a user 'nobody'");
    // A directory nobody can write, with a copy of the binary it can run.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("synack");
    common::copy_binary(&bin);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    let before = host_network();
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            &user.uid.to_string(),
            "--regid",
            &user.gid.to_string(),
        ])
        .args(["--clear-groups"])
        .arg(&bin)
        .args(["-q", "lab", "--time-wait", "0", "--pcapng", "--ladder"])
        .args(["--server-side", "server.pcap", "--mermaid", "run.mmd"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = assert_lab_ok(&out, &before);
    assert!(stdout.contains("ladder:"), "{stdout}");
    for name in ["synack-lab.pcapng", "server.pcap", "run.mmd"] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.uid(), user.uid.as_raw(), "{name}");
    }
    let client = dir.path().join("synack-lab.pcapng");
    let commented = tshark_fields(&client, Some("tcp && frame.comment"), &["frame.number"]);
    assert_eq!(commented.len(), 11);
    let server = assert_clean_capture(&dir.path().join("server.pcap"));
    assert_eq!(server.len(), 11);
}

#[test]
fn udp_datagrams_are_narrated_too() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("udp.pcapng");
    let server = dir.path().join("udp-server.pcap");
    let out = run_lab(&[
        "--udp",
        "--data",
        "hello",
        "--data",
        "world",
        "--explain",
        "--ladder",
        "-w",
        client.to_str().unwrap(),
        "--server-side",
        server.to_str().unwrap(),
    ]);
    let stdout = stdout_of(&out);
    let explained: Vec<&str> = stdout.lines().filter(|l| l.contains("↳ ")).collect();
    assert_eq!(explained.len(), 4, "{stdout}");
    assert!(explained.iter().all(|l| l.ends_with("(UDP, RFC 768).")));
    assert!(stdout.contains("[UDP] #1 len=5 ─"), "{stdout}");
    let comments = tshark_fields(&client, Some("udp"), &["frame.comment"]);
    let comments: Vec<&str> = comments.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(comments.len(), 4);
    assert!(comments[0].starts_with("UDP datagram #1 from the client: 5 bytes \"hello\""));
    assert!(comments[3].starts_with("UDP datagram #2 from the server: 13 bytes"));
    // The server side holds the same four datagrams, checksums good.
    let on_server = tshark_fields(
        &server,
        Some("udp"),
        &["ip.src", "udp.length", "udp.checksum.status"],
    );
    assert_eq!(on_server.len(), 4, "{on_server:?}");
    let on_client = tshark_fields(
        &client,
        Some("udp"),
        &["ip.src", "udp.length", "udp.checksum.status"],
    );
    // Each direction in the same order. Across directions the two taps
    // may differ: the client records its datagram when it sends it, and a
    // reply already queued on its socket then is recorded after it, while
    // srv0 saw the reply first (UDP waits for no acknowledgment).
    let by_source = |rows: &[Vec<String>], src: &str| -> Vec<Vec<String>> {
        rows.iter().filter(|r| r[0] == src).cloned().collect()
    };
    for src in ["198.18.0.1", "198.18.0.2"] {
        assert_eq!(
            by_source(&on_client, src),
            by_source(&on_server, src),
            "{src}: {on_client:?} vs {on_server:?}"
        );
    }
    assert!(on_server.iter().all(|r| r[2] == "1"), "{on_server:?}");
}

#[test]
fn losses_and_aborts_are_narrated_from_the_numbers() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    // The client's FIN lost once, its final ACK lost once: each
    // retransmission is recognised and explained (RFC 9293 §3.8.1), the
    // repeated final ACK from TIME-WAIT too.
    let lossy = dir.path().join("lossy.pcapng");
    let out = synack()
        .args(["--color", "never", "lab", "--time-wait", "1s"])
        .args(["--drop", "fin,final-ack", "--explain", "-w"])
        .arg(&lossy)
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    let comments: Vec<String> = tshark_fields(&lossy, Some("tcp"), &["frame.comment"])
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let find = |prefix: &str| {
        comments
            .iter()
            .find(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no comment starting {prefix:?} in {comments:#?}"))
    };
    assert!(
        find("FIN: the client closes its sending side").contains("dropped on purpose (--drop fin)")
    );
    find("retransmission of the client's FIN: ");
    find("retransmission of the server's FIN: ");
    find("duplicate ACK: the client repeats ack");
    assert!(
        stdout.contains("The client sends its FIN again: no acknowledgment came before its retransmission timer expired (RFC 9293 §3.8.1)."),
        "{stdout}"
    );
    assert!(
        stdout.contains("this is why TIME-WAIT lasts 2·MSL"),
        "{stdout}"
    );

    // The server aborts (SO_LINGER 0): its RST+ACK commented and explained.
    let abort = dir.path().join("abort.pcapng");
    let out = run_lab(&[
        "--abort",
        "server",
        "--explain",
        "-w",
        abort.to_str().unwrap(),
    ]);
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("The server resets the connection"),
        "{stdout}"
    );
    assert!(stdout.contains("(RFC 9293 §3.5.3, §3.10.7.4)."), "{stdout}");
    let comments = tshark_fields(&abort, Some("tcp.flags.reset == 1"), &["frame.comment"]);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0][0]
            .starts_with("RST+ACK: the server resets the connection; client ESTABLISHED → CLOSED"),
        "{comments:?}"
    );
}
