//! Helpers shared by the integration tests: privilege checks that skip
//! loudly (and fail under CI=true), and tshark as the independent oracle.
#![allow(dead_code)]

pub mod ipv6;

use std::path::Path;
use std::process::Command;

/// Whether this process has root's powers.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether a privileged test may skip: never under CI=true.
pub fn must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns from the test when not root, loudly; under CI=true a missing
/// privilege is a failure, not a skip.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            if $crate::common::must_run() {
                panic!("this test needs root and CI=true forbids skipping it");
            }
            eprintln!(
                "\n*** SKIPPED {}: needs root (raw sockets, network namespaces); run as root ***\n",
                module_path!()
            );
            return;
        }
    };
}

/// Returns from the test when a tool is missing; under CI=true that is a
/// failure (.ci/run installs it).
#[macro_export]
macro_rules! require_tool {
    ($tool:expr) => {
        if !$crate::common::has_tool($tool) {
            if $crate::common::must_run() {
                panic!("{} is missing and CI=true forbids skipping", $tool);
            }
            eprintln!(
                "\n*** SKIPPED {}: {} is not installed ***\n",
                module_path!(),
                $tool
            );
            return;
        }
    };
}

pub fn has_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// One TCP frame as tshark reads it.
#[derive(Debug, Clone)]
pub struct TsharkTcp {
    pub flags: u16,
    pub tcp_checksum_good: bool,
    pub ip_checksum_good: bool,
    pub completeness: u32,
    /// The highest expert severity on the frame (0: none).
    pub max_severity: u32,
    pub malformed: bool,
    pub analysis: String,
    pub len: usize,
    pub comment: String,
}

/// Expert severities (epan/proto.h): PI_WARN and above are problems.
pub const PI_WARN: u32 = 0x0060_0000;

/// Every TCP frame of `pcap`, as tshark dissects it with checksum checks on.
pub fn tshark_tcp(pcap: &Path) -> Vec<TsharkTcp> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "tcp.flags",
            "-e",
            "tcp.checksum.status",
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.completeness",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.malformed",
            "-e",
            "tcp.analysis.flags",
            "-e",
            "tcp.len",
            "-e",
            "frame.comment",
        ])
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            TsharkTcp {
                flags: u16::from_str_radix(f[0].trim_start_matches("0x"), 16).unwrap_or(0),
                tcp_checksum_good: f[1] == "1",
                ip_checksum_good: f[2] == "1",
                completeness: f[3].parse().unwrap_or(0),
                max_severity: f[4]
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .max()
                    .unwrap_or(0),
                malformed: !f[5].is_empty(),
                analysis: f[6].to_string(),
                len: f[7].parse().unwrap_or(0),
                comment: f.get(8).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

/// Asserts that a lab run exited 0 and left the host's network as
/// `before` had it; returns its stdout.
pub fn assert_lab_ok(out: &std::process::Output, before: &(String, String)) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        before,
        &host_network(),
        "the lab left something on the host"
    );
    stdout
}

/// Every TCP frame of `pcap` as tshark reads it, after checking that there
/// is at least one and that each has good checksums, is well formed and
/// carries no expert warning or error.
pub fn assert_clean_capture(pcap: &Path) -> Vec<TsharkTcp> {
    let frames = tshark_tcp(pcap);
    assert!(!frames.is_empty(), "no TCP frames in {}", pcap.display());
    for (i, f) in frames.iter().enumerate() {
        assert!(f.tcp_checksum_good, "frame {i}: bad TCP checksum");
        assert!(f.ip_checksum_good, "frame {i}: bad IPv4 checksum");
        assert!(!f.malformed, "frame {i}: malformed");
        assert!(f.max_severity < PI_WARN, "frame {i}: expert warning {f:?}");
    }
    frames
}

/// tcpdump-like names of TCP flag bytes.
pub fn flag_names(frames: &[TsharkTcp]) -> Vec<&'static str> {
    frames
        .iter()
        .map(|f| match f.flags {
            0x002 => "SYN",
            0x012 => "SYN-ACK",
            0x010 => "ACK",
            0x018 => "PSH-ACK",
            0x011 => "FIN-ACK",
            0x019 => "FIN-PSH-ACK",
            0x004 => "RST",
            0x014 => "RST-ACK",
            _ => "OTHER",
        })
        .collect()
}

/// The host's network devices and namespaces, to compare before and after.
pub fn host_network() -> (String, String) {
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let names: Vec<String> = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .collect();
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    (
        names.join(","),
        String::from_utf8_lossy(&netns.stdout).into_owned(),
    )
}

/// Copies the synack binary to `to` with `cp`, never through a write
/// descriptor of this process: a test thread that forks while the copy is
/// open for writing would hold it across its exec, and executing the copy
/// would then fail with ETXTBSY ("Text file busy").
pub fn copy_binary(to: &Path) {
    let status = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_synack"))
        .arg(to)
        .status()
        .expect("running cp");
    assert!(status.success(), "cp of the synack binary failed");
}
