//! report.json across versions: a report written by the hand-written writer that came before
//! the typed one (tests/fixtures/report-v1-db-failover.json, a real db-failover run on the
//! sandbox) matches the published schema, and `chaos report` re-judges it into a report.json
//! equal to it — the same layout, the same figures, the same verdict.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::cli::*;
use common::schema::*;

const OLD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/report-v1-db-failover.json"
);

fn old() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(OLD).unwrap()).unwrap()
}

#[test]
fn the_old_writers_report_matches_the_schema() {
    assert_matches_schema(&old());
}

#[test]
fn chaos_report_rewrites_an_old_report_unchanged() {
    let dir = tmpdir("record-old");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(OLD, run.join("report.json")).unwrap();
    let out = dir.join("again");
    let o = chaos(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let was = old();
    // The run failed (an SLO could not be judged on its few samples): so does its re-judging.
    assert_eq!(
        o.status.code().map(i64::from),
        was["exit_code"].as_i64(),
        "{}",
        text(&o.stderr)
    );
    let again = report(&out);
    assert_matches_schema(&again);
    let was = typed_calls(was);
    if again != was {
        let (a, w) = (again.as_object().unwrap(), was.as_object().unwrap());
        let differ: Vec<&String> = w.keys().filter(|k| a.get(*k) != w.get(*k)).collect();
        panic!("chaos report changed report.json: {differ:?}");
    }
}

/// The check is the crate's, and as strict as the schema: a wrong type deep inside, an enum
/// value it does not list, a missing field — each found, at its place.
#[test]
fn the_schema_check_finds_what_is_wrong_where() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/reports/schema/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut bad = old();
    bad["timeline"]["faults"][0]["status"] = "gone".into();
    bad["histograms"]["intervals"][2]["requests"]["create-note"]["outcomes"][1] = 1.5.into();
    bad["per_request"]["list-notes"]
        .as_object_mut()
        .unwrap()
        .remove("sent");
    let errs = schema_errors(&bad, &schema, &schema, "$");
    let has = |at: &str, what: &str| errs.iter().any(|e| e.starts_with(at) && e.contains(what));
    assert!(has("$.timeline.faults[0].status:", "\"gone\""), "{errs:?}");
    assert!(
        has(
            "$.histograms.intervals[2].requests.create-note.outcomes[1]:",
            "1.5"
        ),
        "{errs:?}"
    );
    assert!(
        has("$.per_request.list-notes:", "missing `sent`"),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
}
