//! The noise tests of `chaos compare` (the rule in the parent module's doc) applied to one row:
//! two sides — a value, its sample count, its window's merged statistics when recorded — in, a
//! [`Finding`] and the test's figures out.

use super::stats::{self, Interval};
use super::{Comparison, Finding, Kind, Row};
use crate::metrics::Stats;

/// The smallest change of a rate that counts (0.1 point): 0.00% → 0.05% is never a regression.
pub(super) const RATE_FLOOR: f64 = 0.001;
/// The smallest change of attempts per request that counts.
pub(super) const FACTOR_FLOOR: f64 = 0.05;
/// Recovery times are measured in whole recorder intervals: a change under this many is noise.
pub(super) const RECOVERY_INTERVALS: f64 = 3.0;

/// Which noise test a row gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Rule {
    Quantile(f64),
    Max,
    Proportion,
    Rate,
    Recovery,
    Count,
    /// Shown, never a regression: a restore's RPO moves by up to the snapshot interval with
    /// where the loss falls between two snapshots (one draw of that per run); its SLO bound
    /// judges it.
    Shown,
}

/// One side of a row: the value compared, the samples it came from, and the merged statistics
/// of its window when the recording has them.
pub(super) struct Side {
    pub value: f64,
    pub samples: Option<u64>,
    pub stats: Option<Stats>,
}

/// A side's interval of the `q` quantile: from its window's histogram, moved onto its value
/// (they are the same unless report.json was edited); else from its sample count.
fn quantile_interval(s: &Side, q: f64, z: f64) -> Option<Interval> {
    if let Some(st) = s.stats.as_ref().filter(|st| !st.latency.is_empty()) {
        let point = st.latency.value_at_quantile(q) as f64;
        return Some(stats::quantile_interval(&st.latency, q, z).rescaled(point, s.value));
    }
    s.samples
        .map(|n| stats::quantile_interval_from_count(s.value, n, q, z))
}

fn show_interval(i: Option<Interval>) -> String {
    let end = |v: Option<f64>, open: &str| v.map_or(open.to_string(), crate::slo::show_us);
    match i {
        Some(i) => format!("[{}, {}]", end(i.lo, "0"), end(i.hi, "∞")),
        None => "?".into(),
    }
}

/// Apply the row's rule (module doc) to the two sides.
pub(super) fn judge(
    c: &Comparison,
    (window, request, what): (String, String, String),
    kind: Kind,
    rule: Rule,
    up_is_worse: bool,
    a: &Side,
    b: &Side,
) -> Row {
    let (old, new) = (a.value, b.value);
    let delta = if up_is_worse { new - old } else { old - new };
    let worse_by = if old.abs() > f64::EPSILON {
        delta / old.abs()
    } else if delta > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let beyond = delta > 0.0 && worse_by > c.options.max_regression;
    let found = |regression: bool| {
        if regression {
            Finding::Regression
        } else {
            Finding::NoRegression
        }
    };
    let not_judged = |why: String| {
        if beyond {
            Finding::NotJudged(why)
        } else {
            Finding::NoRegression
        }
    };
    let (finding, evidence) = match rule {
        Rule::Proportion => match (a.samples, b.samples) {
            (Some(n1), Some(n2)) if n1 > 0 && n2 > 0 => {
                // The share of bad outcomes: the rate itself for `<` bounds, its complement
                // for `>` bounds (throughput).
                let bad = |v: f64, n: u64| {
                    let v = if up_is_worse { v } else { 1.0 - v };
                    (v.clamp(0.0, 1.0) * n as f64).round() as u64
                };
                let z = stats::two_proportion_z(bad(old, n1), n1, bad(new, n2), n2);
                (
                    found(beyond && delta >= RATE_FLOOR - 1e-12 && z >= c.z_one()),
                    format!("z = {z:.2}"),
                )
            }
            _ => (not_judged("no request counts".into()), String::new()),
        },
        Rule::Rate => match (a.samples, b.samples) {
            (Some(n1), Some(n2)) if n1 > 0 && n2 > 0 => {
                let extra = |v: f64, n: u64| (v - 1.0).max(0.0) * n as f64;
                let (x1, x2) = (extra(old, n1), extra(new, n2));
                let z = if up_is_worse {
                    stats::poisson_rate_z(x1, n1, x2, n2)
                } else {
                    stats::poisson_rate_z(x2, n2, x1, n1)
                };
                (
                    found(beyond && delta >= FACTOR_FLOOR && z >= c.z_one()),
                    format!("z = {z:.2}"),
                )
            }
            _ => (not_judged("no request counts".into()), String::new()),
        },
        Rule::Quantile(q) => {
            let z = c.z_two();
            let (ia, ib) = (quantile_interval(a, q, z), quantile_interval(b, q, z));
            let evidence = format!("{} → {}", show_interval(ia), show_interval(ib));
            // The new run's interval must lie wholly on the worse side of the baseline's.
            let apart = match (ia, ib) {
                (Some(ia), Some(ib)) if up_is_worse => ib.lo.zip(ia.hi).map(|(l, h)| l > h),
                (Some(ia), Some(ib)) => ib.hi.zip(ia.lo).map(|(h, l)| h < l),
                _ => None,
            };
            match apart {
                Some(apart) => (found(beyond && apart), evidence),
                None => (
                    not_judged(format!(
                        "too few samples ({} and {}) to bound the p{} at {}",
                        a.samples.map_or("?".into(), |n| n.to_string()),
                        b.samples.map_or("?".into(), |n| n.to_string()),
                        q * 100.0,
                        super::render::percent(c.options.confidence)
                    )),
                    evidence,
                ),
            }
        }
        Rule::Max => match (
            &b.stats,
            a.samples.or(a.stats.as_ref().map(|s| s.latency.len())),
        ) {
            (Some(sb), Some(n1)) if up_is_worse && !sb.latency.is_empty() => {
                let above = stats::count_above(&sb.latency, old);
                match stats::exceedances_needed(n1, sb.latency.len(), c.options.confidence) {
                    Some(k) => (
                        found(beyond && above >= k),
                        format!("{above} above the baseline's max ({k} needed)"),
                    ),
                    None => (
                        not_judged(format!(
                            "too few samples ({n1} and {}) to test a maximum",
                            sb.latency.len()
                        )),
                        String::new(),
                    ),
                }
            }
            _ => (
                not_judged("a maximum is tested on the new run's recorded histogram".into()),
                String::new(),
            ),
        },
        Rule::Recovery => (
            found(beyond && delta >= c.recovery_floor_us),
            format!("floor {}", crate::slo::show_us(c.recovery_floor_us)),
        ),
        Rule::Count => (found(beyond && delta >= 1.0), String::new()),
        Rule::Shown => (
            Finding::NoRegression,
            "moves with where the loss falls between snapshots: judged by its bound, not compared"
                .into(),
        ),
    };
    Row {
        window,
        request,
        what,
        old,
        new,
        worse_by,
        finding,
        evidence,
        kind,
    }
}
