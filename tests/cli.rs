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

#[test]
fn a_pcap_path_that_cannot_be_created_is_an_environment_error() {
    if !nix::unistd::geteuid().is_root() {
        // Without root the lab stops earlier, at the namespace; see
        // tests/lab_e2e.rs for the privileged paths.
        return;
    }
    synack()
        .args(["lab", "-w", "/nonexistent-dir/x.pcap"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("creating /nonexistent-dir/x.pcap"))
        .stderr(predicate::str::contains("panicked").not());
}
