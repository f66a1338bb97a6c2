//! Neighbor Discovery (RFC 4861) for the client over IPv6: ARP's job.
//! Learn the server's MAC with a Neighbor Solicitation before the first
//! segment, and answer a solicitation for our own address (which no
//! kernel owns in the lab) with a Neighbor Advertisement. Also the IPv6
//! half of the frame dispatch: our segments, NDP, ICMPv6 errors, noise.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use super::{Arrival, Client, ClientError, FrameKind, Observer, ARP_RETRY, MAX_TURNS};
use crate::net::link::Link;
use crate::wire::{self, Frame6, Icmpv6ErrorKind, NdpFrame, NdpRepr};

impl<L: Link, O: Observer> Client<'_, L, O> {
    /// Solicits the server's MAC (RFC 4861 §7.2.2), once a second
    /// (RetransTimer) until an advertisement arrives or `deadline`.
    pub(super) fn resolve_neighbor(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let start = Instant::now();
        let (local_ip, remote_ip) = self.ipv6_addrs();
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
                let bytes = wire::neighbor_solicitation(self.local_mac, local_ip, remote_ip)?;
                self.transmit_ndp(bytes)?;
                next_request = now + ARP_RETRY;
            }
            if let Some(bytes) = self.link.recv(next_request.min(deadline))? {
                self.on_frame(bytes)?;
            }
        }
        Err(ClientError::NoNeighborAdvert {
            ip: remote_ip,
            after: start.elapsed(),
        })
    }

    /// An IPv6 frame arrived: a segment of ours, Neighbor Discovery, an
    /// ICMPv6 error about ours (which ends the run), or noise.
    pub(super) fn on_ipv6(&mut self, rx: Arrival) -> Result<(), ClientError> {
        match wire::parse_ipv6(&rx.bytes) {
            Ok(Frame6::Tcp(frame)) if self.is_ours6(&frame) => {
                self.on_segment(rx, frame.segment, frame.checksum_ok)
            }
            Ok(Frame6::Ndp(frame)) if frame.is_valid() => self.on_ndp(rx, frame),
            Ok(Frame6::Icmpv6Error(icmp)) if self.is_about_ours6(&icmp) => {
                let at = rx.at;
                self.received(rx, FrameKind::Noise);
                match icmp.kind {
                    Icmpv6ErrorKind::DestUnreachable { code } => Err(ClientError::Unreachable6 {
                        from: icmp.from,
                        code,
                        at,
                    }),
                    // Our segments are far below any IPv6 link's MTU
                    // (1280 at least): nothing to resend smaller.
                    Icmpv6ErrorKind::PacketTooBig { .. } => Ok(()),
                }
            }
            _ => {
                self.received(rx, FrameKind::Noise);
                Ok(())
            }
        }
    }

    /// A valid NS or NA: learn the server's MAC from its advertisement,
    /// and answer a solicitation for our address.
    fn on_ndp(&mut self, rx: Arrival, frame: NdpFrame) -> Result<(), ClientError> {
        let (local_ip, remote_ip) = self.ipv6_addrs();
        let answer = match &frame.ndp {
            NdpRepr::NeighborAdvert {
                target, target_mac, ..
            } => {
                if *target == remote_ip {
                    self.remote_mac = Some(target_mac.unwrap_or(frame.src_mac));
                }
                None
            }
            // "Who has 2001:2::2?": no kernel owns it, so without an
            // answer the server never sends its SYN-ACK.
            NdpRepr::NeighborSolicit { target, source_mac } if *target == local_ip => {
                Some((source_mac.unwrap_or(frame.src_mac), frame.ip.src))
            }
            NdpRepr::NeighborSolicit { .. } => None,
        };
        self.received(
            rx,
            FrameKind::Ndp {
                ip: frame.ip,
                ndp: frame.ndp,
            },
        );
        if let Some((asker_mac, asker_ip)) = answer {
            let bytes =
                wire::neighbor_advertisement(self.local_mac, local_ip, asker_mac, asker_ip)?;
            self.transmit_ndp(bytes)?;
        }
        Ok(())
    }

    /// Sends an NDP frame we built, recorded as what it says.
    fn transmit_ndp(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        let kind = match wire::parse_ipv6(&bytes) {
            Ok(Frame6::Ndp(frame)) => FrameKind::Ndp {
                ip: frame.ip,
                ndp: frame.ndp,
            },
            _ => FrameKind::Noise,
        };
        self.transmit(bytes, kind, true)?;
        Ok(())
    }

    fn is_ours6(&self, frame: &wire::Tcp6Frame) -> bool {
        IpAddr::V6(frame.ip.src) == self.params.remote_ip
            && IpAddr::V6(frame.ip.dst) == self.params.local_ip
            && frame.segment.src_port == self.params.conn.remote_port
            && frame.segment.dst_port == self.params.conn.local_port
    }

    /// An ICMPv6 error that quotes a segment of this connection (RFC 4443
    /// quotes as much of the packet as fits).
    fn is_about_ours6(&self, icmp: &wire::Icmpv6Error) -> bool {
        let (local, remote): (Ipv6Addr, Ipv6Addr) = self.ipv6_addrs();
        icmp.quoted_src == local
            && icmp.quoted_dst == remote
            && icmp.quoted_src_port == self.params.conn.local_port
            && icmp.quoted_dst_port == self.params.conn.remote_port
    }
}
