//! `chaos compare <baseline> <new> [--max-regression 10%] [--confidence 99.9%]
//! [--allow-different]`: a gate against last night's run that does not flap when nothing
//! changed.
//!
//! Each argument is a run directory or its `report.json`. Both runs must be of one scenario —
//! the same name and the same content digest of the parsed load and faults (see
//! [`identity`]) — or the comparison is refused (exit 2) unless `--allow-different`.
//!
//! Compared: every SLO present in both runs (same window, request and objective), and p50/p99
//! latency and error rate over the whole run and over every phase window both runs have
//! (baseline, during and after each fault), recomputed from the recorded per-interval
//! histograms. A change is a **regression** only when it moves the wrong way (up for `<` bounds
//! and latencies, down for `>` bounds) by more than `--max-regression` relatively *and* passes
//! its noise test at the stated confidence `c` (default 99.9%: a compare has a dozen or more
//! rows, so each is held to 1 in 1,000 to keep the whole table from flapping):
//! - **rates** (error rate, throughput, retry rate, not sent, retries exhausted): a one-sided
//!   two-proportion z-test on the two runs' counts says the new rate is worse (z ≥ Φ⁻¹(c), 3.09
//!   at 99.9%), and the change is at least 0.1 point;
//! - **latency quantiles**: each run's distribution-free interval of the quantile at `c`
//!   (order statistics: the ranks n·q ± z·√(n·q·(1−q)), z = Φ⁻¹((1+c)/2), read off the
//!   window's merged HDR histogram) — the new run's lower end must lie above the baseline's upper
//!   end. An SLO row's value is the one report.json stored, with the spread of the histograms of
//!   its window (reconstructed from the recording and the faults as applied); without a recording,
//!   the interval an exponential tail would have for that sample count;
//! - **maximum latency**: at least k of the new run's samples lie above the baseline's maximum,
//!   k the least with C(n₂,k)/C(n₁+n₂,k) ≤ 1 − c (for one distribution, the chance that the k
//!   largest of both runs all come from the new one);
//! - **amplification** (attempts per request): a one-sided Poisson-rate z-test on the retries
//!   per request, and a change of at least 0.05;
//! - **recovery time**: a change of at least three recorder intervals (the recovery detector
//!   works in whole intervals);
//! - **lost writes**: at least one more;
//! - **rpo**: shown, never a regression — it moves by up to the snapshot interval with where
//!   the loss falls between two snapshots (one draw per run); its SLO bound judges it.
//!
//! What the tests see is the sampling noise *within* each run, with requests taken as
//! independent; a load test's latencies come in bursts, which is why two intervals must not
//! overlap rather than one value fall outside the other's interval. What they cannot see is a
//! system's drift from one run to the next: three identical full-length db-failover runs on the
//! sandbox differed by up to 5.4% in baseline p99 with disjoint intervals (one run's nodes were
//! a little faster throughout). Covering that is `--max-regression`'s job: below ~5%, latency
//! rows can flag identical runs.
//!
//! A change beyond the bound with too few samples to test it is reported as *not judged*, never
//! as passed (a p99 needs about 1,300 requests in its window before its interval is bounded at
//! 99.9%, 850 at 99%); an SLO the baseline measured and the new run could not (not recovered,
//! insufficient data) is a regression.

mod identity;
mod render;
mod rules;
mod stats;

use std::path::Path;
use std::time::Duration;

pub use identity::{digest, Identity};
pub use render::render;

use super::record::{ReadError, ReportFile, StatsSummary};
use super::FaultStatus;
use crate::metrics::{Recording, Stats};
use crate::scenario::{CmpOp, Metric, Objective, Window};
use crate::slo::{SloResult, Status};
use rules::{judge, Rule, Side, RECOVERY_INTERVALS};
// The tests edit report.json as JSON.
#[cfg(test)]
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Unreadable, not JSON, another schema, or fields of the wrong type: the message names
    /// the file (and serde_json's line and column).
    #[error(transparent)]
    Report(#[from] ReadError),
    #[error("the runs are of different scenarios: baseline {base}, new {new}. Compare two runs of one scenario, or pass --allow-different to compare them anyway")]
    Different { base: Identity, new: Identity },
    /// One shard's own run: its numbers are a share of the run's, not the run's.
    #[error("{}: one shard's own run ({index}/{count}): its traffic is a {count}th of the run's; compare merged runs (`chaos merge`)", path.display())]
    Shard {
        path: std::path::PathBuf,
        index: u32,
        count: u32,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest tolerated relative worsening (0.10 = 10%).
    pub max_regression: f64,
    /// The confidence every noise test is held to (0.999 = 99.9%), in (0.5, 1).
    pub confidence: f64,
    /// Compare runs of different scenarios instead of refusing.
    pub allow_different: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_regression: 0.10,
            confidence: 0.999,
            allow_different: false,
        }
    }
}

/// What the rule made of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Regression,
    /// Not worse, not worse enough, or within the noise.
    NoRegression,
    /// Worse beyond the bound, but with too few samples (or no counts) to test: the reason.
    NotJudged(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub window: String,
    pub request: String,
    pub what: String,
    pub old: f64,
    pub new: f64,
    /// Relative change, signed so that positive is worse.
    pub worse_by: f64,
    pub finding: Finding,
    /// The test's figures: a z statistic, two intervals, a count.
    pub evidence: String,
    kind: Kind,
}

impl Row {
    pub fn is_regression(&self) -> bool {
        self.finding == Finding::Regression
    }
}

/// How a row's values are shown.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    LatencyUs,
    Ratio,
    Factor,
    Count,
}

pub struct Comparison {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// SLOs measured in the baseline run that the new run could not measure (not recovered,
    /// insufficient data, no read-back): each is a regression.
    pub unmeasured: Vec<String>,
    pub options: Options,
    pub baseline: Identity,
    pub new: Identity,
    /// The recovery floor used (µs): three recorder intervals of the coarser run.
    pub recovery_floor_us: f64,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.is_regression()).count() + self.unmeasured.len()
    }

    pub fn not_judged(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.finding, Finding::NotJudged(_)))
            .count()
    }

    /// z for the one-sided tests at the confidence asked.
    fn z_one(&self) -> f64 {
        stats::normal_quantile(self.options.confidence)
    }

    /// z for the two-sided quantile intervals.
    fn z_two(&self) -> f64 {
        stats::normal_quantile((1.0 + self.options.confidence) / 2.0)
    }
}

/// One run as compare reads it: the report, its fault timeline as applied, and its recording
/// decoded once (every window merges from the same cells).
struct Run<'a> {
    r: &'a ReportFile,
    timeline: crate::slo::Timeline,
    recorded: Option<(Recording, Vec<Vec<Stats>>)>,
}

impl<'a> Run<'a> {
    fn new(r: &'a ReportFile) -> Result<Run<'a>, super::record::RecordError> {
        let rec = r.recording()?;
        let cells = rec
            .intervals
            .iter()
            .map(|row| row.iter().map(|c| c.to_stats()).collect())
            .collect();
        Ok(Run {
            r,
            timeline: timeline(r),
            recorded: Some((rec, cells)),
        })
    }

    fn without_recording(r: &'a ReportFile) -> Run<'a> {
        Run {
            r,
            timeline: timeline(r),
            recorded: None,
        }
    }

    /// Merged statistics over `[start, end)` of intended time, for one request or all.
    fn stats(&self, (start, end): (Duration, Duration), request: Option<&str>) -> Option<Stats> {
        let (rec, cells) = self.recorded.as_ref()?;
        let want = match request {
            Some(n) => Some(rec.request_index(n)?),
            None => None,
        };
        let (from, to) = rec.range(start, end);
        let mut acc = Stats::default();
        for row in cells.get(from..to).unwrap_or(&[]) {
            for (i, s) in row.iter().enumerate() {
                if want.is_none_or(|w| w == i) {
                    acc.add(s);
                }
            }
        }
        Some(acc)
    }

    fn interval_us(&self) -> f64 {
        self.r.interval_s.unwrap_or(1.0) * 1e6
    }

    /// Whether the fault of this name took effect (injected, and not found unconfirmed).
    fn took_effect(&self, name: &str) -> bool {
        self.r.timeline.faults.iter().any(|f| {
            f.name == name
                && f.injected_at_s.is_some()
                && f.status != Some(FaultStatus::Unconfirmed)
        })
    }
}

/// A report's fault timeline as the faults were applied (injection to revert), for windows:
/// the schedule moved to the recorded times the way the run's own judge moved it.
fn timeline(r: &ReportFile) -> crate::slo::Timeline {
    let secs = |s: f64| Duration::try_from_secs_f64(s).ok();
    let total = secs(r.timeline.total_s).unwrap_or_default();
    let scheduled = crate::slo::Timeline {
        total,
        faults: r
            .timeline
            .faults
            .iter()
            .map(|f| crate::slo::FaultSpan {
                name: f.name.clone(),
                kind: f.kind.clone(),
                start: secs(f.start_s).unwrap_or_default(),
                end: secs(f.end_s).unwrap_or(total),
            })
            .collect(),
    };
    scheduled.as_applied(
        r.timeline
            .faults
            .iter()
            .map(|f| (f.name.as_str(), f.injected_at_s, f.reverted_at_s)),
    )
}

/// An objective's time range in a run, from its stored window and trim; `None` for the
/// after-the-run `data` window, which has no time range.
fn objective_span(o: &Objective, t: &crate::slo::Timeline) -> Option<(Duration, Duration)> {
    (o.window != Window::Data).then(|| t.span_of(o))
}

/// The kind and rule of an SLO's metric.
fn rule_of(metric: &Metric) -> (Kind, Rule) {
    match metric {
        Metric::Latency(q) => (Kind::LatencyUs, Rule::Quantile(*q)),
        Metric::MaxLatency => (Kind::LatencyUs, Rule::Max),
        Metric::Recovery => (Kind::LatencyUs, Rule::Recovery),
        Metric::Rpo => (Kind::LatencyUs, Rule::Shown),
        Metric::LostWrites => (Kind::Count, Rule::Count),
        Metric::Amplification => (Kind::Factor, Rule::Rate),
        Metric::Errors
        | Metric::Throughput
        | Metric::NotSent
        | Metric::RetryRate
        | Metric::RetriesExhausted => (Kind::Ratio, Rule::Proportion),
    }
}

/// The snake_case name report.json gives a status (`insufficient_data`).
fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::InsufficientData => "insufficient_data",
        Status::InsufficientAllowed => "insufficient_allowed",
        Status::NotJudged => "not_judged",
    }
}

/// Compare the runs at `baseline` and `new` (directories or report.json files).
pub fn compare(baseline: &Path, new: &Path, opts: Options) -> Result<Comparison, CompareError> {
    let ((pa, a), (pb, b)) = (identity::load(baseline)?, identity::load(new)?);
    let (ia, ib) = (identity::identity(&a), identity::identity(&b));
    let mut notes = Vec::new();
    if ia.name != ib.name || ia.digest != ib.digest {
        if !opts.allow_different {
            return Err(CompareError::Different { base: ia, new: ib });
        }
        notes.push(format!(
            "different scenarios compared (--allow-different): baseline {ia}, new {ib}"
        ));
    }
    let (ra, rb) = match (Run::new(&a), Run::new(&b)) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => {
            for (p, e) in [(&pa, x.as_ref().err()), (&pb, y.as_ref().err())] {
                if let Some(e) = e {
                    notes.push(format!(
                        "{}: {e}: per-window comparison skipped, latency SLOs judged on their sample counts",
                        p.display()
                    ));
                }
            }
            (Run::without_recording(&a), Run::without_recording(&b))
        }
    };
    let mut c = Comparison {
        rows: Vec::new(),
        notes,
        unmeasured: Vec::new(),
        options: opts,
        baseline: ia,
        new: ib,
        recovery_floor_us: RECOVERY_INTERVALS * ra.interval_us().max(rb.interval_us()),
    };
    slo_rows(&mut c, &ra, &rb);
    window_rows(&mut c, &ra, &rb);
    Ok(c)
}

/// Every SLO both runs have.
fn slo_rows(c: &mut Comparison, a: &Run, b: &Run) {
    let same = |x: &Objective, y: &Objective| {
        x.text == y.text
            && x.window == y.window
            && x.trim.as_ref().map(|t| &t.text) == y.trim.as_ref().map(|t| &t.text)
            && x.request == y.request
    };
    for sa in &a.r.slo {
        let oa = &sa.objective;
        let request = oa.request.as_deref();
        let Some(sb) = b.r.slo.iter().find(|sb| same(&sb.objective, oa)) else {
            c.notes.push(format!(
                "only in the baseline run: {} {}",
                oa.window_label(),
                oa.text
            ));
            continue;
        };
        let (Some(old), Some(new)) = (sa.value, sb.value) else {
            if sa.status == Status::NotJudged {
                c.notes.push(format!(
                    "not judged in the baseline run, so not compared: {} {}",
                    oa.window_label(),
                    oa.text
                ));
            }
            if sa.value.is_some() && sb.status != Status::Pass {
                c.unmeasured.push(format!(
                    "{} {}{}: {} in the baseline run, {} in the new run ({})",
                    oa.window_label(),
                    oa.text,
                    request.map(|r| format!(" [{r}]")).unwrap_or_default(),
                    sa.shown_value,
                    sb.shown_value,
                    status_name(sb.status),
                ));
            }
            continue;
        };
        let (kind, rule) = rule_of(&oa.metric);
        let side = |run: &Run, s: &SloResult, value: f64| {
            let stats = matches!(rule, Rule::Quantile(_) | Rule::Max)
                .then(|| objective_span(&s.objective, &run.timeline))
                .flatten()
                .and_then(|span| run.stats(span, request));
            Side {
                value,
                samples: Some(s.samples),
                stats,
            }
        };
        let (side_a, side_b) = (side(a, sa, old), side(b, sb, new));
        let label = (
            oa.window_label(),
            request.unwrap_or("all").to_string(),
            oa.text.clone(),
        );
        if let Rule::Quantile(q) = rule {
            for (which, s) in [("baseline", &side_a), ("new", &side_b)] {
                if let Some(st) = s.stats.as_ref().filter(|st| !st.latency.is_empty()) {
                    let hist = st.latency.value_at_quantile(q) as f64;
                    if (hist - s.value).abs() > 0.002 * hist.max(1.0) {
                        c.notes.push(format!(
                            "{} {}: the {which} run's report.json says {}, its recorded histograms {}: the recorded spread is applied to the stored value",
                            label.0, label.2, crate::slo::show_us(s.value), crate::slo::show_us(hist)
                        ));
                    }
                }
            }
        }
        let up_is_worse = !matches!(oa.op, CmpOp::Gt | CmpOp::Ge);
        let r = judge(c, label, kind, rule, up_is_worse, &side_a, &side_b);
        c.rows.push(r);
    }
}

/// A window's figures in one run: merged from the recording, or — without one, for the whole
/// run only — the stored totals.
enum Figures<'a> {
    Recorded(Box<Stats>),
    Totals(&'a StatsSummary),
}

impl<'a> Figures<'a> {
    fn of(run: &Run<'a>, w: &Window) -> Option<Figures<'a>> {
        match run.stats(run.timeline.span(w), None) {
            Some(s) => Some(Figures::Recorded(Box::new(s))),
            None if *w == Window::Whole => Some(Figures::Totals(&run.r.totals)),
            None => None,
        }
    }

    fn latency(&self, q: f64) -> Option<Side> {
        match self {
            Figures::Recorded(s) => (!s.latency.is_empty()).then(|| Side {
                value: s.latency.value_at_quantile(q) as f64,
                samples: Some(s.latency.len()),
                stats: Some((**s).clone()),
            }),
            Figures::Totals(t) => t.latency_us.as_ref().map(|l| Side {
                value: (if q == 0.5 { l.p50 } else { l.p99 }) as f64,
                samples: Some(l.count),
                stats: None,
            }),
        }
    }

    fn errors(&self) -> Option<Side> {
        match self {
            Figures::Recorded(s) => (s.requests() > 0).then(|| Side {
                value: s.error_rate(),
                samples: Some(s.requests()),
                stats: None,
            }),
            Figures::Totals(t) => Some(Side {
                value: t.error_rate,
                samples: Some(t.requests),
                stats: None,
            }),
        }
    }
}

/// p50, p99 and error rate over the whole run and every phase window both runs have.
fn window_rows(c: &mut Comparison, a: &Run, b: &Run) {
    let mut windows = vec![Window::Whole, Window::Baseline];
    // Only the windows of faults that took effect in both runs: a skipped or unreached fault's
    // "during" is a stretch of ordinary traffic, not the fault.
    let took_effect = |run: &Run, name: &str| run.took_effect(name);
    for f in &a.timeline.faults {
        if !b.timeline.faults.iter().any(|g| g.name == f.name) {
            continue;
        }
        if took_effect(a, &f.name) && took_effect(b, &f.name) {
            windows.push(Window::During(f.name.clone()));
            windows.push(Window::After(f.name.clone()));
        } else {
            c.notes.push(format!(
                "fault `{}` did not take effect in {}: its windows are not compared",
                f.name,
                if took_effect(a, &f.name) {
                    "the new run"
                } else {
                    "the baseline run"
                }
            ));
        }
    }
    for w in windows {
        let (Some(fa), Some(fb)) = (Figures::of(a, &w), Figures::of(b, &w)) else {
            continue;
        };
        for (what, q) in [("p50", 0.5), ("p99", 0.99)] {
            if let (Some(x), Some(y)) = (fa.latency(q), fb.latency(q)) {
                let label = (w.to_string(), "all".into(), what.into());
                let r = judge(c, label, Kind::LatencyUs, Rule::Quantile(q), true, &x, &y);
                c.rows.push(r);
            }
        }
        if let (Some(x), Some(y)) = (fa.errors(), fb.errors()) {
            let label = (w.to_string(), "all".into(), "error rate".into());
            let r = judge(c, label, Kind::Ratio, Rule::Proportion, true, &x, &y);
            c.rows.push(r);
        }
    }
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
