//! The proxy driver: faults on a `local` target through the built-in fault proxy's control API
//! (`chaos proxy up FILE`; [`crate::proxy::control`]), the way the sandbox driver goes through
//! the sandbox's. A scenario's roles and zones map to the proxies the target file declares:
//! - `cache-partition`: every proxy of role `cache` blackholed;
//! - `latency` on `app-db` / `app-cache`: every proxy of role `db` / `cache` delays what comes
//!   back from its upstream (delay plus uniform jitter, once per round trip);
//! - `az-outage` of a zone: every proxy in the zone blackholed (its network cut; freezing its
//!   processes is the process driver's, which the local driver adds).
//!
//! Each fault is a hold on the proxy by `<run id>:<fault>`, with the target's lease: the run
//! renews it ([`Driver::renew`]) while the fault is applied, and if the run dies without a
//! rollback the proxy heals it when the lease runs out. Undo data is the control URL and the
//! holds, so `chaos rollback` in another process releases them.
//!
//! It must never hold a fault without a lease, and never reach a proxy the target file does
//! not declare.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::control::ControlClient;
use crate::fault::{BoxFut, Call, Driver, DriverError, FaultPlan, Planned, Snapshot, Undo};
use crate::scenario::{AzPart, Fault, FaultKind, Link};
use crate::target::local::LocalTarget;

/// The proxy driver's undo data: where the proxy is and what this fault holds there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyUndo {
    /// Always `"proxy"` (see `target::driver_for_undo`).
    pub driver: String,
    pub control_url: String,
    /// The holder: `<run id>:<fault>`.
    pub by: String,
    pub lease_ms: u64,
    /// (proxy, fault) of each hold.
    pub holds: Vec<(String, String)>,
}

/// (proxy, fault, the PUT's parameters) of one hold a fault makes.
type HoldCall = (String, String, String);

pub struct ProxyDriver {
    control_url: String,
    ctl: ControlClient,
    /// The target (`None` for a driver rebuilt from undo data: it only reverts).
    spec: Option<LocalTarget>,
    run_id: String,
}

impl ProxyDriver {
    /// A driver for `l`, once the proxy at its `proxy_control` (`control`) answers and runs
    /// the proxies the file declares (the same names on the same addresses).
    pub async fn connect(l: &LocalTarget, control: SocketAddr) -> Result<ProxyDriver, String> {
        let control_url = format!("http://{control}");
        let d = ProxyDriver {
            ctl: ControlClient::new("fault proxy", &control_url),
            control_url: control_url.clone(),
            spec: Some(l.clone()),
            run_id: crate::fault::new_run_id(),
        };
        let got = d.ctl.call("GET", "/proxies").await.map_err(|e| {
            // The target's own way up when it names one (a stack script starts its proxy).
            let how = l
                .setup
                .as_deref()
                .map_or_else(|| "chaos proxy up FILE".to_string(), str::to_string);
            format!("no fault proxy answers at {control} ({e}): start it with `{how}`")
        })?;
        let running: Vec<(String, String)> = got["proxies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["listen"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let declared: Vec<(String, String)> = l
            .proxies
            .iter()
            .map(|p| (p.name.clone(), p.listen.to_string()))
            .collect();
        if running != declared {
            let show = |v: &[(String, String)]| {
                v.iter()
                    .map(|(n, a)| format!("{n} on {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "the fault proxy at {control} runs [{}], the target file declares [{}]: restart \
                 it with this file (`chaos proxy up FILE`)",
                show(&running),
                show(&declared)
            ));
        }
        Ok(d)
    }

    pub fn from_undo(undo: &Undo) -> Option<ProxyDriver> {
        let u: ProxyUndo = serde_json::from_value(undo.clone()).ok()?;
        (u.driver == "proxy").then(|| ProxyDriver {
            ctl: ControlClient::new("fault proxy", &u.control_url),
            control_url: u.control_url,
            spec: None,
            run_id: String::new(),
        })
    }

    fn spec(&self) -> Result<&LocalTarget, DriverError> {
        self.spec.as_ref().ok_or_else(|| {
            DriverError::Permanent("this proxy driver was rebuilt to revert only".into())
        })
    }

    /// The proxies `f` holds, each with the control call's fault and query.
    fn holds_for(&self, f: &Fault) -> Result<(Vec<String>, Vec<HoldCall>), DriverError> {
        let s = self.spec()?;
        let of_role = |role: &str| -> Vec<String> {
            s.proxies
                .iter()
                .filter(|p| p.role.as_deref() == Some(role))
                .map(|p| p.name.clone())
                .collect()
        };
        let none = |what: &str| {
            DriverError::Unsupported(format!(
                "fault `{}` ({}): the target declares no proxy {what}",
                f.name,
                f.kind.name()
            ))
        };
        let (names, fault, query, targets) = match &f.kind {
            FaultKind::CachePartition {} => {
                let n = of_role("cache");
                if n.is_empty() {
                    return Err(none("with role = \"cache\""));
                }
                let t = n
                    .iter()
                    .map(|p| format!("proxy {p} (blackholed)"))
                    .collect();
                (n, "partition", String::new(), t)
            }
            FaultKind::Latency {
                link,
                delay,
                jitter,
            } => {
                let role = match link {
                    Link::AppDb => "db",
                    Link::AppCache => "cache",
                };
                let n = of_role(role);
                if n.is_empty() {
                    return Err(none(&format!("with role = \"{role}\"")));
                }
                let q = format!(
                    "&delay_ms={}&jitter_ms={}&direction=down",
                    delay.as_millis(),
                    jitter.as_millis()
                );
                let t = n
                    .iter()
                    .map(|p| format!("proxy {p} (+{} ms)", delay.as_millis()))
                    .collect();
                (n, "latency", q, t)
            }
            FaultKind::AzOutage { zone, parts } => {
                if !parts.has(AzPart::Network) {
                    return Err(DriverError::Unsupported(format!(
                        "fault `{}`: on a local target an az-outage cuts the zone's proxies \
                         off (its network): `parts` must include \"network\"",
                        f.name
                    )));
                }
                let n: Vec<String> = s
                    .proxies
                    .iter()
                    .filter(|p| p.zone.as_deref() == Some(zone.as_str()))
                    .map(|p| p.name.clone())
                    .collect();
                if n.is_empty() {
                    return Err(none(&format!("in zone {zone}")));
                }
                let t: Vec<String> = n
                    .iter()
                    .map(|p| format!("proxy {p} (zone {zone}, blackholed)"))
                    .collect();
                (n, "partition", String::new(), t)
            }
            other => {
                return Err(DriverError::Unsupported(format!(
                    "fault `{}`: the proxy driver does cache-partition, latency and az-outage; \
                     `{}` on a local target is the process driver's",
                    f.name,
                    other.name()
                )))
            }
        };
        let holds = names
            .into_iter()
            .map(|p| (p, fault.to_string(), query.clone()))
            .collect();
        Ok((targets, holds))
    }

    fn by(&self, fault: &str) -> String {
        format!("{}:{fault}", self.run_id)
    }

    fn undo_of(&self, p: &FaultPlan) -> Result<ProxyUndo, DriverError> {
        serde_json::from_value(p.check.clone())
            .map_err(|e| DriverError::Permanent(format!("bad plan data for the proxy driver: {e}")))
    }

    fn of(undo: &Undo) -> Result<ProxyUndo, DriverError> {
        serde_json::from_value(undo.clone())
            .map_err(|e| DriverError::Permanent(format!("bad undo data for the proxy driver: {e}")))
    }
}

fn put_path(proxy: &str, fault: &str, by: &str, lease_ms: u64, query: &str) -> String {
    format!("/proxies/{proxy}/faults/{fault}?by={by}&lease_ms={lease_ms}{query}")
}

fn delete_path(proxy: &str, fault: &str, by: &str) -> String {
    format!("/proxies/{proxy}/faults/{fault}?by={by}")
}

impl Driver for ProxyDriver {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        Box::pin(async move {
            let s = self.spec()?;
            let (targets, holds) = self.holds_for(f)?;
            let by = self.by(&f.name);
            let lease_ms = s.lease.as_millis() as u64;
            let inject = holds
                .iter()
                .map(|(p, fault, q)| {
                    Call::http("proxy", "PUT", put_path(p, fault, &by, lease_ms, q))
                })
                .collect();
            let revert = holds
                .iter()
                .map(|(p, fault, _)| Call::http("proxy", "DELETE", delete_path(p, fault, &by)))
                .collect();
            let undo = ProxyUndo {
                driver: "proxy".into(),
                control_url: self.control_url.clone(),
                by,
                lease_ms,
                holds: holds.into_iter().map(|(p, f, _)| (p, f)).collect(),
            };
            Ok(FaultPlan {
                fault: f.name.clone(),
                kind: f.kind.name().to_string(),
                targets,
                inject,
                revert,
                check: serde_json::to_value(undo).unwrap_or(Value::Null),
            })
        })
    }

    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            for c in &p.inject {
                self.ctl.call(&c.operation, &c.resource).await?;
            }
            Ok(p.check.clone())
        })
    }

    fn confirm<'a>(
        &'a self,
        _p: &'a FaultPlan,
        undo: &'a Undo,
    ) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = Self::of(undo)?;
            let got = self.ctl.call("GET", "/proxies").await?;
            for (proxy, fault) in &u.holds {
                let held = got["proxies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["name"] == proxy.as_str())
                    .flat_map(|p| p["faults"].as_array().cloned().unwrap_or_default())
                    .any(|h| h["fault"] == fault.as_str() && h["by"] == u.by.as_str());
                if !held {
                    return Err(DriverError::retryable(format!(
                        "proxy {proxy} does not show {fault} held by {}",
                        u.by
                    )));
                }
            }
            Ok(())
        })
    }

    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = Self::of(undo)?;
            for (proxy, fault) in &u.holds {
                self.ctl
                    .call("DELETE", &delete_path(proxy, fault, &u.by))
                    .await?;
            }
            Ok(())
        })
    }

    fn undo_for(&self, p: &FaultPlan) -> Undo {
        p.check.clone()
    }

    fn lease(&self) -> Option<Duration> {
        self.spec.as_ref().map(|s| s.lease)
    }

    fn renew<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = Self::of(undo)?;
            let r = self
                .ctl
                .call(
                    "POST",
                    &format!("/renew?by={}&lease_ms={}", u.by, u.lease_ms),
                )
                .await?;
            // Fewer renewed than held: a lease ran out before this renewal (the proxy healed
            // that part of the fault).
            let n = r["renewed"].as_u64().unwrap_or(0) as usize;
            if n < u.holds.len() {
                return Err(DriverError::Permanent(format!(
                    "only {n} of the {} holds of {} were still held: a lease ran out and the \
                     proxy healed the rest",
                    u.holds.len(),
                    u.by
                )));
            }
            Ok(())
        })
    }

    fn observe<'a>(
        &'a self,
        _planned: &'a [Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        Some(Box::pin(async move {
            let got = self.ctl.call("GET", "/proxies").await?;
            let mut s = Snapshot::new();
            for p in got["proxies"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                let mut faults: Vec<String> = p["faults"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| {
                        let what = h["fault"].as_str().unwrap_or_default();
                        match h["delay_ms"].as_u64() {
                            Some(d) => format!("{what} +{d}ms"),
                            None => what.to_string(),
                        }
                    })
                    .collect();
                faults.sort();
                faults.dedup();
                let v = if faults.is_empty() {
                    "passing".to_string()
                } else {
                    faults.join(", ")
                };
                s.insert(format!("proxy {name}"), v);
                s.insert(
                    format!("proxy {name} upstream"),
                    p["upstream"].as_str().unwrap_or_default().to_string(),
                );
            }
            Ok(s)
        }))
    }

    fn observe_every(&self) -> Duration {
        Duration::from_millis(500)
    }
}

impl ProxyDriver {
    /// The run id its holds are tagged with.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The plan data of a plan (for tests).
    pub fn holds_of(&self, p: &FaultPlan) -> Result<Vec<(String, String)>, DriverError> {
        self.undo_of(p).map(|u| u.holds)
    }
}
