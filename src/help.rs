//! What `--help` teaches beyond each option's own line: examples near the
//! top, options grouped under headings, the global options apart, and the
//! exit codes at the end. Applied to the clap definitions of `cli.rs` at
//! run time, so the parser, the completions and the manual pages all see
//! the same text. `-h` stays short: examples and exit codes are in the
//! long help (`--help`) and the manual pages only.

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::cli::Cli;

/// The heading of the options every subcommand takes.
pub const GLOBAL: &str = "Global options";

/// One subcommand's help: examples, its options by heading, exit codes.
struct Page {
    name: &'static str,
    examples: &'static [(&'static str, &'static str)],
    groups: &'static [(&'static str, &'static [&'static str])],
    exit_codes: &'static [(&'static str, &'static str)],
}

const INTERRUPTED: (&str, &str) = (
    "130",
    "interrupted (Ctrl-C, SIGTERM, SIGHUP); the capture holds every frame up to there",
);
const USAGE: (&str, &str) = (
    "2",
    "usage or environment error (bad options, no privileges, a file that cannot be written)",
);

const PAGES: &[Page] = &[
    Page {
        name: "lab",
        examples: &[
            (
                "synack lab",
                "the textbook exchange, written to synack-lab.pcap",
            ),
            (
                "synack lab --close server --ladder",
                "the server closes first; a ladder diagram",
            ),
            (
                "synack lab --drop fin --explain",
                "a lost FIN, resent on its timer, explained",
            ),
            (
                "synack lab --data hello --data world -w two.pcapng",
                "two writes, commented pcapng",
            ),
        ],
        groups: &[
            (
                "What to run",
                &[
                    "data",
                    "sticky",
                    "framing",
                    "udp",
                    "ipv6",
                    "reply",
                    "close",
                    "abort",
                    "half_close",
                    "refused",
                    "drop",
                    "delayed_ack",
                    "port",
                    "isn",
                    "count",
                ],
            ),
            ("What to show", &["ladder", "explain", "json"]),
            (
                "Where to write",
                &["write", "pcapng", "server_side", "mermaid"],
            ),
            ("Timing", &["timeout", "time_wait"]),
            (
                "TCP options in the SYN",
                &[
                    "mss",
                    "wscale",
                    "no_wscale",
                    "sack",
                    "no_sack",
                    "timestamps",
                    "no_timestamps",
                    "window",
                ],
            ),
        ],
        exit_codes: &[
            (
                "0",
                "the exchange ran as asked (an abort or refusal that was asked for included)",
            ),
            (
                "1",
                "the server refused, reset or stayed silent, or did not do what the scenario needs",
            ),
            USAGE,
            INTERRUPTED,
        ],
    },
    Page {
        name: "connect",
        examples: &[
            (
                "sudo synack connect 127.0.0.1:8080",
                "handshake, hello, reply, close against a local server",
            ),
            (
                "sudo synack connect 127.0.0.1:8080 --close server -w run.pcapng",
                "the server closes first",
            ),
            (
                "sudo synack connect 127.0.0.1:22 --close abort --json",
                "end with RST; JSON lines",
            ),
        ],
        groups: &[
            ("What to run", &["data", "close", "expect_reply", "isn"]),
            ("What to show", &["ladder", "explain", "json"]),
            ("Where to write", &["write", "mermaid"]),
            ("Where to send from", &["iface", "source", "let_kernel_rst"]),
            ("Timing", &["timeout", "time_wait"]),
        ],
        exit_codes: &[
            ("0", "the exchange completed"),
            (
                "1",
                "the server refused, reset, stayed silent or was unreachable",
            ),
            USAGE,
            INTERRUPTED,
        ],
    },
    Page {
        name: "serve",
        examples: &[
            ("synack serve", "the tutorial server on 127.0.0.1:8080"),
            (
                "synack serve 0.0.0.0:9000 --echo",
                "echo every message back, on every address",
            ),
            (
                "synack serve --framing length-prefix --close first",
                "whole messages; the server closes first",
            ),
        ],
        groups: &[
            ("What to answer", &["reply", "echo", "framing"]),
            ("How to close", &["close", "linger0"]),
            ("What to show", &["json"]),
            (
                "The listening socket",
                &["no_reuseaddr", "backlog", "max_clients", "count"],
            ),
            ("Limits", &["max_message", "memory_budget"]),
            ("Timing", &["idle_timeout", "grace"]),
        ],
        exit_codes: &[
            (
                "0",
                "stopped by Ctrl-C, SIGTERM, SIGHUP or --count, after a summary",
            ),
            ("2", "usage error, or the address cannot be bound"),
        ],
    },
    Page {
        name: "inspect",
        examples: &[
            (
                "synack inspect captures/three_way.pcap",
                "a table and a ladder per connection",
            ),
            (
                "synack inspect --summary dump.pcapng",
                "one line per connection",
            ),
            (
                "synack inspect --json a.pcap b.pcap | jq .",
                "JSON lines, for machines",
            ),
        ],
        groups: &[
            ("What to show", &["json", "summary", "no_ladder"]),
            ("Memory", &["idle_timeout"]),
        ],
        exit_codes: &[
            (
                "0",
                "every file was read whole (anomalies are findings, not failures)",
            ),
            (
                "1",
                "a file is cut or damaged (what was read is still reported)",
            ),
            (
                "2",
                "usage error, or a file cannot be opened or is not a capture",
            ),
        ],
    },
    Page {
        name: "watch",
        examples: &[
            (
                "sudo synack watch -i lo --port 9000",
                "your own server and client on this host, narrated live",
            ),
            (
                "sudo synack watch -i lo --port 9000 --explain --ladder",
                "a sentence per segment, a ladder per connection",
            ),
            (
                "sudo synack watch --host 192.0.2.7 --json -w run.pcapng",
                "JSON lines and a commented pcapng",
            ),
        ],
        groups: &[
            ("What to watch", &["iface", "port", "host", "udp"]),
            ("What to show", &["explain", "ladder", "json"]),
            ("Where to write", &["write"]),
        ],
        exit_codes: &[
            (
                "0",
                "stopped by Ctrl-C, SIGTERM or SIGHUP, after a summary of the connections seen",
            ),
            (
                "2",
                "usage or environment error (no privileges, no such interface, a file that \
                 cannot be written)",
            ),
        ],
    },
    Page {
        name: "completions",
        examples: &[
            (
                "synack completions bash > ~/.local/share/bash-completion/completions/synack",
                "bash",
            ),
            ("synack completions zsh > \"${fpath[1]}/_synack\"", "zsh"),
        ],
        groups: &[],
        exit_codes: &[("0", "the script was written"), ("2", "usage error")],
    },
    Page {
        name: "man",
        examples: &[
            ("synack man | man -l -", "synack(1)"),
            ("synack man lab | man -l -", "synack-lab(1)"),
        ],
        groups: &[],
        exit_codes: &[("0", "the page was written"), ("2", "usage error")],
    },
];

/// The command line with its full help: what `main` parses with, and what
/// the completions and manual pages are generated from.
pub fn command() -> Command {
    let mut cmd = Cli::command().after_long_help(
        "Every subcommand has its own --help with examples, and a manual page (synack man \
         SUBCOMMAND).",
    );
    cmd = cmd
        .disable_help_flag(true)
        .arg(help_flag())
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::Version)
                .help("Print the version")
                .help_heading(GLOBAL),
        )
        .help_template(TEMPLATE)
        .before_long_help(examples(&[
            (
                "synack lab",
                "the self-contained demo: handshake, data, close, narrated",
            ),
            (
                "synack inspect capture.pcap",
                "every TCP connection of a capture, judged",
            ),
            (
                "synack serve",
                "the tutorial server, for nc or synack connect",
            ),
        ]));
    for global in ["verbose", "quiet", "color"] {
        cmd = cmd.mut_arg(global, |arg| arg.help_heading(GLOBAL));
    }
    for page in PAGES {
        cmd = cmd.mut_subcommand(page.name, |mut sub| {
            for (heading, ids) in page.groups {
                for id in *ids {
                    if sub.get_arguments().any(|a| a.get_id() == id) {
                        sub = sub.mut_arg(id, |arg| arg.help_heading(*heading));
                    }
                }
            }
            sub.disable_help_flag(true)
                .arg(help_flag())
                .help_template(TEMPLATE)
                .before_long_help(examples(page.examples))
                .after_long_help(exit_codes(page.exit_codes))
        });
    }
    cmd
}

/// `-h` (a summary) and `--help` (everything), among the global options.
fn help_flag() -> Arg {
    Arg::new("help")
        .short('h')
        .long("help")
        .action(ArgAction::Help)
        .help("Print help (see a summary with '-h')")
        .help_heading(GLOBAL)
}

/// Usage first, then the examples, then the options.
const TEMPLATE: &str = "\
{about-with-newline}
{usage-heading} {usage}

{before-help}{all-args}{after-help}";

fn examples(lines: &[(&str, &str)]) -> String {
    let mut text = String::from("Examples:\n");
    for (line, what) in lines {
        text.push_str(&format!("  {line}\n      {what}\n"));
    }
    text
}

fn exit_codes(codes: &[(&str, &str)]) -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, what) in codes {
        text.push_str(&format!("  {code:>3}  {what}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example parses: the words up to a redirection or a pipe,
    /// without `sudo`.
    #[test]
    fn every_example_is_a_command_line_that_parses() {
        for page in PAGES {
            assert!(
                (2..=4).contains(&page.examples.len()),
                "{}: 2 to 4 examples",
                page.name
            );
            for (line, _) in page.examples {
                let words: Vec<&str> = line
                    .split_whitespace()
                    .skip_while(|w| *w == "sudo")
                    .take_while(|w| !matches!(*w, ">" | "|"))
                    .collect();
                assert_eq!(words.first(), Some(&"synack"), "{line}");
                assert_eq!(words.get(1), Some(&page.name), "{line}");
                if let Err(err) = command().try_get_matches_from(&words) {
                    panic!("{line}: {err}");
                }
            }
        }
    }

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    /// A renamed option must not fall out of its heading unnoticed, and
    /// every option of a subcommand belongs to some heading.
    #[test]
    fn every_option_has_a_heading_and_every_heading_names_real_options() {
        let cmd = Cli::command();
        for page in PAGES {
            let sub = cmd.find_subcommand(page.name).expect(page.name);
            let named: Vec<&str> = page
                .groups
                .iter()
                .flat_map(|(_, ids)| *ids)
                .copied()
                .collect();
            for id in &named {
                assert!(
                    sub.get_arguments().any(|a| a.get_id() == id),
                    "{}: no option {id}",
                    page.name
                );
            }
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || arg.is_global_set() || ["help", "version"].contains(&id) {
                    continue;
                }
                assert!(named.contains(&id), "{}: --{id} has no heading", page.name);
            }
        }
        for sub in cmd.get_subcommands() {
            assert!(
                PAGES.iter().any(|p| p.name == sub.get_name()),
                "{} has no help page",
                sub.get_name()
            );
        }
    }
}
