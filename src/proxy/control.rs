//! The fault proxy's control API, on its own loopback port: the proxy driver's only way in,
//! as the sandbox's control API is the sandbox driver's. Every call is idempotent.
//!
//! ```text
//! GET    /health
//! GET    /proxies                          each proxy: listen, upstream, zone, role, faults held
//!                                          (with the lease left), connection and byte counters
//! PUT    /proxies/{name}/faults/{fault}?by=H[&lease_ms=N][&…]   apply or renew a fault:
//!          partition | reset | down
//!          latency    delay_ms=N [jitter_ms=M] [direction=up|down|both]
//!          bandwidth  bytes_per_s=N [direction=…]
//!          switch-upstream  to=host:port
//! DELETE /proxies/{name}/faults/{fault}?by=H   release it (that holder's hold only)
//! POST   /renew?by=H[&lease_ms=N]          renew every lease H holds (N > 0); answers how many
//! GET    /events[?since=N]                 fault_applied, fault_released, lease_expired (from
//!                                          sequence number N on); /events/count: how many
//! ```
//!
//! `lease_ms` defaults to the proxy's lease (the target file's `lease`, 15 s); `lease_ms=0`
//! holds until released. A fault whose lease runs out is healed by the proxy itself.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::{Direction, Effect, Proxies, ProxyError};
use crate::sandbox::http::{self, Body};

/// At most this lease (a typo of minutes for milliseconds must not hold a fault for days).
const MAX_LEASE: Duration = Duration::from_secs(3600);

pub async fn handle(ps: Arc<Proxies>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let q = |k: &str| http::query_param(&query, k);
    let bad = |m: String| http::error(StatusCode::BAD_REQUEST, &m);
    // A holder given but malformed is refused: never folded into the shared default.
    let by = match q("by") {
        None => "control".to_string(),
        Some(b) if http::is_holder(&b) => b,
        Some(b) => {
            return bad(format!(
                "by={b}: a holder is 1 to 128 letters, digits and - _ . :"
            ))
        }
    };
    let num = |k: &str| -> Result<Option<u64>, String> {
        match q(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{k}={v}: not a whole number")),
        }
    };
    let lease = match num("lease_ms") {
        Ok(l) => l.map(Duration::from_millis),
        Err(e) => return bad(e),
    };
    if lease.is_some_and(|l| l > MAX_LEASE) {
        return bad(format!(
            "lease_ms: at most {} (an hour)",
            MAX_LEASE.as_millis()
        ));
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let done =
        |changed: bool| http::json(StatusCode::OK, &json!({ "ok": true, "changed": changed }));
    let answer = |r: Result<bool, ProxyError>| match r {
        Ok(changed) => done(changed),
        Err(e @ ProxyError::NoProxy(_)) => http::error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e) => http::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match (method, segs.as_slice()) {
        (Method::GET, ["health"]) => done(false),
        (Method::GET, ["proxies"]) => {
            let list: Vec<_> = ps.list.iter().map(|p| p.describe()).collect();
            http::json(
                StatusCode::OK,
                &json!({ "proxies": list, "lease_ms": ps.lease.as_millis() as u64 }),
            )
        }
        (Method::GET, ["events"]) => match q("since").map(|n| n.parse::<u64>()) {
            None => http::json(StatusCode::OK, &json!(ps.events.since(0))),
            Some(Ok(n)) => http::json(StatusCode::OK, &json!(ps.events.since(n))),
            Some(Err(_)) => bad("since: the sequence number to start from, e.g. ?since=12".into()),
        },
        (Method::GET, ["events", "count"]) => {
            http::json(StatusCode::OK, &json!({ "count": ps.events.count() }))
        }
        (Method::PUT, ["proxies", name, "faults", fault]) => {
            let effect = match effect(fault, &q, &num) {
                Ok(e) => e,
                Err(m) => return bad(m),
            };
            answer(ps.hold(name, effect, &by, lease))
        }
        (Method::DELETE, ["proxies", name, "faults", fault]) => {
            if !Effect::NAMES.contains(fault) {
                return bad(format!(
                    "no fault `{fault}`: one of {}",
                    Effect::NAMES.join(", ")
                ));
            }
            answer(ps.release(name, fault, &by))
        }
        (Method::POST, ["renew"]) if lease.is_some_and(|l| l.is_zero()) => {
            bad("lease_ms=0 on renew would end every lease at once: give the new lease".into())
        }
        (Method::POST, ["renew"]) => {
            let n = ps.renew(&by, lease);
            http::json(StatusCode::OK, &json!({ "ok": true, "renewed": n }))
        }
        _ => http::error(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// The fault a PUT names, with its parameters from the query.
fn effect(
    fault: &str,
    q: &dyn Fn(&str) -> Option<String>,
    num: &dyn Fn(&str) -> Result<Option<u64>, String>,
) -> Result<Effect, String> {
    let direction = match q("direction") {
        None => Direction::Both,
        Some(d) => {
            Direction::parse(&d).ok_or_else(|| format!("direction={d}: one of up, down, both"))?
        }
    };
    Ok(match fault {
        "partition" => Effect::Partition,
        "reset" => Effect::Reset,
        "down" => Effect::Down,
        "latency" => Effect::Latency {
            delay_ms: num("delay_ms")?.ok_or("latency needs delay_ms=N")?,
            jitter_ms: num("jitter_ms")?.unwrap_or(0),
            direction,
        },
        "bandwidth" => Effect::Bandwidth {
            bytes_per_s: num("bytes_per_s")?
                .filter(|b| *b > 0)
                .ok_or("bandwidth needs bytes_per_s=N (more than 0)")?,
            direction,
        },
        "switch-upstream" => {
            let to = q("to").ok_or("switch-upstream needs to=host:port")?;
            if to
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(format!("to={to}: not host:port"));
            }
            Effect::SwitchUpstream { to }
        }
        other => {
            return Err(format!(
                "no fault `{other}`: one of {}",
                Effect::NAMES.join(", ")
            ))
        }
    })
}
