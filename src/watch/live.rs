//! The privileged edge of `synack watch`: an AF_PACKET socket with the
//! kernel filter attached, each frame stamped on arrival, recorded, fed to
//! the [`Watch`] model, and its events handed on. Thin: the decisions are
//! in the pure parts ([`filter`], [`default_route_iface`], the model).
//!
//! Needs CAP_NET_RAW.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::capture::writer::CaptureWriter;
use crate::net::link::{Link, PnetLink};
use crate::wire::bpf::{Dir, Filter, PROTO_TCP, PROTO_UDP};

use super::{Event, Summary, Watch};

/// How long one wait for a frame lasts before the stop flag is checked
/// again (the socket's own timeout is shorter still).
const WAIT: Duration = Duration::from_millis(50);

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("capturing on {iface} needs root or CAP_NET_RAW; try sudo")]
    NotPrivileged { iface: String },
    #[error("no interface '{iface}' (see `ip link`)")]
    NoInterface { iface: String },
    #[error("no default route to take the interface from: name one with -i (e.g. -i lo)")]
    NoDefaultRoute,
    #[error("opening a capture on {iface}: {source}")]
    Link {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("the capture filter: {0}")]
    Filter(String),
    #[error("reading frames on {iface}: {source}")]
    Recv {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("writing the capture: {0}")]
    Capture(#[source] io::Error),
    /// Stdout failed (a closed pipe is not an error: the caller decides).
    #[error("writing the narration: {0}")]
    Output(#[source] io::Error),
}

/// `tcp` (or `tcp or udp`), with `port P or port Q …` and `host A or host
/// B …` when given: ports OR'd, hosts OR'd, ports AND hosts. IPv4 only,
/// as the BPF module is.
pub fn filter(ports: &[u16], hosts: &[Ipv4Addr], udp: bool) -> Filter {
    let proto = if udp {
        Filter::or([Filter::Proto(PROTO_TCP), Filter::Proto(PROTO_UDP)])
    } else {
        Filter::Proto(PROTO_TCP)
    };
    let mut parts = vec![proto];
    if !ports.is_empty() {
        parts.push(Filter::or(
            ports.iter().map(|p| Filter::Port(Dir::Either, *p)),
        ));
    }
    if !hosts.is_empty() {
        parts.push(Filter::or(
            hosts.iter().map(|h| Filter::Host(Dir::Either, *h)),
        ));
    }
    Filter::and(parts)
}

/// The filter as tcpdump would write it, for the first line.
pub fn filter_text(ports: &[u16], hosts: &[Ipv4Addr], udp: bool) -> String {
    let mut parts = vec![if udp { "(tcp or udp)" } else { "tcp" }.to_string()];
    let join = |items: Vec<String>| {
        if items.len() == 1 {
            items.join("")
        } else {
            format!("({})", items.join(" or "))
        }
    };
    if !ports.is_empty() {
        parts.push(join(ports.iter().map(|p| format!("port {p}")).collect()));
    }
    if !hosts.is_empty() {
        parts.push(join(hosts.iter().map(|h| format!("host {h}")).collect()));
    }
    parts.join(" and ")
}

/// The interface of the default IPv4 route in `/proc/net/route`'s text
/// (destination 00000000, mask 00000000; the lowest metric wins).
pub fn default_route_iface(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, metric, mask) = (f.first()?, f.get(1)?, f.get(6)?, f.get(7)?);
            (*dest == "00000000" && *mask == "00000000")
                .then(|| (metric.parse::<u64>().unwrap_or(u64::MAX), iface.to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The default route's interface on this host.
///
/// # Errors
/// [`WatchError::NoDefaultRoute`].
pub fn default_iface() -> Result<String, WatchError> {
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    default_route_iface(&table).ok_or(WatchError::NoDefaultRoute)
}

/// Whether `iface` is a loopback interface (every frame appears twice
/// there: sent and received).
fn is_loopback(iface: &str) -> Result<bool, WatchError> {
    pnet::datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface)
        .map(|i| i.is_loopback())
        .ok_or_else(|| WatchError::NoInterface {
            iface: iface.to_string(),
        })
}

/// Opens the capture on `iface` with `filter` in the kernel. On a loopback
/// interface the socket ignores the outgoing copy of each frame.
///
/// # Errors
/// [`WatchError::NotPrivileged`] without CAP_NET_RAW, and the others.
pub fn open(iface: &str, filter: &Filter) -> Result<PnetLink, WatchError> {
    let program = filter
        .compile()
        .map_err(|e| WatchError::Filter(e.to_string()))?;
    let loopback = is_loopback(iface)?;
    PnetLink::open_capture(iface, loopback, &program).map_err(|source| match source.kind() {
        io::ErrorKind::PermissionDenied => WatchError::NotPrivileged {
            iface: iface.to_string(),
        },
        io::ErrorKind::NotFound => WatchError::NoInterface {
            iface: iface.to_string(),
        },
        _ => WatchError::Link {
            iface: iface.to_string(),
            source,
        },
    })
}

fn epoch_ns(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Watches until `stop` is set: every frame is stamped, written to
/// `capture` (with its comment), fed to `model`, and its events go to
/// `emit`. Then the connections still open end, and the summary returns.
/// The capture is flushed whenever no frame is waiting, so it stays
/// readable while the watch runs.
///
/// # Errors
/// A receive error, a capture write error, or `emit`'s error.
pub fn run<W: Write>(
    link: &mut PnetLink,
    iface: &str,
    mut model: Watch,
    mut capture: Option<&mut CaptureWriter<W>>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(&Event) -> io::Result<()>,
) -> Result<Summary, WatchError> {
    let mut dirty = false;
    while !stop.load(Ordering::SeqCst) {
        let frame = link
            .recv(Instant::now() + WAIT)
            .map_err(|source| WatchError::Recv {
                iface: iface.to_string(),
                source,
            })?;
        let Some(frame) = frame else {
            if dirty {
                if let Some(cap) = capture.as_deref_mut() {
                    cap.flush().map_err(WatchError::Capture)?;
                }
                dirty = false;
            }
            continue;
        };
        let at = SystemTime::now();
        let outcome = model.on_frame(epoch_ns(at), &frame);
        if let Some(cap) = capture.as_deref_mut() {
            cap.record(at, &frame, outcome.comment.as_deref())
                .map_err(|e| WatchError::Capture(io::Error::other(e)))?;
            dirty = true;
        }
        for event in &outcome.events {
            emit(event).map_err(WatchError::Output)?;
        }
    }
    if let Some(cap) = capture {
        cap.flush().map_err(WatchError::Capture)?;
    }
    let (events, summary) = model.finish();
    for event in &events {
        emit(event).map_err(WatchError::Output)?;
    }
    Ok(summary)
}
