//! Load benchmark for `synack serve` (not a CI test): rounds of N
//! concurrent kernel clients (default 1,000), each doing connect, "hello",
//! read the 5-byte reply, close, on 127.0.0.1, against
//!
//! - `synack serve --echo -q` (no narration, no TCP_INFO calls),
//! - `synack serve --echo` with its narration written to /dev/null,
//! - a minimal `TcpListener` echo loop (one thread, clients in turn),
//! - the same echo with a thread per client (the model `synack serve` uses),
//!
//! all measured in the same run, interleaved round by round. Every
//! listener has the same backlog (1024); `TcpListener::bind`'s 128 would
//! drop SYNs under 1,000 simultaneous connects and measure SYN
//! retransmission timers instead of servers.
//!
//! Prints connections per second, per-cycle latency percentiles, the ratio
//! to the echo loop, and the lost replies (must be 0: the run exits 1
//! otherwise).
//!
//! `cargo bench --bench serve_load -- [--clients N] [--rounds R]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const HELLO: &[u8] = b"hello";
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const BACKLOG: i32 = 1024;
const CLIENT_STACK: usize = 64 * 1024;
const MAX_CLIENTS: usize = 5_000;
const MAX_ROUNDS: usize = 50;

struct Options {
    clients: usize,
    rounds: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        clients: 1000,
        rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str, max: usize| -> Result<usize, String> {
            let v: usize = args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))?;
            if v == 0 || v > max {
                return Err(format!("{name} must be 1..={max}"));
            }
            Ok(v)
        };
        match arg.as_str() {
            "--clients" => options.clients = value("--clients", MAX_CLIENTS)?,
            "--rounds" => options.rounds = value("--rounds", MAX_ROUNDS)?,
            // `cargo bench` passes --bench; ignore what we do not know.
            _ => {}
        }
    }
    Ok(options)
}

/// A start line: client threads wait (bounded) until it opens.
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open && Instant::now() < deadline {
            open = match self.opened.wait_timeout(open, IO_TIMEOUT) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }
}

/// One round: `clients` threads released together, one cycle each.
/// Returns the wall time, each successful cycle's latency, and the number
/// of lost replies (errors, wrong bytes, clients that could not start).
fn round(addr: SocketAddr, clients: usize) -> (Duration, Vec<Duration>, usize) {
    let gate = Arc::new(Gate {
        open: Mutex::new(false),
        opened: Condvar::new(),
    });
    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients {
        let gate = Arc::clone(&gate);
        let spawned = thread::Builder::new()
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                gate.wait();
                let started = Instant::now();
                cycle(addr).ok().map(|()| started.elapsed())
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                eprintln!("cannot start client thread: {e}");
                break;
            }
        }
    }
    let missing = clients - handles.len();
    // Let the threads reach the gate before timing starts.
    thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    gate.open();
    let mut latencies = Vec::with_capacity(clients);
    let mut lost = missing;
    for handle in handles {
        match handle.join() {
            Ok(Some(latency)) => latencies.push(latency),
            _ => lost += 1,
        }
    }
    (started.elapsed(), latencies, lost)
}

/// connect, "hello", the 5-byte reply, close (FIN, then the server's FIN).
fn cycle(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    stream.write_all(HELLO)?;
    let mut reply = [0u8; HELLO.len()];
    stream.read_exact(&mut reply)?;
    if reply != HELLO {
        return Err(std::io::Error::other("wrong reply"));
    }
    stream.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 16];
    match stream.read(&mut rest)? {
        0 => Ok(()),
        _ => Err(std::io::Error::other("bytes after the reply")),
    }
}

fn listener() -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The tutorial's echo: read until EOF, write back each read.
fn echo(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut buf = [0u8; 1024];
    for _ in 0..10_000 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

/// A minimal echo server in this process, serving `total` connections
/// (its thread is left to end with the process).
fn echo_server(threaded: bool, total: usize) -> std::io::Result<SocketAddr> {
    let listener = listener()?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().take(total).flatten() {
            if threaded {
                let _ = thread::Builder::new()
                    .stack_size(CLIENT_STACK)
                    .spawn(move || echo(stream));
            } else {
                echo(stream);
            }
        }
    });
    Ok(addr)
}

struct Synack {
    child: Child,
    addr: SocketAddr,
}

fn synack_serve(quiet: bool) -> Result<Synack, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_synack"));
    command.args(["serve", "127.0.0.1:0", "--echo", "--max-clients", "2048"]);
    if quiet {
        command.arg("-q");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting synack serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines
        .read_line(&mut first)
        .map_err(|e| format!("reading synack serve's first line: {e}"))?;
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .ok_or(format!("no address in {first:?}"))?;
    // Keep reading (and dropping) the narration, as a terminal would.
    thread::spawn(move || {
        let mut sink = std::io::sink();
        let _ = std::io::copy(&mut lines, &mut sink);
    });
    Ok(Synack { child, addr })
}

impl Synack {
    fn stop(mut self) -> Result<(), String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
            .map_err(|e| format!("SIGINT: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("synack serve exited with {status}"))
                };
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("synack serve did not stop within 20 s".into())
    }
}

#[derive(Default)]
struct Tally {
    name: &'static str,
    connections: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    lost: usize,
}

impl Tally {
    fn add(
        &mut self,
        (elapsed, latencies, lost): (Duration, Vec<Duration>, usize),
        clients: usize,
    ) {
        self.connections += clients;
        self.elapsed += elapsed;
        self.latencies.extend(latencies);
        self.lost += lost;
    }

    fn per_second(&self) -> f64 {
        self.connections as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let last = self.latencies.len().saturating_sub(1);
        let at = ((last as f64) * p).round() as usize;
        self.latencies.get(at).copied().unwrap_or_default()
    }
}

fn run() -> Result<bool, String> {
    let Options { clients, rounds } = options()?;
    let quiet = synack_serve(true)?;
    let narrated = synack_serve(false)?;
    let total = clients * rounds;
    let loop_addr = echo_server(false, total).map_err(|e| e.to_string())?;
    let threaded_addr = echo_server(true, total).map_err(|e| e.to_string())?;

    let mut tallies = [
        Tally {
            name: "synack serve --echo -q",
            ..Tally::default()
        },
        Tally {
            name: "synack serve --echo (narration)",
            ..Tally::default()
        },
        Tally {
            name: "TcpListener echo loop",
            ..Tally::default()
        },
        Tally {
            name: "TcpListener thread/client",
            ..Tally::default()
        },
    ];
    let addrs = [quiet.addr, narrated.addr, loop_addr, threaded_addr];
    println!(
        "{rounds} rounds x {clients} concurrent clients (connect, \"hello\", 5-byte reply, close) on 127.0.0.1, interleaved"
    );
    for r in 0..rounds {
        for (tally, addr) in tallies.iter_mut().zip(addrs) {
            let result = round(addr, clients);
            eprintln!(
                "round {}: {:<34} {:>8.0} conn/s, {} lost",
                r + 1,
                tally.name,
                clients as f64 / result.0.as_secs_f64().max(1e-9),
                result.2
            );
            tally.add(result, clients);
        }
    }
    let baseline = tallies[2].per_second();
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "server", "conn/s", "p50", "p99", "lost", "vs loop"
    );
    for tally in &mut tallies {
        let (p50, p99) = (tally.percentile(0.5), tally.percentile(0.99));
        println!(
            "{:<34} {:>10.0} {:>8.2}ms {:>8.2}ms {:>8} {:>8.2}x",
            tally.name,
            tally.per_second(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            tally.lost,
            tally.per_second() / baseline
        );
    }
    quiet.stop()?;
    narrated.stop()?;
    Ok(tallies.iter().all(|t| t.lost == 0))
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("serve_load: some replies were lost");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("serve_load: {e}");
            ExitCode::from(2)
        }
    }
}
