//! The comments and explanations of whole runs, segment by segment.

use std::time::Duration;

use super::*;
use crate::client::faults::{DropItem, ServerRetransmission};
use crate::client::Loss;
use crate::wire::{Flags, TcpOptions};
use State::*;

const ISS: u32 = 1000;
const IRS: u32 = 0x9c3a_0001;

/// A note on a segment lost on purpose while the RTO was `rto_ms`.
fn lost(what: What, item: DropItem, rto_ms: u64) -> Note {
    Note {
        what,
        lost: Some(Loss {
            item,
            rto: Duration::from_millis(rto_ms),
        }),
    }
}

/// A segment of a run with the client's ISN 1000 and the server's IRS.
#[allow(clippy::too_many_arguments)]
fn seg(
    dir: Direction,
    flags: Flags,
    seq_rel: u32,
    ack_rel: Option<u32>,
    len: usize,
    client: &[(State, State)],
    client_state: State,
    server_state: State,
) -> SegmentLine {
    let (own, other) = match dir {
        Direction::ClientToServer => (ISS, IRS),
        Direction::ServerToClient => (IRS, ISS),
    };
    SegmentLine {
        t_ns: 0,
        dir,
        flags,
        seq: own.wrapping_add(seq_rel),
        seq_rel,
        ack: ack_rel.map(|a| other.wrapping_add(a)),
        ack_rel,
        len,
        win: 501,
        options: TcpOptions::default(),
        delivered: true,
        held: false,
        retransmission: false,
        client: client.to_vec(),
        server: Vec::new(),
        client_state,
        server_state: Some(server_state),
        kernel_server_state: None,
        tell_kernel_ahead: false,
        note: Note::default(),
        checksums_ok: true,
    }
}

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

/// The lab's default run: handshake, hello / reply, the client closes
/// first, the server ACKs our FIN at once (TCP_QUICKACK).
fn default_run() -> Vec<SegmentLine> {
    let mut syn = seg(
        C2S,
        Flags::SYN,
        0,
        None,
        0,
        &[(Closed, SynSent)],
        SynSent,
        SynReceived,
    );
    syn.options = TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        timestamps: Some((1, 0)),
        wscale: Some(7),
        ..TcpOptions::default()
    };
    let mut syn_ack = seg(
        S2C,
        Flags::SYN_ACK,
        0,
        Some(1),
        0,
        &[(SynSent, Established)],
        Established,
        SynReceived,
    );
    syn_ack.options = TcpOptions {
        mss: Some(1460),
        wscale: Some(10),
        ..TcpOptions::default()
    };
    vec![
        syn,
        syn_ack,
        seg(
            C2S,
            Flags::ACK,
            1,
            Some(1),
            0,
            &[],
            Established,
            Established,
        ),
        seg(
            C2S,
            Flags::PSH_ACK,
            1,
            Some(1),
            5,
            &[],
            Established,
            Established,
        ),
        seg(
            S2C,
            Flags::ACK,
            1,
            Some(6),
            0,
            &[],
            Established,
            Established,
        ),
        seg(
            S2C,
            Flags::PSH_ACK,
            1,
            Some(6),
            13,
            &[],
            Established,
            Established,
        ),
        seg(
            C2S,
            Flags::ACK,
            6,
            Some(14),
            0,
            &[],
            Established,
            Established,
        ),
        seg(
            C2S,
            Flags::FIN_ACK,
            6,
            Some(14),
            0,
            &[(Established, FinWait1)],
            FinWait1,
            CloseWait,
        ),
        seg(
            S2C,
            Flags::ACK,
            14,
            Some(7),
            0,
            &[(FinWait1, FinWait2)],
            FinWait2,
            LastAck,
        ),
        seg(
            S2C,
            Flags::FIN_ACK,
            14,
            Some(7),
            0,
            &[(FinWait2, TimeWait)],
            TimeWait,
            LastAck,
        ),
        seg(C2S, Flags::ACK, 7, Some(15), 0, &[], TimeWait, Closed),
    ]
}

fn narrate(run: &[SegmentLine]) -> Vec<(String, String)> {
    let mut narrator = Narrator::new();
    run.iter()
        .map(|s| {
            let ctx = narrator.step(s);
            (comment(s, &ctx), explain(s, &ctx).to_string())
        })
        .collect()
}

#[test]
fn the_default_run_is_commented_segment_by_segment() {
    let comments: Vec<String> = narrate(&default_run())
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let expected = [
        "SYN: client ISN 0x000003e8, offers MSS 1460, SACK, timestamps, window scale 7; client CLOSED → SYN-SENT; server SYN-RECEIVED",
        "SYN-ACK: server ISN 0x9c3a0001, acks the client's ISN+1, answers MSS 1460, window scale 10; client SYN-SENT → ESTABLISHED; server SYN-RECEIVED",
        "ACK: acks the server's ISN+1; client ESTABLISHED; server SYN-RECEIVED → ESTABLISHED",
        "data: 5 bytes from the client, seq 1–5 (PSH: deliver at once); client ESTABLISHED; server ESTABLISHED",
        "ACK: acks 5 bytes of the client's data (ack 6); client ESTABLISHED; server ESTABLISHED",
        "data: 13 bytes from the server, seq 1–13 (PSH: deliver at once); client ESTABLISHED; server ESTABLISHED",
        "ACK: acks 13 bytes of the server's data (ack 14); client ESTABLISHED; server ESTABLISHED",
        "FIN: the client closes its sending side (seq 6); client ESTABLISHED → FIN-WAIT-1; server ESTABLISHED → CLOSE-WAIT",
        "ACK: acks the client's FIN; client FIN-WAIT-1 → FIN-WAIT-2; server CLOSE-WAIT → LAST-ACK",
        "FIN: the server closes its sending side (seq 14); client FIN-WAIT-2 → TIME-WAIT; server LAST-ACK",
        "ACK: acks the server's FIN; client TIME-WAIT; server LAST-ACK → CLOSED",
    ];
    for (i, (got, want)) in comments.iter().zip(expected).enumerate() {
        assert_eq!(got, want, "segment {i}");
    }
    assert_eq!(comments.len(), expected.len());
}

#[test]
fn the_default_run_is_explained_with_rfc_sections() {
    let explanations: Vec<String> = narrate(&default_run())
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let expected = [
        "The SYN opens the connection and carries the client's initial sequence number (ISN) and the options it offers (RFC 9293 §3.5, §3.4.1).",
        "The server accepts: its SYN-ACK carries its own ISN and acknowledges the client's ISN+1, so the client is ESTABLISHED and owes it an ACK (RFC 9293 §3.5, §3.10.7.3).",
        "The client's ACK of the server's SYN completes the three-way handshake: both sides are ESTABLISHED (RFC 9293 §3.5).",
        "The client sends 5 bytes of application data, numbered from seq 1; PSH asks the receiver to hand them to its application at once (RFC 9293 §3.8).",
        "The server acknowledges 5 bytes of the client's data: the acknowledgment number 6 is the next byte it expects (RFC 9293 §3.4).",
        "The server sends 13 bytes of application data, numbered from seq 1; PSH asks the receiver to hand them to its application at once (RFC 9293 §3.8).",
        "The client acknowledges 13 bytes of the server's data: the acknowledgment number 14 is the next byte it expects (RFC 9293 §3.4).",
        "The client closes first: its FIN says it will send no more data, takes one sequence number, and the client waits in FIN-WAIT-1 for its ACK (RFC 9293 §3.6).",
        "The server acknowledges the client's FIN: the client's side is closed and it waits in FIN-WAIT-2 for the server's own FIN (RFC 9293 §3.6).",
        "The server closes too: the client acknowledges its FIN and waits in TIME-WAIT (2·MSL) so that a lost last ACK can still be repeated (RFC 9293 §3.6).",
        "The client acknowledges the server's FIN and stays in TIME-WAIT; on this ACK the server's socket goes to CLOSED (RFC 9293 §3.6).",
    ];
    for (i, (got, want)) in explanations.iter().zip(expected).enumerate() {
        assert_eq!(got, want, "segment {i}");
    }
}

#[test]
fn a_delayed_ack_riding_on_the_fin_is_explained() {
    let mut run = default_run();
    run.truncate(8);
    run.push(seg(
        S2C,
        Flags::FIN_ACK,
        14,
        Some(7),
        0,
        &[(FinWait1, FinWait2), (FinWait2, TimeWait)],
        TimeWait,
        LastAck,
    ));
    let (comment, explanation) = narrate(&run).pop().unwrap();
    assert_eq!(
        comment,
        "FIN: the server closes its sending side (seq 14), acks the client's FIN; client FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT; server CLOSE-WAIT → LAST-ACK"
    );
    assert!(
        explanation.contains("rides on its own FIN"),
        "{explanation}"
    );
    assert!(
        explanation.ends_with("(RFC 9293 §3.6, §3.8.6.3)."),
        "{explanation}"
    );
}

#[test]
fn when_the_server_closes_first_the_client_sees_close_wait_and_last_ack() {
    let mut run = default_run();
    run.truncate(7);
    run.push(seg(
        S2C,
        Flags::FIN_ACK,
        14,
        Some(6),
        0,
        &[(Established, CloseWait)],
        CloseWait,
        FinWait1,
    ));
    run.push(seg(
        C2S,
        Flags::ACK,
        6,
        Some(15),
        0,
        &[],
        CloseWait,
        FinWait2,
    ));
    run.push(seg(
        C2S,
        Flags::FIN_ACK,
        6,
        Some(15),
        0,
        &[(CloseWait, LastAck)],
        LastAck,
        TimeWait,
    ));
    run.push(seg(
        S2C,
        Flags::ACK,
        15,
        Some(7),
        0,
        &[(LastAck, Closed)],
        Closed,
        TimeWait,
    ));
    let told = narrate(&run);
    assert!(told[7]
        .1
        .starts_with("The server closes first: the client enters CLOSE-WAIT"));
    assert!(told[7].1.ends_with("(RFC 9293 §3.6, §3.6.1)."));
    assert!(told[8].1.contains("stays in CLOSE-WAIT"), "{}", told[8].1);
    assert!(told[9].1.contains("waits in LAST-ACK"), "{}", told[9].1);
    assert!(told[10].1.contains("holding TIME-WAIT"), "{}", told[10].1);
    assert_eq!(
        told[10].0,
        "ACK: acks the client's FIN; client LAST-ACK → CLOSED; server TIME-WAIT"
    );
}

#[test]
fn a_refused_syn_names_reset_generation() {
    let mut run = default_run();
    run.truncate(1);
    run[0].server_state = Some(Closed);
    run.push(seg(
        S2C,
        Flags::RST_ACK,
        0,
        Some(1),
        0,
        &[(SynSent, Closed)],
        Closed,
        Closed,
    ));
    let (comment, explanation) = narrate(&run).pop().unwrap();
    assert_eq!(
        comment,
        "RST+ACK: the server refuses the SYN (no socket listens on the port); client SYN-SENT → CLOSED; server CLOSED"
    );
    assert!(explanation.contains("connection refused"), "{explanation}");
    assert!(explanation.ends_with("(RFC 9293 §3.10.7.1, §3.5.2, §3.10.7.3)."));
}

#[test]
fn retransmissions_are_recognised_from_the_numbers() {
    // The SYN goes twice (the first was lost), then the server's FIN is
    // repeated while the client sits in TIME-WAIT.
    let mut run = default_run();
    let mut again = run[0].clone();
    again.client.clear();
    again.note = Note::new(What::Sent(SendReason::Retransmission { attempt: 1 }));
    run.insert(1, again);
    let mut fin_again = run[10].clone();
    fin_again.client.clear();
    run.push(fin_again);
    run.push(seg(C2S, Flags::ACK, 7, Some(15), 0, &[], TimeWait, Closed));
    let told = narrate(&run);
    assert!(
        told[1]
            .0
            .starts_with("retransmission #1 of the client's SYN: client ISN 0x000003e8"),
        "{}",
        told[1].0
    );
    assert_eq!(
        told[1].1,
        "The client sends its SYN again: no acknowledgment came before its retransmission \
         timer expired (RFC 9293 §3.8.1)."
    );
    assert!(
        told[12]
            .0
            .starts_with("retransmission of the server's FIN: the server closes its sending side"),
        "{}",
        told[12].0
    );
    assert!(told[13]
        .0
        .starts_with("duplicate ACK: the client repeats ack 15"));
    assert!(
        told[13].1.contains("this is why TIME-WAIT lasts 2·MSL"),
        "{}",
        told[13].1
    );
    // Not every repeated ack is a duplicate: the FIN after the ACK of the
    // same data is not.
    assert!(!told[8].0.starts_with("duplicate"), "{}", told[8].0);
}

#[test]
fn notes_that_add_something_travel_with_the_text() {
    let mut run = default_run();
    run[3].note = lost(What::Sent(SendReason::Data), DropItem::Data(1), 200);
    run[4].note = Note::new(What::Received(Received::Ignored(
        "outside the receive window",
    )));
    let told = narrate(&run);
    let dropped = "dropped on purpose (--drop data:1): recorded leaving, never delivered; the \
                   client's RTO (200 ms) will resend it";
    assert!(
        told[3].0.ends_with(&format!("; {dropped}")),
        "{}",
        told[3].0
    );
    assert!(
        told[3]
            .1
            .ends_with(&format!("at once — {dropped} (RFC 9293 §3.8).")),
        "{}",
        told[3].1
    );
    assert_eq!(
        told[4].1,
        "The client drops this segment without effect: outside the receive window (RFC 9293 §3.10.7.4)."
    );
    // A plain note is left out.
    run[3].note = Note::new(What::Sent(SendReason::Data));
    assert!(!narrate(&run)[3].0.contains("data;"));
}

#[test]
fn resets_and_aborts_are_told_apart() {
    let mut run = default_run();
    run.truncate(7);
    run.push(seg(
        C2S,
        Flags::RST_ACK,
        6,
        Some(14),
        0,
        &[(Established, Closed)],
        Closed,
        Closed,
    ));
    let told = narrate(&run);
    assert!(told[7]
        .0
        .starts_with("RST+ACK: the client resets the connection"));
    assert!(told[7].1.starts_with("The client aborts"));
    assert!(told[7].1.ends_with("(RFC 9293 §3.10.5, §3.5.2)."));
    run.pop();
    run.push(seg(
        S2C,
        Flags::RST,
        14,
        None,
        0,
        &[(Established, Closed)],
        Closed,
        Closed,
    ));
    let told = narrate(&run);
    assert_eq!(
        told[7].0,
        "RST: the server resets the connection; client ESTABLISHED → CLOSED; server ESTABLISHED → CLOSED"
    );
    assert!(told[7].1.ends_with("(RFC 9293 §3.5.3, §3.10.7.4)."));
}

#[test]
fn half_close_and_simultaneous_close_get_their_sections() {
    let mut run = default_run();
    run.truncate(9);
    run.push(seg(
        S2C,
        Flags::PSH_ACK,
        14,
        Some(7),
        4,
        &[],
        FinWait2,
        CloseWait,
    ));
    let told = narrate(&run);
    assert!(told[9].1.contains("half-closed"), "{}", told[9].1);
    assert!(told[9].1.ends_with("(RFC 9293 §3.6.1)."));

    let mut run = default_run();
    run.truncate(8);
    run.push(seg(
        S2C,
        Flags::FIN_ACK,
        14,
        Some(6),
        0,
        &[(FinWait1, Closing)],
        Closing,
        Closing,
    ));
    run.push(seg(
        S2C,
        Flags::ACK,
        15,
        Some(7),
        0,
        &[(Closing, TimeWait)],
        TimeWait,
        Closing,
    ));
    let told = narrate(&run);
    assert!(told[8].1.contains("simultaneous close"), "{}", told[8].1);
    assert!(
        told[9].1.contains("from CLOSING to TIME-WAIT"),
        "{}",
        told[9].1
    );
}

#[test]
fn arp_frames_are_commented_too() {
    assert_eq!(
        arp_comment(C2S, ArpOp::Request, "who has 198.18.0.1? tell 198.18.0.2"),
        "ARP request from the client: who has 198.18.0.1? tell 198.18.0.2 (the client needs the server's MAC before it can send)"
    );
    assert!(
        arp_comment(S2C, ArpOp::Reply, "198.18.0.1 is at 02:00:00:00:00:01")
            .starts_with("ARP reply from the server")
    );
}

#[test]
fn without_the_kernel_view_the_server_part_is_left_out() {
    let mut run = default_run();
    for s in &mut run {
        s.server_state = None;
    }
    let told = narrate(&run);
    assert_eq!(
        told[0].0,
        "SYN: client ISN 0x000003e8, offers MSS 1460, SACK, timestamps, window scale 7; client CLOSED → SYN-SENT"
    );
}

#[test]
fn udp_datagrams_are_commented_without_tcp_words() {
    let d = crate::report::DatagramLine {
        t_ns: 0,
        dir: C2S,
        src_port: 40000,
        dst_port: 8080,
        number: 2,
        len: 5,
        text: "world".into(),
        checksums_ok: true,
    };
    assert_eq!(
        datagram_comment(&d),
        "UDP datagram #2 from the client: 5 bytes \"world\", one send() = one datagram; no connection, no sequence or acknowledgment numbers"
    );
    let exp = datagram_explain(&d);
    assert!(exp.sections.is_empty());
    assert!(exp.to_string().ends_with("(UDP, RFC 768)."), "{exp}");
}

#[test]
fn compound_notes_keep_only_what_adds_something() {
    let mut run = default_run();
    run[7].note = lost(What::Sent(SendReason::Fin), DropItem::Fin, 2000);
    run[10].note = Note::new(What::AckFromTimeWait);
    let told = narrate(&run);
    assert!(
        told[7].0.ends_with(
            "server ESTABLISHED → CLOSE-WAIT; dropped on purpose (--drop fin): recorded leaving, \
             never delivered; the client's RTO (2000 ms) will resend it"
        ),
        "{}",
        told[7].0
    );
    assert!(!told[7].0.contains("active close"), "{}", told[7].0);
    // A note that cites the RFC itself stays in the comment only.
    assert!(
        told[10].0.ends_with("(RFC 9293 §3.10.7.4)"),
        "{}",
        told[10].0
    );
    assert!(!told[10].1.contains("§3.10.7.4"), "{}", told[10].1);
    assert_eq!(
        informative_note(&Note::new(What::Sent(SendReason::Data))),
        None
    );
    // A final ACK that never arrives does not close the server.
    run[10].server_state = Some(LastAck);
    let told = narrate(&run);
    assert!(
        told[10]
            .1
            .contains("the server's socket closes when this ACK reaches it"),
        "{}",
        told[10].1
    );
}

#[test]
fn a_held_fin_makes_the_clients_fin_cross_it() {
    // --close simultaneous: the server's FIN is held, the client sends
    // its own, then takes the server's (FIN-WAIT-1 → CLOSING) with its ACK.
    let mut run = default_run();
    run.truncate(7);
    let mut held = seg(
        S2C,
        Flags::FIN_ACK,
        14,
        Some(6),
        0,
        &[],
        Established,
        FinWait1,
    );
    held.note = Note::new(What::FinHeld);
    run.push(held);
    run.push(seg(
        C2S,
        Flags::FIN_ACK,
        6,
        Some(14),
        0,
        &[(Established, FinWait1)],
        FinWait1,
        Closing,
    ));
    run.push(seg(
        C2S,
        Flags::ACK,
        7,
        Some(15),
        0,
        &[(FinWait1, Closing)],
        Closing,
        TimeWait,
    ));
    run.push(seg(
        S2C,
        Flags::ACK,
        15,
        Some(7),
        0,
        &[(Closing, TimeWait)],
        TimeWait,
        TimeWait,
    ));
    let told = narrate(&run);
    assert!(
        told[7]
            .0
            .ends_with("; the server's FIN, held: simultaneous close, our FIN goes first as if the two crossed on the wire"),
        "{}",
        told[7].0
    );
    assert!(
        told[8]
            .1
            .contains("the two FINs cross (simultaneous close)"),
        "{}",
        told[8].1
    );
    assert!(told[9].1.contains("so it goes to CLOSING"), "{}", told[9].1);
    assert!(
        told[10].1.contains("from CLOSING to TIME-WAIT"),
        "{}",
        told[10].1
    );
}

#[test]
fn a_retransmission_that_is_finally_taken_says_so() {
    // --drop synack: the first SYN-ACK is ignored, the server's kernel
    // sends it again and this time the client takes it.
    let mut run = default_run();
    run[1].client.clear();
    run[1].client_state = SynSent;
    run[1].note = lost(What::Nothing, DropItem::SynAck, 1000);
    let mut again = default_run()[1].clone();
    again.note = Note::new(What::ServerRetransmission(ServerRetransmission::Of {
        item: DropItem::SynAck,
        after: Duration::from_millis(1003),
    }));
    run.insert(2, again);
    let told = narrate(&run);
    assert!(
        told[2]
            .0
            .starts_with("retransmission of the server's SYN-ACK: server ISN 0x9c3a0001"),
        "{}",
        told[2].0
    );
    assert!(
        told[2].1.starts_with(
            "The server sends its SYN-ACK again: no acknowledgment came before its \
             retransmission timer expired; this time the client takes it and is ESTABLISHED"
        ),
        "{}",
        told[2].1
    );
}

#[test]
fn go_back_n_and_zero_window_probes_are_told_for_what_they_are() {
    // After the handshake: two data segments, the RTO resends the first,
    // its ACK releases the second (go-back-N); later a probe of a zero
    // window.
    let mut run: Vec<SegmentLine> = default_run().into_iter().take(3).collect();
    let data = |seq: u32, len: usize, reason: SendReason| {
        let mut s = seg(
            C2S,
            Flags::PSH_ACK,
            seq,
            Some(1),
            len,
            &[],
            Established,
            Established,
        );
        s.note = Note::new(What::Sent(reason));
        s
    };
    run.push(data(1, 100, SendReason::Data));
    run.push(data(101, 100, SendReason::Data));
    run.push(data(1, 100, SendReason::Retransmission { attempt: 1 }));
    run.push(seg(
        S2C,
        Flags::ACK,
        1,
        Some(101),
        0,
        &[],
        Established,
        Established,
    ));
    run.push(data(101, 100, SendReason::GoBackN { sacked_skipped: 0 }));
    run.push(seg(
        S2C,
        Flags::ACK,
        1,
        Some(201),
        0,
        &[],
        Established,
        Established,
    ));
    run.push(data(
        201,
        1,
        SendReason::WindowProbe {
            attempt: 1,
            next: Duration::from_secs(2),
        },
    ));
    let told = narrate(&run);
    assert!(
        told[7]
            .1
            .contains("the ACK of the first retransmission releases the rest at once (go-back-N)"),
        "{}",
        told[7].1
    );
    assert!(told[7].0.starts_with("retransmission of"), "{}", told[7].0);
    assert!(
        told[9].1.contains("persist timer") && told[9].1.ends_with("(RFC 9293 §3.8.6.1)."),
        "{}",
        told[9].1
    );
}
