//! synack shows, packet by packet, how a TCP connection is opened and closed.
//!
//! The module map, from the pure core up to the commands. A module may
//! import only what its row names (a unit test below holds the code to
//! it); the views (`report`, `narrate`, `ladder`) depend on the engine's
//! vocabulary, never the other way round.
//!
//! | module | what it owns | may import |
//! |---|---|---|
//! | `wire` | packet formats: emit with pnet, parse with etherparse; BPF | — |
//! | `tcp` | the RFC 9293 state machine: segments and time in, segments out | `wire` |
//! | `framing` | message framing over a byte stream | — |
//! | `capture` | pcap/pcapng writing and reading; `inspect`'s analysis | `wire`, `tcp` |
//! | `net` | the privileged edge: AF_PACKET link, namespaces, taps, sock_diag, output files | `wire`, `tcp`, `capture` |
//! | `client` | the hand-built client engine (driver, ARP, UDP, fault injection) and its vocabulary: frames, directions, typed notes | `wire`, `tcp`, `net` |
//! | `ladder` | ladder diagrams and Mermaid | `wire`, `tcp` |
//! | `report` | the narration lines and JSON; the notes in words | `wire`, `tcp`, `client` |
//! | `narrate` | pcapng comments and `--explain` sentences | `wire`, `tcp`, `client`, `report` |
//! | `inspect_report` | what `synack inspect` prints | `wire`, `capture`, `ladder` |
//! | `server` | the tutorial server (`synack serve` and the lab's server thread): one reply logic and one event type, beside each listener's I/O | `tcp`, `framing`, `net` |
//! | `session` | one narrated run: output files, capture writer, reporter thread, observer, summary, exit mapping | `wire`, `tcp`, `capture`, `net`, `client`, `server`, `ladder`, `report`, `narrate` |
//! | `lab` | `synack lab`: namespace, kernel server, scenarios, benchmark | `wire`, `tcp`, `framing`, `capture`, `net`, `client`, `server`, `report`, `session` |
//! | `connect` | `synack connect`: route, RST guard, any IPv4 server | `wire`, `tcp`, `capture`, `net`, `client`, `report`, `session` |
//! | `watch` | `synack watch`: live narration of every connection on an interface | `wire`, `tcp`, `capture`, `net`, `client`, `report`, `narrate`, `inspect_report` |

#![deny(unsafe_code)]

pub mod capture;
pub mod client;
pub mod connect;
pub mod framing;
pub mod inspect_report;
pub mod lab;
pub mod ladder;
pub mod narrate;
pub mod net;
pub mod report;
pub mod server;
pub mod session;
pub mod tcp;
pub mod watch;
pub mod wire;

/// The run did what it could and the connection (or the analysis) failed:
/// the server refused or stayed silent, a capture was cut. Exit status 1;
/// every other error is a usage or environment error (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The module map's rows: each module and what it may import.
    fn map() -> Vec<(String, BTreeSet<String>)> {
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                let module = cells[0].trim_end_matches('`').to_string();
                (module, names(cells.last().copied().unwrap_or_default()))
            })
            .collect()
    }

    /// The `crate::NAME` paths used anywhere under `path`.
    fn imports(path: &Path, found: &mut BTreeSet<String>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                imports(&entry.unwrap().path(), found);
            }
            return;
        }
        if !path.is_file() || path.extension().is_none_or(|ext| ext != "rs") {
            return;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let name: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }

    #[test]
    fn every_module_imports_only_what_the_map_allows() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let map = map();
        let mapped: BTreeSet<&str> = map.iter().map(|(m, _)| m.as_str()).collect();
        let declared: BTreeSet<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
            .collect();
        assert_eq!(declared, mapped, "every module has its row in the map");
        for (module, allowed) in &map {
            let mut found = BTreeSet::new();
            imports(&src.join(format!("{module}.rs")), &mut found);
            imports(&src.join(module), &mut found);
            let modules: BTreeSet<String> = mapped.iter().map(|m| m.to_string()).collect();
            let extra: Vec<&String> = found
                .iter()
                .filter(|name| *name != module && modules.contains(*name))
                .filter(|name| !allowed.contains(*name))
                .collect();
            assert!(
                extra.is_empty(),
                "{module} imports {extra:?}, which the map in lib.rs does not allow"
            );
        }
    }
}
