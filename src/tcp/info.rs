//! [`TcpInfo`]: the kernel's view of one TCP socket as data (what
//! `getsockopt(TCP_INFO)` returns, read by `net::sockinfo`), so that pure
//! code can carry and show it without touching a socket.

use std::time::Duration;

use super::State;

/// The kernel's view of one TCP socket, from `TCP_INFO`
/// (`struct tcp_info`, `include/uapi/linux/tcp.h`).
///
/// Fields a kernel older than the field leaves at zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// The connection state (`tcpi_state`), in RFC 9293 §3.3.2 names.
    pub state: State,
    /// Smoothed round-trip time, SRTT of RFC 6298 (`tcpi_rtt`).
    pub rtt: Duration,
    /// Round-trip time variation, RTTVAR of RFC 6298 (`tcpi_rttvar`).
    pub rttvar: Duration,
    /// The current retransmission timeout, RTO of RFC 6298 (`tcpi_rto`).
    pub rto: Duration,
    /// The smallest RTT seen (`tcpi_min_rtt`).
    pub min_rtt: Duration,
    /// Consecutive retransmissions of the oldest unacknowledged segment
    /// since it was last acknowledged (`tcpi_retransmits`).
    pub retransmits: u8,
    /// Exponential back-off count of the retransmission timer (`tcpi_backoff`).
    pub backoff: u8,
    /// Retransmissions over the connection's lifetime (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Congestion window, in segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Slow-start threshold, in segments (`tcpi_snd_ssthresh`).
    pub snd_ssthresh: u32,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// The largest segment the peer is expected to send us (`tcpi_rcv_mss`).
    pub rcv_mss: u32,
    /// The largest segment we send (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// The peer's advertised receive window, in bytes (`tcpi_snd_wnd`).
    pub snd_wnd: u32,
    /// Our advertised receive window, in bytes (`tcpi_rcv_wnd`).
    pub rcv_wnd: u32,
    /// Payload bytes the peer acknowledged (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// Payload bytes received in order (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Segments sent, retransmissions included (`tcpi_segs_out`).
    pub segs_out: u32,
    /// Segments received (`tcpi_segs_in`).
    pub segs_in: u32,
    /// Time since we last sent data (`tcpi_last_data_sent`).
    pub last_data_sent: Duration,
    /// Time since we last received data (`tcpi_last_data_recv`).
    pub last_data_recv: Duration,
}
