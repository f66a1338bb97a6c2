//! Where a connection to the target goes: the interface, the source
//! address and the next hop, as the kernel's own routing decision.
//!
//! The look-up runs `ip -j route get`: iproute2 is on every machine this
//! runs on (DESIGN.md: a fresh machine has iproute2), and its JSON is the
//! kernel's answer to RTM_GETROUTE. netlink-packet-route 0.34 (on
//! netlink-packet-core 0.9, like sock_diag here) would do it in-process;
//! for one query per run the subprocess costs about a millisecond, and the
//! parsing below is the part worth testing. Pure except [`route_get`].

use std::net::Ipv4Addr;
use std::process::Command;

use serde::Deserialize;

/// The kernel's route to one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The interface the packets leave by (`lo` for this host's own
    /// addresses).
    pub dev: String,
    /// The source address the kernel would pick.
    pub prefsrc: Option<Ipv4Addr>,
    /// The gateway, when the target is not on the link.
    pub gateway: Option<Ipv4Addr>,
    /// The target is one of this host's addresses (route type `local`).
    pub local: bool,
}

/// Why no route was found.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("cannot run `ip` (iproute2) to look up the route: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("no route to {target}: {reason}")]
    NoRoute { target: Ipv4Addr, reason: String },
    #[error("cannot read `ip -j route get` output: {0}")]
    Parse(String),
}

#[derive(Deserialize)]
struct RawRoute {
    #[serde(rename = "type")]
    kind: Option<String>,
    dev: Option<String>,
    prefsrc: Option<Ipv4Addr>,
    gateway: Option<Ipv4Addr>,
}

/// Reads the JSON `ip -j route get` prints (an array of one route).
///
/// # Errors
/// Text that is not that JSON, or a route without an interface.
pub fn parse_route_get(json: &str) -> Result<Route, String> {
    let routes: Vec<RawRoute> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let raw = routes
        .into_iter()
        .next()
        .ok_or_else(|| "an empty answer".to_string())?;
    Ok(Route {
        dev: raw
            .dev
            .ok_or_else(|| "a route without an interface".to_string())?,
        prefsrc: raw.prefsrc,
        gateway: raw.gateway,
        local: raw.kind.as_deref() == Some("local"),
    })
}

/// Asks the kernel for its route to `target` (through `iface` when given).
///
/// # Errors
/// See [`RouteError`].
pub fn route_get(target: Ipv4Addr, iface: Option<&str>) -> Result<Route, RouteError> {
    let mut cmd = Command::new("ip");
    cmd.args(["-j", "route", "get"]).arg(target.to_string());
    if let Some(iface) = iface {
        cmd.args(["oif", iface]);
    }
    let out = cmd.output().map_err(RouteError::Spawn)?;
    if !out.status.success() {
        let reason = String::from_utf8_lossy(&out.stderr)
            .trim()
            .trim_start_matches("RTNETLINK answers: ")
            .to_string();
        return Err(RouteError::NoRoute { target, reason });
    }
    parse_route_get(&String::from_utf8_lossy(&out.stdout)).map_err(RouteError::Parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_address_routes_through_lo() {
        let json = r#"[{"type":"local","dst":"127.0.0.1","dev":"lo","prefsrc":"127.0.0.1","flags":[],"uid":0,"cache":["local"]}]"#;
        assert_eq!(
            parse_route_get(json),
            Ok(Route {
                dev: "lo".into(),
                prefsrc: Some(Ipv4Addr::LOCALHOST),
                gateway: None,
                local: true,
            })
        );
    }

    #[test]
    fn a_remote_address_names_its_gateway() {
        let json = r#"[{"dst":"1.1.1.1","gateway":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.2","flags":[],"uid":0,"cache":[]}]"#;
        let route = parse_route_get(json).unwrap();
        assert_eq!(route.dev, "eth0");
        assert_eq!(route.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(route.prefsrc, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert!(!route.local);
    }

    #[test]
    fn an_on_link_address_has_no_gateway() {
        let json = r#"[{"dst":"198.18.0.1","dev":"veth1","flags":[],"uid":0,"cache":[]}]"#;
        let route = parse_route_get(json).unwrap();
        assert_eq!((route.gateway, route.prefsrc), (None, None));
    }

    #[test]
    fn nonsense_is_an_error() {
        assert!(parse_route_get("").is_err());
        assert!(parse_route_get("[]").is_err());
        assert!(parse_route_get(r#"[{"dst":"1.2.3.4"}]"#).is_err());
    }
}
