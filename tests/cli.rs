//! The `chaos` binary end to end: check / plan / list / schema / run against a real HTTP server on
//! 127.0.0.1, exit codes (0 pass, 1 SLO breached, 2 bad input, 130 interrupted) and the files a
//! run leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{serve, Behavior};

fn chaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

async fn chaos_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        chaos(&a)
    })
    .await
    .unwrap()
}

/// End-to-end runs on the sandbox drive hundreds of requests per second through a debug build:
/// two at once on a 2-core machine would measure the machine, not the system. They take turns.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `chaos run <scenario> --time-scale 0.1 --quiet [extra...] --out <out>`, to be finished and
/// started.
fn run_cmd(scenario: &str, extra: &[&str], out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chaos"));
    c.args(["run", scenario, "--time-scale", "0.1", "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out);
    c
}

/// [`run_cmd`] for the shipped az-outage on the embedded sandbox.
fn az_outage(out: &Path) -> Command {
    run_cmd("az-outage", &[], out)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaos-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small scenario: `rps` for `secs`, one GET, the given SLO list.
fn scenario(dir: &Path, rps: u32, secs: f64, slo: &str) -> String {
    let p = dir.join("s.toml");
    std::fs::write(
        &p,
        format!(
            r#"name = "cli-test"
description = "end-to-end test of the binary"
[load]
stages = [{{ hold = "{rps}/s", for = "{secs}s" }}]
interval = "100ms"
[load.client]
timeout = "1s"
[[load.requests]]
name = "home"
path = "/"
[slo]
whole = [{slo}]
"#
        ),
    )
    .unwrap();
    p.display().to_string()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn check_accepts_the_shipped_scenarios_and_rejects_bad_files_with_exit_2() {
    let o = chaos(&["check", "az-outage", "peak-4x"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("ok: az-outage"));

    let dir = tmpdir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[load]\nstages = [{ hold = \"fast\", for = \"1s\" }]\n",
    )
    .unwrap();
    let good = scenario(&dir, 10, 1.0, "\"errors < 1%\"");
    let o = chaos(&["check", &good, bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{}:3:20", bad.display())), "{err}");
    assert!(err.contains("invalid rate \"fast\""), "{err}");
    assert!(err.contains("missing required key `requests`"), "{err}");
    assert!(
        text(&o.stdout).contains("ok: "),
        "the good file is still checked"
    );

    let o = chaos(&["check", "no-such-scenario"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("az-outage"),
        "lists the shipped names"
    );
}

#[test]
fn plan_list_and_schema_change_nothing_and_exit_0() {
    let o = chaos(&["plan", "az-outage", "--time-scale", "0.1"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("zone-a-down"), "{out}");
    assert!(
        out.contains("800.0 req/s"),
        "rates stay under --time-scale: {out}"
    );
    assert!(out.contains("15.0s"), "durations shrink: {out}");
    assert!(
        out.contains("inject  POST /zones/a/down") && out.contains("revert  POST /zones/a/up"),
        "the blast radius: {out}"
    );

    // Overlapping kill-nodes faults pick different nodes; a later one, after both, may reuse.
    let dir = tmpdir("plan-overlap");
    let s = dir.join("overlap.toml");
    let faults = "[[faults]]\nname = \"k1\"\nkind = \"kill-nodes\"\nzone = \"a\"\nat = \"10s\"\nfor = \"20s\"\n\
                  [[faults]]\nname = \"k2\"\nkind = \"kill-nodes\"\nzone = \"a\"\nat = \"20s\"\nfor = \"20s\"\n\
                  [[faults]]\nname = \"k3\"\nkind = \"kill-nodes\"\nzone = \"a\"\nat = \"45s\"\nfor = \"5s\"\n";
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/peak-4x.toml"
    ))
    .unwrap();
    let (head, slo) = base.split_once("[slo]").unwrap();
    std::fs::write(&s, format!("{head}{faults}\n[slo]{slo}")).unwrap();
    let o = chaos(&["plan", s.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    for (f, node) in [("k1", "app-a-1"), ("k2", "app-a-2"), ("k3", "app-a-1")] {
        assert!(
            out.contains(&format!("{f} (kill-nodes) hits {node}")),
            "{f} -> {node}: {out}"
        );
    }
    // The data tier: a database instance by zone, the cache.
    let data = faults
        .replace(
            "[[faults]]\nname = \"k1\"\nkind = \"kill-nodes\"",
            "[[faults]]\nname = \"k1\"\nkind = \"kill-nodes\"\nrole = \"db\"",
        )
        .replace(
            "[[faults]]\nname = \"k2\"\nkind = \"kill-nodes\"\nzone = \"a\"",
            "[[faults]]\nname = \"k2\"\nkind = \"kill-nodes\"\nrole = \"cache\"",
        );
    std::fs::write(&s, format!("{head}{data}\n[slo]{slo}")).unwrap();
    let o = chaos(&["plan", s.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("k1 (kill-nodes) hits db-a"), "{out}");
    assert!(out.contains("POST /db/db-a/kill?by=fault:k1"), "{out}");
    assert!(out.contains("k2 (kill-nodes) hits cache"), "{out}");
    assert!(out.contains("POST /cache/start?by=fault:k2"), "{out}");
    // restart-nodes rolls app nodes or database instances; the cache is refused at plan time.
    let restart = "[[faults]]\nname = \"maint\"\nkind = \"restart-nodes\"\nrole = \"db\"\nat = \"10s\"\nfor = \"20s\"\n";
    std::fs::write(&s, format!("{head}{restart}\n[slo]{slo}")).unwrap();
    let o = chaos(&["plan", s.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("role=db"), "{out}");
    assert!(
        out.contains("POST /rolling-restart/cancel?by=fault:maint"),
        "{out}"
    );
    let restart = restart.replace("\"db\"", "\"cache\"");
    std::fs::write(&s, format!("{head}{restart}\n[slo]{slo}")).unwrap();
    let o = chaos(&["plan", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("app nodes and database instances only"),
        "{}",
        text(&o.stderr)
    );

    let o = chaos(&["list"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("peak-4x"));

    let o = chaos(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["title"], "chaos scenario");

    let o = chaos(&["plan", "az-outage", "--time-scale", "-1"]);
    assert_eq!(o.status.code(), Some(2));
    let o = chaos(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

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
    let o = chaos_async(vec![
        "run".into(),
        s,
        "--target-url".into(),
        srv.url(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ])
    .await;
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
    let o = chaos_async(vec![
        "run".into(),
        s,
        "--target-url".into(),
        srv.url(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ])
    .await;
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

#[test]
fn bad_targets_are_bad_input() {
    let dir = tmpdir("badtarget");
    let s = scenario(&dir, 10, 1.0, "\"errors < 1%\"");
    let o = chaos(&["run", &s, "--quiet", "--target-url", "ftp://127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let o = chaos(&[
        "run",
        &s,
        "--quiet",
        "--target-url",
        "http://127.0.0.1:1",
        "--sandbox-url",
        "http://127.0.0.1:2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // Nothing listens there: a clear error, exit 2, no traffic.
    let o = chaos(&["run", &s, "--quiet", "--sandbox-url", "http://127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no sandbox answers"),
        "{}",
        text(&o.stderr)
    );
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// The README's first command, shortened: `chaos run az-outage` with no target starts the
/// sandbox, takes zone a down at its time, brings it back, and passes.
#[test]
fn az_outage_runs_on_the_embedded_sandbox_and_always_reverts() {
    let _turn = heavy();
    let dir = tmpdir("az");
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        "az-outage",
        "--time-scale",
        "0.1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // The journal: intent, applied, reverted — in that order.
    let j = lines(&out.join("journal.jsonl"));
    let steps: Vec<&str> = j.iter().map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["intent", "applied", "reverted"]);
    // The sandbox's ground truth: the zone really went down and came back, its two nodes with it,
    // the load balancer noticed both ways, and the sandbox was stopped.
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "zone_down"), 1);
    assert_eq!(count(&ev, "zone_up"), 1);
    assert_eq!(count(&ev, "node_down"), 2);
    assert_eq!(count(&ev, "node_up"), 2);
    // (Zone a's two nodes; a health check timing out on a loaded machine elsewhere is not this
    // test's business.)
    let unhealthy_in_a = ev
        .iter()
        .filter(|e| e["event"] == "lb_target_unhealthy" && e["zone"] == "a")
        .count();
    assert_eq!(unhealthy_in_a, 2);
    assert_eq!(count(&ev, "sandbox_down"), 1);
    // The report: the fault injected at 6 s and reverted at 12 s (scaled), and its effect is
    // visible — requests retried or failed during the fault, none before it.
    let r = report(&out);
    assert_matches_schema(&r);
    let f = &r["timeline"]["faults"][0];
    assert_eq!(f["status"], "reverted");
    // The journal is in the report too, and shown in report.html.
    let steps: Vec<&str> = r["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["intent", "applied", "reverted"]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Fault journal</h2>"));
    assert!(html.contains("POST /zones/a/down?by=fault:zone-a-down"));
    let at = f["injected_at_s"].as_f64().unwrap();
    assert!((5.9..7.0).contains(&at), "injected at {at}");
    let series = r["series"].as_array().unwrap();
    let hit = |from: f64, to: f64| -> u64 {
        series
            .iter()
            .filter(|p| (from..to).contains(&p["t"].as_f64().unwrap()))
            .map(|p| p["retried"].as_u64().unwrap() + p["errors"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(hit(0.0, 5.5), 0, "no effect before the fault");
    assert!(hit(6.0, 9.0) > 0, "the outage shows in the numbers");
    // `chaos report` rebuilds the same reports from report.json alone...
    let before = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let o = chaos(&["report", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("summary.md")).unwrap(),
        before
    );
    assert_matches_schema(&report(&out));
    // `chaos compare`: the run against itself has no regression, phase by phase...
    let o = chaos(&["compare", out.to_str().unwrap(), out.to_str().unwrap()]);
    let both = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{both}");
    for w in ["baseline", "during:zone-a-down", "after:zone-a-down"] {
        assert!(
            both.contains(&format!("| {w} | all | `p99` |")),
            "{w}: {both}"
        );
    }
    // ...a copy whose during-fault p99 measured 3x worse is a regression (exit 1)...
    let worse = dir.join("worse");
    std::fs::create_dir_all(&worse).unwrap();
    let mut r = report(&out);
    for s in r["slo"].as_array_mut().unwrap() {
        if s["objective"]["text"] == "p99 < 1s" {
            let v = s["value"].as_f64().unwrap();
            s["value"] = serde_json::json!(v * 3.0 + 5_000.0);
        }
    }
    std::fs::write(worse.join("report.json"), r.to_string()).unwrap();
    let o = chaos(&["compare", out.to_str().unwrap(), worse.to_str().unwrap()]);
    let both = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{both}");
    assert!(
        both.contains("`p99 < 1s` |") && both.contains("**REGRESSION**"),
        "{both}"
    );
    // ...and a bound that is not a percentage is bad input.
    let o = chaos(&[
        "compare",
        out.to_str().unwrap(),
        worse.to_str().unwrap(),
        "--max-regression",
        "lots",
    ]);
    assert_eq!(o.status.code(), Some(2));
    // ...and re-judges edited SLOs on the recorded histograms.
    let strict = dir.join("strict.toml");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/az-outage.toml"
    ))
    .unwrap();
    std::fs::write(&strict, shipped.replace("\"p99 < 1s\"", "\"p99 < 1ms\"")).unwrap();
    let o = chaos(&[
        "report",
        out.to_str().unwrap(),
        "--scenario",
        strict.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("p99 < 1ms"), "{}", text(&o.stderr));
}

#[test]
fn sigint_mid_fault_reverts_it_and_exits_130() {
    signal_mid_fault("INT");
}

#[test]
fn sigterm_mid_fault_reverts_it_and_exits_130() {
    signal_mid_fault("TERM");
}

fn signal_mid_fault(sig: &str) {
    let _turn = heavy();
    let dir = tmpdir(&format!("sig{sig}-fault"));
    let out = dir.join("run");
    let mut child = az_outage(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The fault is applied from 6 s to 12 s: interrupt at 8 s.
    let journal = out.join("journal.jsonl");
    wait_applied(&journal);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, sig);
    let status = wait_exit(&mut child, &format!("SIG{sig}"));
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    // The verdict line reads cleanly (no "INTERRUPTED: interrupted"), and the fault's row in
    // the summary shows when it really was injected and reverted, not the schedule (6 s-12 s).
    let verdict = stderr
        .lines()
        .find(|l| l.starts_with("INTERRUPTED: "))
        .unwrap();
    assert!(
        verdict.contains("stopped at") && verdict.contains("faults rolled back"),
        "{verdict}"
    );
    assert!(
        !verdict.to_lowercase().contains("interrupted: interrupted"),
        "{verdict}"
    );
    let r = report(&out);
    let f = &r["timeline"]["faults"][0];
    let (inj, rev) = (
        f["injected_at_s"].as_f64().unwrap(),
        f["reverted_at_s"].as_f64().unwrap(),
    );
    assert!(
        rev < 11.0,
        "reverted at the signal, before the scheduled 12 s: {rev}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains(&format!("| {inj:.1}s | {rev:.1}s | fault `zone-a-down`")),
        "{summary}"
    );
    let steps: Vec<String> = lines(&journal)
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "reverted"]);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "zone_up"), 1, "the zone is back");
    assert_eq!(count(&ev, "sandbox_down"), 1, "the sandbox was stopped");
    assert_eq!(report(&out)["verdict"], "interrupted");
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

/// A plain HTTP/1.0 request on loopback (the control API), without any client library.
fn http(method: &str, url: &str) -> serde_json::Value {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let body = buf.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// `chaos sandbox up` started separately; a run against it killed with SIGKILL mid-fault; then
/// `chaos rollback` makes the sandbox whole again.
#[test]
fn sigkill_mid_fault_then_rollback_restores_the_sandbox() {
    let _turn = heavy();
    let dir = tmpdir("rollback");
    let (mut sb, ctl) = sandbox_up();

    let out = dir.join("run");
    let mut run = run_cmd("az-outage", &["--sandbox-url", &ctl], &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.join("journal.jsonl");
    wait_applied(&journal);
    run.kill().unwrap(); // SIGKILL: no cleanup at all
    run.wait().unwrap();
    assert_eq!(
        http("GET", &format!("{ctl}/resources"))["zones_down"],
        serde_json::json!(["a"])
    );

    let o = chaos(&["rollback", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("reverted: zone-a-down"),
        "{}",
        text(&o.stdout)
    );
    let res = http("GET", &format!("{ctl}/resources"));
    assert_eq!(res["zones_down"], serde_json::json!([]));
    let running = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role"] == "app" && r["state"] == "running")
        .count();
    assert_eq!(running, 6, "every node is back: {res}");
    // A second rollback has nothing left to do.
    let o = chaos(&["rollback", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("nothing to roll back"));

    drop(sb.stdin.take());
    let t = std::time::Instant::now();
    while sb.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "sandbox did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every shipped scenario, on the embedded sandbox at a tenth of its length: runs to completion,
/// passes, and leaves every fault reverted.
#[test]
fn every_shipped_scenario_passes_on_the_default_sandbox() {
    let _turn = heavy();
    let dir = tmpdir("shipped");
    for name in [
        "db-failover",
        "redis-partition",
        "node-kill",
        "rolling-deploy",
        "peak-4x",
    ] {
        let out = dir.join(name);
        let o = chaos(&[
            "run",
            name,
            "--time-scale",
            "0.1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        let r = report(&out);
        for f in r["timeline"]["faults"].as_array().unwrap() {
            assert_eq!(f["status"], "reverted", "{name}: {f}");
        }
        let ev = lines(&out.join("sandbox-events.jsonl"));
        assert_eq!(count(&ev, "sandbox_down"), 1, "{name}: sandbox stopped");
        // The sandbox's ground truth: the fault really happened and was really undone.
        let n = |kind: &str| count(&ev, kind);
        match name {
            "db-failover" => assert_eq!(
                (n("db_failover_start"), n("db_failover_end")),
                (1, 1),
                "{name}"
            ),
            "redis-partition" => assert_eq!(
                (n("cache_partitioned"), n("cache_healed")),
                (1, 1),
                "{name}"
            ),
            "node-kill" => {
                assert_eq!((n("node_down"), n("node_up")), (1, 1), "{name}");
                let killed = ev.iter().find(|e| e["event"] == "node_down").unwrap()["node"].clone();
                let unhealthy = ev
                    .iter()
                    .filter(|e| e["event"] == "lb_target_unhealthy" && e["node"] == killed)
                    .count();
                assert_eq!(unhealthy, 1, "{name}: the killed node dropped from the LB");
            }
            "rolling-deploy" => {
                assert_eq!(
                    (n("rolling_restart_start"), n("rolling_restart_end")),
                    (1, 1),
                    "{name}"
                );
                assert_eq!((n("node_down"), n("node_up")), (6, 6), "{name}");
            }
            _ => assert_eq!(
                (
                    n("node_down"),
                    n("db_failover_start"),
                    n("cache_partitioned")
                ),
                (0, 0, 0),
                "{name}: no fault"
            ),
        }
        // The harness's own measurements show the fault while it lasts, and not before.
        let Some(f) = r["timeline"]["faults"].as_array().unwrap().first() else {
            continue;
        };
        let (at, back) = (
            f["injected_at_s"].as_f64().unwrap(),
            f["reverted_at_s"].as_f64().unwrap(),
        );
        let series = r["series"].as_array().unwrap();
        let during = |p: &&serde_json::Value| (at..back).contains(&p["t"].as_f64().unwrap());
        let before = |p: &&serde_json::Value| p["t"].as_f64().unwrap() < at - 0.2;
        let hits = |w: &dyn Fn(&&serde_json::Value) -> bool| -> u64 {
            series
                .iter()
                .filter(w)
                .map(|p| p["retried"].as_u64().unwrap() + p["errors"].as_u64().unwrap())
                .sum()
        };
        let max_p50 = |w: &dyn Fn(&&serde_json::Value) -> bool| -> u64 {
            series
                .iter()
                .filter(w)
                .filter_map(|p| p["latency_us"]["p50"].as_u64())
                .max()
                .unwrap_or(0)
        };
        match name {
            "db-failover" | "node-kill" => {
                assert_eq!(hits(&before), 0, "{name}: no effect before the fault");
                assert!(hits(&during) > 0, "{name}: the fault shows in the numbers");
            }
            // Every cached read waits the 200 ms cache timeout.
            "redis-partition" => {
                assert!(max_p50(&before) < 100_000, "{name}: {}", max_p50(&before));
                assert!(max_p50(&during) > 150_000, "{name}: {}", max_p50(&during));
            }
            _ => {}
        }
    }
}

/// Async replication: the failover loses writes; the read-back finds exactly the writes the
/// sandbox says it lost, names them in the report, and `lost_writes == 0` fails the run.
#[test]
fn async_failover_lost_writes_are_found_exactly_and_fail_the_run() {
    let _turn = heavy();
    let dir = tmpdir("async");
    let out = dir.join("run");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/examples/db-failover-async.toml"
    );
    let o = chaos(&[
        "run",
        scenario,
        "--time-scale",
        "0.2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("lost_writes == 0"),
        "{}",
        text(&o.stderr)
    );
    let ev = lines(&out.join("sandbox-events.jsonl"));
    let mut truth: Vec<String> = ev
        .iter()
        .filter(|e| e["event"] == "db_writes_lost")
        .flat_map(|e| e["ids"].as_array().unwrap().iter().map(|i| i.to_string()))
        .collect();
    assert!(
        !truth.is_empty(),
        "async replication with a 2 s lag loses writes on failover"
    );
    let r = report(&out);
    assert_matches_schema(&r);
    let rb = &r["durable"]["read_back"];
    let mut found: Vec<String> = rb["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    truth.sort();
    found.sort();
    assert_eq!(
        found, truth,
        "the read-back finds exactly what the sandbox lost"
    );
    assert_eq!(rb["unverified"].as_array().unwrap().len(), 0);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("lost"), "{summary}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Lost ids: ") && html.contains(&format!("<code>{}</code>", found[0])),
        "report.html lists the lost ids"
    );
}

/// A revert that cannot happen (the sandbox died under the run): retried, then exit 4 with a
/// message naming what is still applied and the command that undoes it.
#[test]
fn a_failed_revert_exits_4_and_says_how_to_undo() {
    let _turn = heavy();
    let dir = tmpdir("revert-fails");
    let (mut sb, ctl) = sandbox_up();
    let out = dir.join("run");
    let run = run_cmd("node-kill", &["--sandbox-url", &ctl], &out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = out.join("journal.jsonl");
    wait_applied(&journal);
    // The sandbox goes away with the fault applied: the revert cannot reach it.
    sb.kill().unwrap();
    sb.wait().unwrap();
    let o = run.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("one-node-down"), "{err}");
    assert!(
        err.contains(&format!("chaos rollback {}", out.display())),
        "{err}"
    );
    let steps: Vec<String> = lines(&journal)
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "failed"]);
    assert_eq!(report(&out)["verdict"], "fault_error");
    // `chaos rollback` while the target is still unreachable: still applied, exit 4, and the
    // journal says so again (a later rollback will retry it).
    let o = chaos(&["rollback", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("STILL APPLIED: one-node-down"),
        "{}",
        text(&o.stderr)
    );
    let steps: Vec<String> = lines(&journal)
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "failed", "failed"]);
}

/// `[abort]`: every node killed, errors above 50% for 1 s stop the run early; the fault is
/// reverted at once and the exit code is 3.
#[test]
fn an_abort_condition_stops_the_run_reverts_and_exits_3() {
    let _turn = heavy();
    let dir = tmpdir("abort");
    let s = dir.join("abort.toml");
    std::fs::write(
        &s,
        r#"name = "abort-test"
[load]
stages = [{ hold = "100/s", for = "20s" }]
interval = "200ms"
[load.client]
timeout = "1s"
[[load.requests]]
name = "list"
path = "/notes"
[[faults]]
name = "everything-down"
kind = "kill-nodes"
count = "100%"
at = "2s"
for = "15s"
[abort]
when = ["errors > 50% for 1s"]
[slo]
whole = ["errors < 90%"]
"#,
    )
    .unwrap();
    let out = dir.join("run");
    let t = std::time::Instant::now();
    let o = chaos(&[
        "run",
        s.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(t.elapsed() < Duration::from_secs(15), "stopped early");
    assert!(
        text(&o.stderr).contains("errors > 50% for 1s"),
        "{}",
        text(&o.stderr)
    );
    let steps: Vec<String> = lines(&out.join("journal.jsonl"))
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "reverted"]);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "node_down"), 6);
    assert_eq!(count(&ev, "node_up"), 6, "every node started again");
    let r = report(&out);
    assert_eq!(r["verdict"], "aborted");
    assert_eq!(r["exit_code"], 3);
}

/// `chaos sandbox up` as a separate process: (its process, its control URL).
fn sandbox_up() -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut sb = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["sandbox", "up", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(sb.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let urls: serde_json::Value = serde_json::from_str(&line).unwrap();
    (sb, urls["control_url"].as_str().unwrap().to_string())
}

/// Wait (at most 20 s) until the journal records an applied fault.
fn wait_applied(journal: &Path) {
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(journal).is_ok_and(|j| j.contains("\"applied\"")) {
        assert!(t.elapsed() < Duration::from_secs(20), "fault never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A panic inside the run (the self-test hook panics mid-fault, in the load path and then in the
/// fault timeline itself): the fault is still reverted before the process dies with the panic.
#[test]
fn a_panic_mid_fault_still_reverts_it() {
    let _turn = heavy();
    for place in ["load", "faults"] {
        let dir = tmpdir(&format!("panic-{place}"));
        let out = dir.join("run");
        let o = az_outage(&out)
            .env("CHAOS_SELFTEST_PANIC_AFTER_S", "8")
            .env("CHAOS_SELFTEST_PANIC_IN", place)
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(101), "{place}: {err}");
        assert!(err.contains("self-test panic"), "{place}: {err}");
        assert!(
            err.contains("every applied fault was reverted"),
            "{place}: {err}"
        );
        let steps: Vec<String> = lines(&out.join("journal.jsonl"))
            .iter()
            .map(|r| r["step"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(steps, ["intent", "applied", "reverted"], "{place}");
        let ev = lines(&out.join("sandbox-events.jsonl"));
        assert_eq!(count(&ev, "zone_up"), 1, "{place}: zone a is back");
    }
}

/// The gate goes red for the right reason: the shipped db-failover scenario on a sandbox made
/// worse (a failover ten times longer) breaches its during-failover and recovery SLOs, exits 1,
/// and the JUnit report names them.
#[test]
fn a_worse_sandbox_fails_the_shipped_scenario_for_the_right_reason() {
    let _turn = heavy();
    let dir = tmpdir("worse");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/db-failover.toml"
    ))
    .unwrap();
    let s = dir.join("db-failover-slow.toml");
    std::fs::write(&s, shipped + "\n[sandbox]\nfailover_time = \"50s\"\n").unwrap();
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        s.to_str().unwrap(),
        "--time-scale",
        "0.1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let failed: Vec<&str> = junit
        .split("<testcase ")
        .filter(|c| c.contains("<failure"))
        .map(|c| c.split('"').nth(1).unwrap_or(""))
        .collect();
    // Writes fail for the whole (longer) failover: errors during it breach their bound...
    assert!(
        failed
            .iter()
            .any(|n| n.starts_with("during:writer-failover errors")),
        "{failed:?}"
    );
    // ...and the service is not back within the recovery bound.
    assert!(
        failed
            .iter()
            .any(|n| n.starts_with("during:writer-failover recovery")),
        "{failed:?}"
    );
    assert!(
        failed.iter().all(|n| !n.starts_with("baseline")),
        "the baseline was fine: {failed:?}"
    );
}

/// The subset of JSON Schema `reports/schema/report.v1.json` uses: type (one or several),
/// enum, required, properties, items, additionalProperties (as a schema), $ref to #/$defs.
fn schema_errors(
    v: &serde_json::Value,
    s: &serde_json::Value,
    root: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut errs = Vec::new();
    if let Some(r) = s["$ref"].as_str() {
        let name = r.trim_start_matches("#/$defs/");
        return schema_errors(v, &root["$defs"][name], root, at);
    }
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match &s["type"] {
        Value::String(t) if !type_ok(t) => errs.push(format!("{at}: expected {t}, found {v}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""))) => {
            errs.push(format!("{at}: expected one of {ts:?}, found {v}"))
        }
        _ => {}
    }
    if let Some(e) = s["enum"].as_array() {
        if !e.contains(v) {
            errs.push(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s["required"].as_array().into_iter().flatten() {
            let k = r.as_str().unwrap();
            if !obj.contains_key(k) {
                errs.push(format!("{at}: missing `{k}`"));
            }
        }
        for (k, val) in obj {
            let sub = &s["properties"][k];
            if !sub.is_null() {
                errs.extend(schema_errors(val, sub, root, &format!("{at}.{k}")));
            } else if s["additionalProperties"].is_object() {
                errs.extend(schema_errors(
                    val,
                    &s["additionalProperties"],
                    root,
                    &format!("{at}.{k}"),
                ));
            }
        }
    }
    if let (Some(items), true) = (v.as_array(), s["items"].is_object()) {
        for (i, it) in items.iter().enumerate() {
            errs.extend(schema_errors(it, &s["items"], root, &format!("{at}[{i}]")));
        }
    }
    errs
}

fn assert_matches_schema(report: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/reports/schema/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let errs = schema_errors(report, &schema, &schema, "$");
    assert!(
        errs.is_empty(),
        "report.json does not match its schema:\n{}",
        errs.join("\n")
    );
}

#[test]
fn the_schema_check_can_fail() {
    let bad = serde_json::json!({ "schema": "chaos.report/v0", "verdict": "maybe" });
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/reports/schema/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let errs = schema_errors(&bad, &schema, &schema, "$");
    assert!(
        errs.iter().any(|e| e.contains("missing `timeline`")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("\"maybe\"")), "{errs:?}");
}

/// The shipped db-failover scenario (run from a copy of its file, at half its length): the
/// measured recovery of the failover matches the sandbox's own account of how long it took,
/// within one recorder interval (0.5 s here; the issue asks for 1 s).
#[test]
fn measured_recovery_matches_the_failover_the_sandbox_records() {
    let _turn = heavy();
    let dir = tmpdir("recovery-truth");
    let s = dir.join("db-failover.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/db-failover.toml"),
        &s,
    )
    .unwrap();
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        s.to_str().unwrap(),
        "--time-scale",
        "0.5",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let ev = lines(&out.join("sandbox-events.jsonl"));
    let t = |kind: &str| {
        ev.iter()
            .find(|e| e["event"] == kind)
            .and_then(|e| e["t_s"].as_f64())
            .unwrap()
    };
    let truth = t("db_failover_end") - t("db_failover_start");
    let r = report(&out);
    let measured = r["recovery"][0]["from_inject_s"].as_f64().unwrap();
    // Within one interval (0.5 s here) below the truth — recovery cannot come before the
    // promotion — and, above it, one interval plus room for a loaded machine's stall inside
    // the 5 s healthy stretch, which moves recovery later (measured here: 3.0 s vs 3.003 s).
    assert!(
        measured >= truth - 0.5 && measured <= truth + 1.5,
        "measured recovery {measured} s, the sandbox's failover took {truth} s"
    );
    assert!(r["recovery"][0]["failed_requests"].as_u64().unwrap() > 0);
    // The scenario file is gone: `chaos report` re-judges from the text kept in report.json,
    // and appends the summary to GitHub's step summary when it is set, after what is there.
    std::fs::remove_file(&s).unwrap();
    let before = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let step = dir.join("step-summary.md");
    std::fs::write(&step, "## earlier step\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["report", out.to_str().unwrap()])
        .env("GITHUB_STEP_SUMMARY", &step)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("summary.md")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_to_string(&step).unwrap(),
        format!("## earlier step\n{before}")
    );
}

/// Send `kill -<sig>` to a child.
fn signal(child: &std::process::Child, sig: &str) {
    let k = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
}

/// Wait (at most 20 s) for a child to exit by itself; kill it and fail otherwise.
fn wait_exit(child: &mut std::process::Child, after: &str) -> std::process::ExitStatus {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("chaos did not stop after {after}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
