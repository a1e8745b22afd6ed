//! `chaos run` on the embedded sandbox cut short, and the fault always reverted: on SIGINT and
//! SIGTERM (exit 130), after SIGKILL through `chaos rollback` or, with no rollback, by the
//! sandbox's lease running out, after a revert that cannot happen
//! (exit 4, with how to undo it), on an abort condition (exit 3). Like every sandbox run, each
//! takes its turn (`heavy()`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::cli::*;

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
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "zone_up"), 1, "the zone is back");
    assert_eq!(count(&ev, "sandbox_down"), 1, "the sandbox was stopped");
    assert_eq!(report(&out)["verdict"], "interrupted");
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

/// Nobody runs `chaos rollback`: a run killed with SIGKILL mid-fault leaves `chaos sandbox up`
/// whole once the fault's lease runs out (`--lease 2s`). While the run lived it renewed the
/// lease: the zone stayed down past it.
#[test]
fn sigkill_mid_fault_without_rollback_heals_when_the_lease_runs_out() {
    let _turn = heavy();
    let dir = tmpdir("lease");
    let (mut sb, urls) = sandbox_urls_with(&["--lease", "2s"]);
    let ctl = urls["control_url"].as_str().unwrap().to_string();
    assert_eq!(http("GET", &format!("{ctl}/resources"))["lease_ms"], 2000);

    let out = dir.join("run");
    // az-outage at 0.1x: zone a down from 6 s to 12 s.
    let mut run = run_cmd("az-outage", &["--sandbox-url", &ctl], &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_applied(&out.join("journal.jsonl"));
    std::thread::sleep(Duration::from_secs(3));
    let res = http("GET", &format!("{ctl}/resources"));
    assert_eq!(
        res["zones_down"],
        serde_json::json!(["a"]),
        "renewed: {res}"
    );
    assert_eq!(res["leases"][0]["by"], "fault:zone-a-down", "{res}");
    let expired = |e: &serde_json::Value| e["event"] == "lease_expired";
    let events = http("GET", &format!("{ctl}/events"));
    assert!(!events.as_array().unwrap().iter().any(expired), "{events}");

    run.kill().unwrap(); // SIGKILL: no cleanup, no rollback
    run.wait().unwrap();
    let killed = std::time::Instant::now();
    while http("GET", &format!("{ctl}/resources"))["zones_down"] != serde_json::json!([]) {
        assert!(
            killed.elapsed() < Duration::from_secs(6),
            "not healed 6 s after the kill, with a 2 s lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = http("GET", &format!("{ctl}/events"));
    let gone: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| expired(e))
        .collect();
    assert_eq!(gone.len(), 1, "{events}");
    assert_eq!(gone[0]["by"], "fault:zone-a-down");
    assert_eq!(gone[0]["release"], "POST /zones/a/up");
    assert_eq!(gone[0]["ok"], true);
    let res = http("GET", &format!("{ctl}/resources"));
    assert_eq!(res["leases"], serde_json::json!([]), "{res}");
    let running = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role"] == "app" && r["state"] == "running")
        .count();
    assert_eq!(running, 6, "every node is back: {res}");
    // The journal still says what was applied: a later rollback finds nothing held.
    let o = chaos(&["rollback", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    drop(sb.stdin.take());
    let _ = wait_exit(&mut sb, "stdin closed");
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
    assert_eq!(steps, ["intent", "applied", "confirmed", "failed"]);
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
    assert_eq!(
        steps,
        ["intent", "applied", "confirmed", "failed", "failed"]
    );
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
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "node_down"), 6);
    assert_eq!(count(&ev, "node_up"), 6, "every node started again");
    let r = report(&out);
    assert_eq!(r["verdict"], "aborted");
    assert_eq!(r["exit_code"], 3);
}

// The panic test (a panic mid-fault still reverts it) is in tests/run_injected.rs: the
// panics come from a driver and a progress sink injected through the library.

#[test]
fn sigint_mid_fault_with_users_on_goose_reverts_it_and_exits_130() {
    users_signal_mid_fault("INT");
}

#[test]
fn sigterm_mid_fault_with_users_on_goose_reverts_it_and_exits_130() {
    users_signal_mid_fault("TERM");
}

/// The users' journeys run on goose in the run's process; goose would take SIGINT for itself
/// (its killswitch only, then exit on a second one). The harness's handler is the one that
/// fires: the run stops, the cache partition is healed, exit 130.
fn users_signal_mid_fault(sig: &str) {
    let _turn = heavy();
    let dir = tmpdir(&format!("users-sig{sig}"));
    let out = dir.join("run");
    let mut child = run_cmd(
        "journeys-redis-partition",
        &["--set", "users.peak=10"],
        &out,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The cut is applied from 3 s to 5 s (scale 0.1): interrupt half a second in.
    let journal = out.join("journal.jsonl");
    wait_applied(&journal);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, sig);
    let status = wait_exit(&mut child, &format!("SIG{sig}"));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let steps: Vec<String> = lines(&journal)
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "cache_healed"), 1, "the cache is back");
    let r = report(&out);
    assert_eq!(r["verdict"], "interrupted");
    let rev = r["timeline"]["faults"][0]["reverted_at_s"]
        .as_f64()
        .unwrap();
    assert!(
        rev < 4.9,
        "reverted at the signal, before the scheduled 5 s: {rev}"
    );
    for j in r["journeys"].as_array().unwrap() {
        let n = |k: &str| j[k].as_u64().unwrap();
        let failed: u64 = j["failed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f[1].as_u64().unwrap())
            .sum();
        assert!(n("started") > 0, "{j}");
        assert_eq!(n("started"), n("completed") + n("canceled") + failed, "{j}");
    }
}
