//! The RST guard: while synack's client owns a connection from an address
//! the kernel also owns, the kernel answers the server's SYN-ACK with RST
//! (it has no socket for that port; RFC 9293 §3.10.7.1). The guard is one
//! narrow rule that drops only *outgoing* RSTs from our source port to the
//! target, in a table of our own (`ip synack_guard_<pid>_<random>`: no
//! other run, even one in another PID namespace, can hold that name), installed for
//! the run and removed on every exit path ([`RstGuard`]'s `Drop` covers
//! errors, timeouts, SIGINT/SIGTERM/SIGHUP/SIGQUIT, which only set a flag
//! and so end the run normally, and panics, which unwind). SIGKILL is the
//! one exit no handler sees: the next run reports what it left.
//!
//! An outbound rule, not an inbound one: an INPUT drop of the SYN-ACK would
//! hide it from synack too. The rule text is pure and tested; installing
//! and removing it runs `nft` (or `iptables` where there is no `nft`).
//! Privileged: CAP_NET_ADMIN.

use std::io::Write;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::process::{Command, Stdio};

/// The connection whose kernel RSTs are dropped: `src` is our end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

/// The packet mark (SO_MARK) on the packets synack itself sends through a
/// raw IP socket on `lo`: they pass the output hook too, and the rule
/// spares them (`--close abort` sends a RST of synack's own). "synk".
pub const SYNACK_MARK: u32 = 0x7379_6e6b;

/// The comment on the rule, so `nft list ruleset` says whose it is.
const COMMENT: &str = "synack connect: drop the kernel's RST for synack's own connection";

/// The iptables rule's comment: its run's name first (iptables has no
/// tables of our own), so that a rule left by SIGKILL can be found and
/// its process checked, as with nft's tables.
/// Without quotes or backslashes: `iptables -S` prints it between double
/// quotes, escaping an apostrophe as `\'`, which a shell would keep, and
/// the removal command printed for a stale rule is meant to be pasted.
fn iptables_comment(name: &str) -> String {
    format!("{name}: synack connect drops the kernel RST for its own connection")
}

/// The prefix of every guard's name (the nftables table, the iptables
/// rule's comment).
pub const NAME_PREFIX: &str = "synack_guard_";

/// The nftables table name for the run of process `pid` with the random
/// `nonce`: `synack_guard_<pid>_<nonce as 8 hex digits>`. The PID alone
/// is not unique: two runs in one network namespace but different PID
/// namespaces (two containers sharing a network) can have the same PID,
/// and the first to exit would delete the other's rule (issue 11).
pub fn table_name(pid: u32, nonce: u32) -> String {
    format!("{NAME_PREFIX}{pid}_{nonce:08x}")
}

/// The PID in a guard's name (`synack_guard_<pid>_<nonce>`, or the
/// older `synack_guard_<pid>`).
pub fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let pid = match rest.split_once('_') {
        Some((pid, nonce)) if nonce.len() == 8 && nonce.bytes().all(|b| b.is_ascii_hexdigit()) => {
            pid
        }
        Some(_) => return None,
        None => rest,
    };
    pid.parse().ok()
}

/// The match on one flow, in nft syntax.
fn nft_match(flow: &Flow) -> String {
    format!(
        "ip saddr {} ip daddr {} tcp sport {} tcp dport {} tcp flags & rst == rst \
         meta mark != {SYNACK_MARK:#x}",
        flow.src.ip(),
        flow.dst.ip(),
        flow.src.port(),
        flow.dst.port()
    )
}

/// The whole table, as `nft -f -` reads it: one output chain, one rule.
pub fn nft_script(table: &str, flow: &Flow) -> String {
    format!(
        "table ip {table} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\t{} counter drop comment \"{COMMENT}\"\n\
         \t}}\n\
         }}\n",
        nft_match(flow)
    )
}

/// The iptables rule's arguments after `-I` / `-D` (the fallback); `name`
/// is the run's (as [`table_name`]), carried in the comment.
pub fn iptables_rule(flow: &Flow, name: &str) -> Vec<String> {
    [
        "OUTPUT",
        "-p",
        "tcp",
        "-s",
        &flow.src.ip().to_string(),
        "-d",
        &flow.dst.ip().to_string(),
        "--sport",
        &flow.src.port().to_string(),
        "--dport",
        &flow.dst.port().to_string(),
        "--tcp-flags",
        "RST",
        "RST",
        "-m",
        "mark",
        "!",
        "--mark",
        &format!("{SYNACK_MARK:#x}"),
        "-m",
        "comment",
        "--comment",
        &iptables_comment(name),
        "-j",
        "DROP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An IPv6 connection whose kernel RSTs are dropped: `src` is our end.
/// The kernel behaves as over IPv4 (RFC 9293 §3.10.7.1 is the same), so
/// the guard is the same rule in the `ip6` family (nftables) or in
/// `ip6tables`. Not yet installed by [`RstGuard`]: these build the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow6 {
    pub src: SocketAddrV6,
    pub dst: SocketAddrV6,
}

/// The match on one IPv6 flow, in nft syntax.
pub fn nft6_match(flow: &Flow6) -> String {
    format!(
        "ip6 saddr {} ip6 daddr {} tcp sport {} tcp dport {} tcp flags & rst == rst \
         meta mark != {SYNACK_MARK:#x}",
        flow.src.ip(),
        flow.dst.ip(),
        flow.src.port(),
        flow.dst.port()
    )
}

/// The whole `ip6` table, as `nft -f -` reads it: one output chain, one
/// rule, as [`nft_script`] for IPv4. Remove it with `nft delete table ip6
/// <table>`.
pub fn nft6_script(table: &str, flow: &Flow6) -> String {
    format!(
        "table ip6 {table} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\t{} counter drop comment \"{COMMENT}\"\n\
         \t}}\n\
         }}\n",
        nft6_match(flow)
    )
}

/// The `ip6tables` rule's arguments after `-I` / `-D`: the same options
/// as [`iptables_rule`] (ip6tables takes the same `-p tcp`, `--tcp-flags`,
/// `mark` and `comment` matches), with IPv6 addresses.
pub fn ip6tables_rule(flow: &Flow6, name: &str) -> Vec<String> {
    let v4_shaped = Flow {
        src: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, flow.src.port()),
        dst: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, flow.dst.port()),
    };
    let mut rule = iptables_rule(&v4_shaped, name);
    // `-s` and `-d` are followed by the addresses: put IPv6's there.
    for (flag, addr) in [("-s", flow.src.ip()), ("-d", flow.dst.ip())] {
        if let Some(at) = rule.iter().position(|a| a == flag) {
            rule[at + 1] = addr.to_string();
        }
    }
    rule
}

/// The guard tables of the `ip6` family in an `nft list tables` listing
/// whose process no longer exists, as [`stale_tables`] for `ip`.
pub fn stale_ip6_tables(listing: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("table ip6 "))
        .filter_map(|name| {
            let pid = pid_of(name)?;
            (!alive(pid)).then(|| name.to_string())
        })
        .collect()
}

/// The `counter packets N` of an `nft list table` output: how many RSTs
/// the rule dropped.
pub fn dropped_packets(nft_listing: &str) -> Option<u64> {
    let rest = nft_listing.split("counter packets ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The guard tables in an `nft list tables` listing whose process no
/// longer exists (`alive` says which PIDs do): left by a run killed with
/// SIGKILL, the one exit no handler sees.
pub fn stale_tables(listing: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("table ip "))
        .filter_map(|name| {
            let pid = pid_of(name)?;
            (!alive(pid)).then(|| name.to_string())
        })
        .collect()
}

/// Warns about guard tables that outlived their run. It does not delete
/// them: a process in another PID namespace sharing this network
/// namespace (a container with the host's network) may still own one, and
/// its PID is not visible here.
pub fn warn_about_stale_tables() {
    let Ok(listing) = run(Command::new("nft").args(["list", "tables"]), None) else {
        return;
    };
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    for table in stale_tables(&listing, alive) {
        eprintln!(
            "synack: guard: table `ip {table}` belongs to no running process here (a run \
             killed with SIGKILL?); remove it with: nft delete table ip {table}"
        );
    }
}

/// The guard rules in an `iptables -S OUTPUT` listing whose process no
/// longer exists, each as the `-D …` arguments that remove it (as `-S`
/// prints them: the comment in double quotes, for a shell).
pub fn stale_iptables_rules(listing: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| {
            let rule = line.trim().strip_prefix("-A ")?;
            let at = rule.find(&format!("--comment \"{NAME_PREFIX}"))?;
            let name = rule[at..]
                .trim_start_matches("--comment \"")
                .split(':')
                .next()?;
            let pid = pid_of(name)?;
            (!alive(pid)).then(|| format!("-D {rule}"))
        })
        .collect()
}

/// Warns about guard rules left in iptables' OUTPUT chain by a run killed
/// with SIGKILL, as [`warn_about_stale_tables`] does for nft.
pub fn warn_about_stale_iptables_rules() {
    let Ok(listing) = run(Command::new("iptables").args(["-w", "-S", "OUTPUT"]), None) else {
        return;
    };
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    for rule in stale_iptables_rules(&listing, alive) {
        eprintln!(
            "synack: guard: an iptables rule of synack belongs to no running process here (a \
             run killed with SIGKILL?); remove it with: iptables {rule}"
        );
    }
}

/// Which tool holds the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An nftables table of our own.
    Nft { table: String },
    /// One rule in iptables' OUTPUT chain, its comment naming the run.
    Iptables { name: String },
}

/// Why the guard could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Neither `nft` nor `iptables` is installed.
    #[error(
        "neither nft nor iptables is installed, so nothing can stop the kernel's RST \
         (apt-get install nftables)"
    )]
    NoTool,
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("running {cmd}: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
}

/// An installed rule; dropping it removes the rule.
#[derive(Debug)]
pub struct RstGuard {
    flow: Flow,
    backend: Backend,
    removed: bool,
}

fn has_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String, GuardError> {
    use std::os::unix::process::CommandExt;
    let name = format!("{cmd:?}").replace('"', "");
    // A process group of its own: a Ctrl-C at the terminal reaches synack
    // (which only sets a flag) but cannot kill `nft` halfway through
    // removing the rule.
    cmd.process_group(0);
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| GuardError::Spawn {
            cmd: name.clone(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|source| GuardError::Spawn {
                cmd: name.clone(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| GuardError::Spawn {
            cmd: name.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(GuardError::Command {
            cmd: name,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl RstGuard {
    /// Installs the rule for `flow`: an nftables table `ip
    /// synack_guard_<pid>_<random>`, or, without `nft`, an iptables rule.
    ///
    /// # Errors
    /// [`GuardError::NoTool`] when neither tool exists; the tool's error
    /// otherwise (without CAP_NET_ADMIN: "Operation not permitted").
    pub fn install(flow: Flow) -> Result<RstGuard, GuardError> {
        let name = table_name(std::process::id(), crate::client::random_u32());
        let backend = if has_tool("nft") {
            warn_about_stale_tables();
            let table = name;
            let script = nft_script(&table, &flow);
            if let Err(e) = run(Command::new("nft").args(["-f", "-"]), Some(&script)) {
                // `nft -f` is one transaction, but if nft died after the
                // commit the table exists: make sure it does not.
                let _ = run(
                    Command::new("nft").args(["delete", "table", "ip", &table]),
                    None,
                );
                return Err(e);
            }
            Backend::Nft { table }
        } else if has_tool("iptables") {
            warn_about_stale_iptables_rules();
            run(
                Command::new("iptables")
                    .args(["-w", "-I"])
                    .args(iptables_rule(&flow, &name)),
                None,
            )?;
            Backend::Iptables { name }
        } else {
            return Err(GuardError::NoTool);
        };
        Ok(RstGuard {
            flow,
            backend,
            removed: false,
        })
    }

    /// What was added, for the user.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Nft { table } => format!(
                "added nftables table `ip {table}`: in hook output, drop `{}` \
                 (the kernel's RST to the server's SYN-ACK); it is removed when synack exits",
                nft_match(&self.flow)
            ),
            Backend::Iptables { name } => format!(
                "added iptables rule `-I {}` (the kernel's RST to the server's SYN-ACK); \
                 it is removed when synack exits",
                iptables_rule(&self.flow, name)
                    .iter()
                    .map(|a| if a.contains(' ') {
                        format!("\"{a}\"")
                    } else {
                        a.clone()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }

    /// Removes the rule and says so (how many RSTs it dropped, with nft).
    ///
    /// # Errors
    /// The tool's error; the message then names what to remove by hand.
    pub fn remove(mut self) -> Result<String, GuardError> {
        self.removed = true;
        self.remove_now()
    }

    fn remove_now(&self) -> Result<String, GuardError> {
        match &self.backend {
            Backend::Nft { table } => {
                let listing = run(
                    Command::new("nft").args(["list", "table", "ip", table]),
                    None,
                )
                .unwrap_or_default();
                run(
                    Command::new("nft").args(["delete", "table", "ip", table]),
                    None,
                )
                .map_err(|e| GuardError::Command {
                    cmd: format!("nft delete table ip {table}"),
                    stderr: format!("{e}; remove it by hand: nft delete table ip {table}"),
                })?;
                let dropped = dropped_packets(&listing)
                    .map(|n| format!(" (it dropped {n} RST{})", if n == 1 { "" } else { "s" }))
                    .unwrap_or_default();
                Ok(format!("removed nftables table `ip {table}`{dropped}"))
            }
            Backend::Iptables { name } => {
                run(
                    Command::new("iptables")
                        .args(["-w", "-D"])
                        .args(iptables_rule(&self.flow, name)),
                    None,
                )?;
                Ok("removed the iptables rule".to_string())
            }
        }
    }
}

impl Drop for RstGuard {
    /// The last line of defence: an error, an interrupt or a panic that
    /// skipped [`RstGuard::remove`] still removes the rule.
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        match self.remove_now() {
            Ok(text) => eprintln!("synack: guard: {text}"),
            Err(e) => eprintln!("synack: guard: REMOVING FAILED: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn flow() -> Flow {
        Flow {
            src: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000),
            dst: SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 8080),
        }
    }

    #[test]
    fn the_nft_table_holds_one_outgoing_rst_rule() {
        assert_eq!(
            nft_script("synack_guard_42", &flow()),
            "table ip synack_guard_42 {\n\
             \tchain output {\n\
             \t\ttype filter hook output priority filter; policy accept;\n\
             \t\tip saddr 127.0.0.1 ip daddr 127.0.0.2 tcp sport 40000 tcp dport 8080 \
             tcp flags & rst == rst meta mark != 0x73796e6b counter drop comment \"synack connect: drop the kernel's \
             RST for synack's own connection\"\n\
             \t}\n\
             }\n"
        );
        assert_eq!(table_name(42, 0xbeef), "synack_guard_42_0000beef");
    }

    #[test]
    fn the_iptables_rule_matches_the_same_flow() {
        let rule = iptables_rule(&flow(), "synack_guard_7_0000abcd").join(" ");
        assert!(rule.starts_with(
            "OUTPUT -p tcp -s 127.0.0.1 -d 127.0.0.2 --sport 40000 --dport 8080 \
             --tcp-flags RST RST"
        ));
        assert!(rule.ends_with("-j DROP"));
        assert!(
            rule.contains("--comment synack_guard_7_0000abcd: synack connect drops"),
            "{rule}"
        );
    }

    /// Issue 11: a rule left by SIGKILL in iptables is reported too.
    #[test]
    fn stale_iptables_rules_are_those_of_dead_processes() {
        let listing = "-P OUTPUT ACCEPT\n\
            -A OUTPUT -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --sport 40000 --dport 8080 \
            --tcp-flags RST RST -m mark ! --mark 0x73796e6b -m comment --comment \
            \"synack_guard_10_0000abcd: synack connect: drop the kernel's RST for synack's own \
            connection\" -j DROP\n\
            -A OUTPUT -p tcp -m comment --comment \"synack_guard_20_0000abcd: x\" -j DROP\n\
            -A OUTPUT -p tcp -m comment --comment \"someone else\" -j DROP\n";
        let stale = stale_iptables_rules(listing, |pid| pid == 20);
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert!(
            stale[0].starts_with("-D OUTPUT -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp"),
            "{}",
            stale[0]
        );
        assert!(stale[0].ends_with("connection\" -j DROP"), "{}", stale[0]);
        assert!(stale_iptables_rules(listing, |_| true).is_empty());
    }

    /// Runs `f` in a thread of its own inside a new network namespace
    /// (namespaces are per thread, and `nft` forked from that thread works
    /// on it): the host's ruleset is never touched, and parallel tests
    /// cannot meet. Skips loudly without root or nft; under CI=true fails.
    fn in_private_netns(f: impl FnOnce() + Send + 'static) {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let missing = if !nix::unistd::geteuid().is_root() {
            Some("root")
        } else if !has_tool("nft") {
            Some("nft")
        } else {
            None
        };
        if let Some(what) = missing {
            assert!(
                !ci,
                "this test needs {what} and CI=true forbids skipping it"
            );
            eprintln!("\n*** SKIPPED: needs {what} ***\n");
            return;
        }
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            f();
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }

    fn ruleset() -> String {
        let out = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn remove_takes_the_table_away() {
        in_private_netns(|| {
            let before = ruleset();
            let guard = RstGuard::install(flow()).unwrap();
            let during = ruleset();
            assert!(
                during.contains(&format!("synack_guard_{}_", std::process::id())),
                "{during}"
            );
            assert!(during.contains("tcp flags & rst == rst"), "{during}");
            assert!(guard.describe().contains("tcp sport 40000 tcp dport 8080"));
            let said = guard.remove().unwrap();
            assert!(said.contains("dropped 0 RSTs"), "{said}");
            assert_eq!(ruleset(), before);
        });
    }

    #[test]
    fn a_panic_still_removes_the_rule() {
        in_private_netns(|| {
            let before = ruleset();
            let result = std::panic::catch_unwind(|| {
                let _guard = RstGuard::install(flow()).unwrap();
                assert_ne!(ruleset(), before);
                panic!("a bug in the middle of the run");
            });
            assert!(result.is_err());
            assert_eq!(ruleset(), before, "the guard's table outlived a panic");
        });
    }

    #[test]
    fn stale_tables_are_those_of_dead_processes() {
        let listing = "table inet filter\ntable ip synack_guard_10\ntable ip synack_guard_20\n\
                       table ip synack_guard_x\ntable ip6 synack_guard_30\n\
                       table ip synack_guard_11_0123abcd\ntable ip synack_guard_21_0123abcd\n\
                       table ip synack_guard_12_nothex!\n";
        assert_eq!(
            stale_tables(listing, |pid| pid == 20 || pid == 21),
            ["synack_guard_10", "synack_guard_11_0123abcd"]
        );
        assert!(stale_tables(listing, |_| true).is_empty());
    }

    /// Issue 11: two runs with the same PID (in two PID namespaces
    /// sharing one network namespace) must not share a table.
    #[test]
    fn two_runs_with_one_pid_get_two_tables() {
        let names: std::collections::HashSet<String> = (0..64)
            .map(|_| table_name(1, crate::client::random_u32()))
            .collect();
        assert_eq!(names.len(), 64);
        for name in &names {
            assert_eq!(pid_of(name), Some(1), "{name}");
        }
    }

    #[test]
    fn the_counter_is_read_from_the_listing() {
        let listing = "table ip synack_guard_1 {\n\tchain output {\n\t\ttype filter hook output \
                       priority filter; policy accept;\n\t\tip saddr 127.0.0.1 tcp flags & rst \
                       == rst counter packets 3 bytes 120 drop\n\t}\n}\n";
        assert_eq!(dropped_packets(listing), Some(3));
        assert_eq!(dropped_packets("table ip x {}"), None);
    }

    // IPv6.

    fn flow6() -> Flow6 {
        Flow6 {
            src: "[2001:2::2]:40000".parse().unwrap(),
            dst: "[2001:2::1]:8080".parse().unwrap(),
        }
    }

    #[test]
    fn the_ip6_table_holds_the_same_rule_in_the_ip6_family() {
        assert_eq!(
            nft6_script("synack_guard_42", &flow6()),
            "table ip6 synack_guard_42 {\n\
             \tchain output {\n\
             \t\ttype filter hook output priority filter; policy accept;\n\
             \t\tip6 saddr 2001:2::2 ip6 daddr 2001:2::1 tcp sport 40000 tcp dport 8080 \
             tcp flags & rst == rst meta mark != 0x73796e6b counter drop comment \"synack connect: drop the kernel's \
             RST for synack's own connection\"\n\
             \t}\n\
             }\n"
        );
        // Apart from the family and the addresses, the IPv4 rule.
        let v4 = nft_script("synack_guard_42", &flow())
            .replace("table ip ", "table ip6 ")
            .replace(
                "ip saddr 127.0.0.1 ip daddr 127.0.0.2",
                "ip6 saddr 2001:2::2 ip6 daddr 2001:2::1",
            );
        assert_eq!(v4, nft6_script("synack_guard_42", &flow6()));
    }

    #[test]
    fn the_ip6tables_rule_matches_the_same_flow() {
        let rule = ip6tables_rule(&flow6(), "synack_guard_7_0000abcd");
        let text = rule.join(" ");
        assert!(
            text.starts_with(
                "OUTPUT -p tcp -s 2001:2::2 -d 2001:2::1 --sport 40000 --dport 8080 \
                 --tcp-flags RST RST -m mark ! --mark 0x73796e6b"
            ),
            "{text}"
        );
        assert!(text.ends_with("-j DROP"));
        assert!(rule.contains(
            &"synack_guard_7_0000abcd: synack connect drops the kernel RST for its own connection"
                .to_string()
        ));
        assert!(!text.contains("0.0.0.0"), "{text}");
        assert_eq!(rule.len(), iptables_rule(&flow(), "x").len());
    }

    #[test]
    fn stale_ip6_tables_are_those_of_dead_processes() {
        let listing = "table ip synack_guard_10_0123abcd\ntable ip6 synack_guard_30_0123abcd\n\
                       table ip6 synack_guard_31_0123abcd\ntable ip6 filter\n";
        assert_eq!(
            stale_ip6_tables(listing, |pid| pid == 31),
            ["synack_guard_30_0123abcd"]
        );
        // The IPv4 scan does not see them, nor this one the IPv4 tables.
        assert_eq!(
            stale_tables(listing, |_| false),
            ["synack_guard_10_0123abcd"]
        );
    }

    /// A connect() from [::1]:`port` to the closed [::1]:8080, as the
    /// kernel answers it: its RST (from 8080 to `port`) gives "refused";
    /// with that RST dropped, the connect times out.
    fn connect_v6_from(port: u16) -> std::io::ErrorKind {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        let local: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
        sock.bind(&local.into()).unwrap();
        let server: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        let err = sock
            .connect_timeout(&server.into(), std::time::Duration::from_millis(300))
            .expect_err("nothing listens on 8080");
        err.kind()
    }

    fn kernel_rst_flow6(client_port: u16) -> Flow6 {
        Flow6 {
            src: "[::1]:8080".parse().unwrap(),
            dst: format!("[::1]:{client_port}").parse().unwrap(),
        }
    }

    fn lo_up() {
        let ok = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip link set lo up");
    }

    #[test]
    fn the_ip6_rule_drops_the_kernels_rst_and_only_it() {
        in_private_netns(|| {
            lo_up();
            assert_eq!(
                connect_v6_from(40000),
                std::io::ErrorKind::ConnectionRefused
            );
            let table = table_name(std::process::id(), 0x6);
            run(
                Command::new("nft").args(["-f", "-"]),
                Some(&nft6_script(&table, &kernel_rst_flow6(40001))),
            )
            .unwrap();
            assert_eq!(connect_v6_from(40001), std::io::ErrorKind::TimedOut);
            // Another client port is not ours: its RST passes.
            assert_eq!(
                connect_v6_from(40002),
                std::io::ErrorKind::ConnectionRefused
            );
            let listing = run(
                Command::new("nft").args(["list", "table", "ip6", &table]),
                None,
            )
            .unwrap();
            assert!(
                dropped_packets(&listing).is_some_and(|n| n >= 1),
                "{listing}"
            );
            run(
                Command::new("nft").args(["delete", "table", "ip6", &table]),
                None,
            )
            .unwrap();
            assert!(!ruleset().contains(&table));
        });
    }

    #[test]
    fn the_ip6tables_rule_drops_the_kernels_rst() {
        in_private_netns(|| {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            if !has_tool("ip6tables") {
                assert!(!ci, "ip6tables is missing under CI=true");
                eprintln!("\n*** SKIPPED: needs ip6tables ***\n");
                return;
            }
            lo_up();
            let rule = ip6tables_rule(&kernel_rst_flow6(40001), "synack_guard_1_00000006");
            run(
                Command::new("ip6tables").args(["-w", "-I"]).args(&rule),
                None,
            )
            .unwrap();
            assert_eq!(connect_v6_from(40001), std::io::ErrorKind::TimedOut);
            assert_eq!(
                connect_v6_from(40002),
                std::io::ErrorKind::ConnectionRefused
            );
            run(
                Command::new("ip6tables").args(["-w", "-D"]).args(&rule),
                None,
            )
            .unwrap();
            assert_eq!(
                connect_v6_from(40003),
                std::io::ErrorKind::ConnectionRefused
            );
        });
    }
}
