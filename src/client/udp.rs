//! The client's UDP exchange (`synack lab --udp`): the same writes as
//! datagrams, no connection, nothing acknowledged or retransmitted.

use std::time::Instant;

use super::{Arrival, Client, ClientError, FrameKind, Observer, Outcome, MAX_TURNS};
use crate::net::link::Link;
use crate::wire::{self, UdpRepr};

impl<L: Link, O: Observer> Client<'_, L, O> {
    /// `--udp`: resolves the server's MAC, then sends each write as one
    /// datagram, at once (there is no connection to open); then awaits the
    /// replies until the whole expected reply arrived. Nothing is
    /// acknowledged or retransmitted.
    ///
    /// # Errors
    /// See [`ClientError`]: no ARP reply, [`ClientError::NoReply`], the link.
    pub fn run_datagrams(mut self) -> Result<Outcome, ClientError> {
        let start = Instant::now();
        let deadline = start + self.params.timeout;
        self.udp = true;
        if !self.params.remote_ip.is_ipv4() || !self.params.local_ip.is_ipv4() {
            // The hand-built datagrams are IPv4 only (`lab --udp` refuses -6).
            return Err(ClientError::NotOverIpv6("the UDP exchange"));
        }
        self.resolve_server(deadline)?;
        for (index, payload) in self.params.data.clone().into_iter().enumerate() {
            let datagram = UdpRepr {
                src_port: self.params.conn.local_port,
                dst_port: self.params.conn.remote_port,
                payload,
            };
            let (remote_mac, ip) = self.next_packet();
            let bytes = wire::emit_udp(self.local_mac, remote_mac, &ip, &datagram)?;
            self.outcome.bytes_sent += datagram.payload.len();
            let kind = FrameKind::Datagram {
                datagram,
                checksums_ok: true,
                number: index + 1,
            };
            let at = self.transmit(bytes, kind, true)?;
            self.outcome.first_syn_at.get_or_insert(at);
            self.outcome.last_sent_at = Some(at);
        }
        for _ in 0..MAX_TURNS {
            if self.outcome.bytes_received >= self.params.expect_reply {
                self.outcome.server_mac = self.remote_mac;
                return Ok(self.outcome);
            }
            if self.observer.interrupted() {
                return Err(ClientError::Interrupted {
                    state: self.conn.state(),
                });
            }
            if Instant::now() >= deadline {
                break;
            }
            if let Some(bytes) = self.link.recv(deadline)? {
                self.on_frame(bytes)?;
            }
        }
        Err(ClientError::NoReply {
            got: self.outcome.bytes_received,
            expected: self.params.expect_reply,
            after: start.elapsed(),
        })
    }

    pub(super) fn is_our_datagram(&self, frame: &wire::UdpFrame) -> bool {
        std::net::IpAddr::V4(frame.ip.src) == self.params.remote_ip
            && std::net::IpAddr::V4(frame.ip.dst) == self.params.local_ip
            && frame.datagram.src_port == self.params.conn.remote_port
            && frame.datagram.dst_port == self.params.conn.local_port
    }

    /// A datagram of the exchange arrived.
    pub(super) fn on_datagram(&mut self, rx: Arrival, frame: wire::UdpFrame) {
        self.datagrams_received += 1;
        let payload = &frame.datagram.payload;
        self.outcome.bytes_received += payload.len();
        self.outcome.received.extend_from_slice(payload);
        let kind = FrameKind::Datagram {
            datagram: frame.datagram,
            checksums_ok: frame.checksums_ok,
            number: self.datagrams_received,
        };
        self.received(rx, kind);
    }
}
