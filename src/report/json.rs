//! `report.json`: the run as data, layout [`super::SCHEMA`] (published as
//! `reports/schema/report.v1.json`).
//!
//! Series are per interval over all requests; histograms are embedded per interval and per
//! request in the HDR V2 deflate format (base64), so another tool — or `chaos merge` — can
//! recompute any percentile over any window exactly. Final HTTP statuses are counted one by one
//! (`status_counts` in the totals, per request and per interval; `statuses` in each histogram
//! cell, which `chaos report` reads back), and the first failed responses of each request are
//! kept, masked, in `failures`.

use base64::Engine as _;
use serde_json::{json, Value};

use super::{utc, RunReport, StatsSummary, SCHEMA};
use crate::metrics::{Outcome, Stats};

pub fn render(r: &RunReport) -> Value {
    let rec = &r.recording;
    let iv = rec.interval.as_secs_f64();
    let series: Vec<Value> = (0..rec.intervals.len())
        .map(|i| {
            let s = rec.aggregate(i, i + 1, None);
            let q = |p: f64| (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(p));
            json!({
                "t": i as f64 * iv,
                "scheduled_rps": crate::load::schedule::rate_at(&r.segments, rec.interval * i as u32),
                "requests": s.requests(),
                "sent": s.sent(),
                "ok": s.count(Outcome::Ok),
                "errors": s.errors(),
                "outcomes": Outcome::ALL.iter().map(|o| (o.name(), s.count(*o))).collect::<std::collections::BTreeMap<_, _>>(),
                "attempts": s.total_attempts(),
                "retried": s.retried(),
                "status_counts": s.statuses.to_map(),
                "latency_us": {
                    "p50": q(0.5), "p90": q(0.9), "p95": q(0.95), "p99": q(0.99),
                    "max": (!s.latency.is_empty()).then(|| s.latency.max()),
                },
                "lateness_p99_us": (!s.lateness.is_empty()).then(|| s.lateness.value_at_quantile(0.99)),
            })
        })
        .collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let histograms: Vec<Value> = rec
        .intervals
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let per: serde_json::Map<String, Value> = row
                .iter()
                .zip(&rec.names)
                .map(|(c, n)| {
                    (
                        n.clone(),
                        json!({
                            "latency": b64(&c.latency),
                            "service": b64(&c.service),
                            "lateness": b64(&c.lateness),
                            "outcomes": c.outcomes,
                            "attempts": c.attempts,
                            "exhausted": c.exhausted,
                            "statuses": c.statuses.to_map(),
                        }),
                    )
                })
                .collect();
            json!({ "t": i as f64 * iv, "requests": per })
        })
        .collect();
    let per_request: serde_json::Map<String, Value> = rec
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), summary(&r.totals(Some(i)))))
        .collect();
    json!({
        "schema": SCHEMA,
        "chaos_version": env!("CARGO_PKG_VERSION"),
        "scenario": r.scenario,
        "scenario_digest": super::compare::digest(&r.scenario),
        "target": { "kind": "url", "url": r.target_url },
        "started_at": utc(r.started_at),
        "time_scale": r.time_scale,
        "wall_s": r.wall.as_secs_f64(),
        "interrupted": r.interrupted,
        "verdict": r.verdict,
        "exit_code": r.verdict.exit_code(),
        "reason": r.reason(),
        "aborted": r.aborted.as_ref().map(|(why, at)| json!({ "condition": why, "at_s": at })),
        "timeline": {
            "total_s": r.timeline.total.as_secs_f64(),
            "stages": r.segments.iter().zip(&r.scenario.load.stages).map(|(s, st)| json!({
                "kind": st.kind,
                "rate": st.rate_text,
                "start_s": s.start.as_secs_f64(),
                "end_s": (s.start + s.duration).as_secs_f64(),
                "from_rps": s.from_rps,
                "to_rps": s.to_rps,
            })).collect::<Vec<_>>(),
            "faults": r.timeline.faults.iter().map(|f| {
                let rec = r.faults.iter().find(|x| x.name == f.name);
                json!({
                    "name": f.name,
                    "kind": f.kind,
                    "start_s": f.start.as_secs_f64(),
                    "end_s": f.end.as_secs_f64(),
                    "status": rec.map(|x| x.status),
                    "note": rec.map(|x| x.note.clone()),
                    "injected_at_s": rec.and_then(|x| x.injected_at_s),
                    "reverted_at_s": rec.and_then(|x| x.reverted_at_s),
                })
            }).collect::<Vec<_>>(),
        },
        "scheduled": r.scheduled,
        "interval_s": iv,
        "requests": rec.names,
        "totals": summary(&r.totals(None)),
        "per_request": per_request,
        "slo": r.slo,
        "recovery": r.recoveries,
        "journal": r.journal,
        "durable": {
            "acknowledged": r.durable_writes.len(),
            "acknowledged_without_id": r.durable_without_id,
            "writes": r.durable_writes,
            "read_back": r.verification,
        },
        "failures": rec.failures,
        "series": series,
        "histograms": {
            "encoding": "hdr-v2-deflate+base64",
            "unit": "us",
            "intervals": histograms,
        },
    })
}

/// A `Stats` in report form, with its responses counted by status.
fn summary(s: &Stats) -> Value {
    let mut v = json!(StatsSummary::of(s));
    v["status_counts"] = json!(s.statuses.to_map());
    v
}
