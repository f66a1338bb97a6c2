//! From a frame's network layer to its TCP segments: IP (IPv4, IPv6 with
//! extension headers, via etherparse's lax slices), the tunnels that carry
//! other packets (IP-in-IP, IPv6-in-IPv4, GRE with ERSPAN II/III, WCCP and
//! PPTP, VXLAN, Geneve), MPLS label stacks, PPP, sFlow's sampled packet
//! headers, and the first fragment of a fragmented datagram (the TCP header
//! is there). The TCP header itself is read by [`crate::wire::tcp`].
//!
//! Every frame ends in segments or in a [`Skip`] that says why not: nothing
//! is dropped without being counted.
//!
//! Pure: byte slices in, views out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, Ipv6ExtensionSlice, LaxIpSlice, LaxIpv4Slice, LaxIpv6Slice};
use serde::Serialize;

use crate::capture::link::{self, Network, Skip, ETHER_TYPE_IPV4, ETHER_TYPE_IPV6};
use crate::wire::tcp::{self, TcpError, TcpView};
use crate::wire::{Flags, SeqNumber, TcpOptions};

pub use crate::wire::Checksum;

/// How deep encapsulations may nest before a frame counts as malformed.
const MAX_DEPTH: u8 = 8;
/// MPLS labels popped at most.
const MAX_LABELS: usize = 16;

/// The tunnel a segment came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    /// IPv4 or IPv6 inside IP (protocol 4).
    IpInIp,
    /// IPv6 inside IP (protocol 41, 6in4/SIT).
    Ipv6InIp,
    Gre,
    /// ERSPAN type I, II or III (GRE protocol 0x88BE / 0x22EB).
    Erspan,
    /// WCCP redirection (GRE protocol 0x883E).
    Wccp,
    /// PPP inside enhanced GRE (PPTP).
    Pptp,
    Vxlan,
    Geneve,
    /// A packet header sampled by sFlow: the outer addresses are the
    /// agent's datagram's.
    Sflow,
}

/// The outermost tunnel a segment came through, and the addresses of the
/// packet that carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
}

/// One TCP segment as the capture shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: Flags,
    /// The raw (unscaled) window field.
    pub window: u16,
    /// The options present in the captured part of the header.
    pub options: TcpOptions,
    /// Payload bytes, from the IP length (not from the captured length);
    /// in a first fragment, what the fragment carries.
    pub payload_len: u32,
    /// The captured part of the payload.
    pub payload: &'a [u8],
    pub checksum: Checksum,
    /// The TCP header was cut by the snaplen (options may be missing).
    pub header_cut: bool,
    /// The tunnel it came through, if any.
    pub tunnel: Option<Tunnel>,
}

/// Every TCP segment in a frame (an sFlow datagram may carry several),
/// each passed to `out` with a [`Skip`] for what yields none. The first
/// fragment of a fragmented datagram gives its TCP header with what that
/// fragment carries; later fragments are [`Skip::Fragment`].
pub fn segments<'a>(
    link_type: u32,
    frame: &'a [u8],
    out: &mut dyn FnMut(Result<TcpSegment<'a>, Skip>),
) {
    decode(link_type, frame, None, Out::Frame(out));
}

/// As [`segments`], with fragmented TCP datagrams held in `defrag` until
/// their last byte came: the segment is then handed on whole (its length
/// from the datagram's), with the frame that completed it, as tshark's
/// reassembly shows it. The fragments before are neither segments nor
/// skips (they are counted to their datagram).
pub fn segments_reassembling(
    link_type: u32,
    frame: &[u8],
    defrag: &mut Defrag,
    at: Position,
    out: &mut dyn FnMut(Result<TcpSegment<'_>, Skip>),
) {
    defrag.at = at;
    decode(link_type, frame, Some(defrag), Out::Any(out));
}

/// Where segments go: those of the frame only, or also those of held
/// fragments (which live shorter than the frame).
enum Out<'a, 'o> {
    Frame(&'o mut dyn FnMut(Result<TcpSegment<'a>, Skip>)),
    Any(&'o mut dyn FnMut(Result<TcpSegment<'_>, Skip>)),
}

impl<'a> Out<'a, '_> {
    fn send(&mut self, r: Result<TcpSegment<'a>, Skip>) {
        match self {
            Out::Frame(out) => out(r),
            Out::Any(out) => out(r),
        }
    }

    /// A segment of a held datagram: only [`Out::Any`] has a defrag.
    fn send_held(&mut self, seg: TcpSegment<'_>) {
        if let Out::Any(out) = self {
            out(Ok(seg));
        }
    }
}

fn decode<'a>(link_type: u32, frame: &'a [u8], defrag: Option<&'a mut Defrag>, out: Out<'a, '_>) {
    let mut d = Decap {
        depth: 0,
        tunnel: None,
        defrag,
        out,
    };
    match link::network(link_type, frame) {
        Ok(net) => d.network(net),
        Err(skip) => d.out.send(Err(skip)),
    }
}

/// The first TCP segment of a frame.
///
/// # Errors
/// [`Skip`] says why there is none.
pub fn first_segment(link_type: u32, frame: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    let mut first: Option<Result<TcpSegment<'_>, Skip>> = None;
    segments(link_type, frame, &mut |r| {
        let replace = match &first {
            None => true,
            Some(f) => f.is_err() && r.is_ok(),
        };
        if replace {
            first = Some(r);
        }
    });
    first.unwrap_or(Err(Skip::NotTcp))
}

/// Decodes the TCP segment in an IP packet.
///
/// # Errors
/// [`Skip`] says why there is none.
pub fn tcp_segment(ip: &[u8]) -> Result<TcpSegment<'_>, Skip> {
    first_segment(link::linktype::RAW, ip)
}

/// Where a frame is in its file: frame number (1-based) and capture time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub frame: u64,
    pub ts_ns: u64,
}

/// Fragments of TCP datagrams not complete yet (by source, destination,
/// identification).
#[derive(Debug, Default)]
pub struct Defrag {
    pending: std::collections::VecDeque<Pending>,
    at: Position,
}

#[derive(Debug)]
struct Pending {
    key: (IpAddr, IpAddr, u32),
    /// Where the first fragment (the one with the TCP header) was.
    first: Option<Position>,
    /// The datagram's payload as captured so far, each fragment at its
    /// offset, and how many bytes of it were captured.
    data: Vec<u8>,
    captured: usize,
    tunnel: Option<Tunnel>,
    /// Payload bytes of the fragments seen, and the datagram's payload
    /// length once its last fragment came.
    received: usize,
    total: Option<usize>,
    fragments: u64,
}

/// An IP datagram's payload is at most this long.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams held at most; the oldest is let go past it.
const MAX_PENDING: usize = 1024;

impl Defrag {
    pub fn new() -> Defrag {
        Defrag::default()
    }

    /// What is left at the end of the file: the first fragments of
    /// datagrams never completed go to `out` (with what they carry, at
    /// their own position); the number of fragments whose datagram had no
    /// first fragment is returned.
    pub fn finish(self, out: &mut dyn FnMut(Position, TcpSegment<'_>)) -> u64 {
        let mut orphans = 0;
        for p in self.pending {
            orphans += release(p, &mut |at, seg| out(at, seg));
        }
        orphans
    }
}

/// Hands on a pending datagram's first fragment, if it has one; returns
/// the number of fragments counted to nothing otherwise.
fn release(p: Pending, out: &mut dyn FnMut(Position, TcpSegment<'_>)) -> u64 {
    let Some(at) = p.first else {
        return p.fragments;
    };
    let (src, dst, _) = p.key;
    let declared = p.total.unwrap_or(p.captured);
    // Checked only when every byte was captured (no overlap, no snaplen).
    let whole = p.total == Some(p.captured) && p.data.len() == p.captured;
    if let Ok(seg) = tcp_from(src, dst, declared, &p.data, !whole, p.tunnel) {
        out(at, seg);
    }
    0
}

/// An IPv4 header's addresses, the payload length it declares (past any
/// options) and its fragment fields; `ip` is the whole packet.
fn ipv4_fields(ip: &[u8], v4: &LaxIpv4Slice) -> (IpAddr, IpAddr, usize, Fragment) {
    let header = v4.header();
    let payload = v4.payload();
    let header_len = usize::from(header.ihl()) * 4;
    let total = usize::from(header.total_len());
    let ext = offset_in(ip, payload.payload).saturating_sub(header_len);
    // A zero total length (TSO) or a nonsense one: trust the slice.
    let declared = if total >= header_len + ext && total != 0 {
        total - header_len - ext
    } else {
        payload.payload.len()
    };
    let fragment = Fragment {
        id: u32::from(header.identification()),
        offset: usize::from(header.fragments_offset().value()) * 8,
        more: header.more_fragments(),
    };
    (
        IpAddr::V4(Ipv4Addr::from(header.source())),
        IpAddr::V4(Ipv4Addr::from(header.destination())),
        declared,
        fragment,
    )
}

/// An IPv6 header's addresses, the payload length it declares (past its
/// extension headers) and its fragment header's fields, if any; `ip` is the
/// whole packet.
fn ipv6_fields(ip: &[u8], v6: &LaxIpv6Slice) -> (IpAddr, IpAddr, usize, Fragment) {
    let header = v6.header();
    let payload = v6.payload();
    let declared_total = usize::from(header.payload_length());
    let ext = offset_in(ip, payload.payload).saturating_sub(etherparse::Ipv6Header::LEN);
    let declared = if declared_total != 0 && declared_total >= ext {
        declared_total - ext
    } else {
        payload.payload.len()
    };
    let fragment = v6
        .extensions()
        .clone()
        .into_iter()
        .find_map(|e| match e {
            Ipv6ExtensionSlice::Fragment(f) => Some(Fragment {
                id: f.identification(),
                offset: usize::from(f.fragment_offset().value()) * 8,
                more: f.more_fragments(),
            }),
            _ => None,
        })
        .unwrap_or(Fragment {
            id: 0,
            offset: 0,
            more: false,
        });
    (
        IpAddr::V6(Ipv6Addr::from(header.source())),
        IpAddr::V6(Ipv6Addr::from(header.destination())),
        declared,
        fragment,
    )
}

/// A fragment of a datagram: identification, byte offset, more to come.
struct Fragment {
    id: u32,
    offset: usize,
    more: bool,
}

struct Decap<'a, 'o> {
    depth: u8,
    tunnel: Option<Tunnel>,
    defrag: Option<&'a mut Defrag>,
    out: Out<'a, 'o>,
}

impl<'a> Decap<'a, '_> {
    fn skip(&mut self, skip: Skip) {
        self.out.send(Err(skip));
    }

    /// Enters one more layer; false (and a malformed frame) past the limit.
    fn deeper(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.skip(Skip::Malformed);
            return false;
        }
        true
    }

    /// Records the tunnel unless an outer one is known already.
    fn enter(&mut self, kind: TunnelKind, outer: (IpAddr, IpAddr)) {
        if self.tunnel.is_none() {
            self.tunnel = Some(Tunnel {
                kind,
                outer_src: outer.0,
                outer_dst: outer.1,
            });
        }
    }

    fn network(&mut self, net: Network<'a>) {
        match net {
            Network::EtherType(t, payload) => self.ether_type(t, payload),
            Network::Ip(ip) => self.ip(ip),
            Network::Ppp(frame) => self.ppp(frame),
            Network::Ethernet(frame) => self.ethernet(frame),
        }
    }

    fn ethernet(&mut self, frame: &'a [u8]) {
        match link::ethernet(frame) {
            Ok((t, payload)) => self.ether_type(t, payload),
            Err(skip) => self.skip(skip),
        }
    }

    fn ether_type(&mut self, ether_type: u16, payload: &'a [u8]) {
        if !self.deeper() {
            return;
        }
        match ether_type {
            ETHER_TYPE_IPV4 | ETHER_TYPE_IPV6 => self.ip(payload),
            ether::MPLS_UNICAST | ether::MPLS_MULTICAST => self.mpls(payload),
            ether::PPPOE_SESSION => match payload.get(ether::PPPOE_HEADER_LEN..) {
                Some(ppp) => self.ppp(ppp),
                None => self.skip(Skip::Truncated),
            },
            ether::TRANSPARENT_BRIDGING => self.ethernet(payload),
            _ => self.skip(Skip::NotIp),
        }
    }

    fn ppp(&mut self, frame: &'a [u8]) {
        let (proto, payload) = match link::ppp_frame(frame) {
            Ok(p) => p,
            Err(skip) => return self.skip(skip),
        };
        match proto {
            link::ppp::IPV4 | link::ppp::IPV6 => self.ip(payload),
            link::ppp::MPLS_UNICAST | link::ppp::MPLS_MULTICAST => self.mpls(payload),
            // LCP, IPCP, CHAP, …: link control, like ARP.
            _ => self.skip(Skip::NotIp),
        }
    }

    /// An MPLS label stack (RFC 3032) down to its bottom, then IP by its
    /// version nibble, or an Ethernet pseudowire after a zero control word.
    fn mpls(&mut self, mut bytes: &'a [u8]) {
        for _ in 0..MAX_LABELS {
            let Some(entry) = bytes.get(..mpls::ENTRY_LEN) else {
                return self.skip(Skip::Truncated);
            };
            let bottom = entry[mpls::BOTTOM_BYTE] & mpls::BOTTOM_BIT != 0;
            bytes = &bytes[mpls::ENTRY_LEN..];
            if bottom {
                return match bytes.first().map(|b| b >> 4) {
                    Some(4 | 6) => self.ip(bytes),
                    Some(0) => match bytes.get(mpls::CONTROL_WORD_LEN..) {
                        Some(eth) => self.ethernet(eth),
                        None => self.skip(Skip::Truncated),
                    },
                    Some(n) => self.skip(Skip::Unopened("MPLS payload starting with", n.into())),
                    None => self.skip(Skip::Truncated),
                };
            }
        }
        self.skip(Skip::Malformed);
    }

    fn ip(&mut self, ip: &'a [u8]) {
        if !self.deeper() {
            return;
        }
        let Ok((slice, _ext_err)) = LaxIpSlice::from_slice(ip) else {
            return self.skip(match ip.first().map(|b| b >> 4) {
                Some(4 | 6) | None => Skip::Truncated,
                Some(_) => Skip::Malformed,
            });
        };
        let (src, dst, declared, fragment) = match &slice {
            LaxIpSlice::Ipv4(v4) => ipv4_fields(ip, v4),
            LaxIpSlice::Ipv6(v6) => ipv6_fields(ip, v6),
        };
        let payload = slice.payload();
        let outer = (src, dst);
        if payload.fragmented {
            if payload.ip_number != IpNumber::TCP {
                return self.skip(Skip::NotTcp);
            }
            return self.fragment(src, dst, declared, payload.payload, fragment);
        }
        let bytes = payload.payload;
        match payload.ip_number {
            IpNumber::TCP => self.tcp(src, dst, declared, bytes, false),
            IpNumber::IPV4 => {
                self.enter(TunnelKind::IpInIp, outer);
                self.ip(bytes);
            }
            IpNumber::IPV6 => {
                self.enter(TunnelKind::Ipv6InIp, outer);
                self.ip(bytes);
            }
            IpNumber::GRE => self.gre(outer, bytes),
            IpNumber::UDP => self.udp(outer, bytes),
            _ => self.skip(Skip::NotTcp),
        }
    }

    fn tcp(&mut self, src: IpAddr, dst: IpAddr, declared: usize, bytes: &'a [u8], fragment: bool) {
        let segment = tcp_from(src, dst, declared, bytes, fragment, self.tunnel);
        self.out.send(segment);
    }

    /// A fragment of a TCP datagram (`len` payload bytes, `bytes` of them
    /// captured). The first holds the whole TCP header (RFC 1858).
    fn fragment(&mut self, src: IpAddr, dst: IpAddr, len: usize, bytes: &'a [u8], f: Fragment) {
        let tunnel = self.tunnel;
        let Some(defrag) = self.defrag.as_deref_mut() else {
            return if f.offset == 0 {
                self.tcp(src, dst, bytes.len(), bytes, true)
            } else {
                self.skip(Skip::Fragment)
            };
        };
        let key = (src, dst, f.id);
        let i = match defrag.pending.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if defrag.pending.len() >= MAX_PENDING {
                    if let Some(old) = defrag.pending.pop_front() {
                        let out = &mut self.out;
                        if release(old, &mut |_, seg| out.send_held(seg)) > 0 {
                            out.send(Err(Skip::Fragment));
                        }
                    }
                }
                defrag.pending.push_back(Pending {
                    key,
                    first: None,
                    data: Vec::new(),
                    captured: 0,
                    tunnel,
                    received: 0,
                    total: None,
                    fragments: 0,
                });
                defrag.pending.len() - 1
            }
        };
        let at = defrag.at;
        let p = &mut defrag.pending[i];
        p.received += len;
        p.fragments += 1;
        if !f.more {
            p.total = Some(f.offset + len);
        }
        if f.offset == 0 {
            p.first = Some(at);
        }
        let end = (f.offset + bytes.len()).min(MAX_DATAGRAM);
        if let Some(part) = bytes.get(..end.saturating_sub(f.offset)) {
            if p.data.len() < end {
                p.data.resize(end, 0);
            }
            p.data[f.offset..end].copy_from_slice(part);
            p.captured += part.len();
        }
        if p.first.is_some() && p.total.is_some_and(|t| p.received >= t) {
            if let Some(done) = defrag.pending.remove(i) {
                let out = &mut self.out;
                release(done, &mut |_, seg| out.send_held(seg));
            }
        }
    }

    /// GRE (RFC 2784, RFC 2890; version 1 is PPTP's, RFC 2637).
    fn gre(&mut self, outer: (IpAddr, IpAddr), bytes: &'a [u8]) {
        let (Some(flags), Some(proto)) = (
            link::read_u16(bytes, gre::FLAGS),
            link::read_u16(bytes, gre::PROTOCOL),
        ) else {
            return self.skip(Skip::Truncated);
        };
        let mut at = gre::HEADER_LEN;
        for bit in [
            gre::CHECKSUM | gre::ROUTING,
            gre::KEY,
            gre::SEQUENCE,
            gre::ACK,
        ] {
            if flags & bit != 0 {
                at += gre::OPTION_LEN;
            }
        }
        if flags & gre::ROUTING != 0 || flags & gre::VERSION > 1 {
            return self.skip(Skip::Unopened("GRE version/routing flags", flags.into()));
        }
        let Some(payload) = bytes.get(at..) else {
            return self.skip(Skip::Truncated);
        };
        match proto {
            gre::ERSPAN_II => {
                self.enter(TunnelKind::Erspan, outer);
                // Type I has no ERSPAN header and no GRE sequence number.
                let skip = if flags & gre::SEQUENCE != 0 {
                    erspan::TYPE_II_LEN
                } else {
                    0
                };
                match payload.get(skip..) {
                    Some(eth) => self.ethernet(eth),
                    None => self.skip(Skip::Truncated),
                }
            }
            gre::ERSPAN_III => {
                self.enter(TunnelKind::Erspan, outer);
                let Some(&last) = payload.get(erspan::TYPE_III_LEN - 1) else {
                    return self.skip(Skip::Truncated);
                };
                let mut skip = erspan::TYPE_III_LEN;
                if last & erspan::TYPE_III_O_BIT != 0 {
                    skip += erspan::PLATFORM_SUBHEADER_LEN;
                }
                match payload.get(skip..) {
                    Some(eth) => self.ethernet(eth),
                    None => self.skip(Skip::Truncated),
                }
            }
            gre::WCCP => {
                self.enter(TunnelKind::Wccp, outer);
                // Version 2 puts a 4-byte redirect header before the IP
                // packet; version 1 does not (Wireshark tells them apart the
                // same way).
                let ip = if payload.first().is_some_and(|b| b >> 4 == 4) {
                    payload
                } else {
                    payload.get(gre::WCCP_REDIRECT_LEN..).unwrap_or(&[])
                };
                self.ip(ip);
            }
            gre::PPP => {
                self.enter(TunnelKind::Pptp, outer);
                self.ppp(payload);
            }
            ETHER_TYPE_IPV4
            | ETHER_TYPE_IPV6
            | ether::TRANSPARENT_BRIDGING
            | ether::MPLS_UNICAST
            | ether::MPLS_MULTICAST => {
                self.enter(TunnelKind::Gre, outer);
                self.ether_type(proto, payload);
            }
            other => self.skip(Skip::Unopened("GRE protocol", other.into())),
        }
    }

    fn udp(&mut self, outer: (IpAddr, IpAddr), bytes: &'a [u8]) {
        let (Some(sport), Some(dport)) = (
            link::read_u16(bytes, udp::SRC_PORT),
            link::read_u16(bytes, udp::DST_PORT),
        ) else {
            return self.skip(Skip::Truncated);
        };
        let payload = &bytes[udp::HEADER_LEN.min(bytes.len())..];
        let port = |p: u16| dport == p || sport == p;
        if port(udp::VXLAN) {
            self.enter(TunnelKind::Vxlan, outer);
            match payload.get(udp::VXLAN_HEADER_LEN..) {
                Some(eth) => self.ethernet(eth),
                None => self.skip(Skip::Truncated),
            }
        } else if port(udp::GENEVE) {
            self.enter(TunnelKind::Geneve, outer);
            let (Some(&first), Some(proto)) = (
                payload.first(),
                link::read_u16(payload, udp::GENEVE_PROTOCOL),
            ) else {
                return self.skip(Skip::Truncated);
            };
            let len = udp::GENEVE_HEADER_LEN + usize::from(first & udp::GENEVE_OPT_LEN_MASK) * 4;
            match payload.get(len..) {
                Some(inner) => self.ether_type(proto, inner),
                None => self.skip(Skip::Truncated),
            }
        } else if port(udp::SFLOW) {
            self.sflow(outer, payload);
        } else {
            self.skip(Skip::NotTcp);
        }
    }

    /// sFlow version 5: the raw packet headers of its flow samples.
    fn sflow(&mut self, outer: (IpAddr, IpAddr), data: &'a [u8]) {
        let mut r = Xdr { bytes: data };
        let Some(version) = r.u32() else {
            return self.skip(Skip::Truncated);
        };
        if version != sflow::VERSION {
            return self.skip(Skip::Unopened("sFlow version", version));
        }
        let agent_len = match r.u32() {
            Some(1) => 4,
            Some(2) => 16,
            _ => return self.skip(Skip::Malformed),
        };
        // Agent address, sub-agent id, sequence number, uptime.
        let (Some(_), Some(samples)) = (r.take(agent_len + 12), r.u32()) else {
            return self.skip(Skip::Truncated);
        };
        let before = self.tunnel;
        let mut any = false;
        for _ in 0..samples.min(sflow::MAX_SAMPLES) {
            let (Some(format), Some(body)) = (r.u32(), r.opaque()) else {
                break;
            };
            let mut s = Xdr { bytes: body };
            let fixed = match format {
                sflow::FLOW_SAMPLE => sflow::FLOW_SAMPLE_FIXED,
                sflow::EXPANDED_FLOW_SAMPLE => sflow::EXPANDED_FLOW_SAMPLE_FIXED,
                _ => continue,
            };
            let (Some(_), Some(records)) = (s.take(fixed), s.u32()) else {
                continue;
            };
            for _ in 0..records.min(sflow::MAX_SAMPLES) {
                let (Some(format), Some(record)) = (s.u32(), s.opaque()) else {
                    break;
                };
                if format != sflow::RAW_PACKET_HEADER {
                    continue;
                }
                let mut h = Xdr { bytes: record };
                // Protocol, frame length, stripped bytes, then the header.
                let (Some(proto), Some(_), Some(header)) = (h.u32(), h.take(8), h.opaque()) else {
                    continue;
                };
                any = true;
                self.tunnel = before;
                self.enter(TunnelKind::Sflow, outer);
                let depth = self.depth;
                match proto {
                    sflow::PROTO_ETHERNET => self.ethernet(header),
                    sflow::PROTO_IPV4 | sflow::PROTO_IPV6 => self.ip(header),
                    other => self.skip(Skip::Unopened("sFlow header protocol", other)),
                }
                self.depth = depth;
            }
        }
        self.tunnel = before;
        if !any {
            self.skip(Skip::NotTcp);
        }
    }
}

/// The segment in `bytes` (the TCP header and what was captured after it),
/// `declared` bytes long by the IP header.
fn tcp_from(
    src: IpAddr,
    dst: IpAddr,
    declared: usize,
    bytes: &[u8],
    fragment: bool,
    tunnel: Option<Tunnel>,
) -> Result<TcpSegment<'_>, Skip> {
    let view = match TcpView::new_lax(bytes) {
        Ok(view) => view,
        Err(TcpError::Truncated) => return Err(Skip::Truncated),
        Err(TcpError::BadDataOffset) => return Err(Skip::Malformed),
    };
    let header_len = view.header_len();
    let payload_len = declared.saturating_sub(header_len);
    let checksum = if !fragment && declared == bytes.len() {
        tcp::verify_checksum(src, dst, bytes)
    } else {
        Checksum::Unchecked
    };
    let payload = view.payload();
    Ok(TcpSegment {
        src,
        dst,
        src_port: view.src_port(),
        dst_port: view.dst_port(),
        seq: view.seq_number(),
        ack: view.ack_number(),
        flags: view.flags(),
        window: view.window(),
        options: view.options(),
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        payload: &payload[..payload.len().min(payload_len)],
        checksum,
        header_cut: view.header_cut(),
        tunnel,
    })
}

/// A reader of XDR (RFC 4506) as sFlow writes it: big-endian words,
/// opaque data padded to 4 bytes.
struct Xdr<'a> {
    bytes: &'a [u8],
}

impl<'a> Xdr<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A length word, the data, its padding.
    fn opaque(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        let data = self.bytes.get(..len)?;
        let padded = len.checked_add(3)? & !3;
        self.bytes = self.bytes.get(padded..).unwrap_or(&[]);
        Some(data)
    }
}

/// EtherTypes opened here besides IP.
mod ether {
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// Version, type, code, session id, length.
    pub const PPPOE_HEADER_LEN: usize = 6;
    /// An Ethernet frame (GRE's NVGRE/TEB, Geneve's).
    pub const TRANSPARENT_BRIDGING: u16 = 0x6558;
}

/// MPLS label stack entries (RFC 3032 §2.1).
mod mpls {
    pub const ENTRY_LEN: usize = 4;
    pub const BOTTOM_BYTE: usize = 2;
    pub const BOTTOM_BIT: u8 = 0x01;
    /// The pseudowire control word (RFC 4385) before an Ethernet frame.
    pub const CONTROL_WORD_LEN: usize = 4;
}

/// GRE (RFC 2784, RFC 2890, RFC 2637).
mod gre {
    use std::ops::Range;
    pub const FLAGS: Range<usize> = 0..2;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const HEADER_LEN: usize = 4;
    pub const CHECKSUM: u16 = 0x8000;
    pub const ROUTING: u16 = 0x4000;
    pub const KEY: u16 = 0x2000;
    pub const SEQUENCE: u16 = 0x1000;
    /// PPTP's acknowledgment number present (version 1).
    pub const ACK: u16 = 0x0080;
    pub const VERSION: u16 = 0x0007;
    /// Each optional field (checksum+reserved, key, sequence, ack).
    pub const OPTION_LEN: usize = 4;
    pub const ERSPAN_II: u16 = 0x88BE;
    pub const ERSPAN_III: u16 = 0x22EB;
    pub const WCCP: u16 = 0x883E;
    pub const WCCP_REDIRECT_LEN: usize = 4;
    pub const PPP: u16 = 0x880B;
}

/// ERSPAN headers (draft-foschiano-erspan).
mod erspan {
    pub const TYPE_II_LEN: usize = 8;
    pub const TYPE_III_LEN: usize = 12;
    /// The last bit of the type III header: a platform subheader follows.
    pub const TYPE_III_O_BIT: u8 = 0x01;
    pub const PLATFORM_SUBHEADER_LEN: usize = 8;
}

/// UDP and the tunnels found by port.
mod udp {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const HEADER_LEN: usize = 8;
    pub const VXLAN: u16 = 4789;
    pub const VXLAN_HEADER_LEN: usize = 8;
    pub const GENEVE: u16 = 6081;
    pub const GENEVE_HEADER_LEN: usize = 8;
    pub const GENEVE_PROTOCOL: Range<usize> = 2..4;
    /// The options' length in 4-byte words.
    pub const GENEVE_OPT_LEN_MASK: u8 = 0x3F;
    pub const SFLOW: u16 = 6343;
}

/// sFlow version 5 (sflow.org/sflow_version_5.txt).
mod sflow {
    pub const VERSION: u32 = 5;
    /// Enterprise 0, format 1 and 3.
    pub const FLOW_SAMPLE: u32 = 1;
    pub const EXPANDED_FLOW_SAMPLE: u32 = 3;
    /// Sequence, source id, rate, pool, drops, input, output.
    pub const FLOW_SAMPLE_FIXED: usize = 28;
    /// Sequence, source id type and index, rate, pool, drops, input
    /// format and value, output format and value.
    pub const EXPANDED_FLOW_SAMPLE_FIXED: usize = 40;
    /// Flow record: enterprise 0, format 1.
    pub const RAW_PACKET_HEADER: u32 = 1;
    pub const PROTO_ETHERNET: u32 = 1;
    pub const PROTO_IPV4: u32 = 11;
    pub const PROTO_IPV6: u32 = 12;
    /// Samples (and records per sample) read at most per datagram.
    pub const MAX_SAMPLES: u32 = 64;
}

/// How far `inner` starts into `outer` (both from the same buffer).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::link::linktype;
    use etherparse::PacketBuilder;

    fn ipv4_syn(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .tcp(40000, 8080, 1000, 64240)
            .syn()
            .options(&[
                etherparse::TcpOptionElement::MaximumSegmentSize(1460),
                etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
                etherparse::TcpOptionElement::WindowScale(7),
            ])
            .expect("options fit");
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("write");
        out
    }

    /// An outer IPv4 header (checksum left zero: not checked here).
    fn outer_ipv4(proto: u8, inner: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + inner.len()).expect("small");
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        v.extend_from_slice(inner);
        v
    }

    fn udp(dport: u16, inner: &[u8]) -> Vec<u8> {
        let len = u16::try_from(8 + inner.len()).expect("small");
        let mut v = 5555u16.to_be_bytes().to_vec();
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(inner);
        v
    }

    fn ethernet(ether_type: u16, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&ether_type.to_be_bytes());
        v.extend_from_slice(inner);
        v
    }

    fn all(link_type: u32, frame: &[u8]) -> Vec<Result<TcpSegment<'_>, Skip>> {
        let mut out = Vec::new();
        segments(link_type, frame, &mut |r| out.push(r));
        out
    }

    fn the_syn(seg: &TcpSegment<'_>) {
        assert_eq!((seg.src_port, seg.dst_port), (40000, 8080));
        assert_eq!(seg.seq, SeqNumber(1000));
        assert_eq!(seg.src, IpAddr::from([198, 18, 0, 2]));
    }

    #[test]
    fn decodes_a_whole_segment_with_a_good_checksum() {
        let ip = ipv4_syn(b"hi");
        let seg = tcp_segment(&ip).expect("tcp");
        the_syn(&seg);
        assert!(seg.flags.syn() && !seg.flags.ack());
        assert_eq!(seg.options.mss, Some(1460));
        assert_eq!(seg.payload_len, 2);
        assert_eq!(seg.checksum, Checksum::Good);
        assert!(!seg.header_cut);
        assert_eq!(seg.tunnel, None);
        let mut bad = ip.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(tcp_segment(&bad).expect("tcp").checksum, Checksum::Bad);
    }

    #[test]
    fn a_snaplen_cut_header_still_gives_the_fixed_fields() {
        let ip = ipv4_syn(&[0u8; 100]);
        // IPv4 20 + TCP fixed 20 + 2 option bytes.
        let seg = tcp_segment(&ip[..42]).expect("tcp");
        assert!(seg.header_cut);
        assert_eq!(seg.payload_len, 100);
        assert_eq!(seg.checksum, Checksum::Unchecked);
        assert_eq!(tcp_segment(&ip[..35]), Err(Skip::Truncated));
    }

    #[test]
    fn tunnels_are_opened_and_named() {
        let ip = ipv4_syn(b"");
        let eth = ethernet(0x0800, &ip);
        let mut gre_teb = vec![0, 0, 0x65, 0x58];
        gre_teb.extend_from_slice(&eth);
        let mut erspan2 = vec![0x10, 0, 0x88, 0xBE, 0, 0, 0, 7];
        erspan2.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        erspan2.extend_from_slice(&eth);
        let mut erspan3 = vec![0x10, 0, 0x22, 0xEB, 0, 0, 0, 7];
        erspan3.extend_from_slice(&[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        erspan3.extend_from_slice(&[0u8; 8]);
        erspan3.extend_from_slice(&eth);
        let mut wccp = vec![0, 0, 0x88, 0x3E, 0, 0, 0, 0];
        wccp.extend_from_slice(&ip);
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vxlan.extend_from_slice(&eth);
        let mut geneve = vec![0x01, 0, 0x08, 0x00, 0, 0, 1, 0, 1, 2, 3, 4];
        geneve.extend_from_slice(&ip);
        let cases = [
            (outer_ipv4(4, &ip), TunnelKind::IpInIp),
            (outer_ipv4(47, &gre_teb), TunnelKind::Gre),
            (outer_ipv4(47, &erspan2), TunnelKind::Erspan),
            (outer_ipv4(47, &erspan3), TunnelKind::Erspan),
            (outer_ipv4(47, &wccp), TunnelKind::Wccp),
            (outer_ipv4(17, &udp(4789, &vxlan)), TunnelKind::Vxlan),
            (outer_ipv4(17, &udp(6081, &geneve)), TunnelKind::Geneve),
        ];
        for (packet, kind) in cases {
            let seg = first_segment(linktype::RAW, &packet).expect("inner tcp");
            the_syn(&seg);
            assert_eq!(seg.checksum, Checksum::Good, "{kind:?}");
            let tunnel = seg.tunnel.expect("tunnel");
            assert_eq!(tunnel.kind, kind);
            assert_eq!(tunnel.outer_src, IpAddr::from([10, 0, 0, 1]));
        }
        let mut unknown = vec![0, 0, 0x12, 0x34];
        unknown.extend_from_slice(&ip);
        assert_eq!(
            all(linktype::RAW, &outer_ipv4(47, &unknown)),
            vec![Err(Skip::Unopened("GRE protocol", 0x1234))]
        );
    }

    #[test]
    fn mpls_ppp_and_vlan() {
        let ip = ipv4_syn(b"");
        let mut labels = vec![0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64];
        labels.extend_from_slice(&ip);
        let mut vlan = vec![0, 5, 0x88, 0x47];
        vlan.extend_from_slice(&labels);
        let frame = ethernet(0x8100, &vlan);
        the_syn(&first_segment(linktype::ETHERNET, &frame).expect("mpls in vlan"));
        let mut ppp = vec![0xFF, 0x03, 0x02, 0x81];
        ppp.extend_from_slice(&labels);
        the_syn(&first_segment(linktype::PPP, &ppp).expect("mpls in ppp"));
        let mut bad = vec![0, 0x01, 0x01, 64, 0x70];
        bad.extend_from_slice(&[0u8; 20]);
        assert_eq!(
            all(linktype::RAW, &outer_ipv4(4, &[]))
                .into_iter()
                .chain(all(linktype::ETHERNET, &ethernet(0x8847, &bad)))
                .collect::<Vec<_>>(),
            vec![
                Err(Skip::Truncated),
                Err(Skip::Unopened("MPLS payload starting with", 7))
            ]
        );
    }

    #[test]
    fn a_first_fragment_gives_its_segment_and_later_ones_are_counted() {
        let mut ip = ipv4_syn(&[7u8; 64]);
        // More fragments, offset 0: cut after 24 bytes of the TCP payload.
        ip[6] = 0x20;
        ip.truncate(20 + 32 + 24);
        ip[2..4].copy_from_slice(&(76u16).to_be_bytes());
        let seg = tcp_segment(&ip).expect("first fragment");
        the_syn(&seg);
        assert_eq!(seg.payload_len, 24);
        assert_eq!(seg.checksum, Checksum::Unchecked);
        ip[6] = 0x00;
        ip[7] = 7;
        assert_eq!(tcp_segment(&ip), Err(Skip::Fragment));
    }

    /// The SYN with 64 payload bytes cut in two fragments after 56 bytes
    /// of IP payload (the 32-byte TCP header and 24 bytes of data).
    fn fragments(id: u8) -> (Vec<u8>, Vec<u8>) {
        let ip = ipv4_syn(&[7u8; 64]);
        let mut first = ip[..20 + 56].to_vec();
        first[2..4].copy_from_slice(&76u16.to_be_bytes());
        first[5] = id;
        first[6] = 0x20;
        let mut second = ip[..20].to_vec();
        second.extend_from_slice(&ip[20 + 56..]);
        second[2..4].copy_from_slice(&(20u16 + 40).to_be_bytes());
        second[5] = id;
        second[7] = 56 / 8;
        (first, second)
    }

    fn reassembling(defrag: &mut Defrag, frame: u64, ip: &[u8]) -> Vec<(u64, u32)> {
        let mut got = Vec::new();
        let at = Position { frame, ts_ns: 0 };
        segments_reassembling(linktype::RAW, ip, defrag, at, &mut |r| {
            let seg = r.expect("no skip");
            got.push((frame, seg.payload_len));
        });
        got
    }

    #[test]
    fn fragmented_datagrams_are_handed_on_whole_when_complete() {
        let mut defrag = Defrag::new();
        let (first, second) = fragments(1);
        assert_eq!(reassembling(&mut defrag, 1, &first), vec![]);
        assert_eq!(reassembling(&mut defrag, 2, &second), vec![(2, 64)]);
        // In the other order too.
        let (first, second) = fragments(2);
        assert_eq!(reassembling(&mut defrag, 3, &second), vec![]);
        assert_eq!(reassembling(&mut defrag, 4, &first), vec![(4, 64)]);
        // Left over at the end: a first fragment alone is handed on with
        // what it carries; a later one alone is counted.
        let (first, _) = fragments(3);
        let (_, second) = fragments(4);
        assert_eq!(reassembling(&mut defrag, 5, &first), vec![]);
        assert_eq!(reassembling(&mut defrag, 6, &second), vec![]);
        let mut left = Vec::new();
        let orphans = defrag.finish(&mut |at, seg| left.push((at.frame, seg.payload_len)));
        assert_eq!(left, vec![(5, 24)]);
        assert_eq!(orphans, 1);
    }

    #[test]
    fn sflow_samples_give_every_sampled_segment() {
        let ip = ipv4_syn(b"");
        let eth = ethernet(0x0800, &ip);
        let word = |v: u32| v.to_be_bytes().to_vec();
        let mut record = [
            word(1),
            word(eth.len() as u32 + 4),
            word(4),
            word(eth.len() as u32),
        ]
        .concat();
        record.extend_from_slice(&eth);
        while record.len() % 4 != 0 {
            record.push(0);
        }
        let mut sample = vec![0u8; 28];
        sample.extend(word(1));
        sample.extend([word(1), word(record.len() as u32)].concat());
        sample.extend(&record);
        let mut dgram = [
            word(5),
            word(1),
            vec![10, 0, 0, 9],
            word(0),
            word(1),
            word(1),
        ]
        .concat();
        dgram.extend(word(2));
        for _ in 0..2 {
            dgram.extend([word(1), word(sample.len() as u32)].concat());
            dgram.extend(&sample);
        }
        let packet = outer_ipv4(17, &udp(6343, &dgram));
        let got = all(linktype::RAW, &packet);
        assert_eq!(got.len(), 2, "{got:?}");
        for seg in got {
            let seg = seg.expect("sampled tcp");
            the_syn(&seg);
            assert_eq!(seg.tunnel.map(|t| t.kind), Some(TunnelKind::Sflow));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for lt in [0, 1, 7, 9, 50, 101, 129, 178, 242] {
                segments(lt, &bytes, &mut |_| {});
            }
        }
    }
}
