//! The aws driver: faults on an AWS stack through aws-sdk-rust (EC2, Auto Scaling, RDS/Aurora,
//! ElastiCache, STS), the way AWS FIS does them. Plans resolve the target's roles to ids with
//! read calls only ([`resolve`]); each fault is a list of [`actions::Action`]s that inject,
//! confirm by describe calls and revert idempotently; the undo data is those actions plus where
//! the account is, so `chaos rollback` in another process finishes the job.
//!
//! Safety lives here and is checked before any load starts: the credentials' account must be
//! the target's (STS; a driver rebuilt from a journal checks it again before it reverts), every
//! resource a fault changes (instances, subnets, the auto scaling group, the Aurora cluster or
//! RDS instance, the replication group, security groups) must carry the opt-in tag, and the
//! instances stopped or terminated at any one instant, by all of the run's faults together
//! (a terminated one for the rest of the run), stay within the caps; two faults whose windows
//! meet that change the same subnet, auto scaling group or instance are refused. The driver
//! remembers what it planned: [`Driver::plan`] is called for every fault of the run, in the
//! scenario's order (not by time), before any runs. What the driver changes and could leave
//! applied is tagged with the run id ([`actions::RUN_TAG`] and friends: network ACLs, stopped
//! instances, the ASG's subnets), so [`sweep`] finds it without a journal; revoked
//! security-group rules only the journal holds.
//!
//! During a run with faults it reads back what they touch ([`observe`]) for the run's
//! control-plane events.
//!
//! It must never act on an untagged resource, never make a write call from `plan` or
//! `observe`, and never hand-roll credentials: aws-config's default chain supplies them.

pub mod actions;
pub mod clients;
pub mod observe;
pub mod resolve;
pub mod sweep;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::fault::{BoxFut, Driver, DriverError, FaultPlan, Planned, Snapshot, Undo};
use crate::scenario::{AzPart, AzParts, Count, Fault, FaultKind, KillMode, Role};
use crate::target::aws::{AppRole, AwsTarget, DbRole};
use actions::{Action, SubnetAcl};
use clients::Clients;
use resolve::{filter, require_tag, Instance};

/// The aws driver's undo data, as the journal keeps it: where the account is and what the
/// fault did, so a rollback in another process needs nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AwsUndo {
    /// Always `"aws"`: which driver reads this back (see `target::driver_for_undo`).
    pub driver: String,
    pub region: String,
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    pub run_id: String,
    pub fault: String,
    pub actions: Vec<Action>,
}

pub struct AwsDriver {
    region: String,
    account: String,
    endpoint_url: Option<String>,
    /// The target's settings (`None` for a driver rebuilt from undo data: it only reverts).
    spec: Option<AwsTarget>,
    /// Tags everything this driver creates or changes.
    run_id: String,
    clients: OnceCell<Clients>,
    /// The faults planned so far: later ones are checked against those at the same time.
    planned: std::sync::Mutex<Vec<PlannedFault>>,
}

/// A fault's actions and when they hold, for the checks across a run's plan.
struct PlannedFault {
    fault: String,
    at: Duration,
    /// `None`: to the end of the run (or forever: a terminated instance).
    until: Option<Duration>,
    actions: Vec<Action>,
}

/// Why an aws target cannot be used (exit 2: before any load or fault).
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "refused: these credentials are for account {found}, the target is account {expected}; \
         nothing was run (use credentials for {expected}, or fix `account` in the target file)"
    )]
    WrongAccount { expected: String, found: String },
    #[error("cannot check the account (sts:GetCallerIdentity): {0}")]
    Identity(DriverError),
}

/// An instance an earlier-planned fault stops or terminates, and when.
struct Taken {
    instance: String,
    at: Duration,
    until: Option<Duration>,
}

impl AwsDriver {
    /// A driver for `spec` whose credentials are checked to be for its account.
    pub async fn connect(spec: &AwsTarget) -> Result<AwsDriver, AwsError> {
        let d = AwsDriver {
            region: spec.region.clone(),
            account: spec.account.clone(),
            endpoint_url: spec.endpoint_url.clone(),
            spec: Some(spec.clone()),
            run_id: crate::fault::new_run_id(),
            clients: OnceCell::new(),
            planned: Default::default(),
        };
        let c = d.clients().await;
        let who =
            c.sts.get_caller_identity().send().await.map_err(|e| {
                AwsError::Identity(clients::api_err("sts:GetCallerIdentity", "", e))
            })?;
        let found = who.account().unwrap_or_default().to_string();
        if found != spec.account {
            return Err(AwsError::WrongAccount {
                expected: spec.account.clone(),
                found,
            });
        }
        Ok(d)
    }

    /// The driver that can revert `undo` (written by [`Driver::inject`] or `undo_for`).
    pub fn from_undo(undo: &Undo) -> Option<AwsDriver> {
        let u: AwsUndo = serde_json::from_value(undo.clone()).ok()?;
        (u.driver == "aws").then(|| AwsDriver {
            region: u.region,
            account: u.account,
            endpoint_url: u.endpoint_url,
            spec: None,
            run_id: u.run_id,
            clients: OnceCell::new(),
            planned: Default::default(),
        })
    }

    /// The tag value on everything this driver creates or changes.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub async fn clients(&self) -> &Clients {
        self.clients
            .get_or_init(|| Clients::new(&self.region, self.endpoint_url.as_deref()))
            .await
    }

    fn spec(&self) -> Result<&AwsTarget, DriverError> {
        self.spec.as_ref().ok_or_else(|| {
            DriverError::Permanent("this aws driver was rebuilt to revert only".into())
        })
    }

    fn undo_of(&self, fault: &str, actions: Vec<Action>) -> AwsUndo {
        AwsUndo {
            driver: "aws".into(),
            region: self.region.clone(),
            account: self.account.clone(),
            endpoint_url: self.endpoint_url.clone(),
            run_id: self.run_id.clone(),
            fault: fault.to_string(),
            actions,
        }
    }

    /// The app role's instances that are running, each checked for the opt-in tag.
    async fn app_instances(&self, s: &AwsTarget) -> Result<Vec<Instance>, DriverError> {
        let c = self.clients().await;
        let mut filters = vec![filter("instance-state-name", &["running".into()])];
        match &s.app {
            None => {
                return Err(DriverError::Unsupported(
                    "the target names no app role ([roles.app] asg or tags)".into(),
                ))
            }
            Some(AppRole::Asg(name)) => filters.push(filter(
                "tag:aws:autoscaling:groupName",
                std::slice::from_ref(name),
            )),
            Some(AppRole::Tags(tags)) => {
                for (k, v) in tags {
                    filters.push(filter(&format!("tag:{k}"), std::slice::from_ref(v)));
                }
            }
        }
        let found = resolve::instances(c, filters).await?;
        if found.is_empty() {
            return Err(DriverError::Permanent(
                "the app role has no running instances in this account and region".into(),
            ));
        }
        for i in &found {
            require_tag("instance", &i.id, &i.tags, &s.opt_in_tag)?;
        }
        Ok(found)
    }

    /// Refuse more instances down at once than the caps allow: `n` this fault takes, plus
    /// `others` that faults planned before it take at the same time, out of `of` in the role.
    fn check_caps(s: &AwsTarget, n: usize, others: usize, of: usize) -> Result<(), DriverError> {
        let total = n + others;
        let with = if others == 0 {
            String::new()
        } else {
            format!(" ({n} by this fault, {others} by faults applied at the same time)")
        };
        if total as u32 > s.max_instances {
            return Err(DriverError::Permanent(format!(
                "refused: the run would have {total} instances stopped or terminated at once\
                 {with}, more than the target's max_instances = {}",
                s.max_instances
            )));
        }
        if (total as f64) * 100.0 > s.max_percent * of as f64 + 1e-9 {
            return Err(DriverError::Permanent(format!(
                "refused: the run would have {total} of the role's {of} instances stopped or \
                 terminated at once{with}, more than the target's max_percent = {}%",
                s.max_percent
            )));
        }
        Ok(())
    }

    /// When `f` holds what it changes: from its `at` to its revert, or to the end of the run
    /// (`None`) — forever for a terminate: a terminated instance never comes back.
    fn window(f: &Fault) -> (Duration, Option<Duration>) {
        let terminates = matches!(
            f.kind,
            FaultKind::KillNodes {
                mode: KillMode::Kill,
                ..
            }
        );
        (f.at, f.duration.map(|d| f.at + d).filter(|_| !terminates))
    }

    /// Faults planned before `f` (in the scenario's order, not by time) whose window overlaps
    /// or touches its: a revert and an inject at one instant race each other.
    fn planned_during(&self, f: &Fault) -> Vec<(String, Duration, Option<Duration>, Action)> {
        let (at, end) = Self::window(f);
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|e| e.until.is_none_or(|b| b >= at) && end.is_none_or(|x| x >= e.at))
            .flat_map(|e| {
                e.actions
                    .iter()
                    .map(|a| (e.fault.clone(), e.at, e.until, a.clone()))
            })
            .collect()
    }

    /// Instances stopped or terminated by faults planned before `f` whose window meets its.
    fn taken_during(&self, f: &Fault) -> Vec<Taken> {
        self.planned_during(f)
            .into_iter()
            .flat_map(|(_, at, until, a)| match a {
                Action::StopInstances { instances } | Action::TerminateInstances { instances } => {
                    instances
                        .into_iter()
                        .map(|i| Taken {
                            instance: i,
                            at,
                            until,
                        })
                        .collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// The most instances other faults hold at any one instant of `f`'s window (those in
    /// `mine` left out: `f` counts them itself).
    fn held_at_once(&self, f: &Fault, mine: &[String]) -> usize {
        let (at, end) = Self::window(f);
        let taken: Vec<Taken> = self
            .taken_during(f)
            .into_iter()
            .filter(|t| !mine.contains(&t.instance))
            .collect();
        // The count changes only where a window starts: try f's start and every start in it.
        let mut instants = vec![at];
        instants.extend(
            taken
                .iter()
                .map(|t| t.at)
                .filter(|t| *t >= at && end.is_none_or(|e| *t <= e)),
        );
        instants
            .into_iter()
            .map(|t| {
                let mut ids: Vec<&str> = taken
                    .iter()
                    .filter(|x| x.at <= t && x.until.is_none_or(|u| u >= t))
                    .map(|x| x.instance.as_str())
                    .collect();
                ids.sort();
                ids.dedup();
                ids.len()
            })
            .max()
            .unwrap_or(0)
    }

    /// Refuse a fault that changes what an overlapping fault planned before it changes (an
    /// auto scaling group's subnets, a subnet's network ACL, an instance): each one's undo
    /// would put back what the other still needs changed.
    fn check_overlap(&self, f: &Fault, acts: &[Action]) -> Result<(), DriverError> {
        let held = |a: &Action| -> Vec<String> {
            match a {
                Action::KeepAsgOut { asg, .. } => vec![format!("auto scaling group {asg}")],
                Action::DenyNetwork { subnets, .. } => subnets
                    .iter()
                    .map(|s| format!("subnet {}", s.subnet))
                    .collect(),
                Action::StopInstances { instances } | Action::TerminateInstances { instances } => {
                    instances.iter().map(|i| format!("instance {i}")).collect()
                }
                _ => Vec::new(),
            }
        };
        let mine: Vec<String> = acts.iter().flat_map(held).collect();
        for (other, _, _, a) in self.planned_during(f) {
            if let Some(both) = held(&a).into_iter().find(|x| mine.contains(x)) {
                return Err(DriverError::Permanent(format!(
                    "refused: faults `{other}` and `{}` both change {both} at the same time \
                     (each one's revert would undo the other); schedule them apart, or use one \
                     fault",
                    f.name
                )));
            }
        }
        Ok(())
    }

    fn az_of<'s>(s: &'s AwsTarget, zone: &str) -> Result<&'s str, DriverError> {
        s.az(zone).ok_or_else(|| {
            DriverError::Permanent(format!(
                "zone `{zone}` is not in the target's [zones] ({})",
                s.zones.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    async fn plan_actions(&self, f: &Fault) -> Result<(Vec<String>, Vec<Action>), DriverError> {
        let s = self.spec()?;
        match &f.kind {
            FaultKind::KillNodes {
                role,
                count,
                zone,
                mode,
                restart,
            } => {
                if !restart && *mode == KillMode::Stop {
                    return Err(DriverError::Unsupported(format!(
                        "fault `{}`: `restart = false` with `mode = \"stop\"` would leave the \
                         instances stopped (nothing on aws starts a stopped instance by itself): \
                         use `mode = \"kill\"` (terminated; the ASG replaces them)",
                        f.name
                    )));
                }
                if *role != Role::App {
                    return Err(DriverError::Unsupported(format!(
                        "kill-nodes on aws hits the app role's instances, not `{}`: use \
                         db-failover or cache-failover for the database and the cache",
                        serde_json::to_value(role)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    )));
                }
                let all = self.app_instances(s).await?;
                let in_zone: Vec<&Instance> = match zone {
                    Some(z) => {
                        let az = Self::az_of(s, z)?;
                        all.iter().filter(|i| i.az == az).collect()
                    }
                    None => all.iter().collect(),
                };
                // A percentage is of the role (in the zone), whatever else is down; instances
                // another fault takes at the same time are not picked again.
                let n = match count {
                    Count::Nodes(n) => *n as usize,
                    Count::Percent(p) => ((in_zone.len() as f64) * p / 100.0).ceil() as usize,
                };
                let taken = self.taken_during(f);
                let pool: Vec<&Instance> = in_zone
                    .into_iter()
                    .filter(|i| !taken.iter().any(|t| t.instance == i.id))
                    .collect();
                if n == 0 || n > pool.len() {
                    return Err(DriverError::Permanent(format!(
                        "kill-nodes asks for {n} instances; the app role has {} running{}{}",
                        pool.len(),
                        zone.as_ref()
                            .map(|z| format!(" in zone {z}"))
                            .unwrap_or_default(),
                        if taken.is_empty() {
                            String::new()
                        } else {
                            " that no other fault takes at the same time".to_string()
                        }
                    )));
                }
                let ids: Vec<String> = pool.iter().take(n).map(|i| i.id.clone()).collect();
                Self::check_caps(s, n, self.held_at_once(f, &ids), all.len())?;
                let targets = pool
                    .iter()
                    .take(n)
                    .map(|i| format!("{} ({})", i.id, i.az))
                    .collect();
                let a = match mode {
                    KillMode::Kill => Action::TerminateInstances { instances: ids },
                    KillMode::Stop => Action::StopInstances { instances: ids },
                };
                Ok((targets, vec![a]))
            }
            FaultKind::AzOutage { zone, parts } => self.plan_az_outage(s, f, zone, parts).await,
            FaultKind::DbFailover {} => {
                let a = self.plan_db_failover(s, None).await?;
                let t = match &a {
                    Some(Action::FailoverAurora {
                        cluster,
                        writer,
                        target,
                    }) => format!(
                        "aurora {cluster}: writer {writer} -> {}",
                        target.as_deref().unwrap_or("(a reader)")
                    ),
                    Some(Action::FailoverRds { instance, az }) => {
                        format!("rds {instance} (primary in {az})")
                    }
                    _ => String::new(),
                };
                Ok((vec![t], a.into_iter().collect()))
            }
            FaultKind::CacheFailover {} => {
                let rg = self.cache_group(s).await?;
                let ng = rg.node_groups.first().ok_or_else(|| {
                    DriverError::Permanent("the replication group has no node groups".into())
                })?;
                let primary = ng.primary().ok_or_else(|| {
                    DriverError::Permanent(format!("node group {} has no primary", ng.id))
                })?;
                let name = s
                    .cache
                    .as_ref()
                    .map(|c| c.replication_group.clone())
                    .unwrap_or_default();
                Ok((
                    vec![format!(
                        "elasticache {name} node group {} (primary {})",
                        ng.id, primary.0
                    )],
                    vec![Action::FailoverCache {
                        replication_group: name,
                        node_group: ng.id.clone(),
                        primary: primary.0.clone(),
                    }],
                ))
            }
            FaultKind::CachePartition {} => self.plan_cache_partition(s).await,
            // A restore drill on AWS creates a new cluster from a snapshot (RDS
            // RestoreDBClusterFromSnapshot) and repoints the app: not built.
            FaultKind::RestartNodes { .. }
            | FaultKind::DbRestore {}
            | FaultKind::BlueGreen { .. }
            | FaultKind::Latency { .. }
            | FaultKind::Freeze { .. }
            | FaultKind::Command { .. } => Err(DriverError::Unsupported(format!(
                "the aws driver cannot do `{}` faults (it does kill-nodes, az-outage, \
                     db-failover, cache-partition and cache-failover)",
                f.kind.name()
            ))),
        }
    }

    async fn cache_group(&self, s: &AwsTarget) -> Result<resolve::ReplicationGroup, DriverError> {
        let cache = s.cache.as_ref().ok_or_else(|| {
            DriverError::Unsupported("the target names no cache role ([roles.cache])".into())
        })?;
        let rg = resolve::replication_group(self.clients().await, &cache.replication_group).await?;
        require_tag(
            "replication group",
            &cache.replication_group,
            &rg.tags,
            &s.opt_in_tag,
        )?;
        Ok(rg)
    }

    /// The database's failover, or `None` if `only_in` is given and the writer is elsewhere.
    async fn plan_db_failover(
        &self,
        s: &AwsTarget,
        only_in: Option<&str>,
    ) -> Result<Option<Action>, DriverError> {
        let c = self.clients().await;
        match &s.db {
            None => Err(DriverError::Unsupported(
                "the target names no database role ([roles.db])".into(),
            )),
            Some(DbRole::AuroraCluster(id)) => {
                let cl = resolve::aurora(c, id).await?;
                require_tag("Aurora cluster", id, &cl.tags, &s.opt_in_tag)?;
                let w = cl.writer().ok_or_else(|| {
                    DriverError::Permanent(format!("Aurora cluster {id} has no writer"))
                })?;
                if only_in.is_some_and(|az| w.az != az) {
                    return Ok(None);
                }
                // A reader in another zone than the writer's: the zone may be the one going down.
                let target = cl
                    .members
                    .iter()
                    .find(|m| !m.writer && m.az != w.az)
                    .or_else(|| cl.members.iter().find(|m| !m.writer))
                    .ok_or_else(|| {
                        DriverError::Permanent(format!(
                            "Aurora cluster {id} has no reader to fail over to"
                        ))
                    })?;
                Ok(Some(Action::FailoverAurora {
                    cluster: id.clone(),
                    writer: w.id.clone(),
                    target: Some(target.id.clone()),
                }))
            }
            Some(DbRole::RdsInstance(id)) => {
                let i = resolve::rds_instance(c, id).await?;
                require_tag("RDS instance", id, &i.tags, &s.opt_in_tag)?;
                if !i.multi_az {
                    return Err(DriverError::Permanent(format!(
                        "RDS instance {id} is not Multi-AZ: a forced failover needs a standby"
                    )));
                }
                if only_in.is_some_and(|az| i.az != az) {
                    return Ok(None);
                }
                Ok(Some(Action::FailoverRds {
                    instance: id.clone(),
                    az: i.az,
                }))
            }
        }
    }

    /// FIS "AZ Availability: Power Interruption": the zone's subnets on a deny-all ACL, the
    /// auto scaling group kept out of the zone, the app's instances there stopped, the
    /// database and the cache failed over if their primary is there.
    async fn plan_az_outage(
        &self,
        s: &AwsTarget,
        f: &Fault,
        zone: &str,
        parts: &AzParts,
    ) -> Result<(Vec<String>, Vec<Action>), DriverError> {
        let c = self.clients().await;
        let az = Self::az_of(s, zone)?.to_string();
        // The app role is needed only for the parts that touch the app.
        let app_parts = [AzPart::Network, AzPart::Instances, AzPart::Asg];
        let all = if app_parts.iter().any(|p| parts.has(*p)) {
            self.app_instances(s).await?
        } else {
            Vec::new()
        };
        let here: Vec<&Instance> = all.iter().filter(|i| i.az == az).collect();
        let mut targets = vec![format!("zone {zone} = {az}")];
        let mut acts = Vec::new();
        // (a) The network: every opted-in subnet in the zone, per VPC; every subnet an app
        // instance there runs in must be one of them (else the outage would have a hole).
        let tag = &s.opt_in_tag;
        let subnets = resolve::subnets(
            c,
            vec![
                filter("availability-zone", std::slice::from_ref(&az)),
                filter(
                    &format!("tag:{}", tag.key),
                    std::slice::from_ref(&tag.value),
                ),
            ],
        )
        .await?;
        for i in here.iter().filter(|_| parts.has(AzPart::Network)) {
            if !subnets.iter().any(|s| s.id == i.subnet) {
                return Err(DriverError::Permanent(format!(
                    "refused: subnet {} (of instance {} in {az}) does not carry the opt-in tag \
                     {tag}; the zone's network could not be cut whole",
                    i.subnet, i.id
                )));
            }
        }
        let mut vpcs: Vec<String> = subnets.iter().map(|s| s.vpc.clone()).collect();
        vpcs.sort();
        vpcs.dedup();
        if !parts.has(AzPart::Network) {
            vpcs.clear();
        }
        for vpc in vpcs {
            let mut list = Vec::new();
            for sn in subnets.iter().filter(|x| x.vpc == vpc) {
                let (_, acl, acl_tags) = resolve::acl_of(c, &sn.id).await?;
                if let Some(run) = acl_tags.get(actions::RUN_TAG) {
                    return Err(DriverError::Permanent(format!(
                        "refused: subnet {} is on {acl}, a deny-all network ACL that chaos run \
                         {run} left applied; undo it first (`chaos rollback RUN_DIR`, or \
                         `chaos rollback --target FILE --sweep`)",
                        sn.id
                    )));
                }
                targets.push(format!("subnet {} ({vpc})", sn.id));
                list.push(SubnetAcl {
                    subnet: sn.id.clone(),
                    acl,
                });
            }
            acts.push(Action::DenyNetwork { vpc, subnets: list });
        }
        // (c) The auto scaling group kept from launching in the zone.
        if let Some(AppRole::Asg(name)) = s.app.as_ref().filter(|_| parts.has(AzPart::Asg)) {
            let g = resolve::asg(c, name).await?;
            require_tag("auto scaling group", name, &g.tags, tag)?;
            if let Some(orig) = g.tags.get(actions::ASG_TAG) {
                return Err(DriverError::Permanent(format!(
                    "refused: auto scaling group {name} carries {}={orig}: an earlier chaos run \
                     left it kept out of a zone; undo it first (`chaos rollback RUN_DIR`, or \
                     `chaos rollback --target FILE --sweep`)",
                    actions::ASG_TAG
                )));
            }
            let original = actions::split(&g.vpc_zone_identifier);
            let without: Vec<String> = original
                .iter()
                .filter(|x| !subnets.iter().any(|s| s.id == **x))
                .cloned()
                .collect();
            if without.len() != original.len() {
                if without.is_empty() {
                    return Err(DriverError::Permanent(format!(
                        "auto scaling group {name} launches only in {az}: it cannot be kept out \
                         of its only zone"
                    )));
                }
                targets.push(format!("asg {name} (kept out of {az})"));
                acts.push(Action::KeepAsgOut {
                    asg: name.clone(),
                    original: g.vpc_zone_identifier.clone(),
                    without: without.join(","),
                });
            }
        }
        // (b) The app's instances in the zone stopped. The caps hold as well when only the
        // network is cut: those instances are as gone to the clients.
        let cut = parts.has(AzPart::Instances) || parts.has(AzPart::Network);
        if !here.is_empty() && cut {
            let ids: Vec<String> = here.iter().map(|i| i.id.clone()).collect();
            Self::check_caps(s, here.len(), self.held_at_once(f, &ids), all.len())?;
        }
        if !here.is_empty() && parts.has(AzPart::Instances) {
            for i in &here {
                targets.push(format!("{} ({az})", i.id));
            }
            acts.push(Action::StopInstances {
                instances: here.iter().map(|i| i.id.clone()).collect(),
            });
        }
        // (d) The database, if its writer is in the zone.
        if s.db.is_some() && parts.has(AzPart::Db) {
            if let Some(a) = self.plan_db_failover(s, Some(&az)).await? {
                targets.push(match &a {
                    Action::FailoverAurora {
                        cluster, writer, ..
                    } => {
                        format!("aurora {cluster} (writer {writer} in {az})")
                    }
                    Action::FailoverRds { instance, .. } => format!("rds {instance} (in {az})"),
                    _ => String::new(),
                });
                acts.push(a);
            }
        }
        // (e) The cache's node groups whose primary is in the zone.
        if let Some(cache) = s.cache.as_ref().filter(|_| parts.has(AzPart::Cache)) {
            let rg = self.cache_group(s).await?;
            for ng in &rg.node_groups {
                if let Some(p) = ng.primary().filter(|p| p.2 == az) {
                    targets.push(format!(
                        "elasticache {} node group {} (primary {} in {az})",
                        cache.replication_group, ng.id, p.0
                    ));
                    acts.push(Action::FailoverCache {
                        replication_group: cache.replication_group.clone(),
                        node_group: ng.id.clone(),
                        primary: p.0.clone(),
                    });
                }
            }
        }
        if acts.is_empty() {
            return Err(DriverError::Permanent(format!(
                "az-outage of zone {zone} ({az}) would change nothing here with parts {}: \
                 nothing those parts touch is in that zone (or the target names no such role)",
                parts.names().join(", ")
            )));
        }
        Ok((targets, acts))
    }

    /// Revoke exactly the cache's ingress rules that admit the app's security groups.
    async fn plan_cache_partition(
        &self,
        s: &AwsTarget,
    ) -> Result<(Vec<String>, Vec<Action>), DriverError> {
        let c = self.clients().await;
        let rg = self.cache_group(s).await?;
        let cache = s.cache.as_ref().ok_or_else(|| {
            DriverError::Unsupported("the target names no cache role ([roles.cache])".into())
        })?;
        let groups = if cache.security_groups.is_empty() {
            resolve::cache_groups(c, &rg.member_clusters).await?
        } else {
            cache.security_groups.clone()
        };
        if groups.is_empty() {
            return Err(DriverError::Permanent(format!(
                "the cache {} has no security groups to partition it by (name them in \
                 roles.cache.security_groups)",
                cache.replication_group
            )));
        }
        let mut app_groups: Vec<String> = self
            .app_instances(s)
            .await?
            .iter()
            .flat_map(|i| i.groups.clone())
            .collect();
        app_groups.sort();
        app_groups.dedup();
        let mut targets = Vec::new();
        let mut acts = Vec::new();
        for g in resolve::groups(c, &groups).await? {
            let rules = resolve::group_rules(c, &g, &app_groups).await?;
            if rules.is_empty() {
                continue;
            }
            require_tag("security group", &g.id, &g.tags, &s.opt_in_tag)?;
            targets.push(format!(
                "security group {} ({} admitting the app)",
                g.id,
                crate::report::plural(rules.len(), "rule")
            ));
            acts.push(Action::RevokeIngress {
                group: g.id.clone(),
                rules,
            });
        }
        if acts.is_empty() {
            return Err(DriverError::Permanent(format!(
                "no ingress rule of the cache's security groups ({}) admits the app's ({}): \
                 there is nothing to partition",
                groups.join(", "),
                app_groups.join(", ")
            )));
        }
        Ok((targets, acts))
    }

    async fn check_account(&self, c: &Clients, account: &str) -> Result<(), DriverError> {
        let who = c
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| clients::api_err("sts:GetCallerIdentity", "", e))?;
        match who.account() {
            Some(a) if a == account => Ok(()),
            found => Err(DriverError::Permanent(format!(
                "refused: these credentials are for account {}, the fault was applied in \
                 account {account}: use credentials for {account} to revert it",
                found.unwrap_or("(unknown)")
            ))),
        }
    }

    fn actions_of(undo: &Undo) -> Result<AwsUndo, DriverError> {
        serde_json::from_value(undo.clone())
            .map_err(|e| DriverError::Permanent(format!("bad undo data for the aws driver: {e}")))
    }
}

impl Driver for AwsDriver {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        Box::pin(async move {
            let (targets, acts) = self.plan_actions(f).await?;
            self.check_overlap(f, &acts)?;
            let (at, until) = Self::window(f);
            self.planned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(PlannedFault {
                    fault: f.name.clone(),
                    at,
                    until,
                    actions: acts.clone(),
                });
            let inject = acts
                .iter()
                .flat_map(|a| a.inject_calls(&self.run_id, &f.name))
                .collect();
            let revert = acts
                .iter()
                .rev()
                .flat_map(|a| a.revert_calls(&self.run_id, &f.name))
                .collect();
            Ok(FaultPlan {
                fault: f.name.clone(),
                kind: f.kind.name().to_string(),
                targets,
                inject,
                revert,
                check: serde_json::to_value(self.undo_of(&f.name, acts))
                    .unwrap_or(serde_json::Value::Null),
            })
        })
    }

    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            let u = Self::actions_of(&p.check)?;
            let c = self.clients().await;
            // In order; the first failure stops here, and the timeline reverts with the
            // plan's undo (every action's revert is harmless where it did nothing).
            for a in &u.actions {
                a.inject(c, &self.run_id, &u.fault).await?;
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
            let u = Self::actions_of(undo)?;
            let c = self.clients().await;
            for a in &u.actions {
                a.confirm(c, &u.run_id).await?;
            }
            Ok(())
        })
    }

    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let u = Self::actions_of(undo)?;
            let c = self.clients().await;
            if self.spec.is_none() {
                // Rebuilt from a journal: these credentials may be for another account, where
                // every describe finds nothing and a revert would "succeed" doing nothing.
                self.check_account(c, &u.account).await?;
            }
            // Newest first; every action is tried even when one fails, so one stuck revert
            // does not leave the rest applied.
            let mut failed = Vec::new();
            let mut retry = false;
            for a in u.actions.iter().rev() {
                match a.revert(c, &u.run_id, &u.fault).await {
                    Ok(()) | Err(DriverError::AlreadyReverted) => {}
                    Err(e) => {
                        retry |= matches!(e, DriverError::Retryable { .. });
                        failed.push(e.to_string());
                    }
                }
            }
            match (failed.is_empty(), retry) {
                (true, _) => Ok(()),
                (false, true) => Err(DriverError::retryable(failed.join("; "))),
                (false, false) => Err(DriverError::Permanent(failed.join("; "))),
            }
        })
    }

    fn undo_for(&self, p: &FaultPlan) -> Undo {
        p.check.clone()
    }

    /// Cloud APIs throttle and take their time: minutes, not seconds.
    fn revert_deadline(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// Instances report "stopping" at once; an Aurora failover takes 30-60 s.
    fn confirm_deadline(&self) -> Duration {
        Duration::from_secs(120)
    }

    /// What the run's faults touch, read back every `observe_every` of the target file.
    fn observe<'a>(
        &'a self,
        planned: &'a [Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        let undos: Vec<AwsUndo> = planned
            .iter()
            .filter_map(|p| serde_json::from_value(p.plan.check.clone()).ok())
            .collect();
        let w = observe::Watch::of(undos.iter().flat_map(|u| &u.actions));
        if w == observe::Watch::default() {
            return None;
        }
        Some(Box::pin(async move {
            w.read(self.clients().await, self.spec.as_ref()).await
        }))
    }

    fn observe_every(&self) -> Duration {
        self.spec
            .as_ref()
            .map_or(crate::target::aws::DEFAULT_OBSERVE_EVERY, |s| {
                s.observe_every
            })
    }
}
