//! synack's IPv6 frames (TCP, Neighbor Discovery) as tshark reads them:
//! every frame is written to a pcap and tshark, with TCP checksum
//! validation on, must call each TCP and ICMPv6 checksum good and read
//! the fields we meant (flow label, hop limit, NDP target and link-layer
//! address options, ICMPv6 error codes and MTU). Then `synack inspect`'s
//! analysis of the same file must agree with tshark on the connection.
//!
//! Needs tshark (CI installs it): skips loudly without it, fails under
//! CI=true. No root.

mod common;

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use etherparse::{icmpv6::DestUnreachableCode, Icmpv6Type, PacketBuilder};
use synack::capture::analyze::{self, Options};
use synack::capture::reader::CaptureReader;
use synack::capture::writer::PcapRecorder;
use synack::wire::{self, Flags, Ipv6Repr, MacAddr, SegmentRepr, SeqNumber, TcpOptions};

const CLIENT_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 2);
const SERVER_MAC: MacAddr = MacAddr(2, 0, 0, 0, 0, 1);

fn client() -> Ipv6Addr {
    "2001:2::2".parse().unwrap()
}
fn server() -> Ipv6Addr {
    "2001:2::1".parse().unwrap()
}

fn seg(from_client: bool, flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> (bool, SegmentRepr) {
    let (src_port, dst_port) = if from_client {
        (40000, 8080)
    } else {
        (8080, 40000)
    };
    let options = if flags.syn() {
        TcpOptions {
            mss: Some(1440),
            sack_permitted: true,
            timestamps: Some((seq, ack)),
            wscale: Some(7),
            ..TcpOptions::default()
        }
    } else {
        TcpOptions::default()
    };
    let segment = SegmentRepr {
        src_port,
        dst_port,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window: 64800,
        options,
        payload: payload.to_vec(),
    };
    (from_client, segment)
}

fn tcp_frame(from_client: bool, segment: &SegmentRepr) -> Vec<u8> {
    let (src, dst, src_mac, dst_mac, flow_label) = if from_client {
        (client(), server(), CLIENT_MAC, SERVER_MAC, 0x12345)
    } else {
        (server(), client(), SERVER_MAC, CLIENT_MAC, 0x54321)
    };
    let ip = Ipv6Repr {
        src,
        dst,
        flow_label,
        hop_limit: wire::DEFAULT_HOP_LIMIT,
    };
    wire::emit_tcp6(src_mac, dst_mac, &ip, segment).unwrap()
}

fn icmp_error(kind: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
    let router: Ipv6Addr = "2001:2::fe".parse().unwrap();
    let builder = PacketBuilder::ethernet2(SERVER_MAC.octets(), CLIENT_MAC.octets())
        .ipv6(router.octets(), client().octets(), 64)
        .icmpv6(kind);
    let mut out = Vec::new();
    // The quote: the offending packet, without its Ethernet header.
    builder
        .write(&mut out, &quote[wire::ETHERNET_HEADER_LEN..])
        .unwrap();
    out
}

/// NS and NA, a whole connection (handshake, data each way, FIN/ACK
/// both ways), then two ICMPv6 errors about its SYN.
fn frames() -> Vec<Vec<u8>> {
    let (c, s) = (1000u32, 5000u32);
    let mut out = vec![
        wire::neighbor_solicitation(CLIENT_MAC, client(), server()).unwrap(),
        wire::neighbor_advertisement(SERVER_MAC, server(), CLIENT_MAC, client()).unwrap(),
    ];
    let exchange = [
        seg(true, Flags::SYN, c, 0, b""),
        seg(false, Flags::SYN_ACK, s, c + 1, b""),
        seg(true, Flags::ACK, c + 1, s + 1, b""),
        seg(true, Flags::PSH_ACK, c + 1, s + 1, b"hello"),
        seg(false, Flags::ACK, s + 1, c + 6, b""),
        seg(false, Flags::PSH_ACK, s + 1, c + 6, b"hello back"),
        seg(true, Flags::ACK, c + 6, s + 11, b""),
        seg(true, Flags::FIN_ACK, c + 6, s + 11, b""),
        seg(false, Flags::ACK, s + 11, c + 7, b""),
        seg(false, Flags::FIN_ACK, s + 11, c + 7, b""),
        seg(true, Flags::ACK, c + 7, s + 12, b""),
    ];
    let syn = tcp_frame(true, &exchange[0].1);
    out.extend(exchange.iter().map(|(fc, s)| tcp_frame(*fc, s)));
    out.push(icmp_error(
        Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port),
        &syn,
    ));
    out.push(icmp_error(Icmpv6Type::PacketTooBig { mtu: 1280 }, &syn));
    out
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut pcap = PcapRecorder::new(file).unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for (i, frame) in frames.iter().enumerate() {
        pcap.record(start + Duration::from_micros(100 * i as u64), frame)
            .unwrap();
    }
    pcap.flush().unwrap();
}

fn tshark_fields(path: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-o", "tcp.check_checksum:TRUE", "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn tshark_reads_our_ipv6_frames_as_we_meant_them() {
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipv6_frames.pcap");
    let frames = frames();
    write_pcap(&path, &frames);
    let rows = tshark_fields(
        &path,
        &[
            "ipv6.flow",
            "ipv6.hlim",
            "tcp.checksum.status",
            "icmpv6.checksum.status",
            "icmpv6.type",
            "icmpv6.code",
            "icmpv6.nd.ns.target_address",
            "icmpv6.nd.na.target_address",
            "icmpv6.opt.linkaddr",
            "icmpv6.mtu",
            "tcp.flags.str",
        ],
    );
    assert_eq!(rows.len(), frames.len());
    // Wireshark's PROTO_CHECKSUM_E_GOOD is 1. In an ICMPv6 error the
    // first value is the outer message's, the second the quoted TCP's.
    let first = |v: &str| v.split(',').next().unwrap_or("").to_string();
    // NS, then NA: hop limit 255, good checksums, targets and options.
    assert_eq!(rows[0][1], "255");
    assert_eq!(first(&rows[0][3]), "1", "NS checksum: {:?}", rows[0]);
    assert_eq!(rows[0][4], "135");
    assert_eq!(rows[0][6], "2001:2::1");
    assert_eq!(rows[0][8], "02:00:00:00:00:02");
    assert_eq!(rows[1][1], "255");
    assert_eq!(first(&rows[1][3]), "1", "NA checksum: {:?}", rows[1]);
    assert_eq!(rows[1][4], "136");
    assert_eq!(rows[1][7], "2001:2::1");
    assert_eq!(rows[1][8], "02:00:00:00:00:01");
    // The eleven TCP segments: good checksums, our flow labels.
    for (i, row) in rows[2..13].iter().enumerate() {
        assert_eq!(row[2], "1", "TCP checksum of segment {i}: {row:?}");
        assert!(row[0] == "0x012345" || row[0] == "0x054321", "{row:?}");
        assert_eq!(row[1], "64");
    }
    assert_eq!(rows[2][10], "··········S·");
    assert_eq!(rows[3][10], "·······A··S·");
    // The errors: type 1 code 4, then type 2 with the MTU.
    assert_eq!(first(&rows[13][3]), "1");
    assert_eq!((rows[13][4].as_str(), rows[13][5].as_str()), ("1", "4"));
    assert_eq!(first(&rows[14][3]), "1");
    assert_eq!((rows[14][4].as_str(), rows[14][9].as_str()), ("2", "1280"));

    // And our own parser reads each frame back as what it is.
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| match wire::parse_ipv6(f).unwrap() {
            wire::Frame6::Tcp(t) if t.checksum_ok => "tcp",
            wire::Frame6::Ndp(n) if n.is_valid() => "ndp",
            wire::Frame6::Icmpv6Error(e) if e.checksum_ok => "error",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds[..2], ["ndp", "ndp"]);
    assert!(kinds[2..13].iter().all(|k| *k == "tcp"));
    assert_eq!(kinds[13..], ["error", "error"]);
}

#[test]
fn inspect_reads_our_ipv6_connection_as_tshark_does() {
    require_tool!("tshark");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipv6_conn.pcap");
    write_pcap(&path, &frames());
    let reader = CaptureReader::open(&path).expect("opens");
    let mut conns = Vec::new();
    analyze::run(reader, Options::default(), &mut |c| conns.push(c));
    let streams = tshark_fields(&path, &["tcp.stream", "tcp.completeness"]);
    let mut ids: Vec<&str> = streams
        .iter()
        .filter(|r| !r[0].is_empty())
        .map(|r| r[0].as_str())
        .collect();
    ids.dedup();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(ids, ["0"], "tshark's streams");
    let c = &conns[0];
    // tshark: SYN 1, SYN-ACK 2, ACK 4, DATA 8, FIN 16 → 31, complete.
    let completeness: u64 = streams.last().unwrap()[1].parse().unwrap();
    assert_eq!(completeness, 31);
    assert_eq!(c.tcp_completeness, 31, "{c:?}");
    assert_eq!(c.client.ip, std::net::IpAddr::V6(client()));
    assert_eq!((c.client.port, c.server.port), (40000, 8080));
    assert!(c.handshake.complete);
    assert_eq!(c.close.kind, analyze::CloseKind::Fin4way);
    assert_eq!((c.packets.c2s, c.packets.s2c), (6, 5));
    assert_eq!((c.bytes.c2s, c.bytes.s2c), (5, 10));
    assert_eq!(
        c.anomalies.iter().into_iter().map(|(_, v)| v).sum::<u64>(),
        0
    );
}
