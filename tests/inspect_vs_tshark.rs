//! synack's reading of every stored capture against tshark's, field by
//! field: the number of TCP streams, `tcp.completeness`, each
//! `tcp.analysis.*` verdict counted per stream, `tcp.analysis.initial_rtt`,
//! and the frames per direction of `-z conv,tcp`. Known, explained
//! differences are listed in captures/README.md and checked here as such.
//!
//! Needs tshark (CI installs it): skips loudly without it, fails under
//! CI=true.

use std::path::{Path, PathBuf};
use std::process::Command;

use synack::capture::analyze::{self, ConnectionReport, Options};
use synack::capture::reader::CaptureReader;

/// (tshark field, synack's anomaly name).
const VERDICTS: [(&str, &str); 14] = [
    ("tcp.analysis.retransmission", "retransmission"),
    ("tcp.analysis.fast_retransmission", "fast_retransmission"),
    (
        "tcp.analysis.spurious_retransmission",
        "spurious_retransmission",
    ),
    ("tcp.analysis.out_of_order", "out_of_order"),
    ("tcp.analysis.duplicate_ack", "duplicate_ack"),
    ("tcp.analysis.zero_window", "zero_window"),
    ("tcp.analysis.zero_window_probe", "zero_window_probe"),
    (
        "tcp.analysis.zero_window_probe_ack",
        "zero_window_probe_ack",
    ),
    ("tcp.analysis.window_full", "window_full"),
    ("tcp.analysis.window_update", "window_update"),
    ("tcp.analysis.keep_alive", "keep_alive"),
    ("tcp.analysis.keep_alive_ack", "keep_alive_ack"),
    ("tcp.analysis.lost_segment", "lost_segment"),
    ("tcp.analysis.ack_lost_segment", "ack_lost_segment"),
];

/// Explained in captures/README.md: tshark dissects the packet headers an
/// sFlow datagram samples with no payload lengths (`tcp.len` empty), so no
/// data bit in `tcp.completeness` and no sequence analysis: only the
/// streams and the frames per direction are compared there.
const SAMPLED: [&str; 1] = ["sflow.pcap"];

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("captures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    files
}

fn tshark_available() -> bool {
    let found = Command::new("tshark").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tshark is missing under CI=true"
        );
        eprintln!("SKIPPED: tshark is not installed; the comparison with tshark did not run");
    }
    found
}

fn ours(path: &Path) -> Vec<ConnectionReport> {
    let reader = CaptureReader::open(path).expect("opens");
    let mut conns = Vec::new();
    analyze::run(reader, Options::default(), &mut |c| conns.push(c));
    // A connection reported at its close and again for its late packets
    // is one tcp.stream.
    ConnectionReport::merge_parts(conns)
}

/// Per stream: completeness, verdict counts, initial RTT (µs).
#[derive(Debug, Default, Clone)]
struct Stream {
    completeness: u8,
    counts: [u64; VERDICTS.len()],
    initial_rtt_us: Option<u64>,
}

fn tshark_streams(path: &Path) -> Vec<Stream> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-2", "-r"]).arg(path);
    cmd.args(["-T", "fields", "-E", "separator=\t", "-e", "tcp.stream"]);
    cmd.args(["-e", "tcp.completeness", "-e", "tcp.analysis.initial_rtt"]);
    for (field, _) in VERDICTS {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut streams: Vec<Stream> = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let Ok(id) = cols[0].parse::<usize>() else {
            continue;
        };
        if streams.len() <= id {
            streams.resize(id + 1, Stream::default());
        }
        let s = &mut streams[id];
        if let Ok(c) = cols.get(1).unwrap_or(&"").parse::<u8>() {
            s.completeness = s.completeness.max(c);
        }
        if let Ok(rtt) = cols.get(2).unwrap_or(&"").parse::<f64>() {
            s.initial_rtt_us = Some((rtt * 1e6).round() as u64);
        }
        for (i, _) in VERDICTS.iter().enumerate() {
            if !cols.get(3 + i).unwrap_or(&"").is_empty() {
                s.counts[i] += 1;
            }
        }
    }
    streams
}

/// `-z conv,tcp`: (A, B, frames B→A, frames A→B), in order of start.
fn tshark_conversations(path: &Path) -> Vec<(String, String, u64, u64)> {
    let out = Command::new("tshark")
        .args(["-n", "-q", "-z", "conv,tcp", "-r"])
        .arg(path)
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut convs = Vec::new();
    for line in text.lines().filter(|l| l.contains("<->")) {
        let t: Vec<&str> = line.split_whitespace().collect();
        // A <-> B frames bytes unit frames bytes unit …
        let (Ok(left), Ok(right)) = (t[3].parse(), t[6].parse()) else {
            panic!("unexpected conv line: {line}");
        };
        convs.push((t[0].to_string(), t[2].to_string(), left, right));
    }
    convs
}

fn endpoint(e: &synack::capture::analyze::Endpoint) -> String {
    match e.ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", e.port),
        std::net::IpAddr::V6(ip) => format!("{ip}:{}", e.port),
    }
}

#[test]
fn every_capture_reads_as_tshark_reads_it() {
    if !tshark_available() {
        return;
    }
    let mut compared = 0;
    for path in captures() {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let conns = ours(&path);
        let streams = tshark_streams(&path);
        assert_eq!(conns.len(), streams.len(), "{name}: number of TCP streams");
        let per_stream = if SAMPLED.contains(&name.as_str()) {
            &[][..]
        } else {
            &streams[..]
        };
        for (c, s) in conns.iter().zip(per_stream) {
            let what = format!("{name} #{}", c.index);
            assert_eq!(
                c.tcp_completeness, s.completeness,
                "{what}: tcp.completeness"
            );
            let ours: Vec<u64> = VERDICTS
                .iter()
                .map(|(_, n)| {
                    c.anomalies
                        .iter()
                        .into_iter()
                        .find(|(name, _)| name == n)
                        .map_or(0, |(_, v)| v)
                })
                .collect();
            for (i, (field, _)) in VERDICTS.iter().enumerate() {
                assert_eq!(ours[i], s.counts[i], "{what}: {field}");
            }
            match c.handshake.rtt_us {
                // Explained in captures/README.md: tshark stops dissecting
                // a TCP header whose options the snaplen cut, before it
                // records the initial RTT.
                Some(_) if c.snaplen_cut_frames > 0 => assert_eq!(
                    s.initial_rtt_us, None,
                    "{what}: tshark now times snaplen-cut handshakes"
                ),
                // Whole microseconds on both sides (tshark rounds ns).
                Some(rtt) => assert_eq!(
                    Some(rtt),
                    s.initial_rtt_us,
                    "{what}: tcp.analysis.initial_rtt"
                ),
                // Explained in captures/README.md: tshark also times the
                // first ACK after a SYN without a SYN-ACK (a refused SYN's
                // RST/ACK); synack has an RTT only for a completed handshake.
                None => assert!(
                    !c.handshake.complete,
                    "{what}: a complete handshake without an RTT"
                ),
            }
            compared += 1;
        }
        let convs = tshark_conversations(&path);
        if SAMPLED.contains(&name.as_str()) {
            // Nor does tshark's conversation tap see sampled headers.
            assert!(convs.is_empty(), "{name}: tshark now lists sampled frames");
            continue;
        }
        if conns.iter().all(|c| c.snaplen_cut_frames > 0) {
            // Explained in captures/README.md: tshark's conversation tap
            // sees no TCP frame whose header the snaplen cut.
            assert!(convs.is_empty(), "{name}: tshark now lists cut frames");
            continue;
        }
        assert_eq!(convs.len(), conns.len(), "{name}: conv,tcp rows");
        // Rows are matched by endpoints; rows of one tuple (port reuse)
        // come in order of start.
        let mut by_start = conns.clone();
        by_start.sort_by_key(|c| (c.start_us, c.index));
        let mut used = vec![false; by_start.len()];
        for (a, b, left, right) in &convs {
            let found = by_start.iter().enumerate().find(|(i, c)| {
                let (client, server) = (endpoint(&c.client), endpoint(&c.server));
                !used[*i] && ((*a == client && *b == server) || (*a == server && *b == client))
            });
            let Some((i, c)) = found else {
                panic!("{name}: conv,tcp row {a} <-> {b} matches no connection");
            };
            used[i] = true;
            let (c2s, s2c) = (c.packets.c2s, c.packets.s2c);
            if *a == endpoint(&c.client) {
                assert_eq!((*right, *left), (c2s, s2c), "{name}: conv,tcp frames");
            } else {
                assert_eq!((*left, *right), (c2s, s2c), "{name}: conv,tcp frames");
            }
        }
    }
    assert!(compared >= 30, "only {compared} connections compared");
}

/// Other tools' link types and encapsulations (captures/encap.py): tshark
/// and synack both find the one connection inside, with the same TCP
/// flags on the same frames (a fragmented segment on the frame that
/// completes its datagram, as tshark's reassembly shows it).
#[test]
fn encapsulations_read_as_tshark_reads_them() {
    if !tshark_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    for name in [
        "linktype_ppp.pcap",
        "linktype_ppp_hdlc.pcap",
        "linktype_arcnet_bsd.pcap",
        "linktype_arcnet_linux.pcap",
        "linktype_juniper_ether.pcap",
        "linktype_ipoib.pcap",
        "mpls_ppp.pcap",
        "mpls_ethernet.pcap",
        "vlan_qinq.pcap",
        "tunnel_ipip.pcap",
        "tunnel_6in4.pcap",
        "tunnel_gre.pcap",
        "tunnel_erspan2.pcap",
        "tunnel_erspan3.pcap",
        "tunnel_wccp.pcap",
        "tunnel_vxlan.pcap",
        "tunnel_geneve.pcap",
        "sflow.pcap",
        "ip_fragments.pcap",
    ] {
        let path = dir.join(name);
        let out = Command::new("tshark")
            .args(["-n", "-2", "-r"])
            .arg(&path)
            .args(["-Y", "tcp", "-T", "fields", "-E", "separator=\t"])
            .args(["-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.flags"])
            .output()
            .expect("tshark runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut theirs = Vec::new();
        let mut streams = std::collections::BTreeSet::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            let frame: u64 = cols[0].parse().expect("frame number");
            streams.insert(cols[1].to_string());
            let flags = u16::from_str_radix(cols[2].trim_start_matches("0x"), 16).expect("flags");
            theirs.push((frame, flags as u8));
        }
        assert_eq!(streams.len(), 1, "{name}: tshark's tcp.stream values");
        let reader = CaptureReader::open(&path).expect("opens");
        let mut conns = Vec::new();
        analyze::run(
            reader,
            Options {
                ladder: true,
                ..Options::default()
            },
            &mut |c| conns.push(c),
        );
        assert_eq!(conns.len(), 1, "{name}: our connections");
        let ours: Vec<(u64, u8)> = conns[0]
            .ladder
            .iter()
            .map(|r| (r.frame, r.flags.0))
            .collect();
        assert_eq!(ours, theirs, "{name}: (frame, TCP flags)");
    }
}

/// Issue 15: a gap of 10 minutes in the middle of a connection (longer
/// than the idle timeout) leaves one tcp.stream for tshark and one index
/// for synack (reported twice: before the gap, then continued).
#[test]
fn a_gap_of_10_minutes_is_one_stream_as_for_tshark() {
    use etherparse::PacketBuilder;
    use std::time::{Duration, SystemTime};
    use synack::capture::writer::PcapRecorder;
    if !tshark_available() {
        return;
    }
    let mut pcap = PcapRecorder::new(Vec::new()).expect("header");
    let mut frame = |at_ms: u64, c2s: bool, flags: &str, seq: u32, ack: u32, len: usize| {
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
        b.write(&mut bytes, &vec![b'x'; len]).expect("frame");
        let t = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_millis(at_ms);
        pcap.record(t, &bytes).expect("record");
    };
    frame(0, true, "S", 100, 0, 0);
    frame(1, false, "SA", 500, 101, 0);
    frame(2, true, "A", 101, 501, 5);
    frame(3, false, "A", 501, 106, 0);
    frame(600_000, false, "A", 501, 106, 7);
    frame(600_001, true, "A", 106, 508, 0);
    frame(600_002, true, "FA", 106, 508, 0);
    frame(600_003, false, "FA", 508, 107, 0);
    frame(600_004, true, "A", 107, 509, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gap.pcap");
    std::fs::write(&path, pcap.into_inner()).expect("write");

    let reader = CaptureReader::open(&path).expect("opens");
    let mut reports = Vec::new();
    analyze::run(reader, Options::default(), &mut |c| reports.push(c));
    let parts: Vec<(u64, bool)> = reports.iter().map(|r| (r.index, r.continued)).collect();
    assert_eq!(parts, [(0, false), (0, true)]);
    let streams = tshark_streams(&path);
    assert_eq!(streams.len(), 1, "tshark's tcp.stream values");
    let merged = ConnectionReport::merge_parts(reports);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].tcp_completeness, streams[0].completeness);
}

/// Issue 17: the IPv6 captures, frame by frame. For every TCP frame
/// tshark shows, synack's ladder has a row with the same frame number,
/// the same stream and the same flags byte; the endpoints are IPv6 as
/// tshark prints them; the completeness is tshark's.
#[test]
fn ipv6_captures_agree_with_tshark_frame_by_frame() {
    if !tshark_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    for name in ["ipv6.pcap", "linktype_ipv6.pcap"] {
        let path = dir.join(name);
        let reader = CaptureReader::open(&path).expect("opens");
        let mut conns = Vec::new();
        analyze::run(
            reader,
            Options {
                ladder: true,
                ..Options::default()
            },
            &mut |c| conns.push(c),
        );
        conns.sort_by_key(|c| c.index);
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.number", "-e", "tcp.stream"])
            .args(["-e", "tcp.flags", "-e", "ipv6.src", "-e", "tcp.srcport"])
            .output()
            .expect("tshark runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert!(!rows.is_empty(), "{name}: tshark shows no frame");
        let streams: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[1]).collect();
        assert_eq!(conns.len(), streams.len(), "{name}: number of TCP streams");
        for row in &rows {
            let (frame, stream): (u64, usize) = (row[0].parse().unwrap(), row[1].parse().unwrap());
            let flags = u8::from_str_radix(row[2].trim_start_matches("0x00"), 16).unwrap();
            let c = &conns[stream];
            let ladder = c
                .ladder
                .iter()
                .find(|r| r.frame == frame)
                .unwrap_or_else(|| panic!("{name}: frame {frame} is not in connection {stream}"));
            assert_eq!(ladder.flags.0, flags, "{name}: flags of frame {frame}");
            let sender: std::net::Ipv6Addr = row[3].parse().unwrap();
            let port: u16 = row[4].parse().unwrap();
            let from_client = c.client.ip == std::net::IpAddr::V6(sender) && c.client.port == port;
            let from_server = c.server.ip == std::net::IpAddr::V6(sender) && c.server.port == port;
            assert!(from_client || from_server, "{name}: frame {frame}'s sender");
        }
        let tshark = tshark_streams(&path);
        for (c, s) in conns.iter().zip(&tshark) {
            assert_eq!(c.tcp_completeness, s.completeness, "{name}: completeness");
        }
        assert_eq!(conns[0].tcp_completeness, 31, "{name}: a whole connection");
    }
}
