//! The validated scenario model: what a run is built from.
//!
//! Everything here has already been checked by `validate`: durations are parsed, rates are
//! positive, weights sum to more than zero, fault windows lie inside the run, SLO expressions
//! name known metrics and windows. Code downstream (planner, load engine, SLO evaluation) may rely
//! on that and never re-validates. Secrets (header values from `${env:VAR}`) live only in
//! [`Text::Secret`] parts and are masked by every `Display`/`Serialize` impl of this module.

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod expect;
pub use expect::{Expect, JsonCheck};

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
    pub load: Load,
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

#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub name: String,
    pub value: Template,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestSpec {
    pub name: String,
    pub weight: u32,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path (and query) appended to the target's base URL; may hold templates.
    pub path: Template,
    pub headers: Vec<Header>,
    pub body: Option<Body>,
    /// Values captured from a successful response's JSON body, usable by later requests as
    /// `{{name}}`.
    pub capture: Vec<Capture>,
    pub durable: Option<Durable>,
    /// What counts as a success; `None` = any status below 400.
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum Body {
    /// A JSON document whose string leaves are templates; sent with `content-type: application/json`.
    Json(JsonTemplate),
    /// A raw body (templated), sent as is.
    Text(Template),
}

/// A JSON value whose strings may hold templates.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    /// Variable name, used as `{{name}}`.
    pub name: String,
    pub path: JsonPath,
}

/// An acknowledged durable write: its id is taken from the response and read back after the run.
#[derive(Debug, Clone, Serialize)]
pub struct Durable {
    pub id: JsonPath,
    pub read_method: String,
    /// The read-back path, with `{id}` replaced by the captured id.
    pub read_path: String,
}

/// A `$.a.b[0]`-style path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonPath {
    pub text: String,
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// A string with template parts, e.g. `"note {{seq}} {{uuid}}"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    /// A value from the environment: sent as is, shown everywhere else as `***`.
    Secret(String),
    /// The logical request's sequence number (0-based, unique within the run).
    Seq,
    /// A random UUID v4.
    Uuid,
    /// A uniformly random integer in `[lo, hi]`.
    RandInt(i64, i64),
    /// A value captured from an earlier response (see [`Capture`]).
    Var(String),
}

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

/// All SLOs of a scenario, grouped by window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SloSpec {
    pub objectives: Vec<Objective>,
    /// `insufficient_data = "allow"`: an SLO without enough data to judge does not fail the run.
    pub allow_insufficient: bool,
}

/// One SLO: `metric op bound` over a window, optionally for one request name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// As written, e.g. `"p99 < 800ms"`.
    pub text: String,
    pub window: Window,
    /// Part of the window only, e.g. `baseline[10s..]` (without its first 10 s of warm-up).
    pub trim: Option<Trim>,
    /// `None` = over all requests.
    pub request: Option<String>,
    pub metric: Metric,
    pub op: CmpOp,
    pub bound: f64,
}

impl Objective {
    /// The window as written: `baseline`, `during:zone-a-down`, `baseline[10s..]`.
    pub fn window_label(&self) -> String {
        match &self.trim {
            None => self.window.to_string(),
            Some(t) => format!("{}[{}]", self.window, t.text),
        }
    }
}

/// A window cut to part of itself, written `[from..to]` after the window's name: each end is
/// empty (the window's own), a duration from the window's start (`10s`) or one back from its
/// end (`-5s`). `baseline[10s..]` skips a 10 s warm-up; `during:f[..-5s]` leaves out the last
/// 5 s; `after:f[-30s..]` is the last 30 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trim {
    /// As written between the brackets, e.g. `"10s.."`.
    pub text: String,
    pub from: Option<Offset>,
    pub to: Option<Offset>,
}

/// One end of a [`Trim`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Offset {
    /// Counted back from the window's end (written with a leading `-`).
    pub from_end: bool,
    #[serde(serialize_with = "ser_duration", deserialize_with = "de_duration")]
    pub by: Duration,
}

impl Trim {
    /// The part `[start, end)` keeps of the window `[s, e)`: clamped inside it, empty (start ==
    /// end) when the ends cross.
    pub fn apply(&self, (s, e): (Duration, Duration)) -> (Duration, Duration) {
        let at = |o: &Offset| {
            if o.from_end {
                e.saturating_sub(o.by).max(s)
            } else {
                (s + o.by).min(e)
            }
        };
        let a = self.from.as_ref().map_or(s, at);
        let b = self.to.as_ref().map_or(e, at);
        (a, b.max(a))
    }
}

/// Time windows of a run. `baseline` is before the first fault; `during`/`after` follow one
/// fault (after = from its revert to the next fault's start or the end of the run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "fault")]
pub enum Window {
    Whole,
    Baseline,
    During(String),
    After(String),
    /// After the run: the read-back of acknowledged durable writes (`lost_writes`).
    Data,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Whole => f.write_str("whole"),
            Window::Baseline => f.write_str("baseline"),
            Window::During(n) => write!(f, "during:{n}"),
            Window::After(n) => write!(f, "after:{n}"),
            Window::Data => f.write_str("data"),
        }
    }
}

/// Metrics an SLO can bound. Latencies are in microseconds, ratios in 0..=1, counts as counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "metric", content = "q")]
pub enum Metric {
    /// Latency quantile (0.5, 0.9, 0.95, 0.99, 0.999) from the intended send time, in µs.
    Latency(f64),
    /// Maximum latency, µs.
    MaxLatency,
    /// Failed logical requests / all logical requests.
    Errors,
    /// Achieved / scheduled requests.
    Throughput,
    /// Requests that could not be sent before their timeout / scheduled.
    NotSent,
    /// Logical requests that needed more than one attempt / all.
    RetryRate,
    /// Attempts / logical requests.
    Amplification,
    /// Logical requests that failed after using every allowed attempt / all.
    RetriesExhausted,
    /// Acknowledged durable writes not found when read back after the run (a count).
    LostWrites,
    /// Time from a fault's injection until the service is back within its baseline for a
    /// sustained stretch (µs); the window is `During(fault)`. See `slo::recovery`.
    Recovery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
}

impl CmpOp {
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            CmpOp::Lt => value < bound,
            CmpOp::Le => value <= bound,
            CmpOp::Gt => value > bound,
            CmpOp::Ge => value >= bound,
            CmpOp::Eq => value == bound,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
        }
    }
}

impl Scenario {
    /// Total scheduled length of the load (sum of stage durations).
    pub fn duration(&self) -> Duration {
        self.load.stages.iter().map(|s| s.duration).sum()
    }

    /// A copy with every duration multiplied by `factor` (rates unchanged): `--time-scale`.
    pub fn time_scaled(&self, factor: f64) -> Scenario {
        let sc = |d: Duration| d.mul_f64(factor);
        let mut s = self.clone();
        for st in &mut s.load.stages {
            st.duration = sc(st.duration);
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
            if o.metric == Metric::Recovery {
                o.bound *= factor;
                if factor != 1.0 {
                    let sym = o.op.symbol();
                    let written = o.text.trim_start_matches("recovery").trim();
                    let written = written.trim_start_matches(sym).trim().to_string();
                    o.text = format!(
                        "recovery {sym} {} ({})",
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

impl Template {
    pub fn literal(s: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Lit(s.into())],
        }
    }

    /// True if rendering needs nothing but the literal text.
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Lit(_) | Part::Secret(_)))
    }

    /// Names of captured variables this template reads.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }
}

/// Shown with secrets masked: safe for logs, plans and reports.
impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.parts {
            match p {
                Part::Lit(s) => f.write_str(s)?,
                Part::Secret(_) => f.write_str("***")?,
                Part::Seq => f.write_str("{{seq}}")?,
                Part::Uuid => f.write_str("{{uuid}}")?,
                Part::RandInt(a, b) => write!(f, "{{{{rand_int({a},{b})}}}}")?,
                Part::Var(v) => write!(f, "{{{{{v}}}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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
