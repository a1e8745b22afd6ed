//! The sandbox's control API, on its own loopback port: the sandbox driver's only way in, as
//! the AWS API is for the aws driver. Every call is idempotent and answers what changed.
//!
//! Calls that take something down or add latency take `?by=<holder>` (the driver passes the
//! fault's name; default `control`): the effect lasts while anyone holds it, and the matching
//! release (`start`, `up`, `heal`, `DELETE`, `cancel`, `rollback`) lets go of that holder's hold
//! only. Each hold is a lease ([`super::lease`]): `lease_ms=N` on the call (default: `chaos sandbox up --lease`,
//! 15 s; `lease_ms=0`: until released), renewed by `POST /renew`, let go of by the sandbox
//! itself when it runs out (an event, `lease_expired`).
//!
//! ```text
//! GET  /health                      ready
//! GET  /resources                   zones, nodes (state, LB health), db instances (role), cache;
//!                                   the default lease (`lease_ms`) and every lease held
//! POST /renew?by=H[&lease_ms=N]     renew every lease H holds; answers how many (`renewed`)
//! GET  /events[?since=N]             the ground-truth event log so far (from the Nth event on)
//! GET  /events/count                 how many events there are so far
//! POST /nodes/{id}/kill|stop|start  a node's port closed at once (kill) or after draining it
//!                                   from the load balancer (stop) / released (start)
//! POST /zones/{z}/down|up           every node of the zone, and its db instance
//! POST /rolling-restart?down_ms=N[&zone=z]   a deploy: one node at a time, drained first
//! POST /rolling-restart/cancel      stop it, start every node it left down
//! POST /cutover?steps=10,50,100&every_ms=N&drain=true|false   blue/green: green deployed,
//!                                   then given that share of the requests step by step
//! POST /cutover/rollback            every request back on blue at once
//! POST /db/failover                 writer unreachable for failover_time, then a reader promoted
//! POST /db/restore                  every instance's data lost, nothing served for restore_time,
//!                                   then the cluster back from the newest snapshot
//! POST /db/snapshot                 take a snapshot now (as the periodic backup does)
//! POST /db/{instance}/kill|stop|start   an instance's port closed (the writer: a failover)
//! POST /cache/kill|stop|start       the cache's port closed (calls refused) / reopened
//! POST /cache/partition|heal|failover
//! PUT  /links/{app-db|app-cache}?delay_ms=N&jitter_ms=M    added latency; DELETE clears it
//! ```

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::http::{self, Body};
use super::{lease, Stack};

/// At most this lease (a typo of minutes for milliseconds must not hold a fault for days).
const MAX_LEASE: Duration = Duration::from_secs(3600);

pub async fn handle(stack: Arc<Stack>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let q = |k: &str| http::query_param(&query, k);
    let bad = |m: String| http::error(StatusCode::BAD_REQUEST, &m);
    let by = q("by")
        .filter(|b| http::is_holder(b))
        .unwrap_or_else(|| "control".into());
    let lease = match q("lease_ms").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(ms)) if Duration::from_millis(ms) <= MAX_LEASE => Some(Duration::from_millis(ms)),
        Some(_) => {
            return bad(format!(
                "lease_ms: a whole number of milliseconds, at most {} (an hour); 0 holds until \
                 released",
                MAX_LEASE.as_millis()
            ))
        }
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if (&method, segs.as_slice()) == (&Method::POST, &["renew"][..]) {
        if lease.is_some_and(|l| l.is_zero()) {
            return bad(
                "lease_ms=0 on renew would end every lease at once: give the new lease".into(),
            );
        }
        let n = stack.leases.renew(&by, lease);
        return http::json(StatusCode::OK, &json!({ "ok": true, "renewed": n }));
    }
    let resp = dispatch(&stack, &method, &segs, &query, &by).await;
    if resp.status() == StatusCode::OK {
        if let Some(release) = lease::release_of(method.as_str(), &segs) {
            stack.leases.hold(release, &by, lease);
        } else if let Some(release) = lease::is_release(method.as_str(), &segs) {
            stack.leases.released(&release, &by);
        }
    }
    // Answer once whatever was taken down has really closed its port.
    stack.db.settled().await;
    stack.cache.settled().await;
    resp
}

/// Let go of every hold whose lease ran out, as its holder's release call would, every
/// [`lease::SWEEP_EVERY`]; each is an event (`lease_expired`). Runs as long as the sandbox.
pub async fn sweep_leases(stack: Arc<Stack>) {
    let mut tick = tokio::time::interval(lease::SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for ((m, path), by) in stack.leases.expired() {
            let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
            let method = Method::from_bytes(m.as_bytes()).unwrap_or(Method::POST);
            let resp = dispatch(&stack, &method, &segs, "", &by).await;
            let ok = resp.status() == StatusCode::OK;
            tracing::warn!(
                "sandbox: the lease of {by} ran out: {m} {path} ({})",
                if ok { "released" } else { "the release failed" }
            );
            stack.events.log(
                "lease_expired",
                json!({ "by": by, "release": format!("{m} {path}"), "ok": ok }),
            );
        }
        stack.db.settled().await;
        stack.cache.settled().await;
    }
}

/// One control call, by `by` (lease bookkeeping aside): what [`handle`] answers.
async fn dispatch(
    stack: &Arc<Stack>,
    method: &Method,
    segs: &[&str],
    query: &str,
    by: &str,
) -> Response<Body> {
    let q = |k: &str| http::query_param(query, k);
    let by = by.to_string();
    let done =
        |changed: bool| http::json(StatusCode::OK, &json!({ "ok": true, "changed": changed }));
    let io = |e: std::io::Error| http::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    match (method.clone(), segs) {
        (Method::GET, ["health"]) => done(false),
        (Method::GET, ["resources"]) => {
            let mut v = stack.describe();
            v["lease_ms"] = json!(stack.leases.default_lease().as_millis() as u64);
            v["leases"] = stack.leases.describe();
            http::json(StatusCode::OK, &v)
        }
        (Method::GET, ["events"]) => match q("since").map(|n| n.parse::<usize>()) {
            None => http::json(StatusCode::OK, &json!(stack.events.all())),
            Some(Ok(n)) => http::json(StatusCode::OK, &json!(stack.events.since(n))),
            Some(Err(_)) => http::error(
                StatusCode::BAD_REQUEST,
                "since: give the number of events to skip, e.g. ?since=12",
            ),
        },
        (Method::GET, ["events", "count"]) => {
            http::json(StatusCode::OK, &json!({ "count": stack.events.count() }))
        }
        (Method::POST, ["nodes", id, action @ ("kill" | "stop" | "start")]) => {
            let Some(n) = stack.node(id).cloned() else {
                return http::error(StatusCode::NOT_FOUND, &format!("no node {id}"));
            };
            let was = n.is_running();
            match stack.set_node(&n, *action == "start", action, &by).await {
                Ok(()) => done(was != n.is_running()),
                Err(e) => io(e),
            }
        }
        (Method::POST, ["zones", z, action @ ("down" | "up")]) => {
            if !stack.cfg.zones.iter().any(|x| x == z) {
                return http::error(StatusCode::NOT_FOUND, &format!("no zone {z}"));
            }
            match stack.set_zone(z, *action == "up", &by).await {
                Ok(changed) => done(changed),
                Err(e) => io(e),
            }
        }
        (Method::POST, ["rolling-restart"]) => {
            let down = q("down_ms")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 3_600_000.0)
                .map_or(Duration::from_secs(10), |v| {
                    Duration::from_secs_f64(v / 1e3)
                });
            let zone = q("zone");
            if let Some(z) = &zone {
                if !stack.cfg.zones.contains(z) {
                    return http::error(StatusCode::NOT_FOUND, &format!("no zone {z}"));
                }
            }
            let db = match q("role").as_deref() {
                None | Some("app") => false,
                Some("db") => true,
                Some(r) => {
                    return http::error(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot restart role {r} (accepted: app, db)"),
                    )
                }
            };
            done(stack.start_rolling(zone, down, db, &by))
        }
        (Method::POST, ["rolling-restart", "cancel"]) => match stack.cancel_rolling(&by).await {
            Ok(changed) => done(changed),
            Err(e) => io(e),
        },
        (Method::POST, ["cutover"]) => {
            let steps: Result<Vec<u32>, _> = q("steps")
                .unwrap_or_else(|| "100".into())
                .split(',')
                .map(|p| p.trim().parse::<u32>())
                .collect();
            let Ok(steps) = steps else {
                return http::error(
                    StatusCode::BAD_REQUEST,
                    "steps: percentages of the requests for green, e.g. steps=10,50,100",
                );
            };
            let every = q("every_ms")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 3_600_000.0)
                .map_or(Duration::from_secs(30), |v| {
                    Duration::from_secs_f64(v / 1e3)
                });
            let drain = match q("drain").as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(d) => {
                    return http::error(
                        StatusCode::BAD_REQUEST,
                        &format!("drain: true or false, not {d}"),
                    )
                }
            };
            match stack.start_cutover(steps, every, drain, &by) {
                Ok(changed) => done(changed),
                Err(super::cutover::Refused::Steps(m)) => http::error(StatusCode::BAD_REQUEST, &m),
                Err(super::cutover::Refused::Busy(who)) => http::error(
                    StatusCode::CONFLICT,
                    &format!("a cutover by {who} holds the load balancer: roll it back first"),
                ),
            }
        }
        (Method::POST, ["cutover", "rollback"]) => done(stack.rollback_cutover(&by).await),
        (Method::POST, ["db", "failover"]) => done(stack.db.failover("control API")),
        (Method::POST, ["db", "restore"]) => done(stack.db.restore("control API")),
        (Method::POST, ["db", "snapshot"]) => done(stack.db.snapshot()),
        (Method::POST, ["db", id, action @ ("kill" | "stop" | "start")]) => {
            match stack.db.set_held(id, &by, *action != "start") {
                Some(changed) => done(changed),
                None => http::error(StatusCode::NOT_FOUND, &format!("no db instance {id}")),
            }
        }
        (Method::POST, ["cache", action @ ("kill" | "stop" | "start")]) => {
            done(stack.cache.set_held(&by, *action != "start"))
        }
        (Method::POST, ["cache", "partition"]) => {
            stack.cache.set_partitioned(&by, true);
            done(true)
        }
        (Method::POST, ["cache", "heal"]) => {
            stack.cache.set_partitioned(&by, false);
            done(true)
        }
        (Method::POST, ["cache", "failover"]) => done(stack.cache.failover()),
        (m @ (Method::PUT | Method::DELETE), ["links", link]) => {
            let ms = |k: &str| {
                q(k).and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 600_000.0)
                    .map(|v| Duration::from_secs_f64(v / 1e3))
                    .unwrap_or_default()
            };
            let delay = (m == Method::PUT).then(|| (ms("delay_ms"), ms("jitter_ms")));
            if stack.set_link(link, delay, &by) {
                done(true)
            } else {
                http::error(StatusCode::NOT_FOUND, &format!("no link {link}"))
            }
        }
        _ => http::error(StatusCode::NOT_FOUND, "no such control call"),
    }
}
