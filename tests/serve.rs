//! `synack serve` end to end: the binary on 127.0.0.1 (a kernel-chosen
//! port, read from its first line), std `TcpStream` clients, signals.
//! No root needed; every wait is bounded.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use synack::framing::{encode_to_vec, Decoder, Framing};

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `synack serve`: its address and its stdout, line by line.
struct Serve {
    child: Child,
    addr: SocketAddr,
    /// The first line (the listening line), read to learn the address.
    first: String,
    lines: Receiver<String>,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        Self::start_on("127.0.0.1:0", args)
    }

    fn start_on(addr: &str, args: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_synack"))
            .arg("serve")
            .arg(addr)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn synack serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(IO_TIMEOUT);
        let Ok(first) = first else {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "synack serve printed nothing: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        // The narration's first line, or with --json the listening object.
        let addr = match serde_json::from_str::<Value>(&first) {
            Ok(object) => object["addr"].as_str().map(str::to_string),
            Err(_) => first
                .strip_prefix("listening on ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string),
        }
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
        Serve {
            child,
            addr,
            first,
            lines,
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, signal).expect("kill");
    }

    /// Waits (bounded) for the exit; returns the status and all stdout.
    fn wait(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("synack serve did not exit within {EXIT_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let mut stdout = String::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            stdout.push_str(&line);
            stdout.push('\n');
        }
        (status, stdout, stderr)
    }

    fn stop(self) -> (ExitStatus, String, String) {
        self.signal(Signal::SIGINT);
        self.wait()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // Only if a test failed half-way: never leave our child behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("read reply");
    buf
}

/// Half-closes and reads to the server's FIN.
fn finish(mut stream: TcpStream) -> Vec<u8> {
    stream.shutdown(Shutdown::Write).expect("FIN");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("read to EOF");
    rest
}

#[test]
fn default_reply_and_the_kernel_view_from_the_server_side() {
    let serve = Serve::start(&[]);
    let mut client = connect(serve.addr);
    client.write_all(b"hello").expect("write");
    assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
    assert!(finish(client).is_empty());
    let (status, out, _) = serve.stop();
    assert!(status.success(), "{status:?}");
    assert!(out.contains("accepted"), "{out}");
    assert!(out.contains("read 5 bytes"), "{out}");
    assert!(out.contains("replied 14 bytes"), "{out}");
    assert!(out.contains("kernel: CLOSE-WAIT"), "{out}");
    assert!(out.contains("closed after"), "{out}");
    assert!(
        out.contains("stopped: 1 connection(s), 0 error(s)"),
        "{out}"
    );
}

/// Issue 17: the same tutorial server over IPv6 loopback: bound on
/// [::1], a std client and a Python client (each over IPv6) get the
/// reply, and the kernel's view of the accepted socket (sock_diag, which
/// asks per address family) is read for IPv6 too.
#[test]
fn ipv6_loopback_clients_get_the_reply() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no IPv6 loopback under CI=true: {e}"
        );
        eprintln!("SKIPPED: this host has no ::1 ({e})");
        return;
    }
    let serve = Serve::start_on("[::1]:0", &[]);
    assert!(serve.addr.is_ipv6(), "{}", serve.addr);
    let mut client = connect(serve.addr);
    assert!(client.local_addr().expect("local").is_ipv6());
    client.write_all(b"hello").expect("write");
    assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
    assert!(finish(client).is_empty());
    let python = Command::new("python3")
        .arg("-c")
        .arg(
            "import socket, sys\n\
             s = socket.create_connection(('::1', int(sys.argv[1])), timeout=5)\n\
             assert s.family == socket.AF_INET6\n\
             s.sendall(b'hi')\n\
             s.shutdown(socket.SHUT_WR)\n\
             data = b''\n\
             while True:\n\
             \x20   chunk = s.recv(100)\n\
             \x20   if not chunk: break\n\
             \x20   data += chunk\n\
             sys.stdout.write(data.decode())\n",
        )
        .arg(serve.addr.port().to_string())
        .output();
    let python_ran = match python {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, client\n");
            true
        }
        Err(e) => {
            eprintln!("no python3 ({e}): only the Rust client ran");
            false
        }
    };
    let (status, out, _) = serve.stop();
    assert!(status.success(), "{status:?}");
    assert!(out.contains("accepted") && out.contains("[::1]:"), "{out}");
    assert!(out.contains("kernel: CLOSE-WAIT"), "{out}");
    let expected = if python_ran { 2 } else { 1 };
    assert!(
        out.contains(&format!("stopped: {expected} connection(s), 0 error(s)")),
        "{out}"
    );
}

#[test]
fn reply_text() {
    let serve = Serve::start(&["--reply", "pong"]);
    let mut client = connect(serve.addr);
    client.write_all(b"ping").expect("write");
    assert_eq!(read_exactly(&mut client, 4), b"pong");
    client.write_all(b"ping again").expect("write");
    assert_eq!(read_exactly(&mut client, 4), b"pong");
    assert!(finish(client).is_empty());
    assert!(serve.stop().0.success());
}

#[test]
fn echo() {
    let serve = Serve::start(&["--echo"]);
    let mut client = connect(serve.addr);
    for text in [&b"abc"[..], b"hello, world", &[0u8, 255, 10]] {
        client.write_all(text).expect("write");
        assert_eq!(read_exactly(&mut client, text.len()), text);
    }
    assert!(finish(client).is_empty());
    assert!(serve.stop().0.success());
}

fn framed_replies(stream: &mut TcpStream, framing: Framing, count: usize) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::new(framing);
    let mut bodies = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        if bodies.len() == count {
            break;
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "EOF after {} replies", bodies.len());
        decoder.push(&buf[..n]);
        while let Some(message) = decoder.next_message().expect("decode") {
            bodies.push(message.body);
        }
    }
    bodies
}

#[test]
fn length_prefix_several_messages_in_one_write() {
    let serve = Serve::start(&["--framing", "length-prefix", "--echo"]);
    let mut client = connect(serve.addr);
    let mut wire = Vec::new();
    for body in ["one", "two", "three", ""] {
        wire.extend(encode_to_vec(Framing::LengthPrefix, body.as_bytes()).expect("encode"));
    }
    client.write_all(&wire).expect("write");
    let bodies = framed_replies(&mut client, Framing::LengthPrefix, 4);
    assert_eq!(bodies, [&b"one"[..], b"two", b"three", b""]);
    assert!(finish(client).is_empty());
    let (status, out, _) = serve.stop();
    assert!(status.success());
    assert_eq!(out.matches("message of").count(), 4, "{out}");
}

#[test]
fn json_header_one_message_split_over_several_writes() {
    let serve = Serve::start(&["--framing", "json-header", "--reply", "got it"]);
    let mut client = connect(serve.addr);
    let wire = encode_to_vec(Framing::JsonHeader, b"a message cut in pieces").expect("encode");
    for piece in [
        &wire[..2],
        &wire[2..9],
        &wire[9..wire.len() - 3],
        &wire[wire.len() - 3..],
    ] {
        client.write_all(piece).expect("write");
        // Let each piece travel as its own segment.
        thread::sleep(Duration::from_millis(20));
    }
    let bodies = framed_replies(&mut client, Framing::JsonHeader, 1);
    assert_eq!(bodies, [b"got it"]);
    // Several messages in one write too, answered one by one.
    let mut two = encode_to_vec(Framing::JsonHeader, b"x").expect("encode");
    two.extend(encode_to_vec(Framing::JsonHeader, b"y").expect("encode"));
    client.write_all(&two).expect("write");
    assert_eq!(framed_replies(&mut client, Framing::JsonHeader, 2).len(), 2);
    assert!(finish(client).is_empty());
    let (status, out, _) = serve.stop();
    assert!(status.success());
    assert!(out.contains("message of 23 bytes"), "{out}");
    assert!(out.matches("read ").count() >= 4, "{out}");
}

#[test]
fn a_bad_frame_closes_that_client_only() {
    let serve = Serve::start(&["--framing", "json-header", "--echo"]);
    let mut bad = connect(serve.addr);
    bad.write_all(b"\x00\x00\x00\x05{bad}").expect("write");
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    assert!(rest.is_empty());
    let mut good = connect(serve.addr);
    good.write_all(&encode_to_vec(Framing::JsonHeader, b"ok").expect("encode"))
        .expect("write");
    assert_eq!(framed_replies(&mut good, Framing::JsonHeader, 1), [b"ok"]);
    assert!(finish(good).is_empty());
    let (status, out, _) = serve.stop();
    assert!(status.success());
    assert!(out.contains("bad JSON header"), "{out}");
}

#[test]
fn close_first_puts_the_server_through_fin_wait_and_time_wait() {
    let serve = Serve::start(&["--close", "first"]);
    let mut client = connect(serve.addr);
    client.write_all(b"hello").expect("write");
    let mut got = Vec::new();
    // The reply, then the server's FIN (EOF) before we close anything.
    client
        .read_to_end(&mut got)
        .expect("read to the server's FIN");
    assert_eq!(got, b"hello, client\n");
    // Our ACK of the server's FIN is delayed (Linux enters ping-pong mode
    // on a FIN): wait past it, so the server sits in FIN-WAIT-2 a while.
    thread::sleep(Duration::from_millis(150));
    drop(client);
    let (status, out, _) = serve.stop();
    assert!(status.success());
    assert!(out.contains("FIN-WAIT-1 -> FIN-WAIT-2"), "{out}");
    assert!(out.contains("TIME-WAIT"), "{out}");
}

#[test]
fn linger0_aborts_with_rst() {
    let serve = Serve::start(&["--close", "first", "--linger0"]);
    let mut client = connect(serve.addr);
    client.write_all(b"hello").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let error = loop {
        match client.read(&mut buf) {
            Ok(0) => panic!("a FIN, not a RST, after {got:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
        assert!(got.len() <= 14, "{got:?}");
    };
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    // The RST can reach us before the server has narrated it: the stop
    // must still print the abort, before the summary, and count it (a
    // "stopping" line may come before or after it: the stop and the
    // abort race, both ways are right).
    let (status, out, _) = serve.stop();
    assert!(status.success());
    let lines: Vec<&str> = out.lines().collect();
    let last = lines.len() - 1;
    let aborted = lines.iter().position(|l| l.contains("aborted with RST"));
    assert!(aborted.is_some_and(|i| i < last), "{out}");
    assert!(
        lines[last]
            .starts_with("stopped: 1 connection(s), 0 error(s), 1 aborted with RST (--linger0)"),
        "{out}"
    );
}

#[test]
fn no_reuseaddr_fails_while_time_wait_holds_the_port() {
    // A first run that closes first leaves its connection in TIME-WAIT on
    // the server's port.
    let first = Serve::start(&["--close", "first", "--count", "1"]);
    let port = first.addr.port();
    let mut client = connect(first.addr);
    client.write_all(b"hello").expect("write");
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect("reply and FIN");
    drop(client);
    let (status, _, _) = first.wait();
    assert!(status.success());

    let addr = format!("127.0.0.1:{port}");
    let refused = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["serve", &addr, "--no-reuseaddr"])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("address in use"), "{err}");
    assert!(err.contains("TIME-WAIT"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    // With SO_REUSEADDR (the default) the restart binds at once.
    let again = Serve::start_on(&addr, &["--count", "1"]);
    assert_eq!(again.addr.port(), port);
    let mut client = connect(again.addr);
    client.write_all(b"hi").expect("write");
    assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
    assert!(finish(client).is_empty());
    assert!(again.wait().0.success());
}

#[test]
fn address_in_use_by_a_listener_exits_2() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["serve", &addr])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.starts_with("synack: cannot listen on"), "{err}");
    assert!(err.contains("address in use"), "{err}");
    assert!(err.contains("another socket is listening"), "{err}");
}

#[test]
fn bad_addresses_exit_2_without_a_panic() {
    for addr in [
        "nonsense",
        "300.1.2.3:80",
        "127.0.0.1:99999",
        "192.0.2.1:8080",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_synack"))
            .args(["serve", addr])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{addr}: {err}");
        assert!(!err.contains("panicked"), "{addr}: {err}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["serve", "192.0.2.1:8080"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("not an address of this host"), "{err}");
}

#[test]
fn sigint_with_an_idle_client_exits_0_after_the_grace_period() {
    let serve = Serve::start(&["--grace", "300ms"]);
    let mut idle = connect(serve.addr);
    // Make sure the server has accepted it before the signal.
    idle.write_all(b"x").expect("write");
    assert_eq!(read_exactly(&mut idle, 14), b"hello, client\n");
    let started = Instant::now();
    let (status, out, _) = serve.stop();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.contains("stopping: no more accepts; 1 open client(s)"),
        "{out}"
    );
    assert!(
        out.contains("1 shut down at the end of the grace period"),
        "{out}"
    );
    // The server shut our connection down.
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
}

#[test]
fn sigterm_exits_0_and_refuses_new_connections() {
    let serve = Serve::start(&[]);
    let addr = serve.addr;
    serve.signal(Signal::SIGTERM);
    let (status, out, _) = serve.wait();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_err());
}

#[test]
fn max_clients_queues_the_next_client_until_one_leaves() {
    let serve = Serve::start(&["--max-clients", "1"]);
    let mut first = connect(serve.addr);
    first.write_all(b"1").expect("write");
    assert_eq!(read_exactly(&mut first, 14), b"hello, client\n");
    // The second handshake completes in the kernel (backlog) but nobody
    // reads for it until the first client leaves.
    let mut second = connect(serve.addr);
    second.write_all(b"2").expect("write");
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 14];
    let early = second.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut),
        "{early:?}"
    );
    assert!(finish(first).is_empty());
    second.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    assert_eq!(read_exactly(&mut second, 14), b"hello, client\n");
    assert!(finish(second).is_empty());
    let (status, out, _) = serve.stop();
    assert!(status.success());
    assert!(out.contains("1 clients open (--max-clients)"), "{out}");
}

#[test]
fn sighup_stops_like_sigint() {
    let serve = Serve::start(&[]);
    let mut client = connect(serve.addr);
    client.write_all(b"hello").expect("write");
    assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
    assert!(finish(client).is_empty());
    serve.signal(Signal::SIGHUP);
    let (status, out, _) = serve.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {out}");
    assert!(
        out.contains("stopped: 1 connection(s), 0 error(s)"),
        "{out}"
    );
}

#[test]
fn settings_that_cannot_work_exit_2() {
    for (args, expected) in [
        (
            &["--idle-timeout", "0"][..],
            "the idle timeout must be more than 0",
        ),
        (
            &["--idle-timeout", "0ms"][..],
            "the idle timeout must be more than 0",
        ),
        (&["--max-message", "0"][..], "a size must be more than 0"),
        (&["--memory-budget", "lots"][..], "is not a size"),
        (
            &["--framing", "length-prefix", "--memory-budget", "1MiB"][..],
            "cannot hold one message of the largest size",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_synack"))
            .args(["serve", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn count_1_narrates_the_connection_before_the_summary() {
    for args in [
        &["--count", "1", "--close", "first", "--linger0"][..],
        &["--count", "1"][..],
    ] {
        let serve = Serve::start(args);
        let mut client = connect(serve.addr);
        client.write_all(b"hello").expect("write");
        assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
        let _ = client.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        drop(client);
        let (status, out, _) = serve.wait();
        assert!(status.success(), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(!out.contains("stopping"), "{out}");
        let last = lines.len() - 1;
        assert!(
            lines[last].starts_with("stopped: 1 connection(s), 0 error(s)"),
            "{out}"
        );
        if args.contains(&"--linger0") {
            assert!(lines[last - 1].contains("aborted with RST"), "{out}");
            assert!(
                lines[last].contains("1 aborted with RST (--linger0)"),
                "{out}"
            );
        } else {
            assert!(lines[last - 1].contains("closed after"), "{out}");
        }
    }
}

/// Reads one frame, then the server's FIN: what a refused client gets.
fn one_frame_then_eof(stream: &mut TcpStream, framing: Framing) -> String {
    let mut wire = Vec::new();
    stream
        .read_to_end(&mut wire)
        .expect("the error frame, then EOF");
    let mut decoder = Decoder::new(framing);
    decoder.push(&wire);
    let message = decoder
        .next_message()
        .expect("a well-formed frame")
        .unwrap_or_else(|| panic!("no whole frame in {wire:?}"));
    assert_eq!(decoder.pending(), 0, "only the error frame");
    String::from_utf8(message.body).expect("text")
}

#[test]
fn a_message_over_max_message_gets_an_error_frame_and_a_close() {
    for framing in [Framing::LengthPrefix, Framing::JsonHeader] {
        let name = match framing {
            Framing::LengthPrefix => "length-prefix",
            Framing::JsonHeader => "json-header",
        };
        let serve = Serve::start(&["--framing", name, "--echo"]);
        let mut client = connect(serve.addr);
        // A whole 2 MiB message: the server refuses it on its length, and
        // reads and drops the rest until our FIN.
        let wire = encode_to_vec(framing, &vec![b'x'; 2 << 20]).expect("encode");
        let mut writer = client.try_clone().expect("clone");
        let sender = thread::spawn(move || {
            let sent = writer.write_all(&wire);
            let _ = writer.shutdown(Shutdown::Write);
            sent
        });
        let text = one_frame_then_eof(&mut client, framing);
        assert!(text.starts_with("error: "), "{text}");
        assert!(text.contains("2097152-byte body"), "{text}");
        assert!(text.contains("--max-message"), "{text}");
        assert!(sender.join().expect("writer").is_ok(), "{name}");
        let (status, out, _) = serve.stop();
        assert!(status.success(), "{out}");
        assert!(out.contains("refused: frame announces a 2097152-byte body, more than the 1048576-byte limit (--max-message); sent an error frame, closing"), "{out}");
        assert!(out.contains("closed after"), "{out}");
        assert!(
            out.contains("0 error(s), 1 refused (over --max-message or --memory-budget)"),
            "{out}"
        );
    }
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn the_memory_budget_bounds_what_all_clients_hold() {
    const CLIENTS: usize = 24;
    const BUDGET_MIB: u64 = 4;
    // Each client announces a 1 MiB message and sends 900 KiB of it.
    let body_sent = 900 * 1024;
    let serve = Serve::start(&[
        "--framing",
        "length-prefix",
        "--max-message",
        "1MiB",
        "--memory-budget",
        "4MiB",
    ]);
    let before = rss_kib(serve.child.id());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = connect(serve.addr);
        let mut wire = (1u32 << 20).to_be_bytes().to_vec();
        wire.resize(4 + body_sent, b'x');
        // The server reads it all or refuses: neither blocks this write
        // for long (a refused client's bytes are read and dropped).
        client.write_all(&wire).expect("write");
        let port = client.local_addr().expect("addr").port();
        clients.push((port, client));
    }
    // Wait (bounded) until the server has read every client's bytes or
    // refused it, from its narration.
    let mut read = std::collections::HashMap::<u16, usize>::new();
    let mut refused = std::collections::HashSet::<u16>::new();
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(20);
    while read.values().filter(|&&n| n == 4 + body_sent).count() + refused.len() < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "read {read:?} refused {refused:?}"
        );
        let Ok(line) = serve.lines.recv_timeout(IO_TIMEOUT) else {
            panic!("no narration: read {read:?} refused {refused:?}");
        };
        peak = peak.max(rss_kib(serve.child.id()));
        let mut words = line.split_whitespace().skip(1);
        let Some(port) = words
            .next()
            .and_then(|peer| peer.parse::<SocketAddr>().ok())
            .map(|peer| peer.port())
        else {
            continue;
        };
        match (words.next(), words.next()) {
            (Some("read"), Some(n)) => {
                if let Ok(n) = n.parse::<usize>() {
                    *read.entry(port).or_default() += n;
                }
            }
            (Some("refused:"), _) => {
                assert!(line.contains("--memory-budget"), "{line}");
                refused.insert(port);
            }
            _ => {}
        }
    }
    peak = peak.max(rss_kib(serve.child.id()));
    let held = CLIENTS - refused.len();
    eprintln!(
        "memory budget {BUDGET_MIB} MiB: {held} clients hold 900 KiB each, {} refused; \
         RSS {before} KiB before, {peak} KiB at the peak (+{} KiB)",
        refused.len(),
        peak - before
    );
    // 4 MiB holds at most 4 clients' 1 MiB buffers; the rest are refused.
    assert!((1..=4).contains(&held), "{held} held");
    assert!(
        peak - before < (BUDGET_MIB + 6) * 1024,
        "RSS grew by {} KiB",
        peak - before
    );
    // Each refused client got its error frame, then the server's FIN.
    for (port, client) in &mut clients {
        if refused.contains(port) {
            client.shutdown(Shutdown::Write).expect("FIN");
            let text = one_frame_then_eof(client, Framing::LengthPrefix);
            assert!(text.contains("memory budget"), "{text}");
        }
    }
    drop(clients);
    let (status, out, _) = serve.stop();
    assert!(status.success(), "{out}");
    assert!(out.contains(&format!("{} refused", refused.len())), "{out}");
}

#[test]
fn help_states_the_memory_limits() {
    let output = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["serve", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--max-message <SIZE>"), "{help}");
    assert!(help.contains("[default: 1MiB]"), "{help}");
    assert!(help.contains("--memory-budget <SIZE>"), "{help}");
    assert!(help.contains("[default: 64MiB]"), "{help}");
}

/// The events of one connection (`"conn"`) or of the listener.
const CONNECTION_EVENTS: &[&str] = &[
    "accept",
    "recv",
    "message",
    "send",
    "eof",
    "discard",
    "shutdown",
    "state_change",
    "time_wait",
    "close",
    "abort",
    "refused",
    "client_error",
    "forced_shutdown",
];
const LISTENER_EVENTS: &[&str] = &[
    "listening",
    "saturated",
    "accept_error",
    "stopping",
    "summary",
];

/// Waits for a `--json` run's exit and parses every line of its stdout
/// (the listening line included), checking the envelope: an `"event"` on
/// every line, integer `t_ns` in order, `conn` and `peer` on exactly the
/// connections' events, integer kernel fields, one summary, last.
fn json_run(serve: Serve, stop: bool) -> (ExitStatus, Vec<Value>) {
    let first = serve.first.clone();
    let (status, out, err) = if stop { serve.stop() } else { serve.wait() };
    let text = format!("{first}\n{out}");
    let events: Vec<Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{err}"))
        })
        .collect();
    let mut last_t = 0;
    for (i, event) in events.iter().enumerate() {
        let kind = event["event"].as_str().unwrap_or_else(|| panic!("{event}"));
        let t = event["t_ns"]
            .as_u64()
            .unwrap_or_else(|| panic!("no integer t_ns: {event}"));
        assert!(t >= last_t, "t_ns goes back at line {i}: {text}");
        last_t = t;
        if CONNECTION_EVENTS.contains(&kind) {
            assert!(event["conn"].as_u64().is_some_and(|n| n >= 1), "{event}");
            let peer = event["peer"].as_str().unwrap_or_else(|| panic!("{event}"));
            assert!(peer.parse::<SocketAddr>().is_ok(), "{event}");
        } else {
            assert!(LISTENER_EVENTS.contains(&kind), "unknown event: {event}");
            assert!(event.get("conn").is_none(), "{event}");
        }
        if let Some(kernel) = event.get("kernel") {
            assert!(kernel["state"].is_string(), "{event}");
            for field in ["rtt_us", "retransmits", "total_retrans"] {
                assert!(
                    kernel.get(field).is_none_or(Value::is_u64),
                    "{field}: {event}"
                );
            }
        }
        for (key, value) in event.as_object().expect("an object") {
            if key.ends_with("_ns") || key.ends_with("_us") {
                assert!(value.is_u64(), "{key}: {event}");
            }
        }
        assert_eq!(kind == "summary", i == events.len() - 1, "{text}");
    }
    assert_eq!(events[0]["event"], "listening", "{text}");
    // The clock starts with the run: the listening event is at about 0
    // (tens of µs; 1 s leaves room for a busy machine).
    assert!(
        events[0]["t_ns"].as_u64() < Some(1_000_000_000),
        "{}",
        events[0]
    );
    (status, events)
}

/// The event names of connection `conn`, in order, without the
/// `state_change` ones (whether the kernel's LAST-ACK or FIN-WAIT-1 is
/// still there after `shutdown` returns depends on timing).
fn kinds_of(events: &[Value], conn: u64) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["conn"] == conn)
        .filter_map(|e| e["event"].as_str())
        .filter(|kind| *kind != "state_change")
        .collect()
}

fn summary(events: &[Value]) -> &Value {
    events.last().expect("a summary")
}

#[test]
fn json_default_exchange_two_clients() {
    let serve = Serve::start(&["--json", "--count", "2"]);
    for _ in 0..2 {
        let mut client = connect(serve.addr);
        client.write_all(b"hello").expect("write");
        assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
        assert!(finish(client).is_empty());
    }
    let (status, events) = json_run(serve, false);
    assert!(status.success(), "{status:?}");
    for conn in [1, 2] {
        assert_eq!(
            kinds_of(&events, conn),
            ["accept", "recv", "send", "eof", "shutdown", "close"],
            "{events:#?}"
        );
    }
    let recv = events.iter().find(|e| e["event"] == "recv").expect("recv");
    assert_eq!(recv["bytes"], 5);
    assert_eq!(recv["kernel"]["state"], "ESTABLISHED");
    assert!(recv["kernel"]["rtt_us"].is_u64(), "{recv}");
    let send = events.iter().find(|e| e["event"] == "send").expect("send");
    assert_eq!(send["bytes"], 14);
    let eof = events.iter().find(|e| e["event"] == "eof").expect("eof");
    assert_eq!(eof["kernel"]["state"], "CLOSE-WAIT");
    let close = events
        .iter()
        .find(|e| e["event"] == "close")
        .expect("close");
    assert!(close["elapsed_ns"].as_u64().is_some_and(|ns| ns > 0));
    assert_eq!(events[0]["kernel"], serde_json::json!({"state": "LISTEN"}));
    let s = summary(&events);
    assert_eq!(
        (s["connections"].as_u64(), s["errors"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    assert_eq!(s["refused"], 0);
    assert_eq!(s["aborted"], 0);
    assert_eq!(s["forced"], 0);
    assert!(s["peak"].as_u64().is_some_and(|n| n >= 1), "{s}");
}

#[test]
fn json_framing_and_a_refusal_over_max_message() {
    let serve = Serve::start(&[
        "--json",
        "--count",
        "2",
        "--framing",
        "length-prefix",
        "--echo",
        "--max-message",
        "1KiB",
    ]);
    // Two messages in one write: two message events, one send.
    let mut client = connect(serve.addr);
    let mut wire = encode_to_vec(Framing::LengthPrefix, b"one").expect("encode");
    wire.extend(encode_to_vec(Framing::LengthPrefix, b"three").expect("encode"));
    client.write_all(&wire).expect("write");
    assert_eq!(
        framed_replies(&mut client, Framing::LengthPrefix, 2),
        [b"one".to_vec(), b"three".to_vec()]
    );
    assert!(finish(client).is_empty());
    // A 2 KiB message over the 1 KiB limit: refused from its length.
    let mut client = connect(serve.addr);
    let wire = encode_to_vec(Framing::LengthPrefix, &[b'x'; 2048]).expect("encode");
    client.write_all(&wire).expect("write");
    client.shutdown(Shutdown::Write).expect("FIN");
    let text = one_frame_then_eof(&mut client, Framing::LengthPrefix);
    assert!(text.contains("--max-message"), "{text}");
    let (status, events) = json_run(serve, false);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        kinds_of(&events, 1),
        ["accept", "recv", "message", "message", "send", "eof", "shutdown", "close"],
        "{events:#?}"
    );
    let messages: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| &e["bytes"])
        .collect();
    assert_eq!(messages, [3, 5]);
    // Refused on the frame's length, then our FIN, then the close.
    let second = kinds_of(&events, 2);
    assert_eq!(second.first(), Some(&"accept"), "{events:#?}");
    assert!(
        second.ends_with(&["refused", "shutdown", "close"]),
        "{events:#?}"
    );
    let refused = events
        .iter()
        .find(|e| e["event"] == "refused")
        .expect("refused");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2048-byte body") && r.contains("--max-message")),
        "{refused}"
    );
    let s = summary(&events);
    assert_eq!(s["connections"], 2, "{s}");
    assert_eq!(s["refused"], 1, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
}

#[test]
fn json_close_first_and_linger0() {
    for linger0 in [false, true] {
        let mut args = vec!["--json", "--count", "1", "--close", "first"];
        if linger0 {
            args.push("--linger0");
        }
        let serve = Serve::start(&args);
        let mut client = connect(serve.addr);
        client.write_all(b"hello").expect("write");
        assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
        let mut rest = Vec::new();
        let end = client.read_to_end(&mut rest);
        if linger0 {
            assert!(
                end.as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
                "{end:?}"
            );
        } else {
            assert!(end.is_ok() && rest.is_empty(), "{end:?} {rest:?}");
        }
        drop(client);
        let (status, events) = json_run(serve, false);
        assert!(status.success(), "{status:?}");
        let kinds = kinds_of(&events, 1);
        let s = summary(&events);
        if linger0 {
            assert_eq!(kinds, ["accept", "recv", "send", "abort"], "{events:#?}");
            let abort = &events[events.len() - 2];
            assert!(abort["elapsed_ns"].is_u64(), "{abort}");
            assert_eq!(s["aborted"], 1, "{s}");
        } else {
            // FIN-WAIT-1 -> FIN-WAIT-2 is seen or not (loopback may be
            // faster than the watch); TIME-WAIT is found by sock_diag.
            assert_eq!(
                kinds[..4],
                ["accept", "recv", "send", "shutdown"],
                "{kinds:?}"
            );
            assert_eq!(kinds.last(), Some(&"close"), "{kinds:?}");
            assert!(kinds.contains(&"eof"), "{kinds:?}");
            assert!(kinds.contains(&"time_wait"), "{kinds:?}");
            for change in events.iter().filter(|e| e["event"] == "state_change") {
                assert!(
                    change["from"].is_string() && change["to"].is_string(),
                    "{change}"
                );
            }
            assert_eq!(s["aborted"], 0, "{s}");
        }
        assert_eq!(s["connections"], 1, "{s}");
        assert_eq!(s["errors"], 0, "{s}");
    }
}

#[test]
fn json_quiet_prints_every_event_without_the_kernel_view() {
    let serve = Serve::start(&["-q", "--json", "--count", "1"]);
    let mut client = connect(serve.addr);
    client.write_all(b"hello").expect("write");
    assert_eq!(read_exactly(&mut client, 14), b"hello, client\n");
    assert!(finish(client).is_empty());
    let (status, events) = json_run(serve, false);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        kinds_of(&events, 1),
        ["accept", "recv", "send", "eof", "shutdown", "close"]
    );
    assert!(
        events.iter().all(|e| e.get("kernel").is_none()),
        "{events:#?}"
    );
}

#[test]
fn json_stop_with_an_open_client_after_the_grace_period() {
    let serve = Serve::start(&["--json", "--grace", "300ms"]);
    let mut idle = connect(serve.addr);
    idle.write_all(b"x").expect("write");
    assert_eq!(read_exactly(&mut idle, 14), b"hello, client\n");
    let (status, events) = json_run(serve, true);
    assert_eq!(status.code(), Some(0));
    let stopping = events
        .iter()
        .find(|e| e["event"] == "stopping")
        .expect("stopping");
    assert_eq!(stopping["open"], 1);
    assert_eq!(stopping["grace_ns"], 300_000_000);
    assert_eq!(
        kinds_of(&events, 1),
        ["accept", "recv", "send", "forced_shutdown"],
        "{events:#?}"
    );
    let at = |kind: &str| events.iter().position(|e| e["event"] == kind);
    assert!(at("stopping") < at("forced_shutdown"), "{events:#?}");
    assert_eq!(summary(&events)["forced"], 1);
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
}

#[test]
fn json_bind_failure_ends_with_the_error_object() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_synack"))
        .args(["serve", &addr, "--json"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let out = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["event"], "error");
    assert_eq!(lines[0]["exit"], 2);
    let message = lines[0]["message"].as_str().expect("message");
    assert!(message.contains("address in use"), "{message}");
    // The human message still goes to stderr.
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.starts_with("synack: cannot listen on"), "{err}");
}
