//! Which of the lab's close and loss scenarios make sense together
//! ([`check`]), and how long they take ([`time_needed`]). The scenarios
//! themselves ([`Teardown`], [`DropSpec`]) are the client's
//! ([`crate::client::faults`]).
//!
//! Pure: no sockets, no clock.

use std::time::Duration;

use crate::client::faults::{DropItem, DropSpec, Teardown};
use crate::wire::{IPV4_HEADER_LEN, UDP_HEADER_LEN};

/// What [`check`] looks at: the scenario options of one lab run.
#[derive(Clone, Debug)]
pub struct ScenarioOptions<'a> {
    pub teardown: Teardown,
    pub server_closes_first: bool,
    pub refused: bool,
    pub delayed_ack: bool,
    pub drops: &'a DropSpec,
    /// Bytes of --data in all.
    pub data_len: usize,
    /// The client's data segments (see [`crate::lab::LabConfig::data_segments`]).
    pub data_segments: usize,
    pub reply_len: usize,
    pub time_wait: Duration,
    /// `--timeout`: the whole run, TIME-WAIT included.
    pub timeout: Duration,
    /// The exchange is over UDP (`--udp`).
    pub udp: bool,
    /// Bytes of the longest --data write (one datagram over UDP).
    pub largest_write: usize,
    /// The lab runs over IPv6 (`-6`).
    pub ipv6: bool,
}

/// The MTU of the lab's veth pair (Linux's default for a veth).
pub const LINK_MTU: usize = 1500;

/// The most a UDP datagram may carry on the lab's link without IP
/// fragmentation: the MTU less the IPv4 and UDP headers (1472 bytes).
/// synack's client sends every datagram whole and reassembles none.
pub const MAX_UDP_PAYLOAD: usize = LINK_MTU - IPV4_HEADER_LEN - UDP_HEADER_LEN;

/// The shortest TIME-WAIT with which `--drop final-ack` can show the
/// server's retransmitted FIN: Linux retransmits after its RTO, at least
/// 200 ms (TCP_RTO_MIN), later under back-off.
pub const FINAL_ACK_MIN_TIME_WAIT: Duration = Duration::from_millis(500);

/// About how long a run with these losses takes, TIME-WAIT and a second
/// of slack included. Each loss costs the sender's RTO, which doubles with
/// each loss in a row (RFC 6298 §5.5) and stays doubled until a segment
/// sent once is acknowledged (Karn). The client's SYN timer and Linux's
/// SYN-ACK timer start at 1 s; after a handshake with a lost SYN the
/// client's RTO is 3 s (§5.7), after a lost SYN-ACK about 3 s (its 1 s
/// round trip), else 1 s. Linux's RTO for established data is at least
/// 200 ms (counted as 300 ms here).
pub fn time_needed(drops: &DropSpec, time_wait: Duration) -> Duration {
    let doubling = |first: f64, n: usize| first * ((1u64 << n.min(16)) - 1) as f64;
    let (syn, synack) = (drops.count(DropItem::Syn), drops.count(DropItem::SynAck));
    let mut secs = time_wait.as_secs_f64() + 1.0;
    secs += doubling(1.0, syn) + doubling(1.0, synack);
    let mut rto: f64 = match (syn, synack) {
        (0, 0) => 1.0,
        (0, _) => 3.2,
        _ => 3.0,
    };
    for item in drops.items() {
        let n = drops.count(item);
        match item {
            DropItem::Data(_) | DropItem::Fin => {
                secs += doubling(rto, n);
                rto *= (1u64 << n.min(16)) as f64;
            }
            DropItem::DataReply | DropItem::ServerFin | DropItem::FinalAck => {
                secs += doubling(0.3, n);
            }
            DropItem::Syn | DropItem::SynAck => {}
        }
    }
    Duration::from_secs_f64(secs)
}

/// Rejects combinations that cannot run as described (a usage error).
///
/// # Errors
/// A sentence naming the options that do not go together and why.
pub fn check(o: &ScenarioOptions<'_>) -> Result<(), String> {
    let closes = match o.teardown {
        Teardown::Fin if o.server_closes_first => "--close server",
        Teardown::Fin => "--close client",
        Teardown::Simultaneous => "--close simultaneous",
        Teardown::AbortClient => "--abort client",
        Teardown::AbortServer => "--abort server",
        Teardown::HalfClose => "--half-close",
    };
    if o.refused && o.teardown != Teardown::Fin {
        return Err(format!(
            "--refused opens no connection, so there is nothing for {closes} to close"
        ));
    }
    if o.delayed_ack
        && matches!(
            o.teardown,
            Teardown::Simultaneous | Teardown::AbortClient | Teardown::AbortServer
        )
    {
        return Err(format!(
            "--delayed-ack lets the server's ACK of our FIN ride on its own FIN; with {closes} \
             the server never answers a FIN that way"
        ));
    }
    if o.teardown == Teardown::HalfClose && o.reply_len == 0 {
        return Err(
            "--half-close shows the server sending after the client's FIN: give it a --reply"
                .into(),
        );
    }
    if o.teardown == Teardown::HalfClose && o.data_len == 0 {
        return Err("--half-close needs --data: the client shuts down after sending it".into());
    }
    if o.udp && o.ipv6 {
        return Err(
            "--udp is not built over IPv6 yet (the client builds IPv4 datagrams only): leave \
             out -6, or --udp"
                .into(),
        );
    }
    if o.udp {
        let mtu = format!(
            "the lab's link carries at most {MAX_UDP_PAYLOAD} bytes in one UDP datagram (the \
             MTU {LINK_MTU} less the {IPV4_HEADER_LEN}-byte IPv4 and {UDP_HEADER_LEN}-byte UDP \
             headers)"
        );
        if o.largest_write > MAX_UDP_PAYLOAD {
            return Err(format!(
                "--udp --data of {} bytes does not fit one datagram: {mtu}; give --data \
                 {MAX_UDP_PAYLOAD} bytes or fewer, or repeat --data for several datagrams",
                o.largest_write
            ));
        }
        if o.reply_len > MAX_UDP_PAYLOAD {
            return Err(format!(
                "--udp --reply of {} bytes does not fit one datagram: {mtu}, and synack's \
                 client reassembles no IP fragments; give --reply {MAX_UDP_PAYLOAD} bytes or \
                 fewer",
                o.reply_len
            ));
        }
    }
    if !o.drops.is_empty() {
        let needed = time_needed(o.drops, o.time_wait);
        if o.timeout < needed {
            return Err(format!(
                "--drop {} takes about {} s with the retransmission timers' back-off and \
                 TIME-WAIT; give --timeout {}s or more",
                o.drops,
                needed.as_secs_f64().ceil(),
                needed.as_secs_f64().ceil()
            ));
        }
    }
    let segments = o.data_segments;
    for item in o.drops.items() {
        let why: Option<String> = match item {
            _ if o.refused && item != DropItem::Syn => Some(
                "--refused gets only a RST from the server: only the client's syn can be \
                 dropped"
                    .into(),
            ),
            DropItem::Data(n) if n as usize > segments => Some(format!(
                "the client sends {segments} data segment{} ({} bytes of --data)",
                if segments == 1 { "" } else { "s" },
                o.data_len
            )),
            DropItem::DataReply if o.reply_len == 0 => {
                Some("the server sends no reply (--reply is empty)".into())
            }
            DropItem::Fin | DropItem::ServerFin
                if matches!(o.teardown, Teardown::AbortClient | Teardown::AbortServer) =>
            {
                Some(format!("{closes} ends the connection with RST, not FIN"))
            }
            DropItem::Fin | DropItem::ServerFin | DropItem::DataReply
                if o.teardown == Teardown::Simultaneous =>
            {
                Some(
                    "the FINs must cross for --close simultaneous; a lost FIN (or a lost \
                     reply, which the server's FIN then overtakes) would turn it into an \
                     ordinary close"
                        .into(),
                )
            }
            DropItem::FinalAck
                if o.teardown == Teardown::Fin && o.server_closes_first
                    || !matches!(o.teardown, Teardown::Fin | Teardown::HalfClose) =>
            {
                Some(format!(
                    "the final ACK is the client's ACK of the server's FIN on its way into \
                     TIME-WAIT, which {closes} does not have"
                ))
            }
            DropItem::FinalAck if o.time_wait < FINAL_ACK_MIN_TIME_WAIT => Some(format!(
                "the server retransmits its FIN after its RTO (200 ms or more), so TIME-WAIT \
                 must last at least {} ms to answer it (--time-wait)",
                FINAL_ACK_MIN_TIME_WAIT.as_millis()
            )),
            _ => None,
        };
        if let Some(why) = why {
            return Err(format!("--drop {item} does not fit: {why}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DropSpec, crate::client::faults::DropSpecError> {
        s.parse()
    }

    fn opts(drops: &DropSpec) -> ScenarioOptions<'_> {
        ScenarioOptions {
            teardown: Teardown::Fin,
            server_closes_first: false,
            refused: false,
            delayed_ack: false,
            drops,
            data_len: 5,
            data_segments: 1,
            reply_len: 13,
            time_wait: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            udp: false,
            largest_write: 5,
            ipv6: false,
        }
    }

    #[test]
    fn a_udp_datagram_must_fit_the_links_mtu() {
        let none = DropSpec::none();
        assert_eq!(MAX_UDP_PAYLOAD, 1472);
        let udp = |largest_write, reply_len| ScenarioOptions {
            udp: true,
            largest_write,
            reply_len,
            ..opts(&none)
        };
        assert_eq!(check(&udp(1472, 1472)), Ok(()));
        let data = check(&udp(1473, 13)).unwrap_err();
        assert!(
            data.contains("--data of 1473 bytes") && data.contains("MTU 1500"),
            "{data}"
        );
        let reply = check(&udp(5, 2000)).unwrap_err();
        assert!(reply.contains("--reply of 2000 bytes"), "{reply}");
        // TCP cuts long writes into segments itself.
        let tcp = ScenarioOptions {
            udp: false,
            ..udp(5000, 5000)
        };
        assert_eq!(check(&tcp), Ok(()));
    }

    #[test]
    fn udp_over_ipv6_is_refused_and_tcp_over_ipv6_passes() {
        let none = DropSpec::none();
        let udp6 = ScenarioOptions {
            udp: true,
            ipv6: true,
            ..opts(&none)
        };
        let why = check(&udp6).unwrap_err();
        assert!(why.contains("--udp is not built over IPv6"), "{why}");
        let tcp6 = ScenarioOptions {
            ipv6: true,
            ..opts(&none)
        };
        assert_eq!(check(&tcp6), Ok(()));
    }

    #[test]
    fn sensible_combinations_pass() {
        let all = parse("syn,data:1,fin,final-ack,synack,server-fin,data-reply").unwrap();
        let o = ScenarioOptions {
            timeout: Duration::from_secs(30),
            ..opts(&all)
        };
        assert_eq!(check(&o), Ok(()));
        let fin = parse("fin").unwrap();
        let server_first = ScenarioOptions {
            server_closes_first: true,
            ..opts(&fin)
        };
        assert_eq!(check(&server_first), Ok(()));
        let none = DropSpec::none();
        for teardown in [
            Teardown::Simultaneous,
            Teardown::AbortClient,
            Teardown::AbortServer,
            Teardown::HalfClose,
        ] {
            assert_eq!(
                check(&ScenarioOptions {
                    teardown,
                    ..opts(&none)
                }),
                Ok(())
            );
        }
        let half = parse("final-ack,data-reply").unwrap();
        let o = ScenarioOptions {
            teardown: Teardown::HalfClose,
            ..opts(&half)
        };
        assert_eq!(check(&o), Ok(()));
        let syn = parse("syn").unwrap();
        let refused = ScenarioOptions {
            refused: true,
            ..opts(&syn)
        };
        assert_eq!(check(&refused), Ok(()));
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        let none = DropSpec::none();
        let err = |o: ScenarioOptions<'_>| check(&o).unwrap_err();
        assert!(err(ScenarioOptions {
            refused: true,
            teardown: Teardown::AbortClient,
            ..opts(&none)
        })
        .contains("--refused"));
        assert!(err(ScenarioOptions {
            delayed_ack: true,
            teardown: Teardown::Simultaneous,
            ..opts(&none)
        })
        .contains("--delayed-ack"));
        assert!(err(ScenarioOptions {
            teardown: Teardown::HalfClose,
            reply_len: 0,
            ..opts(&none)
        })
        .contains("--reply"));

        let data2 = parse("data:2").unwrap();
        assert!(err(opts(&data2)).contains("1 data segment (5 bytes"));
        let reply = parse("data-reply").unwrap();
        assert!(err(ScenarioOptions {
            reply_len: 0,
            ..opts(&reply)
        })
        .contains("no reply"));
        let fin = parse("fin").unwrap();
        assert!(err(ScenarioOptions {
            teardown: Teardown::AbortServer,
            ..opts(&fin)
        })
        .contains("RST, not FIN"));
        let server_fin = parse("server-fin").unwrap();
        assert!(err(ScenarioOptions {
            teardown: Teardown::Simultaneous,
            ..opts(&server_fin)
        })
        .contains("cross"));
        let final_ack = parse("final-ack").unwrap();
        assert!(err(ScenarioOptions {
            server_closes_first: true,
            ..opts(&final_ack)
        })
        .contains("--close server"));
        assert!(err(ScenarioOptions {
            time_wait: Duration::ZERO,
            ..opts(&final_ack)
        })
        .contains("--time-wait"));
        let synack = parse("synack").unwrap();
        assert!(err(ScenarioOptions {
            refused: true,
            ..opts(&synack)
        })
        .contains("only the client's syn"));
    }

    #[test]
    fn the_timeout_must_fit_the_back_off() {
        let one_s = Duration::from_secs(1);
        let syn2 = parse("syn,syn").unwrap();
        // 1 s + 2 s, TIME-WAIT 1 s, 1 s of slack.
        assert_eq!(time_needed(&syn2, one_s), Duration::from_secs(5));
        let reply = parse("data-reply").unwrap();
        assert_eq!(time_needed(&reply, one_s), Duration::from_millis(2300));
        assert_eq!(check(&opts(&syn2)), Ok(()));
        // The FIN's RTO stays doubled after the lost data (Karn): 1 s + 2 s.
        let data_fin = parse("data:1,fin").unwrap();
        assert_eq!(time_needed(&data_fin, one_s), Duration::from_secs(5));
        // A lost SYN: 1 s, then the data's RTO is 3 s (RFC 6298 §5.7), then
        // the FIN's 6 s.
        let three = parse("syn,data:1,fin").unwrap();
        assert_eq!(time_needed(&three, one_s), Duration::from_secs(12));
        let msg = check(&opts(&three)).unwrap_err();
        assert!(msg.contains("--timeout 12s"), "{msg}");
        let long = ScenarioOptions {
            timeout: Duration::from_secs(12),
            ..opts(&three)
        };
        assert_eq!(check(&long), Ok(()));
    }
}
