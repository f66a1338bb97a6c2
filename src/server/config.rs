//! What each server is asked to do: `synack serve`'s [`Config`] (many
//! clients, limits, a stop with a grace period) and the lab's
//! [`LabServerConfig`] (one connection after another, the way the tutorials
//! read), each turned into the shared [`Responder`]; and why `synack
//! serve` could not start ([`ServeError`]). Pure: no sockets here.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::reply::{Reply, Responder};
use crate::framing::{self, Framing};

/// `synack serve`'s address when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// The listen backlog when none is given.
pub const DEFAULT_BACKLOG: i32 = 1024;
/// The bound on concurrent clients when none is given.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// The reply when neither `--reply` nor `--echo` is given.
pub const DEFAULT_REPLY: &str = "hello, client\n";
/// How long a client may stay silent before the server closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open clients may take to finish after a stop.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Bytes `synack serve` asks for in one `read`.
pub const READ_BUFFER_LEN: usize = 16 * 1024;
/// The lab server's read buffer: one `recv()` returns at most this much,
/// so a sticky server joins at most this many bytes in its one read.
pub const READ_BUF_LEN: usize = 64 * 1024;
/// The largest framed message by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;
/// The bytes of framed messages all clients may hold at once by default
/// (64 MiB).
pub const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;

/// Who closes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// After its first reply the server sends FIN (FIN-WAIT-1, FIN-WAIT-2,
    /// then TIME-WAIT on the server's side).
    First,
    /// The server answers until the peer's FIN, then closes (CLOSE-WAIT,
    /// LAST-ACK on the server's side; TIME-WAIT on the client's).
    AfterPeer,
}

/// How much of the kernel's view each event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelView {
    /// None (a load test: no extra system calls).
    Off,
    /// `TCP_INFO` on each event.
    TcpInfo,
    /// `TCP_INFO`, the state changes after our FIN, and a sock_diag lookup
    /// for the TIME-WAIT the kernel keeps once the socket is gone.
    Full,
}

/// Everything `synack serve` needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// SO_REUSEADDR on the listener (lets a restart bind while connections
    /// from the previous run sit in TIME-WAIT).
    pub reuse_address: bool,
    /// The `listen` backlog (capped by `net.core.somaxconn`).
    pub backlog: i32,
    /// At most this many clients are served at once; more wait in the
    /// kernel's accept queue.
    pub max_clients: usize,
    /// Stop after this many connections (None: until stopped).
    pub max_connections: Option<u64>,
    /// What to answer.
    pub reply: Reply,
    /// Message framing (None: answer each read).
    pub framing: Option<Framing>,
    /// Who closes first.
    pub close: CloseMode,
    /// Abort with RST (SO_LINGER 0) instead of closing with FIN.
    pub linger0: bool,
    /// A client silent for this long is closed.
    pub idle_timeout: Duration,
    /// Open clients get this long to finish after a stop.
    pub grace: Duration,
    /// How much of the kernel's view to report.
    pub kernel_view: KernelView,
    /// With framing: the largest message body accepted; a bigger one is
    /// refused (an error frame, then the close).
    pub max_message: usize,
    /// With framing: the bytes of incomplete messages all clients may hold
    /// together; a read that would go past it is refused.
    pub memory_budget: usize,
}

impl Config {
    /// The defaults of `synack serve` on `addr`.
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            reuse_address: true,
            backlog: DEFAULT_BACKLOG,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_connections: None,
            reply: Reply::Text(DEFAULT_REPLY.as_bytes().to_vec()),
            framing: None,
            close: CloseMode::AfterPeer,
            linger0: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            grace: DEFAULT_GRACE,
            kernel_view: KernelView::Full,
            max_message: DEFAULT_MAX_MESSAGE,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }

    /// One client's reply logic: the reply, the framing with its message
    /// cap, and `--close first` as closing after the first answer.
    pub fn responder(&self) -> Responder {
        let responder =
            Responder::new(self.reply.clone(), self.framing).max_message(self.max_message);
        match self.close {
            CloseMode::First => responder.close_after(1),
            CloseMode::AfterPeer => responder,
        }
    }

    /// Refuses a configuration that cannot work.
    ///
    /// # Errors
    ///
    /// [`ServeError::Config`] for an idle timeout of 0 or a memory budget
    /// that cannot hold one message of `max_message`.
    pub fn check(&self) -> Result<(), ServeError> {
        // A read timeout of 0 is refused by the kernel call (EINVAL): every
        // client would fail on its first read.
        if self.idle_timeout.is_zero() {
            return Err(ServeError::Config {
                reason: "the idle timeout must be more than 0".into(),
            });
        }
        // One message of the largest size, its header, and the read that
        // completes it must fit.
        let least = self
            .max_message
            .saturating_add(framing::LENGTH_PREFIX_LEN + framing::MAX_HEADER_LEN + READ_BUFFER_LEN);
        if self.framing.is_some() && self.memory_budget < least {
            return Err(ServeError::Config {
                reason: format!(
                    "a memory budget of {} bytes cannot hold one message of the largest size \
                     (--max-message {} bytes): it needs at least {least} bytes",
                    self.memory_budget, self.max_message
                ),
            });
        }
        Ok(())
    }
}

/// Why `synack serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// EADDRINUSE, with what the kernel's socket table says about the port.
    #[error("cannot listen on {addr}: address in use{}", in_use_hint(*.reuse_address, *.listening, *.time_wait))]
    AddrInUse {
        addr: SocketAddr,
        reuse_address: bool,
        /// A socket already listens on the port.
        listening: bool,
        /// Connections on the port in TIME-WAIT.
        time_wait: usize,
    },
    /// EADDRNOTAVAIL.
    #[error("cannot listen on {addr}: {} is not an address of this host", .addr.ip())]
    AddrNotAvailable { addr: SocketAddr },
    /// EACCES.
    #[error("cannot listen on {addr}: ports below 1024 need root or CAP_NET_BIND_SERVICE (try sudo, or a port above 1023)")]
    PermissionDenied { addr: SocketAddr },
    /// A setting that cannot work.
    #[error("{reason}")]
    Config { reason: String },
    /// Any other failure to set up the listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn in_use_hint(reuse_address: bool, listening: bool, time_wait: usize) -> String {
    let plural = if time_wait == 1 { "" } else { "s" };
    match (listening, reuse_address, time_wait) {
        (true, _, _) => " (another socket is listening on that port: `ss -tlnp`)".to_string(),
        (false, false, 0) => " (--no-reuseaddr: without SO_REUSEADDR even a connection \
             in TIME-WAIT on this port blocks the bind)"
            .to_string(),
        (false, false, n) => format!(
            " ({n} connection{plural} on this port in TIME-WAIT from an earlier run; \
             without SO_REUSEADDR (--no-reuseaddr) the kernel refuses the bind until \
             TIME-WAIT ends, 60 s on Linux; leave SO_REUSEADDR on to restart at once)"
        ),
        (false, true, n) if n > 0 => format!(
            " ({n} connection{plural} in TIME-WAIT hold the port and were made \
             without SO_REUSEADDR)"
        ),
        (false, true, _) => String::new(),
    }
}

/// How the lab's server reads what the client writes.
#[derive(Clone, Debug)]
pub struct Reading {
    /// How many application writes (messages, when framed) the client
    /// sends: the server answers each read (each message, when framed) and,
    /// when it closes first, closes after the last.
    pub writes: usize,
    /// Sticky packets: before its first `recv()`, wait until this many
    /// bytes sit in the socket's receive queue, as a busy server would.
    pub sticky_bytes: Option<usize>,
    /// Read whole framed messages and frame each reply.
    pub framing: Option<Framing>,
}

impl Reading {
    /// How many answers the client waits for: one per message when framed,
    /// one for the single read of a sticky server, else one per write.
    pub fn answers(&self) -> usize {
        match (self.framing, self.sticky_bytes) {
            (None, Some(_)) => 1,
            _ => self.writes.max(1),
        }
    }
}

impl Default for Reading {
    /// One write, read as it comes, answered unframed.
    fn default() -> Reading {
        Reading {
            writes: 1,
            sticky_bytes: None,
            framing: None,
        }
    }
}

/// How the lab's server behaves.
#[derive(Clone, Debug)]
pub struct LabServerConfig {
    /// IPv4 or IPv6 (`lab -6`).
    pub addr: SocketAddr,
    /// What it sends back after each read or message (nothing when empty).
    pub reply: Vec<u8>,
    /// Set `TCP_QUICKACK` once the read returned EOF, so the kernel ACKs
    /// the client's FIN at once instead of letting the ACK ride on the
    /// server's own FIN.
    pub quickack: bool,
    /// The longest any call may block (accept, each read).
    pub timeout: Duration,
    /// How many connections to serve, one after the other.
    pub connections: usize,
    /// Close right after the reply instead of reading until the client's
    /// EOF: the server closes first.
    pub close_first: bool,
    /// Plain, sticky or framed reads.
    pub reading: Reading,
    /// Once the reply is acknowledged, set `SO_LINGER` 0 and close: the
    /// kernel sends RST instead of FIN (an abort).
    pub linger0: bool,
    /// Read until EOF first, then reply, then close: the client's
    /// half-close (its FIN) does not stop the server from sending.
    pub reply_after_eof: bool,
}

impl LabServerConfig {
    /// One connection's reply logic: the reply (none when empty) to each
    /// read or message, at EOF after a half-close; closing (or aborting)
    /// once every write the client sends is answered.
    pub fn responder(&self) -> Responder {
        let reply = match self.reply.is_empty() {
            true => Reply::Nothing,
            false => Reply::Text(self.reply.clone()),
        };
        let mut responder = Responder::new(reply, self.reading.framing);
        if self.close_first || self.linger0 {
            responder = responder.close_after(self.reading.answers());
        }
        if self.reply_after_eof {
            responder = responder.answer_at_eof();
        }
        responder
    }

    /// Whether to set `TCP_QUICKACK` after the EOF: when asked for, and
    /// when the server did not close first (it then saw the peer's FIN
    /// while in CLOSE-WAIT).
    pub fn quickack_at_eof(&self) -> bool {
        self.quickack && !self.close_first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_in_use_explains_time_wait_without_reuseaddr() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let err = ServeError::AddrInUse {
            addr,
            reuse_address: false,
            listening: false,
            time_wait: 2,
        };
        let text = err.to_string();
        assert!(
            text.starts_with("cannot listen on 127.0.0.1:8080: address in use"),
            "{text}"
        );
        assert!(
            text.contains("2 connections on this port in TIME-WAIT"),
            "{text}"
        );
        assert!(text.contains("--no-reuseaddr"), "{text}");
        let listening = ServeError::AddrInUse {
            addr,
            reuse_address: true,
            listening: true,
            time_wait: 0,
        };
        assert!(listening
            .to_string()
            .contains("another socket is listening"));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let mut idle = Config::new("127.0.0.1:0".parse().expect("addr"));
        idle.idle_timeout = Duration::ZERO;
        let err = idle.check().expect_err("refused");
        assert!(err.to_string().contains("idle timeout"), "{err}");
        let mut small = Config::new("127.0.0.1:0".parse().expect("addr"));
        small.framing = Some(Framing::LengthPrefix);
        small.memory_budget = small.max_message;
        let err = small.check().expect_err("refused");
        assert!(err.to_string().contains("memory budget"), "{err}");
    }

    #[test]
    fn the_lab_closes_first_after_every_write_is_answered() {
        let mut lab = LabServerConfig {
            addr: "127.0.0.1:0".parse().expect("addr"),
            reply: Vec::new(),
            quickack: true,
            timeout: Duration::from_secs(1),
            connections: 1,
            close_first: true,
            linger0: false,
            reply_after_eof: false,
            reading: Reading {
                writes: 2,
                ..Reading::default()
            },
        };
        let mut responder = lab.responder();
        assert!(responder.on_read(b"one").joined_reply().is_empty());
        assert!(!responder.done());
        responder.on_read(b"two");
        assert!(responder.done());
        assert!(!lab.quickack_at_eof());
        lab.close_first = false;
        assert!(!lab.responder().done());
        assert!(lab.quickack_at_eof());
    }
}
