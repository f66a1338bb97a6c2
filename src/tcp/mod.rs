//! The TCP connection state machine (RFC 9293), pure: segments and time in,
//! segments to send and state changes out.

mod conn;
mod info;
pub mod peer;
mod state;

pub use conn::{
    reset_for, Config, Connection, Event, InvalidState, Negotiated, SendReason, DEFAULT_MSS,
    DEFAULT_PEER_MSS, DEFAULT_WINDOW, DEFAULT_WSCALE, FALLBACK_RTO, INITIAL_RTO, LINUX_TIME_WAIT,
    MAX_RTO, MAX_WSCALE, TIMESTAMPS_OPTION_LEN,
};
pub use info::TcpInfo;
pub use peer::PeerModel;
pub use state::State;

#[cfg(test)]
mod tests;
