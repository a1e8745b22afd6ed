//! `chaos compare <baseline-run> <new-run> [--max-regression 10%]`: a gate against last
//! night's run. Both `report.json` files are read; every SLO present in both (same window,
//! request and objective) and the whole-run p50/p99 latency and error rate are compared. A
//! change counts as a regression when it moves the wrong way (up for `<` bounds and latencies,
//! down for `>` bounds) by more than the allowed fraction *and* by more than a noise floor
//! (1 ms for latencies, 0.1 point for ratios, 1 for counts), so 0.00% → 0.01% errors is not a
//! regression but 1% → 2% is.

use std::fmt::Write as _;
use std::path::Path;

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
    Count,
}

pub struct Comparison {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.regression).count()
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

fn window_name(w: &Value) -> String {
    match (w["type"].as_str(), w["fault"].as_str()) {
        (Some(t), Some(f)) => format!("{t}:{f}"),
        (Some(t), None) => t.to_string(),
        _ => "?".into(),
    }
}

fn kind_of(metric: &Value) -> Kind {
    match metric["metric"].as_str() {
        Some("latency" | "max_latency") => Kind::LatencyUs,
        Some("recovery") => Kind::RecoveryUs,
        Some("lost_writes") => Kind::Count,
        Some("amplification") => Kind::Count,
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
    let empty = Vec::new();
    let slos_b = b["slo"].as_array().unwrap_or(&empty);
    for sa in a["slo"].as_array().unwrap_or(&empty) {
        let oa = &sa["objective"];
        let Some(sb) = slos_b.iter().find(|sb| {
            let ob = &sb["objective"];
            ob["text"] == oa["text"]
                && ob["window"] == oa["window"]
                && ob["request"] == oa["request"]
        }) else {
            notes.push(format!(
                "only in the baseline run: {} {}",
                window_name(&oa["window"]),
                oa["text"].as_str().unwrap_or("")
            ));
            continue;
        };
        let (Some(old), Some(new)) = (sa["value"].as_f64(), sb["value"].as_f64()) else {
            continue;
        };
        let up_is_worse = !matches!(oa["op"].as_str(), Some(">" | ">="));
        rows.push(row(
            (
                window_name(&oa["window"]),
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
    Ok(Comparison { rows, notes })
}

fn show(kind: Kind, v: f64) -> String {
    match kind {
        Kind::LatencyUs | Kind::RecoveryUs => crate::slo::show_us(v),
        Kind::Ratio => crate::slo::show_ratio(v),
        Kind::Count => format!("{v:.2}"),
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
}
