//! The model without a socket: frames built by hand, fed in order.

use super::live::{default_route_iface, filter, filter_text};
use super::render::{self, TextStyle, TEXT_WIDTH};
use super::*;
use crate::tcp::State::*;
use std::net::Ipv4Addr;

const CLIENT: [u8; 4] = [127, 0, 0, 1];
const SERVER: [u8; 4] = [127, 0, 0, 1];
const CPORT: u16 = 45104;
const SPORT: u16 = 9000;
const MS: u64 = 1_000_000;

#[derive(Clone, Copy)]
struct F {
    syn: bool,
    ack: bool,
    fin: bool,
    psh: bool,
    rst: bool,
}

const SYN: F = F {
    syn: true,
    ack: false,
    fin: false,
    psh: false,
    rst: false,
};
const SYN_ACK: F = F { ack: true, ..SYN };
const ACK: F = F {
    syn: false,
    ..SYN_ACK
};
const PSH_ACK: F = F { psh: true, ..ACK };
const FIN_ACK: F = F { fin: true, ..ACK };
const RST: F = F {
    syn: false,
    ack: false,
    fin: false,
    psh: false,
    rst: true,
};

/// An Ethernet + IPv4 + TCP frame from the client (`c2s`) or the server.
fn tcp(c2s: bool, cport: u16, f: F, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if c2s {
        (CLIENT, SERVER, cport, SPORT)
    } else {
        (SERVER, CLIENT, SPORT, cport)
    };
    let mut b = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 512);
    if f.syn {
        b = b.syn();
    }
    if f.ack {
        b = b.ack(ack);
    }
    if f.fin {
        b = b.fin();
    }
    if f.psh {
        b = b.psh();
    }
    if f.rst {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// The Python tutorial's exchange as `lo` shows it: handshake, "hello",
/// the reply, the server closes first, four-way close.
fn tutorial(cport: u16) -> Vec<Vec<u8>> {
    let (c, s) = (1000u32, 5000u32);
    vec![
        tcp(true, cport, SYN, c, 0, b""),
        tcp(false, cport, SYN_ACK, s, c + 1, b""),
        tcp(true, cport, ACK, c + 1, s + 1, b""),
        tcp(true, cport, PSH_ACK, c + 1, s + 1, b"hello"),
        tcp(false, cport, ACK, s + 1, c + 6, b""),
        tcp(false, cport, PSH_ACK, s + 1, c + 6, b"echo: hello"),
        tcp(true, cport, ACK, c + 6, s + 12, b""),
        tcp(false, cport, FIN_ACK, s + 12, c + 6, b""),
        tcp(true, cport, ACK, c + 6, s + 13, b""),
        tcp(true, cport, FIN_ACK, c + 6, s + 13, b""),
        tcp(false, cport, ACK, s + 13, c + 7, b""),
    ]
}

fn all_options() -> Options {
    Options {
        udp: true,
        ladder: true,
        explain: true,
        comments: true,
    }
}

/// Feeds frames 1 ms apart from t = 1 s since the epoch.
fn feed(watch: &mut Watch, frames: &[Vec<u8>]) -> Vec<Outcome> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| watch.on_frame(1_000_000_000 + i as u64 * MS, f))
        .collect()
}

fn segments(outcomes: &[Outcome]) -> Vec<Segment> {
    outcomes
        .iter()
        .flat_map(|o| &o.events)
        .filter_map(|e| match e {
            Event::Segment(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_tutorial_exchange_gives_both_ends_transitions_row_by_row() {
    let mut watch = Watch::new(all_options());
    let outcomes = feed(&mut watch, &tutorial(CPORT));
    let segs = segments(&outcomes);
    assert_eq!(segs.len(), 11);
    let client: Vec<Vec<(State, State)>> = segs.iter().map(|s| s.client.clone()).collect();
    let server: Vec<Vec<(State, State)>> = segs.iter().map(|s| s.server.clone()).collect();
    assert_eq!(client[0], [(Closed, SynSent)]);
    assert_eq!(server[0], []);
    assert_eq!(segs[0].server_state, Some(Listen));
    assert_eq!(client[1], [(SynSent, Established)]);
    assert_eq!(server[1], [(Listen, SynReceived)]);
    assert_eq!(server[2], [(SynReceived, Established)]);
    assert_eq!(client[7], [(Established, CloseWait)]);
    assert_eq!(server[7], [(Established, FinWait1)]);
    assert_eq!(server[8], [(FinWait1, FinWait2)]);
    assert_eq!(client[9], [(CloseWait, LastAck)]);
    assert_eq!(server[9], [(FinWait2, TimeWait)]);
    assert_eq!(client[10], [(LastAck, Closed)]);
    assert_eq!(segs[10].server_state, Some(TimeWait));
    // Numbers relative to each ISN, times from the first frame.
    assert_eq!(
        (segs[5].seq_rel, segs[5].ack_rel, segs[5].len),
        (1, Some(6), 11)
    );
    assert_eq!(segs[5].t_ns, 5 * MS);
    assert!(segs.iter().all(|s| !s.retransmission && s.conn == 1));
    assert!(segs.iter().all(|s| s.explain.is_some()));
    // Every frame has its comment, tagged with the connection.
    assert!(outcomes
        .iter()
        .all(|o| o.comment.as_deref().is_some_and(|c| c.starts_with("#1 "))));
    // The end comes with the last ACK, not at exit.
    let last = &outcomes[10].events;
    let Some(Event::End(end)) = last.last() else {
        panic!("no end after the last ACK: {last:?}");
    };
    assert_eq!(end.reason, EndReason::Closed);
    assert_eq!(end.report.close.kind, CloseKind::Fin4way);
    assert!(orderly(end.report.close.kind));
    let (rest, summary) = watch.finish();
    assert!(rest.is_empty());
    assert_eq!(
        (summary.connections, summary.closed, summary.open),
        (1, 1, 0)
    );
    assert_eq!((summary.frames, summary.segments), (11, 11));
}

#[test]
fn json_segments_follow_the_narration_contract() {
    let mut watch = Watch::new(Options {
        ladder: true,
        ..Options::default()
    });
    let outcomes = feed(&mut watch, &tutorial(CPORT));
    let mut lines = Vec::new();
    for o in &outcomes {
        for e in &o.events {
            lines.push(render::json(e, true));
        }
    }
    let (rest, summary) = watch.finish();
    assert!(rest.is_empty());
    lines.push(render::summary_json(&summary));
    let values: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seg = values
        .iter()
        .find(|v| v["event"] == "segment" && v["flags"] == "SYN, ACK")
        .unwrap();
    assert_eq!(seg["dir"], "s2c");
    assert_eq!(seg["conn"], 1);
    assert_eq!(seg["t_ns"], MS);
    assert_eq!(seg["seq"], 5000);
    assert_eq!(seg["seq_rel"], 0);
    assert_eq!(seg["ack"], 1001);
    assert_eq!(seg["ack_rel"], 1);
    assert_eq!(seg["len"], 0);
    assert_eq!(seg["delivered"], true);
    assert_eq!(seg["retransmission"], false);
    assert_eq!(
        seg["client"],
        serde_json::json!([["SYN-SENT", "ESTABLISHED"]])
    );
    assert_eq!(
        seg["server"],
        serde_json::json!([["LISTEN", "SYN-RECEIVED"]])
    );
    assert_eq!(seg["client_state"], "ESTABLISHED");
    assert_eq!(seg["server_state"], "SYN-RECEIVED");
    let end = values
        .iter()
        .find(|v| v["event"] == "connection_end")
        .unwrap();
    assert_eq!(end["close"], "fin_4way");
    assert_eq!(end["first_closer"], "server");
    assert!(end["ladder"].as_str().unwrap().contains("FIN-WAIT-2"));
    assert_eq!(values.last().unwrap()["event"], "summary");
    // Every line has an event, and t_ns never goes back.
    let times: Vec<u64> = values
        .iter()
        .map(|v| {
            assert!(v["event"].is_string(), "{v}");
            v["t_ns"].as_u64().unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn interleaved_connections_keep_their_tags_and_text_fits_100_columns() {
    let a = tutorial(40001);
    let b = tutorial(40002);
    let mixed: Vec<Vec<u8>> = a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect();
    let mut watch = Watch::new(Options {
        explain: true,
        ..Options::default()
    });
    let outcomes = feed(&mut watch, &mixed);
    let segs = segments(&outcomes);
    assert!(segs.iter().all(|s| s.conn
        == if s.src.port() == 40001 || s.dst.port() == 40001 {
            1
        } else {
            2
        }));
    for o in &outcomes {
        for e in &o.events {
            let text = render::text(e, TextStyle::default());
            for line in text.lines() {
                assert!(line.chars().count() <= TEXT_WIDTH, "{line}");
            }
            let tag = match e {
                Event::Segment(s) => s.conn,
                Event::Open { conn, .. } => *conn,
                Event::End(end) => end.conn,
                Event::Datagram(_) => unreachable!(),
            };
            assert!(text.starts_with(&format!("#{tag} ")), "{text}");
        }
    }
    let (_, summary) = watch.finish();
    assert_eq!((summary.connections, summary.closed), (2, 2));
    assert!(render::summary_text(&summary).chars().count() <= TEXT_WIDTH);
}

#[test]
fn a_repeated_segment_is_a_retransmission() {
    let mut frames = tutorial(CPORT);
    frames.insert(4, frames[3].clone());
    let mut watch = Watch::new(Options::default());
    let segs = segments(&feed(&mut watch, &frames));
    let flagged: Vec<bool> = segs.iter().map(|s| s.retransmission).collect();
    assert_eq!(flagged.iter().filter(|r| **r).count(), 1);
    assert!(flagged[4]);
    assert_eq!(watch.finish().1.retransmissions, 1);
}

#[test]
fn an_open_connection_ends_at_exit_and_a_refused_one_at_its_rst() {
    let mut watch = Watch::new(Options::default());
    let open = tutorial(40001);
    let refused = [
        tcp(true, 40002, SYN, 7, 0, b""),
        tcp(false, 40002, F { ack: true, ..RST }, 0, 8, b""),
    ];
    let mut frames: Vec<Vec<u8>> = open[..4].to_vec();
    frames.extend(refused);
    let outcomes = feed(&mut watch, &frames);
    let ends: Vec<&End> = outcomes
        .iter()
        .flat_map(|o| &o.events)
        .filter_map(|e| match e {
            Event::End(end) => Some(&**end),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].conn, 2);
    assert_eq!(ends[0].report.close.kind, CloseKind::RstServer);
    let (rest, summary) = watch.finish();
    assert_eq!(rest.len(), 1);
    assert!(matches!(&rest[0], Event::End(e) if e.reason == EndReason::Stopped && e.conn == 1));
    assert_eq!((summary.closed, summary.open), (1, 1));
}

#[test]
fn a_new_syn_on_a_closed_tuple_is_a_new_connection() {
    let mut frames = tutorial(CPORT);
    let mut again = tutorial(CPORT);
    // A new ISN for the second one.
    again[0] = tcp(true, CPORT, SYN, 90_000, 0, b"");
    frames.push(again[0].clone());
    let mut watch = Watch::new(Options::default());
    let segs = segments(&feed(&mut watch, &frames));
    assert_eq!(segs.last().unwrap().conn, 2);
    assert_eq!(segs.last().unwrap().client, [(Closed, SynSent)]);
}

#[test]
fn udp_datagrams_are_numbered_by_flow() {
    let udp = |from_client: bool, payload: &[u8]| {
        let (sp, dp) = if from_client { (5000, 53) } else { (53, 5000) };
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4(CLIENT, SERVER, 64)
            .udp(sp, dp)
            .write(&mut out, payload)
            .unwrap();
        out
    };
    let mut watch = Watch::new(all_options());
    let outcomes = feed(&mut watch, &[udp(true, b"ping"), udp(false, b"pong")]);
    let grams: Vec<&Datagram> = outcomes
        .iter()
        .flat_map(|o| &o.events)
        .filter_map(|e| match e {
            Event::Datagram(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(grams.len(), 2);
    assert_eq!((grams[0].flow, grams[1].flow), (1, 1));
    assert_eq!(grams[1].dir, Direction::ServerToClient);
    assert_eq!((grams[0].len, grams[0].text.as_str()), (4, "ping"));
    assert!(outcomes.iter().all(|o| o.comment.is_some()));
    // Without --udp, they are skipped.
    let mut tcp_only = Watch::new(Options::default());
    assert!(feed(&mut tcp_only, &[udp(true, b"x")])[0].events.is_empty());
    assert_eq!(tcp_only.finish().1.skipped, 1);
}

#[test]
fn transitions_follow_a_revised_path() {
    // A FIN that crossed: CLOSE-WAIT revised to FIN-WAIT-1 then CLOSING.
    let before = [Established, CloseWait];
    let after = [Established, FinWait1, Closing];
    assert_eq!(
        transitions(&before, &after),
        [(CloseWait, FinWait1), (FinWait1, Closing)]
    );
    assert_eq!(transitions(&[], &[Closed, SynSent]), [(Closed, SynSent)]);
    assert_eq!(transitions(&[], &[Listen]), []);
    assert_eq!(transitions(&[Listen], &[Listen]), []);
}

#[test]
fn the_kernel_filter_ors_ports_ors_hosts_and_ands_the_two() {
    let h1 = Ipv4Addr::new(127, 0, 0, 1);
    let h2 = Ipv4Addr::new(127, 0, 0, 2);
    let program = filter(&[9000, 9001], &[h1, h2], false).compile().unwrap();
    let frame = |src: [u8; 4], sp: u16, dp: u16| {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4(src, [10, 0, 0, 9], 64)
            .tcp(sp, dp, 1, 512)
            .write(&mut out, b"")
            .unwrap();
        out
    };
    let pass = |f: &[u8]| crate::wire::bpf::run(&program, f) > 0;
    assert!(pass(&frame([127, 0, 0, 1], 40000, 9000)));
    assert!(pass(&frame([127, 0, 0, 2], 9001, 40000)));
    assert!(!pass(&frame([127, 0, 0, 3], 40000, 9000)), "host");
    assert!(!pass(&frame([127, 0, 0, 1], 40000, 9002)), "port");
    // UDP only with --udp.
    let mut udp = Vec::new();
    etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([127, 0, 0, 1], [10, 0, 0, 9], 64)
        .udp(40000, 9000)
        .write(&mut udp, b"x")
        .unwrap();
    assert!(!pass(&udp));
    let with_udp = filter(&[9000], &[], true).compile().unwrap();
    assert!(crate::wire::bpf::run(&with_udp, &udp) > 0);
    assert_eq!(
        filter_text(&[9000, 9001], &[h1], false),
        "tcp and (port 9000 or port 9001) and host 127.0.0.1"
    );
    assert_eq!(filter_text(&[], &[], true), "(tcp or udp)");
}

#[test]
fn the_default_interface_is_the_default_routes() {
    let table =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                 wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                 eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
    assert_eq!(default_route_iface(table).as_deref(), Some("eth0"));
    assert_eq!(default_route_iface("Iface\tDestination\n"), None);
}

#[test]
fn frames_that_are_not_tcp_are_counted_not_narrated() {
    let mut watch = Watch::new(Options::default());
    let out = watch.on_frame(1, &[0u8; 10]);
    assert!(out.events.is_empty());
    let mut cut = tutorial(CPORT)[0].clone();
    cut.truncate(30);
    assert!(watch.on_frame(2, &cut).events.is_empty());
    assert_eq!(watch.finish().1.skipped, 2);
}
