//! The JSON lines contract of `synack lab --json` and `synack connect
//! --json` (issue 13, docs/json.md): every line of every lab scenario, and
//! of connect against a kernel listener and `synack serve`, goes through
//! one checker of the envelope and of each side's chain of RFC 9293
//! transitions. The runs need root (a private network namespace each).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use serde_json::Value;

fn synack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synack"))
}

/// The edges of RFC 9293's state diagram (Figure 5), plus a RST's (or an
/// ABORT's) way from any state to CLOSED and SYN-RECEIVED's back to LISTEN.
fn is_rfc_edge(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("CLOSED", "SYN-SENT" | "LISTEN")
            | ("LISTEN", "SYN-RECEIVED" | "SYN-SENT" | "CLOSED")
            | ("SYN-SENT", "SYN-RECEIVED" | "ESTABLISHED")
            | ("SYN-RECEIVED", "ESTABLISHED" | "FIN-WAIT-1" | "LISTEN")
            | ("ESTABLISHED", "FIN-WAIT-1" | "CLOSE-WAIT")
            | ("FIN-WAIT-1", "FIN-WAIT-2" | "CLOSING")
            | ("FIN-WAIT-2", "TIME-WAIT")
            | ("CLOSING", "TIME-WAIT")
            | ("CLOSE-WAIT", "LAST-ACK")
            | (_, "CLOSED")
    ) && from != to
}

/// States a side reaches only after it sent its FIN.
fn needs_own_fin(state: &str) -> bool {
    matches!(
        state,
        "FIN-WAIT-1" | "FIN-WAIT-2" | "CLOSING" | "TIME-WAIT" | "LAST-ACK"
    )
}

struct Chain {
    name: &'static str,
    /// `None`: not known yet (connect's server before it answered).
    state: Option<String>,
    sent_fin: bool,
}

impl Chain {
    fn apply(&mut self, changes: &Value, line: &str) {
        let changes = changes
            .as_array()
            .unwrap_or_else(|| panic!("{}: not an array in {line}", self.name));
        for change in changes {
            let from = change[0].as_str().expect("from is a state name");
            let to = change[1].as_str().expect("to is a state name");
            if let Some(state) = &self.state {
                assert_eq!(from, state, "{}: chain broken at {line}", self.name);
            }
            assert!(
                is_rfc_edge(from, to),
                "{}: {from} → {to} is no RFC 9293 edge: {line}",
                self.name
            );
            assert!(
                !needs_own_fin(to) || self.sent_fin,
                "{}: {to} before it sent a FIN: {line}",
                self.name
            );
            self.state = Some(to.to_string());
        }
    }
}

/// Checks every line of a `--json` run; returns the parsed lines.
fn check(stdout: &str, server_initial: Option<&str>) -> Vec<Value> {
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{stdout}"))
        })
        .collect();
    assert!(!lines.is_empty(), "no output");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "summary", "the last line: {last}");
    if !last["cycle_ns"].is_null() {
        assert!(last["cycle_ns"].is_u64(), "{last}");
    }
    let mut client = Chain {
        name: "client",
        state: Some("CLOSED".into()),
        sent_fin: false,
    };
    let mut server = Chain {
        name: "server",
        state: server_initial.map(str::to_string),
        sent_fin: false,
    };
    let mut last_t: Option<i64> = None;
    let mut fin_delivered = [false, false];
    let mut cycle_end = None;
    for (v, text) in lines.iter().zip(stdout.lines()) {
        let event = v["event"].as_str().expect("every line has an event");
        if let Some(t) = v.get("t_ns") {
            let t = t
                .as_i64()
                .unwrap_or_else(|| panic!("t_ns not an integer: {text}"));
            if let Some(last) = last_t {
                assert!(t >= last, "lines out of t_ns order at {text}");
            }
            last_t = Some(t);
        }
        assert!(v.get("t_us").is_none(), "no float times: {text}");
        match event {
            "segment" => {
                for key in [
                    "dir",
                    "flags",
                    "seq",
                    "seq_rel",
                    "len",
                    "delivered",
                    "retransmission",
                    "client",
                    "server",
                    "client_state",
                    "server_state",
                ] {
                    assert!(v.get(key).is_some(), "{key} missing: {text}");
                }
                assert!(v["seq"].is_u64() && v["seq_rel"].is_u64(), "{text}");
                assert!(v.get("ack").is_some() && v.get("ack_rel").is_some());
                let c2s = match v["dir"].as_str() {
                    Some("c2s") => true,
                    Some("s2c") => false,
                    other => panic!("dir {other:?}: {text}"),
                };
                let flags = v["flags"].as_str().unwrap();
                let fin = flags.split(", ").any(|f| f == "FIN");
                let delivered = v["delivered"].as_bool().expect("delivered is a bool");
                assert!(v["retransmission"].is_boolean(), "{text}");
                if v["held"] == true {
                    assert!(!delivered, "held but delivered: {text}");
                }
                if fin {
                    if c2s {
                        client.sent_fin = true;
                    } else {
                        server.sent_fin = true;
                    }
                }
                client.apply(&v["client"], text);
                server.apply(&v["server"], text);
                let side = usize::from(!c2s);
                if fin && delivered && !fin_delivered[side] {
                    fin_delivered[side] = true;
                    let receiver = if c2s { &v["server"] } else { &v["client"] };
                    let receiver_state = if c2s {
                        server.state.as_deref()
                    } else {
                        client.state.as_deref()
                    };
                    assert!(
                        !receiver.as_array().unwrap().is_empty()
                            || receiver_state == Some("CLOSED"),
                        "the first delivered FIN moves its receiver on its row: {text}"
                    );
                }
                assert_eq!(
                    v["client_state"].as_str(),
                    client.state.as_deref(),
                    "client_state: {text}"
                );
                assert_eq!(
                    v["server_state"].as_str(),
                    server.state.as_deref(),
                    "server_state: {text}"
                );
                let moved = |c: &Value| {
                    c.as_array()
                        .unwrap()
                        .iter()
                        .any(|ch| matches!(ch[1].as_str(), Some("CLOSED" | "TIME-WAIT")))
                };
                if moved(&v["client"]) || moved(&v["server"]) {
                    cycle_end = v["t_ns"].as_i64();
                }
            }
            "app" => {
                assert!(matches!(v["side"].as_str(), Some("client" | "server")));
                assert!(v["call"].is_string());
                assert_eq!(
                    v["server"].as_array().map(Vec::len),
                    Some(0),
                    "the server's transitions sit on segment rows: {text}"
                );
                client.apply(&v["client"], text);
            }
            "timer" | "process" => {
                client.apply(&v["client"], text);
                server.apply(&v["server"], text);
            }
            "summary" => {
                if let (Some(cycle), Some(end)) = (v["cycle_ns"].as_u64(), cycle_end) {
                    assert_eq!(cycle as i64, end, "cycle_ns is the last ACK's time");
                }
            }
            _ => {}
        }
    }
    lines
}

fn lab_json(args: &[&str]) -> Output {
    // A lost final ACK needs TIME-WAIT to answer the FIN sent again.
    let time_wait = if args.contains(&"final-ack") {
        "1s"
    } else {
        "0"
    };
    synack()
        .args(["lab", "--json", "--time-wait", time_wait])
        .args(args)
        .output()
        .expect("running synack lab")
}

#[test]
fn every_lab_scenario_keeps_the_json_contract() {
    require_root!();
    let scenarios: Vec<Vec<&'static str>> = vec![
        vec![],
        vec!["--close", "client"],
        vec!["--close", "server"],
        vec!["--close", "simultaneous"],
        vec!["--abort", "client"],
        vec!["--abort", "server"],
        vec!["--half-close"],
        vec!["--drop", "syn"],
        vec!["--drop", "synack"],
        vec!["--drop", "data:1"],
        vec!["--drop", "data-reply"],
        vec!["--drop", "fin"],
        vec!["--drop", "server-fin"],
        vec!["--drop", "final-ack"],
        vec!["--refused"],
        vec!["--delayed-ack"],
        vec!["--sticky", "--data", "hello", "--data", "world"],
        vec!["--framing", "length-prefix", "--data", "a", "--data", "b"],
    ];
    // Two at a time: the drops wait for retransmission timers.
    for pair in scenarios.chunks(2) {
        let runs: Vec<_> = pair
            .iter()
            .cloned()
            .map(|args| thread::spawn(move || (args.clone(), lab_json(&args))))
            .collect();
        for run in runs {
            let (args, out) = run.join().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let refused = args.contains(&"--refused");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let initial = if refused { "CLOSED" } else { "LISTEN" };
            let lines = check(&stdout, Some(initial));
            let segments = lines.iter().filter(|v| v["event"] == "segment").count();
            assert!(segments >= 2, "{args:?}: {segments} segments");
            let calls = lines
                .iter()
                .filter(|v| v["event"] == "app" && v["side"] == "client")
                .count();
            assert!(calls >= 1, "{args:?}: the client's calls are rows");
        }
    }
}

#[test]
fn close_server_shows_the_servers_own_close_and_a_passive_client() {
    require_root!();
    let out = lab_json(&["--close", "server"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let lines = check(&stdout, Some("LISTEN"));
    let segs: Vec<&Value> = lines.iter().filter(|v| v["event"] == "segment").collect();
    // The server's data segment leaves it ESTABLISHED (its kernel may
    // already be in FIN-WAIT-1: the application called close()).
    let data = segs
        .iter()
        .find(|v| v["dir"] == "s2c" && v["len"].as_u64() > Some(0))
        .unwrap();
    assert_eq!(data["server_state"], "ESTABLISHED");
    let fin = segs
        .iter()
        .find(|v| v["dir"] == "s2c" && v["flags"].as_str().unwrap().contains("FIN"))
        .unwrap();
    assert_eq!(fin["server"][0][1], "FIN-WAIT-1");
    let summary = lines.last().unwrap();
    assert_eq!(summary["server_final_state"], "TIME-WAIT");
}

#[test]
fn the_default_run_ends_the_servers_last_ack_on_the_final_ack() {
    require_root!();
    let out = lab_json(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let lines = check(&stdout, Some("LISTEN"));
    let segs: Vec<&Value> = lines.iter().filter(|v| v["event"] == "segment").collect();
    assert_eq!(
        segs[0]["server"][0],
        serde_json::json!(["LISTEN", "SYN-RECEIVED"])
    );
    let last = segs.last().unwrap();
    assert_eq!(last["server"][0], serde_json::json!(["LAST-ACK", "CLOSED"]));
    assert_eq!(
        lines.last().unwrap()["cycle_ns"].as_i64(),
        last["t_ns"].as_i64()
    );
}

/// Runs `f` in a new thread inside a new network namespace with `lo` up.
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

fn connect_json(target: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    synack()
        .args(["connect", target, "--json", "--time-wait", "0", "-w"])
        .arg(dir.path().join("c.pcap"))
        .args(extra)
        .output()
        .expect("running synack connect")
}

#[test]
fn connect_keeps_the_json_contract_against_a_kernel_listener() {
    require_root!();
    let out = in_netns(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).unwrap();
            sock.write_all(b"hello, client").unwrap();
            while sock.read(&mut buf).is_ok_and(|n| n > 0) {}
        });
        let out = connect_json(&format!("127.0.0.1:{port}"), &[]);
        server.join().unwrap();
        out
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&stdout, None);
}

#[test]
fn connect_keeps_the_json_contract_against_synack_serve() {
    require_root!();
    let out = in_netns(|| {
        let mut serve = synack()
            .args(["serve", "127.0.0.1:0", "--count", "1", "--echo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let port = first
            .split(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        let out = connect_json(
            &format!("127.0.0.1:{port}"),
            &["--data", "hello", "--data", "world"],
        );
        let _ = serve.wait();
        out
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = check(&stdout, None);
    let sends = lines
        .iter()
        .filter(|v| v["event"] == "app" && v["side"] == "client")
        .filter(|v| v["call"].as_str().unwrap().starts_with("send()"))
        .count();
    assert_eq!(sends, 2);
}
