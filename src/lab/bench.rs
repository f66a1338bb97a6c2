//! `synack lab --count N`: the benchmark. N full cycles of synack's client
//! and, in the same run and alternating with it, N cycles of the kernel's
//! own client (`TcpStream::connect`, write, read, shutdown, read to EOF)
//! over an identical veth pair from a thread with its own namespace. Only
//! ratios measured in one run mean anything on a shared machine.
//!
//! Privileged, like the lab.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{unshare, CloneFlags};

use crate::net::labnet::{self, CLIENT_IF, KERNEL_CLIENT_IF, KERNEL_SERVER_IP, SERVER_IP};
use crate::net::link::PnetLink;
use crate::server::{LabServer, LabServerConfig, Reading};

use super::{client_interface, client_params, exchange, LabConfig, LabError};
use crate::client::ClientError;
use crate::session::{self, Output, Outputs, Session, SessionError};

/// The most cycles `--count` asks for: about two minutes of cycles on the
/// machines we measured (1.1 ms a pair of cycles). The kernel client's
/// ports allow any number ([`labnet::widen_ephemeral_ports`]).
pub const MAX_COUNT: u32 = 100_000;

/// How often the main thread looks at the stop flag while the kernel
/// client's cycle runs in its thread.
const STOP_CHECK: Duration = Duration::from_millis(5);

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// The cycles done by both clients.
    pub count: usize,
    /// The cycles asked for (`--count`).
    pub requested: usize,
    /// Ctrl-C (or SIGTERM, SIGHUP) ended the run after `count` cycles.
    pub interrupted: bool,
    /// synack: first SYN sent → handshake ACK sent.
    pub synack_handshake: Vec<Duration>,
    /// synack: first SYN sent → last ACK sent.
    pub synack_cycle: Vec<Duration>,
    /// The kernel client: `connect()` (SYN sent → ACK sent, inside the call).
    pub kernel_connect: Vec<Duration>,
    /// The kernel client: `connect()` → `read()` returned EOF.
    pub kernel_cycle: Vec<Duration>,
}

/// The `q`-quantile of `samples` (sorted in place), nearest rank.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

impl BenchReport {
    /// The table the benchmark prints.
    /// The same figures as JSON lines: one `measure` object per row, then
    /// the `summary`. Durations in integer nanoseconds.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let row = |what: &str, ours: &[Duration], theirs: &[Duration]| {
            let (mut a, mut b) = (ours.to_vec(), theirs.to_vec());
            let (a50, a99) = (quantile(&mut a, 0.5), quantile(&mut a, 0.99));
            let (b50, b99) = (quantile(&mut b, 0.5), quantile(&mut b, 0.99));
            let ratio = a50.as_secs_f64() / b50.as_secs_f64().max(f64::MIN_POSITIVE);
            serde_json::json!({
                "event": "measure",
                "what": what,
                "samples": ours.len(),
                "synack_median_ns": ns(a50),
                "synack_p99_ns": ns(a99),
                "kernel_median_ns": ns(b50),
                "kernel_p99_ns": ns(b99),
                // Two decimals, as the table prints it.
                "ratio": (ratio * 100.0).round() / 100.0,
            })
        };
        vec![
            row("handshake", &self.synack_handshake, &self.kernel_connect),
            row("cycle", &self.synack_cycle, &self.kernel_cycle),
            serde_json::json!({
                "event": "summary",
                "cycles": self.count,
                "requested": self.requested,
                "interrupted": self.interrupted,
            }),
        ]
    }

    pub fn render(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let row = |name: &str, ours: &[Duration], theirs: &[Duration]| {
            let (mut a, mut b) = (ours.to_vec(), theirs.to_vec());
            let (a50, a99) = (quantile(&mut a, 0.5), quantile(&mut a, 0.99));
            let (b50, b99) = (quantile(&mut b, 0.5), quantile(&mut b, 0.99));
            format!(
                "{name:<34} {:>8.1} {:>8.1}   {:>8.1} {:>8.1}   {:>5.2}×\n",
                us(a50),
                us(a99),
                us(b50),
                us(b99),
                us(a50) / us(b50).max(f64::MIN_POSITIVE)
            )
        };
        let cycles = if self.interrupted {
            format!(
                "{} of {} cycles each (interrupted)",
                self.count, self.requested
            )
        } else {
            format!("{} cycles each", self.count)
        };
        let mut out = format!(
            "{cycles}, alternating, one namespace, identical veth pairs (offload off, IPv6 off)\n\
             synack: pcap written and events built by the reporter thread; no kernel-view look-ups\n\n\
             {:<34} {:>17}   {:>17}   {}\n{:<34} {:>8} {:>8}   {:>8} {:>8}\n",
            "", "synack (µs)", "kernel client (µs)", "ratio", "", "median", "p99", "median", "p99"
        );
        out.push_str(&row(
            "handshake (SYN sent → ACK sent)",
            &self.synack_handshake,
            &self.kernel_connect,
        ));
        out.push_str(&row(
            "whole cycle (hello/reply, close)",
            &self.synack_cycle,
            &self.kernel_cycle,
        ));
        out
    }
}

/// One kernel-client cycle's timings.
type KernelTimes = Result<(Duration, Duration), io::Error>;

/// Runs the benchmark; `progress` is told the number of each cycle done.
/// A stop (`interrupted`) ends it at once with the cycles done so far.
///
/// # Errors
/// As [`super::run`]; a failed cycle of either client ends the run.
pub fn run(
    cfg: &LabConfig,
    count: usize,
    interrupted: Arc<AtomicBool>,
    progress: &mut dyn FnMut(usize),
) -> Result<BenchReport, LabError> {
    // Opened before the namespace, as in the lab's single run; the
    // narration outputs are not for the benchmark.
    let outputs = Outputs::open(&cfg.pcap, &session::Narration::default(), &[])?;
    session::keeping_outputs(outputs, |outputs| {
        run_with(cfg, count, outputs.capture, interrupted, progress)
    })
}

fn run_with(
    cfg: &LabConfig,
    count: usize,
    file: File,
    interrupted: Arc<AtomicBool>,
    progress: &mut dyn FnMut(usize),
) -> Result<BenchReport, LabError> {
    labnet::enter_private_namespace()?;
    labnet::build_veth_pair()?;
    labnet::build_kernel_client_pair()?;

    let narration = session::Narration {
        pcapng: cfg.narration.pcapng,
        ..session::Narration::default()
    };
    let session = Session::start(
        file,
        None,
        session::Setup {
            pcap: &cfg.pcap,
            narration: &narration,
            output: Output::Quiet,
            iface: client_interface(cfg.client_ip()),
            server_port: cfg.port,
            client_initial: None,
            server_initial: None,
        },
    )?;

    let server_cfg = |ip| LabServerConfig {
        addr: SocketAddrV4::new(ip, cfg.port).into(),
        reply: cfg.reply.clone(),
        quickack: cfg.quickack,
        timeout: cfg.timeout,
        connections: count,
        close_first: cfg.server_closes_first,
        reading: Reading::default(),
        linger0: false,
        reply_after_eof: false,
    };
    let start_server = |ip| {
        LabServer::start(server_cfg(ip), Box::new(|_, _, _| {})).map_err(|source| {
            LabError::Server {
                addr: SocketAddrV4::new(ip, cfg.port).into(),
                source,
            }
        })
    };
    let synack_server = start_server(SERVER_IP)?;
    let kernel_server = start_server(KERNEL_SERVER_IP)?;

    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<KernelTimes>();
    let kernel = spawn_kernel_client(cfg, go_rx, done_tx)?;

    let mut link = PnetLink::open(CLIENT_IF).map_err(LabError::Link)?;
    // No kernel-view look-ups: they would cost tens of µs a segment.
    let mut observer = session.forwarder(Arc::clone(&interrupted), None);
    let mut report = BenchReport {
        count: 0,
        requested: count,
        interrupted: false,
        synack_handshake: Vec::with_capacity(count),
        synack_cycle: Vec::with_capacity(count),
        kernel_connect: Vec::with_capacity(count),
        kernel_cycle: Vec::with_capacity(count),
    };
    let mut server_mac = None;
    for cycle in 1..=count {
        // The kernel's cycle.
        go_tx.send(()).map_err(|_| kernel_gone())?;
        let Some(times) = wait_for_kernel(&done_rx, &interrupted)? else {
            report.interrupted = true;
            break;
        };
        let (connect, whole) = times.map_err(|e| {
            report_error(io::Error::other(format!(
                "the kernel's client, cycle {cycle}: {e}"
            )))
        })?;

        // synack's cycle.
        let params = client_params(cfg, None, Duration::ZERO, server_mac);
        let outcome = match exchange(cfg, &mut link, &mut observer, params) {
            Ok(outcome) => outcome,
            Err(ClientError::Interrupted { .. }) => {
                report.interrupted = true;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        report.kernel_connect.push(connect);
        report.kernel_cycle.push(whole);
        server_mac = outcome.server_mac;
        if let (Some(hs), Some(first), Some(last)) = (
            outcome.handshake_done,
            outcome.first_syn_at,
            outcome.last_sent_at,
        ) {
            report.synack_handshake.push(hs);
            report.synack_cycle.push(last - first);
        }
        report.count = cycle;
        progress(cycle);
    }
    drop(go_tx);
    if report.interrupted {
        // The servers may wait for a connection that will not come; the
        // kernel client, if it is in the middle of a cycle, ends once its
        // server is gone, and the process does not wait for it.
        synack_server.stop();
        kernel_server.stop();
    } else {
        let _ = kernel.join();
    }
    synack_server.join();
    kernel_server.join();
    drop(observer);
    session.close()?;
    Ok(report)
}

/// The kernel client's answer for one cycle, or None when the run was
/// stopped first (the flag is looked at every few milliseconds).
fn wait_for_kernel(
    done: &Receiver<KernelTimes>,
    interrupted: &AtomicBool,
) -> Result<Option<KernelTimes>, LabError> {
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match done.recv_timeout(STOP_CHECK) {
            Ok(times) => return Ok(Some(times)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(kernel_gone()),
        }
    }
}

fn kernel_gone() -> LabError {
    report_error(io::Error::other("the kernel client thread stopped"))
}

/// The kernel client: a thread in its own network namespace holding
/// `kcli0` (198.18.1.2), doing one cycle per message on `go`.
fn spawn_kernel_client(
    cfg: &LabConfig,
    go: Receiver<()>,
    done: Sender<KernelTimes>,
) -> Result<thread::JoinHandle<()>, LabError> {
    let (tid_tx, tid_rx) = mpsc::channel::<Result<i32, String>>();
    let (moved_tx, moved_rx) = mpsc::channel::<()>();
    let server = SocketAddrV4::new(KERNEL_SERVER_IP, cfg.port);
    let data = cfg.data.concat();
    let reply_len = cfg.reply.len();
    let timeout = cfg.timeout;
    let handle = thread::Builder::new()
        .name("kernel-client".into())
        .spawn(move || {
            // This thread alone enters a new namespace.
            let setup = unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare: {e}"))
                .and_then(|()| labnet::disable_ipv6().map_err(|e| e.to_string()))
                .map(|()| nix::unistd::gettid().as_raw());
            let ok = setup.is_ok();
            let _ = tid_tx.send(setup);
            if !ok || moved_rx.recv().is_err() {
                return;
            }
            if let Err(e) = labnet::configure_kernel_client() {
                let _ = done.send(Err(io::Error::other(e.to_string())));
                return;
            }
            for () in go {
                let _ = done.send(kernel_cycle(server, &data, reply_len, timeout));
            }
        })
        .map_err(report_error)?;
    let tid = tid_rx
        .recv()
        .map_err(|_| kernel_gone())?
        .map_err(|e| report_error(io::Error::other(e)))?;
    labnet::move_link_to_thread(KERNEL_CLIENT_IF, tid)?;
    moved_tx.send(()).map_err(|_| kernel_gone())?;
    Ok(handle)
}

/// connect, send, recv the reply, shutdown(SHUT_WR), recv until EOF.
fn kernel_cycle(
    server: SocketAddrV4,
    data: &[u8],
    reply_len: usize,
    timeout: Duration,
) -> KernelTimes {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&server.into(), timeout)?;
    let connected = start.elapsed();
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(data)?;
    let mut reply = vec![0u8; reply_len];
    stream.read_exact(&mut reply)?;
    stream.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 64];
    for _ in 0..1024 {
        if stream.read(&mut rest)? == 0 {
            break;
        }
    }
    Ok((connected, start.elapsed()))
}

/// A failure of the benchmark's own machinery (the kernel client).
fn report_error(e: io::Error) -> LabError {
    LabError::Session(SessionError::Report(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(quantile(&mut v, 0.5), Duration::from_micros(50));
        assert_eq!(quantile(&mut v, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&mut [], 0.5), Duration::ZERO);
        assert_eq!(
            quantile(&mut [Duration::from_micros(7)], 0.99),
            Duration::from_micros(7)
        );
    }

    #[test]
    fn the_table_shows_medians_p99_and_ratios() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&u| Duration::from_micros(u))
                .collect::<Vec<_>>()
        };
        let mut report = BenchReport {
            count: 3,
            requested: 3,
            interrupted: false,
            synack_handshake: ms(&[30, 30, 30]),
            synack_cycle: ms(&[200, 200, 200]),
            kernel_connect: ms(&[20, 20, 20]),
            kernel_cycle: ms(&[100, 100, 100]),
        };
        let text = report.render();
        assert!(text.contains("1.50×"), "{text}");
        assert!(text.contains("2.00×"), "{text}");
        assert!(text.starts_with("3 cycles each"));
        report.requested = 10;
        report.interrupted = true;
        let text = report.render();
        assert!(
            text.starts_with("3 of 10 cycles each (interrupted)"),
            "{text}"
        );
    }
}
