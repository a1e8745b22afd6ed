//! `report.json`: the run as data, layout [`super::SCHEMA`] (published as
//! `reports/schema/report.v1.json`), built here as a [`ReportFile`] — the types of
//! [`super::record`], which `chaos report` and `chaos compare` read back.
//!
//! Series are per interval over all requests; histograms are embedded per interval and per
//! request in the HDR V2 deflate format (base64), so another tool — or `chaos merge` — can
//! recompute any percentile over any window exactly. Final HTTP statuses are counted one by one
//! (`status_counts` in the totals, per request and per interval; `statuses` in each histogram
//! cell, which `chaos report` reads back), and the first failed responses of each request are
//! kept, masked, in `failures`. Nothing here judges: the SLO results, recovery and verdict are
//! the report's, written as they are.

use serde_json::Value;

use super::record::{
    Aborted, Cell, Durable, FaultInfo, Histograms, IntervalCells, ReportFile, ScenarioInfo,
    SeriesLatency, SeriesPoint, StageInfo, StatsSummary, TargetInfo, TimelineInfo, ENCODING,
};
use super::{utc, RunReport, SCHEMA};
use crate::metrics::{Outcome, Recording};

/// report.json as JSON (what `chaos run` writes).
pub fn render(r: &RunReport) -> Value {
    // Every map of these types has string keys (a non-finite number becomes null): serializing
    // into a `Value` cannot fail, so a failure is a broken invariant, not an input error.
    serde_json::to_value(record(r)).expect("report.json's types serialize to JSON")
}

/// A recording's cells as report.json holds them.
fn histograms(rec: &Recording) -> Histograms {
    let iv = rec.interval.as_secs_f64();
    Histograms {
        encoding: ENCODING.into(),
        unit: "us".into(),
        intervals: rec
            .intervals
            .iter()
            .enumerate()
            .map(|(i, row)| IntervalCells {
                t: i as f64 * iv,
                requests: row
                    .iter()
                    .zip(&rec.names)
                    .map(|(c, n)| (n.clone(), Cell::of(c, &rec.tags)))
                    .collect(),
            })
            .collect(),
    }
}

/// report.json as its types.
pub fn record(r: &RunReport) -> ReportFile {
    let rec = &r.recording;
    let iv = rec.interval.as_secs_f64();
    let series = (0..rec.intervals.len())
        .map(|i| {
            let s = rec.aggregate(i, i + 1, None);
            let q = |p: f64| (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(p));
            SeriesPoint {
                t: i as f64 * iv,
                scheduled_rps: crate::load::schedule::rate_at(&r.segments, rec.interval * i as u32),
                requests: s.requests(),
                sent: s.sent(),
                ok: s.count(Outcome::Ok),
                errors: s.errors(),
                outcomes: Outcome::ALL
                    .iter()
                    .map(|o| (o.name().to_string(), s.count(*o)))
                    .collect(),
                attempts: s.total_attempts(),
                retried: s.retried(),
                status_counts: s.statuses.clone(),
                responses_by: super::record::tag_names(&s.tags, &rec.tags),
                latency_us: SeriesLatency {
                    p50: q(0.5),
                    p90: q(0.9),
                    p95: q(0.95),
                    p99: q(0.99),
                    max: (!s.latency.is_empty()).then(|| s.latency.max()),
                },
                lateness_p99_us: (!s.lateness.is_empty())
                    .then(|| s.lateness.value_at_quantile(0.99)),
            }
        })
        .collect();
    let per_request = rec
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), StatsSummary::of(&r.totals(Some(i)))))
        .collect();
    let stages = r
        .segments
        .iter()
        .zip(&r.scenario.load.stages)
        .map(|(s, st)| StageInfo {
            kind: st.kind,
            rate: st.rate_text.clone(),
            start_s: s.start.as_secs_f64(),
            end_s: (s.start + s.duration).as_secs_f64(),
            from_rps: s.from_rps,
            to_rps: s.to_rps,
        })
        .collect();
    let faults = r
        .timeline
        .faults
        .iter()
        .map(|f| {
            let rec = r.faults.iter().find(|x| x.name == f.name);
            FaultInfo {
                name: f.name.clone(),
                kind: f.kind.clone(),
                start_s: f.start.as_secs_f64(),
                end_s: f.end.as_secs_f64(),
                status: rec.map(|x| x.status),
                note: rec.map(|x| x.note.clone()),
                injected_at_s: rec.and_then(|x| x.injected_at_s),
                reverted_at_s: rec.and_then(|x| x.reverted_at_s),
                by_hand: rec.map(|x| x.by_hand).unwrap_or_default(),
            }
        })
        .collect();
    ReportFile {
        schema: SCHEMA.to_string(),
        chaos_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: scenario_info(&r.scenario),
        target: TargetInfo {
            kind: "url".into(),
            url: r.target_url.clone(),
        },
        started_at: utc(r.started_at),
        time_scale: r.time_scale,
        wall_s: r.wall.as_secs_f64(),
        interrupted: r.interrupted,
        aborted: r.aborted.as_ref().map(|(why, at)| Aborted {
            condition: why.clone(),
            at_s: *at,
        }),
        timeline: TimelineInfo {
            total_s: r.timeline.total.as_secs_f64(),
            stages,
            faults,
            events: r.events.clone(),
            notes: r.notes.clone(),
        },
        scheduled: r.scheduled,
        interval_s: Some(iv),
        requests: rec.names.clone(),
        histograms: histograms(rec),
        failures: rec.failures.clone(),
        journal: r.journal.clone(),
        durable: Durable {
            acknowledged: r.durable_writes.len() as u64,
            acknowledged_without_id: r.durable_without_id,
            writes: r.durable_writes.clone(),
            read_back: r.verification.clone(),
        },
        journeys: r
            .journeys
            .as_ref()
            .map(|j| j.counts.clone())
            .unwrap_or_default(),
        journey_histograms: r.journeys.as_ref().map(|j| histograms(&j.recording)),
        shards: r.shards.clone(),
        scenario_digest: Some(super::compare::digest(&r.scenario)),
        totals: StatsSummary::of(&r.totals(None)),
        per_request,
        series,
        verdict: r.verdict,
        exit_code: r.verdict.exit_code(),
        reason: r.reason(),
        slo: r.slo.clone(),
        recovery: r.recoveries.clone(),
    }
}

/// The scenario's own fields, and the rest of its serialized model as it is.
pub(crate) fn scenario_info(s: &crate::scenario::Scenario) -> ScenarioInfo {
    let mut model = match serde_json::to_value(s) {
        Ok(Value::Object(m)) => m,
        // A struct serializes to an object with string keys: not reached.
        _ => serde_json::Map::new(),
    };
    for k in ["name", "description", "source", "text", "params"] {
        model.remove(k);
    }
    ScenarioInfo {
        name: s.name.clone(),
        description: s.description.clone(),
        source: s.source.clone(),
        text: Some(s.text.clone()),
        params: s.params.clone(),
        model,
    }
}
