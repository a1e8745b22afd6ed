//! The SLOs of a validated scenario: each objective's metric, comparison and bound over a
//! window of the run (`baseline`, `during:<fault>`, `after:<fault>`, `whole`, `data`),
//! optionally trimmed.
//!
//! These are descriptions, read back from report.json too (hence `Deserialize`); judging them
//! against measurements is `slo`'s, and this module must never compute a verdict.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{de_duration, ser_duration};

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
    /// `None` = over all requests; `journey:NAME` = over a journey's iterations
    /// ([`Objective::journey`]).
    pub request: Option<String>,
    pub metric: Metric,
    pub op: CmpOp,
    pub bound: f64,
}

/// An objective's `request` for a journey's SLOs: `journey:NAME` (request names cannot hold a
/// `:`, and steps are `NAME:step` with no journey named `journey`).
pub const JOURNEY_PREFIX: &str = "journey:";

impl Objective {
    /// The journey this objective is about (`"journey:NAME" = [...]`): judged on the
    /// journeys' recording, one sample per ended iteration.
    pub fn journey(&self) -> Option<&str> {
        self.request.as_deref()?.strip_prefix(JOURNEY_PREFIX)
    }

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
    /// After the run: the read-back of acknowledged durable writes (`lost_writes`, `rpo`).
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
    /// A restore's recovery point objective (µs): from the database's loss (a `db-restore`
    /// fault's injection) back to the newest write acknowledged before it that still read
    /// back — how far back in time the restored data ends. The window is `Data`.
    Rpo,
    /// Time from a fault's injection until the service is back within its baseline for a
    /// sustained stretch (µs); the window is `During(fault)`. See `slo::recovery`.
    Recovery,
}

impl Metric {
    /// Judged on the read-back after the run (the `data` window), never on the recording.
    pub fn is_data(self) -> bool {
        matches!(self, Metric::LostWrites | Metric::Rpo)
    }
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
