//! ARP (RFC 826) for the client: learn the server's (or the gateway's)
//! MAC before the first segment, and answer "who has" for our own address,
//! which no kernel owns in the lab.

use std::time::Instant;

use super::{Arrival, Client, ClientError, FrameKind, Observer, ARP_RETRY, MAX_TURNS};
use crate::net::link::Link;
use crate::wire::{self, ArpOp, ArpRepr, MacAddr};

impl<L: Link, O: Observer> Client<'_, L, O> {
    /// ARP for the server (RFC 826): a SYN sent to the broadcast MAC is
    /// silently dropped by the server's TCP, so learn its MAC first.
    /// Over IPv6, Neighbor Discovery does it instead (`ndp`).
    pub(super) fn resolve_server(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.params.remote_ip.is_ipv6() {
            return self.resolve_neighbor(deadline);
        }
        let start = Instant::now();
        let (local_ip, remote_ip) = self.ipv4_addrs();
        let request = ArpRepr {
            op: ArpOp::Request,
            sender_mac: self.local_mac,
            sender_ip: local_ip,
            target_mac: MacAddr::zero(),
            target_ip: self.next_hop.unwrap_or(remote_ip),
        };
        let mut next_request = start;
        for _ in 0..MAX_TURNS {
            if self.remote_mac.is_some() {
                return Ok(());
            }
            if self.observer.interrupted() {
                return Err(ClientError::Interrupted {
                    state: self.conn.state(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_request {
                let bytes = wire::emit_arp(self.local_mac, MacAddr::broadcast(), &request);
                self.transmit(bytes, FrameKind::Arp(request.clone()), true)?;
                next_request = now + ARP_RETRY;
            }
            if let Some(bytes) = self.link.recv(next_request.min(deadline))? {
                self.on_frame(bytes)?;
            }
        }
        Err(ClientError::NoArpReply {
            ip: self.next_hop.unwrap_or(remote_ip),
            after: start.elapsed(),
        })
    }

    /// An ARP frame arrived: learn the next hop's MAC from it, and answer
    /// a request for our address.
    pub(super) fn on_arp(&mut self, rx: Arrival, arp: ArpRepr) -> Result<(), ClientError> {
        let (local_ip, remote_ip) = self.ipv4_addrs();
        let v4 = self.params.local_ip.is_ipv4();
        if v4 && arp.sender_ip == self.next_hop.unwrap_or(remote_ip) {
            self.remote_mac = Some(arp.sender_mac);
        }
        let for_us = v4 && arp.op == ArpOp::Request && arp.target_ip == local_ip;
        let reply = for_us.then_some(ArpRepr {
            op: ArpOp::Reply,
            sender_mac: self.local_mac,
            sender_ip: local_ip,
            target_mac: arp.sender_mac,
            target_ip: arp.sender_ip,
        });
        let asker = arp.sender_mac;
        self.received(rx, FrameKind::Arp(arp));
        if let Some(reply) = reply {
            // Answer "who has 198.18.0.2?": no kernel owns it, so without
            // this the server never sends its SYN-ACK.
            let frame = wire::emit_arp(self.local_mac, asker, &reply);
            self.transmit(frame, FrameKind::Arp(reply), true)?;
        }
        Ok(())
    }
}
