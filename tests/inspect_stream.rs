//! `tcpdump -U -w - | synack inspect -` as root, in a network namespace of
//! its own (the test thread unshares it; tcpdump, synack and the sockets
//! live there): each connection is printed within a second of its close,
//! while tcpdump still runs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` in a new thread inside a new network namespace with `lo` up.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip");
        assert!(up.success(), "ip link set lo up");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Lines of `reader`, sent as they come.
fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn stop(child: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_live_tcpdump_pipe_shows_each_connection_within_a_second_of_its_close() {
    require_root!();
    require_tool!("tcpdump");
    in_netns(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut tcpdump = Command::new("tcpdump")
            .args(["-U", "-n", "-i", "lo", "-w", "-"])
            .arg(format!("tcp port {port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        let errs = lines_of(tcpdump.stderr.take().expect("stderr"));
        let mut inspect = Command::new(env!("CARGO_BIN_EXE_synack"))
            .args(["inspect", "--color", "never", "-"])
            .env_remove("SYNACK_LOG")
            .stdin(tcpdump.stdout.take().expect("stdout"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("synack");
        let out = lines_of(inspect.stdout.take().expect("stdout"));
        // tcpdump says "listening on lo" once it captures.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match errs.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => {
                    stop(&mut tcpdump);
                    stop(&mut inspect);
                    panic!("tcpdump did not start listening within 10 s");
                }
            }
        }

        let server = thread::spawn(move || {
            let (mut sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut got = Vec::new();
            sock.read_to_end(&mut got).expect("read");
            sock.write_all(b"bye").expect("write");
            got
        });
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        client.write_all(b"hello").expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let mut reply = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client.read_to_end(&mut reply).expect("read");
        drop(client);
        assert_eq!(server.join().expect("server"), b"hello");
        let closed = Instant::now();

        // The connection's row (then its ladder) comes while tcpdump runs.
        let mut row = None;
        while row.is_none() {
            let left = (closed + Duration::from_secs(1)).saturating_duration_since(Instant::now());
            match out.recv_timeout(left) {
                Ok(line) if line.trim_start().starts_with("0 ") => row = Some(line),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let waited = closed.elapsed();
        let running = tcpdump.try_wait().expect("try_wait").is_none();
        stop(&mut tcpdump);
        let status = {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = inspect.try_wait().expect("try_wait") {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    stop(&mut inspect);
                    break None;
                }
                thread::sleep(Duration::from_millis(20));
            }
        };
        let row = row.unwrap_or_else(|| panic!("no row within 1 s of the close ({waited:?})"));
        assert!(running, "tcpdump had stopped before the row came");
        assert!(row.contains("complete") && row.contains("fin_"), "{row}");
        assert!(row.contains(&format!("127.0.0.1:{port}")), "{row}");
        // tcpdump stopped: the file's totals end the output, exit 0.
        let mut rest = Vec::new();
        while let Ok(line) = out.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        assert!(
            rest.iter().any(|l| l.contains("1 connection(s)")),
            "{rest:?}"
        );
        assert_eq!(status.and_then(|s| s.code()), Some(0));
    });
}
