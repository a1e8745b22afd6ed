//! SLO evaluation: windows of the run, metrics over them, verdicts.
//!
//! Windows are time ranges of *intended* send time, mapped onto whole recorder intervals (an
//! interval belongs to a window when its start lies inside it). Evaluation is pure: a
//! [`Recording`] and a [`Timeline`] in, results out — deterministic, tested on synthetic
//! recordings. A window with too few samples to judge a metric (p99 from fewer than 100
//! requests, say) is `insufficient data` ("could not be judged"), which fails: a gate must not
//! pass on no evidence. The window of a fault that never took effect (skipped, not reached,
//! inject failed) measures nothing about that fault: its SLOs are `not judged` — never met,
//! never failed, counted apart in the verdict ([`judge_run`]). A run where nothing was judged
//! at all is never a pass (`NOT JUDGED`, exit 0: it breached nothing the user asked to judge).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::{Outcome, Recording, Stats};
use crate::scenario::{CmpOp, Metric, Objective, Scenario, Window};

/// When each fault is scheduled, relative to the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    #[serde(serialize_with = "crate::scenario::ser_duration")]
    pub total: Duration,
    pub faults: Vec<FaultSpan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultSpan {
    pub name: String,
    pub kind: String,
    #[serde(serialize_with = "crate::scenario::ser_duration")]
    pub start: Duration,
    /// Scheduled revert (the end of the run for a fault without `for`).
    #[serde(serialize_with = "crate::scenario::ser_duration")]
    pub end: Duration,
}

impl Timeline {
    pub fn of(s: &Scenario) -> Timeline {
        let total = s.duration();
        Timeline {
            total,
            faults: s
                .faults
                .iter()
                .map(|f| FaultSpan {
                    name: f.name.clone(),
                    kind: f.kind.name().to_string(),
                    start: f.at,
                    end: f.duration.map_or(total, |d| (f.at + d).min(total)),
                })
                .collect(),
        }
    }

    /// This timeline with each fault's span moved to when it was really injected and reverted
    /// (seconds from the start of the run; `None` keeps the scheduled time).
    pub fn as_applied<'a>(
        &self,
        actual: impl Iterator<Item = (&'a str, Option<f64>, Option<f64>)>,
    ) -> Timeline {
        let mut t = self.clone();
        for (name, injected, reverted) in actual {
            if let Some(f) = t.faults.iter_mut().find(|f| f.name == name) {
                if let Some(s) = injected.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                    f.start = s.min(t.total);
                }
                if let Some(e) = reverted.and_then(|e| Duration::try_from_secs_f64(e).ok()) {
                    f.end = e.min(t.total).max(f.start);
                }
            }
        }
        t
    }

    /// The time range `[start, end)` an objective is judged on: its window, trimmed.
    pub fn span_of(&self, o: &Objective) -> (Duration, Duration) {
        let span = self.span(&o.window);
        o.trim.as_ref().map_or(span, |t| t.apply(span))
    }

    /// The time range `[start, end)` of a window.
    pub fn span(&self, w: &Window) -> (Duration, Duration) {
        let fault = |n: &str| self.faults.iter().find(|f| f.name == n);
        match w {
            Window::Whole | Window::Data => (Duration::ZERO, self.total),
            Window::Baseline => (
                Duration::ZERO,
                self.faults
                    .iter()
                    .map(|f| f.start)
                    .min()
                    .unwrap_or(self.total),
            ),
            Window::During(n) => fault(n).map_or((self.total, self.total), |f| (f.start, f.end)),
            Window::After(n) => match fault(n) {
                None => (self.total, self.total),
                Some(f) => {
                    let next = self
                        .faults
                        .iter()
                        .map(|g| g.start)
                        .filter(|&s| s >= f.end)
                        .min()
                        .unwrap_or(self.total);
                    (f.end, next)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    InsufficientData,
    /// Insufficient data, allowed by the scenario (`[slo] insufficient_data = "allow"`).
    InsufficientAllowed,
    /// Not judged: its window belongs to a fault that never took effect (skipped with
    /// `--skip-faults`, not reached before an abort or an interrupt, or its inject failed).
    /// Never counted as met; it does not fail the run either.
    NotJudged,
}

impl Status {
    /// Met, or not judged for a reason the scenario or the user accepted: does not fail a run.
    pub fn passes(self) -> bool {
        matches!(
            self,
            Status::Pass | Status::InsufficientAllowed | Status::NotJudged
        )
    }

    /// The word a report shows for it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::InsufficientData => "could not be judged",
            Status::InsufficientAllowed => "could not be judged (allowed)",
            Status::NotJudged => "not judged",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloResult {
    pub objective: Objective,
    pub status: Status,
    /// The measured value (µs for latencies, a ratio for rates); `None` without data.
    pub value: Option<f64>,
    /// Requests in the window the metric was computed from.
    pub samples: u64,
    /// Human forms, e.g. "812ms" and "< 800ms".
    pub shown_value: String,
    pub shown_bound: String,
    /// Why it is insufficient, when it is.
    pub note: Option<String>,
}

/// Samples needed before an objective is judged. A quantile q needs 1/(1-q) samples (p99:
/// 100). A ratio bound needs enough requests that one request moves the ratio by no more than
/// the bound's margin: `errors < 0.5%` needs 200, `throughput > 99%` 100, `errors < 5%` 20
/// (at most 1,000; `== 0%` and counts need 1).
pub fn min_samples(o: &Objective) -> u64 {
    match o.metric {
        Metric::Latency(q) if q < 1.0 => (1.0 / (1.0 - q)).round().max(1.0) as u64,
        Metric::Errors
        | Metric::Throughput
        | Metric::NotSent
        | Metric::RetryRate
        | Metric::RetriesExhausted => {
            let margin = match o.op {
                CmpOp::Lt | CmpOp::Le => o.bound,
                CmpOp::Gt | CmpOp::Ge => 1.0 - o.bound,
                CmpOp::Eq => 0.0,
            };
            if margin > 0.0 {
                (1.0 / margin).ceil().clamp(1.0, 1000.0) as u64
            } else {
                1
            }
        }
        _ => 1,
    }
}

/// A metric's value over merged statistics.
pub fn value(m: Metric, s: &Stats) -> Option<f64> {
    let has_latency = !s.latency.is_empty();
    match m {
        Metric::Latency(q) => has_latency.then(|| s.latency.value_at_quantile(q) as f64),
        Metric::MaxLatency => has_latency.then(|| s.latency.max() as f64),
        Metric::Errors => (s.requests() > 0).then(|| s.error_rate()),
        Metric::Throughput => (s.requests() > 0).then(|| s.throughput()),
        Metric::NotSent => (s.requests() > 0).then(|| s.not_sent_rate()),
        Metric::RetryRate => (s.sent() > 0).then(|| s.retry_rate()),
        Metric::Amplification => (s.sent() > 0).then(|| s.amplification()),
        Metric::RetriesExhausted => (s.requests() > 0).then(|| s.exhausted_rate()),
        // Not properties of merged statistics: judged from the read-back and from the interval
        // series ([`evaluate_with_data`]).
        Metric::LostWrites | Metric::Rpo | Metric::Recovery => None,
    }
}

/// How many samples the metric is computed from.
fn sample_count(m: Metric, s: &Stats) -> u64 {
    match m {
        Metric::Latency(_) | Metric::MaxLatency => s.latency.len(),
        Metric::RetryRate | Metric::Amplification => s.sent(),
        _ => s.requests(),
    }
}

/// Format a metric value (or bound) for humans.
pub fn show(m: Metric, v: f64) -> String {
    match m {
        Metric::Latency(_) | Metric::MaxLatency | Metric::Recovery | Metric::Rpo => show_us(v),
        Metric::Amplification => format!("{v:.2}"),
        Metric::LostWrites => format!("{v:.0}"),
        _ => show_ratio(v),
    }
}

pub fn show_us(us: f64) -> String {
    if us >= 10_000_000.0 {
        format!("{:.1}s", us / 1e6)
    } else if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else {
        format!("{us:.0}µs")
    }
}

pub fn show_ratio(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.1}%")
    } else if p >= 0.1 {
        format!("{p:.2}%")
    } else {
        format!("{p:.3}%")
    }
}

/// Evaluate every objective of the scenario over the recording.
pub fn evaluate(objectives: &[Objective], rec: &Recording, tl: &Timeline) -> Vec<SloResult> {
    evaluate_with_data(objectives, rec, tl, None, recovery::SUSTAIN)
}

/// The read-back of acknowledged durable writes: per request name, (checked, lost).
#[derive(Debug, Clone, Default)]
pub struct DataCheck {
    /// Per request name: (writes checked, lost among them).
    pub per_request: Vec<(String, u64, u64)>,
    /// Per request name: writes that could not be checked (the read-back kept failing).
    pub unverified: Vec<(String, u64)>,
    /// Each write the read-back answered for (found or lost), with when it was sent and
    /// acknowledged. In acknowledgement order.
    pub answered: Vec<Answered>,
    /// Writes answered for whose acknowledgement time is unknown (a report of an older
    /// version): no `rpo` can be measured on them.
    pub untimed: u64,
}

/// One durable write the read-back answered for.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub request: String,
    /// Its first attempt went out (ms on the run's clock): it was committed no earlier.
    pub sent_ms: u64,
    /// Its acknowledgement arrived (ms): it was committed no later.
    pub acked_ms: u64,
    /// Read back after the run (else lost).
    pub found: bool,
}

/// [`evaluate`], with `lost_writes` objectives judged on the read-back (`None`: there was
/// none, e.g. the run was interrupted — insufficient data).
pub fn evaluate_with_data(
    objectives: &[Objective],
    rec: &Recording,
    tl: &Timeline,
    data: Option<&DataCheck>,
    sustain: Duration,
) -> Vec<SloResult> {
    evaluate_all(objectives, rec, None, tl, data, sustain)
}

/// [`evaluate_with_data`], with `journey:NAME` objectives judged on the journeys' recording
/// (`None`: the run had no users — insufficient data, never the requests' recording).
fn evaluate_all(
    objectives: &[Objective],
    rec: &Recording,
    journeys: Option<&Recording>,
    tl: &Timeline,
    data: Option<&DataCheck>,
    sustain: Duration,
) -> Vec<SloResult> {
    objectives
        .iter()
        .map(|o| {
            if let Some(name) = o.journey() {
                let (start, end) = tl.span_of(o);
                let stats = journeys
                    .and_then(|j| j.request_index(name).map(|i| (j, i)))
                    .map(|(j, i)| {
                        let (from, to) = j.range(start, end);
                        j.aggregate(from, to, Some(i))
                    })
                    .unwrap_or_default();
                return judge(o, &stats);
            }
            if o.metric == Metric::LostWrites {
                return judge_data(o, data);
            }
            if o.metric == Metric::Rpo {
                return rpo::judge_rpo(o, data, tl);
            }
            if o.metric == Metric::Recovery {
                return judge_recovery(o, objectives, rec, tl, sustain);
            }
            let (start, end) = tl.span_of(o);
            let (from, to) = rec.range(start, end);
            // A request the recording does not hold has no samples (insufficient data),
            // never the aggregate of every request.
            let stats = match o.request.as_deref().map(|n| rec.request_index(n)) {
                Some(None) => Stats::default(),
                Some(Some(i)) => rec.aggregate(from, to, Some(i)),
                None => rec.aggregate(from, to, None),
            };
            judge(o, &stats)
        })
        .collect()
}

/// Judge one objective on already-merged statistics.
pub fn judge(o: &Objective, stats: &Stats) -> SloResult {
    let n = sample_count(o.metric, stats);
    let need = min_samples(o);
    let v = value(o.metric, stats);
    let shown_bound = format!("{} {}", o.op.symbol(), show(o.metric, o.bound));
    let (status, note) = match v {
        _ if n < need => (
            Status::InsufficientData,
            Some(format!(
                "insufficient data: {n} sample{} in window {}, {need} needed",
                if n == 1 { "" } else { "s" },
                o.window_label()
            )),
        ),
        None => (
            Status::InsufficientData,
            Some("insufficient data: no samples".to_string()),
        ),
        Some(x) if o.op.holds(x, o.bound) => (Status::Pass, None),
        Some(_) => (Status::Fail, None),
    };
    SloResult {
        objective: o.clone(),
        status,
        value: v,
        samples: n,
        shown_value: v.map_or_else(|| "—".to_string(), |x| show(o.metric, x)),
        shown_bound,
        note,
    }
}

fn judge_recovery(
    o: &Objective,
    objectives: &[Objective],
    rec: &Recording,
    tl: &Timeline,
    sustain: Duration,
) -> SloResult {
    let shown_bound = format!("{} {}", o.op.symbol(), show(o.metric, o.bound));
    let Window::During(name) = &o.window else {
        return judge(o, &Stats::default());
    };
    let r = tl
        .faults
        .iter()
        .find(|f| &f.name == name)
        .map(|f| recovery::recovery_of(f, objectives, rec, tl, sustain, o.request.as_deref()));
    let (status, value, note) = match r {
        None => (
            Status::InsufficientData,
            None,
            Some("fault not in the timeline".into()),
        ),
        Some(r) if r.max_p99_us == 0.0 => (Status::InsufficientData, None, Some(r.note)),
        // Not recovered before the end of the run: a failure, not a lack of data.
        Some(r) => match r.from_inject_s {
            None => (Status::Fail, None, Some(r.note)),
            Some(s) => {
                let v = s * 1e6;
                let st = if o.op.holds(v, o.bound) {
                    Status::Pass
                } else {
                    Status::Fail
                };
                (st, Some(v), (!r.note.is_empty()).then_some(r.note))
            }
        },
    };
    SloResult {
        objective: o.clone(),
        status,
        value,
        // The requests the recovery was measured on: those of the fault's window.
        samples: {
            let (s, e) = tl.span(&o.window);
            let (from, to) = rec.range(s, e);
            let req = o.request.as_deref().and_then(|n| rec.request_index(n));
            rec.aggregate(from, to, req).requests()
        },
        shown_value: value.map_or_else(|| "not recovered".to_string(), |x| show(o.metric, x)),
        shown_bound,
        note,
    }
}

fn judge_data(o: &Objective, data: Option<&DataCheck>) -> SloResult {
    let shown_bound = format!("{} {}", o.op.symbol(), show(o.metric, o.bound));
    let counted = data.map(|d| {
        d.per_request
            .iter()
            .filter(|(name, _, _)| o.request.as_ref().is_none_or(|r| r == name))
            .fold((0, 0), |(c, l), (_, checked, lost)| (c + checked, l + lost))
    });
    let unverified: u64 = data.map_or(0, |d| {
        d.unverified
            .iter()
            .filter(|(name, _)| o.request.as_ref().is_none_or(|r| r == name))
            .map(|(_, n)| n)
            .sum()
    });
    let (status, value, samples, note) = match counted {
        None => (
            Status::InsufficientData,
            None,
            0,
            Some("no read-back: the run did not finish".to_string()),
        ),
        Some((0, _)) if unverified == 0 => (
            Status::InsufficientData,
            None,
            0,
            Some("no acknowledged durable write to read back".to_string()),
        ),
        // A write that could not be read back may be lost: the bound cannot be said to hold
        // (but a bound already broken by the writes found lost is a failure).
        Some((checked, lost)) if unverified > 0 && o.op.holds(lost as f64, o.bound) => (
            Status::InsufficientData,
            Some(lost as f64),
            checked,
            Some(format!(
                "{unverified} acknowledged write{} could not be read back (see the report's unverified list): lost or not, unknown",
                if unverified == 1 { "" } else { "s" }
            )),
        ),
        Some((checked, lost)) => {
            let v = lost as f64;
            let st = if o.op.holds(v, o.bound) {
                Status::Pass
            } else {
                Status::Fail
            };
            (st, Some(v), checked, None)
        }
    };
    SloResult {
        objective: o.clone(),
        status,
        value,
        samples,
        shown_value: value.map_or_else(|| "—".to_string(), |x| show(o.metric, x)),
        shown_bound,
        note,
    }
}

/// Every SLO of a run and every fault's recovery, as `chaos run` and `chaos report` judge
/// them: windows follow the faults as applied (`applied`: name, injected and reverted at, in
/// seconds; the schedule where unknown), recovery needs a healthy stretch of 5 s scaled with
/// the run (at least one interval), and `insufficient_data = "allow"` is honoured.
///
/// `unapplied` names the faults that never took effect, each with why (`skipped`, `not
/// reached`, `inject failed`): every SLO of their `during:`/`after:` windows and their
/// `recovery` bounds is [`Status::NotJudged`] — a window of a fault that did not happen
/// measures nothing about it — and they get no recovery row.
///
/// `(rec, journeys)`: the requests' recording and the users' journeys' (`journey:NAME` SLOs).
pub fn judge_run<'a>(
    s: &Scenario,
    (rec, journeys): (&Recording, Option<&Recording>),
    tl: &Timeline,
    applied: impl Iterator<Item = (&'a str, Option<f64>, Option<f64>)>,
    unapplied: &[(&str, &str)],
    data: Option<&DataCheck>,
    time_scale: f64,
) -> (Vec<SloResult>, Vec<recovery::Recovery>) {
    let sustain = recovery::SUSTAIN.mul_f64(time_scale).max(s.load.interval);
    let judged = tl.as_applied(applied);
    let not_applied = |f: &str| {
        unapplied
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(n, why)| format!("not judged: fault `{n}` {why}"))
    };
    let why_not = |o: &Objective| match &o.window {
        Window::During(f) | Window::After(f) => not_applied(f),
        // An RPO is a restore's: not judged when no restore of the run took place.
        Window::Data if o.metric == Metric::Rpo => {
            let restores: Vec<&str> = judged
                .faults
                .iter()
                .filter(|f| f.kind == rpo::RESTORE_KIND)
                .map(|f| f.name.as_str())
                .collect();
            let whys: Vec<String> = restores.iter().filter_map(|f| not_applied(f)).collect();
            (!restores.is_empty() && whys.len() == restores.len()).then(|| whys.join("; "))
        }
        _ => None,
    };
    let mut slo = evaluate_all(&s.slo.objectives, rec, journeys, &judged, data, sustain);
    // A restore that never took place lost nothing: an RPO is measured on those that did.
    if !unapplied.is_empty() {
        let mut took_place = judged.clone();
        took_place
            .faults
            .retain(|f| !unapplied.iter().any(|(n, _)| *n == f.name));
        for (r, o) in slo.iter_mut().zip(&s.slo.objectives) {
            if o.metric == Metric::Rpo {
                *r = rpo::judge_rpo(o, data, &took_place);
            }
        }
    }
    for (r, o) in slo.iter_mut().zip(&s.slo.objectives) {
        if let Some(note) = why_not(o) {
            *r = not_judged(o, note);
        }
    }
    if s.slo.allow_insufficient {
        allow_insufficient(&mut slo);
    }
    let recoveries = judged
        .faults
        .iter()
        .filter(|f| !unapplied.iter().any(|(n, _)| *n == f.name))
        .map(|f| recovery::recovery(f, &s.slo.objectives, rec, &judged, sustain))
        .collect();
    (slo, recoveries)
}

fn not_judged(o: &Objective, note: String) -> SloResult {
    SloResult {
        objective: o.clone(),
        status: Status::NotJudged,
        value: None,
        samples: 0,
        shown_value: "—".to_string(),
        shown_bound: format!("{} {}", o.op.symbol(), show(o.metric, o.bound)),
        note: Some(note),
    }
}

/// True when no result failed: each met, or not judged for an accepted reason (insufficient
/// data the scenario allows, a fault that did not take effect).
pub fn all_pass(results: &[SloResult]) -> bool {
    results.iter().all(|r| r.status.passes())
}

/// `[slo] insufficient_data = "allow"`: results without enough data to judge are reported as
/// such but do not fail the run.
pub fn allow_insufficient(results: &mut [SloResult]) {
    for r in results {
        if r.status == Status::InsufficientData {
            r.status = Status::InsufficientAllowed;
        }
    }
}

/// Outcome counts of statistics as (name, count) pairs, for reports.
pub fn outcome_counts(s: &Stats) -> Vec<(&'static str, u64)> {
    Outcome::ALL
        .iter()
        .map(|o| (o.name(), s.count(*o)))
        .collect()
}

pub mod abort;
pub mod recovery;
pub mod rpo;

#[cfg(test)]
mod tests;
