//! The command line as a user meets it: help, versions, usage errors (exit
//! status 2, one clear line, no panic). No privileges needed.

use assert_cmd::Command;
use predicates::prelude::*;

fn synack() -> Command {
    Command::cargo_bin("synack").unwrap()
}

#[test]
fn help_lists_the_lab_and_its_options() {
    synack()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("lab"));
    synack()
        .args(["lab", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--time-wait"))
        .stdout(predicate::str::contains("--delayed-ack"))
        .stdout(predicate::str::contains("--count"));
}

#[test]
fn version_prints_the_crate_version() {
    synack()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_options_exit_2_with_one_clear_message() {
    for args in [
        vec!["lab", "--time-wait", "3 parsecs"],
        vec!["lab", "--timeout", "-1"],
        vec!["lab", "--port", "70000"],
        vec!["lab", "--count", "0"],
        vec!["lab", "--isn", "x"],
        vec!["lab", "--no-such-flag"],
        vec!["no-such-command"],
        vec!["-q", "-v", "lab"],
    ] {
        synack()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("error"))
            .stderr(predicate::str::contains("panicked").not());
    }
}

/// Values that can only fail later are refused while parsing (issue 11):
/// exit 2 at once, naming the option, before any namespace or socket.
#[test]
fn a_zero_port_or_timeout_is_refused_at_once() {
    for (args, why) in [
        (vec!["lab", "--port", "0"], "not in 1..=65535"),
        (vec!["lab", "--timeout", "0"], "more than 0"),
        (vec!["lab", "--timeout", "0ms", "--udp"], "more than 0"),
        (
            vec!["connect", "127.0.0.1:9", "--timeout", "0"],
            "more than 0",
        ),
    ] {
        let started = std::time::Instant::now();
        synack()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(args[args.len() - 2]))
            .stderr(predicate::str::contains(why));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{args:?}"
        );
    }
}

#[test]
fn tcp_only_options_are_refused_with_udp() {
    for flag in [
        vec!["--mss", "100"],
        vec!["--wscale", "3"],
        vec!["--no-wscale"],
        vec!["--sack"],
        vec!["--no-sack"],
        vec!["--timestamps"],
        vec!["--no-timestamps"],
        vec!["--window", "1000"],
        vec!["--isn", "1000"],
        vec!["--close", "server"],
        vec!["--delayed-ack"],
        vec!["--refused"],
        vec!["--framing", "length-prefix"],
        vec!["--sticky"],
    ] {
        let mut args = vec!["lab", "--udp"];
        args.extend(&flag);
        synack()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("cannot be used with"))
            .stderr(predicate::str::contains(flag[0]))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn handshake_option_values_out_of_range_exit_2() {
    for args in [
        vec!["lab", "--wscale", "15"],
        vec!["lab", "--mss", "10"],
        vec!["lab", "--mss", "65536"],
        vec!["lab", "--window", "0"],
        vec!["lab", "--wscale", "3", "--no-wscale"],
        vec!["lab", "--framing", "xml"],
        vec![
            "lab", "--count", "3", "--sticky", "--data", "a", "--data", "b",
        ],
    ] {
        synack()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("error"))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn combinations_the_wire_cannot_say_are_usage_errors() {
    synack()
        .args(["lab", "--window", "100000", "--no-wscale"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--window 100000 needs window scaling",
        ));
    synack()
        .args(["lab", "--window", "10000000", "--wscale", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at most 262140"));
    synack()
        .args(["lab", "--count", "5", "--data", "a", "--data", "b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give --data once"));
    synack()
        .args(["lab", "--sticky", "--data", "alone"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--sticky needs at least two"));
}

#[test]
fn the_lab_help_explains_the_data_and_option_flags() {
    let out = synack().args(["lab", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data <TEXT>",
        "--sticky",
        "--framing <FRAMING>",
        "--udp",
        "-6, --ipv6",
        "--mss <N>",
        "--wscale <N>",
        "--no-wscale",
        "--sack",
        "--no-sack",
        "--timestamps",
        "--no-timestamps",
        "--window <N>",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("[default: 1460]") && help.contains("[default: 64240]"));
}

#[test]
fn a_pcap_path_that_cannot_be_created_is_an_environment_error() {
    if !nix::unistd::geteuid().is_root() {
        // Without root the lab stops earlier, at the namespace; see
        // tests/lab_e2e.rs for the privileged paths.
        return;
    }
    let out = synack()
        .args(["lab", "-w", "/nonexistent-dir/x.pcap"])
        .output()
        .unwrap();
    // The cause once, not repeated from the error's source chain.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "synack: creating /nonexistent-dir/x.pcap (-w): No such file or directory (os error 2)"
    );
    synack()
        .args(["lab", "-w", "/nonexistent-dir/x.pcap"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("creating /nonexistent-dir/x.pcap"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn scenario_options_that_do_not_fit_exit_2_with_the_reason() {
    let big_datagram = "x".repeat(1473);
    for (args, reason) in [
        (vec!["lab", "--drop", "ack"], "unknown segment \"ack\""),
        (vec!["lab", "--drop", "data:0"], "segment number from 1"),
        (vec!["lab", "--drop", ""], "empty --drop SPEC"),
        (vec!["lab", "--drop", "syn,,fin"], "empty item"),
        (
            vec!["lab", "--abort", "client", "--close", "server"],
            "cannot be used with",
        ),
        (
            vec!["lab", "--abort", "server", "--half-close"],
            "cannot be used with",
        ),
        (
            vec!["lab", "--half-close", "--close", "simultaneous"],
            "cannot be used with",
        ),
        (
            vec!["lab", "--drop", "syn", "--count", "3"],
            "cannot be used with",
        ),
        (vec!["lab", "--drop", "data:2"], "1 data segment"),
        (
            vec!["lab", "--drop", "final-ack", "--time-wait", "0"],
            "--time-wait",
        ),
        (
            vec!["lab", "--drop", "final-ack", "--close", "server"],
            "TIME-WAIT",
        ),
        (
            vec!["lab", "--drop", "fin", "--abort", "client"],
            "RST, not FIN",
        ),
        (
            vec!["lab", "--drop", "server-fin", "--close", "simultaneous"],
            "cross",
        ),
        (
            vec!["lab", "--drop", "synack", "--refused"],
            "only the client's syn",
        ),
        (vec!["lab", "--half-close", "--reply", ""], "--reply"),
        (
            vec!["lab", "--close", "simultaneous", "--delayed-ack"],
            "--delayed-ack",
        ),
        (
            vec!["lab", "--drop", "syn,syn,syn,data:1,data:1,data:1"],
            "give --timeout",
        ),
        (
            vec!["lab", "--udp", "--data", &big_datagram],
            "--data of 1473 bytes does not fit one datagram",
        ),
        (
            vec!["lab", "--udp", "--reply", &big_datagram],
            "the MTU 1500 less the 20-byte IPv4 and 8-byte UDP headers",
        ),
    ] {
        // Refused before anything runs (issue 11: it took 10 s).
        let started = std::time::Instant::now();
        synack()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(reason))
            .stderr(predicate::str::contains("panicked").not());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{args:?}"
        );
    }
}

#[test]
fn the_lab_help_names_the_scenarios() {
    synack()
        .args(["lab", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("simultaneous"))
        .stdout(predicate::str::contains("--abort <SIDE>"))
        .stdout(predicate::str::contains("--half-close"))
        .stdout(predicate::str::contains("--drop <SPEC>"))
        .stdout(predicate::str::contains("final-ack"));
}
