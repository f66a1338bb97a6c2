//! Commands stopped by a signal (issue 11). `synack lab`: SIGINT, SIGTERM
//! and SIGHUP end the run at once, whatever the server thread waits for
//! (accept, recv) and however long `--timeout` is, with exit status 130 and
//! a capture that tshark reads (as root: a real namespace and kernel
//! server). `synack serve`: SIGHUP stops it like SIGTERM, exit 0 with the
//! summary.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::tshark_tcp;

/// What the test allows between the signal and the exit (the target is
/// 0.5 s; the rest is slack for a busy CI machine).
const EXIT_LIMIT: Duration = Duration::from_secs(1);
/// How long the lab may take to reach the point where the signal goes.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Starts `synack lab ARGS -w pcap` and waits (bounded) until a stdout
/// line contains `ready`.
fn start_until(pcap: &Path, args: &[&str], ready: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synack"))
        .arg("lab")
        .args(args)
        .arg("-w")
        .arg(pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn synack lab");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_LIMIT;
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(ready) {
            return (child, seen);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the lab never printed {ready:?}:\n{seen}");
}

/// Sends `signal`, waits (bounded) for the exit; returns the status code,
/// stderr and how long the exit took.
fn stop(mut child: Child, signal: Signal) -> (Option<i32>, String, Duration) {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let sent = Instant::now();
    kill(pid, signal).expect("kill");
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(70) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("synack lab did not exit after {signal}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    let took = sent.elapsed();
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    (status.code(), stderr, took)
}

/// The server waits in accept() for a SYN that is lost twice (the next
/// retransmission is 2 s away) and `--timeout` is a minute: each signal
/// ends the run at once.
#[test]
fn every_stop_signal_ends_the_lab_at_once_while_the_server_waits_in_accept() {
    require_root!();
    require_tool!("tshark");
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("x.pcap");
        let (child, _) = start_until(&pcap, &["--drop", "syn,syn", "--timeout", "60s"], "[SYN]");
        let (code, stderr, took) = stop(child, signal);
        eprintln!("{signal}: exit {code:?} in {took:?}");
        assert_eq!(code, Some(130), "{signal}: {stderr}");
        assert!(took < EXIT_LIMIT, "{signal}: took {took:?}");
        assert!(
            stderr.contains("interrupted in SYN-SENT") && stderr.contains("holds every frame"),
            "{signal}: {stderr}"
        );
        // The SYN that was sent (and dropped), read by tshark.
        let frames = tshark_tcp(&pcap);
        assert!(!frames.is_empty(), "{signal}: no TCP frame in the pcap");
        assert_eq!(frames[0].flags, 0x002, "{signal}: {frames:?}");
    }
}

/// The server waits in recv() for data that is lost (the client resends
/// it after its RTO): Ctrl-C ends the run at once, not after `--timeout`.
#[test]
fn ctrl_c_ends_the_lab_at_once_while_the_server_waits_in_recv() {
    require_root!();
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("x.pcap");
    let (child, _) = start_until(
        &pcap,
        &["--drop", "data:1", "--timeout", "60s"],
        "accept() →",
    );
    // Let the lost data go out (it is sent right after the handshake).
    thread::sleep(Duration::from_millis(100));
    let (code, stderr, took) = stop(child, Signal::SIGINT);
    eprintln!("SIGINT in recv: exit {code:?} in {took:?}");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < EXIT_LIMIT, "took {took:?}");
    assert!(stderr.contains("interrupted in ESTABLISHED"), "{stderr}");
    // SYN, SYN-ACK, ACK and the lost data segment.
    assert!(tshark_tcp(&pcap).len() >= 4);
}

/// A closed terminal (SIGHUP) stops `serve` as SIGTERM does: exit 0 with
/// its summary, at once.
#[test]
fn sighup_stops_serve_with_its_summary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["serve", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn synack serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the listening line");
    assert!(first.starts_with("listening on"), "{first}");
    let (code, stderr, took) = stop(child, Signal::SIGHUP);
    eprintln!("serve SIGHUP: exit {code:?} in {took:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("stdout");
    assert_eq!(code, Some(0), "{rest}{stderr}");
    assert!(rest.contains("stopped: 0 connection(s)"), "{rest}");
    assert!(took < EXIT_LIMIT, "took {took:?}");
}
