//! The tutorial server, on the kernel's own TCP stack: `synack serve` and
//! the lab's server thread share one reply logic ([`reply`]: what to
//! answer to which bytes, framing, the message cap and the memory budget,
//! when to close) and one event type ([`event`]: each socket call), worded
//! by one renderer ([`render`]) in either command's voice.
//!
//! Pure (no sockets): [`config`], [`event`], [`reply`], [`render`].
//! Socket I/O: [`listener`] (`synack serve`: the accept loop, a thread per
//! client, a stop with a grace period), with each client's connection in
//! `connection.rs` and what they share in `shared.rs`; and [`lab`] (the
//! lab's server: one connection after another, the way the tutorials
//! write it, or UDP). Both need no privileges of their own: the lab's runs
//! inside the lab's namespace.

pub mod config;
mod connection;
pub mod event;
pub mod lab;
pub mod listener;
pub mod render;
pub mod reply;
mod shared;

pub use config::{
    CloseMode, Config, KernelView, LabServerConfig, Reading, ServeError, DEFAULT_ADDR,
    DEFAULT_BACKLOG, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_MESSAGE,
    DEFAULT_MEMORY_BUDGET, DEFAULT_REPLY, READ_BUFFER_LEN, READ_BUF_LEN,
};
pub use event::{ClientId, Event, ServerEvent, Sink, Summary};
pub use lab::{LabServer, Notify};
pub use listener::{catch_stop_signals, listen, Server, StopSignals, Stopper};
pub use render::{describe, format_event, format_json, Voice};
pub use reply::{Answer, Budget, Reply, Responder, Response};
