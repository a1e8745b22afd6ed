//! The typed report.json against a real one written by the hand-written writer that came
//! before it (`tests/fixtures/report-v1-db-failover.json`: `chaos run db-failover
//! --time-scale 0.05 --set load.peak_rps=100` on the sandbox, with a fault injected and
//! reverted, durable writes read back, failed responses and the journal): compatibility is
//! checked, not assumed.

use super::*;

const OLD: &str = include_str!("../../../tests/fixtures/report-v1-db-failover.json");

fn old() -> ReportFile {
    parse(Path::new("old/report.json"), OLD).unwrap_or_else(|e| panic!("{e}"))
}

/// The one documented migration inside v1: a journal plan's calls were `{method, path}` (sandbox
/// calls only) and are written driver-neutral now, `{service, operation, resource}`; both read.
fn typed_calls(mut v: Value) -> Value {
    for r in v["journal"].as_array_mut().into_iter().flatten() {
        let Some(plan) = r.get_mut("plan") else {
            continue;
        };
        for list in ["inject", "revert"] {
            for c in plan[list].as_array_mut().into_iter().flatten() {
                let (m, p) = (c["method"].clone(), c["path"].clone());
                *c = serde_json::json!({ "service": "sandbox", "operation": m, "resource": p });
            }
        }
    }
    v
}

#[test]
fn a_report_written_by_the_old_writer_reads_and_writes_back_unchanged() {
    let want: Value = typed_calls(serde_json::from_str(OLD).unwrap());
    let written: Value = serde_json::from_str(OLD).unwrap();
    assert!(
        written["journal"][0]["plan"]["inject"][0]["method"].is_string()
            && want["journal"][0]["plan"]["inject"][0]["operation"].is_string(),
        "the fixture holds old-style calls, migrated here"
    );
    let back = serde_json::to_value(old()).unwrap();
    if back != want {
        // Name the first key that differs rather than dumping 200 kB.
        let (w, b) = (want.as_object().unwrap(), back.as_object().unwrap());
        let keys: Vec<&String> = w.keys().chain(b.keys()).collect();
        let first = keys.into_iter().find(|k| w.get(*k) != b.get(*k));
        panic!("report.json changed in a round trip, first at `{first:?}`");
    }
}

#[test]
fn the_old_report_is_a_whole_run_record() {
    let f = old();
    assert_eq!(f.scenario.params.set, ["load.peak_rps=100"]);
    assert!(f.scenario.text.as_deref().unwrap().contains("db-failover"));
    assert!(f.scenario.model.contains_key("load") && f.scenario.model.contains_key("sandbox"));
    let run = f.into_run_record().unwrap();
    assert_eq!(run.recording.names, ["list-notes", "create-note"]);
    assert_eq!(run.recording.intervals.len(), 70);
    assert_eq!(run.recording.failures.len(), 2);
    assert_eq!(run.faults.len(), 1);
    assert_eq!(run.faults[0].status, FaultStatus::Reverted);
    assert!(run.faults[0].applied());
    let steps: Vec<journal::Step> = run.journal.iter().map(|r| r.step).collect();
    use journal::Step::*;
    assert_eq!(steps, [Intent, Applied, Confirmed, Reverted]);
    assert!(run.journal[0].plan.is_some() && run.journal[1].undo.is_some());
    assert_eq!(run.durable_writes.len(), 184);
    // The read-back's per-request counts (not in the file) are counted again from the writes.
    let v = run.verification.unwrap();
    assert_eq!(v.checked, 184);
    assert_eq!(v.per_request.get("create-note"), Some(&(184, 0)));
    let written: Value = serde_json::from_str(OLD).unwrap();
    assert_eq!(
        Value::from(crate::report::utc(run.started_at)),
        written["started_at"]
    );
    assert!(run.wall > Duration::from_secs(3));
    // The recording is the one the report's figures came from (floats to the last digit or
    // two: serde_json's parser is not exact in the last place).
    let again = serde_json::to_value(StatsSummary::of(&run.recording.aggregate(0, 70, None)));
    assert_close(
        &again.unwrap(),
        &serde_json::to_value(old().totals).unwrap(),
        "totals",
    );
}

fn assert_close(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                assert_close(v, &y[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_close(v, w, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{at}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// `chaos report` on the old report: the same recording judged again by this build gives the
/// SLO results and verdict the run wrote.
#[test]
fn the_old_report_judged_again_gives_what_the_run_said() {
    let dir = std::env::temp_dir().join(format!("chaos-record-old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), OLD).unwrap();
    let again = crate::report::reread::reread(&dir, None).unwrap_or_else(|e| panic!("{e}"));
    let f = old();
    assert_eq!(again.verdict, f.verdict);
    assert_eq!(
        serde_json::to_value(&again.slo).unwrap(),
        serde_json::to_value(&f.slo).unwrap()
    );
    assert_eq!(again.reason(), f.reason);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_field_of_the_wrong_type_is_an_error_at_its_place_in_the_file() {
    let p = Path::new("runs/x/report.json");
    let bad = OLD.replacen("\"wall_s\": ", "\"wall_s\": \"soon\", \"was\": ", 1);
    let e = parse(p, &bad).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ReadError::Invalid { .. }), "{msg}");
    let line = bad.lines().position(|l| l.contains("\"soon\"")).unwrap() + 1;
    assert!(
        msg.starts_with("runs/x/report.json: not a chaos.report/v1 report: invalid type")
            && msg.contains(&format!("line {line} column")),
        "{msg}"
    );
    // A histogram that is not base64, at its line.
    let h = OLD.find("\"latency\": \"").unwrap() + "\"latency\": \"".len();
    let bad = format!("{}!!{}", &OLD[..h], &OLD[h..]);
    let msg = parse(p, &bad).unwrap_err().to_string();
    let line = OLD[..h].lines().count();
    assert!(
        msg.contains("bad histogram encoding") && msg.contains(&format!("line {line} ")),
        "{msg}"
    );
    // Another layout is said to be one, whatever its fields.
    let e = parse(p, r#"{"schema": "chaos.report/v2", "wall_s": "x"}"#).unwrap_err();
    assert!(matches!(e, ReadError::Schema { .. }), "{e}");
    let e = parse(p, "[1, 2]").unwrap_err();
    assert!(matches!(e, ReadError::NotJson { .. }), "{e}");
}

#[test]
fn a_recording_that_does_not_decode_names_its_cell() {
    let mut f = old();
    f.histograms.intervals[3]
        .requests
        .get_mut("create-note")
        .unwrap()
        .service = Hdr(b"not hdr".to_vec());
    let msg = f.recording().unwrap_err().to_string();
    assert!(
        msg.starts_with("`histograms.intervals[3].requests.create-note.service`: not an HDR V2"),
        "{msg}"
    );
    let mut f = old();
    f.histograms.intervals[0].requests.remove("list-notes");
    assert!(matches!(
        f.recording().unwrap_err(),
        RecordError::MissingCell { interval: 0, .. }
    ));
    let mut f = old();
    f.interval_s = None;
    assert!(matches!(
        f.recording().unwrap_err(),
        RecordError::NoInterval
    ));
    f.interval_s = Some(0.0);
    assert!(matches!(
        f.recording().unwrap_err(),
        RecordError::Interval(_)
    ));
    let mut f = old();
    f.started_at = "yesterday".into();
    assert!(matches!(
        f.into_run_record().unwrap_err(),
        RecordError::StartedAt(_)
    ));
}

/// Older v1 reports lack what was added since (their schema says "absent in older reports"),
/// and have fewer outcomes per cell: they still load, the missing parts empty or zero.
#[test]
fn fields_added_to_v1_later_may_be_absent() {
    let mut v: Value = serde_json::from_str(OLD).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in ["journal", "failures", "scenario_digest"] {
        o.remove(k);
    }
    o["scenario"].as_object_mut().unwrap().remove("text");
    o["totals"].as_object_mut().unwrap().remove("status_counts");
    for row in o["histograms"]["intervals"].as_array_mut().unwrap() {
        for c in row["requests"].as_object_mut().unwrap().values_mut() {
            c.as_object_mut().unwrap().remove("statuses");
            c["outcomes"].as_array_mut().unwrap().truncate(6);
        }
    }
    for p in o["series"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("status_counts");
    }
    let f = parse(Path::new("r.json"), &v.to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.journal.is_empty() && f.failures.is_empty() && f.scenario.text.is_none());
    let run = f.into_run_record().unwrap();
    let all = run
        .recording
        .aggregate(0, run.recording.intervals.len(), None);
    assert!(all.statuses.is_empty());
    assert_eq!(all.count(Outcome::NotSent), 0);
    assert!(all.count(Outcome::Ok) > 0);
}
