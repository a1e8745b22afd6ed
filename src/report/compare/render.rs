//! `chaos compare`'s Markdown table: one row per compared metric with its test's figures, then
//! the regressions no row can show (SLOs the new run could not measure), notes, the rule as
//! applied (with its confidence) and the count.

use std::fmt::Write as _;

use super::rules::{FACTOR_FLOOR, RATE_FLOOR, RECOVERY_INTERVALS};
use super::{Comparison, Finding, Kind};

/// `0.999` → `99.9%`, `0.99` → `99%`.
pub(super) fn percent(f: f64) -> String {
    let s = format!("{:.4}", f * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn show(kind: Kind, v: f64) -> String {
    match kind {
        Kind::LatencyUs => crate::slo::show_us(v),
        Kind::Ratio => crate::slo::show_ratio(v),
        Kind::Factor => format!("{v:.2}x"),
        Kind::Count => format!("{v:.0}"),
    }
}

pub fn render(c: &Comparison) -> String {
    let o_ = &c.options;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| window | request | metric | baseline | new | change | evidence | |\n|---|---|---|---:|---:|---:|---|---|"
    );
    for r in &c.rows {
        let change = if r.worse_by.is_infinite() {
            "worse (from 0)".to_string()
        } else if r.worse_by == 0.0 {
            "=".to_string()
        } else {
            format!(
                "{:+.1}% {}",
                r.worse_by * 100.0,
                if r.worse_by > 0.0 { "worse" } else { "better" }
            )
        };
        let finding = match &r.finding {
            Finding::Regression => "**REGRESSION**".to_string(),
            Finding::NoRegression => String::new(),
            Finding::NotJudged(why) => format!("not judged: {why}"),
        };
        let _ = writeln!(
            o,
            "| {} | {} | `{}` | {} | {} | {} | {} | {} |",
            r.window,
            r.request,
            r.what,
            show(r.kind, r.old),
            show(r.kind, r.new),
            change,
            r.evidence,
            finding
        );
    }
    for u in &c.unmeasured {
        let _ = writeln!(o, "\n**REGRESSION**: {u}");
    }
    for n in &c.notes {
        let _ = writeln!(o, "\nnote: {n}");
    }
    let conf = percent(o_.confidence);
    let bound = percent(o_.max_regression);
    let _ = writeln!(
        o,
        "\nRule, at {conf} confidence: a change is a regression when it is worse by more than \
         {bound} and beyond the noise — rates: a one-sided two-proportion z-test (z ≥ {:.2}) and \
         at least {} point; latency quantiles: the new run's {conf} order-statistic interval lies \
         wholly beyond the baseline's; maximum latency: enough new samples above the baseline's \
         maximum; amplification: a Poisson-rate z-test and at least {FACTOR_FLOOR}; recovery: at \
         least {RECOVERY_INTERVALS} recorder intervals ({}).",
        c.z_one(),
        RATE_FLOOR * 100.0,
        crate::slo::show_us(c.recovery_floor_us),
    );
    let nj = c.not_judged();
    let _ = writeln!(
        o,
        "\n{} regression(s) beyond {bound} at {conf} confidence{}",
        c.regressions(),
        if nj > 0 {
            format!("; {nj} change(s) beyond the bound not judged (see the rows)")
        } else {
            String::new()
        }
    );
    o
}
