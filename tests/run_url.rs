//! `chaos run` end to end against a real HTTP server on 127.0.0.1: exit codes (0 pass, 1 SLO
//! breached, 2 bad input, 130 interrupted) and the files a run leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::*;
use common::schema::*;
use common::{serve, Behavior};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_passes_with_exit_0_and_writes_the_reports() {
    let srv = serve(Behavior::Delay(Duration::from_millis(5))).await;
    let dir = tmpdir("pass");
    let s = scenario(
        &dir,
        100,
        2.0,
        "\"p99 < 1s\", \"errors < 1%\", \"throughput > 95%\"",
    );
    let out = dir.join("run");
    let o = run_url(&s, &srv.url(), &out, &["--quiet"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = report(&out);
    assert_matches_schema(&r);
    assert_eq!(r["schema"], "chaos.report/v1");
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["exit_code"], 0);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("**PASS**"), "{summary}");
    assert!(summary.contains("p99 < 1s"), "{summary}");
    // 100 req/s for 2 s: every request reached the server.
    assert_eq!(
        srv.seen.count.load(std::sync::atomic::Ordering::SeqCst),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breached_slo_exits_1_and_names_it() {
    let srv = serve(Behavior::Delay(Duration::from_millis(30))).await;
    let dir = tmpdir("fail");
    let s = scenario(&dir, 200, 1.0, "\"p99 < 10ms\", \"errors < 1%\"");
    let out = dir.join("run");
    let o = run_url(&s, &srv.url(), &out, &["--quiet"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("p99 < 10ms"),
        "{}",
        text(&o.stderr)
    );
    let r = report(&out);
    assert_eq!(r["verdict"], "fail");
    // JUnit: one case per SLO, the breached one a failure naming value, bound and window.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 2, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");
    assert!(junit.contains("whole p99 &lt; 10ms"), "{junit}");
    assert!(
        junit.contains("(bound &lt; 10.0ms) over window whole"),
        "{junit}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("**FAIL**"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_against_a_plain_url_need_skip_faults() {
    let srv = serve(Behavior::Notes).await;
    let dir = tmpdir("faults");
    let out = dir.join("run");
    let base = vec![
        "run".to_string(),
        "az-outage".into(),
        "--target-url".into(),
        srv.url(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
        "--time-scale".into(),
        "0.01".into(),
    ];
    let o = chaos_async(base.clone()).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--skip-faults"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.join("report.json").exists(), "nothing ran");

    let mut skip = base;
    skip.push("--skip-faults".into());
    let o = chaos_async(skip).await;
    // A verdict either way (the test server is fast; 0 expected), and the fault is recorded as
    // skipped, never as injected.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    let r = report(&out);
    let faults = r["timeline"]["faults"].to_string();
    assert!(
        faults.contains("zone-a-down") && faults.contains("skipped"),
        "{faults}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_run_writes_a_partial_report_and_exits_130() {
    let srv = serve(Behavior::Delay(Duration::from_millis(1))).await;
    let dir = tmpdir("sigint");
    let s = scenario(&dir, 50, 30.0, "\"errors < 1%\"");
    let out = dir.join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["run", &s, "--target-url", &srv.url(), "--quiet", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "INT");
    // Bounded: the run must stop by itself well before its 30 s schedule.
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, "SIGINT"))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let r = report(&out);
    assert_eq!(r["verdict"], "interrupted");
    assert_eq!(r["exit_code"], 130);
}
