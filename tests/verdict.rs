//! Verdict integrity, end to end through the binary: nothing unjudged passes, a run's evidence
//! is never mixed or overwritten, a closed pipe is not a crash, and what the reports say is
//! what was judged (issue 9). Each test reproduces a false green or a lost run of the past.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::cli::{chaos, chaos_async, report, run_url, scenario_file, text, tmpdir};
use common::{serve, Behavior};

fn statuses(r: &serde_json::Value) -> Vec<(String, String)> {
    r["slo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let o = &s["objective"];
            let w = match o["window"]["fault"].as_str() {
                Some(f) => format!("{}:{f}", o["window"]["type"].as_str().unwrap()),
                None => o["window"]["type"].as_str().unwrap().to_string(),
            };
            (
                format!("{w} {}", o["text"].as_str().unwrap()),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `--skip-faults`: every SLO of a skipped fault's windows and its recovery bound is "not
/// judged" (JUnit `<skipped>`), never a pass; the verdict line counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_faults_leave_their_slos_not_judged() {
    let srv = serve(Behavior::Notes).await;
    let dir = tmpdir("skipjudge");
    let out = dir.join("run");
    let o = chaos_async(vec![
        "run".into(),
        "az-outage".into(),
        "--target-url".into(),
        srv.url(),
        "--skip-faults".into(),
        "--time-scale".into(),
        "0.05".into(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    let err = text(&o.stderr);
    let r = report(&out);
    let st = statuses(&r);
    for (slo, status) in &st {
        let of_fault = slo.starts_with("during:") || slo.starts_with("after:");
        if of_fault {
            assert_eq!(status, "not_judged", "{slo}: {st:?}");
        } else {
            assert_ne!(status, "not_judged", "{slo}: {st:?}");
        }
    }
    let not_judged = st.iter().filter(|(_, s)| s == "not_judged").count();
    assert!(
        not_judged >= 4,
        "during/after/recovery of zone-a-down: {st:?}"
    );
    assert!(
        st.iter()
            .any(|(s, _)| s.starts_with("during:zone-a-down recovery")),
        "{st:?}"
    );
    // The verdict line says so, and a pass counts only what was met.
    assert!(
        err.contains(&format!(
            "{not_judged} not judged: fault `zone-a-down` skipped"
        )),
        "{err}"
    );
    assert!(!err.contains("all 10 SLOs met"), "{err}");
    // JUnit: each of them a <skipped>, with why.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let skipped = junit
        .matches("<skipped message=\"not judged: fault `zone-a-down` skipped\"")
        .count();
    assert_eq!(skipped, not_judged, "{junit}");
    // No recovery measured for a fault that never happened.
    assert_eq!(
        r["recovery"].as_array().unwrap().len(),
        0,
        "{}",
        r["recovery"]
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("| `zone-a-down` | — | not judged |"),
        "{summary}"
    );
    // Classnames a CI server keeps whole (no dots), a time on every case, the measured value
    // on passing cases too.
    for cls in junit.split("classname=\"").skip(1) {
        let cls = &cls[..cls.find('"').unwrap()];
        assert!(!cls.contains('.'), "classname {cls:?}");
    }
    let cases = junit.matches("<testcase ").count();
    let timed = junit
        .split("<testcase ")
        .skip(1)
        .filter(|c| c[..c.find('>').unwrap()].contains(" time=\""))
        .count();
    // Not-judged cases have no window to time, nor the skipped fault's case; every other
    // case has a time.
    assert_eq!(timed, cases - not_judged - 1, "{junit}");
    // What could be judged was judged (pass or fail: 800 req/s through a debug build on a
    // loaded machine may miss a latency bound; that is not this test's business), and the
    // verdict line counts the not-judged ones apart from it.
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
    let judged = st
        .iter()
        .filter(|(_, s)| s == "pass" || s == "fail")
        .count();
    assert_eq!(judged + not_judged, st.len(), "nothing else: {st:?}");
    assert!(junit.contains("<property name=\"measured\""), "{junit}");
    // Bounds as judged: 30 s × 0.05 is 1.5 s, shown with what was written.
    for f in ["summary.md", "junit.xml", "report.html"] {
        let t = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            t.contains("recovery &lt; 1.5s (30s × 0.05)")
                || t.contains("recovery < 1.5s (30s × 0.05)"),
            "{f}"
        );
    }
}

/// `--skip-faults` on the sandbox: nothing is injected there either (no journal, no fault
/// in the sandbox's own record), and the faults are reported as skipped.
#[test]
fn skip_faults_on_the_sandbox_injects_nothing() {
    let dir = tmpdir("skipsandbox");
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        "node-kill",
        "--skip-faults",
        "--time-scale",
        "0.05",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !out.join("journal.jsonl").exists(),
        "no fault was journaled"
    );
    let events = std::fs::read_to_string(out.join("sandbox-events.jsonl")).unwrap();
    assert!(!events.contains("node_down"), "{events}");
    let r = report(&out);
    assert_eq!(
        r["timeline"]["faults"][0]["status"], "skipped",
        "{}",
        r["timeline"]
    );
}

/// No SLOs: the verdict says nothing was judged, never "PASS: all 0 SLOs met".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_without_slos_is_not_a_pass() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("noslo");
    let s = scenario_file(&dir, "s.toml", 20, 0.5, "");
    let out = dir.join("run");
    let o = run_url(&s, &srv.url(), &out, &["--quiet"]).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("NOT JUDGED: the scenario has no SLOs: nothing was judged (exit 0)"),
        "{err}"
    );
    assert!(!err.contains("PASS"), "{err}");
    assert_eq!(report(&out)["verdict"], "not_judged");
}

/// Insufficient data is "could not be judged", said once — not "breached", not twice — and
/// it still fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_data_is_not_judged_and_still_fails() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("insufficient");
    // 40 requests: a p99 needs 100.
    let s = scenario_file(
        &dir,
        "s.toml",
        40,
        1.0,
        "[slo]\nwhole = [\"p99 < 500ms\", \"errors < 50%\"]",
    );
    let out = dir.join("run");
    let o = run_url(&s, &srv.url(), &out, &[]).await;
    let err = text(&o.stderr);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let verdict = err.lines().find(|l| l.starts_with("FAIL: ")).unwrap();
    assert!(!verdict.contains("breached"), "{verdict}");
    assert!(
        verdict.contains("1 SLO could not be judged: `p99 < 500ms` (insufficient data: 40 samples in window whole, 100 needed)"),
        "{verdict}"
    );
    assert_eq!(verdict.matches("insufficient data").count(), 1, "{verdict}");
    assert!(verdict.contains("1 SLO met"), "{verdict}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(
        junit
            .matches("could not be judged (insufficient data")
            .count(),
        1,
        "{junit}"
    );
    assert!(!junit.contains("slo_breached"), "{junit}");
    assert!(!stdout.contains("breached"), "{stdout}");
    assert!(
        stdout.contains("| **could not be judged** | whole |"),
        "{stdout}"
    );
}

/// The README's first run (`smoke.toml`, also at `--time-scale 0.1`) passes on a healthy
/// service: it must not fail for lack of samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_smoke_example_passes_at_a_tenth_of_its_time() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("smoke");
    let out = dir.join("run");
    let o = chaos_async(vec![
        "run".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/examples/smoke.toml").into(),
        "--target-url".into(),
        srv.url(),
        "--time-scale".into(),
        "0.1".into(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    let err = text(&o.stderr);
    // Every SLO judged (no "could not be judged"): a pass on a healthy server. A p99 over 137
    // requests allows one slow response; a loaded CI machine may still produce two, so a
    // latency failure is tolerated — a lack of samples never.
    let r = report(&out);
    for (slo, status) in statuses(&r) {
        assert!(
            status == "pass" || status == "fail",
            "{slo}: {status}: {err}"
        );
        if status == "fail" {
            assert!(slo.contains("p99"), "{slo}: {err}");
        }
    }
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
}

/// `--out` holding a run is refused without `--force`; `--force` empties it first; never a
/// directory with other files, never one whose journal shows a fault still applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_out_directory_is_refused_unless_forced() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("reuse");
    let s = scenario_file(&dir, "s.toml", 20, 0.5, "[slo]\nwhole = [\"errors < 50%\"]");
    let out = dir.join("run");
    let run = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "run".into(),
            s.clone(),
            "--target-url".into(),
            srv.url(),
            "--quiet".into(),
            "--out".into(),
            out.display().to_string(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        chaos_async(a)
    };
    assert_eq!(run(&[]).await.status.code(), Some(0));
    let first = std::fs::read_to_string(out.join("report.json")).unwrap();
    // A journal left by an earlier run (every fault reverted) that this run must not append to.
    let rec = |step: &str| {
        format!(
            r#"{{"at":"2026-12-01T00:00:00Z","fault":"old","kind":"kill-nodes","step":"{step}","driver":"sandbox"}}"#
        )
    };
    std::fs::write(
        out.join("journal.jsonl"),
        format!("{}\n{}\n", rec("intent"), rec("reverted")),
    )
    .unwrap();

    let o = run(&[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).starts_with("error: --out "),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("already holds a run"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        first,
        "untouched"
    );

    let o = run(&["--force"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!out.join("journal.jsonl").exists(), "emptied first");
    assert_ne!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        first
    );

    // A fault still applied in the journal: --force would delete what rollback needs.
    std::fs::write(out.join("journal.jsonl"), format!("{}\n", rec("intent"))).unwrap();
    let o = run(&["--force"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("chaos rollback"),
        "{}",
        text(&o.stderr)
    );
    assert!(out.join("journal.jsonl").exists());

    // No journal, but report.json says a revert failed: that record is kept too.
    std::fs::remove_file(out.join("journal.jsonl")).unwrap();
    let mut r = report(&out);
    r["timeline"]["faults"] = serde_json::json!([{"name": "left", "status": "revert_failed"}]);
    std::fs::write(out.join("report.json"), r.to_string()).unwrap();
    let o = run(&["--force"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("(left)"), "{}", text(&o.stderr));

    // --force alone means nothing: refused, not ignored.
    let o = chaos_async(vec!["run".into(), s.clone(), "--force".into()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--out"), "{}", text(&o.stderr));

    // Not a run directory: refused even with --force, nothing deleted.
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let mut a: Vec<String> = vec![
        "run".into(),
        s.clone(),
        "--target-url".into(),
        srv.url(),
        "--quiet".into(),
        "--force".into(),
        "--out".into(),
        mine.display().to_string(),
    ];
    let o = chaos_async(a.clone()).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("files no run writes"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep me"
    );
    a.retain(|x| x != "--force");
    assert_eq!(chaos_async(a).await.status.code(), Some(2));
}

/// `chaos report RUN --scenario edited.toml` writes beside the run, never over its
/// report.json; an edit beyond the SLOs is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejudging_never_overwrites_the_run() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("rejudge");
    let slo = "[slo]\nwhole = [\"errors < 50%\"]";
    let s = scenario_file(&dir, "s.toml", 20, 0.5, slo);
    let out = dir.join("run");
    let o = run_url(&s, &srv.url(), &out, &["--quiet"]).await;
    assert_eq!(o.status.code(), Some(0));
    let original = std::fs::read_to_string(out.join("report.json")).unwrap();
    let run = out.to_str().unwrap();

    // Stricter SLOs: judged again, into RUN/rejudged-<time>/.
    let strict = scenario_file(
        &dir,
        "strict.toml",
        20,
        0.5,
        "[slo]\nwhole = [\"p50 < 1us\"]",
    );
    let o = chaos(&["report", run, "--scenario", &strict]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        original
    );
    let rejudged: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rejudged-"))
        .collect();
    assert_eq!(rejudged.len(), 1, "{rejudged:?}");
    let again = report(&out.join(&rejudged[0]));
    assert_eq!(again["verdict"], "fail");
    // --out elsewhere; never the run's own directory.
    let o = chaos(&["report", run, "--out", dir.join("re").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(dir.join("re/report.json").exists());
    let o = chaos(&["report", run, "--out", run]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        original
    );
    // Another load is another run: refused.
    let other = scenario_file(&dir, "other.toml", 40, 0.5, slo);
    let o = chaos(&["report", run, "--scenario", &other]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("load differ") && e.contains("only SLOs"), "{e}");
    assert!(
        e.starts_with("error: ") && !e.contains("error: error:"),
        "{e}"
    );
}

/// `chaos <cmd> | head -1`: a closed stdout is not a crash, and the exit code stays the
/// command's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_keeps_the_exit_code() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("pipe");
    let breach = scenario_file(&dir, "s.toml", 20, 0.5, "[slo]\nwhole = [\"p50 < 1us\"]");
    let url = srv.url();
    let out = dir.join("run");
    let cases: Vec<(Vec<String>, i32)> = vec![
        (vec!["list".into()], 0),
        (vec!["plan".into(), "az-outage".into()], 0),
        (vec!["schema".into()], 0),
        (
            vec![
                "run".into(),
                breach,
                "--target-url".into(),
                url,
                "--out".into(),
                out.display().to_string(),
            ],
            1,
        ),
    ];
    for (args, code) in cases {
        let o = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The reader goes away before the first line: every write hits a closed pipe.
            drop(child.stdout.take());
            (args, child.wait_with_output().unwrap())
        })
        .await
        .unwrap();
        let (args, o) = o;
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `--quiet` is only about progress; `--summary` chooses stdout; the verdict line always
/// reaches stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_and_summary_formats() {
    let srv = serve(Behavior::Delay(std::time::Duration::ZERO)).await;
    let dir = tmpdir("summary");
    let s = scenario_file(&dir, "s.toml", 20, 0.5, "[slo]\nwhole = [\"errors < 50%\"]");
    for (i, (extra, check)) in [
        (vec!["--quiet"], "md"),
        (vec!["--quiet", "--summary", "json"], "json"),
        (vec!["--summary", "none"], "none"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a: Vec<String> = vec![
            "run".into(),
            s.clone(),
            "--target-url".into(),
            srv.url(),
            "--out".into(),
            dir.join(format!("run{i}")).display().to_string(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        let o = chaos_async(a).await;
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(err.contains("PASS: all 1 SLO met (exit 0)"), "{err}");
        match check {
            "md" => assert!(out.starts_with("# chaos run `cli-test`"), "{out}"),
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["verdict"], "pass");
            }
            _ => assert!(out.is_empty(), "{out}"),
        }
    }
}

/// One `error:` prefix everywhere.
#[test]
fn errors_have_one_prefix() {
    for args in [
        vec!["report", "/nonexistent/run"],
        vec!["compare", "/nonexistent/a", "/nonexistent/b"],
        vec!["rollback", "/nonexistent/run"],
        vec!["check", "no-such-scenario-name"],
        vec!["run", "az-outage", "--time-scale", "0"],
    ] {
        let o = chaos(&args);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.starts_with("error: "), "{args:?}: {e}");
        assert!(!e.contains("error: error"), "{args:?}: {e}");
    }
}

/// `chaos plan --time-scale` shows bounds as they will be judged.
#[test]
fn plan_shows_scaled_bounds_as_judged() {
    let o = chaos(&["plan", "db-failover", "--time-scale", "0.1"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains("recovery < 2s (20s × 0.1)"), "{out}");
    assert!(out.contains("baseline[1s..-100ms]"), "{out}");
}

/// The CI examples give every run a directory of its own (a reused `--out` is refused).
#[test]
fn ci_examples_never_reuse_a_run_directory() {
    for f in ["github-actions-nightly.yml", "gitlab-ci.yml", "Jenkinsfile"] {
        let t = std::fs::read_to_string(format!("{}/ci/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let runs: Vec<&str> = t.lines().filter(|l| l.contains("chaos run ")).collect();
        assert!(!runs.is_empty(), "{f}");
        for l in runs {
            assert!(l.contains("--out \"$RUN_DIR\""), "{f}: {l}");
        }
        let def = t
            .lines()
            .find(|l| l.trim_start().starts_with("RUN_DIR"))
            .unwrap();
        assert!(
            ["github.run_id", "CI_JOB_ID", "BUILD_NUMBER"]
                .iter()
                .any(|id| def.contains(id)),
            "{f}: {def}"
        );
    }
}
