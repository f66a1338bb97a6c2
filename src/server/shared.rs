//! What the accept loop and the client threads of one `synack serve` run
//! share: the stop, the open clients (a clone of each socket, to shut
//! stragglers down), the memory budget, and the sink, through which every
//! event passes: counted for the summary, stamped with its time, in order.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::config::Config;
use super::event::{ClientId, Event, ServerEvent, Sink, Summary, Tally};
use super::reply::Budget;
use crate::tcp::TcpInfo;

/// The clients being served.
pub(super) struct Clients {
    /// A clone of each open client's stream, to shut stragglers down.
    pub(super) streams: HashMap<u64, TcpStream>,
    /// Client threads still running. A thread outlives its socket by its
    /// last events (`closed`, `aborted`): the summary waits for this.
    pub(super) live: usize,
}

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    /// The grace period ended and the open clients' sockets were shut down.
    pub(super) forced: AtomicBool,
    /// A clone of the listening socket, to shut it down from `stop`.
    listener: TcpListener,
    clients: Mutex<Clients>,
    changed: Condvar,
    /// The summary's counts, one per kind of event (see [`Shared::emit`]).
    errors: AtomicU64,
    refused: AtomicU64,
    aborted: AtomicU64,
    forced_clients: AtomicU64,
    /// Bytes held for incomplete messages, all clients together (at most
    /// `config.memory_budget`).
    pub(super) budget: Budget,
    /// Held while an event is stamped and handed to the sink, so that the
    /// sink sees the events in the order of their times, one at a time.
    order: Mutex<Order>,
    sink: Sink,
    pub(super) config: Config,
}

impl Shared {
    /// Nothing stopped, no client, nothing counted yet; `listener` is a
    /// clone of the listening socket.
    pub(super) fn new(listener: TcpListener, config: Config, sink: Sink) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            listener,
            clients: Mutex::new(Clients {
                streams: HashMap::new(),
                live: 0,
            }),
            changed: Condvar::new(),
            errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            forced_clients: AtomicU64::new(0),
            budget: Budget::new(config.memory_budget),
            order: Mutex::new(Order {
                epoch: Instant::now(),
                finished: false,
            }),
            sink,
            config,
        }
    }

    /// Wakes whoever waits for a change (a client leaving, a stop).
    pub(super) fn notify_all(&self) {
        self.changed.notify_all();
    }

    /// The summary's counts, as the events counted them.
    pub(super) fn count_into(&self, summary: &mut Summary) {
        summary.errors = self.errors.load(Ordering::SeqCst);
        summary.refused = self.refused.load(Ordering::SeqCst);
        summary.aborted = self.aborted.load(Ordering::SeqCst);
        summary.forced = self.forced_clients.load(Ordering::SeqCst);
    }

    pub(super) fn clients(&self) -> MutexGuard<'_, Clients> {
        // A client thread that panicked while holding the lock leaves the
        // map itself intact: keep going with it.
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits at most `timeout` for a change (a client leaving, a stop).
    pub(super) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Clients>,
        timeout: Duration,
    ) -> MutexGuard<'a, Clients> {
        match self.changed.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    /// No more accepts: the socket leaves LISTEN (connections still in
    /// the accept queue get RST) and a blocked accept(2) returns (EINVAL):
    /// shutdown(SHUT_RD) on a listening socket does both on Linux.
    pub(super) fn close_listener(&self) {
        let _ = SockRef::from(&self.listener).shutdown(Shutdown::Read);
    }

    /// Hands an event to the sink. The summary's counts are counted here,
    /// from the events themselves, so that the two always agree.
    pub(super) fn emit(
        &self,
        client: Option<ClientId>,
        kind: ServerEvent,
        kernel: Option<TcpInfo>,
    ) {
        let counter = kind.tally().map(|tally| match tally {
            Tally::Errors => &self.errors,
            Tally::Refused => &self.refused,
            Tally::Aborted => &self.aborted,
            Tally::Forced => &self.forced_clients,
        });
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        let mut order = self.order();
        if order.finished {
            return;
        }
        order.finished = matches!(kind, ServerEvent::Stopped { .. });
        (self.sink)(&Event {
            t: order.epoch.elapsed(),
            client,
            kind,
            kernel,
        });
    }

    /// The events' clock starts now: the listening event is at (about) 0,
    /// however long the caller took between bind and run.
    pub(super) fn start_clock(&self) {
        self.order().epoch = Instant::now();
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The events' clock, and whether the summary is out: an event after it
/// (a straggler's, when the straggler limit ended) is dropped, so that the
/// summary is the last event of a run.
struct Order {
    /// When the run started (just before the listening event): the
    /// events' `t` counts from here.
    epoch: Instant,
    finished: bool,
}
