//! Snapshots of the human reports (`summary.md`, `junit.xml`) for a passing and a failing run,
//! built from a synthetic recording so every figure is deterministic (no clock, no network).

use std::time::{Duration, SystemTime};

use super::*;
use crate::metrics::{Outcome, Recorder, Sample};
use crate::scenario::parse_str;
use crate::slo::DataCheck;

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
    build(
        &SCENARIO.replace("ERRBOUND", err_bound),
        None,
        FaultStatus::Reverted,
    )
}

/// The same run with a given read-back of its 50 durable writes (`None`: all 50 found).
fn build(
    scenario: &str,
    verification: Option<crate::verify::Verification>,
    fault: FaultStatus,
) -> RunReport {
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
            tag: 0,
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
    // Judged the way `chaos run` and `chaos report` judge (`slo::judge_run`, the verdict from
    // `Verdict::of_slos`), on the faults as this run applied them.
    let faults = vec![FaultRecord {
        name: "zone-a-down".into(),
        kind: "az-outage".into(),
        status: fault,
        note: if fault == FaultStatus::Skipped {
            "not injected: --skip-faults".into()
        } else {
            "on zone a".into()
        },
        injected_at_s: (fault != FaultStatus::Skipped).then_some(8.0),
        reverted_at_s: (fault != FaultStatus::Skipped).then_some(12.0),
        by_hand: Default::default(),
    }];
    let data = verification.as_ref().map_or(
        DataCheck {
            per_request: vec![("list".into(), 50, 0)],
            ..DataCheck::default()
        },
        |v| v.data_check(),
    );
    let (slo, recoveries) = crate::slo::judge_run(
        &s,
        (&recording, None),
        &timeline,
        faults
            .iter()
            .map(|f| (f.name.as_str(), f.injected_at_s, f.reverted_at_s)),
        &unapplied(&faults),
        Some(&data),
        1.0,
    );
    let verdict = Verdict::of_slos(&slo);
    RunReport {
        journal: vec![],
        journeys: None,
        shards: Vec::new(),
        // The zone as the sandbox's control plane showed it (a reverted fault only).
        notes: Vec::new(),
        events: if fault == FaultStatus::Reverted {
            vec![
                crate::fault::ControlEvent {
                    at_s: 8.1,
                    what: "sandbox zone a".into(),
                    from: Some("up".into()),
                    to: Some("down".into()),
                },
                crate::fault::ControlEvent {
                    at_s: 12.1,
                    what: "sandbox zone a".into(),
                    from: Some("down".into()),
                    to: Some("up".into()),
                },
            ]
        } else {
            vec![]
        },
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
        faults,
        durable_writes: if verification.is_some() {
            (0..50)
                .map(|i| crate::load::engine::DurableWrite {
                    request: "list".into(),
                    id: (1050 + i).to_string(),
                    read_method: "GET".into(),
                    read_path: format!("/notes/{}", 1050 + i),
                    headers: Default::default(),
                    same: None,
                    sent_ms: None,
                    acked_ms: None,
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
                reason: None,
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
    let r = build(&text, Some(v), FaultStatus::Reverted);
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

/// The same recording with the fault skipped (`--skip-faults`): its window's SLOs and its
/// recovery are not judged — skipped in JUnit, counted apart in the verdict, never met.
#[test]
fn summary_and_junit_with_a_skipped_fault() {
    let r = build(
        &SCENARIO.replace("ERRBOUND", "1%"),
        None,
        FaultStatus::Skipped,
    );
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.reason());
    assert_eq!(
        r.reason(),
        "3 SLOs met, 3 not judged: fault `zone-a-down` skipped"
    );
    assert!(r.recoveries.is_empty());
    insta::assert_snapshot!("summary_skipped", markdown::render(&r));
    insta::assert_snapshot!("junit_skipped", junit::render(&r));
    let h = html::render(&r);
    assert!(h.contains("<td class=skip>not judged</td>"), "{h}");
    assert!(
        !h.contains("<rect x="),
        "no fault window shaded: it never happened"
    );
}

/// Nothing judged at all is never a pass.
#[test]
fn a_run_with_no_slos_is_not_judged() {
    let text = SCENARIO[..SCENARIO.find("[slo]").unwrap_or(SCENARIO.len())].to_string();
    let r = build(&text, None, FaultStatus::Reverted);
    assert_eq!(r.verdict, Verdict::NotJudged);
    assert_eq!(r.verdict.exit_code(), 0);
    assert_eq!(r.verdict.badge(), "NOT JUDGED");
    assert_eq!(r.reason(), "the scenario has no SLOs: nothing was judged");
    assert!(markdown::render(&r).contains("No SLOs in this scenario: nothing was judged."));
}
