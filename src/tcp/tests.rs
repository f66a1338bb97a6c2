//! The state machine driven segment by segment, as a peer would.

use std::time::{Duration, Instant};

use super::*;
use crate::wire::{Flags, SegmentRepr, SeqNumber, TcpOptions};

const ISS: SeqNumber = SeqNumber(1000);
const IRS: SeqNumber = SeqNumber(5000);

fn cfg() -> Config {
    let mut cfg = Config::new(40000, 8080, ISS);
    cfg.time_wait = Duration::from_secs(2);
    cfg
}

/// A segment from the server to us.
fn peer(flags: Flags, seq: SeqNumber, ack: SeqNumber, payload: &[u8]) -> SegmentRepr {
    SegmentRepr {
        src_port: 8080,
        dst_port: 40000,
        seq,
        ack,
        flags,
        window: 509,
        options: TcpOptions::default(),
        payload: payload.to_vec(),
    }
}

fn syn_ack() -> SegmentRepr {
    SegmentRepr {
        options: TcpOptions {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamps: Some((777, 0)),
            ..TcpOptions::default()
        },
        window: 65160,
        ..peer(Flags::SYN_ACK, IRS, ISS + 1, b"")
    }
}

fn sent(events: &[Event]) -> Vec<(Flags, SendReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { segment, reason } => Some((segment.flags, *reason)),
            _ => None,
        })
        .collect()
}

fn only_sent(events: &[Event]) -> SegmentRepr {
    let segs: Vec<&SegmentRepr> = events
        .iter()
        .filter_map(|e| match e {
            Event::Send { segment, .. } => Some(segment),
            _ => None,
        })
        .collect();
    assert_eq!(segs.len(), 1, "expected one segment in {events:?}");
    segs[0].clone()
}

fn changes(events: &[Event]) -> Vec<(State, State)> {
    Event::state_changes(events)
}

// Fixture builders: a connection in each state (smoltcp's socket_* idea).

fn conn_syn_sent(now: Instant) -> Connection {
    let mut conn = Connection::new(cfg(), now);
    conn.connect(now).unwrap();
    conn
}

fn conn_established(now: Instant) -> Connection {
    let mut conn = conn_syn_sent(now);
    conn.on_segment(now, &syn_ack());
    assert_eq!(conn.state(), State::Established);
    conn
}

fn conn_fin_wait_1(now: Instant) -> Connection {
    let mut conn = conn_established(now);
    conn.close(now).unwrap();
    conn
}

fn conn_fin_wait_2(now: Instant) -> Connection {
    let mut conn = conn_fin_wait_1(now);
    conn.on_segment(now, &peer(Flags::ACK, IRS + 1, ISS + 2, b""));
    assert_eq!(conn.state(), State::FinWait2);
    conn
}

fn conn_close_wait(now: Instant) -> Connection {
    let mut conn = conn_established(now);
    conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 1, b""));
    assert_eq!(conn.state(), State::CloseWait);
    conn
}

// Tests for CLOSED.

#[test]
fn connect_sends_syn_with_linux_options_and_enters_syn_sent() {
    let now = Instant::now();
    let mut conn = Connection::new(cfg(), now);
    let events = conn.connect(now).unwrap();
    assert_eq!(changes(&events), [(State::Closed, State::SynSent)]);
    let syn = only_sent(&events);
    assert_eq!(syn.flags, Flags::SYN);
    assert_eq!(syn.seq, ISS);
    assert_eq!(syn.window, 64240);
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.wscale, Some(7));
    assert!(syn.options.sack_permitted);
    assert_eq!(syn.options.timestamps, Some((0, 0)));
    assert_eq!(conn.snd_nxt(), ISS + 1);
    assert_eq!(conn.poll_at(), Some(now + INITIAL_RTO));
}

#[test]
fn connect_twice_is_an_invalid_state() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    assert_eq!(
        conn.connect(now),
        Err(InvalidState {
            op: "connect",
            state: State::SynSent
        })
    );
}

#[test]
fn closed_ignores_segments() {
    let now = Instant::now();
    let mut conn = Connection::new(cfg(), now);
    let events = conn.on_segment(now, &syn_ack());
    assert!(matches!(events[..], [Event::Ignored { .. }]));
}

// Tests for SYN-SENT.

#[test]
fn syn_sent_recv_syn_ack_sends_ack_and_establishes() {
    let t0 = Instant::now();
    let mut conn = conn_syn_sent(t0);
    let t1 = t0 + Duration::from_micros(40);
    let events = conn.on_segment(t1, &syn_ack());
    assert_eq!(changes(&events), [(State::SynSent, State::Established)]);
    let ack = only_sent(&events);
    assert_eq!(ack.flags, Flags::ACK);
    assert_eq!(ack.seq, ISS + 1);
    assert_eq!(ack.ack, IRS + 1);
    // Window scale 7 agreed: 64240 >> 7.
    assert_eq!(ack.window, 501);
    assert_eq!(ack.options.timestamps, Some((0, 777)));
    assert_eq!(conn.irs(), Some(IRS));
    assert_eq!(conn.srtt(), Some(Duration::from_micros(40)));
    assert_eq!(conn.poll_at(), None, "nothing left to retransmit");
}

#[test]
fn syn_sent_recv_syn_ack_with_wrong_ack_sends_rst_and_waits() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    let bad = SegmentRepr {
        ack: ISS + 5,
        ..syn_ack()
    };
    let events = conn.on_segment(now, &bad);
    assert_eq!(
        sent(&events),
        [(Flags::RST, SendReason::ResetUnacceptableAck)]
    );
    assert_eq!(only_sent(&events).seq, ISS + 5, "RST carries SEQ=SEG.ACK");
    assert_eq!(conn.state(), State::SynSent);
    // The right SYN-ACK still completes the handshake afterwards.
    conn.on_segment(now, &syn_ack());
    assert_eq!(conn.state(), State::Established);
}

#[test]
fn syn_sent_recv_rst_ack_is_a_refusal() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    let events = conn.on_segment(now, &peer(Flags::RST_ACK, SeqNumber(0), ISS + 1, b""));
    assert_eq!(
        events[0],
        Event::Reset {
            state: State::SynSent
        }
    );
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.poll_at(), None);
}

#[test]
fn syn_sent_ignores_rst_without_ack() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    conn.on_segment(now, &peer(Flags::RST, IRS, SeqNumber(0), b""));
    assert_eq!(conn.state(), State::SynSent);
}

#[test]
fn syn_sent_lost_syn_is_retransmitted_with_backoff() {
    let t0 = Instant::now();
    let mut conn = conn_syn_sent(t0);
    assert!(conn.poll(t0 + Duration::from_millis(999)).is_empty());
    let events = conn.poll(t0 + Duration::from_secs(1));
    assert_eq!(
        sent(&events),
        [(Flags::SYN, SendReason::Retransmission { attempt: 1 })]
    );
    assert_eq!(only_sent(&events).seq, ISS);
    // RFC 6298 §5.5: the timer doubles (1 s, then 2 s).
    assert_eq!(conn.poll_at(), Some(t0 + Duration::from_secs(3)));
    let events = conn.poll(t0 + Duration::from_secs(3));
    assert_eq!(
        sent(&events),
        [(Flags::SYN, SendReason::Retransmission { attempt: 2 })]
    );
    assert_eq!(conn.poll_at(), Some(t0 + Duration::from_secs(7)));
    // A SYN-ACK for the retransmitted SYN is not an RTT sample (Karn).
    conn.on_segment(t0 + Duration::from_secs(4), &syn_ack());
    assert_eq!(conn.state(), State::Established);
    assert_eq!(conn.srtt(), None);
}

#[test]
fn syn_sent_gives_up_after_max_retries() {
    let t0 = Instant::now();
    let mut conn = Connection::new(
        Config {
            max_retries: 1,
            ..cfg()
        },
        t0,
    );
    conn.connect(t0).unwrap();
    conn.poll(t0 + Duration::from_secs(1));
    let events = conn.poll(t0 + Duration::from_secs(3));
    assert_eq!(
        events[0],
        Event::GaveUp {
            state: State::SynSent
        }
    );
    assert_eq!(conn.state(), State::Closed);
}

#[test]
fn syn_sent_recv_bare_syn_is_a_simultaneous_open() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    let events = conn.on_segment(now, &peer(Flags::SYN, IRS, SeqNumber(0), b""));
    assert_eq!(changes(&events), [(State::SynSent, State::SynReceived)]);
    let syn_ack = only_sent(&events);
    assert_eq!(syn_ack.flags, Flags::SYN_ACK);
    assert_eq!((syn_ack.seq, syn_ack.ack), (ISS, IRS + 1));
    let events = conn.on_segment(now, &peer(Flags::ACK, IRS + 1, ISS + 1, b""));
    assert_eq!(changes(&events), [(State::SynReceived, State::Established)]);
}

#[test]
fn close_in_syn_sent_forgets_the_connection() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    let events = conn.close(now).unwrap();
    assert!(sent(&events).is_empty());
    assert_eq!(conn.state(), State::Closed);
}

// Tests for ESTABLISHED.

#[test]
fn established_duplicate_syn_ack_gets_an_ack() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &syn_ack());
    assert_eq!(sent(&events), [(Flags::ACK, SendReason::DuplicateAck)]);
    let ack = only_sent(&events);
    assert_eq!((ack.seq, ack.ack), (ISS + 1, IRS + 1));
    assert_eq!(conn.state(), State::Established);
}

#[test]
fn established_send_and_receive_data() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.send(now, b"hello").unwrap();
    let data = only_sent(&events);
    assert_eq!(data.flags, Flags::PSH_ACK);
    assert_eq!(data.payload, b"hello");
    assert_eq!(conn.snd_nxt(), ISS + 6);
    assert!(conn.poll_at().is_some());
    // The server ACKs and answers in one segment.
    let events = conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 1, ISS + 6, b"HELLO"));
    assert_eq!(events[0], Event::Received(b"HELLO".to_vec()));
    let ack = only_sent(&events);
    assert_eq!(ack.ack, IRS + 6);
    assert_eq!(conn.snd_una(), ISS + 6);
    assert_eq!(conn.poll_at(), None);
}

#[test]
fn established_splits_data_at_the_peer_mss() {
    let now = Instant::now();
    let mut conn = conn_syn_sent(now);
    conn.on_segment(
        now,
        &SegmentRepr {
            options: TcpOptions {
                mss: Some(4),
                ..TcpOptions::default()
            },
            ..syn_ack()
        },
    );
    let events = conn.send(now, b"0123456789").unwrap();
    let lens: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Send { segment, .. } => Some(segment.payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(lens, [4, 4, 2]);
}

#[test]
fn established_lost_data_is_retransmitted() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    conn.send(t0, b"hello").unwrap();
    let at = conn.poll_at().unwrap();
    let events = conn.poll(at);
    let again = only_sent(&events);
    assert_eq!(again.payload, b"hello");
    assert_eq!(again.seq, ISS + 1);
    assert!(matches!(
        sent(&events)[0].1,
        SendReason::Retransmission { attempt: 1 }
    ));
}

#[test]
fn established_duplicate_data_is_acked_not_delivered_twice() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 1, ISS + 1, b"abc"));
    let events = conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 1, ISS + 1, b"abc"));
    assert!(!events.iter().any(|e| matches!(e, Event::Received(_))));
    assert_eq!(only_sent(&events).ack, IRS + 4);
}

#[test]
fn established_out_of_order_data_gets_a_duplicate_ack() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 10, ISS + 1, b"later"));
    assert!(!events.iter().any(|e| matches!(e, Event::Received(_))));
    assert_eq!(only_sent(&events).ack, IRS + 1);
}

#[test]
fn established_ack_of_unsent_data_gets_an_ack() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &peer(Flags::ACK, IRS + 1, ISS + 100, b""));
    assert_eq!(sent(&events), [(Flags::ACK, SendReason::DuplicateAck)]);
    assert_eq!(conn.snd_una(), ISS + 1);
}

#[test]
fn established_rst_in_sequence_resets() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &peer(Flags::RST, IRS + 1, SeqNumber(0), b""));
    assert_eq!(
        events[0],
        Event::Reset {
            state: State::Established
        }
    );
    assert_eq!(conn.state(), State::Closed);
}

#[test]
fn established_rst_in_window_but_not_exact_gets_a_challenge_ack() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &peer(Flags::RST, IRS + 100, SeqNumber(0), b""));
    assert_eq!(sent(&events), [(Flags::ACK, SendReason::ChallengeAck)]);
    assert_eq!(conn.state(), State::Established);
}

#[test]
fn established_rst_outside_window_is_ignored() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &peer(Flags::RST, IRS + 1_000_000, SeqNumber(0), b""));
    assert!(sent(&events).is_empty());
    assert_eq!(conn.state(), State::Established);
}

#[test]
fn established_recv_fin_enters_close_wait() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 1, b""));
    assert!(events.contains(&Event::PeerClosed));
    assert_eq!(changes(&events), [(State::Established, State::CloseWait)]);
    assert_eq!(only_sent(&events).ack, IRS + 2);
}

#[test]
fn established_abort_sends_rst() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let events = conn.abort(now);
    assert_eq!(sent(&events), [(Flags::RST, SendReason::Abort)]);
    assert_eq!(only_sent(&events).seq, ISS + 1);
    // No ACK flag, so no ACK number (Wireshark flags a nonzero one).
    assert_eq!(only_sent(&events).ack, SeqNumber(0));
    // The state change comes before the RST, so its line shows it.
    assert!(matches!(
        events[0],
        Event::StateChanged {
            from: State::Established,
            to: State::Closed
        }
    ));
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.poll_at(), None);
}

#[test]
fn abort_in_time_wait_sends_nothing() {
    let now = Instant::now();
    let mut conn = conn_fin_wait_2(now);
    conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b""));
    assert_eq!(conn.state(), State::TimeWait);
    let events = conn.abort(now);
    assert!(sent(&events).is_empty());
    assert_eq!(conn.state(), State::Closed);
}

// Simultaneous close as the lab makes it: the client closes on seeing the
// server's FIN, before processing it (its FIN does not ack that FIN).

#[test]
fn close_then_the_held_fin_is_closing_then_time_wait() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let server_fin = peer(Flags::FIN_ACK, IRS + 1, ISS + 1, b"");
    let events = conn.close(now).unwrap();
    let fin = only_sent(&events);
    assert_eq!(
        (fin.flags, fin.seq, fin.ack),
        (Flags::FIN_ACK, ISS + 1, IRS + 1)
    );
    assert_eq!(changes(&events), [(State::Established, State::FinWait1)]);
    // The held FIN: it does not ack ours, so CLOSING; we ACK it.
    let events = conn.on_segment(now, &server_fin);
    assert_eq!(changes(&events), [(State::FinWait1, State::Closing)]);
    assert!(events.contains(&Event::PeerClosed));
    let ack = only_sent(&events);
    assert_eq!(
        (ack.flags, ack.seq, ack.ack),
        (Flags::ACK, ISS + 2, IRS + 2)
    );
    // The server, in CLOSING too, ACKs our FIN: TIME-WAIT.
    let events = conn.on_segment(now, &peer(Flags::ACK, IRS + 2, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::Closing, State::TimeWait)]);
    assert!(sent(&events).is_empty());
    // A retransmitted FIN in CLOSING (our ACK was lost) is ACKed again.
    let mut conn = conn_established(now);
    conn.close(now).unwrap();
    conn.on_segment(now, &server_fin);
    let events = conn.on_segment(now, &server_fin);
    assert_eq!(only_sent(&events).ack, IRS + 2);
    assert_eq!(conn.state(), State::Closing);
}

#[test]
fn our_fin_lost_in_closing_is_retransmitted() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    conn.close(t0).unwrap();
    conn.on_segment(t0, &peer(Flags::FIN_ACK, IRS + 1, ISS + 1, b""));
    assert_eq!(conn.state(), State::Closing);
    let events = conn.poll(conn.poll_at().unwrap());
    let fin = only_sent(&events);
    assert!(fin.flags.fin());
    // The retransmission now acks the server's FIN.
    assert_eq!(fin.ack, IRS + 2);
}

#[test]
fn data_in_fin_wait_2_is_received_and_acked() {
    // The half-close: the server still sends after our FIN.
    let now = Instant::now();
    let mut conn = conn_fin_wait_2(now);
    let events = conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 1, ISS + 2, b"late"));
    assert!(events.contains(&Event::Received(b"late".to_vec())));
    assert_eq!(only_sent(&events).ack, IRS + 5);
    assert_eq!(conn.state(), State::FinWait2);
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 5, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::FinWait2, State::TimeWait)]);
}

#[test]
fn a_handshake_without_an_rtt_sample_falls_back_to_3_s() {
    // RFC 6298 §5.7: the SYN was retransmitted, so Karn's rule leaves no
    // sample; the backed-off RTO (2 s) becomes 3 s for the data.
    let t0 = Instant::now();
    let mut conn = Connection::new(cfg(), t0);
    conn.connect(t0).unwrap();
    conn.poll(t0 + Duration::from_secs(1));
    assert_eq!(conn.rto(), Duration::from_secs(2));
    let t1 = t0 + Duration::from_millis(1001);
    conn.on_segment(t1, &syn_ack());
    assert_eq!(conn.state(), State::Established);
    assert_eq!(conn.srtt(), None);
    assert_eq!(conn.rto(), FALLBACK_RTO);
    // With a sample the RTO is the computed one (at least 1 s).
    let mut conn = Connection::new(cfg(), t0);
    conn.connect(t0).unwrap();
    conn.on_segment(t0 + Duration::from_millis(1), &syn_ack());
    assert_eq!(conn.rto(), Duration::from_secs(1));
}

#[test]
fn a_fin_beyond_a_gap_is_not_taken_but_acked_at_once() {
    let now = Instant::now();
    let mut conn = conn_fin_wait_2(now);
    // The 4 bytes before the FIN were lost.
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 5, ISS + 2, b""));
    assert!(changes(&events).is_empty());
    assert!(!events.contains(&Event::PeerClosed));
    assert_eq!(only_sent(&events).ack, IRS + 1, "a duplicate ACK");
    assert_eq!(conn.state(), State::FinWait2);
    // The data and FIN resent together close the gap.
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b"late"));
    assert_eq!(changes(&events), [(State::FinWait2, State::TimeWait)]);
    assert_eq!(only_sent(&events).ack, IRS + 6);
}

#[test]
fn rto_doubles_on_each_retransmission() {
    let t0 = Instant::now();
    let mut conn = Connection::new(cfg(), t0);
    conn.connect(t0).unwrap();
    assert_eq!(conn.rto(), Duration::from_secs(1));
    conn.poll(t0 + Duration::from_secs(1));
    assert_eq!(conn.rto(), Duration::from_secs(2));
    assert_eq!(conn.poll_at(), Some(t0 + Duration::from_secs(3)));
    conn.poll(t0 + Duration::from_secs(3));
    assert_eq!(conn.rto(), Duration::from_secs(4));
}

#[test]
fn established_send_rejected_after_close() {
    let now = Instant::now();
    let mut conn = conn_fin_wait_1(now);
    assert!(conn.send(now, b"late").is_err());
}

// Tests for the client closing first.

#[test]
fn test_four_way_teardown() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    let events = conn.close(t0).unwrap();
    assert_eq!(changes(&events), [(State::Established, State::FinWait1)]);
    let fin = only_sent(&events);
    assert_eq!(
        (fin.flags, fin.seq, fin.ack),
        (Flags::FIN_ACK, ISS + 1, IRS + 1)
    );
    // The server's ACK of our FIN.
    let events = conn.on_segment(t0, &peer(Flags::ACK, IRS + 1, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::FinWait1, State::FinWait2)]);
    assert!(sent(&events).is_empty());
    // The server's FIN.
    let events = conn.on_segment(t0, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::FinWait2, State::TimeWait)]);
    assert_eq!(only_sent(&events).ack, IRS + 2);
    // TIME-WAIT ends after the configured 2·MSL.
    assert_eq!(conn.poll_at(), Some(t0 + Duration::from_secs(2)));
    let events = conn.poll(t0 + Duration::from_secs(2));
    assert_eq!(changes(&events), [(State::TimeWait, State::Closed)]);
    assert_eq!(conn.poll_at(), None);
}

#[test]
fn fin_wait_1_recv_fin_ack_of_our_fin_goes_to_time_wait() {
    // The three-segment close: the server's ACK of our FIN rides on its FIN.
    let now = Instant::now();
    let mut conn = conn_fin_wait_1(now);
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b""));
    // RFC 9293 §3.10.7.4 step five (the ACK) then step eight (the FIN).
    assert_eq!(
        changes(&events),
        [
            (State::FinWait1, State::FinWait2),
            (State::FinWait2, State::TimeWait)
        ]
    );
    assert_eq!(only_sent(&events).ack, IRS + 2);
}

#[test]
fn fin_wait_1_recv_fin_without_ack_of_ours_is_closing() {
    // Simultaneous close: the FINs cross.
    let now = Instant::now();
    let mut conn = conn_fin_wait_1(now);
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 1, b""));
    assert_eq!(changes(&events), [(State::FinWait1, State::Closing)]);
    let events = conn.on_segment(now, &peer(Flags::ACK, IRS + 2, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::Closing, State::TimeWait)]);
}

#[test]
fn fin_wait_1_lost_fin_is_retransmitted() {
    let now = Instant::now();
    let mut conn = conn_fin_wait_1(now);
    let events = conn.poll(conn.poll_at().unwrap());
    assert_eq!(only_sent(&events).flags, Flags::FIN_ACK);
    assert_eq!(only_sent(&events).seq, ISS + 1);
}

#[test]
fn fin_wait_2_receives_data_before_the_fin() {
    let now = Instant::now();
    let mut conn = conn_fin_wait_2(now);
    let events = conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 1, ISS + 2, b"bye"));
    assert_eq!(events[0], Event::Received(b"bye".to_vec()));
    let events = conn.on_segment(now, &peer(Flags::FIN_ACK, IRS + 4, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::FinWait2, State::TimeWait)]);
}

#[test]
fn fin_wait_2_rst_resets() {
    let now = Instant::now();
    let mut conn = conn_fin_wait_2(now);
    let events = conn.on_segment(now, &peer(Flags::RST, IRS + 1, SeqNumber(0), b""));
    assert_eq!(
        events[0],
        Event::Reset {
            state: State::FinWait2
        }
    );
}

#[test]
fn time_wait_retransmitted_fin_is_acked_and_restarts_the_timer() {
    let t0 = Instant::now();
    let mut conn = conn_fin_wait_2(t0);
    conn.on_segment(t0, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b""));
    let t1 = t0 + Duration::from_secs(1);
    let events = conn.on_segment(t1, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b""));
    assert_eq!(only_sent(&events).ack, IRS + 2);
    assert_eq!(conn.state(), State::TimeWait);
    assert_eq!(conn.poll_at(), Some(t1 + Duration::from_secs(2)));
}

#[test]
fn time_wait_rst_closes_quietly() {
    let t0 = Instant::now();
    let mut conn = conn_fin_wait_2(t0);
    conn.on_segment(t0, &peer(Flags::FIN_ACK, IRS + 1, ISS + 2, b""));
    let events = conn.on_segment(t0, &peer(Flags::RST, IRS + 2, SeqNumber(0), b""));
    assert_eq!(changes(&events), [(State::TimeWait, State::Closed)]);
    assert!(!events.iter().any(|e| matches!(e, Event::Reset { .. })));
}

// Tests for the server closing first.

#[test]
fn close_wait_close_goes_through_last_ack() {
    let now = Instant::now();
    let mut conn = conn_close_wait(now);
    let events = conn.close(now).unwrap();
    assert_eq!(changes(&events), [(State::CloseWait, State::LastAck)]);
    assert_eq!(only_sent(&events).seq, ISS + 1);
    let events = conn.on_segment(now, &peer(Flags::ACK, IRS + 2, ISS + 2, b""));
    assert_eq!(changes(&events), [(State::LastAck, State::Closed)]);
    assert_eq!(conn.poll_at(), None);
}

#[test]
fn close_wait_can_still_send() {
    let now = Instant::now();
    let mut conn = conn_close_wait(now);
    assert!(conn.send(now, b"late reply").is_ok());
}

#[test]
fn last_ack_rst_closes() {
    let now = Instant::now();
    let mut conn = conn_close_wait(now);
    conn.close(now).unwrap();
    let events = conn.on_segment(now, &peer(Flags::RST, IRS + 2, SeqNumber(0), b""));
    assert_eq!(changes(&events), [(State::LastAck, State::Closed)]);
}

// Sequence numbers near 2³².

#[test]
fn handshake_and_close_across_the_wrap() {
    let now = Instant::now();
    let iss = SeqNumber(u32::MAX);
    let irs = SeqNumber(u32::MAX - 1);
    let mut conn = Connection::new(Config::new(40000, 8080, iss), now);
    conn.connect(now).unwrap();
    conn.on_segment(
        now,
        &SegmentRepr {
            seq: irs,
            ack: SeqNumber(0),
            ..syn_ack()
        },
    );
    assert_eq!(conn.state(), State::Established);
    assert_eq!(conn.rcv_nxt(), SeqNumber(u32::MAX));
    let events = conn.on_segment(
        now,
        &peer(Flags::PSH_ACK, SeqNumber(u32::MAX), SeqNumber(0), b"xy"),
    );
    assert_eq!(events[0], Event::Received(b"xy".to_vec()));
    assert_eq!(conn.rcv_nxt(), SeqNumber(1));
}

#[test]
fn reset_for_answers_like_rfc_9293() {
    let syn = peer(Flags::SYN, IRS, SeqNumber(0), b"");
    let rst = reset_for(&syn);
    assert_eq!((rst.flags, rst.ack), (Flags::RST_ACK, IRS + 1));
    let ack = peer(Flags::ACK, IRS, ISS + 7, b"");
    let rst = reset_for(&ack);
    assert_eq!((rst.flags, rst.seq), (Flags::RST, ISS + 7));
}

// A RST in every synchronized state (RFC 9293 §3.10.7.4, second check).

#[test]
fn an_exact_rst_closes_every_synchronized_state() {
    let now = Instant::now();
    let rst = |conn: &Connection| peer(Flags::RST, conn.rcv_nxt(), SeqNumber(0), b"");
    let cases: Vec<(Connection, bool)> = vec![
        (conn_established(now), true),
        (conn_fin_wait_1(now), true),
        (conn_fin_wait_2(now), true),
        (conn_close_wait(now), true),
        (
            {
                // CLOSING: the FINs crossed.
                let mut c = conn_fin_wait_1(now);
                c.on_segment(now, &peer(Flags::FIN_ACK, IRS + 1, ISS + 1, b""));
                assert_eq!(c.state(), State::Closing);
                c
            },
            false,
        ),
        (
            {
                let mut c = conn_close_wait(now);
                c.close(now).unwrap();
                assert_eq!(c.state(), State::LastAck);
                c
            },
            false,
        ),
    ];
    for (mut conn, reported) in cases {
        let before = conn.state();
        let seg = rst(&conn);
        let events = conn.on_segment(now, &seg);
        assert_eq!(conn.state(), State::Closed, "from {before}");
        assert_eq!(
            events.iter().any(|e| matches!(e, Event::Reset { .. })),
            reported,
            "from {before}: {events:?}"
        );
        assert!(
            sent(&events).is_empty(),
            "a RST is never answered ({before})"
        );
        assert_eq!(
            conn.poll_at(),
            None,
            "no timer left after a reset ({before})"
        );
    }
}

// Tests for the options both SYNs agree on (RFC 9293 §3.7.1, RFC 7323,
// RFC 2018): each is used only when both sides offered it.

/// A connection configured by `tweak`, after a SYN-ACK carrying `theirs`.
fn conn_negotiated(
    now: Instant,
    tweak: impl FnOnce(&mut Config),
    theirs: TcpOptions,
) -> (Connection, SegmentRepr) {
    let mut cfg = cfg();
    tweak(&mut cfg);
    let mut conn = Connection::new(cfg, now);
    conn.connect(now).unwrap();
    let events = conn.on_segment(
        now,
        &SegmentRepr {
            options: theirs,
            ..syn_ack()
        },
    );
    assert_eq!(conn.state(), State::Established);
    (conn, only_sent(&events))
}

fn payload_lens(events: &[Event]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { segment, .. } => Some(segment.payload.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn timestamps_ride_on_every_segment_when_both_offered() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    let agreed = conn.negotiated().unwrap();
    assert!(agreed.timestamps && agreed.sack);
    let data = only_sent(&conn.send(now, b"hello").unwrap());
    // TSecr echoes the server's TSval (777 in its SYN-ACK).
    assert_eq!(data.options.timestamps.map(|(_, ecr)| ecr), Some(777));
    let fin = only_sent(&conn.close(now).unwrap());
    assert!(fin.options.timestamps.is_some());
}

#[test]
fn timestamps_are_off_when_the_server_did_not_answer_them() {
    let now = Instant::now();
    let theirs = TcpOptions {
        timestamps: None,
        ..syn_ack().options
    };
    let (mut conn, ack) = conn_negotiated(now, |_| {}, theirs);
    assert_eq!(ack.options.timestamps, None);
    assert!(!conn.negotiated().unwrap().timestamps);
    let data = only_sent(&conn.send(now, b"hello").unwrap());
    assert_eq!(data.options.timestamps, None);
}

#[test]
fn timestamps_are_off_when_we_did_not_offer_them() {
    let now = Instant::now();
    let (mut conn, ack) = conn_negotiated(now, |c| c.timestamps = false, syn_ack().options);
    assert_eq!(
        ack.options.timestamps, None,
        "the server's TSval is not echoed"
    );
    let data = only_sent(&conn.send(now, b"hello").unwrap());
    assert_eq!(data.options.timestamps, None);
}

#[test]
fn our_syn_carries_exactly_what_was_configured() {
    let now = Instant::now();
    let mut cfg = cfg();
    cfg.mss = 100;
    cfg.wscale = None;
    cfg.sack_permitted = false;
    cfg.timestamps = false;
    cfg.window = 20_000;
    let mut conn = Connection::new(cfg, now);
    let syn = only_sent(&conn.connect(now).unwrap());
    assert_eq!(
        syn.options,
        TcpOptions {
            mss: Some(100),
            ..TcpOptions::default()
        }
    );
    assert_eq!(syn.window, 20_000);
}

#[test]
fn window_scaling_applies_only_when_both_offered() {
    let now = Instant::now();
    // Both: our window field is shifted by our 7 (64240 >> 7 = 501).
    let (_, ack) = conn_negotiated(now, |_| {}, syn_ack().options);
    assert_eq!(ack.window, 501);
    // The server offered none: plain bytes.
    let theirs = TcpOptions {
        wscale: None,
        ..syn_ack().options
    };
    let (conn, ack) = conn_negotiated(now, |_| {}, theirs);
    assert_eq!(ack.window, 64240);
    assert_eq!(conn.negotiated().unwrap().wscale, None);
    // We offered none: plain bytes whatever the server says.
    let (conn, ack) = conn_negotiated(now, |c| c.wscale = None, syn_ack().options);
    assert_eq!(ack.window, 64240);
    assert_eq!(conn.negotiated().unwrap().wscale, None);
}

#[test]
fn a_window_above_64k_is_said_with_the_agreed_shift() {
    let now = Instant::now();
    let mut cfg = cfg();
    cfg.window = 200_000;
    let mut conn = Connection::new(cfg, now);
    let syn = only_sent(&conn.connect(now).unwrap());
    // RFC 7323 §2.2: the SYN's own window is never scaled.
    assert_eq!(syn.window, 65535);
    let ack = only_sent(&conn.on_segment(now, &syn_ack()));
    assert_eq!(ack.window, (200_000u32 >> 7) as u16);
    assert_eq!(conn.negotiated().unwrap().wscale, Some((7, 7)));
}

#[test]
fn data_per_segment_is_the_mss_less_the_timestamps_option() {
    let now = Instant::now();
    let theirs = TcpOptions {
        mss: Some(100),
        ..syn_ack().options
    };
    let (mut conn, _) = conn_negotiated(now, |_| {}, theirs);
    let agreed = conn.negotiated().unwrap();
    assert_eq!((agreed.peer_mss, agreed.send_mss), (100, 88));
    let events = conn.send(now, &[7u8; 200]).unwrap();
    assert_eq!(payload_lens(&events), [88, 88, 24]);
}

#[test]
fn our_own_mss_also_bounds_what_we_send() {
    let now = Instant::now();
    let theirs = TcpOptions {
        timestamps: None,
        ..syn_ack().options
    };
    let (mut conn, _) = conn_negotiated(now, |c| c.mss = 100, theirs);
    assert_eq!(conn.negotiated().unwrap().send_mss, 100);
    let events = conn.send(now, &[7u8; 250]).unwrap();
    assert_eq!(payload_lens(&events), [100, 100, 50]);
}

#[test]
fn sack_is_agreed_only_when_both_permit_it() {
    let now = Instant::now();
    let (conn, _) = conn_negotiated(now, |_| {}, syn_ack().options);
    assert!(conn.negotiated().unwrap().sack);
    let theirs = TcpOptions {
        sack_permitted: false,
        ..syn_ack().options
    };
    let (conn, _) = conn_negotiated(now, |_| {}, theirs);
    assert!(!conn.negotiated().unwrap().sack);
    let (conn, _) = conn_negotiated(now, |c| c.sack_permitted = false, syn_ack().options);
    assert!(!conn.negotiated().unwrap().sack);
}

#[test]
fn nothing_is_agreed_before_the_peer_syn() {
    let now = Instant::now();
    assert_eq!(conn_syn_sent(now).negotiated(), None);
}

#[test]
fn a_long_reply_in_small_segments_is_taken_in_order() {
    // What the server sends when we announced MSS 100 with timestamps on:
    // 88-byte segments; each one is acknowledged and delivered in order.
    let now = Instant::now();
    let mut conn = conn_established(now);
    let reply: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let mut got = Vec::new();
    for (i, chunk) in reply.chunks(88).enumerate() {
        let seg = peer(Flags::ACK, IRS + 1 + i * 88, ISS + 1, chunk);
        let events = conn.on_segment(now, &seg);
        for e in &events {
            if let Event::Received(data) = e {
                got.extend_from_slice(data);
            }
        }
        assert_eq!(only_sent(&events).ack, IRS + 1 + i * 88 + chunk.len());
    }
    assert_eq!(got, reply);
}

// Tests for the peer's window (RFC 9293 §3.8.6), the persist timer
// (§3.8.6.1) and go-back-N after an RTO (RFC 5681 §3.1, RFC 6298 §5).

/// ESTABLISHED with a peer that announced `mss` (timestamps on: 12 bytes
/// less per segment) and a `window` in its SYN-ACK (not scaled there).
fn conn_with_window(now: Instant, mss: u16, window: u16) -> Connection {
    let mut conn = conn_syn_sent(now);
    let syn_ack = SegmentRepr {
        options: TcpOptions {
            mss: Some(mss),
            ..syn_ack().options
        },
        window,
        ..syn_ack()
    };
    conn.on_segment(now, &syn_ack);
    assert_eq!(conn.state(), State::Established);
    assert_eq!(conn.snd_wnd(), u32::from(window));
    conn
}

/// An ACK from the peer with a window already scaled down by 7 (the shift
/// agreed in `syn_ack`): `window_bytes` must be a multiple of 128.
fn ack_with_window(ack: SeqNumber, window_bytes: u32) -> SegmentRepr {
    SegmentRepr {
        window: (window_bytes >> 7) as u16,
        ..peer(Flags::ACK, IRS + 1, ack, b"")
    }
}

fn reasons(events: &[Event]) -> Vec<SendReason> {
    sent(events).into_iter().map(|(_, reason)| reason).collect()
}

fn seqs(events: &[Event]) -> Vec<(SeqNumber, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { segment, .. } => Some((segment.seq, segment.payload.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_2048_byte_window_keeps_2048_bytes_in_flight() {
    let now = Instant::now();
    // MSS 524 less 12 bytes of timestamps: 512-byte segments.
    let mut conn = conn_with_window(now, 524, 2048);
    let events = conn.send(now, &[b'a'; 10_000]).unwrap();
    assert_eq!(payload_lens(&events), [512; 4], "one window, no more");
    assert_eq!(conn.snd_nxt(), ISS + 1 + 2048);
    assert_eq!(conn.unsent(), 10_000 - 2048);
    // The ACK of the first 1024 bytes, window still 2048: 1024 more.
    let events = conn.on_segment(now, &ack_with_window(ISS + 1 + 1024, 2048));
    assert_eq!(payload_lens(&events), [512, 512]);
    assert!(reasons(&events).iter().all(|r| *r == SendReason::Data));
    assert_eq!(conn.snd_nxt(), conn.snd_una() + 2048);
    // A bare ACK that takes nothing and keeps the window releases nothing.
    let events = conn.on_segment(now, &ack_with_window(ISS + 1 + 1024, 2048));
    assert!(sent(&events).is_empty());
}

#[test]
fn a_window_smaller_than_the_mss_is_not_overrun() {
    let now = Instant::now();
    // 1448-byte segments into a 2048-byte window: one full segment; the
    // 600 bytes left are less than half the window, so they wait (sender
    // SWS avoidance, RFC 9293 §3.8.6.2.1) for the ACK.
    let mut conn = conn_with_window(now, 1460, 2048);
    let events = conn.send(now, &[b'a'; 5000]).unwrap();
    assert_eq!(payload_lens(&events), [1448]);
    let events = conn.on_segment(now, &ack_with_window(ISS + 1 + 1448, 2048));
    assert_eq!(payload_lens(&events), [1448]);
    assert!(conn.snd_nxt() <= conn.snd_una() + 2048);
}

#[test]
fn a_zero_window_is_probed_with_back_off_and_data_resumes_when_it_opens() {
    let t0 = Instant::now();
    let mut conn = conn_with_window(t0, 1460, 0);
    let events = conn.send(t0, &[b'x'; 3000]).unwrap();
    assert!(sent(&events).is_empty(), "nothing fits a zero window");
    // The persist timer starts at the RTO (1 s here).
    let first = t0 + Duration::from_secs(1);
    assert_eq!(conn.poll_at(), Some(first));
    let events = conn.poll(first);
    let probe = only_sent(&events);
    assert_eq!((probe.seq, probe.payload.len()), (ISS + 1, 1));
    assert_eq!(
        reasons(&events),
        [SendReason::WindowProbe {
            attempt: 1,
            next: Duration::from_secs(2)
        }]
    );
    assert_eq!(conn.snd_nxt(), ISS + 1, "a probe is not in flight");
    // Still zero: the next probe waits twice as long.
    let events = conn.on_segment(first, &ack_with_window(ISS + 1, 0));
    assert!(sent(&events).is_empty());
    let second = first + Duration::from_secs(2);
    assert_eq!(conn.poll_at(), Some(second));
    let events = conn.poll(second);
    assert!(matches!(
        reasons(&events)[..],
        [SendReason::WindowProbe { attempt: 2, .. }]
    ));
    assert_eq!(conn.poll_at(), Some(second + Duration::from_secs(4)));
    // The window opens (the probe's octet was taken): the rest goes out at
    // once, and the persist timer stops.
    let events = conn.on_segment(second, &ack_with_window(ISS + 2, 64 * 1024));
    assert_eq!(payload_lens(&events), [1448, 1448, 103]);
    assert_eq!(seqs(&events)[0].0, ISS + 2);
    assert!(reasons(&events).iter().all(|r| *r == SendReason::Data));
    assert_eq!(conn.snd_nxt(), ISS + 3001);
    assert_eq!(conn.poll_at(), Some(second + conn.rto()), "only the RTO");
}

#[test]
fn a_window_that_closes_with_data_in_flight_starts_the_persist_timer_once_acked() {
    let t0 = Instant::now();
    let mut conn = conn_with_window(t0, 1460, 1448);
    conn.send(t0, &[b'x'; 3000]).unwrap();
    // The one segment is ACKed but the receiver's buffer is full.
    let events = conn.on_segment(t0, &ack_with_window(ISS + 1 + 1448, 0));
    assert!(sent(&events).is_empty());
    assert_eq!(conn.poll_at(), Some(t0 + conn.rto()));
    let events = conn.poll(t0 + conn.rto());
    assert!(matches!(
        reasons(&events)[..],
        [SendReason::WindowProbe { attempt: 1, .. }]
    ));
}

#[test]
fn after_an_rto_the_ack_of_the_first_retransmission_releases_the_rest() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    let events = conn.send(t0, &[b'd'; 5 * 1448]).unwrap();
    assert_eq!(payload_lens(&events), [1448; 5]);
    // All five were lost: the RTO resends the first only.
    let rto_at = conn.poll_at().unwrap();
    let events = conn.poll(rto_at);
    assert_eq!(seqs(&events), [(ISS + 1, 1448)]);
    assert_eq!(
        reasons(&events),
        [SendReason::Retransmission { attempt: 1 }]
    );
    // Its ACK releases the four others at once (go-back-N), not one per RTO.
    let t1 = rto_at + Duration::from_millis(1);
    let events = conn.on_segment(t1, &peer(Flags::ACK, IRS + 1, ISS + 1 + 1448, b""));
    assert_eq!(
        seqs(&events),
        (1..5)
            .map(|i| (ISS + 1 + i * 1448, 1448))
            .collect::<Vec<_>>()
    );
    assert!(reasons(&events)
        .iter()
        .all(|r| *r == SendReason::GoBackN { sacked_skipped: 0 }));
    assert!(reasons(&events).iter().all(|r| r.is_retransmission()));
    let events = conn.on_segment(t1, &peer(Flags::ACK, IRS + 1, ISS + 1 + 5 * 1448, b""));
    assert!(sent(&events).is_empty());
    assert!(conn.all_acked());
    assert_eq!(conn.poll_at(), None);
}

#[test]
fn go_back_n_stops_at_what_was_outstanding_then_new_data_is_data() {
    let t0 = Instant::now();
    // A 2-segment window: 2 in flight, 1 waiting.
    let mut conn = conn_with_window(t0, 1460, 2 * 1448);
    conn.send(t0, &[b'd'; 3 * 1448]).unwrap();
    let rto_at = conn.poll_at().unwrap();
    conn.poll(rto_at);
    let events = conn.on_segment(rto_at, &ack_with_window(ISS + 1 + 1448, 2 * 1448 + 128));
    assert_eq!(
        reasons(&events),
        [SendReason::GoBackN { sacked_skipped: 0 }, SendReason::Data],
        "the second segment again, then the third for the first time"
    );
}

#[test]
fn an_ack_acknowledging_data_waiting_in_the_queue_is_not_acceptable() {
    let now = Instant::now();
    let mut conn = conn_with_window(now, 1460, 1448);
    conn.send(now, &[b'x'; 3000]).unwrap();
    // Only 1448 bytes were sent: an ACK beyond them is for unsent data.
    let events = conn.on_segment(now, &ack_with_window(ISS + 1 + 2000, 4096));
    assert_eq!(reasons(&events), [SendReason::DuplicateAck]);
    assert_eq!(conn.snd_una(), ISS + 1);
}

#[test]
fn close_with_data_queued_sends_the_fin_after_the_data() {
    let now = Instant::now();
    let mut conn = conn_with_window(now, 1460, 1448);
    conn.send(now, &[b'x'; 2000]).unwrap();
    let events = conn.close(now).unwrap();
    assert_eq!(changes(&events), [(State::Established, State::FinWait1)]);
    assert!(sent(&events).is_empty(), "the FIN waits behind the data");
    let events = conn.on_segment(now, &ack_with_window(ISS + 1 + 1448, 4096));
    assert_eq!(
        sent(&events),
        [
            (Flags::PSH_ACK, SendReason::Data),
            (Flags::FIN_ACK, SendReason::Fin)
        ]
    );
    let events = conn.on_segment(now, &ack_with_window(ISS + 2002, 4096));
    assert_eq!(changes(&events), [(State::FinWait1, State::FinWait2)]);
}

#[test]
fn an_old_segment_does_not_shrink_the_window() {
    let now = Instant::now();
    let mut conn = conn_established(now);
    conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 1, ISS + 1, b"abc"));
    conn.on_segment(now, &peer(Flags::PSH_ACK, IRS + 4, ISS + 1, b"def"));
    assert_eq!(conn.snd_wnd(), 509 << 7);
    // A late copy of older data (SEG.SEQ < SND.WL1, still acceptable: it
    // ends inside our window) with a smaller window: not a window update.
    let old = SegmentRepr {
        window: 1,
        ..peer(Flags::PSH_ACK, IRS + 1, ISS + 1, b"abcdefg")
    };
    let events = conn.on_segment(now, &old);
    assert_eq!(events[0], Event::Received(b"g".to_vec()));
    assert_eq!(conn.snd_wnd(), 509 << 7);
}

#[test]
fn an_rto_into_a_closed_window_resends_one_octet() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    conn.send(t0, &[b'd'; 3000]).unwrap();
    // Nothing new is acknowledged and the window closed.
    conn.on_segment(t0, &ack_with_window(ISS + 1, 0));
    let rto_at = conn.poll_at().unwrap();
    let events = conn.poll(rto_at);
    assert_eq!(seqs(&events), [(ISS + 1, 1)]);
}

#[test]
fn after_an_rto_an_ack_beyond_the_retransmission_releases_what_is_still_missing() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    conn.send(t0, &[b'd'; 5 * 1448]).unwrap();
    let rto_at = conn.poll_at().unwrap();
    conn.poll(rto_at);
    // The peer had segments 2 and 3 (SACKed): the retransmitted first one
    // fills the hole up to the fourth, which was lost too.
    let events = conn.on_segment(rto_at, &peer(Flags::ACK, IRS + 1, ISS + 1 + 3 * 1448, b""));
    assert_eq!(
        seqs(&events),
        [(ISS + 1 + 3 * 1448, 1448), (ISS + 1 + 4 * 1448, 1448)]
    );
    assert!(reasons(&events)
        .iter()
        .all(|r| *r == SendReason::GoBackN { sacked_skipped: 0 }));
}

#[test]
fn with_sack_go_back_n_skips_what_the_peer_already_holds() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    assert!(conn.negotiated().unwrap().sack);
    conn.send(t0, &[b'd'; 6 * 1448]).unwrap();
    let seg = |i: usize| ISS + 1 + i * 1448;
    // Segments 0 and 3 were lost: the peer ACKs up to 0 and SACKs 1–2 and
    // 4–5 (RFC 2018).
    let mut sacks = peer(Flags::ACK, IRS + 1, seg(0), b"");
    sacks.options.sack = [Some((seg(1), seg(3))), Some((seg(4), seg(6))), None, None];
    conn.on_segment(t0, &sacks);
    let rto_at = conn.poll_at().unwrap();
    let events = conn.poll(rto_at);
    assert_eq!(seqs(&events), [(seg(0), 1448)]);
    // The ACK of the retransmission stops at the next hole (segment 3):
    // only segment 3 goes again, not 4–5, which the peer SACKed.
    let mut ack = peer(Flags::ACK, IRS + 1, seg(3), b"");
    ack.options.sack = [Some((seg(4), seg(6))), None, None, None];
    let events = conn.on_segment(rto_at, &ack);
    assert_eq!(seqs(&events), [(seg(3), 1448)]);
    assert_eq!(
        reasons(&events),
        [SendReason::GoBackN { sacked_skipped: 0 }]
    );
    // Without SACK agreed, the same ACK sends 3, 4 and 5 again.
    let theirs = TcpOptions {
        sack_permitted: false,
        ..syn_ack().options
    };
    let (mut plain, _) = conn_negotiated(t0, |_| {}, theirs);
    plain.send(t0, &[b'd'; 6 * 1448]).unwrap();
    plain.on_segment(t0, &sacks);
    plain.poll(rto_at);
    let events = plain.on_segment(rto_at, &ack);
    assert_eq!(payload_lens(&events), [1448; 3]);
}

#[test]
fn with_sack_go_back_n_reports_the_bytes_it_passed_over() {
    let t0 = Instant::now();
    let mut conn = conn_established(t0);
    conn.send(t0, &[b'd'; 5 * 1448]).unwrap();
    let seg = |i: usize| ISS + 1 + i * 1448;
    let rto_at = conn.poll_at().unwrap();
    conn.poll(rto_at);
    // 0, 1 and 3 were lost; the retransmitted 0 is ACKed, and the peer
    // SACKs 2 and 4.
    let mut ack = peer(Flags::ACK, IRS + 1, seg(1), b"");
    ack.options.sack = [Some((seg(4), seg(5))), Some((seg(2), seg(3))), None, None];
    let events = conn.on_segment(rto_at, &ack);
    assert_eq!(seqs(&events), [(seg(1), 1448), (seg(3), 1448)]);
    assert_eq!(
        reasons(&events),
        [
            SendReason::GoBackN { sacked_skipped: 0 },
            SendReason::GoBackN {
                sacked_skipped: 1448
            }
        ]
    );
    // Their ACK covers everything: nothing is left to send.
    let events = conn.on_segment(rto_at, &peer(Flags::ACK, IRS + 1, seg(5), b""));
    assert!(sent(&events).is_empty(), "{events:?}");
    assert!(conn.all_acked());
}
