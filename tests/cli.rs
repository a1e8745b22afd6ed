//! The `chaos` binary end to end, the commands that change nothing: check, plan, list, schema,
//! and bad input (exit 2). Runs: tests/run_url.rs, run_sandbox.rs, run_rollback.rs, run_injected.rs,
//! targets.rs; verdicts: tests/verdict.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli::*;
use common::schema::*;

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

#[test]
fn completions_for_each_shell_and_a_helpful_run_help() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = chaos(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o.stderr));
        let script = text(&o.stdout);
        assert!(
            script.contains("chaos") && script.contains("rollback"),
            "{shell}"
        );
    }
    let o = chaos(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("bash"), "lists what is accepted");
    let o = chaos(&["run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = text(&o.stdout);
    assert!(
        help.contains("Examples:") && help.contains("chaos run az-outage"),
        "{help}"
    );
    assert!(help.contains("130 interrupted"), "{help}");
}

/// A hurried user's game-day and app flags: `--console` without `--gameday`, and a version
/// that cannot be a header value, are refused at the flag (exit 2) before anything runs.
#[test]
fn console_without_gameday_and_a_bad_app_version_are_bad_input() {
    let dir = tmpdir("console-misuse");
    let s = scenario(&dir, 10, 1.0, "\"errors < 1%\"");
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        &s,
        "--quiet",
        "--console",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--gameday"), "{err}");
    assert!(!out.exists(), "nothing written");
    let o = chaos(&[
        "app",
        "up",
        "--database",
        "postgres://127.0.0.1:1/x",
        "--cache",
        "redis://127.0.0.1:1",
        "--app-version",
        "v 2",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("printable ASCII characters without spaces"),
        "{err}"
    );
}
