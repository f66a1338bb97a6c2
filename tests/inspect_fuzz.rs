//! No input makes `inspect` panic: random bytes, and real captures mutated
//! (bytes flipped, cut, spliced) are read to the end or to a clean error.
//! Bounded: a fixed number of cases, each a small file.

use std::io::Cursor;
use std::path::Path;

use proptest::prelude::*;
use synack::capture::analyze::{self, Options};
use synack::capture::reader::CaptureReader;

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    [
        "four_way_client.pcap",
        "two_interfaces.pcapng",
        "snaplen60.pcap",
        "linktype_sll.pcap",
        "bigendian.pcap",
        "ipv6.pcap",
        "any_sll2.pcap",
        "linktype_null.pcap",
    ]
    .iter()
    .map(|name| std::fs::read(dir.join(name)).expect("seed capture"))
    .collect()
}

/// Reads everything; the only requirement is not to panic, and to account
/// for every packet it says it read.
fn inspect(bytes: Vec<u8>) {
    let len = bytes.len() as u64;
    let Ok(reader) = CaptureReader::new("fuzz".into(), Cursor::new(bytes), Some(len)) else {
        return;
    };
    let mut conns = 0u64;
    let mut packets_in_conns = 0u64;
    let summary = analyze::run(
        reader,
        Options {
            ladder: true,
            ..Options::default()
        },
        &mut |c| {
            conns += 1;
            packets_in_conns += c.packets.c2s + c.packets.s2c;
            let _ =
                synack::inspect_report::ladder(&c, synack::inspect_report::Style { color: true });
            let _ = synack::inspect_report::summary_line("fuzz", &c);
        },
    );
    assert!(summary.tcp_packets <= summary.packets);
    assert_eq!(packets_in_conns, summary.tcp_packets);
    assert!(conns <= summary.tcp_packets);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        inspect(bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(
        pcapng in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let seeds = seeds();
        let head_len = if pcapng { 28 } else { 24 };
        let mut bytes = seeds[usize::from(pcapng)][..head_len].to_vec();
        bytes.extend_from_slice(&body);
        inspect(bytes);
    }

    #[test]
    fn mutated_captures_never_panic(
        seed in 0usize..8,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if do_cut {
            let n = cut.index(bytes.len() + 1);
            bytes.truncate(n);
        }
        inspect(bytes);
    }
}
