//! The connection states of RFC 9293 §3.3.2.
//!
//! Pure.

use std::fmt;

use serde::Serialize;

/// A TCP connection state, named as in RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// The RFC's spelling: `SYN-SENT`, `FIN-WAIT-1`, `TIME-WAIT`.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }

    /// The states in which both sides' initial sequence numbers are known
    /// (RFC 9293 §3.10.7.4, "otherwise").
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent)
    }

    /// The Linux `TCP_*` state number (`include/net/tcp_states.h`), as
    /// `TCP_INFO` and sock_diag report it, turned into the RFC's name.
    /// `TCP_NEW_SYN_RECV` (12) is the request socket of a half-open
    /// connection: SYN-RECEIVED.
    pub fn from_linux(state: u8) -> Option<State> {
        Some(match state {
            1 => State::Established,
            2 => State::SynSent,
            3 | 12 => State::SynReceived,
            4 => State::FinWait1,
            5 => State::FinWait2,
            6 => State::TimeWait,
            7 => State::Closed,
            8 => State::CloseWait,
            9 => State::LastAck,
            10 => State::Listen,
            11 => State::Closing,
            _ => return None,
        })
    }
}

impl From<State> for &'static str {
    fn from(state: State) -> &'static str {
        state.name()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rfc() {
        assert_eq!(State::SynSent.to_string(), "SYN-SENT");
        assert_eq!(State::FinWait1.to_string(), "FIN-WAIT-1");
        assert_eq!(format!("{:<12}|", State::Closed), "CLOSED      |");
    }

    #[test]
    fn linux_numbers_map_to_rfc_states() {
        assert_eq!(State::from_linux(1), Some(State::Established));
        assert_eq!(State::from_linux(12), Some(State::SynReceived));
        assert_eq!(State::from_linux(9), Some(State::LastAck));
        assert_eq!(State::from_linux(0), None);
        assert_eq!(State::from_linux(13), None);
    }
}
