//! The fault timeline of a validated scenario: what each fault does (its kind and targets, in
//! roles and zones), when it starts and how long it stays.
//!
//! Faults here speak of roles and zones only; they must never name an instance or a target's
//! resource — resolving them is the driver's `plan`, so one scenario runs against every target.

use std::time::Duration;

use serde::Serialize;

use super::{ser_duration, ser_opt_duration};

#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub name: String,
    pub kind: FaultKind,
    /// Offset from the start of the run.
    #[serde(serialize_with = "ser_duration")]
    pub at: Duration,
    /// How long it stays applied; `None` = until the end of the run.
    #[serde(serialize_with = "ser_opt_duration")]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    App,
    Db,
    Cache,
    Lb,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum Count {
    Nodes(u32),
    /// Percent of the role's nodes (0 < p <= 100), rounded up.
    Percent(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillMode {
    Kill,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    AppDb,
    AppCache,
}

/// One part of an AZ outage, after AWS FIS's "AZ Availability: Power Interruption".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzPart {
    /// The zone's subnets cut off (a deny-all network ACL on AWS).
    Network,
    /// The app's instances in the zone stopped.
    Instances,
    /// The auto scaling group kept from launching in the zone.
    Asg,
    /// The database failed over if its writer is in the zone.
    Db,
    /// The cache failed over if a primary is in the zone.
    Cache,
}

impl AzPart {
    pub const ALL: [AzPart; 5] = [
        AzPart::Network,
        AzPart::Instances,
        AzPart::Asg,
        AzPart::Db,
        AzPart::Cache,
    ];
    pub const NAMES: [&'static str; 5] = ["network", "instances", "asg", "db", "cache"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The parts an AZ outage does, in [`AzPart::ALL`]'s order, without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AzParts(Vec<AzPart>);

impl Default for AzParts {
    fn default() -> AzParts {
        AzParts(AzPart::ALL.to_vec())
    }
}

impl AzParts {
    pub fn of(parts: impl IntoIterator<Item = AzPart>) -> AzParts {
        let mut v: Vec<AzPart> = parts.into_iter().collect();
        v.sort();
        v.dedup();
        AzParts(v)
    }
    pub fn is_all(&self) -> bool {
        self.0.len() == AzPart::ALL.len()
    }
    pub fn has(&self, p: AzPart) -> bool {
        self.0.contains(&p)
    }
    /// The parts, by name.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|p| p.name()).collect()
    }
    /// The parts left out, by name.
    pub fn missing(&self) -> Vec<&'static str> {
        AzPart::ALL
            .iter()
            .filter(|p| !self.has(**p))
            .map(|p| p.name())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FaultKind {
    KillNodes {
        role: Role,
        count: Count,
        zone: Option<String>,
        mode: KillMode,
        /// Whether the revert brings the nodes back (the default); `false`: the system must
        /// heal by itself (a supervisor, an ASG), the revert does nothing. Written out only
        /// when false, so the digest of a scenario without it is what it always was.
        #[serde(skip_serializing_if = "is_true")]
        restart: bool,
    },
    RestartNodes {
        role: Role,
        #[serde(serialize_with = "ser_duration")]
        down_for: Duration,
        zone: Option<String>,
    },
    AzOutage {
        zone: String,
        /// What the outage does; every part unless the scenario names some (written out only
        /// then, so the digest of a scenario without `parts` is what it always was).
        #[serde(skip_serializing_if = "AzParts::is_all")]
        parts: AzParts,
    },
    /// The role's nodes paused (SIGSTOP, then SIGCONT on revert): a GC pause, a VM freeze.
    Freeze {
        role: Role,
        count: Count,
        zone: Option<String>,
    },
    /// A command pair the target declares (`[commands.NAME]`): its inject command, then its
    /// revert command. The game day's escape hatch; the scenario names it, the target says
    /// what it runs.
    Command {
        command: String,
    },
    DbFailover {},
    /// Blue/green: the load balancer moves the requests from the live app nodes (blue) to a
    /// second group (green, a new version) in `steps` (percent of the requests, increasing),
    /// one every `every`; blue keeps running. The group that loses its traffic is drained, or
    /// its requests in flight cut (`drain = false`). Revert = rollback: every request back on
    /// blue at once.
    BlueGreen {
        steps: Vec<u32>,
        #[serde(serialize_with = "ser_duration")]
        every: Duration,
        drain: bool,
    },
    /// The whole database lost (every instance, its data), then restored from the newest
    /// snapshot the target has: a restore drill, judged by `rpo` and `recovery`.
    DbRestore {},
    CachePartition {},
    CacheFailover {},
    Latency {
        link: Link,
        #[serde(serialize_with = "ser_duration")]
        delay: Duration,
        #[serde(serialize_with = "ser_duration")]
        jitter: Duration,
    },
}

impl FaultKind {
    /// The restore drill's kind: what an `rpo` objective is measured on.
    pub const RESTORE: &'static str = "db-restore";
    /// The blue/green cutover's kind (`cutover` is accepted for it too).
    pub const BLUE_GREEN: &'static str = "blue-green";

    /// The kind's name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::KillNodes { .. } => "kill-nodes",
            FaultKind::RestartNodes { .. } => "restart-nodes",
            FaultKind::AzOutage { .. } => "az-outage",
            FaultKind::Freeze { .. } => "freeze",
            FaultKind::Command { .. } => "command",
            FaultKind::DbFailover {} => "db-failover",
            FaultKind::DbRestore {} => Self::RESTORE,
            FaultKind::BlueGreen { .. } => Self::BLUE_GREEN,
            FaultKind::CachePartition {} => "cache-partition",
            FaultKind::CacheFailover {} => "cache-failover",
            FaultKind::Latency { .. } => "latency",
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}
