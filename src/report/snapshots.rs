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

/// 20 s at 100 req/s; from 9 s to 11 s a third of the requests fail after 1.5 s.
fn report(err_bound: &str) -> RunReport {
    let s = parse_str("synthetic.toml", &SCENARIO.replace("ERRBOUND", err_bound))
        .unwrap_or_else(|d| panic!("{d}"));
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
            attempts: if bad { 2 } else { 1 },
            exhausted: bad,
        });
    }
    let recording = r.finish();
    let timeline = crate::slo::Timeline::of(&s);
    let data = DataCheck {
        per_request: vec![("list".into(), 50, 0)],
    };
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
        durable_writes: Vec::new(),
        durable_without_id: 0,
        recoveries,
        aborted: None,
        verification: None,
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
