//! The `local` target kind's settings, validated (DESIGN.md "Target"): a stack you run — real
//! PostgreSQL, Redis, haproxy — reached at `base_url`, with the built-in fault proxy
//! (`chaos proxy up FILE`) between its parts: each `[proxies.NAME]` listens on one address and
//! forwards to one upstream, in a zone, in front of a role. Faults on the target go through the
//! proxy's control API at `proxy_control`; each is a lease of `lease` the run renews.
//!
//! Validation only reads the file: nothing here listens or connects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::proxy::ProxyConfig;
use crate::scenario::node::Node;
use crate::scenario::validate::{Ctx, Fields};

/// Top-level keys of `kind = "local"` (besides `kind` and `description`).
pub const LOCAL_KEYS: &[&str] = &["base_url", "proxy_control", "lease", "proxies"];
pub const PROXY_KEYS: &[&str] = &["listen", "upstream", "zone", "role", "alternates"];
pub const ROLES: &[&str] = &["app", "db", "cache", "lb"];

pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
pub const LEASE_MIN: Duration = Duration::from_secs(1);
pub const LEASE_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
pub struct LocalTarget {
    /// Where the load goes.
    pub base_url: String,
    /// The fault proxy's control API (`chaos proxy up` listens there; loopback only).
    pub proxy_control: SocketAddr,
    /// How long a fault holds without the run renewing it.
    pub lease: Duration,
    /// By name, in name order.
    pub proxies: Vec<ProxyConfig>,
}

impl LocalTarget {
    /// The zones the proxies are in, sorted.
    pub fn zones(&self) -> Vec<String> {
        let mut z: Vec<String> = self.proxies.iter().filter_map(|p| p.zone.clone()).collect();
        z.sort();
        z.dedup();
        z
    }
}

pub(super) fn local(cx: &mut Ctx<'_>, top: &Fields<'_>) -> Option<LocalTarget> {
    let base_url = top
        .required(cx, "base_url")
        .and_then(|n| super::file::url(cx, n, "base_url"));
    let proxy_control = top
        .required(cx, "proxy_control")
        .and_then(|n| addr(cx, n, "proxy_control", true));
    let lease = match top.get("lease") {
        Some(n) => cx.duration_in(n, "lease", LEASE_MIN, LEASE_MAX),
        None => Some(DEFAULT_LEASE),
    };
    let proxies = match top.get("proxies") {
        Some(n) => proxies(cx, n),
        None => Some(Vec::new()),
    };
    let (proxies, proxy_control) = (proxies?, proxy_control?);
    // Two listeners on one address cannot both bind; the control API is one of them.
    let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
    seen.insert(proxy_control, "proxy_control");
    for p in &proxies {
        if let Some(other) = seen.insert(p.listen, &p.name) {
            if let Some(n) = top.get("proxies") {
                cx.err(
                    &n.span,
                    &format!(
                        "proxy `{}` listens on {}, as `{other}` does",
                        p.name, p.listen
                    ),
                    Some("each proxy, and proxy_control, needs an address of its own"),
                );
            }
            return None;
        }
    }
    Some(LocalTarget {
        base_url: base_url?,
        proxy_control,
        lease: lease?,
        proxies,
    })
}

fn proxies(cx: &mut Ctx<'_>, n: &Node) -> Option<Vec<ProxyConfig>> {
    let t = cx.table(n, "proxies")?;
    let mut out = Vec::new();
    let mut ok = true;
    for e in t.entries {
        let name = e.key.clone();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !valid {
            cx.err(
                &e.key_span,
                &format!("proxy name `{name}`: letters, digits, - and _ only"),
                None,
            );
            ok = false;
            continue;
        }
        match proxy(cx, &name, &e.node) {
            Some(p) => out.push(p),
            None => ok = false,
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    ok.then_some(out)
}

fn proxy(cx: &mut Ctx<'_>, name: &str, n: &Node) -> Option<ProxyConfig> {
    let t = cx.table(n, &format!("proxies.{name}"))?;
    t.check_keys(cx, PROXY_KEYS, &format!("in [proxies.{name}]"));
    let listen = t
        .required(cx, "listen")
        .and_then(|n| addr(cx, n, "listen", true));
    let upstream = t
        .required(cx, "upstream")
        .and_then(|n| host_port(cx, n, "upstream"));
    let zone = match t.get("zone") {
        Some(n) => Some(cx.ident(n, "zone")?),
        None => None,
    };
    let role = match t.get("role") {
        Some(n) => Some(cx.choice(n, "role", ROLES)?),
        None => None,
    };
    let alternates = match t.get("alternates") {
        Some(n) => {
            let items = cx.array(n, "alternates")?;
            let mut v = Vec::new();
            for i in items {
                v.push(host_port(cx, i, "alternates")?);
            }
            v
        }
        None => Vec::new(),
    };
    Some(ProxyConfig {
        name: name.to_string(),
        listen: listen?,
        upstream: upstream?,
        zone,
        role,
        alternates,
    })
}

/// `127.0.0.1:6380`: an address to listen on; `loopback` only for a control API or a proxy
/// (nothing here is meant to be reached from another machine).
fn addr(cx: &mut Ctx<'_>, n: &Node, what: &str, loopback: bool) -> Option<SocketAddr> {
    let s = cx.string(n, what)?;
    match s.parse::<SocketAddr>() {
        Ok(a) if loopback && !a.ip().is_loopback() => {
            cx.err(
                &n.span,
                &format!("{what} {s} is not a loopback address"),
                Some("the proxy listens on loopback only: 127.0.0.1:PORT or [::1]:PORT"),
            );
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            cx.err(
                &n.span,
                &format!("{what}: `{s}` is not an address"),
                Some("an IP and a port, like 127.0.0.1:16379"),
            );
            None
        }
    }
}

/// `host:port` (a name is resolved at each connection).
fn host_port(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<String> {
    let s = cx.string(n, what)?;
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        cx.err(
            &n.span,
            &format!("{what}: `{s}` is not host:port"),
            Some("like 127.0.0.1:6379 or db.internal:5432"),
        );
        return None;
    }
    Some(s)
}
