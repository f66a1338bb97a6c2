//! `synack lab --count N`, the benchmark (issue 11): its bound, enough
//! ports for long runs, the progress on a terminal, and Ctrl-C printing the
//! figures of the cycles done. As root, except the bound.

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn synack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synack"))
}

/// Beyond the documented maximum: exit 2 at once, before any cycle.
#[test]
fn a_count_beyond_the_maximum_is_refused_at_once() {
    let started = Instant::now();
    let out = synack()
        .args(["lab", "--count", "100001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not in 1..=100000"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Just past the kernel's default ephemeral range (32768–60999: 28,232
/// ports, each left in TIME-WAIT for 60 s by the kernel client), where the
/// run used to end in EADDRNOTAVAIL. About 12 s on an idle machine.
#[test]
fn the_kernel_client_has_ports_for_more_than_28000_cycles() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bench.pcap");
    let started = Instant::now();
    let out = synack()
        .args(["-q", "lab", "--count", "30000", "-w"])
        .arg(&pcap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("30000 cycles in {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("30000 cycles each"), "{stdout}");
}

/// Ctrl-C in the middle: the table of the cycles done, exit 130, at once,
/// and a capture tshark reads.
#[test]
fn ctrl_c_prints_the_figures_of_the_cycles_done() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bench.pcap");
    let child = synack()
        .args(["lab", "--count", "100000", "-w"])
        .arg(&pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let sent = Instant::now();
    kill(pid, Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    eprintln!("SIGINT to exit: {took:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let done: usize = stdout
        .split_once(" of 100000 cycles each (interrupted)")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no partial table: {stdout}"));
    assert!(done > 0 && done < 100_000, "{stdout}");
    assert!(
        stdout.contains("whole cycle (hello/reply, close)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "interrupted (SIGINT) after {done} of 100000 cycles"
        )),
        "{stderr}"
    );
    // Every finished cycle's 11 segments (and the unfinished one's first).
    let frames = common::tshark_tcp(&pcap).len();
    assert!(frames >= done * 11 && frames < (done + 1) * 11, "{frames}");
}

/// On a terminal (here `script`'s pseudo-terminal) stderr shows how far the
/// run got; into a pipe, nothing.
#[test]
fn progress_shows_on_a_terminal_only() {
    require_root!();
    require_tool!("script");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bench.pcap");
    let command = format!(
        "{} -q lab --count 500 -w {} >/dev/null",
        env!("CARGO_BIN_EXE_synack"),
        pcap.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(terminal.contains("\rcycle 500/500"), "{terminal:?}");
    // Erased before the table.
    assert!(terminal.ends_with("\r\x1b[K"), "{terminal:?}");

    let piped = synack()
        .args(["-q", "lab", "--count", "50", "-w"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(piped.stderr.is_empty(), "{:?}", piped.stderr);
}

/// `--json`: the benchmark's figures as JSON lines, integers for times,
/// the summary last (issue 12: it used to print the text table).
#[test]
fn the_benchmark_speaks_json_lines() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bench.pcap");
    let out = synack()
        .args(["lab", "--count", "20", "--json", "-w"])
        .arg(&pcap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, what) in lines.iter().zip(["handshake", "cycle"]) {
        assert_eq!(line["event"], "measure");
        assert_eq!(line["what"], what);
        assert_eq!(line["samples"], 20);
        for key in [
            "synack_median_ns",
            "synack_p99_ns",
            "kernel_median_ns",
            "kernel_p99_ns",
        ] {
            assert!(line[key].as_u64().is_some_and(|ns| ns > 0), "{key}: {line}");
        }
    }
    assert_eq!(lines[2]["event"], "summary");
    assert_eq!(lines[2]["cycles"], 20);
    assert_eq!(lines[2]["interrupted"], false);
}
