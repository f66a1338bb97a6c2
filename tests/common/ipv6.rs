//! tshark's reading of `synack lab -6` captures (issue 17): every frame,
//! not only TCP, so Neighbor Discovery is seen and MLD would be.

use std::path::Path;
use std::process::Command;

use super::PI_WARN;

/// One frame of the capture as tshark dissects it, TCP checksums checked.
#[derive(Debug)]
pub struct Frame {
    pub protocols: String,
    pub icmpv6_type: Option<u8>,
    pub icmpv6_checksum_good: bool,
    pub hop_limit: u8,
    pub src: String,
    pub flags: Option<u16>,
    pub tcp_checksum_good: bool,
    pub completeness: u32,
    pub max_severity: u32,
    pub malformed: bool,
    pub mss: Option<u16>,
}

pub fn tshark_frames(pcap: &Path, two_pass: bool) -> Vec<Frame> {
    let mut cmd = Command::new("tshark");
    if two_pass {
        cmd.arg("-2");
    }
    cmd.args(["-n", "-r"]).arg(pcap).args([
        "-o",
        "tcp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    for field in [
        "frame.protocols",
        "icmpv6.type",
        "icmpv6.checksum.status",
        "ipv6.hlim",
        "ipv6.src",
        "tcp.flags",
        "tcp.checksum.status",
        "tcp.completeness",
        "_ws.expert.severity",
        "_ws.malformed",
        "tcp.options.mss_val",
    ] {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            Frame {
                protocols: f[0].to_string(),
                icmpv6_type: f[1].parse().ok(),
                icmpv6_checksum_good: f[2] == "1",
                hop_limit: f[3].parse().unwrap_or(0),
                src: f[4].to_string(),
                flags: u16::from_str_radix(f[5].trim_start_matches("0x"), 16).ok(),
                tcp_checksum_good: f[6] == "1",
                completeness: f[7].parse().unwrap_or(0),
                max_severity: f[8]
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .max()
                    .unwrap_or(0),
                malformed: !f[9].is_empty(),
                mss: f[10].parse().ok(),
            }
        })
        .collect()
}

pub fn flag_name(flags: u16) -> &'static str {
    match flags {
        0x002 => "SYN",
        0x012 => "SYN-ACK",
        0x010 => "ACK",
        0x018 => "PSH-ACK",
        0x011 => "FIN-ACK",
        0x004 => "RST",
        0x014 => "RST-ACK",
        _ => "OTHER",
    }
}

/// The checks every `lab -6` capture passes; returns the TCP flag names.
/// Only IPv6 on the wire; Neighbor Discovery first (the client's
/// solicitation for 2001:2::1 and the server's advertisement), valid
/// (hop limit 255, good checksums); no MLD (ICMPv6 130, 131, 132, 143)
/// and no other ICMPv6; every TCP checksum good, nothing malformed, no
/// expert warning (except on an RST when `rst_warns`).
pub fn assert_clean_ipv6_capture(pcap: &Path, rst_warns: bool) -> Vec<&'static str> {
    let frames = tshark_frames(pcap, false);
    assert!(frames.len() > 4, "{frames:#?}");
    for (i, f) in frames.iter().enumerate() {
        assert!(
            f.protocols.starts_with("eth:ethertype:ipv6:"),
            "frame {i} is not IPv6: {f:?}"
        );
        assert!(!f.malformed, "frame {i}: malformed {f:?}");
        let rst = f.flags.is_some_and(|fl| fl & 0x004 != 0);
        if !(rst_warns && rst) {
            assert!(f.max_severity < PI_WARN, "frame {i}: expert warning {f:?}");
        }
        match f.icmpv6_type {
            Some(135 | 136) => {
                assert!(f.icmpv6_checksum_good, "frame {i}: {f:?}");
                assert_eq!(f.hop_limit, 255, "frame {i}: NDP must not be routed");
            }
            Some(other) => panic!("frame {i}: ICMPv6 type {other} in the capture: {f:?}"),
            None => assert!(f.tcp_checksum_good, "frame {i}: bad TCP checksum {f:?}"),
        }
    }
    // The client asks first, the server answers, before any TCP.
    assert_eq!(frames[0].icmpv6_type, Some(135), "{frames:#?}");
    assert_eq!(frames[0].src, "2001:2::2");
    assert_eq!(frames[1].icmpv6_type, Some(136), "{frames:#?}");
    assert_eq!(frames[1].src, "2001:2::1");
    frames
        .iter()
        .filter_map(|f| f.flags.map(flag_name))
        .collect()
}

/// `tcp.completeness` of the whole connection (tshark's second pass).
pub fn completeness(pcap: &Path) -> u32 {
    tshark_frames(pcap, true)
        .iter()
        .rev()
        .find(|f| f.flags.is_some())
        .map_or(0, |f| f.completeness)
}
