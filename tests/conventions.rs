//! The conventions a command-line user expects of any tool: shell
//! completions that load, manual pages that render, colour that follows
//! NO_COLOR and CLICOLOR_FORCE. No privileges needed.

mod common;

use std::process::Command as Process;

use assert_cmd::Command;

fn synack() -> Command {
    Command::cargo_bin("synack").unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = synack().args(args).output().unwrap();
    assert!(out.status.success(), "synack {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completions_source_cleanly_and_complete_the_subcommands() {
    require_tool!("bash");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("synack.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    // Source the script, then ask its function for `synack l<TAB>` and
    // `synack lab --ti<TAB>` the way bash's readline would.
    let probe = format!(
        r#"set -e
source {script}
complete -p synack
COMP_WORDS=(synack l); COMP_CWORD=1; COMP_LINE="synack l"; COMP_POINT=${{#COMP_LINE}}
_synack synack l synack
echo "words: ${{COMPREPLY[*]}}"
COMP_WORDS=(synack lab --time); COMP_CWORD=2; COMP_LINE="synack lab --time"; COMP_POINT=${{#COMP_LINE}}
_synack synack --time lab
echo "flags: ${{COMPREPLY[*]}}""#,
        script = script.display()
    );
    let out = Process::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sourcing failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _synack synack"), "{stdout}");
    assert!(stdout.contains("words: lab"), "{stdout}");
    assert!(
        stdout.contains("--time-wait") && stdout.contains("--timeout"),
        "{stdout}"
    );
}

#[test]
fn every_shell_gets_a_script_that_names_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        for sub in [
            "lab",
            "connect",
            "serve",
            "inspect",
            "watch",
            "completions",
            "man",
        ] {
            assert!(script.contains(sub), "{shell} completions miss {sub}");
        }
    }
    synack()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("invalid value"));
}

#[test]
fn manual_pages_render_with_man() {
    require_tool!("man");
    let dir = tempfile::tempdir().unwrap();
    for (page, title, must) in [
        (None, "synack(1)", "synack-lab(1)"),
        (Some("lab"), "synack-lab(1)", "--time-wait"),
        (Some("connect"), "synack-connect(1)", "--let-kernel-rst"),
        (Some("serve"), "synack-serve(1)", "--framing"),
        (Some("inspect"), "synack-inspect(1)", "--summary"),
        (Some("watch"), "synack-watch(1)", "--explain"),
    ] {
        let mut args = vec!["man"];
        args.extend(page);
        let roff = stdout_of(&args);
        let file = dir.path().join("page.1");
        std::fs::write(&file, roff).unwrap();
        let out = Process::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "man -l failed for {page:?}: {err}");
        assert!(!err.contains("warning"), "man warns for {page:?}: {err}");
        // man hyphenates and may break lines: compare without them.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(title), "{title} missing:\n{text}");
        assert!(flat.contains(must), "{must} missing from {title}:\n{text}");
    }
    synack().args(["man", "nothing"]).assert().code(2);
}

/// The escape sequences in `inspect`'s ladder for one stored capture, with
/// the given environment and `--color auto`.
fn escapes_with(env: &[(&str, &str)]) -> usize {
    let mut cmd = synack();
    cmd.env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["inspect", "captures/port_reuse.pcap"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .matches("\x1b[")
        .count()
}

#[test]
fn colour_follows_no_color_and_clicolor_force() {
    // stdout is a pipe here: no colour unless forced.
    assert_eq!(escapes_with(&[]), 0);
    assert!(escapes_with(&[("CLICOLOR_FORCE", "1")]) > 0);
    // NO_COLOR counts only when non-empty (no-color.org).
    assert!(escapes_with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]) > 0);
    assert_eq!(
        escapes_with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]),
        0
    );
    // An explicit flag wins over the environment.
    let out = synack()
        .env("NO_COLOR", "1")
        .args(["--color", "always", "inspect", "captures/port_reuse.pcap"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\x1b["));
}

/// Every stdout line of a `--json` run, parsed; the run's exit status.
fn json_lines(args: &[&str]) -> (Vec<serde_json::Value>, i32) {
    let out = synack().args(args).output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    (lines, out.status.code().unwrap())
}

#[test]
fn a_failed_json_run_ends_with_an_error_object_on_stdout() {
    for (args, exit) in [
        (vec!["inspect", "--json", "/nonexistent/x.pcap"], 2),
        (vec!["inspect", "--json", "Cargo.toml"], 2),
        (vec!["lab", "--json", "--no-such-flag"], 2),
        (vec!["inspect", "--json", "captures/truncated.pcap"], 1),
        (
            vec!["connect", "--json", "--timeout", "soon", "127.0.0.1:9"],
            2,
        ),
        (vec!["serve", "--json", "--idle-timeout", "0"], 2),
    ] {
        let (lines, code) = json_lines(&args);
        assert_eq!(code, exit, "{args:?}");
        let last = lines.last().unwrap_or_else(|| panic!("{args:?}: no JSON"));
        assert_eq!(last["event"], "error", "{args:?}: {last}");
        assert_eq!(last["exit"], exit, "{args:?}: {last}");
        assert!(
            last["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{args:?}: {last}"
        );
    }
}

/// The section headings of a help text, in order.
fn headings(help: &str) -> Vec<&str> {
    help.lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect()
}

#[test]
fn every_subcommand_help_teaches_examples_headings_and_exit_codes() {
    for sub in [
        "lab",
        "connect",
        "serve",
        "inspect",
        "watch",
        "completions",
        "man",
    ] {
        let long = stdout_of(&[sub, "--help"]);
        let short = stdout_of(&[sub, "-h"]);
        let found = headings(&long);
        // Examples right after the usage line, exit codes last.
        let usage = long.find("Usage:").unwrap();
        let examples = long
            .find("\nExamples:\n")
            .unwrap_or_else(|| panic!("{sub}: {long}"));
        assert!(usage < examples, "{sub}: examples before usage");
        let examples_block = &long[examples..];
        let lines = examples_block
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter(|l| l.trim_start().starts_with("synack") || l.contains("sudo synack"))
            .count();
        assert!((2..=4).contains(&lines), "{sub}: {lines} examples");
        assert_eq!(found.last(), Some(&"Exit codes:"), "{sub}: {found:?}");
        assert!(long.contains("\n    0  "), "{sub}: exit status 0 missing");
        assert!(long.contains("\n    2  "), "{sub}: exit status 2 missing");
        assert!(found.contains(&"Global options:"), "{sub}: {found:?}");
        // The globals are only under their heading, not mixed in.
        let global = long.find("Global options:").unwrap();
        assert!(long[..global].find("--verbose").is_none(), "{sub}");
        // No option left without a heading.
        assert!(!found.contains(&"Options:"), "{sub}: {found:?}");
        // -h stays a summary.
        assert!(!short.contains("Examples:"), "{sub}");
        assert!(short.len() < long.len(), "{sub}: -h is not shorter");
    }
    let lab = stdout_of(&["lab", "--help"]);
    for heading in [
        "What to run:",
        "What to show:",
        "Where to write:",
        "Timing:",
        "TCP options in the SYN:",
    ] {
        assert!(headings(&lab).contains(&heading), "lab: {heading}");
    }
}

#[test]
fn pcapng_under_a_pcap_name_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.pcap");
    synack()
        .args(["lab", "--pcapng", "-w"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("x.pcapng"));
    assert!(!file.exists(), "nothing is written on a usage error");
}

/// The repository stands alone: nothing a user reads or runs points at a
/// folder outside it (issue 12).
#[test]
fn nothing_refers_outside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![
        root.join("README.md"),
        root.join("docs"),
        root.join("bench"),
        root.join(".ci"),
    ];
    let mut offenders = Vec::new();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let entry = entry.unwrap().path();
                if !entry.ends_with("target") {
                    stack.push(entry);
                }
            }
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            // Spelled in two pieces, so this file does not name it itself.
            if text.contains(concat!("..", "/shared")) {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these point outside the repository: {offenders:?}"
    );
}
