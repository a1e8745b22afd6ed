//! Snapshots of the human reports (`summary.md`, `junit.xml`) for a passing and a failing run,
//! built from a synthetic recording so every figure is deterministic (no clock, no network).

use std::time::{Duration, SystemTime};

use super::*;
use crate::metrics::{Outcome, Recorder, Sample};
use crate::scenario::parse_str;
use crate::slo::{recovery, DataCheck};

const SCENARIO: &str = r#"name = "synthetic"
description = "a zone outage, recorded synthetically"
[load]
stages = [{ hold = "100/s", for = "20s" }]
[[load.requests]]
name = "list"
path = "/notes"
expect = { status = [200, 404], body_contains = "notes" }
[[faults]]
name = "zone-a-down"
kind = "az-outage"
zone = "a"
at = "8s"
for = "4s"
[slo]
baseline = ["p99 < 50ms", "errors < 0.5%"]
"during:zone-a-down" = ["p99 < 3s", "errors < ERRBOUND"]
recovery = { "zone-a-down" = "< 10s" }
data = ["lost_writes == 0"]
"#;

/// 20 s at 100 req/s; from 9 s to 11 s a third of the requests fail after 1.5 s; 50 durable
/// writes all read back.
fn report(err_bound: &str) -> RunReport {
    build(&SCENARIO.replace("ERRBOUND", err_bound), None)
}

/// The same run with a given read-back of its 50 durable writes (`None`: all 50 found).
fn build(scenario: &str, verification: Option<crate::verify::Verification>) -> RunReport {
    let s = parse_str("synthetic.toml", scenario).unwrap_or_else(|d| panic!("{d}"));
    let mut r = Recorder::new(vec!["list".into()], Duration::from_secs(1));
    for i in 0..2000u64 {
        let t = Duration::from_millis(i * 10);
        let bad = (9..11).contains(&t.as_secs()) && i % 3 == 0;
        r.record(&Sample {
            request: 0,
            intended: t,
            latency_us: if bad {
                1_500_000
            } else {
                8_000 + (i % 7) * 1_000
            },
            service_us: 7_000,
            lateness_us: 100,
            outcome: if bad { Outcome::Http5xx } else { Outcome::Ok },
            status: if bad { 503 } else { 200 },
            attempts: if bad { 2 } else { 1 },
            exhausted: bad,
        });
    }
    let mut recording = r.finish();
    // The first failed responses, as the engine keeps them (masked, the body's head).
    recording.failures = [9.0, 9.03]
        .iter()
        .map(|&at_s| crate::metrics::FailedResponse {
            request: "list".into(),
            at_s,
            attempts: 2,
            outcome: Outcome::Http5xx,
            status: Some(503),
            reason: Some("status 503 is not expected (expect.status: 200, 404)".into()),
            headers: [("content-type".to_string(), "text/plain".to_string())].into(),
            body: "no healthy upstream | zone a".into(),
            body_bytes: 28,
        })
        .collect();
    let timeline = crate::slo::Timeline::of(&s);
    let data = verification.as_ref().map_or(
        DataCheck {
            per_request: vec![("list".into(), 50, 0)],
            unverified: vec![],
        },
        |v| v.data_check(),
    );
    let slo = crate::slo::evaluate_with_data(
        &s.slo.objectives,
        &recording,
        &timeline,
        Some(&data),
        recovery::SUSTAIN,
    );
    let recoveries = recovery::recoveries(&s.slo.objectives, &recording, &timeline);
    let verdict = if crate::slo::all_pass(&slo) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    RunReport {
        journal: vec![],
        segments: crate::load::schedule::segments(&s.load.stages),
        target_url: "http://127.0.0.1:8080".into(),
        time_scale: 1.0,
        started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        wall: Duration::from_secs(20),
        interrupted: false,
        scheduled: 2000,
        timeline,
        recording,
        slo,
        faults: vec![FaultRecord {
            name: "zone-a-down".into(),
            kind: "az-outage".into(),
            status: FaultStatus::Reverted,
            note: "on zone a".into(),
            injected_at_s: Some(8.0),
            reverted_at_s: Some(12.0),
        }],
        durable_writes: if verification.is_some() {
            (0..50)
                .map(|i| crate::load::engine::DurableWrite {
                    request: "list".into(),
                    id: (1050 + i).to_string(),
                    read_method: "GET".into(),
                    read_path: format!("/notes/{}", 1050 + i),
                })
                .collect()
        } else {
            Vec::new()
        },
        durable_without_id: 0,
        recoveries,
        aborted: None,
        verification,
        verdict,
        scenario: s,
    }
}

#[test]
fn summary_and_junit_of_a_passing_run() {
    let r = report("50%");
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason());
    insta::assert_snapshot!("summary_pass", markdown::render(&r));
    insta::assert_snapshot!("junit_pass", junit::render(&r));
}

#[test]
fn summary_and_junit_of_a_failing_run() {
    let r = report("1%");
    assert_eq!(r.verdict, Verdict::Fail);
    insta::assert_snapshot!("summary_fail", markdown::render(&r));
    insta::assert_snapshot!("junit_fail", junit::render(&r));
}

/// Lost writes listed by id, a write that could not be read back, and an SLO whose window is
/// too short to judge (a p99.9 needs 1000 samples; the 8 s after the fault hold 800).
#[test]
fn summary_and_junit_with_lost_writes_and_insufficient_data() {
    let mut per_request = std::collections::BTreeMap::new();
    per_request.insert("list".to_string(), (49u64, 2u64));
    let v = crate::verify::Verification {
        checked: 50,
        found: 47,
        lost: ["1041", "1077"]
            .iter()
            .map(|id| crate::verify::LostWrite {
                request: "list".into(),
                id: id.to_string(),
            })
            .collect(),
        unverified: vec![crate::verify::Unverified {
            request: "list".into(),
            id: "1099".into(),
            reason: "timed out 3 times".into(),
        }],
        per_request,
    };
    let text = SCENARIO.replace("ERRBOUND", "50%").replace(
        "data = [",
        "\"after:zone-a-down\" = [\"p99.9 < 1s\"]\ndata = [",
    );
    let r = build(&text, Some(v));
    assert_eq!(r.verdict, Verdict::Fail);
    let md = markdown::render(&r);
    insta::assert_snapshot!("summary_lossy", md);
    insta::assert_snapshot!("junit_lossy", junit::render(&r));
    let h = html::render(&r);
    assert!(h.contains("Lost ids: <code>1041</code>, <code>1077</code>"));
}

#[test]
fn the_html_report_is_self_contained_and_shows_the_fault() {
    let r = report("1%");
    let h = html::render(&r);
    assert!(h.starts_with("<!doctype html>"));
    assert_eq!(h.matches("<svg").count(), 3, "three charts");
    // Self-contained: nothing fetched from anywhere.
    for banned in [
        "<script", "src=", "href=", "http://", "https://", "@import", "url(",
    ] {
        let allowed_target = banned == "http://" && h.matches("http://").count() == 1;
        assert!(!h.contains(banned) || allowed_target, "found {banned}");
    }
    assert!(h.contains("zone-a-down"));
    assert!(h.contains("recovered after 3.0s"), "recovery marked");
    assert!(h.contains("<td class=fail>FAIL</td>"));
}
