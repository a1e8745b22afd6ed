//! The validated scenario model: what a run is built from.
//!
//! Everything here has already been checked by `validate`: durations are parsed, rates are
//! positive, weights sum to more than zero, fault windows lie inside the run, SLO expressions
//! name known metrics and windows. Code downstream (planner, load engine, SLO evaluation) may rely
//! on that and never re-validates. Secrets (header values from `${env:VAR}`) live only in
//! [`Part::Secret`] parts and are masked by every `Display`/`Serialize` impl of this module.
//!
//! This file holds the scenario and its load (stages, client, retries); what one request sends
//! is in [`request`], the fault timeline in [`fault`], SLOs and their windows in [`slo`],
//! what counts as a success in [`expect`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod expect;
mod fault;
mod request;
mod slo;
mod users;
pub use expect::{Expect, JsonCheck};
pub use fault::{AzPart, AzParts, Count, Fault, FaultKind, KillMode, Link, Role};
pub use request::{
    Body, Capture, Durable, Header, JsonPath, JsonTemplate, Part, PathStep, RequestSpec, Template,
};
pub use slo::{CmpOp, Metric, Objective, Offset, SloSpec, Trim, Window, JOURNEY_PREFIX};
pub use users::{step_names, Journey, UserStage, Users};

/// A fully validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where the scenario came from (a path, or `builtin:<name>` for an embedded one).
    pub source: String,
    /// The file's text as written (secrets are `${env:…}` references in it, never values):
    /// kept in report.json so `chaos report` can re-judge a run whose file has moved.
    pub text: String,
    /// What changed the file's values: `--set` overrides and the values of `${env:…}` in
    /// numeric fields (never secrets). With `text`, enough to rebuild this scenario.
    #[serde(skip_serializing_if = "super::params::Applied::is_empty")]
    pub params: super::params::Applied,
    /// Numeric fields whose `${env:…}` had no value (only when validated without values:
    /// `check`, `plan`, `report`). Placeholders stand in for them: nothing computed from them
    /// may be shown as if known, and `run` never gets such a scenario.
    #[serde(skip)]
    pub unknown: Vec<super::params::Unknown>,
    /// Findings that do not make the file invalid (unset variables, no SLOs, an unused `--env`).
    #[serde(skip)]
    pub warnings: Vec<super::diag::Diagnostic>,
    /// `[load]`, the open model; with only `[users]` in the file, a load of no requests and no
    /// stages ([`Load::is_empty`]) that keeps the recorder interval and client defaults.
    pub load: Load,
    /// `[users]`, the closed model (run with the load, both at once, when both are written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Users>,
    pub faults: Vec<Fault>,
    pub slo: SloSpec,
    /// Settings of the embedded sandbox when the run uses it (`[sandbox]`); unset = default.
    pub sandbox: SandboxSpec,
    /// `[abort] when = [...]`: conditions that stop the run early (exit 3), faults reverted.
    pub abort: Vec<AbortCondition>,
}

/// `"errors > 50% for 10s"`: a live metric beyond a bound for a sustained stretch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbortCondition {
    pub text: String,
    /// Any live metric (not `lost_writes` or `recovery`, known only after the run).
    pub metric: Metric,
    pub op: CmpOp,
    pub bound: f64,
    #[serde(serialize_with = "ser_duration")]
    pub sustain: Duration,
}

/// `[sandbox]`: every knob of the embedded stack a scenario may set. Durations in seconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    pub nodes_per_zone: Option<usize>,
    pub node_concurrency: Option<usize>,
    pub service_time_s: Option<f64>,
    pub service_jitter_s: Option<f64>,
    pub health_interval_s: Option<f64>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
    pub db_writer_zone: Option<String>,
    /// `"sync"` or `"async"`.
    pub replication: Option<String>,
    pub replication_lag_s: Option<f64>,
    pub failover_time_s: Option<f64>,
    /// How often the database is snapshotted (what a `db-restore` brings back). Written out
    /// only when set, so a scenario without it serializes (and digests) as it always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_interval_s: Option<f64>,
    /// How long a `db-restore` takes (written out only when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_time_s: Option<f64>,
    pub cache_timeout_s: Option<f64>,
    /// `"fail-open"` or `"fail-closed"`.
    pub cache_policy: Option<String>,
    pub cache_failover_time_s: Option<f64>,
    /// How far the cache replica trails its primary (sessions written within it are lost
    /// by a cache failover).
    pub cache_replication_lag_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// The service's stated peak; stage rates written as `"2x"` are multiples of it.
    pub peak_rps: f64,
    pub stages: Vec<Stage>,
    /// Most requests in flight at once; further sends wait (and the wait is in their latency).
    pub max_in_flight: usize,
    /// Recorder interval (default 1 s, at least 100 ms).
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    pub client: Client,
    pub requests: Vec<RequestSpec>,
    /// A response header whose values each interval counts responses by (`x-app-version`:
    /// the versions a blue/green cutover moves between); `None`: not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responses_by: Option<String>,
}

/// One stage of the arrival-rate curve. Rates are in requests per second, already resolved
/// from multiples of `peak_rps`.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub kind: StageKind,
    /// Rate at the end of the stage (for `hold`, the whole stage).
    pub rps: f64,
    /// As written, e.g. `"4x"` or `"800/s"`, for plans and reports.
    pub rate_text: String,
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// Linear ramp from the previous stage's rate (0 for the first stage) to `rps`.
    Ramp,
    /// Constant `rps` for `duration`.
    Hold,
}

#[derive(Debug, Clone, Serialize)]
pub struct Client {
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Headers sent with every request (a request's own headers override by name).
    pub headers: Vec<Header>,
    /// Extra root CA (PEM) trusted besides the system's roots.
    pub ca_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPolicy {
    /// Total attempts per logical request, including the first (1 = no retries).
    pub attempts: u32,
    #[serde(serialize_with = "ser_duration")]
    pub backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
    pub jitter: Jitter,
    pub on: RetryOn,
    /// Retries allowed as a fraction of requests over the sliding budget window (0.2 = 20%).
    /// `None` = unlimited.
    pub budget: Option<f64>,
    /// The budget's sliding window (default 10 s).
    #[serde(serialize_with = "ser_duration")]
    pub budget_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    None,
    Full,
    Equal,
}

/// Which outcomes of an attempt are retried.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryOn {
    pub connect: bool,
    pub timeout: bool,
    pub reset: bool,
    /// HTTP statuses retried, e.g. 502, 503, 504.
    pub statuses: Vec<u16>,
}

impl Load {
    /// No open-model traffic: the file has only `[users]`.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The length of the rate curve.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }
}

impl Scenario {
    /// The run's scheduled length: the longer of the load's stages and the users' plan.
    pub fn duration(&self) -> Duration {
        let users = self.users.as_ref().map_or(Duration::ZERO, Users::duration);
        self.load.duration().max(users)
    }

    /// The recording's names, in its order: the load's requests, then the users' steps
    /// (`journey:step`).
    pub fn request_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.load.requests.iter().map(|r| r.name.clone()).collect();
        if let Some(u) = &self.users {
            names.extend(u.step_names());
        }
        names
    }

    /// A copy with every duration multiplied by `factor` (rates unchanged): `--time-scale`.
    pub fn time_scaled(&self, factor: f64) -> Scenario {
        let sc = |d: Duration| d.mul_f64(factor);
        let mut s = self.clone();
        for st in &mut s.load.stages {
            st.duration = sc(st.duration);
        }
        if let Some(u) = &mut s.users {
            for st in &mut u.plan {
                st.duration = sc(st.duration);
            }
            u.think_min = sc(u.think_min);
            u.think_max = sc(u.think_max);
        }
        // What is scaled is shown scaled, with what was written: `recovery < 3s (30s × 0.1)`,
        // `baseline[1s..-100ms]`, `errors > 50% for 1s (10s × 0.1)` — every report and the plan
        // show the bound as judged, not as written.
        let was = |written: &str| format!("{written} × {factor}");
        for a in &mut s.abort {
            a.sustain = sc(a.sustain);
            if factor != 1.0 {
                if let Some((expr, sustain)) = a.text.rsplit_once(" for ") {
                    a.text = format!(
                        "{expr} for {} ({})",
                        super::validate::show(a.sustain),
                        was(sustain.trim())
                    );
                }
            }
        }
        for o in &mut s.slo.objectives {
            // Durations of the run's own clock: a recovery, and a restore's RPO (the sandbox's
            // snapshot interval is scaled with it).
            let timed = match o.metric {
                Metric::Recovery => Some("recovery"),
                Metric::Rpo => Some("rpo"),
                _ => None,
            };
            if let Some(metric) = timed {
                o.bound *= factor;
                if factor != 1.0 {
                    let sym = o.op.symbol();
                    let written = o.text.trim_start_matches(metric).trim();
                    let written = written.trim_start_matches(sym).trim().to_string();
                    o.text = format!(
                        "{metric} {sym} {} ({})",
                        super::validate::show(Duration::from_secs_f64(o.bound.max(0.0) / 1e6)),
                        was(&written)
                    );
                }
            }
            if let Some(t) = &mut o.trim {
                for end in [&mut t.from, &mut t.to].into_iter().flatten() {
                    end.by = sc(end.by);
                }
                if factor != 1.0 {
                    let end = |e: &Option<Offset>| {
                        e.map_or_else(String::new, |e| {
                            format!(
                                "{}{}",
                                if e.from_end { "-" } else { "" },
                                super::validate::show(e.by)
                            )
                        })
                    };
                    t.text = format!("{}..{}", end(&t.from), end(&t.to));
                }
            }
        }
        for f in &mut s.faults {
            f.at = sc(f.at);
            f.duration = f.duration.map(sc);
            if let FaultKind::BlueGreen { every, .. } = &mut f.kind {
                *every = sc(*every);
            }
            if let FaultKind::RestartNodes { down_for, .. } = &mut f.kind {
                *down_for = sc(*down_for);
            }
        }
        // The recorder interval shrinks too, but never below its 100 ms floor... unless the
        // run itself is shorter than that would allow a meaningful series for: keep 10 ms floor.
        s.load.interval = sc(s.load.interval).max(Duration::from_millis(10));
        s
    }
}

pub fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The inverse of [`ser_duration`] (report.json read back): seconds, finite and not negative.
pub fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| serde::de::Error::custom(format!("{secs} is not a duration in seconds")))
}

pub fn ser_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}
