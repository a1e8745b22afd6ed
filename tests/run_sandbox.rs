//! `chaos run` end to end on the embedded sandbox: faults injected at their time, journaled and
//! reverted, every shipped scenario, lost writes, a gate that goes red for the right reason,
//! measured recovery. Rollback when a run is cut short (signals, SIGKILL then `chaos rollback`,
//! a failed revert, an abort) is in tests/run_rollback.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::cli::*;
use common::schema::*;

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
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
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
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Fault journal</h2>"));
    assert!(html.contains("POST /zones/a/down?by=fault:zone-a-down"));
    let at = f["injected_at_s"].as_f64().unwrap();
    assert!((5.9..7.0).contains(&at), "injected at {at}");
    // The sandbox's control plane as the driver polled it: the zone down from the inject
    // (seen within a poll, 0.5 s; a poll during the inject call may see it first) and up again
    // from the revert, beside the client's numbers.
    let events = r["timeline"]["events"].as_array().unwrap();
    let zone = |to: &str| {
        events
            .iter()
            .find(|e| e["what"] == "sandbox zone a" && e["to"] == to)
            .unwrap_or_else(|| panic!("no zone a {to} in {events:?}"))["at_s"]
            .as_f64()
            .unwrap()
    };
    assert!((at - 0.5..at + 1.0).contains(&zone("down")), "{events:?}");
    let reverted = f["reverted_at_s"].as_f64().unwrap();
    assert!(
        (reverted - 0.5..reverted + 1.0).contains(&zone("up")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["what"].as_str().unwrap().ends_with("(zone a)")
                && e["to"].as_str().is_some_and(|t| t.starts_with("stopped"))),
        "{events:?}"
    );
    assert!(html.contains("<h2>Control plane</h2>"));
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
    // (into a directory of its own: the run's files stay as they were written).
    let before = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let again = dir.join("again");
    assert_eq!(report_again(&out, &again), before);
    assert_matches_schema(&report(&again));
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
        "cache-failover",
        "db-latency",
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
            "cache-failover" => assert_eq!(
                (n("cache_failover_start"), n("cache_failover_end")),
                (1, 1),
                "{name}"
            ),
            // Set at the inject, cleared at the revert.
            "db-latency" => assert_eq!(n("link_latency"), 2, "{name}"),
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
            // Every database call waits the added 100 ms.
            "db-latency" => {
                assert!(max_p50(&before) < 50_000, "{name}: {}", max_p50(&before));
                assert!(max_p50(&during) > 90_000, "{name}: {}", max_p50(&during));
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
    // Its sandbox settings (async replication) are in the shipped target sandbox-async.
    let o = chaos(&[
        "run",
        scenario,
        "--target",
        "sandbox-async",
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
    let again = dir.join("again");
    let o = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "report",
            out.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ])
        .env("GITHUB_STEP_SUMMARY", &step)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(again.join("summary.md")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_to_string(&step).unwrap(),
        format!("## earlier step\n{before}")
    );
}

/// The shipped restore drill at a tenth of its length passes; its `rpo` is the age of the
/// snapshot the sandbox restored (the sandbox's own account), its lost writes exactly those the
/// sandbox lost, its recovery (the RTO) about the restore's time. On a target that snapshots
/// every 2 minutes (12 s scaled: none before the loss), everything acknowledged before the loss
/// is gone and `rpo` fails the run — the bound means something.
#[test]
fn dr_restore_measures_rpo_and_rto_and_fails_when_snapshots_are_too_rare() {
    let _turn = heavy();
    let dir = tmpdir("dr-restore");
    let run = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "dr-restore",
            "--time-scale",
            "0.1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        chaos(&args)
    };
    let slo = |r: &serde_json::Value, metric: &str| {
        r["slo"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["objective"]["metric"]["metric"] == metric)
            .unwrap()
            .clone()
    };
    let truth = |ev: &[serde_json::Value]| {
        let mut ids: Vec<String> = ev
            .iter()
            .filter(|e| e["event"] == "db_writes_lost")
            .flat_map(|e| e["ids"].as_array().unwrap().iter().map(|i| i.to_string()))
            .collect();
        ids.sort();
        ids
    };
    let lost = |r: &serde_json::Value| {
        let mut ids: Vec<String> = r["durable"]["read_back"]["lost"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };

    let out = dir.join("default");
    let o = run(&out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = report(&out);
    assert_matches_schema(&r);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    let start = ev
        .iter()
        .find(|e| e["event"] == "db_restore_start")
        .expect("the sandbox restored");
    let age = start["snapshot_age_s"].as_f64().expect("from a snapshot");
    let rpo = slo(&r, "rpo");
    assert_eq!(rpo["status"], "pass", "{rpo}");
    let measured = rpo["value"].as_f64().unwrap() / 1e6;
    // Writes are acknowledged every few ms at 4x peak: the newest one kept is within a few
    // of the snapshot. The loss is timed when the inject call returns, after the sandbox
    // took it: a loaded machine adds that call's time.
    assert!(
        (-0.3..1.0).contains(&(measured - age)),
        "rpo {measured:.3}s, the snapshot was {age:.3}s old at the loss"
    );
    assert!(!truth(&ev).is_empty(), "writes after the snapshot are lost");
    assert_eq!(
        lost(&r),
        truth(&ev),
        "the read-back finds exactly what the sandbox lost"
    );
    let rto = slo(&r, "recovery");
    assert_eq!(rto["status"], "pass", "{rto}");
    let rto = rto["value"].as_f64().unwrap() / 1e6;
    // The restore takes 2 s (20 s scaled); retries carry the last moments of it.
    assert!((1.5..4.0).contains(&rto), "recovery {rto:.2}s");

    let target = dir.join("rare-snapshots.toml");
    std::fs::write(&target, "kind = \"sandbox\"\nsnapshot_interval = \"2m\"\n").unwrap();
    let out = dir.join("rare");
    let o = run(&out, &["--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let r = report(&out);
    let rpo = slo(&r, "rpo");
    assert_eq!(rpo["status"], "fail", "{rpo}");
    // Everything acknowledged before the loss at 5.5 s is gone: the data ends at the start.
    assert!(rpo["value"].as_f64().unwrap() / 1e6 > 5.0, "{rpo}");
    let ev = lines(&out.join("sandbox-events.jsonl"));
    assert!(ev
        .iter()
        .find(|e| e["event"] == "db_restore_start")
        .unwrap()["snapshot_age_s"]
        .is_null());
    assert_eq!(lost(&r), truth(&ev));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("rpo &lt; 4.5s"), "{junit}");
}

/// The shipped `blue-green`: a drained cutover in steps passes with no error at all, the
/// sandbox's weights moving 10% → 50% → 100% → back to 0 and every user keeping their session
/// on green; the same cutover without draining cuts the requests in flight and fails
/// `errors == 0` — with exactly as many 502s in the report as it cut.
#[test]
fn blue_green_passes_with_draining_and_fails_errors_without() {
    let _turn = heavy();
    let dir = tmpdir("blue-green");
    let slo = |r: &serde_json::Value, window: &str, text: &str| {
        r["slo"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                let w = &s["objective"]["window"];
                let label = match w["fault"].as_str() {
                    Some(f) => format!("{}:{f}", w["type"].as_str().unwrap()),
                    None => w["type"].as_str().unwrap().to_string(),
                };
                label == window && s["objective"]["text"] == text
            })
            .unwrap_or_else(|| panic!("no {window} {text}"))["status"]
            .clone()
    };
    let cut_502s = |r: &serde_json::Value| -> u64 {
        r["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["status_counts"]["502"].as_u64().unwrap_or(0))
            .sum()
    };
    let run = |scenario: &str, out: &std::path::Path| {
        chaos(&[
            "run",
            scenario,
            "--time-scale",
            "0.1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
    };

    let out = dir.join("drained");
    let o = run("blue-green", &out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let r = report(&out);
    assert_matches_schema(&r);
    assert_eq!(slo(&r, "during:cutover", "errors == 0"), "pass");
    assert_eq!(slo(&r, "whole", "failed == 0"), "pass", "sessions survive");
    assert_eq!(cut_502s(&r), 0);
    let ev = lines(&out.join("sandbox-events.jsonl"));
    let weights: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "lb_weights")
        .map(|e| e["green"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [10, 50, 100, 0]);
    // The steps in the report's control-plane view too, as the driver polled them.
    let seen: Vec<String> = r["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "sandbox load balancer weights")
        .map(|e| e["to"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        seen.iter().any(|w| w == "blue 0%, green 100%")
            && seen.last().map(String::as_str) == Some("blue 100%, green 0%"),
        "{seen:?}"
    );
    let drained: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"] == "lb_group_drained")
        .collect();
    assert_eq!(drained.len(), 2, "blue at 100%, green at the rollback");
    assert!(drained.iter().all(|e| e["left"] == 0), "{drained:?}");
    assert_eq!(count(&ev, "lb_group_cut"), 0);
    // The versions series: each interval's responses by x-app-version — blue's v1 alone
    // before and after, both during the weighted steps, green's v2 alone at 100%; every
    // response of the load counted once.
    let series = r["series"].as_array().unwrap();
    let by = |p: &serde_json::Value, v: &str| p["responses_by"][v].as_u64().unwrap_or(0);
    let shape: Vec<(bool, bool)> = series
        .iter()
        .map(|p| (by(p, "v1") > 0, by(p, "v2") > 0))
        .filter(|&s| s != (false, false)) // an interval with no response (the run's tail)
        .collect();
    assert_eq!(shape.first(), Some(&(true, false)));
    assert_eq!(shape.last(), Some(&(true, false)));
    assert!(shape.contains(&(true, true)), "{shape:?}");
    assert!(shape.contains(&(false, true)), "{shape:?}");
    // Every node's answer carries its version (an ok one comes from a node); the load
    // balancer's own errors carry none.
    let tagged: u64 = series.iter().map(|p| by(p, "v1") + by(p, "v2")).sum();
    let of = |what: &dyn Fn(&serde_json::Value) -> u64| -> u64 {
        ["list-notes", "create-note"]
            .iter()
            .map(|n| what(&r["per_request"][n]))
            .sum()
    };
    let ok = of(&|p| p["outcomes"]["ok"].as_u64().unwrap());
    let answered = of(&|p| {
        p["status_counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    });
    assert!(
        ok > 0 && (ok..=answered).contains(&tagged),
        "{ok} <= {tagged} <= {answered}"
    );
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Responses by `x-app-version`"), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Responses by x-app-version"));
    // Re-rendered from report.json alone, the same counts.
    let md2 = report_again(&out, &dir.join("again"));
    let section = |m: &str| {
        m[m.find("## Responses by `x-app").unwrap()..]
            .split("\n## ")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(section(&md2), section(&md));

    let text_of = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/blue-green.toml"),
    )
    .unwrap();
    assert!(text_of.contains("\ndrain = true\n"));
    let file = dir.join("no-drain.toml");
    std::fs::write(
        &file,
        text_of.replace("\ndrain = true\n", "\ndrain = false\n"),
    )
    .unwrap();
    let out = dir.join("cut");
    let o = run(file.to_str().unwrap(), &out);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let r = report(&out);
    assert_eq!(slo(&r, "during:cutover", "errors == 0"), "fail");
    let ev = lines(&out.join("sandbox-events.jsonl"));
    let cut: Vec<&serde_json::Value> = ev.iter().filter(|e| e["event"] == "lb_group_cut").collect();
    assert_eq!(cut.len(), 2, "blue at 100%, green at the rollback");
    let cut_n: u64 = cut.iter().map(|e| e["cut"].as_u64().unwrap()).sum();
    // Every request the cuts answered 502 is in the report: the load's and the users' (their
    // steps are in the same recording).
    assert!(cut_n > 0, "{cut:?}");
    assert_eq!(cut_502s(&r), cut_n, "{cut:?}");
}
