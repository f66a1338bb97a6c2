//! `synack serve`'s listener: built with socket2 (SO_REUSEADDR and the
//! backlog are ours to choose; `std::net::TcpListener::bind` forces
//! SO_REUSEADDR on and a backlog of 128), then the accept loop, with a
//! thread per client bounded by `max_clients` (each client's connection
//! is in `connection.rs`), and the run's summary, counted from the events
//! ([`ServerEvent`]).
//!
//! Stopping ([`Stopper::stop`], wired to SIGINT, SIGTERM and SIGHUP by
//! [`catch_stop_signals`]) wakes the blocked `accept` by shutting the
//! listening socket down, lets open clients finish within
//! [`Config::grace`], then shuts the stragglers' sockets down. Every
//! client's events reach the sink before the summary: the run waits for
//! the client threads themselves, not only for their sockets.
//!
//! Memory: a framed message is held until it is whole, so each is capped
//! ([`Config::max_message`]) and all clients' held bytes together are
//! charged to one [`super::reply::Budget`] ([`Config::memory_budget`]); a
//! client over either gets an error in its own framing and is closed.
//!
//! Needs no privileges (a port below 1024 aside).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::config::{Config, KernelView, ServeError};
use super::connection::serve_client;
use super::event::{ClientId, ServerEvent, Sink, Summary};
use super::shared::Shared;
use crate::net::sockinfo;
use crate::tcp::State;

/// The stack of a client thread (the handler's frames are shallow).
const CLIENT_STACK_SIZE: usize = 256 * 1024;
/// After the grace period, how long the shut-down stragglers get.
const STRAGGLER_LIMIT: Duration = Duration::from_secs(2);
/// How long the accept loop waits before retrying after a failed `accept`
/// (EMFILE, ENOBUFS), so that a full table does not spin it.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Builds the listener with socket2: SO_REUSEADDR as asked, bind, listen
/// with `backlog`, then hands it over as a `std::net::TcpListener`.
///
/// # Errors
///
/// [`ServeError`], with the kernel's socket table consulted (sock_diag) to
/// say why an address is in use.
pub fn listen(
    addr: SocketAddr,
    reuse_address: bool,
    backlog: i32,
) -> Result<TcpListener, ServeError> {
    let setup = |source| ServeError::Listen { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(setup)?;
    socket.set_reuse_address(reuse_address).map_err(setup)?;
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error(addr, reuse_address, e))?;
    socket
        .listen(backlog)
        .map_err(|e| bind_error(addr, reuse_address, e))?;
    Ok(socket.into())
}

fn bind_error(addr: SocketAddr, reuse_address: bool, source: io::Error) -> ServeError {
    match source.kind() {
        io::ErrorKind::AddrInUse => {
            let sockets = sockinfo::sockets_on_port(addr.port()).unwrap_or_default();
            let ours = |s: &&sockinfo::KernelSocket| s.local.port() == addr.port();
            ServeError::AddrInUse {
                addr,
                reuse_address,
                listening: sockets
                    .iter()
                    .filter(ours)
                    .any(|s| s.state == State::Listen),
                time_wait: sockets
                    .iter()
                    .filter(ours)
                    .filter(|s| s.state == State::TimeWait)
                    .count(),
            }
        }
        io::ErrorKind::AddrNotAvailable => ServeError::AddrNotAvailable { addr },
        io::ErrorKind::PermissionDenied => ServeError::PermissionDenied { addr },
        _ => ServeError::Listen { addr, source },
    }
}

/// Asks a running [`Server`] to stop; cheap to clone, usable from any
/// thread.
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    /// Stops accepting (the blocked `accept` returns at once) and lets open
    /// clients finish within the grace period.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_listener();
        // Under the lock: a waiter between its check of `stop` and its
        // wait cannot miss the wake-up.
        let _clients = self.shared.clients();
        self.shared.notify_all();
    }
}

/// SIGINT, SIGTERM and SIGHUP (a closed terminal) caught from now on:
/// install them before the socket is bound, so a signal that comes while
/// the server starts is held, not the default action that kills it.
pub struct StopSignals(signal_hook::iterator::Signals);

/// Catches the stop signals; [`StopSignals::stop`] then hands them to a
/// server.
///
/// # Errors
///
/// Installing the signal handlers failed.
pub fn catch_stop_signals() -> io::Result<StopSignals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map(StopSignals)
}

impl StopSignals {
    /// Stops `stopper`'s server on the first signal caught (also one that
    /// came before this call); a second one exits at once with status 130.
    ///
    /// # Errors
    ///
    /// Starting the thread that waits for them failed.
    pub fn stop(self, stopper: Stopper) -> io::Result<()> {
        let mut signals = self.0;
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut seen = 0;
                for _ in signals.forever().take(2) {
                    seen += 1;
                    if seen == 1 {
                        stopper.stop();
                    } else {
                        std::process::exit(130);
                    }
                }
            })?;
        Ok(())
    }
}

/// A listening `synack serve`.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Builds the listener ([`listen`]) for `config`.
    ///
    /// # Errors
    ///
    /// [`ServeError`]; [`ServeError::Config`] for an idle timeout of 0 or
    /// a memory budget that cannot hold one message of `max_message`.
    pub fn bind(config: Config, sink: Sink) -> Result<Server, ServeError> {
        config.check()?;
        let listener = listen(config.addr, config.reuse_address, config.backlog)?;
        let setup = |source| ServeError::Listen {
            addr: config.addr,
            source,
        };
        let clone = listener.try_clone().map_err(setup)?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared::new(clone, config, sink)),
        })
    }

    /// The bound address (the real port when port 0 was asked for).
    ///
    /// # Errors
    ///
    /// `getsockname` failed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to stop the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accepts and serves clients until stopped (or `max_connections`),
    /// then waits for the open clients (after a stop, within the grace
    /// period). Every client's events are emitted before the summary.
    pub fn run(self) -> Summary {
        let shared = &self.shared;
        let config = &shared.config;
        shared.start_clock();
        let kernel = match config.kernel_view {
            KernelView::Off => None,
            _ => sockinfo::tcp_info(&self.listener).ok(),
        };
        let addr = self.listener.local_addr().unwrap_or(config.addr);
        shared.emit(
            None,
            ServerEvent::Listening {
                addr,
                backlog: config.backlog,
                reuse_address: config.reuse_address,
                max_clients: config.max_clients,
            },
            kernel,
        );

        let mut summary = Summary::default();
        let limit = config.max_connections.unwrap_or(u64::MAX);
        // Bounded by `max_connections`, and ended by `stop`.
        while summary.accepted < limit && self.wait_for_slot() {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    summary.accepted += 1;
                    let client = ClientId {
                        n: summary.accepted,
                        peer,
                    };
                    summary.peak = summary.peak.max(self.spawn_client(client, stream));
                }
                Err(_) if shared.stop.load(Ordering::SeqCst) => break,
                Err(e) => {
                    shared.emit(
                        None,
                        ServerEvent::AcceptError {
                            error: e.to_string(),
                        },
                        None,
                    );
                    let clients = shared.clients();
                    let _clients = shared.wait(clients, ACCEPT_RETRY_DELAY);
                }
            }
        }
        // The descriptor itself closes when run returns.
        shared.close_listener();
        self.finish_clients();
        shared.count_into(&mut summary);
        shared.emit(None, ServerEvent::Stopped { summary }, None);
        summary
    }

    /// Waits until fewer than `max_clients` are open; false once stopped.
    fn wait_for_slot(&self) -> bool {
        let shared = &self.shared;
        let mut clients = shared.clients();
        let mut said = false;
        while clients.live >= shared.config.max_clients.max(1)
            && !shared.stop.load(Ordering::SeqCst)
        {
            if !said {
                said = true;
                shared.emit(None, ServerEvent::Saturated { open: clients.live }, None);
            }
            // Woken by each client that ends, and by stop.
            clients = shared.wait(clients, Duration::from_secs(1));
        }
        !shared.stop.load(Ordering::SeqCst)
    }

    /// Starts the client's thread; returns how many are open.
    fn spawn_client(&self, client: ClientId, stream: TcpStream) -> usize {
        let shared = Arc::clone(&self.shared);
        let open = {
            let mut clients = shared.clients();
            if let Ok(clone) = stream.try_clone() {
                clients.streams.insert(client.n, clone);
            }
            clients.live += 1;
            clients.live
        };
        let thread_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("client-{}", client.n))
            .stack_size(CLIENT_STACK_SIZE)
            .spawn(move || {
                let _leave = LeaveGuard {
                    shared: &thread_shared,
                    n: client.n,
                };
                serve_client(&thread_shared, client, stream);
            });
        if let Err(e) = spawned {
            {
                let mut clients = shared.clients();
                clients.streams.remove(&client.n);
                clients.live -= 1;
            }
            shared.emit(
                Some(client),
                ServerEvent::Failed {
                    call: "spawn",
                    error: format!("no thread for this client: {e}"),
                },
                None,
            );
        }
        open
    }

    /// Waits for the client threads, so that all their events are out.
    /// Once `max_connections` is reached they finish in their own time,
    /// unless a stop comes; after a stop they get the grace period, then
    /// their sockets are shut down and they get [`STRAGGLER_LIMIT`] more.
    fn finish_clients(&self) {
        let shared = &self.shared;
        if self.wait_for_clients(None) == 0 {
            return;
        }
        // Clients whose socket is already closed only have their last
        // line to write: they are not "open".
        let open = shared.clients().streams.len();
        if open > 0 {
            shared.emit(
                None,
                ServerEvent::Stopping {
                    open,
                    grace: shared.config.grace,
                },
                None,
            );
        }
        if self.wait_for_clients(Some(shared.config.grace)) == 0 {
            return;
        }
        shared.forced.store(true, Ordering::SeqCst);
        for stream in shared.clients().streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.wait_for_clients(Some(STRAGGLER_LIMIT));
    }

    /// Waits until no client thread runs: at most `limit`, or with no
    /// limit until a stop. Returns how many still run.
    fn wait_for_clients(&self, limit: Option<Duration>) -> usize {
        let shared = &self.shared;
        let deadline = limit.map(|limit| Instant::now() + limit);
        let mut clients = shared.clients();
        while clients.live > 0 {
            let step = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None if shared.stop.load(Ordering::SeqCst) => Duration::ZERO,
                None => Duration::from_secs(1),
            };
            if step.is_zero() {
                break;
            }
            clients = shared.wait(clients, step);
        }
        clients.live
    }
}

/// Takes the client off the open list when its thread ends, however it
/// ends, after its last event.
struct LeaveGuard<'a> {
    shared: &'a Shared,
    n: u64,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        let mut clients = self.shared.clients();
        clients.streams.remove(&self.n);
        clients.live = clients.live.saturating_sub(1);
        self.shared.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::{CloseMode, DEFAULT_REPLY};
    use crate::server::event::Event;
    use std::io::{Read, Write};
    use std::sync::Mutex;

    fn collecting_sink() -> (Sink, Arc<Mutex<Vec<Event>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&events);
        let sink: Sink = Arc::new(move |e: &Event| {
            store.lock().expect("events").push(e.clone());
        });
        (sink, events)
    }

    #[test]
    fn the_server_side_sees_close_wait_then_last_ack_or_closed() {
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
        config.max_connections = Some(1);
        let (sink, events) = collecting_sink();
        let server = Server::bind(config, sink).expect("bind");
        let addr = server.local_addr().expect("addr");
        let runner = thread::spawn(move || server.run());

        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client.write_all(b"hello").expect("write");
        let mut reply = [0u8; DEFAULT_REPLY.len()];
        client.read_exact(&mut reply).expect("reply");
        assert_eq!(&reply, DEFAULT_REPLY.as_bytes());
        client.shutdown(Shutdown::Write).expect("FIN");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("server's FIN");
        assert!(rest.is_empty());
        let summary = runner.join().expect("server thread");
        assert_eq!(summary.accepted, 1);
        assert_eq!(summary.errors, 0);

        let events = events.lock().expect("events");
        let peer_closed = events
            .iter()
            .find(|e| e.kind == ServerEvent::PeerClosed)
            .expect("PeerClosed");
        assert_eq!(
            peer_closed.kernel.as_ref().map(|k| k.state),
            Some(State::CloseWait)
        );
        let sent_fin = events
            .iter()
            .find(|e| e.kind == ServerEvent::SentFin)
            .expect("SentFin");
        let state = sent_fin.kernel.as_ref().map(|k| k.state);
        assert!(
            matches!(state, Some(State::LastAck | State::Closed)),
            "{state:?}"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e.kind, ServerEvent::Closed { .. })));
        assert!(matches!(
            events.last().map(|e| &e.kind),
            Some(ServerEvent::Stopped { .. })
        ));
        // The sink sees the events in the order of their times.
        assert!(
            events.windows(2).all(|w| w[0].t <= w[1].t),
            "{:?}",
            events.iter().map(|e| e.t).collect::<Vec<_>>()
        );
    }

    /// A sink as slow as a stdout piped to a busy reader: 50 ms per line.
    fn slow_collecting_sink() -> (Sink, Arc<Mutex<Vec<Event>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&events);
        let sink: Sink = Arc::new(move |e: &Event| {
            if e.client.is_some() {
                thread::sleep(Duration::from_millis(50));
            }
            store.lock().expect("events").push(e.clone());
        });
        (sink, events)
    }

    /// One client with `--close first`: the reply, then the server's RST
    /// (`linger0`) or FIN.
    fn one_exchange(addr: SocketAddr) {
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client.write_all(b"hello").expect("write");
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got);
    }

    #[test]
    fn every_event_of_the_last_connection_comes_before_the_summary() {
        for linger0 in [true, false] {
            let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
            config.max_connections = Some(1);
            config.close = CloseMode::First;
            config.linger0 = linger0;
            let (sink, events) = slow_collecting_sink();
            let server = Server::bind(config, sink).expect("bind");
            let addr = server.local_addr().expect("addr");
            let runner = thread::spawn(move || server.run());
            one_exchange(addr);
            let summary = runner.join().expect("server thread");
            let events = events.lock().expect("events");
            let kinds: Vec<_> = events.iter().map(|e| &e.kind).collect();
            // --count reached is no stop: no "stopping" line ahead of the
            // client's own events, and its last event before the summary.
            assert!(
                !kinds
                    .iter()
                    .any(|k| matches!(k, ServerEvent::Stopping { .. })),
                "{kinds:?}"
            );
            let last_client_event = &kinds[kinds.len() - 2];
            if linger0 {
                assert!(
                    matches!(last_client_event, ServerEvent::Aborted { .. }),
                    "{kinds:?}"
                );
            } else {
                assert!(
                    matches!(last_client_event, ServerEvent::Closed { .. }),
                    "{kinds:?}"
                );
            }
            assert!(
                matches!(kinds.last(), Some(ServerEvent::Stopped { .. })),
                "{kinds:?}"
            );
            // The summary counts what the events say.
            let count = |f: fn(&ServerEvent) -> bool| kinds.iter().filter(|k| f(k)).count() as u64;
            assert_eq!(
                summary.aborted,
                count(|k| matches!(k, ServerEvent::Aborted { .. }))
            );
            assert_eq!(summary.aborted, u64::from(linger0));
            assert_eq!(
                summary.errors,
                count(|k| matches!(k, ServerEvent::Failed { .. }))
            );
            assert_eq!(summary.errors, 0, "{kinds:?}");
        }
    }

    #[test]
    fn a_stop_waits_for_the_events_of_a_connection_in_flight() {
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
        config.close = CloseMode::First;
        config.linger0 = true;
        let (sink, events) = slow_collecting_sink();
        let server = Server::bind(config, sink).expect("bind");
        let addr = server.local_addr().expect("addr");
        let stopper = server.stopper();
        let runner = thread::spawn(move || server.run());
        // The RST arrives while the server still narrates (50 ms a line):
        // the stop comes in the middle of the client's events.
        one_exchange(addr);
        stopper.stop();
        let summary = runner.join().expect("server thread");
        let events = events.lock().expect("events");
        let kinds: Vec<_> = events.iter().map(|e| &e.kind).collect();
        assert!(
            matches!(kinds[kinds.len() - 2], ServerEvent::Aborted { .. }),
            "{kinds:?}"
        );
        assert!(matches!(kinds.last(), Some(ServerEvent::Stopped { .. })));
        assert_eq!((summary.aborted, summary.errors, summary.forced), (1, 0, 0));
    }

    #[test]
    fn stop_wakes_a_blocked_accept() {
        let (sink, _events) = collecting_sink();
        let server =
            Server::bind(Config::new("127.0.0.1:0".parse().expect("addr")), sink).expect("bind");
        let stopper = server.stopper();
        let started = Instant::now();
        let runner = thread::spawn(move || server.run());
        thread::sleep(Duration::from_millis(50));
        stopper.stop();
        let summary = runner.join().expect("server thread");
        assert_eq!(summary, Summary::default());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
