//! Pins synack's reading of every stored capture in `captures/` (see
//! captures/README.md for how each was made). No root needed.

use std::path::{Path, PathBuf};

use synack::capture::analyze::{
    self, ClientRule, CloseKind, Closer, ConnectionReport, FileSummary, Options,
};
use synack::capture::reader::CaptureReader;
use synack::tcp::State;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

fn read(name: &str) -> (FileSummary, Vec<ConnectionReport>) {
    let reader = CaptureReader::open(&capture(name)).expect("opens");
    let mut conns = Vec::new();
    let summary = analyze::run(
        reader,
        Options {
            ladder: true,
            ..Options::default()
        },
        &mut |c| conns.push(c),
    );
    (summary, ConnectionReport::merge_parts(conns))
}

/// The one connection of a file read whole.
fn only(name: &str) -> ConnectionReport {
    let (summary, conns) = read(name);
    assert!(summary.error.is_none(), "{name}: {:?}", summary.error);
    assert_eq!(conns.len(), 1, "{name}");
    conns.into_iter().next().expect("one")
}

/// The verdict as one comparable line.
fn verdict(c: &ConnectionReport) -> String {
    format!(
        "{} {} {:?} {:?} {} {} {} {} {}/{} {}/{}",
        c.handshake.complete,
        c.close.kind.name(),
        c.close.first_closer,
        c.client_rule,
        c.zeek.conn_state,
        c.zeek.history,
        c.retransmissions,
        c.handshake.syn_retransmissions,
        c.packets.c2s,
        c.packets.s2c,
        c.bytes.c2s,
        c.bytes.s2c
    )
}

const HELLO_4WAY_CLIENT: &str = "true fin_4way Some(Client) Syn SF ShADadFf 0 0 6/5 5/13";

#[test]
fn client_first_four_way_close() {
    let c = only("four_way_client.pcap");
    assert_eq!(verdict(&c), HELLO_4WAY_CLIENT);
    assert_eq!(c.server.port, 8080);
    assert!(c
        .handshake
        .rtt_us
        .is_some_and(|rtt| rtt > 0 && rtt < 10_000));
    use State::*;
    assert_eq!(
        c.states.client,
        vec![Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]
    );
    assert_eq!(
        c.states.server,
        vec![Listen, SynReceived, Established, CloseWait, LastAck, Closed]
    );
    let opts = c.handshake.client_options.expect("SYN options");
    assert_eq!(opts.mss, Some(65495));
    assert!(opts.sack_permitted && opts.timestamps);
    assert_eq!(opts.window_scale, Some(10));
    // Loopback keeps checksum offload: every frame holds the pseudo sum.
    assert_eq!(c.offloaded_checksums, 11);
    assert_eq!(c.anomalies.bad_checksum, 0);
}

#[test]
fn server_first_four_way_close() {
    let c = only("four_way_server.pcap");
    assert_eq!(
        verdict(&c),
        "true fin_4way Some(Server) Syn SF ShADadfF 0 0 6/5 5/13"
    );
}

#[test]
fn fin_then_fin_ack_is_three_way() {
    let c = only("three_way.pcap");
    assert_eq!(
        verdict(&c),
        "true fin_3way Some(Client) Syn SF ShADadFf 0 0 6/4 5/13"
    );
}

#[test]
fn refused_connection() {
    let c = only("refused.pcap");
    assert_eq!(
        verdict(&c),
        "false rst_server Some(Server) Syn REJ Sr 0 0 1/1 0/0"
    );
    assert_eq!(c.states.server, vec![State::Closed]);
}

#[test]
fn aborts_by_each_side() {
    let c = only("rst_client.pcap");
    assert_eq!(
        verdict(&c),
        "true rst_client Some(Client) Syn RSTO ShADadR 0 0 5/3 5/13"
    );
    let s = only("rst_server.pcap");
    assert_eq!(
        verdict(&s),
        "true rst_server Some(Server) Syn RSTR ShADadr 0 0 4/4 5/13"
    );
}

#[test]
fn syn_retransmission_then_success() {
    let (summary, conns) = read("syn_retransmission.pcap");
    assert!(summary.error.is_none());
    assert_eq!(conns.len(), 2);
    assert_eq!(verdict(&conns[0]), HELLO_4WAY_CLIENT);
    let second = &conns[1];
    assert_eq!(
        verdict(second),
        "true fin_4way Some(Client) Syn SF ShADadFf 1 1 7/5 5/13"
    );
    // The RTT runs from the retransmitted SYN, not the first (1 s before).
    assert!(second.handshake.rtt_us.is_some_and(|rtt| rtt < 10_000));
}

#[test]
fn syn_timeout() {
    let c = only("syn_timeout.pcap");
    assert_eq!(verdict(&c), "false none None Syn S0 S 2 2 3/0 0/0");
}

#[test]
fn zero_window() {
    let c = only("zero_window.pcap");
    // 200,000 bytes through a 4 KB receive buffer, then the client's FIN;
    // the server's ACK of it rides on its own FIN.
    assert_eq!(
        verdict(&c),
        "true fin_3way Some(Client) Syn SF ShADawFf 0 0 56/54 200000/0"
    );
    assert_eq!(c.anomalies.zero_window, 2, "{:?}", c.anomalies);
    assert_eq!(c.anomalies.keep_alive, 2, "{:?}", c.anomalies);
    assert_eq!(c.anomalies.window_update, 1, "{:?}", c.anomalies);
    assert!(c.anomalies.window_full >= 1, "{:?}", c.anomalies);
}

#[test]
fn half_close() {
    let c = only("half_close.pcap");
    assert_eq!(
        verdict(&c),
        "true fin_4way Some(Client) Syn SF ShADaFdf 0 0 8/6 7/21"
    );
}

#[test]
fn concurrent_connections() {
    let (_, conns) = read("concurrent.pcap");
    assert_eq!(conns.len(), 3);
    let ports: Vec<u16> = conns.iter().map(|c| c.client.port).collect();
    assert!(ports[0] != ports[1] && ports[1] != ports[2]);
    for c in &conns {
        assert_eq!(
            verdict(c),
            "true fin_4way Some(Client) Syn SF ShADadFf 0 0 6/5 5/2"
        );
    }
}

#[test]
fn port_reuse_makes_two_connections() {
    let (_, conns) = read("port_reuse.pcap");
    assert_eq!(conns.len(), 2);
    for c in &conns {
        assert_eq!(c.client.port, 40000);
        assert_eq!(
            verdict(c),
            "true fin_3way Some(Server) Syn SF ShADadfF 0 0 5/5 5/13"
        );
    }
    assert!(conns[1].start_us > conns[0].start_us);
}

#[test]
fn mid_stream_capture() {
    let c = only("mid_stream.pcap");
    assert_eq!(c.client_rule, ClientRule::Port);
    assert!(!c.handshake.complete);
    assert_eq!(c.close.kind, CloseKind::Fin4way);
    assert_eq!(c.zeek.history, "DadAFf");
    assert_eq!(c.bytes.s2c, 100_000);
}

#[test]
fn still_open() {
    let c = only("still_open.pcap");
    assert_eq!(verdict(&c), "true none None Syn S1 ShADad 0 0 4/3 5/13");
    assert_eq!(c.states.client.last(), Some(&State::Established));
}

#[test]
fn transfer_counts_unique_and_wire_bytes() {
    let c = only("transfer.pcap");
    assert_eq!(c.bytes.c2s, 100_000);
    assert_eq!(c.bytes.s2c, 100_000);
    assert_eq!(c.wire_bytes, c.bytes);
}

#[test]
fn every_link_type_reads_the_same_connection() {
    for (name, link_type) in [
        ("linktype_raw.pcap", 101),
        ("linktype_ipv4.pcap", 228),
        ("linktype_null.pcap", 0),
        ("linktype_sll.pcap", 113),
        ("vlan.pcap", 1),
        ("bigendian.pcap", 1),
        // The field's upper bits (libpcap's LT_FCS_*) are masked off.
        ("linktype_fcs.pcap", 1),
        ("linktype_flagged.pcap", 1),
    ] {
        let (summary, _) = read(name);
        assert_eq!(summary.link_types[0].link_type, link_type, "{name}");
        assert_eq!(
            verdict(&only(name)),
            verdict(&only("four_way_client.pcap")),
            "{name}"
        );
    }
    for name in [
        "linktype_ipv6.pcap",
        "linktype_loop.pcap",
        "linktype_flagged_ipv6.pcap",
    ] {
        assert_eq!(verdict(&only(name)), verdict(&only("ipv6.pcap")), "{name}");
    }
    let (summary, _) = read("linktype_flagged_ipv6.pcap");
    assert_eq!(summary.link_types[0].link_type, 229);
}

/// Every frame as the reader hands it on: (link type, bytes, orig_len).
fn frames(name: &str) -> Vec<(u32, Vec<u8>, u32)> {
    use synack::capture::reader::Event;
    let mut reader = CaptureReader::open(&capture(name)).expect("opens");
    let mut out = Vec::new();
    while let Some(event) = reader.next_event() {
        if let Event::Packet(rec) = event.expect("reads") {
            out.push((rec.link_type, rec.data.to_vec(), rec.orig_len));
        }
    }
    out
}

/// 0x24000001: Ethernet, 4-byte FCS present; the FCS is cut from every
/// frame. 0x30000001: an FCS length without the present bit; nothing cut.
#[test]
fn an_fcs_is_stripped_only_when_the_link_type_says_it_is_there() {
    let plain = frames("four_way_client.pcap");
    assert_eq!(plain.len(), 11);
    assert_eq!(frames("linktype_fcs.pcap"), plain);
    assert_eq!(frames("linktype_flagged.pcap"), plain);
}

#[test]
fn ipv6_and_sll2_and_nanoseconds() {
    let v6 = only("ipv6.pcap");
    assert_eq!(verdict(&v6), HELLO_4WAY_CLIENT);
    assert!(v6.client.ip.is_ipv6());
    assert_eq!(verdict(&only("any_sll2.pcap")), HELLO_4WAY_CLIENT);
    assert_eq!(verdict(&only("nanosecond.pcap")), HELLO_4WAY_CLIENT);
}

#[test]
fn pcapng_with_two_interfaces_and_link_types() {
    let (summary, conns) = read("two_interfaces.pcapng");
    assert!(summary.error.is_none(), "{:?}", summary.error);
    let links: Vec<u32> = summary.link_types.iter().map(|l| l.link_type).collect();
    assert_eq!(links, vec![276, 1]);
    assert_eq!(conns.len(), 2);
    // The same connections as the two source files, timestamps included
    // (if_tsresol honoured: the Ethernet interface is in nanoseconds).
    let sll2 = only("any_sll2.pcap");
    let ns = only("nanosecond.pcap");
    assert_eq!(conns[0].start_us, sll2.start_us);
    assert_eq!(conns[1].start_us, ns.start_us);
    assert_eq!(conns[1].handshake.rtt_us, ns.handshake.rtt_us);
}

#[test]
fn small_snaplen_uses_ip_lengths() {
    let c = only("snaplen60.pcap");
    assert_eq!(verdict(&c), HELLO_4WAY_CLIENT);
    assert!(c.snaplen_cut_frames > 0);
}

#[test]
fn a_real_bad_checksum_is_counted_not_dropped() {
    let c = only("bad_checksum.pcap");
    assert_eq!(c.anomalies.bad_checksum, 1);
    assert_eq!(c.packets.c2s, 6);
    assert!(c.zeek.history.contains('C'));
}

#[test]
fn truncated_file_keeps_what_was_read() {
    let (summary, conns) = read("truncated.pcap");
    let err = summary.error.expect("cut");
    assert!(!err.is_unreadable_file());
    assert!(err.to_string().contains("byte 878"), "{err}");
    assert_eq!(summary.packets, 10);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].close.kind, CloseKind::None);
    assert_eq!(conns[0].close.first_closer, Some(Closer::Client));
}

#[test]
fn every_stored_capture_is_pinned_here() {
    let source = include_str!("parse_captures.rs");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).expect("captures/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if (name.ends_with(".pcap") || name.ends_with(".pcapng"))
            && !source.contains(&format!("\"{name}\""))
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "captures without a pinned reading: {missing:?}"
    );
}

/// synack's own lab pcaps (made by `synack lab`, see captures/README.md)
/// read as the scenario that made them.
#[test]
fn synack_lab_captures_read_as_their_scenarios() {
    for (name, expected) in [
        (
            "lab_default.pcap",
            "true fin_4way Some(Client) Syn SF ShADadFf 0 0 6/5 5/13",
        ),
        (
            "lab_server_first.pcap",
            "true fin_4way Some(Server) Syn SF ShADadfF 0 0 6/5 5/13",
        ),
        (
            "lab_delayed_ack.pcap",
            "true fin_3way Some(Client) Syn SF ShADadFf 0 0 6/4 5/13",
        ),
        (
            "lab_refused.pcap",
            "false rst_server Some(Server) Syn REJ Sr 0 0 1/1 0/0",
        ),
        (
            "lab_default.pcapng",
            "true fin_4way Some(Client) Syn SF ShADadFf 0 0 6/5 5/13",
        ),
    ] {
        let c = only(name);
        assert_eq!(verdict(&c), expected, "{name}");
        assert_eq!(c.server.port, 8080, "{name}");
    }
}

/// `synack lab --isn 1000 --pcapng`: one Ethernet interface (cli0) in
/// nanoseconds, a comment on every frame, and the same reading as the
/// lab's pcap.
#[test]
fn the_lab_pcapng_carries_its_narration() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};

    let (summary, _) = read("lab_default.pcapng");
    assert_eq!(summary.packets, 13);
    assert_eq!(summary.link_types[0].link_type, 1);
    let bytes = std::fs::read(capture("lab_default.pcapng")).expect("reads");
    let mut reader = PcapNgReader::new(&bytes[..]).expect("a pcapng");
    let mut comments = Vec::new();
    let mut interfaces = 0;
    while let Some(block) = reader.next_block() {
        match block.expect("a block") {
            Block::InterfaceDescription(idb) => {
                interfaces += 1;
                assert!(idb
                    .options
                    .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                assert!(idb
                    .options
                    .contains(&InterfaceDescriptionOption::IfName("cli0".into())));
            }
            Block::EnhancedPacket(epb) => {
                let comment = epb.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                comments.push(comment.expect("every frame has a comment"));
            }
            _ => {}
        }
    }
    assert_eq!(interfaces, 1);
    assert_eq!(comments.len(), 13);
    assert!(comments[0].starts_with("ARP request from the client"));
    assert!(comments[2].starts_with(
        "SYN: client ISN 0x000003e8, offers MSS 1460, SACK, timestamps, window scale 7; client CLOSED → SYN-SENT"
    ));
    assert_eq!(
        comments[12],
        "ACK: acks the server's FIN; client TIME-WAIT; server LAST-ACK → CLOSED"
    );
}

/// The lab's data and option scenarios (captures/README.md): a 300-byte
/// reply to MSS 100, two writes read as one, and UDP.
#[test]
fn synack_lab_data_and_option_captures_read_as_their_scenarios() {
    let mss = only("lab_mss100.pcap");
    // 9 segments from the client, 8 from the server: the 300-byte reply
    // came as 88 + 88 + 88 + 36 (MSS 100 less the timestamps option).
    assert_eq!(
        verdict(&mss),
        "true fin_4way Some(Client) Syn SF ShADadFf 0 0 9/8 5/300"
    );
    let ours = mss.handshake.client_options.expect("SYN options");
    assert_eq!(ours.mss, Some(100));
    assert!(ours.sack_permitted && ours.timestamps);
    assert_eq!(ours.window_scale, Some(7));
    assert_eq!(mss.anomalies.bad_checksum, 0);
    assert_eq!(mss.offloaded_checksums, 0);

    // Two 5-byte writes, one 13-byte reply to the one read.
    let sticky = only("lab_sticky.pcap");
    assert_eq!(
        verdict(&sticky),
        "true fin_4way Some(Client) Syn SF ShADadFf 0 0 7/6 10/13"
    );

    // json-header framing, both messages read at once by a sticky server
    // and answered one by one: 2 × 40 bytes out, 2 × 49 back.
    let framed = only("lab_framing.pcap");
    assert_eq!(
        verdict(&framed),
        "true fin_4way Some(Client) Syn SF ShADadFf 0 0 8/7 80/98"
    );

    // No window scale, SACK or timestamps offered: the server answers MSS
    // only.
    let bare = only("lab_no_options.pcap");
    assert_eq!(verdict(&bare), HELLO_4WAY_CLIENT);
    for offered in [
        bare.handshake.client_options.expect("SYN options"),
        bare.handshake.server_options.expect("SYN-ACK options"),
    ] {
        assert_eq!(offered.mss, Some(1460));
        assert_eq!(offered.window_scale, None);
        assert!(!offered.sack_permitted && !offered.timestamps);
    }

    // UDP only: six frames (ARP both ways, two datagrams each way), no TCP
    // connection, nothing wrong with the file.
    let (summary, conns) = read("lab_udp.pcap");
    assert!(summary.error.is_none(), "{:?}", summary.error);
    assert_eq!((summary.packets, summary.tcp_packets), (6, 0));
    assert!(conns.is_empty());
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

/// The close and loss scenarios of `synack lab` (issue 6): what each
/// stored run must read as. They fill two gaps of the loopback recordings:
/// a simultaneous close and retransmitted data.
#[test]
fn synack_lab_scenario_captures_read_as_their_scenarios() {
    for (name, expected) in [
        // Both FINs crossed: neither acks the other.
        (
            "lab_simultaneous.pcap",
            "true simultaneous Some(Both) Syn SF ShADadfF 0 0 6/5 5/13",
        ),
        (
            "lab_abort_client.pcap",
            "true rst_client Some(Client) Syn RSTO ShADadR 0 0 5/3 5/13",
        ),
        (
            "lab_abort_server.pcap",
            "true rst_server Some(Server) Syn RSTR ShADadr 0 0 4/4 5/13",
        ),
        // The reply comes after the client's FIN (history: F before d).
        (
            "lab_half_close.pcap",
            "true fin_4way Some(Client) Syn SF ShADaFdf 0 0 6/5 5/13",
        ),
        // Data and FIN resent by the client; the server's FIN resent by
        // its kernel, re-ACKed from TIME-WAIT.
        (
            "lab_drop_client.pcap",
            "true fin_4way Some(Client) Syn SF ShADTadFf 3 0 9/6 5/13",
        ),
        // SYN-ACK, reply and FIN resent by the server's kernel.
        (
            "lab_drop_server.pcap",
            "true fin_4way Some(Client) Syn SF ShADadtFf 3 0 6/8 5/13",
        ),
        (
            "lab_syn_backoff.pcap",
            "true fin_4way Some(Client) Syn SF ShADadFf 2 2 8/5 5/13",
        ),
    ] {
        let c = only(name);
        assert_eq!(verdict(&c), expected, "{name}");
        assert_eq!(c.server.port, 8080, "{name}");
        assert_eq!(c.anomalies.bad_checksum, 0, "{name}");
        assert_eq!(c.offloaded_checksums, 0, "{name}: synack computes them");
    }

    use State::*;
    let sim = only("lab_simultaneous.pcap");
    assert_eq!(
        sim.states.client,
        vec![Closed, SynSent, Established, FinWait1, Closing, TimeWait]
    );
    assert_eq!(
        sim.states.server,
        vec![
            Listen,
            SynReceived,
            Established,
            FinWait1,
            Closing,
            TimeWait
        ]
    );
    assert_eq!(sim.tcp_completeness, 31);

    let drop_client = only("lab_drop_client.pcap");
    assert_eq!(drop_client.anomalies.retransmission, 3);
    assert_eq!(drop_client.anomalies.duplicate_ack, 1);
    assert_eq!(drop_client.anomalies.spurious_retransmission, 0);
    assert_eq!(drop_client.anomalies.lost_segment, 0);
    // Unique bytes stay 5/13; the resent data shows on the wire.
    assert_eq!(drop_client.wire_bytes.c2s, 10);

    let drop_server = only("lab_drop_server.pcap");
    assert_eq!(drop_server.anomalies.retransmission, 3);
    assert_eq!(drop_server.anomalies.duplicate_ack, 0);
    assert_eq!(drop_server.wire_bytes.s2c, 26);
    // The handshake RTT runs from the SYN to the ACK of the resent SYN-ACK
    // (about 1 s: Linux's SYN-ACK timer).
    assert!(drop_server
        .handshake
        .rtt_us
        .is_some_and(|rtt| (900_000..2_000_000).contains(&rtt)));

    for name in ["lab_abort_client.pcap", "lab_abort_server.pcap"] {
        // SYN, SYN-ACK, ACK, data, RST.
        assert_eq!(only(name).tcp_completeness, 47, "{name}");
    }
}

/// Reads a capture built in memory.
fn read_bytes(bytes: Vec<u8>) -> (FileSummary, Vec<ConnectionReport>) {
    let len = bytes.len() as u64;
    let reader = CaptureReader::new("built.pcap".into(), std::io::Cursor::new(bytes), Some(len))
        .expect("header");
    let mut conns = Vec::new();
    let summary = analyze::run(reader, Options::default(), &mut |c| conns.push(c));
    (summary, ConnectionReport::merge_parts(conns))
}

/// A connection whose client data has 99 holes of about 50 MB (what a
/// capture that lost most frames, or a mangled sequence number, looks
/// like): unique bytes are the 100 × 100 bytes seen, not the holes.
#[test]
fn unique_bytes_never_count_the_holes() {
    use etherparse::PacketBuilder;
    use std::time::{Duration, SystemTime};
    use synack::capture::writer::PcapRecorder;

    const CLIENT_ISN: u32 = 0xF000_0000; // the data wraps past 2^32
    const SERVER_ISN: u32 = 5000;
    const GAP: u32 = 50_000_000;
    let mut pcap = PcapRecorder::new(Vec::new()).expect("header");
    let mut t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut frame = |c2s: bool, flags: &str, seq: u32, ack: u32, payload: &[u8]| {
        let (src, dst, sp, dp) = if c2s {
            ([198, 18, 0, 2], [198, 18, 0, 1], 40000, 8080)
        } else {
            ([198, 18, 0, 1], [198, 18, 0, 2], 8080, 40000)
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        let mut bytes = Vec::new();
        b.write(&mut bytes, payload).expect("frame");
        t += Duration::from_millis(1);
        pcap.record(t, &bytes).expect("record");
    };
    frame(true, "S", CLIENT_ISN, 0, &[]);
    frame(false, "SA", SERVER_ISN, CLIENT_ISN + 1, &[]);
    frame(true, "A", CLIENT_ISN + 1, SERVER_ISN + 1, &[]);
    let mut next = CLIENT_ISN.wrapping_add(1);
    for _ in 0..100 {
        frame(true, "A", next, SERVER_ISN + 1, &[b'x'; 100]);
        next = next.wrapping_add(100).wrapping_add(GAP);
    }
    let end = next.wrapping_sub(GAP);
    frame(false, "A", SERVER_ISN + 1, end, b"hello, client");
    frame(true, "FA", end, SERVER_ISN + 14, &[]);
    frame(false, "FA", SERVER_ISN + 14, end.wrapping_add(1), &[]);
    frame(true, "A", end.wrapping_add(1), SERVER_ISN + 15, &[]);
    let bytes = pcap.into_inner();
    let (summary, conns) = read_bytes(bytes);
    assert!(summary.error.is_none(), "{:?}", summary.error);
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!((c.packets.c2s, c.packets.s2c), (104, 3));
    assert_eq!((c.bytes.c2s, c.bytes.s2c), (10_000, 13));
    assert_eq!((c.wire_bytes.c2s, c.wire_bytes.s2c), (10_000, 13));
    assert_eq!(c.close.kind, CloseKind::Fin3way);
}

/// lab_default.pcapng with every options list ending at its block, without
/// `opt_endofopt` (no_endofopt.py): the same frames, times and verdict, and
/// nothing to warn about.
#[test]
fn pcapng_options_may_end_without_endofopt() {
    let (summary, _) = read("pcapng_no_endofopt.pcapng");
    assert!(summary.error.is_none(), "{:?}", summary.error);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(summary.packets, 13);
    assert_eq!(
        frames("pcapng_no_endofopt.pcapng"),
        frames("lab_default.pcapng")
    );
    let c = only("pcapng_no_endofopt.pcapng");
    assert_eq!(verdict(&c), verdict(&only("lab_default.pcapng")));
    assert_eq!(
        c.handshake.rtt_us,
        only("lab_default.pcapng").handshake.rtt_us
    );
}

/// Other tools' link types and encapsulations (captures/encap.py wraps
/// four_way_client.pcap's IP packets, or ipv6.pcap's for 6in4): the one
/// connection inside reads as the original, with the tunnel and its outer
/// addresses, every frame decoded, no warning. The checksums are computed
/// by encap.py, so none is offloaded or bad.
#[test]
fn other_link_types_and_tunnels_read_the_connection_inside() {
    use std::net::IpAddr;
    use synack::capture::decap::TunnelKind;
    let client_side: IpAddr = "192.0.2.1".parse().expect("ip");
    let server_side: IpAddr = "192.0.2.2".parse().expect("ip");
    for (name, link_type, tunnel, frames) in [
        ("linktype_ppp.pcap", 9, None, 11),
        ("linktype_ppp_hdlc.pcap", 50, None, 11),
        ("linktype_arcnet_bsd.pcap", 7, None, 11),
        ("linktype_arcnet_linux.pcap", 129, None, 11),
        ("linktype_juniper_ether.pcap", 178, None, 11),
        ("linktype_ipoib.pcap", 242, None, 11),
        ("mpls_ppp.pcap", 9, None, 11),
        ("mpls_ethernet.pcap", 1, None, 11),
        ("vlan_qinq.pcap", 1, None, 11),
        ("tunnel_ipip.pcap", 1, Some(TunnelKind::IpInIp), 11),
        ("tunnel_6in4.pcap", 1, Some(TunnelKind::Ipv6InIp), 11),
        ("tunnel_gre.pcap", 1, Some(TunnelKind::Gre), 11),
        ("tunnel_erspan2.pcap", 1, Some(TunnelKind::Erspan), 11),
        ("tunnel_erspan3.pcap", 1, Some(TunnelKind::Erspan), 11),
        ("tunnel_wccp.pcap", 1, Some(TunnelKind::Wccp), 11),
        ("tunnel_vxlan.pcap", 1, Some(TunnelKind::Vxlan), 11),
        ("tunnel_geneve.pcap", 1, Some(TunnelKind::Geneve), 11),
        ("sflow.pcap", 1, Some(TunnelKind::Sflow), 11),
        // The two data segments each in two fragments.
        ("ip_fragments.pcap", 1, None, 13),
    ] {
        let (summary, conns) = read(name);
        assert!(
            summary.warnings.is_empty(),
            "{name}: {:?}",
            summary.warnings
        );
        assert_eq!(summary.packets, frames, "{name}");
        assert_eq!(summary.tcp_packets, 11, "{name}");
        assert_eq!(summary.link_types.len(), 1, "{name}");
        assert_eq!(summary.link_types[0].link_type, link_type, "{name}");
        assert!(summary.link_types[0].supported, "{name}");
        assert_eq!(conns.len(), 1, "{name}");
        let c = &conns[0];
        assert_eq!(verdict(c), HELLO_4WAY_CLIENT, "{name}");
        assert_eq!(
            (c.offloaded_checksums, c.anomalies.bad_checksum),
            (0, 0),
            "{name}"
        );
        assert_eq!(c.tunnel.map(|t| t.kind), tunnel, "{name}");
        if let Some(t) = c.tunnel.filter(|t| t.kind != TunnelKind::Sflow) {
            // The outer packet's source is the side of the client.
            assert_eq!(
                (t.outer_src, t.outer_dst),
                (client_side, server_side),
                "{name}"
            );
        }
    }
    let v6 = only("tunnel_6in4.pcap");
    assert_eq!(v6.client.ip, "::1".parse::<IpAddr>().expect("ip"));
}

/// An encapsulation synack does not open is counted in a warning, never
/// dropped silently: GRE with an unknown protocol.
#[test]
fn an_unopened_encapsulation_is_a_warning() {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&[
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 47, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ]);
    frame.extend_from_slice(&[0, 0, 0x12, 0x34, 0x45, 0, 0, 0]);
    let mut file = Vec::new();
    file.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    file.extend_from_slice(&[2, 0, 4, 0]);
    file.extend_from_slice(&[0u8; 8]);
    file.extend_from_slice(&65535u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    for _ in 0..3 {
        file.extend_from_slice(&[0u8; 8]);
        let len = (frame.len() as u32).to_le_bytes();
        file.extend_from_slice(&len);
        file.extend_from_slice(&len);
        file.extend_from_slice(&frame);
    }
    let (summary, conns) = read_bytes(file);
    assert!(conns.is_empty());
    assert_eq!(
        summary.warnings,
        vec!["3 frame(s) in an encapsulation not opened (GRE protocol 0x1234), first: frame 1"]
    );
}

/// Builds a pcap of Ethernet/IPv4/TCP frames at given capture times.
struct Crafted {
    pcap: synack::capture::writer::PcapRecorder<Vec<u8>>,
}

impl Crafted {
    fn new() -> Crafted {
        Crafted {
            pcap: synack::capture::writer::PcapRecorder::new(Vec::new()).expect("header"),
        }
    }

    /// A frame `at_ms` after the start, from the client on `port` (`c2s`)
    /// or from the server 198.18.0.1:8080.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        at_ms: u64,
        port: u16,
        c2s: bool,
        flags: &str,
        seq: u32,
        ack: u32,
        len: usize,
    ) {
        use etherparse::PacketBuilder;
        use std::time::{Duration, SystemTime};
        let (src, dst, sp, dp) = if c2s {
            ([198, 18, 0, 2], [198, 18, 0, 1], port, 8080)
        } else {
            ([198, 18, 0, 1], [198, 18, 0, 2], 8080, port)
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        let mut bytes = Vec::new();
        b.write(&mut bytes, &vec![b'x'; len]).expect("frame");
        let t = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_millis(at_ms);
        self.pcap.record(t, &bytes).expect("record");
    }

    fn bytes(self) -> Vec<u8> {
        self.pcap.into_inner()
    }
}

/// Every report of a capture built in memory, in the order they came.
fn reports_of(bytes: Vec<u8>) -> Vec<ConnectionReport> {
    let len = bytes.len() as u64;
    let reader = CaptureReader::new("built.pcap".into(), std::io::Cursor::new(bytes), Some(len))
        .expect("header");
    let mut reports = Vec::new();
    let summary = analyze::run(reader, Options::default(), &mut |c| reports.push(c));
    assert!(summary.error.is_none(), "{:?}", summary.error);
    reports
}

/// Issue 15: an attempt that saw only SYNs is reported (and dropped) 5 s
/// of capture time after its SYN, before connections that end later, with
/// close kind `none`; its retransmission afterwards continues it.
#[test]
fn a_syn_only_attempt_is_reported_after_5_s_of_capture_time() {
    let mut cap = Crafted::new();
    cap.frame(0, 40001, true, "S", 100, 0, 0);
    // Another connection, busy from 5.5 s to 6.6 s, closed at 7 s.
    cap.frame(1, 40002, true, "S", 1000, 0, 0);
    cap.frame(2, 40002, false, "SA", 5000, 1001, 0);
    cap.frame(3, 40002, true, "A", 1001, 5001, 0);
    let mut seq = 1001;
    for i in 0..1100 {
        cap.frame(5_500 + i, 40002, true, "A", seq, 5001, 10);
        seq += 10;
    }
    cap.frame(7_000, 40002, true, "FA", seq, 5001, 0);
    cap.frame(7_001, 40002, false, "FA", 5001, seq + 1, 0);
    cap.frame(7_002, 40002, true, "A", seq + 1, 5002, 0);
    // The attempt's SYN again (same ISN) at 15 s.
    cap.frame(15_000, 40001, true, "S", 100, 0, 0);
    let reports = reports_of(cap.bytes());
    let seen: Vec<(u64, bool, String, &str)> = reports
        .iter()
        .map(|r| {
            let ended = serde_json::to_value(r.ended).expect("json");
            (
                r.index,
                r.continued,
                ended.as_str().unwrap_or("").to_string(),
                r.close.kind.name(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, false, "attempt_timeout".to_string(), "none"),
            (1, false, "close".to_string(), "fin_3way"),
            (0, true, "end_of_capture".to_string(), "none"),
        ]
    );
    assert_eq!(reports[0].packets.c2s, 1);
    assert_eq!(reports[0].zeek.conn_state, "S0");
}

/// Issue 15: a connection quiet for longer than `--idle-timeout` is
/// reported with close kind `none`; when its tuple comes back without a
/// SYN, it continues under the same index with the same relative numbers.
#[test]
fn an_idle_connection_is_reported_and_continues_under_its_index() {
    let mut cap = Crafted::new();
    cap.frame(0, 40001, true, "S", 100, 0, 0);
    cap.frame(1, 40001, false, "SA", 500, 101, 0);
    cap.frame(2, 40001, true, "A", 101, 501, 5);
    cap.frame(3, 40001, false, "A", 501, 106, 0);
    // 10 minutes later.
    cap.frame(600_000, 40001, false, "A", 501, 106, 7);
    cap.frame(600_001, 40001, true, "FA", 106, 508, 0);
    cap.frame(600_002, 40001, false, "FA", 508, 107, 0);
    cap.frame(600_003, 40001, true, "A", 107, 509, 0);
    let reports = reports_of(cap.bytes());
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!((reports[0].index, reports[0].continued), (0, false));
    assert_eq!(reports[0].close.kind, CloseKind::None);
    assert_eq!((reports[1].index, reports[1].continued), (0, true));
    assert_eq!(reports[1].close.kind, CloseKind::Fin3way);
    assert_eq!(reports[1].client_rule, ClientRule::Syn);
    assert_eq!((reports[1].bytes.c2s, reports[1].bytes.s2c), (0, 7));
    let merged = ConnectionReport::merge_parts(reports);
    assert_eq!(merged.len(), 1);
    assert_eq!((merged[0].packets.c2s, merged[0].packets.s2c), (4, 4));
}
