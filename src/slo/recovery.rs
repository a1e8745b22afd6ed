//! Recovery time of a fault, from the recording alone (the harness never asks the system).
//!
//! **Healthy interval.** A recorder interval (by intended send time, all requests) is healthy
//! when it holds at least one request, its error rate is at most the error threshold and its
//! p99 latency at most the latency threshold. The thresholds are the scenario's `baseline` SLO
//! bounds for `errors` and `p99` when it has them (trimmed or not); otherwise they are derived
//! from the measured baseline window (trimmed as the scenario's baseline SLOs are, so a warm-up
//! left out of them is left out here too): errors ≤ baseline error rate + 1 percentage point, p99 ≤ max(2 × baseline
//! p99, baseline p99 + 50 ms). With no baseline window at all (a fault at 0 s) nothing can be
//! judged and recovery is `None`.
//!
//! **Impact.** The first unhealthy interval at or after the injection is the *first impact*;
//! `time_to_impact` is from the injection to that interval's start. No unhealthy interval
//! before the run ends (or before the next fault starts) means no visible impact: recovery 0.
//!
//! **Recovery from injection.** The start of the first *sustained healthy stretch* (at least
//! `sustain`, default 5 s, of consecutive healthy intervals — cut short only by the end of the
//! run) that begins after the first impact, minus the injection time. `None` if the service is
//! not healthy for a sustained stretch before the run ends: not recovered.
//!
//! **Recovery from revert.** The same, counted from the revert: the start of the first
//! sustained healthy stretch at or after the revert (0 when healthy from the revert on).
//!
//! **Impact size.** Over `[first impact, recovered)`: requests that failed, and the worst
//! interval p99 minus the baseline p99 (extra latency).
//!
//! Everything is exact to the recorder interval: times are interval starts. The injection and
//! revert are the times the driver's calls returned; the interval holding one counts from it
//! (an impact in the injection's own interval is impact 0 s after it).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultSpan, Timeline};
use crate::metrics::Recording;
use crate::scenario::{Metric, Objective, Window};

/// Default length of the healthy stretch that counts as recovered.
pub const SUSTAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recovery {
    pub fault: String,
    /// Thresholds used: error ratio and p99 (µs).
    pub max_errors: f64,
    pub max_p99_us: f64,
    /// Seconds from the injection to the first unhealthy interval; `None` = no visible impact.
    pub time_to_impact_s: Option<f64>,
    /// Seconds from the injection until recovered; `Some(0.0)` with no impact; `None` = not
    /// recovered before the end of the run (or not judgeable).
    pub from_inject_s: Option<f64>,
    /// Seconds from the revert until recovered (`None` as above, or reverted at the end).
    pub from_revert_s: Option<f64>,
    /// The fault stayed until the end of the run: there is no "after the revert" to measure.
    pub reverted_at_end: bool,
    pub failed_requests: u64,
    pub extra_p99_us: Option<f64>,
    pub note: String,
}

/// Thresholds from the baseline SLOs, else from the measured baseline.
fn thresholds(
    objectives: &[Objective],
    rec: &Recording,
    tl: &Timeline,
    request: Option<&str>,
) -> Option<(f64, f64, f64)> {
    let mine = |o: &&Objective| o.window == Window::Baseline && o.request.as_deref() == request;
    // The baseline as the scenario judges it: trimmed (a warm-up left out) if its baseline
    // SLOs are.
    let (b0, b1) = objectives
        .iter()
        .filter(mine)
        .find(|o| o.trim.is_some())
        .map_or_else(|| tl.span(&Window::Baseline), |o| tl.span_of(o));
    let (from, to) = rec.range(b0, b1);
    if to <= from {
        return None;
    }
    let base = rec.aggregate(from, to, request.and_then(|n| rec.request_index(n)));
    if base.requests() == 0 || base.latency.is_empty() {
        return None;
    }
    let base_p99 = base.latency.value_at_quantile(0.99) as f64;
    let slo = |m: Metric| {
        objectives
            .iter()
            .filter(mine)
            .find(|o| o.metric == m)
            .map(|o| o.bound)
    };
    let max_errors = slo(Metric::Errors).unwrap_or(base.error_rate() + 0.01);
    let max_p99 = slo(Metric::Latency(0.99)).unwrap_or((2.0 * base_p99).max(base_p99 + 50_000.0));
    Some((max_errors, max_p99, base_p99))
}

/// Recovery of every fault of the timeline.
pub fn recoveries(objectives: &[Objective], rec: &Recording, tl: &Timeline) -> Vec<Recovery> {
    tl.faults
        .iter()
        .map(|f| recovery(f, objectives, rec, tl, SUSTAIN))
        .collect()
}

pub fn recovery(
    f: &FaultSpan,
    objectives: &[Objective],
    rec: &Recording,
    tl: &Timeline,
    sustain: Duration,
) -> Recovery {
    recovery_of(f, objectives, rec, tl, sustain, None)
}

/// [`recovery`] of one request name's traffic (`None`: all requests), against that request's
/// baseline SLOs (or its measured baseline).
pub fn recovery_of(
    f: &FaultSpan,
    objectives: &[Objective],
    rec: &Recording,
    tl: &Timeline,
    sustain: Duration,
    request: Option<&str>,
) -> Recovery {
    let req = request.and_then(|n| rec.request_index(n));
    let mut r = Recovery {
        fault: f.name.clone(),
        max_errors: 0.0,
        max_p99_us: 0.0,
        time_to_impact_s: None,
        from_inject_s: None,
        from_revert_s: None,
        reverted_at_end: f.end >= tl.total,
        failed_requests: 0,
        extra_p99_us: None,
        note: String::new(),
    };
    if let (Some(name), None) = (request, req) {
        // Never the recovery of every request under this one's name.
        r.note = format!("the recording holds no request \"{name}\"");
        return r;
    }
    let Some((max_errors, max_p99, base_p99)) = thresholds(objectives, rec, tl, request) else {
        r.note = "no baseline window (or no requests in it) to compare with".into();
        return r;
    };
    r.max_errors = max_errors;
    r.max_p99_us = max_p99;
    let iv = rec.interval;
    let n = rec.intervals.len();
    let healthy = |i: usize| {
        let s = rec.aggregate(i, i + 1, req);
        s.requests() > 0
            && s.error_rate() <= max_errors
            && !s.latency.is_empty()
            && s.latency.value_at_quantile(0.99) as f64 <= max_p99
    };
    let need = (sustain.as_nanos().div_ceil(iv.as_nanos().max(1)) as usize).max(1);
    let at = |i: usize| iv * i as u32;
    // The interval holding t (as [`Recording::range`] counts windows).
    let idx = |t: Duration| ((t.as_nanos() / iv.as_nanos().max(1)) as usize).min(n);
    // The start of the first sustained healthy stretch at or after index `from`.
    let stretch = |from: usize| -> Option<usize> {
        let mut run = 0;
        for i in from..n {
            if healthy(i) {
                run += 1;
                if run >= need {
                    return Some(i + 1 - run);
                }
            } else {
                run = 0;
            }
        }
        // A healthy tail cut short by the end of the run counts.
        (run > 0).then(|| n - run)
    };
    let inject = idx(f.start);
    // Impact is looked for until the next fault starts (its impact is its own).
    let horizon = tl
        .faults
        .iter()
        .map(|g| g.start)
        .filter(|&s| s > f.start)
        .min()
        .map_or(n, idx);
    let Some(first_bad) = (inject..horizon).find(|&i| !healthy(i)) else {
        r.time_to_impact_s = None;
        r.from_inject_s = Some(0.0);
        r.from_revert_s = (!r.reverted_at_end).then_some(0.0);
        r.note = "no visible impact: every interval stayed within the thresholds".into();
        return r;
    };
    r.time_to_impact_s = Some(at(first_bad).saturating_sub(f.start).as_secs_f64());
    let recovered = stretch(first_bad);
    r.from_inject_s = recovered.map(|k| at(k).saturating_sub(f.start).as_secs_f64());
    let revert = idx(f.end);
    if !r.reverted_at_end {
        r.from_revert_s = stretch(revert).map(|k| at(k).saturating_sub(f.end).as_secs_f64());
    }
    let until = recovered.unwrap_or(n);
    let impact = rec.aggregate(first_bad, until, req);
    r.failed_requests = impact.errors();
    r.extra_p99_us = (first_bad..until)
        .map(|i| rec.aggregate(i, i + 1, req))
        .filter(|s| !s.latency.is_empty())
        .map(|s| s.latency.value_at_quantile(0.99) as f64 - base_p99)
        .reduce(f64::max);
    if recovered.is_none() {
        r.note = "not recovered before the end of the run".into();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Outcome, Recorder, Sample};

    /// 30 s at 100 req/s, 1 s intervals: healthy (10 ms), except seconds in `bad` where every
    /// request fails after 2 s, and seconds in `slow` where latency is 900 ms.
    fn rec(bad: &[u64], slow: &[u64]) -> Recording {
        let mut r = Recorder::new(vec!["a".into()], Duration::from_secs(1));
        for i in 0..3000u64 {
            let t = Duration::from_millis(i * 10);
            let s = t.as_secs();
            let (lat, outcome) = if bad.contains(&s) {
                (2_000_000, Outcome::Http5xx)
            } else if slow.contains(&s) {
                (900_000, Outcome::Ok)
            } else {
                (10_000, Outcome::Ok)
            };
            r.record(&Sample {
                request: 0,
                intended: t,
                latency_us: lat,
                service_us: lat,
                lateness_us: 0,
                outcome,
                attempts: 1,
                exhausted: false,
                status: 0,
                tag: 0,
            });
        }
        r.finish()
    }

    fn tl(start: u64, end: u64) -> Timeline {
        Timeline {
            total: Duration::from_secs(30),
            faults: vec![FaultSpan {
                name: "f".into(),
                kind: "az-outage".into(),
                start: Duration::from_secs(start),
                end: Duration::from_secs(end),
            }],
        }
    }

    fn run(bad: &[u64], slow: &[u64], start: u64, end: u64) -> Recovery {
        let t = tl(start, end);
        recovery(&t.faults[0], &[], &rec(bad, slow), &t, SUSTAIN)
    }

    #[test]
    fn impact_then_recovery_exact_to_the_interval() {
        // Injected at 10 s, impact at 12 s..15 s, reverted at 20 s.
        let r = run(&[12, 13, 14], &[], 10, 20);
        assert_eq!(r.time_to_impact_s, Some(2.0));
        assert_eq!(r.from_inject_s, Some(5.0)); // healthy from 15 s on
        assert_eq!(r.from_revert_s, Some(0.0));
        assert_eq!(r.failed_requests, 300);
        assert!(r.extra_p99_us.unwrap_or(0.0) > 1_900_000.0);
    }

    #[test]
    fn noise_inside_the_recovery_restarts_the_stretch() {
        // Bad 12..14, one healthy blip at 14..16, bad again at 16: recovered at 17 s.
        let r = run(&[12, 13, 16], &[], 10, 20);
        assert_eq!(r.from_inject_s, Some(7.0));
        // Latency alone counts too: slow seconds are unhealthy.
        let r = run(&[], &[11, 12], 10, 20);
        assert_eq!(r.time_to_impact_s, Some(1.0));
        assert_eq!(r.from_inject_s, Some(3.0));
        assert_eq!(r.failed_requests, 0);
    }

    #[test]
    fn no_impact_is_recovery_zero_and_says_so() {
        let r = run(&[], &[], 10, 20);
        assert_eq!(r.time_to_impact_s, None);
        assert_eq!(r.from_inject_s, Some(0.0));
        assert!(r.note.contains("no visible impact"));
    }

    #[test]
    fn impact_lasting_past_the_revert_is_measured_from_it() {
        // Reverted at 15 s but bad until 18 s: 3 s from the revert, 8 s from the injection.
        let r = run(&[10, 11, 12, 13, 14, 15, 16, 17], &[], 10, 15);
        assert_eq!(r.from_inject_s, Some(8.0));
        assert_eq!(r.from_revert_s, Some(3.0));
    }

    #[test]
    fn never_recovered_within_the_run() {
        let bad: Vec<u64> = (12..30).collect();
        let r = run(&bad, &[], 10, 20);
        assert_eq!(r.from_inject_s, None);
        assert!(r.note.contains("not recovered"));
    }

    #[test]
    fn baseline_slos_set_the_thresholds() {
        let t = tl(10, 20);
        let strict = Objective {
            text: "p99 < 5ms".into(),
            window: Window::Baseline,
            trim: None,
            request: None,
            metric: Metric::Latency(0.99),
            op: crate::scenario::CmpOp::Lt,
            bound: 5_000.0,
        };
        // With p99 < 5 ms as the bar, even the normal 10 ms never counts as healthy.
        let r = recovery(&t.faults[0], &[strict], &rec(&[12], &[]), &t, SUSTAIN);
        assert_eq!(r.max_p99_us, 5_000.0);
        assert_eq!(r.time_to_impact_s, Some(0.0));
        assert_eq!(r.from_inject_s, None);
    }
}
