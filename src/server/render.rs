//! Words for [`ServerEvent`]s, in the voice of either command: `synack
//! serve`'s narration lines ("read 5 bytes", with the client's number and
//! the kernel's view) and the lab's `server app` rows, the calls as the
//! tutorial code would print them ("recv() → 5 bytes "hello""); and
//! `synack serve --json`'s lines. Pure.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::event::{nanos, Event, ServerEvent, Summary};
use crate::tcp::{State, TcpInfo};

/// Whose words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voice {
    /// `synack serve`'s lines: what happened to the connection.
    Serve,
    /// The lab's `server app` rows: the socket call and what it returned.
    Lab,
}

/// What a client's connection says when the grace period cut it short.
pub const FORCED: &str = "shut down by the server: the grace period after the stop ended";

/// One event in `voice`; `state` is the socket's state as the kernel
/// reported it right after (it changes a few of the words).
pub fn describe(event: &ServerEvent, voice: Voice, state: Option<State>) -> String {
    let own = match voice {
        Voice::Serve => serve_words(event),
        Voice::Lab => lab_call(event),
    };
    own.unwrap_or_else(|| common_words(event, state))
}

/// `synack serve`'s words where the lab's differ: what happened to the
/// connection, with the time it took.
fn serve_words(event: &ServerEvent) -> Option<String> {
    use ServerEvent as E;
    Some(match event {
        E::Accepted { .. } => "accepted".into(),
        E::Received { len, .. } => format!("read {len} bytes"),
        E::Message { body, .. } => format!("message of {} bytes", body.len()),
        E::Sent { len } => format!("replied {len} bytes"),
        E::PeerClosed => "read EOF: the peer's FIN arrived".into(),
        E::Closed { elapsed } => format!("closed after {}", human(*elapsed)),
        E::Aborted { elapsed } => {
            format!("aborted with RST (SO_LINGER 0) after {}", millis(*elapsed))
        }
        E::Failed { error, .. } => format!("error: {error}"),
        _ => return None,
    })
}

/// The lab's words where `synack serve`'s differ: the socket call as the
/// tutorial code would print it, and what it returned.
fn lab_call(event: &ServerEvent) -> Option<String> {
    use ServerEvent as E;
    Some(match event {
        E::Accepted { peer } => format!("accept() → {peer}"),
        E::Received { len, data: None } => format!("recv() → {len} bytes"),
        E::Received {
            len,
            data: Some(data),
        } => format!("recv() → {len} bytes {:?}", String::from_utf8_lossy(data)),
        E::Message { body, framing } => format!(
            "{} message: {} bytes {:?}",
            framing.name(),
            body.len(),
            String::from_utf8_lossy(body)
        ),
        E::Sent { len } => format!("sendall() {len} bytes"),
        E::PeerClosed => "recv() → 0 bytes: EOF, the client closed".into(),
        E::Closed { .. } => "close()".into(),
        E::Aborted { .. } => {
            "setsockopt(SO_LINGER, 0) and close(): the kernel sends RST, not FIN".into()
        }
        E::Failed { call, error } => format!("{call}() failed: {error}"),
        _ => return None,
    })
}

/// The words both commands use (events only one of them emits, most).
fn common_words(event: &ServerEvent, state: Option<State>) -> String {
    use ServerEvent as E;
    match event {
        E::Listening {
            addr,
            backlog,
            reuse_address,
            max_clients,
        } => format!(
            "listening on {addr} (backlog {backlog}, SO_REUSEADDR {}, up to {max_clients} clients at once)",
            if *reuse_address { "on" } else { "off" }
        ),
        E::Saturated { open } => format!(
            "{open} clients open (--max-clients): new connections wait in the accept queue"
        ),
        E::Waited {
            queued,
            expected,
            writes,
        } if queued >= expected => format!(
            "busy until the client's {writes} writes ({queued} bytes) had all arrived (it \
             looked with recv(MSG_PEEK)), as a slow server is"
        ),
        E::Waited {
            queued, expected, ..
        } => {
            format!("stopped waiting with {queued} of the {expected} bytes queued (EOF or time up)")
        }
        E::Sticky { writes, len } => format!(
            "{writes} writes, 1 read of {len} bytes: TCP is a byte stream and keeps no \
             message boundaries (\"sticky packets\", 粘包)"
        ),
        E::Discarded { len } => format!("dropped {len} bytes sent after our FIN"),
        E::Datagram { data, peer } => format!(
            "recvfrom() → {} bytes {:?} from {peer}: one datagram, boundaries kept",
            data.len(),
            String::from_utf8_lossy(data)
        ),
        E::SentTo { len, peer } => format!("sendto() {len} bytes to {peer}"),
        E::QuickAck => "setsockopt(TCP_QUICKACK): ACK the FIN at once".into(),
        // On loopback the peer's ACK comes back inside the call.
        E::SentFin if state == Some(State::Closed) => {
            "shutdown(Write): our FIN sent and ACKed (LAST-ACK over before the call returned)"
                .into()
        }
        E::SentFin => "shutdown(Write): our FIN sent".into(),
        E::KernelMoved { from, to } => format!("kernel moved the socket {from} -> {to}"),
        E::TimeWait => "kernel keeps the connection in TIME-WAIT (sock_diag)".into(),
        E::Refused { reason } => format!("refused: {reason}; sent an error frame, closing"),
        E::Forced => FORCED.into(),
        E::AcceptError { error } => format!("accept failed: {error}"),
        E::Stopping { open, grace } => format!(
            "stopping: no more accepts; {open} open client(s) get {} to finish",
            human(*grace)
        ),
        E::Stopped { summary } => summary_line(summary),
        // Worded by each voice (serve_words, lab_call).
        E::Accepted { .. }
        | E::Received { .. }
        | E::Message { .. }
        | E::Sent { .. }
        | E::PeerClosed
        | E::Closed { .. }
        | E::Aborted { .. }
        | E::Failed { .. } => lab_call(event).unwrap_or_default(),
    }
}

/// The last line of a `synack serve` run.
fn summary_line(summary: &Summary) -> String {
    let refused = match summary.refused {
        0 => String::new(),
        n => format!(", {n} refused (over --max-message or --memory-budget)"),
    };
    let aborted = match summary.aborted {
        0 => String::new(),
        n => format!(", {n} aborted with RST (--linger0)"),
    };
    format!(
        "stopped: {} connection(s), {} error(s){refused}{aborted}, {} shut down at the end of the grace period, at most {} at once",
        summary.accepted, summary.errors, summary.forced, summary.peak
    )
}

/// One `synack serve` narration line for an event (without a trailing
/// newline): the client's number and address, the event, the kernel's
/// view.
pub fn format_event(event: &Event) -> String {
    let mut line = match event.client {
        Some(client) => format!("#{:<4} {:<21} ", client.n, client.peer),
        None => String::new(),
    };
    let state = event.kernel.as_ref().map(|k| k.state);
    line.push_str(&describe(&event.kind, Voice::Serve, state));
    if let Some(info) = &event.kernel {
        let pad = 58usize.saturating_sub(line.chars().count());
        if info.state == State::Listen {
            let _ = write!(line, "{:pad$}  kernel: {}", "", info.state);
            return line;
        }
        let _ = write!(
            line,
            "{:pad$}  kernel: {:<12} rtt {} retrans {}/{}",
            "",
            info.state,
            millis(info.rtt),
            info.retransmits,
            info.total_retrans
        );
    }
    line
}

/// One `synack serve --json` line for an event (without a trailing
/// newline): `"event"`, the kind's fields, `t_ns`, and on a connection's
/// events `conn` and `peer`; `kernel` when the kernel's view was taken.
/// docs/serve.md has the table.
pub fn format_json(event: &Event) -> String {
    let line = JsonLine {
        kind: &event.kind,
        t_ns: event.t,
        conn: event.client.map(|c| c.n),
        peer: event.client.map(|c| c.peer),
        kernel: event.kernel.as_ref().map(KernelJson::from),
    };
    // Nothing in a line can fail to serialize (no maps with non-string
    // keys, no floats); say so rather than print nothing if it ever does.
    serde_json::to_string(&line).unwrap_or_else(|e| {
        serde_json::json!({
            "event": "client_error",
            "t_ns": u64::try_from(event.t.as_nanos()).unwrap_or(u64::MAX),
            "message": format!("this event could not be written as JSON: {e}"),
        })
        .to_string()
    })
}

/// One `--json` line: the event's kind and fields, then when, which
/// connection, and the kernel's view.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    kind: &'a ServerEvent,
    #[serde(serialize_with = "nanos")]
    t_ns: Duration,
    /// The client's number (from 1, in accept order).
    #[serde(skip_serializing_if = "Option::is_none")]
    conn: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<KernelJson>,
}

/// The `TCP_INFO` fields the narration shows: the state, and for a
/// connection (not the listener) the smoothed RTT and retransmissions.
#[derive(Serialize)]
struct KernelJson {
    state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retransmits: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_retrans: Option<u32>,
}

impl From<&TcpInfo> for KernelJson {
    fn from(info: &TcpInfo) -> KernelJson {
        let connection = info.state != State::Listen;
        KernelJson {
            state: info.state,
            rtt_us: connection.then(|| u64::try_from(info.rtt.as_micros()).unwrap_or(u64::MAX)),
            retransmits: connection.then_some(info.retransmits),
            total_retrans: connection.then_some(info.total_retrans),
        }
    }
}

/// A client's I/O error in words (`synack serve`'s `error:` lines): a
/// timeout is the idle limit, a reset is the peer's RST.
pub fn describe_error(error: &io::Error, idle: Duration) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("idle for {}, closing", human(idle))
        }
        io::ErrorKind::ConnectionReset => "connection reset by peer (RST)".to_string(),
        io::ErrorKind::BrokenPipe => "broken pipe: the peer is gone".to_string(),
        _ => error.to_string(),
    }
}

fn millis(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1e3)
}

fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        millis(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::Framing;
    use crate::server::event::ClientId;
    use crate::tcp::TcpInfo;
    use std::net::SocketAddr;

    fn info(state: State) -> TcpInfo {
        TcpInfo {
            state,
            rtt: Duration::from_micros(52),
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            min_rtt: Duration::ZERO,
            retransmits: 0,
            backoff: 0,
            total_retrans: 0,
            snd_cwnd: 10,
            snd_ssthresh: 0,
            unacked: 0,
            rcv_mss: 0,
            snd_mss: 0,
            snd_wnd: 0,
            rcv_wnd: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_out: 0,
            segs_in: 0,
            last_data_sent: Duration::ZERO,
            last_data_recv: Duration::ZERO,
        }
    }

    #[test]
    fn events_format_with_the_kernel_view() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().expect("addr");
        let event = Event {
            t: Duration::from_micros(1500),
            client: Some(ClientId { n: 3, peer }),
            kind: ServerEvent::PeerClosed,
            kernel: Some(info(State::CloseWait)),
        };
        let line = format_event(&event);
        assert!(
            line.starts_with("#3    127.0.0.1:51234       read EOF"),
            "{line}"
        );
        assert!(line.contains("kernel: CLOSE-WAIT"), "{line}");
        assert!(line.contains("rtt 0.052ms retrans 0/0"), "{line}");
        let listening = format_event(&Event {
            t: Duration::ZERO,
            client: None,
            kind: ServerEvent::Listening {
                addr: "127.0.0.1:8080".parse().expect("addr"),
                backlog: 1024,
                reuse_address: false,
                max_clients: 8,
            },
            kernel: None,
        });
        assert_eq!(
            listening,
            "listening on 127.0.0.1:8080 (backlog 1024, SO_REUSEADDR off, up to 8 clients at once)"
        );
    }

    #[test]
    fn a_failed_call_is_the_clients_error_a_failed_accept_the_listeners() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().expect("addr");
        let listener = format_event(&Event {
            t: Duration::ZERO,
            client: None,
            kind: ServerEvent::AcceptError {
                error: "too many open files".into(),
            },
            kernel: None,
        });
        assert_eq!(listener, "accept failed: too many open files");
        let failed = ServerEvent::Failed {
            call: "recv",
            error: "connection reset by peer (RST)".into(),
        };
        let client = format_event(&Event {
            t: Duration::ZERO,
            client: Some(ClientId { n: 1, peer }),
            kind: failed.clone(),
            kernel: None,
        });
        assert!(
            client.ends_with("error: connection reset by peer (RST)"),
            "{client}"
        );
        assert_eq!(
            describe(&failed, Voice::Lab, None),
            "recv() failed: connection reset by peer (RST)"
        );
    }

    fn json(event: &Event) -> serde_json::Value {
        serde_json::from_str(&format_json(event)).expect("one JSON object")
    }

    #[test]
    fn events_serialize_as_json_lines_of_the_envelope() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().expect("addr");
        let client = Some(ClientId { n: 3, peer });
        let mut closing = info(State::CloseWait);
        closing.retransmits = 1;
        closing.total_retrans = 2;
        let recv = json(&Event {
            t: Duration::from_nanos(1_500_123),
            client,
            kind: ServerEvent::Received { len: 5, data: None },
            kernel: Some(closing),
        });
        assert_eq!(
            recv,
            serde_json::json!({
                "event": "recv", "bytes": 5, "t_ns": 1_500_123, "conn": 3,
                "peer": "127.0.0.1:51234",
                "kernel": {"state": "CLOSE-WAIT", "rtt_us": 52, "retransmits": 1, "total_retrans": 2},
            })
        );
        // A unit variant: only its name; durations in integer ns.
        let eof = json(&Event {
            t: Duration::from_secs(2),
            client,
            kind: ServerEvent::PeerClosed,
            kernel: None,
        });
        assert_eq!(
            eof,
            serde_json::json!({"event": "eof", "t_ns": 2_000_000_000u64, "conn": 3, "peer": "127.0.0.1:51234"})
        );
        // The accept names its peer once, in the envelope.
        let accept = json(&Event {
            t: Duration::ZERO,
            client,
            kind: ServerEvent::Accepted { peer },
            kernel: None,
        });
        assert_eq!(
            accept,
            serde_json::json!({"event": "accept", "t_ns": 0, "conn": 3, "peer": "127.0.0.1:51234"})
        );
        // A message is counted, not shown.
        let message = json(&Event {
            t: Duration::ZERO,
            client,
            kind: ServerEvent::Message {
                body: b"hello".to_vec(),
                framing: Framing::LengthPrefix,
            },
            kernel: None,
        });
        assert_eq!(message["event"], "message");
        assert_eq!(message["bytes"], 5);
        let close = json(&Event {
            t: Duration::ZERO,
            client,
            kind: ServerEvent::Closed {
                elapsed: Duration::from_micros(310),
            },
            kernel: None,
        });
        assert_eq!(close["event"], "close");
        assert_eq!(close["elapsed_ns"], 310_000);
        // The listener's kernel view is its state alone, as in the text.
        let listening = json(&Event {
            t: Duration::ZERO,
            client: None,
            kind: ServerEvent::Listening {
                addr: "127.0.0.1:8080".parse().expect("addr"),
                backlog: 1024,
                reuse_address: true,
                max_clients: 8,
            },
            kernel: Some(info(State::Listen)),
        });
        assert_eq!(
            listening,
            serde_json::json!({
                "event": "listening", "addr": "127.0.0.1:8080", "backlog": 1024,
                "reuse_address": true, "max_clients": 8, "t_ns": 0,
                "kernel": {"state": "LISTEN"},
            })
        );
        // A connection's error is not the run's "error" object.
        let failed = json(&Event {
            t: Duration::ZERO,
            client,
            kind: ServerEvent::Failed {
                call: "recv",
                error: "connection reset by peer (RST)".into(),
            },
            kernel: None,
        });
        assert_eq!(
            failed,
            serde_json::json!({
                "event": "client_error", "message": "connection reset by peer (RST)",
                "t_ns": 0, "conn": 3, "peer": "127.0.0.1:51234",
            })
        );
        let accept_error = json(&Event {
            t: Duration::ZERO,
            client: None,
            kind: ServerEvent::AcceptError {
                error: "too many open files".into(),
            },
            kernel: None,
        });
        assert_eq!(accept_error["event"], "accept_error");
        assert_eq!(accept_error["message"], "too many open files");
        // The summary's counts sit beside "event", not in an object.
        let summary = json(&Event {
            t: Duration::from_millis(7),
            client: None,
            kind: ServerEvent::Stopped {
                summary: Summary {
                    accepted: 4,
                    errors: 1,
                    refused: 1,
                    aborted: 0,
                    forced: 0,
                    peak: 2,
                },
            },
            kernel: None,
        });
        assert_eq!(
            summary,
            serde_json::json!({
                "event": "summary", "connections": 4, "errors": 1, "refused": 1,
                "aborted": 0, "forced": 0, "peak": 2, "t_ns": 7_000_000,
            })
        );
        let stopping = json(&Event {
            t: Duration::ZERO,
            client: None,
            kind: ServerEvent::Stopping {
                open: 1,
                grace: Duration::from_secs(5),
            },
            kernel: None,
        });
        assert_eq!(stopping["grace_ns"], 5_000_000_000u64);
    }

    #[test]
    fn the_lab_speaks_in_socket_calls() {
        let lab = |e: ServerEvent| describe(&e, Voice::Lab, None);
        let serve = |e: ServerEvent| describe(&e, Voice::Serve, None);
        let read = ServerEvent::Received {
            len: 5,
            data: Some(b"hello".to_vec()),
        };
        assert_eq!(lab(read.clone()), "recv() → 5 bytes \"hello\"");
        assert_eq!(serve(read), "read 5 bytes");
        assert_eq!(
            lab(ServerEvent::PeerClosed),
            "recv() → 0 bytes: EOF, the client closed"
        );
        assert_eq!(lab(ServerEvent::Sent { len: 13 }), "sendall() 13 bytes");
        assert_eq!(serve(ServerEvent::Sent { len: 13 }), "replied 13 bytes");
        let message = ServerEvent::Message {
            body: b"hi".to_vec(),
            framing: Framing::LengthPrefix,
        };
        assert_eq!(
            lab(message.clone()),
            "length-prefix message: 2 bytes \"hi\""
        );
        assert_eq!(serve(message), "message of 2 bytes");
        let closed = ServerEvent::Closed {
            elapsed: Duration::from_millis(2),
        };
        assert_eq!(lab(closed.clone()), "close()");
        assert_eq!(serve(closed), "closed after 2.000ms");
    }
}
