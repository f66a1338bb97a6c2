//! `synack inspect` as a user runs it: output, exit codes 0/1/2, and bad
//! inputs that must give a message naming the file, never a panic.

use std::path::{Path, PathBuf};

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

#[test]
fn json_is_one_object_per_file() {
    let out = synack()
        .args(["inspect", "--json"])
        .arg(capture("refused.pcap"))
        .arg(capture("three_way.pcap"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let objects: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("JSON objects");
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["connections"][0]["close"]["kind"], "rst_server");
    assert_eq!(objects[1]["connections"][0]["close"]["kind"], "fin_3way");
    assert_eq!(objects[1]["packets"], 10);
    assert_eq!(objects[1]["link_types"][0]["link_type"], 1);
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
        .stdout(predicate::str::contains("\"complete\": false"))
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
