//! `synack watch` against the Python socket tutorial's server and client,
//! live, in a private network namespace (root): the narration of both
//! ends, each line's delay behind its frame, Ctrl-C, the commented pcapng
//! (tshark), and agreement with `inspect` of watch's own capture.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use synack::capture::analyze::{self, Options};
use synack::capture::reader::{CaptureReader, Event};

const SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9000))
s.listen()
print("listening", flush=True)
conn, addr = s.accept()
data = conn.recv(1024)
conn.sendall(b"echo: " + data)
conn.close()
s.close()
"#;

const CLIENT: &str = r#"
import socket, time
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.connect(("127.0.0.1", 9000))
c.sendall(b"hello")
print(c.recv(1024))
time.sleep(0.3)
c.close()
"#;

/// Runs `f` in a thread of its own in a fresh network namespace with `lo`
/// up; the processes it starts inherit the namespace.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip");
        assert!(up.success());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// What one watched exchange gave.
struct Run {
    /// Each stdout line with the time it arrived.
    lines: Vec<(SystemTime, Value)>,
    pcap: PathBuf,
    _dir: tempfile::TempDir,
}

/// `synack watch -i lo --port 9000 --json -w x.pcapng` while the tutorial's
/// server and client talk, then `signal`; the watch must exit 0.
fn watch_tutorial(signal: nix::sys::signal::Signal) -> Run {
    in_netns(move || {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("x.pcapng");
        let mut child = Command::new(env!("CARGO_BIN_EXE_synack"))
            .args(["watch", "-i", "lo", "--port", "9000", "--json", "-w"])
            .arg(&pcap)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Ready once it says so on stderr (the socket is open by then).
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let err_reader = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("watching lo") {
                    let _ = ready_tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let stdout = child.stdout.take().unwrap();
        let out_reader = thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .map(|l| {
                    let at = SystemTime::now();
                    (at, serde_json::from_str::<Value>(&l).expect(&l))
                })
                .collect::<Vec<_>>()
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("watch never said it was watching");

        let mut server = Command::new("python3")
            .args(["-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The client starts once the server listens.
        let mut first = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first.trim(), "listening");
        let client = Command::new("python3")
            .args(["-c", CLIENT])
            .output()
            .unwrap();
        assert!(client.status.success(), "{client:?}");
        assert!(String::from_utf8_lossy(&client.stdout).contains("echo: hello"));
        assert!(server.wait().unwrap().success());
        thread::sleep(Duration::from_millis(300));

        nix::sys::signal::kill(pid, signal).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "watch did not stop on {signal}");
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = err_reader.join().unwrap();
        assert_eq!(status.code(), Some(0), "{signal}: {stderr}");
        let lines = out_reader.join().unwrap();
        Run {
            lines,
            pcap,
            _dir: dir,
        }
    })
}

/// Every frame's time (ns since the epoch) in a capture.
fn frame_times(path: &Path) -> Vec<u64> {
    let mut reader = CaptureReader::open(path).unwrap();
    let mut times = Vec::new();
    while let Some(event) = reader.next_event() {
        if let Event::Packet(record) = event.unwrap() {
            times.push(record.ts_ns);
        }
    }
    times
}

fn segments(run: &Run) -> Vec<(SystemTime, &Value)> {
    run.lines
        .iter()
        .filter(|(_, v)| v["event"] == "segment")
        .map(|(at, v)| (*at, v))
        .collect()
}

fn transitions(segs: &[(SystemTime, &Value)], side: &str) -> Vec<(String, String)> {
    segs.iter()
        .flat_map(|(_, v)| v[side].as_array().unwrap().clone())
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_string(),
                pair[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn watch_narrates_the_python_tutorial_live_and_stops_on_ctrl_c() {
    require_root!();
    require_tool!("python3");
    let run = watch_tutorial(nix::sys::signal::Signal::SIGINT);
    let segs = segments(&run);
    let flags: Vec<&str> = segs
        .iter()
        .map(|(_, v)| v["flags"].as_str().unwrap())
        .collect();
    assert_eq!(&flags[..3], ["SYN", "SYN, ACK", "ACK"], "{flags:?}");
    assert!(segs
        .iter()
        .all(|(_, v)| v["conn"] == 1 && v["delivered"] == true));
    let data: Vec<(String, u64)> = segs
        .iter()
        .filter(|(_, v)| v["len"].as_u64().unwrap() > 0)
        .map(|(_, v)| {
            (
                v["dir"].as_str().unwrap().to_string(),
                v["len"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(data, [("c2s".to_string(), 5), ("s2c".to_string(), 11)]);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    let client = transitions(&segs, "client");
    let server = transitions(&segs, "server");
    assert_eq!(
        client,
        [
            pair("CLOSED", "SYN-SENT"),
            pair("SYN-SENT", "ESTABLISHED"),
            pair("ESTABLISHED", "CLOSE-WAIT"),
            pair("CLOSE-WAIT", "LAST-ACK"),
            pair("LAST-ACK", "CLOSED"),
        ]
    );
    assert_eq!(
        server,
        [
            pair("LISTEN", "SYN-RECEIVED"),
            pair("SYN-RECEIVED", "ESTABLISHED"),
            pair("ESTABLISHED", "FIN-WAIT-1"),
            pair("FIN-WAIT-1", "FIN-WAIT-2"),
            pair("FIN-WAIT-2", "TIME-WAIT"),
        ]
    );
    let end = run
        .lines
        .iter()
        .find(|(_, v)| v["event"] == "connection_end")
        .map(|(_, v)| v)
        .expect("no connection_end");
    assert_eq!(end["close"], "fin_4way");
    assert_eq!(end["reason"], "closed");
    let last = &run.lines.last().unwrap().1;
    assert_eq!(last["event"], "summary");
    assert_eq!(last["connections"], 1);
    assert_eq!(last["closed"], 1);

    // One segment line per captured frame, t_ns from the first frame, and
    // each line on stdout within 100 ms of its frame.
    let times = frame_times(&run.pcap);
    assert_eq!(times.len(), segs.len());
    let mut worst = 0u64;
    for ((arrived, v), ts) in segs.iter().zip(&times) {
        assert_eq!(v["t_ns"].as_u64().unwrap(), ts - times[0]);
        let arrived = arrived
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let delay = arrived.saturating_sub(*ts);
        worst = worst.max(delay);
        assert!(delay < 100_000_000, "a line {delay} ns after its frame");
    }
    eprintln!("watch: worst line delay {} µs", worst / 1000);

    // tshark reads the capture whole: a complete conversation, a comment
    // on every TCP frame.
    require_tool!("tshark");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&run.pcap)
        .args(["-Y", "tcp", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "tcp.completeness", "-e", "frame.comment"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), segs.len(), "{text}");
    for row in &rows {
        let (_, comment) = row.split_once('|').unwrap();
        assert!(
            comment.starts_with("#1 "),
            "a frame without its comment: {row}"
        );
    }
    let completeness = rows.last().unwrap().split('|').next().unwrap();
    assert!(
        completeness.starts_with("31"),
        "tcp.completeness {completeness}"
    );
}

#[test]
fn watch_and_inspect_of_its_capture_agree_on_every_state() {
    require_root!();
    require_tool!("python3");
    // SIGTERM ends it as Ctrl-C does.
    let run = watch_tutorial(nix::sys::signal::Signal::SIGTERM);
    let segs = segments(&run);
    let reader = CaptureReader::open(&run.pcap).unwrap();
    let mut conns = Vec::new();
    let summary = analyze::run(
        reader,
        Options {
            ladder: true,
            ..Options::default()
        },
        &mut |c| conns.push(c),
    );
    assert!(summary.error.is_none());
    assert_eq!(conns.len(), 1);
    let rows = &conns[0].ladder;
    assert_eq!(rows.len(), segs.len());
    let (mut client, mut server) = (None, None);
    for (row, (_, v)) in rows.iter().zip(&segs) {
        client = row.client_state.or(client);
        server = row.server_state.or(server);
        let name = |s: Option<synack::tcp::State>| s.map(|s| s.name());
        assert_eq!(
            v["client_state"].as_str(),
            name(client),
            "client, frame {}",
            row.frame
        );
        assert_eq!(
            v["server_state"].as_str(),
            name(server),
            "server, frame {}",
            row.frame
        );
        let dir = match row.direction {
            analyze::Direction::C2s => "c2s",
            analyze::Direction::S2c => "s2c",
        };
        assert_eq!(v["dir"], dir);
        assert_eq!(v["seq_rel"], row.seq);
        assert_eq!(v["ack_rel"].as_u64(), row.ack.map(u64::from));
    }
    // The paths at the end agree too.
    let end = run
        .lines
        .iter()
        .find(|(_, v)| v["event"] == "connection_end")
        .map(|(_, v)| v)
        .unwrap();
    let names = |states: &[synack::tcp::State]| {
        states
            .iter()
            .map(|s| Value::from(s.name()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        end["client_states"],
        Value::Array(names(&conns[0].states.client))
    );
    assert_eq!(
        end["server_states"],
        Value::Array(names(&conns[0].states.server))
    );
}

#[test]
fn watch_without_privileges_says_try_sudo_and_exits_2() {
    require_root!();
    require_tool!("setpriv");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_synack"))
        .args(["watch", "-i", "lo", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("try sudo"), "{stderr}");
    let last: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("no JSON line"),
    )
    .unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["exit"], 2);
}
