//! The sandbox driver: faults through the sandbox's control API, the way the aws driver goes
//! through the AWS API. Plans resolve roles and zones to node ids from `GET /resources`; every
//! inject and revert is a list of idempotent control calls, and the undo data holds the control
//! URL so `chaos rollback` in another process can finish the job.
//!
//! Control calls go through the general client of control APIs ([`super::control`]), never the
//! load engine's transport.

use std::time::Duration;

use serde_json::{json, Value};

use super::control::ControlClient;
use crate::fault::{BoxFut, Call, Driver, DriverError, FaultPlan, Snapshot, Undo};
use crate::scenario::{Count, Fault, FaultKind, KillMode, Link, Role};

pub struct SandboxDriver {
    control_url: String,
    ctl: ControlClient,
    /// Nodes already picked by planned kill-nodes faults, with when they are held
    /// ([at, end), end `None` = the end of the run): an overlapping kill-nodes fault picks
    /// other nodes while there are any, so two "kill 1 node" faults at once take 2 down.
    picked: std::sync::Mutex<Vec<Picked>>,
    /// The sandbox's lease, as `GET /resources` tells it (learnt when planning): each hold
    /// lasts that long unless renewed.
    lease: std::sync::Mutex<Option<Duration>>,
}

/// The sandbox driver's undo data, as the journal keeps it: self-contained, so `chaos rollback`
/// in another process reverts with it alone.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxUndo {
    /// Always `"sandbox"`: which driver reads this back (see `target::driver_for_undo`).
    pub driver: String,
    pub control_url: String,
    /// The plan's idempotent revert calls.
    pub calls: Vec<Call>,
    /// How long the sandbox's event log was before the inject: `confirm` looks only after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_before: Option<u64>,
    /// The holder the calls name (`fault:<name>`): whose leases the run renews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl SandboxUndo {
    fn of(undo: &Undo) -> Result<SandboxUndo, DriverError> {
        serde_json::from_value(undo.clone()).map_err(|e| {
            DriverError::Permanent(format!("bad undo data for the sandbox driver: {e}"))
        })
    }

    fn to_value(&self) -> Undo {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// (at, end, node ids) of one planned kill-nodes fault.
type Picked = (Duration, Option<Duration>, Vec<String>);

impl SandboxDriver {
    pub fn new(control_url: &str) -> SandboxDriver {
        SandboxDriver {
            control_url: control_url.trim_end_matches('/').to_string(),
            ctl: ControlClient::new("sandbox", control_url),
            picked: std::sync::Mutex::new(Vec::new()),
            lease: std::sync::Mutex::new(None),
        }
    }

    /// Node ids picked by planned faults whose time overlaps `f`'s.
    fn picked_during(&self, f: &Fault) -> Vec<String> {
        let end = f.duration.map(|d| f.at + d);
        let overlaps = |a: Duration, b: Option<Duration>| {
            b.is_none_or(|b| b > f.at) && end.is_none_or(|e| e > a)
        };
        self.picked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(a, b, _)| overlaps(*a, *b))
            .flat_map(|(_, _, ids)| ids.clone())
            .collect()
    }

    /// The driver that can revert `undo` (written by [`Driver::inject`] or `undo_for`).
    pub fn from_undo(undo: &Undo) -> Option<SandboxDriver> {
        SandboxUndo::of(undo)
            .ok()
            .filter(|u| u.driver == "sandbox")
            .map(|u| SandboxDriver::new(&u.control_url))
    }

    /// One control call; the JSON answer, or an error naming the call (logged for `-v`).
    pub async fn call(&self, method: &str, path: &str) -> Result<Value, DriverError> {
        self.ctl.call(method, path).await
    }

    async fn plan_fault(&self, f: &Fault) -> Result<FaultPlan, DriverError> {
        let res = self.call("GET", "/resources").await?;
        if let Some(ms) = res["lease_ms"].as_u64().filter(|ms| *ms > 0) {
            *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(Duration::from_millis(ms));
        }
        let empty = Vec::new();
        let resources = res["resources"].as_array().unwrap_or(&empty);
        let zones: Vec<&str> = res["zones"]
            .as_array()
            .map(|z| z.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let post = |path: String| Call::http("sandbox", "POST", path);
        let unsupported = |why: &str| {
            Err(DriverError::Unsupported(format!(
                "fault `{}` ({}): {why}",
                f.name,
                f.kind.name()
            )))
        };
        let check_zone = |z: &str| -> Result<(), DriverError> {
            if zones.contains(&z) {
                Ok(())
            } else {
                Err(DriverError::Unsupported(format!(
                    "fault `{}`: the sandbox has no zone `{z}` (zones: {})",
                    f.name,
                    zones.join(", ")
                )))
            }
        };
        let (targets, inject, revert) = match &f.kind {
            FaultKind::Freeze { .. } | FaultKind::Command { .. } => {
                return unsupported(
                    "the sandbox runs no processes of its own to pause or commands to run: \
                     freeze and command faults are for a local target's processes",
                )
            }
            FaultKind::KillNodes {
                role,
                count,
                zone,
                mode,
                restart,
            } => {
                if !restart {
                    return unsupported(
                        "the sandbox's nodes never come back by themselves: leave out \
                         `restart = false` (the revert starts them again)",
                    );
                }
                let kind = match role {
                    Role::App => "app",
                    Role::Db => "db",
                    Role::Cache => "cache",
                    Role::Lb => return unsupported(
                        "the sandbox has one load balancer; kill the nodes behind it, or a zone",
                    ),
                };
                if let Some(z) = zone {
                    check_zone(z)?;
                }
                // Blue's nodes only: green ones (deployed by a cutover) take traffic only
                // during one, and killing idle nodes would test nothing.
                let mut ids: Vec<String> = resources
                    .iter()
                    .filter(|r| r["role"] == kind && r["group"] != "green")
                    .filter(|r| zone.as_ref().is_none_or(|z| r["zone"] == z.as_str()))
                    .filter_map(|r| r["id"].as_str().map(str::to_string))
                    .collect();
                ids.sort();
                let n = match count {
                    Count::Nodes(n) => *n as usize,
                    Count::Percent(p) => ((ids.len() as f64) * p / 100.0).ceil() as usize,
                };
                if n > ids.len() {
                    return unsupported(&format!(
                        "asks for {n} {kind} nodes but the sandbox has {}{}",
                        ids.len(),
                        zone.as_ref()
                            .map(|z| format!(" in zone {z}"))
                            .unwrap_or_default()
                    ));
                }
                // Nodes no overlapping fault has picked first, in id order; then the others.
                let taken = self.picked_during(f);
                ids.sort_by_key(|id| (taken.contains(id), id.clone()));
                ids.truncate(n);
                self.picked.lock().unwrap_or_else(|p| p.into_inner()).push((
                    f.at,
                    f.duration.map(|d| f.at + d),
                    ids.clone(),
                ));
                let verb = if *mode == KillMode::Stop {
                    "stop"
                } else {
                    "kill"
                };
                // App nodes and database instances by id; the cache is one node.
                let path = |id: &str, verb: &str| match role {
                    Role::Db => format!("/db/{id}/{verb}"),
                    Role::Cache => format!("/cache/{verb}"),
                    _ => format!("/nodes/{id}/{verb}"),
                };
                let inject = ids.iter().map(|id| post(path(id, verb))).collect();
                let revert = ids.iter().map(|id| post(path(id, "start"))).collect();
                (ids, inject, revert)
            }
            FaultKind::RestartNodes {
                role,
                down_for,
                zone,
            } => {
                let what = match role {
                    Role::App => "app nodes",
                    Role::Db => "db instances (readers first, then the writer: a failover)",
                    _ => {
                        return unsupported(
                            "the sandbox restarts app nodes and database instances only",
                        )
                    }
                };
                let mut q = format!("down_ms={}", down_for.as_secs_f64() * 1e3);
                if *role == Role::Db {
                    q.push_str("&role=db");
                }
                if let Some(z) = zone {
                    check_zone(z)?;
                    q.push_str(&format!("&zone={z}"));
                }
                (
                    vec![zone
                        .as_ref()
                        .map_or(format!("every one of the {what}"), |z| {
                            format!("{what} in zone {z}")
                        })],
                    vec![post(format!("/rolling-restart?{q}"))],
                    vec![post("/rolling-restart/cancel".into())],
                )
            }
            FaultKind::AzOutage { zone, parts } => {
                check_zone(zone)?;
                if !parts.is_all() {
                    return Err(DriverError::Unsupported(format!(
                        "fault `{}`: the sandbox takes a zone down whole (its nodes, its db \
                         instance, its links); an outage without {} needs a target whose \
                         driver does the parts one by one (kind = \"aws\"), or leave \
                         `parts` out",
                        f.name,
                        parts.missing().join(", ")
                    )));
                }
                (
                    vec![format!("zone {zone}")],
                    vec![post(format!("/zones/{zone}/down"))],
                    vec![post(format!("/zones/{zone}/up"))],
                )
            }
            FaultKind::DbFailover {} => (
                vec!["db cluster".into()],
                vec![post("/db/failover".into())],
                vec![],
            ),
            FaultKind::BlueGreen {
                steps,
                every,
                drain,
            } => {
                let list: Vec<String> = steps.iter().map(u32::to_string).collect();
                (
                    vec![format!(
                        "load balancer: requests moved from blue (app nodes, v1) to green (v2): {}",
                        super::cutover_steps(steps, *every, *drain)
                    )],
                    vec![post(format!(
                        "/cutover?steps={}&every_ms={}&drain={drain}",
                        list.join(","),
                        // Fractional: a strong --time-scale must not round it to 0.
                        every.as_secs_f64() * 1e3
                    ))],
                    vec![post("/cutover/rollback".into())],
                )
            }
            // Runs its course (the restore ends by itself): nothing to revert.
            FaultKind::DbRestore {} => (
                vec!["db cluster: every instance's data, restored from the newest snapshot".into()],
                vec![post("/db/restore".into())],
                vec![],
            ),
            FaultKind::CachePartition {} => (
                vec!["cache".into()],
                vec![post("/cache/partition".into())],
                vec![post("/cache/heal".into())],
            ),
            FaultKind::CacheFailover {} => (
                vec!["cache".into()],
                vec![post("/cache/failover".into())],
                vec![],
            ),
            FaultKind::Latency {
                link,
                delay,
                jitter,
            } => {
                let l = match link {
                    Link::AppDb => "app-db",
                    Link::AppCache => "app-cache",
                };
                (
                    vec![format!("link {l}")],
                    vec![Call::http(
                        "sandbox",
                        "PUT",
                        format!(
                            "/links/{l}?delay_ms={}&jitter_ms={}",
                            delay.as_secs_f64() * 1e3,
                            jitter.as_secs_f64() * 1e3
                        ),
                    )],
                    vec![Call::http("sandbox", "DELETE", format!("/links/{l}"))],
                )
            }
        };
        // What `confirm` looks for: the state a fault leaves (nodes down, the zone down, the
        // cache partitioned), or, for one that runs its course (a failover, a rolling restart,
        // link latency), the sandbox's record that it started.
        let check = match &f.kind {
            FaultKind::KillNodes { role, .. } => json!({ "down": targets, "role": match role {
                Role::Db => "db",
                Role::Cache => "cache",
                _ => "app",
            } }),
            FaultKind::AzOutage { zone, .. } => json!({ "zone_down": zone }),
            FaultKind::CachePartition {} => json!({ "cache_state": "partitioned" }),
            FaultKind::DbFailover {} => json!({ "event": "db_failover_start" }),
            FaultKind::DbRestore {} => json!({ "event": "db_restore_start" }),
            FaultKind::BlueGreen { .. } => json!({ "event": "cutover_start" }),
            FaultKind::CacheFailover {} => json!({ "event": "cache_failover_start" }),
            FaultKind::Latency { .. } => json!({ "event": "link_latency" }),
            FaultKind::RestartNodes { .. } => json!({ "event": "rolling_restart_start" }),
            FaultKind::Freeze { .. } | FaultKind::Command { .. } => Value::Null,
        };
        // Every call names the fault as its holder: the sandbox keeps an effect while any fault
        // holds it, so overlapping faults never undo each other.
        let by = |calls: Vec<Call>| -> Vec<Call> {
            calls
                .into_iter()
                .map(|mut c| {
                    let sep = if c.resource.contains('?') { '&' } else { '?' };
                    c.resource = format!("{}{sep}by=fault:{}", c.resource, f.name);
                    c
                })
                .collect()
        };
        Ok(FaultPlan {
            fault: f.name.clone(),
            kind: f.kind.name().to_string(),
            targets,
            inject: by(inject),
            revert: by(revert),
            check,
        })
    }

    /// Whether `p`'s effect shows in the sandbox (see the `check` built by `plan_fault`).
    async fn confirm_fault(&self, p: &FaultPlan, undo: &Undo) -> Result<(), DriverError> {
        let events_before = SandboxUndo::of(undo)?.events_before.unwrap_or(0);
        let not_yet = |why: String| Err(DriverError::retryable(why));
        let c = &p.check;
        if let Some(name) = c["event"].as_str() {
            // Only the events since the inject: a confirm polls, and the log grows all run.
            let events = self
                .call("GET", &format!("/events?since={events_before}"))
                .await?;
            // This fault's own record: an event that names a holder must name this fault (a
            // revert of another latency fault logs `link_latency` too).
            let holder = format!("fault:{}", p.fault);
            let mine = |e: &Value| e.get("by").is_none_or(|b| b.is_null() || *b == holder);
            let seen = events
                .as_array()
                .map(|a| a.iter())
                .into_iter()
                .flatten()
                .any(|e| e["event"] == name && mine(e));
            if seen {
                return Ok(());
            }
            // A failover asked for while one is already under way (after a zone outage of the
            // writer, say) starts nothing new, and the one under way is the effect.
            let res = self.call("GET", "/resources").await?;
            let under_way = res["resources"].as_array().is_some_and(|rs| {
                rs.iter().any(|r| match name {
                    "db_failover_start" => r["role"] == "db" && r["failing_over"] == true,
                    "db_restore_start" => r["role"] == "db" && r["restoring"] == true,
                    "cache_failover_start" => r["role"] == "cache" && r["state"] == "failing_over",
                    _ => false,
                })
            });
            return if under_way {
                Ok(())
            } else {
                not_yet(format!(
                    "the sandbox records no `{name}` by this fault since the inject"
                ))
            };
        }
        let res = self.call("GET", "/resources").await?;
        if let Some(ms) = res["lease_ms"].as_u64().filter(|ms| *ms > 0) {
            *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(Duration::from_millis(ms));
        }
        let empty = Vec::new();
        let resources = res["resources"].as_array().unwrap_or(&empty);
        if let Some(ids) = c["down"].as_array() {
            for id in ids.iter().filter_map(Value::as_str) {
                let Some(r) = resources.iter().find(|r| r["id"] == id) else {
                    return Err(DriverError::Permanent(format!(
                        "`{id}` is gone from the sandbox"
                    )));
                };
                if r["state"] == "running" {
                    return not_yet(format!("`{id}` is still running"));
                }
                // Not a flag the sandbox sets: its port really refuses connections.
                if let Some(addr) = r["addr"].as_str().and_then(|a| a.parse().ok()) {
                    if port_open(addr).await {
                        return not_yet(format!("`{id}` still accepts connections on {addr}"));
                    }
                }
            }
            return Ok(());
        }
        if let Some(zone) = c["zone_down"].as_str() {
            let down = res["zones_down"]
                .as_array()
                .is_some_and(|z| z.iter().any(|z| z == zone));
            let up: Vec<&str> = resources
                .iter()
                .filter(|r| r["role"] == "app" && r["zone"] == zone && r["state"] == "running")
                .filter_map(|r| r["id"].as_str())
                .collect();
            return match (down, up.is_empty()) {
                (true, true) => Ok(()),
                (false, _) => not_yet(format!("zone {zone} is not down")),
                (true, false) => not_yet(format!(
                    "zone {zone} is down but {} still run",
                    up.join(", ")
                )),
            };
        }
        if let Some(want) = c["cache_state"].as_str() {
            let state = resources
                .iter()
                .find(|r| r["role"] == "cache")
                .map(|r| r["state"].clone())
                .unwrap_or(Value::Null);
            // A partition of a cache another fault holds down: unreachable all the same.
            return if state == want || (want == "partitioned" && state == "stopped") {
                Ok(())
            } else {
                not_yet(format!("the cache is {state}, not {want}"))
            };
        }
        // A plan from before checks existed (a journal of an older run): nothing to look for.
        Ok(())
    }

    /// The undo data of plan `p` (its revert calls, on this sandbox).
    fn undo(&self, p: &FaultPlan) -> SandboxUndo {
        SandboxUndo {
            driver: "sandbox".into(),
            control_url: self.control_url.clone(),
            calls: p.revert.clone(),
            events_before: None,
            by: Some(format!("fault:{}", p.fault)),
        }
    }

    async fn run_calls(&self, calls: &[Call]) -> Result<(), DriverError> {
        for c in calls {
            self.call(&c.operation, &c.resource).await?;
        }
        Ok(())
    }
}

/// Whether something accepts a TCP connection at `addr` (within 200 ms).
async fn port_open(addr: std::net::SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

impl Driver for SandboxDriver {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        Box::pin(self.plan_fault(f))
    }

    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            // Where the event log stands before the calls: `confirm` looks only after it.
            let before = if p.check["event"].is_string() {
                self.call("GET", "/events/count").await?["count"]
                    .as_u64()
                    .ok_or_else(|| {
                        DriverError::Permanent(format!(
                            "{}/events/count has no count: not a chaos sandbox of this version",
                            self.control_url
                        ))
                    })?
            } else {
                0
            };
            self.run_calls(&p.inject).await?;
            Ok(SandboxUndo {
                events_before: Some(before),
                ..self.undo(p)
            }
            .to_value())
        })
    }

    fn confirm<'a>(
        &'a self,
        p: &'a FaultPlan,
        undo: &'a Undo,
    ) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(self.confirm_fault(p, undo))
    }

    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move { self.run_calls(&SandboxUndo::of(undo)?.calls).await })
    }

    fn undo_for(&self, p: &FaultPlan) -> Undo {
        self.undo(p).to_value()
    }

    fn observe<'a>(
        &'a self,
        _planned: &'a [crate::fault::Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        Some(Box::pin(async move {
            Ok(snapshot(&self.call("GET", "/resources").await?))
        }))
    }

    fn observe_every(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn lease(&self) -> Option<Duration> {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn renew<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = SandboxUndo::of(undo)?;
            let (Some(by), false) = (&u.by, u.calls.is_empty()) else {
                return Ok(()); // a one-shot fault (a failover) holds nothing
            };
            let r = self.call("POST", &format!("/renew?by={by}")).await?;
            // Fewer renewed than held: a lease ran out before this renewal (the sandbox let go
            // of that part of the fault).
            let n = r["renewed"].as_u64().unwrap_or(0) as usize;
            if n < u.calls.len() {
                return Err(DriverError::Permanent(format!(
                    "only {n} of the {} holds of {by} were still held: a lease ran out and the \
                     sandbox let go of the rest",
                    u.calls.len()
                )));
            }
            Ok(())
        })
    }
}

/// The sandbox's `/resources` as the control-plane view: each zone up or down, each app node's
/// state and whether the load balancer routes to it, each db instance's role and state, the
/// cache's state, and the load balancer's weights (a cutover's steps).
fn snapshot(res: &Value) -> Snapshot {
    let mut s = Snapshot::new();
    if let (Some(b), Some(g)) = (
        res["lb_weights"]["blue"].as_u64(),
        res["lb_weights"]["green"].as_u64(),
    ) {
        s.insert(
            "sandbox load balancer weights".into(),
            format!("blue {b}%, green {g}%"),
        );
    }
    let down: Vec<&str> = res["zones_down"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for z in res["zones"].as_array().into_iter().flatten() {
        if let Some(z) = z.as_str() {
            let v = if down.contains(&z) { "down" } else { "up" };
            s.insert(format!("sandbox zone {z}"), v.into());
        }
    }
    for r in res["resources"].as_array().into_iter().flatten() {
        let (Some(id), Some(state)) = (r["id"].as_str(), r["state"].as_str()) else {
            continue;
        };
        let (key, value) = match r["role"].as_str() {
            Some("app") => (
                format!(
                    "sandbox node {id} (zone {})",
                    r["zone"].as_str().unwrap_or("?")
                ),
                format!(
                    "{state}, {}",
                    if r["lb_healthy"] == true {
                        "in the load balancer"
                    } else {
                        "out of the load balancer"
                    }
                ),
            ),
            Some("db") => (
                format!("sandbox db {id}"),
                format!("{}, {state}", r["db_role"].as_str().unwrap_or("?")),
            ),
            Some("cache") => ("sandbox cache".to_string(), state.to_string()),
            _ => continue,
        };
        s.insert(key, value);
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Undo data as the journal keeps it, old and new: `chaos rollback` of a journal written
    /// before calls and undo data were typed still finds its driver and calls.
    #[test]
    fn undo_data_is_typed_and_reads_old_journals() {
        let old = json!({
            "driver": "sandbox",
            "control_url": "http://127.0.0.1:9",
            "calls": [{ "method": "POST", "path": "/zones/a/up?by=fault:z" }],
            "events_before": 3
        });
        let u = SandboxUndo::of(&old).unwrap();
        assert_eq!(
            u.calls,
            [Call::http("sandbox", "POST", "/zones/a/up?by=fault:z")]
        );
        assert_eq!(u.events_before, Some(3));
        assert!(SandboxDriver::from_undo(&old).is_some());
        assert!(crate::target::driver_for_undo(&old).is_some());
        // Another driver's undo data is not the sandbox's.
        let other = json!({ "driver": "aws", "control_url": "x", "calls": [] });
        assert!(SandboxDriver::from_undo(&other).is_none());
        assert!(crate::target::driver_for_undo(&other).is_none());
        // Broken undo data is a permanent error, never a panic.
        assert!(matches!(
            SandboxUndo::of(&json!({ "driver": "sandbox" })),
            Err(DriverError::Permanent(_))
        ));
    }
}
