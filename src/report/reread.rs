//! `chaos report <run-dir> [--scenario FILE] [--out DIR]`: rebuild a [`RunReport`] from
//! `report.json` — after an upgrade of the renderers, or with edited SLOs (`--scenario`), which
//! are re-judged on the recorded histograms. Nothing is re-run: the recording (per-interval HDR
//! histograms and counters), the faults' fate and the durable-write read-back come from
//! `report.json` as they were measured. Only SLOs can be judged again: a scenario whose load,
//! faults, abort conditions or sandbox differ from what ran is refused. The CLI writes the result
//! into a directory of its own (`RUN/rejudged-<time>/`), never over the run's files.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{FaultRecord, FaultStatus, RunReport, Verdict};
use crate::load::engine::DurableWrite;
use crate::metrics::recorder::Compact;
use crate::metrics::{FailedResponse, Outcome, Recording, StatusCounts};
use crate::slo::{self, Timeline};
use crate::verify::{LostWrite, Unverified, Verification};

fn num(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("report.json: `{what}` is missing or not a number"))
}

/// A duration in seconds: a finite, non-negative number of sane size.
fn secs(v: &Value, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(num(v, what)?)
        .map_err(|_| format!("report.json: `{what}` is not a duration in seconds"))
}

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// "2026-11-23T06:58:58Z" → SystemTime (the inverse of [`super::utc`]).
fn parse_utc(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

fn b64(v: &Value) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or_default())
        .map_err(|e| format!("report.json: bad histogram encoding: {e}"))
}

fn counts<const N: usize>(v: &Value) -> [u64; N] {
    let mut out = [0u64; N];
    for (o, x) in out.iter_mut().zip(v.as_array().into_iter().flatten()) {
        *o = x.as_u64().unwrap_or(0);
    }
    out
}

/// The recording (per-interval histograms and counters) stored in a report.json.
pub(crate) fn recording(r: &Value) -> Result<Recording, String> {
    let interval = secs(&r["interval_s"], "interval_s")?;
    if interval.is_zero() {
        return Err("report.json: `interval_s` is 0".into());
    }
    let names: Vec<String> = r["requests"]
        .as_array()
        .ok_or("report.json: `requests` is missing")?
        .iter()
        .map(string)
        .collect();
    let mut intervals = Vec::new();
    for row in r["histograms"]["intervals"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut cells = Vec::new();
        for n in &names {
            let c = &row["requests"][n];
            cells.push(Compact {
                latency: b64(&c["latency"])?,
                service: b64(&c["service"])?,
                lateness: b64(&c["lateness"])?,
                outcomes: counts(&c["outcomes"]),
                attempts: counts(&c["attempts"]),
                exhausted: c["exhausted"].as_u64().unwrap_or(0),
                // Absent in reports from before statuses were counted: none.
                statuses: StatusCounts::from_json(&c["statuses"]),
            });
        }
        intervals.push(cells);
    }
    let failures = r["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(FailedResponse::from_json)
        .collect();
    Ok(Recording {
        interval,
        names,
        intervals,
        failures,
    })
}

fn fault_status(s: &str) -> FaultStatus {
    match s {
        "reverted" => FaultStatus::Reverted,
        "not_reached" => FaultStatus::NotReached,
        "inject_failed" => FaultStatus::InjectFailed,
        "unconfirmed" => FaultStatus::Unconfirmed,
        "revert_failed" => FaultStatus::RevertFailed,
        _ => FaultStatus::Skipped,
    }
}

/// Rebuild the report of `dir`, judged against `scenario_arg` (a path or shipped name) or the
/// scenario the run used.
pub fn reread(dir: &Path, scenario_arg: Option<&str>) -> Result<RunReport, String> {
    let p = dir.join("report.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let r: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    if r["schema"] != super::SCHEMA {
        return Err(format!("{}: not a {} report", p.display(), super::SCHEMA));
    }
    let time_scale = num(&r["time_scale"], "time_scale")?;
    let source = string(&r["scenario"]["source"]);
    // The run's `--set` overrides and numeric `${env:…}` values: re-judging uses what ran.
    let applied: crate::scenario::Applied =
        serde_json::from_value(r["scenario"]["params"].clone()).unwrap_or_default();
    let params = crate::scenario::Params::recorded(&applied);
    // The scenario as the run read it, from report.json: no file needed. Secrets are
    // `${env:…}` references in it, not needed (re-judging sends nothing).
    let stored = |text: &str| {
        let base = std::path::Path::new(&source).parent();
        let no_env = |_: &str| None;
        let s = crate::scenario::parse_full(&source, text, &no_env, base, &params)
            .map_err(|d| format!("the scenario stored in report.json no longer parses:\n{d}"))?;
        Ok::<_, String>(if time_scale == 1.0 {
            s
        } else {
            s.time_scaled(time_scale)
        })
    };
    let scenario = match (scenario_arg, r["scenario"]["text"].as_str()) {
        (Some(a), _) => {
            // An edited file: the run's values first, today's environment for any new name.
            let p = crate::scenario::Params {
                process_env: true,
                ..params.clone()
            };
            let edited = crate::run::prepare_with(a, time_scale, &p).map_err(|e| e.to_string())?;
            if let Some(u) = edited.unknown.first() {
                return Err(format!(
                    "{a}: `{}` ({}, at {}) is not set and the run recorded no value for it: pass it in the environment",
                    u.name, u.field, u.place
                ));
            }
            same_run(&r["scenario"], &edited, a)?;
            edited
        }
        (None, Some(text)) => stored(text)?,
        // A report from before the scenario's text was stored: read it from where it was.
        (None, None) => {
            let arg = source
                .strip_prefix("builtin:")
                .map_or(source.clone(), str::to_string);
            let p = crate::scenario::Params::names_only(&[], &[]);
            crate::run::prepare_with(&arg, time_scale, &p).map_err(|e| {
                format!("{e}\n(the run used scenario `{source}`; pass --scenario FILE if it moved)")
            })?
        }
    };
    let recording = recording(&r)?;
    if recording.names
        != scenario
            .load
            .requests
            .iter()
            .map(|q| q.name.clone())
            .collect::<Vec<_>>()
    {
        return Err("the scenario's requests differ from the recorded ones: SLOs could not be judged on this recording".into());
    }
    let timeline = Timeline::of(&scenario);
    let faults: Vec<FaultRecord> = r["timeline"]["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| FaultRecord {
            name: string(&f["name"]),
            kind: string(&f["kind"]),
            status: fault_status(f["status"].as_str().unwrap_or("")),
            note: string(&f["note"]),
            injected_at_s: f["injected_at_s"].as_f64(),
            reverted_at_s: f["reverted_at_s"].as_f64(),
        })
        .collect();
    let durable_writes: Vec<DurableWrite> = r["durable"]["writes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| DurableWrite {
            request: string(&w["request"]),
            id: string(&w["id"]),
            read_method: string(&w["read_method"]),
            read_path: string(&w["read_path"]),
            // Never in report.json: a re-judged run does not read back again.
            headers: Default::default(),
        })
        .collect();
    let verification = r["durable"]["read_back"].as_object().map(|rb| {
        let list = |k: &str| {
            rb.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let lost: Vec<LostWrite> = list("lost")
            .iter()
            .map(|l| LostWrite {
                request: string(&l["request"]),
                id: string(&l["id"]),
            })
            .collect();
        let unverified: Vec<Unverified> = list("unverified")
            .iter()
            .map(|u| Unverified {
                request: string(&u["request"]),
                id: string(&u["id"]),
                reason: string(&u["reason"]),
            })
            .collect();
        let mut v = Verification {
            checked: rb.get("checked").and_then(Value::as_u64).unwrap_or(0),
            found: rb.get("found").and_then(Value::as_u64).unwrap_or(0),
            lost,
            unverified,
            per_request: Default::default(),
        };
        for w in &durable_writes {
            if v.unverified
                .iter()
                .any(|u| u.id == w.id && u.request == w.request)
            {
                continue;
            }
            let e = v.per_request.entry(w.request.clone()).or_default();
            e.0 += 1;
            if v.lost
                .iter()
                .any(|l| l.id == w.id && l.request == w.request)
            {
                e.1 += 1;
            }
        }
        v
    });
    let interrupted = r["interrupted"].as_bool().unwrap_or(false);
    let (slo, recoveries) = slo::judge_run(
        &scenario,
        &recording,
        &timeline,
        faults
            .iter()
            .map(|f| (f.name.as_str(), f.injected_at_s, f.reverted_at_s)),
        &super::unapplied(&faults),
        crate::verify::data_check(
            verification.as_ref(),
            !interrupted,
            r["durable"]["acknowledged_without_id"]
                .as_u64()
                .unwrap_or(0),
        )
        .as_ref(),
        time_scale,
    );
    let aborted = r["aborted"].as_object().map(|a| {
        (
            a.get("condition").map(string).unwrap_or_default(),
            a.get("at_s").and_then(Value::as_f64).unwrap_or(0.0),
        )
    });
    // What happened during the run (its faults' fate, an abort, an interrupt) stands; only the
    // SLOs are judged again — by the same rule as `chaos run`.
    let verdict = Verdict::of_run(&faults, aborted.is_some(), interrupted, &slo);
    let _ = Outcome::ALL; // the outcome order of the arrays above is Outcome::ALL's
    Ok(RunReport {
        journal: serde_json::from_value(r["journal"].clone()).unwrap_or_default(),
        segments: crate::load::schedule::segments(&scenario.load.stages),
        target_url: string(&r["target"]["url"]),
        time_scale,
        started_at: parse_utc(r["started_at"].as_str().unwrap_or(""))
            .ok_or("report.json: bad `started_at`")?,
        wall: secs(&r["wall_s"], "wall_s")?,
        interrupted,
        scheduled: r["scheduled"].as_u64().unwrap_or(0),
        timeline,
        recording,
        slo,
        faults,
        durable_without_id: r["durable"]["acknowledged_without_id"]
            .as_u64()
            .unwrap_or(0),
        durable_writes,
        recoveries,
        aborted,
        verification,
        verdict,
        scenario,
    })
}

/// Only the SLOs of a recording can be judged again: an edited scenario whose load, faults,
/// abort conditions or sandbox differ from what ran (as report.json recorded it) describes
/// another run.
fn same_run(ran: &Value, edited: &crate::scenario::Scenario, arg: &str) -> Result<(), String> {
    let edited = serde_json::to_value(edited)
        .map_err(|e| format!("{arg}: cannot compare it with the run's scenario: {e}"))?;
    // What a scenario's place or display changes, not what ran: where its CA file lies, and
    // the abort conditions' text (the bound, metric and stretch are compared).
    let part = |s: &Value, key: &str| {
        let mut v = s.get(key).cloned().unwrap_or(Value::Null);
        if let Some(c) = v.get_mut("client").and_then(Value::as_object_mut) {
            c.remove("ca_cert");
        }
        if let Some(list) = v.as_array_mut().filter(|_| key == "abort") {
            for a in list.iter_mut().filter_map(Value::as_object_mut) {
                a.remove("text");
            }
        }
        v
    };
    if ran.get("load").is_none() {
        return Err(format!(
            "{arg}: report.json does not record the scenario's load, so an edited scenario \
             cannot be checked against what ran; run `chaos report` without --scenario"
        ));
    }
    let differ: Vec<&str> = ["load", "faults", "abort", "sandbox"]
        .into_iter()
        .filter(|k| part(ran, k) != part(&edited, k))
        .collect();
    if differ.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{arg}: its {} differ from what this run ran: only SLOs can be judged again on a \
             recording (run the edited scenario to measure the rest)",
            differ.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_round_trips() {
        for secs in [0u64, 951_782_400, 1_795_403_539, 4_102_444_799] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_utc(&super::super::utc(t)), Some(t));
        }
        assert_eq!(parse_utc("2026-11-23 06:58:58"), None);
    }
}
