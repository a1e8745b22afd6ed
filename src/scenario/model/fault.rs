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

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FaultKind {
    KillNodes {
        role: Role,
        count: Count,
        zone: Option<String>,
        mode: KillMode,
    },
    RestartNodes {
        role: Role,
        #[serde(serialize_with = "ser_duration")]
        down_for: Duration,
        zone: Option<String>,
    },
    AzOutage {
        zone: String,
    },
    DbFailover {},
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
    /// The kind's name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::KillNodes { .. } => "kill-nodes",
            FaultKind::RestartNodes { .. } => "restart-nodes",
            FaultKind::AzOutage { .. } => "az-outage",
            FaultKind::DbFailover {} => "db-failover",
            FaultKind::CachePartition {} => "cache-partition",
            FaultKind::CacheFailover {} => "cache-failover",
            FaultKind::Latency { .. } => "latency",
        }
    }
}
