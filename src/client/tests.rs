//! The client loop driven by a scripted peer behind the `Link` trait: no
//! privileges, no sockets.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::faults::ServerRetransmission;
use super::*;
use crate::wire::{
    ArpOp, ArpRepr, Flags, Frame6, NdpRepr, SeqNumber, TcpFrame, TcpOptions, UdpRepr,
};

const SERVER_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);
const CLIENT_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 2);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const IRS: SeqNumber = SeqNumber(7000);

/// How the scripted server behaves.
#[derive(Clone, Copy, Default)]
struct Script {
    /// Never answer the SYN.
    silent: bool,
    /// Answer the SYN with RST+ACK (nothing listens).
    refuse: bool,
    /// Answer the data with RST.
    reset_after_data: bool,
    /// Drop the first SYN (it is "lost on the way").
    lose_first_syn: bool,
    /// Send the SYN-ACK twice.
    duplicate_syn_ack: bool,
    /// The first SYN-ACK acknowledges the wrong number.
    wrong_ack_first: bool,
    /// Send the ACK of the client's FIN on the server's FIN (3-way close).
    fin_ack_together: bool,
    /// Never answer ARP.
    no_arp: bool,
    /// Close right after the reply (the server's FIN follows its data).
    close_first: bool,
    /// Answer the client's ACK of the reply with RST (SO_LINGER 0).
    rst_after_reply: bool,
    /// Only ACK the data; send the reply after the client's FIN, then FIN.
    reply_after_fin: bool,
    /// Send the SYN-ACK, the reply and the FIN twice, as a kernel does
    /// when the first copy went unacknowledged.
    resend: bool,
    /// Answer the SYN with ICMP destination unreachable of this code.
    icmp_unreachable: Option<u8>,
}

/// A kernel-like server, one scripted reaction per received frame.
struct FakePeer {
    script: Script,
    inbox: VecDeque<Vec<u8>>,
    sent: Vec<Frame>,
    syns_seen: usize,
    syn_acks_sent: usize,
    server_seq: SeqNumber,
    reply: Vec<u8>,
    server_fin_sent: bool,
    reset_sent: bool,
}

impl FakePeer {
    fn new(script: Script) -> FakePeer {
        FakePeer {
            script,
            inbox: VecDeque::new(),
            sent: Vec::new(),
            syns_seen: 0,
            syn_acks_sent: 0,
            server_seq: IRS,
            reply: b"HELLO".to_vec(),
            server_fin_sent: false,
            reset_sent: false,
        }
    }

    fn tcp(&mut self, to: &TcpFrame, flags: Flags, seq: SeqNumber, ack: SeqNumber, payload: &[u8]) {
        let seg = SegmentRepr {
            src_port: to.segment.dst_port,
            dst_port: to.segment.src_port,
            seq,
            ack,
            flags,
            window: 509,
            options: if flags.syn() {
                TcpOptions {
                    mss: Some(1460),
                    wscale: Some(7),
                    sack_permitted: true,
                    ..TcpOptions::default()
                }
            } else {
                TcpOptions::default()
            },
            payload: payload.to_vec(),
        };
        let ip = Ipv4Repr {
            src: SERVER_IP,
            dst: CLIENT_IP,
            ident: 0,
            ttl: 64,
        };
        let bytes = wire::emit_tcp(SERVER_MAC, CLIENT_MAC, &ip, &seg).unwrap();
        self.inbox.push_back(bytes);
    }

    fn react(&mut self, frame: Frame) {
        self.sent.push(frame.clone());
        match &frame {
            Frame::Arp { arp, .. } if arp.op == ArpOp::Request && !self.script.no_arp => {
                let reply = ArpRepr {
                    op: ArpOp::Reply,
                    sender_mac: SERVER_MAC,
                    // Whoever was asked for: the server, or a gateway.
                    sender_ip: arp.target_ip,
                    target_mac: arp.sender_mac,
                    target_ip: arp.sender_ip,
                };
                self.inbox
                    .push_back(wire::emit_arp(SERVER_MAC, arp.sender_mac, &reply));
            }
            Frame::Tcp(tcp) => {
                let seg = &tcp.segment;
                let client_next = seg.seq + seg.seq_len();
                if seg.flags.syn() {
                    self.syns_seen += 1;
                    if self.script.silent || (self.script.lose_first_syn && self.syns_seen == 1) {
                        return;
                    }
                    if let Some(code) = self.script.icmp_unreachable {
                        self.icmp_unreachable(frame.clone(), code);
                        return;
                    }
                    if self.script.refuse {
                        self.tcp(tcp, Flags::RST_ACK, SeqNumber(0), client_next, b"");
                        return;
                    }
                    if self.script.wrong_ack_first && self.syn_acks_sent == 0 {
                        self.syn_acks_sent += 1;
                        self.tcp(tcp, Flags::SYN_ACK, IRS, seg.seq + 99, b"");
                    }
                    self.syn_acks_sent += 1;
                    self.tcp(tcp, Flags::SYN_ACK, IRS, client_next, b"");
                    if self.script.duplicate_syn_ack || self.script.resend {
                        self.tcp(tcp, Flags::SYN_ACK, IRS, client_next, b"");
                    }
                    self.server_seq = IRS + 1;
                } else if !seg.payload.is_empty() {
                    if self.script.reset_after_data {
                        self.tcp(tcp, Flags::RST, self.server_seq, SeqNumber(0), b"");
                        return;
                    }
                    let reply = self.reply.clone();
                    self.tcp(tcp, Flags::ACK, self.server_seq, client_next, b"");
                    if self.script.reply_after_fin {
                        return;
                    }
                    self.send_reply(tcp, client_next, &reply);
                    if self.script.close_first {
                        self.send_fin(tcp, client_next);
                    }
                } else if seg.flags.fin() {
                    if self.server_fin_sent {
                        // Our FIN is out already: just ACK theirs.
                        self.tcp(tcp, Flags::ACK, self.server_seq, client_next, b"");
                        return;
                    }
                    if self.script.reply_after_fin {
                        self.tcp(tcp, Flags::ACK, self.server_seq, client_next, b"");
                        let reply = self.reply.clone();
                        self.send_reply(tcp, client_next, &reply);
                    } else if !self.script.fin_ack_together {
                        self.tcp(tcp, Flags::ACK, self.server_seq, client_next, b"");
                    }
                    self.send_fin(tcp, client_next);
                } else if self.script.rst_after_reply
                    && !self.reset_sent
                    && self.server_seq > IRS + 1
                    && seg.ack == self.server_seq
                {
                    // The client acknowledged the reply: abort.
                    self.reset_sent = true;
                    self.tcp(tcp, Flags::RST_ACK, self.server_seq, client_next, b"");
                }
            }
            Frame::Udp(udp) if !self.script.silent => {
                let reply = UdpRepr {
                    src_port: udp.datagram.dst_port,
                    dst_port: udp.datagram.src_port,
                    payload: self.reply.clone(),
                };
                let ip = Ipv4Repr {
                    src: SERVER_IP,
                    dst: CLIENT_IP,
                    ident: 0,
                    ttl: 64,
                };
                let bytes = wire::emit_udp(SERVER_MAC, CLIENT_MAC, &ip, &reply).unwrap();
                self.inbox.push_back(bytes);
            }
            _ => {}
        }
    }

    fn send_reply(&mut self, to: &TcpFrame, ack: SeqNumber, reply: &[u8]) {
        self.tcp(to, Flags::PSH_ACK, self.server_seq, ack, reply);
        if self.script.resend {
            self.tcp(to, Flags::PSH_ACK, self.server_seq, ack, reply);
        }
        self.server_seq = self.server_seq + reply.len();
    }

    fn send_fin(&mut self, to: &TcpFrame, ack: SeqNumber) {
        self.tcp(to, Flags::FIN_ACK, self.server_seq, ack, b"");
        if self.script.resend {
            self.tcp(to, Flags::FIN_ACK, self.server_seq, ack, b"");
        }
        self.server_seq = self.server_seq + 1;
        self.server_fin_sent = true;
    }

    /// Every TCP segment the client delivered, in order.
    fn client_segments(&self) -> Vec<SegmentRepr> {
        self.sent
            .iter()
            .filter_map(|f| match f {
                Frame::Tcp(tcp) => Some(tcp.segment.clone()),
                _ => None,
            })
            .collect()
    }

    /// An ICMP destination unreachable quoting the client's segment.
    fn icmp_unreachable(&mut self, frame: Frame, code: u8) {
        let Frame::Tcp(tcp) = frame else { return };
        let sent = wire::emit_tcp(CLIENT_MAC, SERVER_MAC, &tcp.ip, &tcp.segment).unwrap();
        let quote = &sent[wire::ETHERNET_HEADER_LEN..wire::ETHERNET_HEADER_LEN + 28];
        let builder =
            etherparse::PacketBuilder::ethernet2(SERVER_MAC.octets(), CLIENT_MAC.octets())
                .ipv4(SERVER_IP.octets(), CLIENT_IP.octets(), 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::from_values(code, 0).unwrap(),
                ));
        let mut out = Vec::new();
        builder.write(&mut out, quote).unwrap();
        self.inbox.push_back(out);
    }

    /// The flags of every TCP segment the client sent, in order.
    fn client_flags(&self) -> Vec<String> {
        self.sent
            .iter()
            .filter_map(|f| match f {
                Frame::Tcp(tcp) => Some(tcp.segment.flags.to_string()),
                _ => None,
            })
            .collect()
    }
}

impl Link for FakePeer {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let parsed = wire::parse(frame).map_err(io::Error::other)?;
        if let Frame::Tcp(tcp) = &parsed {
            assert!(tcp.checksums_ok, "the client sent a bad checksum");
            assert_eq!(tcp.dst_mac, SERVER_MAC, "segments go to the server's MAC");
        }
        if let Frame::Udp(udp) = &parsed {
            assert!(udp.checksums_ok, "the client sent a bad UDP checksum");
            assert_eq!(udp.dst_mac, SERVER_MAC, "datagrams go to the server's MAC");
        }
        self.react(parsed);
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        if let Some(frame) = self.inbox.pop_front() {
            return Ok(Some(frame));
        }
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep((deadline - now).min(Duration::from_millis(1)));
        }
        Ok(None)
    }

    fn mac(&self) -> MacAddr {
        CLIENT_MAC
    }
}

/// Keeps what the client reported.
#[derive(Default)]
struct Recorder {
    frames: Vec<FrameRecord>,
    /// The state changes no frame carried.
    changes: Vec<(State, State)>,
}

impl Observer for Recorder {
    fn frame(&mut self, record: FrameRecord) {
        self.frames.push(record);
    }
    fn state_changed(&mut self, _at: Instant, changes: Vec<(State, State)>) {
        self.changes.extend(changes);
    }
}

impl Recorder {
    /// The flags of every segment the client recorded as leaving (dropped
    /// ones included), in order.
    fn sent_flags(&self) -> Vec<String> {
        self.frames
            .iter()
            .filter(|r| r.dir == Direction::ClientToServer)
            .filter_map(|r| match &r.kind {
                FrameKind::Segment { segment, .. } => Some(segment.flags.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The notes of every segment (sent and received), in order.
    fn segment_notes(&self) -> Vec<Note> {
        self.frames
            .iter()
            .filter_map(|r| match &r.kind {
                FrameKind::Segment { note, .. } => Some(*note),
                _ => None,
            })
            .collect()
    }

    /// Every client state change, from frames and notes, in order.
    fn client_path(&self) -> Vec<State> {
        let mut path = vec![State::Closed];
        for record in &self.frames {
            if let FrameKind::Segment { changes, .. } = &record.kind {
                path.extend(changes.iter().map(|(_, to)| *to));
            }
        }
        path
    }
}

fn params() -> ClientParams {
    let mut conn = tcp::Config::new(40000, 8080, SeqNumber(1000));
    conn.time_wait = Duration::from_millis(20);
    conn.initial_rto = Duration::from_millis(30);
    conn.min_rto = Duration::from_millis(30);
    conn.fallback_rto = Duration::from_millis(90);
    ClientParams {
        local_ip: CLIENT_IP.into(),
        remote_ip: SERVER_IP.into(),
        conn,
        data: vec![b"hello".to_vec()],
        expect_reply: 5,
        timeout: Duration::from_secs(5),
        server_mac: None,
        wait_for_peer_close: false,
    }
}

/// A run: what the client does, the faults injected, and whether it is
/// the UDP exchange.
struct Setup {
    params: ClientParams,
    faults: Faults,
    udp: bool,
}

impl From<ClientParams> for Setup {
    fn from(params: ClientParams) -> Setup {
        Setup {
            params,
            faults: Faults::default(),
            udp: false,
        }
    }
}

impl std::ops::Deref for Setup {
    type Target = ClientParams;
    fn deref(&self) -> &ClientParams {
        &self.params
    }
}

impl std::ops::DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut ClientParams {
        &mut self.params
    }
}

impl Setup {
    fn run<L: Link, O: Observer>(
        self,
        link: &mut L,
        observer: &mut O,
    ) -> Result<Outcome, ClientError> {
        let client = Client::new(link, observer, self.params, Instant::now()).faults(self.faults);
        if self.udp {
            client.run_datagrams()
        } else {
            client.run()
        }
    }
}

fn run(
    script: Script,
    setup: impl Into<Setup>,
) -> (Result<Outcome, ClientError>, FakePeer, Recorder) {
    let mut peer = FakePeer::new(script);
    let mut recorder = Recorder::default();
    let result = setup.into().run(&mut peer, &mut recorder);
    (result, peer, recorder)
}

#[test]
fn test_three_way_handshake_data_and_four_way_teardown() {
    let (result, peer, recorder) = run(Script::default(), params());
    let outcome = result.unwrap();
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "FIN, ACK", "ACK"]
    );
    assert_eq!(outcome.received, b"HELLO");
    assert_eq!(outcome.bytes_sent, 5);
    assert_eq!(outcome.retransmissions, 0);
    assert!(outcome.handshake_rtt.is_some());
    assert_eq!(outcome.final_state, Some(State::Closed));
    assert_eq!(
        recorder.client_path(),
        [
            State::Closed,
            State::SynSent,
            State::Established,
            State::FinWait1,
            State::FinWait2,
            State::TimeWait
        ]
    );
    assert_eq!(recorder.changes, [(State::TimeWait, State::Closed)]);
    // ARP first: request out, reply in.
    assert!(matches!(recorder.frames[0].kind, FrameKind::Arp(ref a) if a.op == ArpOp::Request));
    assert!(matches!(recorder.frames[1].kind, FrameKind::Arp(ref a) if a.op == ArpOp::Reply));
}

#[test]
fn three_segment_close_goes_straight_to_time_wait() {
    let script = Script {
        fin_ack_together: true,
        ..Script::default()
    };
    let (result, peer, _) = run(script, params());
    result.unwrap();
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "FIN, ACK", "ACK"]
    );
}

#[test]
fn a_lost_syn_is_retransmitted() {
    let script = Script {
        lose_first_syn: true,
        ..Script::default()
    };
    let (result, peer, _) = run(script, params());
    let outcome = result.unwrap();
    assert_eq!(outcome.retransmissions, 1);
    assert_eq!(peer.syns_seen, 2);
    assert_eq!(peer.client_flags()[..2], ["SYN", "SYN"]);
}

#[test]
fn a_silent_server_gets_backed_off_syns_then_a_timeout_in_syn_sent() {
    let script = Script {
        silent: true,
        ..Script::default()
    };
    let mut p = params();
    // RTO 30 ms doubling: SYNs at 0, 30, 90, 210 ms; give up at 300 ms.
    p.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let (result, peer, recorder) = run(script, p);
    let elapsed = start.elapsed();
    assert!(
        matches!(
            result,
            Err(ClientError::Timeout {
                state: State::SynSent,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(peer.syns_seen, 4);
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2));
    // The gaps between SYNs double (RFC 6298 §5.5).
    let syn_times: Vec<Instant> = recorder
        .frames
        .iter()
        .filter(|r| matches!(&r.kind, FrameKind::Segment { segment, .. } if segment.flags.syn()))
        .map(|r| r.at)
        .collect();
    let gaps: Vec<Duration> = syn_times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[1] > gaps[0] + Duration::from_millis(15), "{gaps:?}");
    assert!(gaps[2] > gaps[1] + Duration::from_millis(30), "{gaps:?}");
}

#[test]
fn a_refused_syn_is_reported_as_refused() {
    let script = Script {
        refuse: true,
        ..Script::default()
    };
    let (result, _, _) = run(script, params());
    assert!(
        matches!(result, Err(ClientError::Refused { .. })),
        "{result:?}"
    );
}

#[test]
fn a_reset_after_data_names_the_state() {
    let script = Script {
        reset_after_data: true,
        ..Script::default()
    };
    let (result, _, _) = run(script, params());
    assert!(
        matches!(
            result,
            Err(ClientError::Reset {
                state: State::Established
            })
        ),
        "{result:?}"
    );
}

#[test]
fn a_duplicate_syn_ack_is_answered_with_an_ack() {
    let script = Script {
        duplicate_syn_ack: true,
        ..Script::default()
    };
    let (result, peer, _) = run(script, params());
    result.unwrap();
    // The duplicate is read after the data went out; it gets its own ACK
    // (RFC 9293 §3.10.7.4: an unacceptable segment is answered with an ACK).
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "ACK", "FIN, ACK", "ACK"]
    );
}

#[test]
fn a_syn_ack_with_a_wrong_ack_gets_a_reset_then_the_handshake_completes() {
    let script = Script {
        wrong_ack_first: true,
        ..Script::default()
    };
    let (result, peer, _) = run(script, params());
    result.unwrap();
    assert_eq!(peer.client_flags()[..3], ["SYN", "RST", "ACK"]);
}

#[test]
fn no_arp_reply_is_no_answer() {
    let script = Script {
        no_arp: true,
        ..Script::default()
    };
    let mut p = params();
    p.timeout = Duration::from_millis(50);
    let (result, peer, _) = run(script, p);
    assert!(
        matches!(result, Err(ClientError::NoArpReply { .. })),
        "{result:?}"
    );
    assert!(
        peer.client_flags().is_empty(),
        "no SYN without the server's MAC"
    );
}

#[test]
fn the_client_answers_arp_for_its_address() {
    let mut peer = FakePeer::new(Script::default());
    let request = ArpRepr {
        op: ArpOp::Request,
        sender_mac: SERVER_MAC,
        sender_ip: SERVER_IP,
        target_mac: MacAddr::zero(),
        target_ip: CLIENT_IP,
    };
    peer.inbox
        .push_back(wire::emit_arp(SERVER_MAC, MacAddr::broadcast(), &request));
    let mut recorder = Recorder::default();
    Client::new(&mut peer, &mut recorder, params(), Instant::now())
        .run()
        .unwrap();
    let replies: Vec<&ArpRepr> = peer
        .sent
        .iter()
        .filter_map(|f| match f {
            Frame::Arp { arp, .. } if arp.op == ArpOp::Reply => Some(arp),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].sender_ip, replies[0].sender_mac),
        (CLIENT_IP, CLIENT_MAC)
    );
}

#[test]
fn an_interrupt_stops_the_loop() {
    struct Stopper;
    impl Observer for Stopper {
        fn frame(&mut self, _: FrameRecord) {}
        fn state_changed(&mut self, _: Instant, _: Vec<(State, State)>) {}
        fn interrupted(&self) -> bool {
            true
        }
    }
    let mut peer = FakePeer::new(Script::default());
    let result = Client::new(&mut peer, &mut Stopper, params(), Instant::now()).run();
    assert!(matches!(result, Err(ClientError::Interrupted { .. })));
}

/// Holds write `index` back until the scripted server has answered
/// `index` writes (the lab waits for the server application's read the
/// same way), and keeps the negotiation narration.
#[derive(Default)]
struct Gate {
    recorder: Recorder,
    asked_while_held: usize,
    negotiated: Vec<String>,
}

impl Observer for Gate {
    fn frame(&mut self, record: FrameRecord) {
        self.recorder.frame(record);
    }
    fn state_changed(&mut self, at: Instant, changes: Vec<(State, State)>) {
        self.recorder.state_changed(at, changes);
    }
    fn may_write(&mut self, index: usize) -> bool {
        let replies = self
            .recorder
            .frames
            .iter()
            .filter(|r| {
                r.dir == Direction::ServerToClient
                    && matches!(&r.kind, FrameKind::Segment { segment, .. } if !segment.payload.is_empty())
            })
            .count();
        let ok = replies >= index;
        if !ok {
            self.asked_while_held += 1;
        }
        ok
    }
    fn wants_negotiated(&self) -> bool {
        true
    }
    fn negotiated(&mut self, _at: Instant, lines: Vec<String>) {
        self.negotiated = lines;
    }
}

/// The payloads of the client's data segments, in order.
fn client_payloads(peer: &FakePeer) -> Vec<Vec<u8>> {
    peer.sent
        .iter()
        .filter_map(|f| match f {
            Frame::Tcp(tcp) if !tcp.segment.payload.is_empty() => Some(tcp.segment.payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn each_write_is_one_segment_sent_in_order() {
    let mut p = params();
    p.data = vec![b"hello".to_vec(), b"world".to_vec(), b"!".to_vec()];
    p.expect_reply = 15;
    let (result, peer, _) = run(Script::default(), p);
    let outcome = result.unwrap();
    assert_eq!(
        client_payloads(&peer),
        [b"hello".to_vec(), b"world".to_vec(), b"!".to_vec()]
    );
    assert_eq!(outcome.bytes_sent, 11);
    assert_eq!(outcome.received, b"HELLOHELLOHELLO");
}

#[test]
fn a_held_write_waits_for_the_server_to_take_the_one_before() {
    let mut p = params();
    p.data = vec![b"hello".to_vec(), b"world".to_vec()];
    p.expect_reply = 10;
    let mut peer = FakePeer::new(Script::default());
    let mut gate = Gate::default();
    let outcome = Client::new(&mut peer, &mut gate, p, Instant::now())
        .run()
        .unwrap();
    assert_eq!(outcome.bytes_sent, 10);
    assert!(gate.asked_while_held > 0, "the second write was never held");
    // The second write left only after the reply to the first arrived.
    let order: Vec<(Direction, usize)> = gate
        .recorder
        .frames
        .iter()
        .filter_map(|r| match &r.kind {
            FrameKind::Segment { segment, .. } if !segment.payload.is_empty() => {
                Some((r.dir, segment.payload.len()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            (Direction::ClientToServer, 5),
            (Direction::ServerToClient, 5),
            (Direction::ClientToServer, 5),
            (Direction::ServerToClient, 5),
        ]
    );
}

#[test]
fn a_write_longer_than_the_mss_spans_segments() {
    let mut p = params();
    p.conn.mss = 60;
    p.data = vec![vec![b'x'; 130]];
    let (result, peer, _) = run(Script::default(), p);
    result.unwrap();
    // The scripted server offers no timestamps: 60 bytes per segment.
    let lens: Vec<usize> = client_payloads(&peer).iter().map(Vec::len).collect();
    assert_eq!(lens, [60, 60, 10]);
}

#[test]
fn the_negotiation_is_narrated_after_the_syn_ack() {
    let mut peer = FakePeer::new(Script::default());
    let mut gate = Gate::default();
    Client::new(&mut peer, &mut gate, params(), Instant::now())
        .run()
        .unwrap();
    assert_eq!(gate.negotiated.len(), 5, "{:?}", gate.negotiated);
    assert!(gate.negotiated[0].contains("the server announced 1460"));
    assert!(gate.negotiated[3].contains("the server did not offer them"));
}

#[test]
fn udp_sends_one_datagram_per_write_and_no_segment() {
    let mut p = Setup::from(params());
    p.udp = true;
    p.data = vec![b"hello".to_vec(), b"world".to_vec()];
    p.expect_reply = 10;
    let (result, peer, recorder) = run(Script::default(), p);
    let outcome = result.unwrap();
    assert!(peer.client_flags().is_empty(), "no TCP at all");
    let datagrams: Vec<Vec<u8>> = peer
        .sent
        .iter()
        .filter_map(|f| match f {
            Frame::Udp(udp) => Some(udp.datagram.payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(datagrams, [b"hello".to_vec(), b"world".to_vec()]);
    assert_eq!(outcome.received, b"HELLOHELLO");
    assert_eq!(outcome.final_state, None, "no connection, no state");
    let numbers: Vec<(Direction, usize)> = recorder
        .frames
        .iter()
        .filter_map(|r| match &r.kind {
            FrameKind::Datagram { number, .. } => Some((r.dir, *number)),
            _ => None,
        })
        .collect();
    assert_eq!(
        numbers,
        [
            (Direction::ClientToServer, 1),
            (Direction::ClientToServer, 2),
            (Direction::ServerToClient, 1),
            (Direction::ServerToClient, 2),
        ]
    );
}

#[test]
fn udp_without_a_reply_is_no_reply_not_a_retransmission() {
    let script = Script {
        silent: true,
        ..Script::default()
    };
    let mut p = Setup::from(params());
    p.udp = true;
    p.timeout = Duration::from_millis(100);
    let (result, peer, _) = run(script, p);
    assert!(
        matches!(
            result,
            Err(ClientError::NoReply {
                got: 0,
                expected: 5,
                ..
            })
        ),
        "{result:?}"
    );
    let sent = peer
        .sent
        .iter()
        .filter(|f| matches!(f, Frame::Udp(_)))
        .count();
    assert_eq!(sent, 1, "a datagram is sent once");
}

// The close and loss scenarios (`--close simultaneous`, `--abort`,
// `--half-close`, `--drop`).

fn with(teardown: Teardown, drops: &str) -> Setup {
    let mut p = Setup::from(params());
    p.faults.teardown = teardown;
    if !drops.is_empty() {
        p.faults.drops = drops.parse().unwrap();
    }
    p
}

#[test]
fn crossing_fins_take_the_client_through_closing() {
    let script = Script {
        close_first: true,
        ..Script::default()
    };
    let mut p = with(Teardown::Simultaneous, "");
    p.wait_for_peer_close = true;
    let (result, peer, recorder) = run(script, p);
    result.unwrap();
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "FIN, ACK", "ACK"]
    );
    // Our FIN does not acknowledge the server's FIN (IRS + 1 + 5 bytes):
    // on the wire the FINs crossed. The ACK after it does.
    let segs = peer.client_segments();
    assert_eq!(segs[4].ack, IRS + 6);
    assert_eq!(segs[5].ack, IRS + 7);
    use State::*;
    assert_eq!(
        recorder.client_path(),
        [Closed, SynSent, Established, FinWait1, Closing, TimeWait]
    );
    assert!(recorder
        .segment_notes()
        .iter()
        .any(|n| n.what == What::FinHeld));
}

#[test]
fn a_simultaneous_close_without_the_servers_fin_times_out() {
    // The server never closes: nothing to cross, the run must fail.
    let mut p = with(Teardown::Simultaneous, "");
    p.wait_for_peer_close = true;
    p.timeout = Duration::from_millis(200);
    let (result, _, _) = run(Script::default(), p);
    assert!(
        matches!(
            result,
            Err(ClientError::Timeout {
                state: State::Established,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn the_client_aborts_with_rst_instead_of_fin() {
    let (result, peer, recorder) = run(Script::default(), with(Teardown::AbortClient, ""));
    let outcome = result.unwrap();
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "RST"]
    );
    let rst = peer.client_segments().pop().unwrap();
    assert_eq!(rst.seq, SeqNumber(1006));
    assert_eq!(outcome.received, b"HELLO");
    assert!(!outcome.time_wait_entered);
    assert_eq!(recorder.client_path().last(), Some(&State::Closed));
    // The RST's own line carries ESTABLISHED → CLOSED.
    let last = recorder.frames.last().unwrap();
    assert!(matches!(
        &last.kind,
        FrameKind::Segment { changes, .. } if changes == &[(State::Established, State::Closed)]
    ));
}

#[test]
fn the_servers_rst_ends_an_abort_server_run_as_asked() {
    let script = Script {
        rst_after_reply: true,
        ..Script::default()
    };
    let (result, peer, recorder) = run(script, with(Teardown::AbortServer, ""));
    let outcome = result.unwrap();
    assert_eq!(peer.client_flags(), ["SYN", "ACK", "PSH, ACK", "ACK"]);
    assert_eq!(outcome.final_state, Some(State::Closed));
    assert!(recorder
        .segment_notes()
        .iter()
        .any(|n| n.what == What::ServerAborted));
}

#[test]
fn a_server_that_sends_fin_instead_of_rst_fails_abort_server() {
    let script = Script {
        close_first: true,
        ..Script::default()
    };
    let (result, _, _) = run(script, with(Teardown::AbortServer, ""));
    assert!(
        matches!(&result, Err(ClientError::Scenario(why)) if why.contains("FIN, not RST")),
        "{result:?}"
    );
}

#[test]
fn a_half_closed_client_still_receives_in_fin_wait_2() {
    let script = Script {
        reply_after_fin: true,
        ..Script::default()
    };
    let (result, peer, recorder) = run(script, with(Teardown::HalfClose, ""));
    let outcome = result.unwrap();
    // FIN right after our data is acked; the reply comes after it.
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "FIN, ACK", "ACK", "ACK"]
    );
    assert_eq!(outcome.received, b"HELLO");
    use State::*;
    assert_eq!(
        recorder.client_path(),
        [Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]
    );
}

#[test]
fn a_half_close_with_no_data_after_our_fin_fails() {
    // The server sends nothing after the FIN (it replied before it).
    let mut peer = FakePeer::new(Script::default());
    peer.reply = Vec::new();
    let mut recorder = Recorder::default();
    let result = with(Teardown::HalfClose, "").run(&mut peer, &mut recorder);
    assert!(
        matches!(&result, Err(ClientError::Scenario(why)) if why.contains("no data after our FIN")),
        "{result:?}"
    );
}

#[test]
fn dropped_syns_are_recorded_but_not_delivered_and_backed_off() {
    let (result, peer, recorder) = run(Script::default(), with(Teardown::Fin, "syn,syn"));
    let outcome = result.unwrap();
    // Three SYNs left, the link carried only the third.
    assert_eq!(peer.syns_seen, 1);
    assert_eq!(recorder.sent_flags()[..3], ["SYN", "SYN", "SYN"]);
    assert_eq!((outcome.dropped, outcome.retransmissions), (2, 2));
    let syn_times: Vec<Instant> = recorder
        .frames
        .iter()
        .filter(|r| matches!(&r.kind, FrameKind::Segment { segment, .. } if segment.flags.syn() && !segment.flags.ack()))
        .map(|r| r.at)
        .collect();
    // RTO 30 ms, then 60 ms (RFC 6298 §5.5). The timer runs from the
    // instant the state machine was given, a record is stamped when its
    // frame is written, a little later and not always by the same amount
    // (a loaded machine): hence the slack.
    let gaps: Vec<Duration> = syn_times.windows(2).map(|w| w[1] - w[0]).collect();
    let slack = Duration::from_millis(5);
    assert!(gaps[0] + slack >= Duration::from_millis(30), "{gaps:?}");
    assert!(gaps[1] + slack >= Duration::from_millis(60), "{gaps:?}");
    assert!(gaps[1] > gaps[0], "the timer backs off: {gaps:?}");
    let notes = recorder.segment_notes();
    let syn_lost = |rto| {
        Some(Loss {
            item: DropItem::Syn,
            rto: Duration::from_millis(rto),
        })
    };
    assert_eq!(notes[0].lost, syn_lost(30), "{notes:?}");
    // The timer backed off before the retransmission left.
    assert_eq!(
        notes[1].what,
        What::Retransmission {
            attempt: 1,
            rto: Duration::from_millis(60)
        },
        "{notes:?}"
    );
    assert_eq!(notes[1].lost, syn_lost(60), "{notes:?}");
    assert!(
        matches!(notes[2].what, What::Retransmission { attempt: 2, .. }),
        "{notes:?}"
    );
    assert_eq!(notes[2].lost, None);
}

#[test]
fn a_dropped_data_segment_and_fin_are_resent_on_the_rto() {
    let (result, peer, recorder) = run(Script::default(), with(Teardown::Fin, "data:1,fin"));
    let outcome = result.unwrap();
    assert_eq!(
        recorder.sent_flags(),
        ["SYN", "ACK", "PSH, ACK", "PSH, ACK", "ACK", "FIN, ACK", "FIN, ACK", "ACK"]
    );
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "FIN, ACK", "ACK"]
    );
    assert_eq!((outcome.dropped, outcome.retransmissions), (2, 2));
    assert_eq!(outcome.received, b"HELLO");
}

#[test]
fn ignored_server_segments_are_taken_when_the_server_resends_them() {
    let script = Script {
        resend: true,
        ..Script::default()
    };
    let drops = "synack,data-reply,server-fin";
    let (result, peer, recorder) = run(script, with(Teardown::Fin, drops));
    let outcome = result.unwrap();
    assert_eq!((outcome.dropped, outcome.server_retransmissions), (3, 3));
    assert_eq!(outcome.retransmissions, 0);
    // Each resent copy is taken as if it were the first: no duplicate ACK.
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "FIN, ACK", "ACK"]
    );
    let notes = recorder.segment_notes();
    for item in [DropItem::SynAck, DropItem::DataReply, DropItem::ServerFin] {
        assert!(
            notes.iter().any(|n| matches!(
                n.what,
                What::ServerRetransmission(ServerRetransmission::Of { item: i, .. }) if i == item
            )),
            "{item} {notes:?}"
        );
    }
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.lost.is_some_and(|l| !l.item.is_outgoing()))
            .count(),
        3
    );
}

#[test]
fn a_lost_final_ack_is_repeated_from_time_wait() {
    let script = Script {
        resend: true,
        ..Script::default()
    };
    let mut p = with(Teardown::Fin, "final-ack");
    p.conn.time_wait = Duration::from_millis(100);
    let (result, peer, recorder) = run(script, p);
    let outcome = result.unwrap();
    // The first final ACK never reached the server; the second did.
    assert_eq!(
        recorder.sent_flags()[recorder.sent_flags().len() - 2..],
        ["ACK", "ACK"]
    );
    // (The resent reply also gets an ACK for an unacceptable segment.)
    assert_eq!(peer.client_flags().last().map(String::as_str), Some("ACK"));
    assert_eq!(outcome.server_retransmissions, 1);
    assert!(recorder
        .segment_notes()
        .iter()
        .any(|n| n.what == What::AckFromTimeWait));
}

#[test]
fn a_lost_final_ack_the_server_never_answers_fails_the_scenario() {
    let mut p = with(Teardown::Fin, "final-ack");
    p.conn.time_wait = Duration::from_millis(50);
    let (result, _, _) = run(Script::default(), p);
    assert!(
        matches!(&result, Err(ClientError::Scenario(why)) if why.contains("did not retransmit its FIN")),
        "{result:?}"
    );
}

// Tests for the additions `synack connect` uses: closing when the reply
// goes quiet, abort, separate sends, ICMP, a gateway.

fn connect_params() -> ClientParams {
    ClientParams {
        data: vec![b"he".to_vec(), b"llo".to_vec()],
        expect_reply: 0,
        ..params()
    }
}

const QUIET: Duration = Duration::from_millis(40);

#[test]
fn when_quiet_sends_each_chunk_and_closes_only_after_the_reply_went_quiet() {
    let mut peer = FakePeer::new(Script::default());
    let mut recorder = Recorder::default();
    let outcome = Client::new(&mut peer, &mut recorder, connect_params(), Instant::now())
        .closing(Closing::WhenQuiet {
            quiet: QUIET,
            abort: false,
        })
        .run()
        .unwrap();
    assert_eq!(outcome.bytes_sent, 5);
    // One reply per send, both read before the FIN.
    assert_eq!(outcome.received, b"HELLOHELLO");
    let flags = peer.client_flags();
    assert_eq!(&flags[..4], ["SYN", "ACK", "PSH, ACK", "PSH, ACK"]);
    assert!(flags.contains(&"FIN, ACK".to_string()), "{flags:?}");
    let is_fin = |r: &FrameRecord| {
        r.dir == Direction::ClientToServer
            && matches!(&r.kind, FrameKind::Segment { segment, .. } if segment.flags.fin())
    };
    let fin = recorder.frames.iter().position(is_fin).unwrap();
    let fin_at = recorder.frames[fin].at;
    let last_rx = recorder.frames[..fin]
        .iter()
        .rev()
        .find(|r| r.dir == Direction::ServerToClient)
        .map(|r| r.at)
        .unwrap();
    assert!(
        fin_at - last_rx >= QUIET,
        "the FIN left before the reply was quiet"
    );
    assert_eq!(outcome.final_state, Some(State::Closed));
}

#[test]
fn abort_sends_rst_instead_of_fin() {
    let mut peer = FakePeer::new(Script::default());
    let mut recorder = Recorder::default();
    let outcome = Client::new(&mut peer, &mut recorder, params(), Instant::now())
        .closing(Closing::WhenQuiet {
            quiet: QUIET,
            abort: true,
        })
        .run()
        .unwrap();
    assert_eq!(
        peer.client_flags(),
        ["SYN", "ACK", "PSH, ACK", "ACK", "RST"]
    );
    assert_eq!(outcome.received, b"HELLO");
    assert_eq!(outcome.final_state, Some(State::Closed));
}

#[test]
fn an_icmp_unreachable_about_our_syn_ends_the_run_with_its_code() {
    let script = Script {
        icmp_unreachable: Some(3),
        ..Script::default()
    };
    let (result, _, _) = run(script, params());
    match result {
        Err(ClientError::Unreachable { from, code, .. }) => {
            assert_eq!((from, code), (SERVER_IP, 3));
            let text = result.unwrap_err().to_string();
            assert!(text.contains("port unreachable"), "{text}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn behind_a_gateway_the_client_arps_for_the_gateway() {
    let gateway = Ipv4Addr::new(198, 18, 0, 254);
    let mut peer = FakePeer::new(Script::default());
    let mut recorder = Recorder::default();
    let outcome = Client::new(&mut peer, &mut recorder, params(), Instant::now())
        .via(gateway)
        .run()
        .unwrap();
    assert_eq!(outcome.server_mac, Some(SERVER_MAC));
    assert!(matches!(
        &peer.sent[0],
        Frame::Arp { arp, .. } if arp.target_ip == gateway
    ));
}

/// An IPv6 server on a fake link: answers Neighbor Solicitations for its
/// address (after soliciting the client's own first, as a kernel with an
/// empty neighbour cache does), then the SYN with RST+ACK or an ICMPv6
/// destination unreachable.
struct Peer6 {
    inbox: VecDeque<Vec<u8>>,
    sent: Vec<Frame6>,
    unreachable: Option<u8>,
}

const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

impl Link for Peer6 {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let parsed = wire::parse_ipv6(frame).expect("the client sends IPv6");
        match &parsed {
            Frame6::Ndp(ndp) => {
                assert!(ndp.is_valid(), "{ndp:?}");
                if let NdpRepr::NeighborSolicit { target, .. } = ndp.ndp {
                    assert_eq!(target, SERVER_IP6);
                    self.inbox.push_back(
                        wire::neighbor_solicitation(SERVER_MAC, SERVER_IP6, CLIENT_IP6).unwrap(),
                    );
                    self.inbox.push_back(
                        wire::neighbor_advertisement(
                            SERVER_MAC, SERVER_IP6, CLIENT_MAC, CLIENT_IP6,
                        )
                        .unwrap(),
                    );
                }
            }
            Frame6::Tcp(syn) if syn.segment.flags.syn() => {
                assert!(syn.checksum_ok);
                assert_eq!((syn.src_mac, syn.dst_mac), (CLIENT_MAC, SERVER_MAC));
                let packet = &frame[wire::ETHERNET_HEADER_LEN..];
                let bytes = match self.unreachable {
                    Some(code) => {
                        let builder = etherparse::PacketBuilder::ethernet2(
                            SERVER_MAC.octets(),
                            CLIENT_MAC.octets(),
                        )
                        .ipv6(SERVER_IP6.octets(), CLIENT_IP6.octets(), 64)
                        .icmpv6(
                            etherparse::Icmpv6Type::DestinationUnreachable(
                                etherparse::icmpv6::DestUnreachableCode::from_u8(code).unwrap(),
                            ),
                        );
                        let mut out = Vec::new();
                        builder.write(&mut out, packet).unwrap();
                        out
                    }
                    None => {
                        let rst = SegmentRepr {
                            src_port: syn.segment.dst_port,
                            dst_port: syn.segment.src_port,
                            seq: SeqNumber(0),
                            ack: syn.segment.seq + 1,
                            flags: Flags::RST_ACK,
                            ..SegmentRepr::default()
                        };
                        let ip = Ipv6Repr {
                            src: SERVER_IP6,
                            dst: CLIENT_IP6,
                            flow_label: 0,
                            hop_limit: 64,
                        };
                        wire::emit_tcp6(SERVER_MAC, CLIENT_MAC, &ip, &rst).unwrap()
                    }
                };
                self.inbox.push_back(bytes);
            }
            _ => {}
        }
        self.sent.push(parsed);
        Ok(())
    }

    fn recv(&mut self, _deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        Ok(self.inbox.pop_front())
    }

    fn mac(&self) -> MacAddr {
        CLIENT_MAC
    }
}

fn run6(unreachable: Option<u8>) -> (Result<Outcome, ClientError>, Peer6, Recorder) {
    let mut peer = Peer6 {
        inbox: VecDeque::new(),
        sent: Vec::new(),
        unreachable,
    };
    let mut recorder = Recorder::default();
    let p = ClientParams {
        local_ip: CLIENT_IP6.into(),
        remote_ip: SERVER_IP6.into(),
        ..params()
    };
    let result = Client::new(&mut peer, &mut recorder, p, Instant::now()).run();
    (result, peer, recorder)
}

#[test]
fn over_ipv6_the_client_solicits_answers_solicitations_and_sends_ipv6() {
    let (result, peer, recorder) = run6(None);
    assert!(
        matches!(result, Err(ClientError::Refused { .. })),
        "{result:?}"
    );
    // Our NS, our NA (to the server's NS for 2001:2::2), then the SYN.
    let [Frame6::Ndp(ns), Frame6::Ndp(na), Frame6::Tcp(syn)] = &peer.sent[..] else {
        panic!("{:?}", peer.sent);
    };
    assert_eq!(ns.ip.src, CLIENT_IP6);
    assert_eq!(ns.ip.dst, wire::solicited_node(SERVER_IP6));
    assert_eq!(
        na.ndp,
        NdpRepr::NeighborAdvert {
            target: CLIENT_IP6,
            flags: wire::NaFlags {
                router: false,
                solicited: true,
                override_: true,
            },
            target_mac: Some(CLIENT_MAC),
        }
    );
    assert_eq!((na.ip.dst, na.dst_mac), (SERVER_IP6, SERVER_MAC));
    assert_eq!((syn.ip.src, syn.ip.dst), (CLIENT_IP6, SERVER_IP6));
    assert_eq!(syn.ip.hop_limit, wire::DEFAULT_HOP_LIMIT);
    // Every NDP frame, both ways, is recorded as NDP for the views.
    let ndp = recorder
        .frames
        .iter()
        .filter(|r| matches!(r.kind, FrameKind::Ndp { .. }))
        .count();
    assert_eq!(ndp, 4);
}

#[test]
fn an_icmpv6_unreachable_about_our_syn_ends_the_run_with_its_code() {
    let (result, _, _) = run6(Some(4));
    match result {
        Err(err @ ClientError::Unreachable6 { code: 4, from, .. }) => {
            assert_eq!(from, SERVER_IP6);
            assert!(err.is_connection_failure());
            assert!(err.to_string().contains("port unreachable"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

/// Notes how many frames the client had handed over each time it went
/// idle, and whether it made the negotiation's lines.
#[derive(Default)]
struct Idler {
    recorder: Recorder,
    idles: Vec<usize>,
    negotiated: usize,
}

impl Observer for Idler {
    fn frame(&mut self, record: FrameRecord) {
        self.recorder.frame(record);
    }
    fn state_changed(&mut self, at: Instant, changes: Vec<(State, State)>) {
        self.recorder.state_changed(at, changes);
    }
    fn idle(&mut self) {
        self.idles.push(self.recorder.frames.len());
    }
    fn negotiated(&mut self, _at: Instant, _lines: Vec<String>) {
        self.negotiated += 1;
    }
}

/// The observer hears "idle" (when a session hands its records to the
/// reporter thread) only once the client has answered what arrived: the
/// SYN-ACK's ACK and the first write go out first. The negotiation's
/// lines are not made for an observer that does not want them.
#[test]
fn the_client_answers_the_syn_ack_before_it_goes_idle() {
    let mut peer = FakePeer::new(Script::default());
    let mut idler = Idler::default();
    Client::new(&mut peer, &mut idler, params(), Instant::now())
        .run()
        .unwrap();
    let frames = &idler.recorder.frames;
    let syn_ack = frames
        .iter()
        .position(|r| {
            matches!(&r.kind, FrameKind::Segment { segment, .. }
                if segment.flags.syn() && segment.flags.ack())
        })
        .expect("a SYN-ACK");
    let after: Vec<String> = frames[syn_ack + 1..syn_ack + 3]
        .iter()
        .map(|r| match &r.kind {
            FrameKind::Segment { segment, .. } => {
                format!("{:?} {} {}", r.dir, segment.flags, segment.payload.len())
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert!(
        after[0].starts_with("ClientToServer") && after[1].starts_with("ClientToServer"),
        "{after:?}"
    );
    assert!(
        !idler.idles.contains(&(syn_ack + 1)) && !idler.idles.contains(&(syn_ack + 2)),
        "idle between the SYN-ACK and its answers: {:?} (SYN-ACK at {syn_ack})",
        idler.idles
    );
    assert!(idler.idles.contains(&(syn_ack + 3)), "{:?}", idler.idles);
    assert_eq!(idler.negotiated, 0);
}
