//! Words for [`ServerEvent`]s, in the voice of either command: `synack
//! serve`'s narration lines ("read 5 bytes", with the client's number and
//! the kernel's view) and the lab's `server app` rows, the calls as the
//! tutorial code would print them ("recv() → 5 bytes "hello""). Pure.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use super::event::{Event, ServerEvent, Summary};
use crate::tcp::State;

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
    let words = match &event.kind {
        // A failed accept is the listener's, not a client's.
        ServerEvent::Failed { call, error } if event.client.is_none() => {
            format!("{call} failed: {error}")
        }
        kind => describe(kind, Voice::Serve, state),
    };
    line.push_str(&words);
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
    fn a_failed_call_is_the_clients_error_or_the_listeners() {
        let peer: SocketAddr = "127.0.0.1:51234".parse().expect("addr");
        let failed = ServerEvent::Failed {
            call: "accept",
            error: "too many open files".into(),
        };
        let listener = format_event(&Event {
            client: None,
            kind: failed.clone(),
            kernel: None,
        });
        assert_eq!(listener, "accept failed: too many open files");
        let client = format_event(&Event {
            client: Some(ClientId { n: 1, peer }),
            kind: failed.clone(),
            kernel: None,
        });
        assert!(client.ends_with("error: too many open files"), "{client}");
        assert_eq!(
            describe(&failed, Voice::Lab, None),
            "accept() failed: too many open files"
        );
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
