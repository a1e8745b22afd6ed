//! The local driver: a `local` target's faults, each done by the part that can — the proxy
//! driver for the network between the stack's parts (cache-partition, latency), the process
//! driver for its processes (kill-nodes, freeze, db-failover, cache-failover, command) — and an
//! az-outage by both: the zone's proxies blackholed and its processes frozen (SIGSTOP), which
//! the plan says; a blue/green cutover by the stack's haproxy (`[lb]`: [`super::haproxy`]), and
//! a db-restore by the target's `[restore]` commands, each as a command pair the process driver
//! runs. (Cutting a zone off with network namespaces and iptables as root is not
//! built: processes started outside a namespace cannot be moved into one.)
//!
//! Its log part ([`super::logs`]) reads the HA machinery's log files the target names into
//! control-plane events; it does no fault.
//!
//! A fault done by one part keeps that part's plan and undo data unchanged; an az-outage's
//! undo data is `{"driver": "local", "parts": [...]}` with each part's own, so `chaos rollback`
//! reverts each through its part. It must never do a fault through a part the target file
//! does not declare.

use std::time::Duration;

use serde_json::{json, Value};

use super::logs::LogWatch;
use super::process::{Action, ProcessDriver};
use super::proxy::ProxyDriver;
use crate::fault::{BoxFut, Driver, DriverError, FaultPlan, Planned, Snapshot, Undo};
use crate::scenario::{AzPart, AzParts, Fault, FaultKind};
use crate::target::local::LocalTarget;

pub struct LocalDriver {
    proxy: Option<ProxyDriver>,
    process: Option<ProcessDriver>,
    /// The stack's haproxy, for cutovers.
    lb: Option<crate::target::local::LbConfig>,
    /// The stack's restore, for db-restore.
    restore: Option<crate::target::local::CommandConfig>,
    logs: LogWatch,
}

impl LocalDriver {
    /// A driver for `l`: its proxy part once the fault proxy answers (when the file declares
    /// proxies), its process part when it declares processes or commands.
    pub async fn connect(l: &LocalTarget) -> Result<LocalDriver, String> {
        let proxy = match l.proxy_control {
            Some(c) if !l.proxies.is_empty() => Some(ProxyDriver::connect(l, c).await?),
            _ => None,
        };
        let run_id = proxy
            .as_ref()
            .map(|p| p.run_id().to_string())
            .unwrap_or_else(crate::fault::new_run_id);
        let process = (!l.processes.is_empty()
            || !l.commands.is_empty()
            || l.lb.is_some()
            || l.restore.is_some())
        .then(|| ProcessDriver::new(l, &run_id));
        Ok(LocalDriver {
            proxy,
            process,
            lb: l.lb.clone(),
            restore: l.restore.clone(),
            logs: LogWatch::new(&l.logs),
        })
    }

    pub fn from_undo(undo: &Undo) -> Option<LocalDriver> {
        if undo["driver"] != "local" {
            return None;
        }
        let parts = undo["parts"].as_array()?;
        Some(LocalDriver {
            proxy: parts.iter().find_map(ProxyDriver::from_undo),
            process: parts.iter().find_map(ProcessDriver::from_undo),
            lb: None,
            restore: None,
            logs: LogWatch::new(&[]),
        })
    }

    fn part(&self, driver: &str) -> Result<&dyn Driver, DriverError> {
        let d: Option<&dyn Driver> = match driver {
            "proxy" => self.proxy.as_ref().map(|d| d as &dyn Driver),
            "process" => self.process.as_ref().map(|d| d as &dyn Driver),
            _ => None,
        };
        d.ok_or_else(|| DriverError::Permanent(format!("no `{driver}` part in this local driver")))
    }

    fn no_part(f: &Fault, what: &str) -> DriverError {
        DriverError::Unsupported(format!(
            "fault `{}` ({}) on a local target needs {what}",
            f.name,
            f.kind.name()
        ))
    }

    async fn plan_outage(
        &self,
        f: &Fault,
        zone: &str,
        parts: &AzParts,
    ) -> Result<FaultPlan, DriverError> {
        let mut plans = Vec::new();
        let mut how = Vec::new();
        if parts.has(AzPart::Network) {
            if let Some(p) = &self.proxy {
                match p.plan(f).await {
                    Ok(plan) => {
                        plans.push(plan);
                        how.push("its proxies blackholed");
                    }
                    Err(DriverError::Unsupported(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let roles: Vec<&str> = [
            (AzPart::Instances, "app"),
            (AzPart::Db, "db"),
            (AzPart::Cache, "cache"),
        ]
        .iter()
        .filter(|(p, _)| parts.has(*p))
        .map(|(_, r)| *r)
        .collect();
        if let Some(p) = &self.process {
            let nodes = p.nodes_in_zone(zone, &roles);
            if !nodes.is_empty() {
                let t = nodes
                    .iter()
                    .map(|n| format!("node {} (zone {zone}, frozen: SIGSTOP)", n.name))
                    .collect();
                plans.push(p.plan_action(f, Action::Freeze { nodes }, t));
                how.push("its processes frozen");
            }
        }
        if plans.is_empty() {
            return Err(DriverError::Unsupported(format!(
                "fault `{}`: zone {zone} has no proxy (for the network part) and no process of \
                 the roles its parts name: the outage would change nothing",
                f.name
            )));
        }
        let mut targets: Vec<String> = plans.iter().flat_map(|p| p.targets.clone()).collect();
        targets.push(format!(
            "(zone {zone} cut off by {}; no network namespaces or iptables)",
            how.join(" and ")
        ));
        Ok(FaultPlan {
            fault: f.name.clone(),
            kind: f.kind.name().to_string(),
            targets,
            inject: plans.iter().flat_map(|p| p.inject.clone()).collect(),
            revert: plans.iter().flat_map(|p| p.revert.clone()).collect(),
            check: json!({ "driver": "local", "plans": plans }),
        })
    }

    /// The parts' plans of a combined plan.
    fn plans_of(p: &FaultPlan) -> Result<Vec<FaultPlan>, DriverError> {
        serde_json::from_value(p.check["plans"].clone())
            .map_err(|e| DriverError::Permanent(format!("bad plan data for the local driver: {e}")))
    }

    fn driver_of(v: &Value) -> &str {
        v["driver"].as_str().unwrap_or_default()
    }
}

/// All parts' results as one: done when every part is (or was already) done.
fn all(results: Vec<Result<(), DriverError>>) -> Result<(), DriverError> {
    let mut already = true;
    for r in results {
        match r {
            Ok(()) => already = false,
            Err(DriverError::AlreadyReverted) => {}
            Err(e) => return Err(e),
        }
    }
    if already {
        Err(DriverError::AlreadyReverted)
    } else {
        Ok(())
    }
}

impl Driver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        Box::pin(async move {
            match &f.kind {
                FaultKind::CachePartition {} | FaultKind::Latency { .. } => match &self.proxy {
                    Some(p) => p.plan(f).await,
                    None => Err(Self::no_part(f, "proxies ([proxies.NAME])")),
                },
                FaultKind::AzOutage { zone, parts } => self.plan_outage(f, zone, parts).await,
                FaultKind::RestartNodes { .. } => Err(DriverError::Unsupported(format!(
                    "fault `{}`: restart-nodes is not built for a local target (kill-nodes \
                     with its restart, or freeze, are)",
                    f.name
                ))),
                FaultKind::BlueGreen {
                    steps,
                    every,
                    drain,
                } => match (&self.lb, &self.process) {
                    (Some(lb), Some(p)) => {
                        let pidfile = p.hold_path(f, "cutover.pid");
                        let (inject, revert) =
                            super::haproxy::commands(lb, steps, *every, *drain, &pidfile);
                        let t = vec![format!(
                            "haproxy {} backend {}: requests moved from {} (blue) to {} \
                             (green): {}",
                            lb.haproxy,
                            lb.backend,
                            lb.blue.join(", "),
                            lb.green.join(", "),
                            super::cutover_steps(steps, *every, *drain)
                        )];
                        let action = Action::Command {
                            name: format!("cutover:{}", f.name),
                            inject,
                            revert: Some(revert),
                            timeout_ms: super::haproxy::COMMAND_TIMEOUT.as_millis() as u64,
                        };
                        Ok(p.plan_action(f, action, t))
                    }
                    _ => Err(Self::no_part(
                        f,
                        "its haproxy ([lb]: the runtime API's address, the backend, its blue \
                         and green servers)",
                    )),
                },
                FaultKind::DbRestore {} => match (&self.restore, &self.process) {
                    (Some(r), Some(p)) => {
                        let t = vec!["the database (every row lost, then restored from the \
                                      stack's newest backup by the target's [restore])"
                            .to_string()];
                        let action = Action::Command {
                            name: format!("restore:{}", f.name),
                            inject: r.inject.clone(),
                            revert: r.revert.clone(),
                            timeout_ms: r.timeout.as_millis() as u64,
                        };
                        Ok(p.plan_action(f, action, t))
                    }
                    _ => Err(Self::no_part(
                        f,
                        "its restore ([restore]: a command that loses the database and starts \
                         its restore from the newest backup, and a revert that waits for it or \
                         finishes it)",
                    )),
                },
                _ => match &self.process {
                    Some(p) => p.plan(f).await,
                    None => Err(Self::no_part(
                        f,
                        "processes ([processes.NAME]) or commands ([commands.NAME])",
                    )),
                },
            }
        })
    }

    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            let d = Self::driver_of(&p.check);
            if d != "local" {
                return self.part(d)?.inject(p).await;
            }
            let mut undos = Vec::new();
            for sub in Self::plans_of(p)? {
                undos.push(self.part(Self::driver_of(&sub.check))?.inject(&sub).await?);
            }
            Ok(json!({ "driver": "local", "parts": undos }))
        })
    }

    fn confirm<'a>(
        &'a self,
        p: &'a FaultPlan,
        undo: &'a Undo,
    ) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = Self::driver_of(&p.check);
            if d != "local" {
                return self.part(d)?.confirm(p, undo).await;
            }
            let parts = undo["parts"].as_array().cloned().unwrap_or_default();
            for (sub, u) in Self::plans_of(p)?.iter().zip(&parts) {
                self.part(Self::driver_of(u))?.confirm(sub, u).await?;
            }
            Ok(())
        })
    }

    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = Self::driver_of(undo);
            if d != "local" {
                return self.part(d)?.revert(undo).await;
            }
            let mut results = Vec::new();
            // Every part is reverted even when one fails; the first failure is the answer.
            for u in undo["parts"].as_array().into_iter().flatten() {
                results.push(match self.part(Self::driver_of(u)) {
                    Ok(d) => d.revert(u).await,
                    Err(e) => Err(e),
                });
            }
            all(results)
        })
    }

    fn undo_for(&self, p: &FaultPlan) -> Undo {
        let d = Self::driver_of(&p.check);
        if d != "local" {
            return self.part(d).map_or(Value::Null, |x| x.undo_for(p));
        }
        let parts: Vec<Value> = Self::plans_of(p)
            .unwrap_or_default()
            .iter()
            .filter_map(|sub| {
                self.part(Self::driver_of(&sub.check))
                    .ok()
                    .map(|x| x.undo_for(sub))
            })
            .collect();
        json!({ "driver": "local", "parts": parts })
    }

    fn revert_deadline(&self) -> Duration {
        let p = self.proxy.as_ref().map(|d| d.revert_deadline());
        let q = self.process.as_ref().map(|d| d.revert_deadline());
        p.into_iter()
            .chain(q)
            .max()
            .unwrap_or(Duration::from_secs(5))
    }

    fn lease(&self) -> Option<Duration> {
        self.proxy
            .as_ref()
            .and_then(|d| d.lease())
            .or_else(|| self.process.as_ref().and_then(|d| d.lease()))
    }

    fn renew<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = Self::driver_of(undo);
            if d != "local" {
                return self.part(d)?.renew(undo).await;
            }
            // Every part is renewed even when one fails: one part's trouble must not let
            // another's lease run out.
            let mut first = Ok(());
            for u in undo["parts"].as_array().into_iter().flatten() {
                let r = match self.part(Self::driver_of(u)) {
                    Ok(d) => d.renew(u).await,
                    Err(e) => Err(e),
                };
                if first.is_ok() {
                    first = r;
                }
            }
            first
        })
    }

    fn observe<'a>(
        &'a self,
        planned: &'a [Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        let a = self.proxy.as_ref().and_then(|d| d.observe(planned));
        let b = self.process.as_ref().and_then(|d| d.observe(planned));
        if a.is_none() && b.is_none() && self.logs.is_empty() {
            return None;
        }
        Some(Box::pin(async move {
            let mut s = Snapshot::new();
            for f in a.into_iter().chain(b) {
                s.extend(f.await?);
            }
            s.extend(self.logs.poll());
            Ok(s)
        }))
    }

    fn observe_every(&self) -> Duration {
        let p = self.proxy.as_ref().map(|d| d.observe_every());
        let q = self.process.as_ref().map(|d| d.observe_every());
        p.into_iter()
            .chain(q)
            .min()
            .unwrap_or(Duration::from_secs(1))
    }
}
