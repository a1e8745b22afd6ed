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
//! - **lost writes**: at least one more.
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use identity::{digest, Identity};
pub use render::render;

use crate::metrics::{Recording, Stats};
use crate::scenario::{Offset, Trim, Window};
use rules::{judge, Rule, Side, RECOVERY_INTERVALS};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a JSON report: {source}", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: schema {found} is not {}: not a chaos run's report.json, or from another chaos version", path.display(), super::SCHEMA)]
    Schema { path: PathBuf, found: String },
    #[error("the runs are of different scenarios: baseline {base}, new {new}. Compare two runs of one scenario, or pass --allow-different to compare them anyway")]
    Different { base: Identity, new: Identity },
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
    r: &'a Value,
    timeline: crate::slo::Timeline,
    recorded: Option<(Recording, Vec<Vec<Stats>>)>,
}

impl<'a> Run<'a> {
    fn new(r: &'a Value) -> Result<Run<'a>, String> {
        let rec = super::reread::recording(r)?;
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

    fn without_recording(r: &'a Value) -> Run<'a> {
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
        self.r["interval_s"].as_f64().unwrap_or(1.0) * 1e6
    }
}

/// A report's fault timeline as the faults were applied (injection to revert), for windows:
/// the schedule moved to the recorded times the way the run's own judge moved it.
fn timeline(r: &Value) -> crate::slo::Timeline {
    let secs = |v: &Value| v.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok());
    let total = secs(&r["timeline"]["total_s"]).unwrap_or_default();
    let faults = || r["timeline"]["faults"].as_array().into_iter().flatten();
    let scheduled = crate::slo::Timeline {
        total,
        faults: faults()
            .map(|f| crate::slo::FaultSpan {
                name: f["name"].as_str().unwrap_or_default().to_string(),
                kind: f["kind"].as_str().unwrap_or_default().to_string(),
                start: secs(&f["start_s"]).unwrap_or_default(),
                end: secs(&f["end_s"]).unwrap_or(total),
            })
            .collect(),
    };
    scheduled.as_applied(faults().map(|f| {
        (
            f["name"].as_str().unwrap_or_default(),
            f["injected_at_s"].as_f64(),
            f["reverted_at_s"].as_f64(),
        )
    }))
}

/// An objective's window as written: `during:f`, `baseline[10s..]`.
fn window_name(o: &Value) -> String {
    let w = &o["window"];
    let base = match (w["type"].as_str(), w["fault"].as_str()) {
        (Some(t), Some(f)) => format!("{t}:{f}"),
        (Some(t), None) => t.to_string(),
        _ => "?".into(),
    };
    match o["trim"]["text"].as_str() {
        Some(t) => format!("{base}[{t}]"),
        None => base,
    }
}

/// An objective's time range in a run, from its stored window and trim (as report.json keeps
/// them: `{"type": "during", "fault": "f"}`, trim ends in seconds).
fn objective_span(o: &Value, t: &crate::slo::Timeline) -> Option<(Duration, Duration)> {
    let fault = || o["window"]["fault"].as_str().map(str::to_string);
    let w = match o["window"]["type"].as_str()? {
        "whole" => Window::Whole,
        "baseline" => Window::Baseline,
        "during" => Window::During(fault()?),
        "after" => Window::After(fault()?),
        _ => return None,
    };
    let offset = |v: &Value| -> Option<Option<Offset>> {
        if v.is_null() {
            return Some(None);
        }
        Some(Some(Offset {
            from_end: v["from_end"].as_bool()?,
            by: Duration::try_from_secs_f64(v["by"].as_f64()?).ok()?,
        }))
    };
    let span = t.span(&w);
    let tr = &o["trim"];
    if tr.is_null() {
        return Some(span);
    }
    let trim = Trim {
        text: tr["text"].as_str().unwrap_or_default().to_string(),
        from: offset(&tr["from"])?,
        to: offset(&tr["to"])?,
    };
    Some(trim.apply(span))
}

/// The kind and rule of an SLO's metric (`{"metric": "latency", "q": 0.99}`).
fn rule_of(metric: &Value) -> (Kind, Rule) {
    match metric["metric"].as_str() {
        Some("latency") => (
            Kind::LatencyUs,
            Rule::Quantile(metric["q"].as_f64().unwrap_or(0.5)),
        ),
        Some("max_latency") => (Kind::LatencyUs, Rule::Max),
        Some("recovery") => (Kind::LatencyUs, Rule::Recovery),
        Some("lost_writes") => (Kind::Count, Rule::Count),
        Some("amplification") => (Kind::Factor, Rule::Rate),
        _ => (Kind::Ratio, Rule::Proportion),
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
    let empty = Vec::new();
    let slos_b = b.r["slo"].as_array().unwrap_or(&empty);
    for sa in a.r["slo"].as_array().unwrap_or(&empty) {
        let oa = &sa["objective"];
        let request = oa["request"].as_str();
        let Some(sb) = slos_b.iter().find(|sb| {
            let ob = &sb["objective"];
            ob["text"] == oa["text"]
                && ob["window"] == oa["window"]
                && ob["trim"]["text"] == oa["trim"]["text"]
                && ob["request"] == oa["request"]
        }) else {
            c.notes.push(format!(
                "only in the baseline run: {} {}",
                window_name(oa),
                oa["text"].as_str().unwrap_or("")
            ));
            continue;
        };
        let (Some(old), Some(new)) = (sa["value"].as_f64(), sb["value"].as_f64()) else {
            if sa["status"] == "not_judged" {
                c.notes.push(format!(
                    "not judged in the baseline run, so not compared: {} {}",
                    window_name(oa),
                    oa["text"].as_str().unwrap_or("")
                ));
            }
            if sa["value"].is_f64() && sb["status"] != "pass" {
                c.unmeasured.push(format!(
                    "{} {}{}: {} in the baseline run, {} in the new run ({})",
                    window_name(oa),
                    oa["text"].as_str().unwrap_or(""),
                    request.map(|r| format!(" [{r}]")).unwrap_or_default(),
                    sa["shown_value"].as_str().unwrap_or("?"),
                    sb["shown_value"].as_str().unwrap_or("no value"),
                    sb["status"].as_str().unwrap_or("?"),
                ));
            }
            continue;
        };
        let (kind, rule) = rule_of(&oa["metric"]);
        let side = |run: &Run, s: &Value, value: f64| {
            let stats = matches!(rule, Rule::Quantile(_) | Rule::Max)
                .then(|| objective_span(&s["objective"], &run.timeline))
                .flatten()
                .and_then(|span| run.stats(span, request));
            Side {
                value,
                samples: s["samples"].as_u64(),
                stats,
            }
        };
        let (side_a, side_b) = (side(a, sa, old), side(b, sb, new));
        let label = (
            window_name(oa),
            request.unwrap_or("all").to_string(),
            oa["text"].as_str().unwrap_or("").to_string(),
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
        let up_is_worse = !matches!(oa["op"].as_str(), Some(">" | ">="));
        let r = judge(c, label, kind, rule, up_is_worse, &side_a, &side_b);
        c.rows.push(r);
    }
}

/// A window's figures in one run: merged from the recording, or — without one, for the whole
/// run only — the stored totals.
enum Figures<'a> {
    Recorded(Box<Stats>),
    Totals(&'a Value),
}

impl<'a> Figures<'a> {
    fn of(run: &Run<'a>, w: &Window) -> Option<Figures<'a>> {
        match run.stats(run.timeline.span(w), None) {
            Some(s) => Some(Figures::Recorded(Box::new(s))),
            None if *w == Window::Whole => Some(Figures::Totals(&run.r["totals"])),
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
            Figures::Totals(t) => Some(Side {
                value: t["latency_us"][if q == 0.5 { "p50" } else { "p99" }].as_f64()?,
                samples: t["latency_us"]["count"].as_u64(),
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
                value: t["error_rate"].as_f64()?,
                samples: t["requests"].as_u64(),
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
    let took_effect = |run: &Run, name: &str| {
        run.r["timeline"]["faults"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| {
                f["name"] == name
                    && f["injected_at_s"].as_f64().is_some()
                    && f["status"] != "unconfirmed"
            })
    };
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
