//! The runs quoted in README.md and docs/*.md are real: `docs/tour.py
//! --check` re-runs every quoted command and ladder with this build and
//! compares the output with the quoted one, once what varies from run to run
//! (ISNs, ports, MACs, times, racy interleavings) is normalised away. As root,
//! like the other lab tests: every run is a private network namespace (the
//! lab's own, or `unshare -n` for the connect, serve and watch runs).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_quoted_runs_in_the_docs_still_match_what_synack_prints() {
    require_root!();
    require_tool!("python3");
    require_tool!("tshark");
    // The connect, serve and watch runs: their own network namespace, the
    // guard's nftables table, the --source run's veth pair, runs as nobody.
    for tool in ["unshare", "nft", "ethtool", "setpriv", "ss"] {
        require_tool!(tool);
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let started = Instant::now();
    let out = Command::new("python3")
        .current_dir(root)
        .args([
            "docs/tour.py",
            "--check",
            "--synack",
            env!("CARGO_BIN_EXE_synack"),
        ])
        .output()
        .expect("running python3 docs/tour.py --check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a quoted run no longer matches (remake it with `python3 docs/tour.py` \
         after `cargo build`, and read the diff):\n{stderr}"
    );
    // Every block was checked, none skipped: README's two and the docs' (65 in all).
    let checked = stderr.lines().filter(|l| l.ends_with(": ok")).count();
    assert!(checked >= 60, "only {checked} blocks checked:\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the docs check took {:?}; keep it under two minutes",
        started.elapsed()
    );
}
