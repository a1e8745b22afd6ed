//! `chaos compare <baseline-run> <new-run> [--max-regression 10%]`: a gate against last
//! night's run. Both `report.json` files are read; every SLO present in both (same window,
//! request and objective), and p50/p99 latency and error rate over the whole run and over every
//! phase window both runs have (baseline, during and after each fault, recomputed from the
//! recorded histograms) are compared. A change counts as a regression when it moves the wrong
//! way (up for `<` bounds and latencies, down for `>` bounds) by more than the allowed fraction
//! *and* by more than a noise floor (1 ms for latencies, 1 s for recovery, 0.1 point for
//! ratios, 0.05 for amplification, 1 for counts), so 0.00% → 0.01% errors is not a regression
//! but 1% → 2% is. An SLO the baseline run measured and the new run could not (not recovered,
//! insufficient data) is a regression too.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Row {
    pub window: String,
    pub request: String,
    pub what: String,
    pub old: f64,
    pub new: f64,
    /// Relative change, signed so that positive is worse.
    pub worse_by: f64,
    pub regression: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    LatencyUs,
    /// A recovery time (µs): the floor is a second, a recorder interval is noise.
    RecoveryUs,
    Ratio,
    /// Attempts per request: 1.05 → 1.9 is a real change (floor 0.05).
    Factor,
    Count,
}

pub struct Comparison {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// SLOs measured in the baseline run that the new run could not measure (not recovered,
    /// insufficient data, no read-back): each is a regression.
    pub unmeasured: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.regression).count() + self.unmeasured.len()
    }
}

fn load(dir: &Path) -> Result<Value, String> {
    let p = dir.join("report.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    if v["schema"] != super::SCHEMA {
        return Err(format!(
            "{}: schema {} is not {}",
            p.display(),
            v["schema"],
            super::SCHEMA
        ));
    }
    Ok(v)
}

/// A report's fault timeline as the faults were applied (injection to revert), for windows.
fn timeline(r: &Value) -> crate::slo::Timeline {
    let secs = |v: &Value| v.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok());
    let total = secs(&r["timeline"]["total_s"]).unwrap_or_default();
    let faults = r["timeline"]["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| crate::slo::FaultSpan {
            name: f["name"].as_str().unwrap_or_default().to_string(),
            kind: f["kind"].as_str().unwrap_or_default().to_string(),
            start: secs(&f["injected_at_s"])
                .or(secs(&f["start_s"]))
                .unwrap_or_default(),
            end: secs(&f["reverted_at_s"])
                .or(secs(&f["end_s"]))
                .unwrap_or_default(),
        })
        .collect();
    crate::slo::Timeline { total, faults }
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

fn kind_of(metric: &Value) -> Kind {
    match metric["metric"].as_str() {
        Some("latency" | "max_latency") => Kind::LatencyUs,
        Some("recovery") => Kind::RecoveryUs,
        Some("lost_writes") => Kind::Count,
        Some("amplification") => Kind::Factor,
        _ => Kind::Ratio,
    }
}

fn row(
    (window, request, what): (String, String, String),
    old: f64,
    new: f64,
    up_is_worse: bool,
    kind: Kind,
    max: f64,
) -> Row {
    let delta = if up_is_worse { new - old } else { old - new };
    let worse_by = if old.abs() > f64::EPSILON {
        delta / old.abs()
    } else if delta > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let floor = match kind {
        Kind::LatencyUs => 1_000.0,
        Kind::RecoveryUs => 1_000_000.0,
        Kind::Ratio => 0.001,
        Kind::Factor => 0.05,
        Kind::Count => 1.0,
    };
    Row {
        regression: worse_by > max && delta >= floor,
        window,
        request,
        what,
        old,
        new,
        worse_by,
        kind,
    }
}

pub fn compare(base: &Path, new: &Path, max: f64) -> Result<Comparison, String> {
    let (a, b) = (load(base)?, load(new)?);
    let mut notes = Vec::new();
    if a["scenario"]["name"] != b["scenario"]["name"] {
        notes.push(format!(
            "different scenarios: {} vs {}",
            a["scenario"]["name"], b["scenario"]["name"]
        ));
    }
    let mut rows = Vec::new();
    let mut unmeasured = Vec::new();
    let empty = Vec::new();
    let slos_b = b["slo"].as_array().unwrap_or(&empty);
    for sa in a["slo"].as_array().unwrap_or(&empty) {
        let oa = &sa["objective"];
        let Some(sb) = slos_b.iter().find(|sb| {
            let ob = &sb["objective"];
            ob["text"] == oa["text"]
                && ob["window"] == oa["window"]
                && ob["trim"]["text"] == oa["trim"]["text"]
                && ob["request"] == oa["request"]
        }) else {
            notes.push(format!(
                "only in the baseline run: {} {}",
                window_name(oa),
                oa["text"].as_str().unwrap_or("")
            ));
            continue;
        };
        let (Some(old), Some(new)) = (sa["value"].as_f64(), sb["value"].as_f64()) else {
            if sa["value"].is_f64() && sb["status"] != "pass" {
                unmeasured.push(format!(
                    "{} {}{}: {} in the baseline run, {} in the new run ({})",
                    window_name(oa),
                    oa["text"].as_str().unwrap_or(""),
                    oa["request"]
                        .as_str()
                        .map(|r| format!(" [{r}]"))
                        .unwrap_or_default(),
                    sa["shown_value"].as_str().unwrap_or("?"),
                    sb["shown_value"].as_str().unwrap_or("no value"),
                    sb["status"].as_str().unwrap_or("?"),
                ));
            }
            continue;
        };
        let up_is_worse = !matches!(oa["op"].as_str(), Some(">" | ">="));
        rows.push(row(
            (
                window_name(oa),
                oa["request"].as_str().unwrap_or("all").to_string(),
                oa["text"].as_str().unwrap_or("").to_string(),
            ),
            old,
            new,
            up_is_worse,
            kind_of(&oa["metric"]),
            max,
        ));
    }
    // The whole run, SLOs or not.
    for (what, path, kind) in [
        ("p50", ["latency_us", "p50"], Kind::LatencyUs),
        ("p99", ["latency_us", "p99"], Kind::LatencyUs),
    ] {
        if let (Some(old), Some(new)) = (
            a["totals"][path[0]][path[1]].as_f64(),
            b["totals"][path[0]][path[1]].as_f64(),
        ) {
            rows.push(row(
                ("whole".into(), "all".into(), what.into()),
                old,
                new,
                true,
                kind,
                max,
            ));
        }
    }
    if let (Some(old), Some(new)) = (
        a["totals"]["error_rate"].as_f64(),
        b["totals"]["error_rate"].as_f64(),
    ) {
        rows.push(row(
            ("whole".into(), "all".into(), "error rate".into()),
            old,
            new,
            true,
            Kind::Ratio,
            max,
        ));
    }
    // Every phase window both runs have, recomputed from their recorded histograms.
    match (super::reread::recording(&a), super::reread::recording(&b)) {
        (Ok(ra), Ok(rb)) => {
            let (ta, tb) = (timeline(&a), timeline(&b));
            let mut windows = vec![crate::scenario::Window::Baseline];
            for f in &ta.faults {
                if tb.faults.iter().any(|g| g.name == f.name) {
                    windows.push(crate::scenario::Window::During(f.name.clone()));
                    windows.push(crate::scenario::Window::After(f.name.clone()));
                }
            }
            for w in windows {
                let stats = |rec: &crate::metrics::Recording, t: &crate::slo::Timeline| {
                    let (s, e) = t.span(&w);
                    let (from, to) = rec.range(s, e);
                    rec.aggregate(from, to, None)
                };
                let (sa, sb) = (stats(&ra, &ta), stats(&rb, &tb));
                for (what, q) in [("p50", 0.5), ("p99", 0.99)] {
                    let need = (1.0 / (1.0 - q)) as u64;
                    if sa.latency.len() >= need && sb.latency.len() >= need {
                        rows.push(row(
                            (w.to_string(), "all".into(), what.into()),
                            sa.latency.value_at_quantile(q) as f64,
                            sb.latency.value_at_quantile(q) as f64,
                            true,
                            Kind::LatencyUs,
                            max,
                        ));
                    }
                }
                if sa.requests() > 0 && sb.requests() > 0 {
                    rows.push(row(
                        (w.to_string(), "all".into(), "error rate".into()),
                        sa.error_rate(),
                        sb.error_rate(),
                        true,
                        Kind::Ratio,
                        max,
                    ));
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            notes.push(format!("per-window comparison skipped: {e}"));
        }
    }
    Ok(Comparison {
        rows,
        notes,
        unmeasured,
    })
}

fn show(kind: Kind, v: f64) -> String {
    match kind {
        Kind::LatencyUs | Kind::RecoveryUs => crate::slo::show_us(v),
        Kind::Ratio => crate::slo::show_ratio(v),
        Kind::Factor => format!("{v:.2}x"),
        Kind::Count => format!("{v:.0}"),
    }
}

pub fn render(c: &Comparison, max: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "| window | request | metric | baseline | new | change | |\n|---|---|---|---:|---:|---:|---|"
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
        let _ = writeln!(
            o,
            "| {} | {} | `{}` | {} | {} | {} | {} |",
            r.window,
            r.request,
            r.what,
            show(r.kind, r.old),
            show(r.kind, r.new),
            change,
            if r.regression { "**REGRESSION**" } else { "" }
        );
    }
    for u in &c.unmeasured {
        let _ = writeln!(o, "\n**REGRESSION**: {u}");
    }
    for n in &c.notes {
        let _ = writeln!(o, "\nnote: {n}");
    }
    let _ = writeln!(
        o,
        "\n{} regression(s) beyond {:.1}%",
        c.regressions(),
        max * 100.0
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(dir: &str, p99_us: f64, errors: f64, slo_p99: f64) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("chaos-compare-{dir}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let r = json!({
            "schema": crate::report::SCHEMA,
            "scenario": { "name": "s" },
            "slo": [{
                "objective": { "text": "p99 < 1s", "window": { "type": "during", "fault": "f" },
                               "request": null, "metric": { "metric": "latency", "q": 0.99 }, "op": "<" },
                "value": slo_p99
            }, {
                "objective": { "text": "throughput > 99%", "window": { "type": "whole" },
                               "request": null, "metric": { "metric": "throughput" }, "op": ">" },
                "value": 1.0
            }],
            "totals": { "error_rate": errors, "latency_us": { "p50": 10000.0, "p99": p99_us } }
        });
        std::fs::write(d.join("report.json"), r.to_string()).unwrap();
        d
    }

    #[test]
    fn regressions_beyond_the_bound_and_above_the_noise_floor() {
        let a = run("a", 20_000.0, 0.0, 300_000.0);
        // p99 +50% (regression), errors 0 -> 0.05% (under the 0.1-point floor), SLO p99 +5%.
        let b = run("b", 30_000.0, 0.0005, 315_000.0);
        let c = compare(&a, &b, 0.10).unwrap();
        let flagged: Vec<&str> = c
            .rows
            .iter()
            .filter(|r| r.regression)
            .map(|r| r.what.as_str())
            .collect();
        assert_eq!(flagged, ["p99"]);
        // The other way round everything got better: no regression.
        assert_eq!(compare(&b, &a, 0.10).unwrap().regressions(), 0);
        // A looser bound lets +50% pass.
        assert_eq!(compare(&a, &b, 0.60).unwrap().regressions(), 0);
        // Errors 1% -> 2%: a regression.
        let e1 = run("e1", 20_000.0, 0.01, 300_000.0);
        let e2 = run("e2", 20_000.0, 0.02, 300_000.0);
        assert_eq!(compare(&e1, &e2, 0.10).unwrap().regressions(), 1);
        assert!(compare(&a, std::path::Path::new("/nonexistent"), 0.1).is_err());
    }

    #[test]
    fn a_value_lost_in_the_new_run_is_a_regression() {
        let a = run("u1", 20_000.0, 0.0, 300_000.0);
        let b = run("u2", 20_000.0, 0.0, 300_000.0);
        // The new run's during-fault p99 could not be judged (e.g. not recovered, no data).
        let p = b.join("report.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["slo"][0]["value"] = Value::Null;
        v["slo"][0]["status"] = json!("insufficient_data");
        std::fs::write(&p, v.to_string()).unwrap();
        let c = compare(&a, &b, 0.10).unwrap();
        assert_eq!(c.regressions(), 1);
        assert!(
            c.unmeasured[0].starts_with("during:f p99 < 1s"),
            "{:?}",
            c.unmeasured
        );
        assert!(render(&c, 0.10).contains("**REGRESSION**: during:f"));
        // The other way round (unmeasured before, measured now): nothing to compare.
        assert_eq!(compare(&b, &a, 0.10).unwrap().regressions(), 0);
    }
}
