//! `synack inspect` as a user runs it: output, exit codes 0/1/2, and bad
//! inputs that must give a message naming the file, never a panic.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

fn synack() -> Command {
    let mut cmd = Command::cargo_bin("synack").expect("binary");
    cmd.env_remove("SYNACK_LOG");
    cmd
}

#[test]
fn a_whole_file_exits_0_with_table_and_ladder() {
    synack()
        .args(["inspect", "--color", "never"])
        .arg(capture("four_way_client.pcap"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fin_4way"))
        .stdout(predicate::str::contains("[SYN] seq=0"))
        .stdout(predicate::str::contains("TIME-WAIT"))
        .stdout(predicate::str::contains("\x1b[").not());
}

/// Every line of `--json` output, parsed (each must be one JSON object
/// with an "event" key).
fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(stdout).expect("utf-8");
    text.lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v["event"].is_string(), "no event: {line}");
            v
        })
        .collect()
}

/// Every number in `v` is an integer (times are `*_ns`/`*_us`).
fn assert_integers(v: &serde_json::Value) {
    match v {
        serde_json::Value::Number(n) => assert!(n.is_u64() || n.is_i64(), "float {n}"),
        serde_json::Value::Array(items) => items.iter().for_each(assert_integers),
        serde_json::Value::Object(map) => map.values().for_each(assert_integers),
        _ => {}
    }
}

#[test]
fn json_is_one_line_per_connection_then_per_file_then_a_summary() {
    let out = synack()
        .args(["inspect", "--json"])
        .arg(capture("refused.pcap"))
        .arg(capture("concurrent.pcap"))
        .arg(capture("three_way.pcap"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out.stdout);
    lines.iter().for_each(assert_integers);
    let events: Vec<&str> = lines
        .iter()
        .map(|l| l["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        [
            "connection",
            "file",
            "connection",
            "connection",
            "connection",
            "file",
            "connection",
            "file",
            "summary"
        ]
    );
    assert_eq!(lines[0]["close"]["kind"], "rst_server");
    assert_eq!(lines[0]["ended"], "close");
    assert!(lines[0]["file"]
        .as_str()
        .unwrap_or("")
        .ends_with("refused.pcap"));
    assert_eq!(lines[1]["connections"], 1);
    assert_eq!(lines[6]["close"]["kind"], "fin_3way");
    assert_eq!(lines[7]["packets"], 10);
    assert_eq!(lines[7]["link_types"][0]["link_type"], 1);
    assert_eq!(lines[7]["complete"], true);
    let summary = &lines[8];
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["connections"], 5);
}

#[test]
fn summary_prints_one_line_per_connection() {
    synack()
        .args(["inspect", "--summary"])
        .arg(capture("concurrent.pcap"))
        .assert()
        .code(0)
        .stdout(predicate::function(|s: &str| s.lines().count() == 3))
        .stdout(predicate::str::contains("zeek=SF history=ShADadFf"));
}

#[test]
fn a_cut_file_reports_what_was_read_and_exits_1() {
    synack()
        .args(["inspect", "--json"])
        .arg(capture("truncated.pcap"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"complete\":false"))
        .stdout(predicate::str::contains("\"event\":\"error\""))
        .stdout(predicate::str::contains("127.0.0.1"))
        .stderr(predicate::str::contains("truncated.pcap: byte 878"));
}

#[test]
fn unreadable_inputs_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    let text = dir.path().join("notes.pcap");
    std::fs::write(&text, b"this is not a capture\n").expect("write");
    let short = dir.path().join("short.pcap");
    std::fs::write(&short, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0]).expect("write");
    let missing = dir.path().join("missing.pcap");
    for (path, words) in [
        (&empty, "empty file"),
        (&text, "not a pcap or pcapng file"),
        (&short, "truncated file header"),
        (&missing, "cannot open"),
        (&dir.path().to_path_buf(), "is a directory"),
    ] {
        synack()
            .arg("inspect")
            .arg(path)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(path.display().to_string()))
            .stderr(predicate::str::contains(words))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn usage_errors_exit_2() {
    synack().arg("inspect").assert().code(2);
    synack()
        .args(["inspect", "--json", "--summary"])
        .arg(capture("refused.pcap"))
        .assert()
        .code(2);
}

#[test]
fn the_worst_file_decides_the_exit_code() {
    synack()
        .args(["inspect", "--summary"])
        .arg(capture("truncated.pcap"))
        .arg(capture("refused.pcap"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("close=rst_server"));
    synack()
        .args(["inspect", "--summary"])
        .arg(capture("truncated.pcap"))
        .arg("/nonexistent/x.pcap")
        .assert()
        .code(2);
}

#[test]
fn a_text_file_is_not_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("secret.pcap");
    std::fs::write(&text, b"\x1b[31mTOPSECRET password\n").expect("write");
    synack()
        .arg("inspect")
        .arg(&text)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("magic 0x1b5b3331"))
        .stderr(predicate::str::contains("TOPSECRET").not())
        .stderr(predicate::str::contains("\x1b").not());
}

/// Waits up to `limit` for `child` to exit.
fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Starts `synack inspect --summary FIFO` and returns it once it has said
/// it waits for a writer (or panics after 10 s), with its stderr so far.
fn inspect_waiting_on(fifo: &Path) -> (std::process::Child, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("synack"))
        .args(["inspect", "--summary"])
        .arg(fifo)
        .env_remove("SYNACK_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut seen = String::new();
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if tx.send(seen.clone()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("waiting for a writer") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(text) => seen = text,
            Err(_) => {
                let _ = child.kill();
                panic!("no notice within 10 s; stderr so far: {seen:?}");
            }
        }
    }
    (child, seen)
}

#[test]
fn a_fifo_without_a_writer_says_so_then_reads_the_writer() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("live.pcap");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let (mut child, seen) = inspect_waiting_on(&fifo);
    assert!(seen.contains(&fifo.display().to_string()), "{seen}");
    // A writer comes: the capture streams through the FIFO.
    let bytes = std::fs::read(capture("four_way_client.pcap")).expect("read");
    std::fs::write(&fifo, bytes).expect("write to the FIFO");
    let status = wait_for(&mut child, Duration::from_secs(10)).expect("exits");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("close=fin_4way"), "{stdout}");
}

#[test]
fn ctrl_c_ends_the_wait_for_a_fifo_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("idle.pcap");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let (mut child, _) = inspect_waiting_on(&fifo);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let Some(status) = wait_for(&mut child, Duration::from_secs(2)) else {
        let _ = child.kill();
        panic!("still waiting 2 s after SIGINT");
    };
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

#[test]
fn a_dash_reads_standard_input() {
    let bytes = std::fs::read(capture("four_way_client.pcap")).expect("read");
    synack()
        .args(["inspect", "--summary", "-"])
        .write_stdin(bytes)
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("(standard input) #0 "))
        .stdout(predicate::str::contains("close=fin_4way"));
    synack()
        .args(["inspect", "-"])
        .write_stdin(Vec::new())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("(standard input): empty file"));
}

/// `tcpdump -U -w - | synack inspect --summary -`: a connection is
/// reported once it is over, while the writer is still writing.
#[test]
fn standard_input_is_read_as_a_stream() {
    use std::io::{BufRead, BufReader, Write};
    let mut bytes = std::fs::read(capture("four_way_client.pcap")).expect("read");
    // Then the first frame again, 2 minutes later: past the 60 s a closed
    // connection is kept, so the first one is reported before the end.
    let first_len = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
    let mut late = bytes[24..40 + first_len].to_vec();
    let sec = u32::from_le_bytes(late[0..4].try_into().expect("4 bytes")) + 120;
    late[0..4].copy_from_slice(&sec.to_le_bytes());
    bytes.extend_from_slice(&late);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("synack"))
        .args(["inspect", "--summary", "-"])
        .env_remove("SYNACK_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&bytes).expect("write");
    stdin.flush().expect("flush");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    // The writer is still there: the line came from the stream.
    let early = child.try_wait().expect("try_wait");
    assert!(early.is_none(), "exited before its input ended: {early:?}");
    drop(stdin);
    let status = wait_for(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
    }
    let first = first.expect("a line before the end of the input");
    assert!(
        first.contains("#0 ") && first.contains("close=fin_4way"),
        "{first}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
