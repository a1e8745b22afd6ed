//! Parametrized scenarios (issue 9 §6, §4, §5, §1) through the `chaos` binary: `check` and
//! `plan` pass without values where `run` refuses them (exit 2), a path that does not exist is
//! never a shipped scenario, "did you mean" for shipped names, zones the sandbox lacks, `plan`
//! of several scenarios, the no-SLO warning, and `report` re-judging a run with the values it
//! ran with. The library's side is in tests/scenario_params.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::cli::{report, text, tmpdir};
use common::params::PARAM;

fn chaos_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chaos"));
    c.current_dir(dir)
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY");
    for name in ["PEAK", "SOAK", "TOKEN"] {
        c.env_remove(name);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// PARAM with `PEAK` and `SOAK` required (no default), written to `dir/name`.
fn write_required(dir: &Path, name: &str) -> String {
    let t = PARAM
        .replace("${env:PEAK:-200}", "${env:PEAK}")
        .replace("${env:SOAK:-50s}", "${env:SOAK}");
    std::fs::write(dir.join(name), t).unwrap();
    name.to_string()
}

#[test]
fn check_and_plan_pass_without_values_and_run_refuses_them_with_exit_2() {
    let dir = tmpdir("names-only");
    let f = write_required(&dir, "param.toml");
    let o = chaos_in(&dir, &["check", &f], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).trim(),
        "ok: param.toml (param: 2 stages, 1 request, 1 fault, 3 SLOs; not set: PEAK, SOAK)"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("warning: environment variable `PEAK` is not set"),
        "{err}"
    );
    assert!(err.contains("--> param.toml:5:13"), "{err}");

    // plan: exit 0, says what is unknown, prints no rate or time computed from a placeholder.
    let o = chaos_in(&dir, &["plan", &f], &[]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("unknown values"), "{out}");
    assert!(
        out.contains("PEAK             peak_rps at param.toml:5:13"),
        "{out}"
    );
    assert!(!out.contains("req/s"), "no computed rate: {out}");
    assert!(!out.contains("inject"), "no blast radius: {out}");
    // With the values: the full plan, and what was given is shown.
    let o = chaos_in(
        &dir,
        &[
            "plan",
            &f,
            "--env",
            "PEAK=100",
            "--set",
            "load.stages.1.for=30s",
        ],
        &[("SOAK", "9s")],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("hold 200.0 req/s (2x)"), "{out}");
    assert!(
        out.contains("override --set load.stages.1.for=30s"),
        "{out}"
    );
    assert!(out.contains("env      PEAK=100"), "{out}");
    assert!(out.contains("inject  POST /zones/a/down"), "{out}");

    // run: the values are needed; exit 2 before any traffic, naming file:line:col.
    let o = chaos_in(
        &dir,
        &[
            "run",
            &f,
            "--target-url",
            "http://127.0.0.1:9",
            "--skip-faults",
            "--quiet",
            "--out",
            "run",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("error: environment variable `PEAK` is not set (peak_rps reads it)\n --> param.toml:5:13"), "{err}");
    assert!(err.contains("--> param.toml:8:38"), "{err}");
    assert!(!dir.join("run").exists(), "nothing was started");
    // A bad --set on run: exit 2, positioned at the flag.
    let o = chaos_in(
        &dir,
        &[
            "run",
            &f,
            "--env",
            "PEAK=1",
            "--env",
            "SOAK=1s",
            "--set",
            "load.peak_rps=-5",
            "--target-url",
            "http://127.0.0.1:9",
            "--skip-faults",
            "--quiet",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--> --set load.peak_rps=-5:1:21"),
        "{}",
        text(&o.stderr)
    );
}

/// The users' peak as a parameter: `check` and `plan` count no users from a placeholder but
/// show the journeys; `run` refuses without it, and a `--set users.…` out of range is exit 2 at
/// the flag, before any user starts.
#[test]
fn a_users_peak_from_the_environment_is_never_counted_from_a_placeholder() {
    let dir = tmpdir("users-peak");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/journeys-redis-partition.toml"),
    )
    .unwrap();
    let t = shipped.replace("peak = 50\n", "peak = \"${env:PEAK}\"\n");
    assert_ne!(t, shipped);
    std::fs::write(dir.join("users.toml"), t).unwrap();
    let o = chaos_in(&dir, &["check", "users.toml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).trim(),
        "ok: users.toml (journeys-redis-partition: no [load], 1 fault, 9 SLOs; users in 2 journeys; not set: PEAK)"
    );
    let o = chaos_in(&dir, &["plan", "users.toml"], &[]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("PEAK             peak at users.toml:"),
        "{out}"
    );
    assert!(
        out.contains(
            "journey write-and-read: login POST /login → create POST /notes (durable) → read"
        ),
        "{out}"
    );
    assert!(!out.contains("users (closed"), "no user counts: {out}");
    // With the value: counted.
    let o = chaos_in(&dir, &["check", "users.toml", "--env", "PEAK=3"], &[]);
    assert!(
        text(&o.stdout).contains("up to 12 users in 2 journeys"),
        "{}",
        text(&o.stdout)
    );
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "users.toml",
            "--target-url",
            "http://127.0.0.1:9",
            "--skip-faults",
            "--quiet",
            "--out",
            "run",
        ];
        a.extend_from_slice(extra);
        chaos_in(&dir, &a, &[])
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("environment variable `PEAK` is not set (peak reads it)"),
        "{}",
        text(&o.stderr)
    );
    for (set, at, why) in [
        ("users.peak=0", ":1:18", "an integer from 1 to 100000"),
        ("users.think.max=100ms", ":1:23", "max is at least min"),
    ] {
        let o = run(&["--env", "PEAK=1", "--set", set]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("--> --set {set}{at}")), "{err}");
        assert!(err.contains(why), "{err}");
    }
    assert!(!dir.join("run").exists(), "nothing was started");
}

#[test]
fn a_path_that_does_not_exist_is_an_error_never_the_shipped_scenario() {
    let dir = tmpdir("paths");
    for (arg, hint) in [
        ("az-outage.toml", "no such file `az-outage.toml`; did you mean the shipped scenario `az-outage` (run `chaos run az-outage`)?"),
        ("scenarios/az-outage", "no such file `scenarios/az-outage`; did you mean the shipped scenario `az-outage`"),
        ("./peak-4x", "no such file `./peak-4x`; did you mean the shipped scenario `peak-4x`"),
    ] {
        for cmd in ["check", "plan"] {
            let o = chaos_in(&dir, &[cmd, arg], &[]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {arg}: {}", text(&o.stdout));
            assert!(text(&o.stderr).contains(hint), "{cmd} {arg}: {}", text(&o.stderr));
            assert!(o.stdout.is_empty(), "{cmd} {arg}: {}", text(&o.stdout));
        }
    }
    // The file next to the extension-less path is suggested.
    std::fs::create_dir_all(dir.join("scenarios")).unwrap();
    std::fs::write(dir.join("scenarios/mine.toml"), PARAM).unwrap();
    let o = chaos_in(&dir, &["check", "scenarios/mine"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("did you mean `scenarios/mine.toml`?"),
        "{}",
        text(&o.stderr)
    );
    // A file that exists is read; a bare name is the shipped scenario even if a file has it.
    let o = chaos_in(&dir, &["check", "scenarios/mine.toml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    std::fs::write(dir.join("peak-4x"), "not a scenario").unwrap();
    let o = chaos_in(&dir, &["check", "peak-4x", "./peak-4x"], &[]);
    assert!(
        text(&o.stdout).contains("ok: peak-4x (peak-4x:"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains("--> ./peak-4x:1:"),
        "the file, read: {}",
        text(&o.stderr)
    );
    // A bare name that is no shipped scenario but a file in this directory: the file.
    std::fs::write(dir.join("local"), PARAM).unwrap();
    let o = chaos_in(&dir, &["check", "local"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn did_you_mean_for_shipped_names_ignores_case() {
    let dir = tmpdir("case");
    let o = chaos_in(&dir, &["check", "AZ-Outage"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("no shipped scenario `AZ-Outage`; did you mean `az-outage`?"),
        "{err}"
    );
    assert!(err.contains("shipped: az-outage, db-failover"), "{err}");
    let o = chaos_in(&dir, &["plan", "Peak-4X"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("did you mean `peak-4x`?"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn check_and_plan_refuse_a_zone_the_sandbox_lacks() {
    let dir = tmpdir("zone");
    std::fs::write(
        dir.join("d.toml"),
        PARAM.replace("zone = \"a\"", "zone = \"d\""),
    )
    .unwrap();
    for cmd in ["check", "plan"] {
        let o = chaos_in(&dir, &[cmd, "d.toml"], &[]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(
            err.contains("error: the embedded sandbox has no zone \"d\"\n  --> d.toml:23:8"),
            "{cmd}: {err}"
        );
        assert!(err.contains("its zones: a, b, c"), "{cmd}: {err}");
        assert!(
            o.stdout.is_empty(),
            "{cmd}: no plan printed: {}",
            text(&o.stdout)
        );
    }
}

#[test]
fn plan_takes_several_scenarios_like_check() {
    let dir = tmpdir("plan-many");
    std::fs::write(
        dir.join("bad.toml"),
        PARAM.replace("zone = \"a\"", "zone = \"d\""),
    )
    .unwrap();
    let o = chaos_in(
        &dir,
        &["plan", "az-outage", "peak-4x", "--time-scale", "0.1"],
        &[],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("scenario az-outage"), "{out}");
    assert!(out.contains("scenario peak-4x"), "{out}");
    assert!(
        out.find("scenario az-outage") < out.find("scenario peak-4x"),
        "in order: {out}"
    );
    // One bad file: the others are still planned, exit 2.
    let o = chaos_in(&dir, &["plan", "az-outage", "bad.toml", "peak-4x"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o.stdout);
    assert!(
        out.contains("scenario az-outage") && out.contains("scenario peak-4x"),
        "{out}"
    );
    assert!(
        text(&o.stderr).contains("no zone \"d\""),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn check_counts_in_the_singular_and_warns_when_nothing_will_be_judged() {
    let dir = tmpdir("plural");
    let one = "name = \"one\"\n[load]\nstages = [{ hold = \"10/s\", for = \"5s\" }]\n\
               [[load.requests]]\nname = \"home\"\npath = \"/\"\n";
    std::fs::write(dir.join("one.toml"), one).unwrap();
    let o = chaos_in(&dir, &["check", "one.toml", "node-kill"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("ok: one.toml (one: 1 stage, 1 request, 0 faults, 0 SLOs)"),
        "{out}"
    );
    assert!(out.contains("1 fault,"), "node-kill has one fault: {out}");
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "warning: the scenario has no SLOs: nothing will be judged\n --> one.toml:1:1"
        ),
        "{err}"
    );
    assert_eq!(err.matches("warning:").count(), 1, "only one.toml: {err}");
    // The plan says `1 attempt`, not `1 attempt(s)`.
    let o = chaos_in(&dir, &["plan", "one.toml"], &[]);
    assert!(
        text(&o.stdout).contains("retry: 1 attempt, backoff"),
        "{}",
        text(&o.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_rejudges_a_run_with_the_values_it_ran_with() {
    let srv = common::serve(common::Behavior::Delay(std::time::Duration::from_millis(1))).await;
    let dir = tmpdir("report");
    let t = "name = \"rep\"\n[load]\npeak_rps = \"${env:PEAK}\"\ninterval = \"100ms\"\n\
             stages = [{ hold = \"1x\", for = \"${env:SOAK:-1s}\" }]\n\
             [[load.requests]]\nname = \"home\"\npath = \"/\"\n[slo]\nwhole = [\"errors < 50%\"]\n";
    std::fs::write(dir.join("rep.toml"), t).unwrap();
    let url = srv.url();
    let d = dir.clone();
    let o = tokio::task::spawn_blocking(move || {
        chaos_in(
            &d,
            &[
                "run",
                "rep.toml",
                "--env",
                "PEAK=20",
                "--target-url",
                &url,
                "--quiet",
                "--out",
                "run",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = report(&dir.join("run"));
    assert_eq!(r["scenario"]["params"]["env"]["PEAK"], "20");
    assert_eq!(r["scenario"]["params"]["env"]["SOAK"], "1s");
    // Re-judged from report.json alone, with no PEAK in the environment (and a different SOAK
    // that must not be used): the same scenario, the same verdict.
    let d = dir.clone();
    let o = tokio::task::spawn_blocking(move || {
        chaos_in(&d, &["report", "run", "--out", "rej"], &[("SOAK", "9s")])
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let again = report(&dir.join("rej"));
    assert_eq!(again["scenario"]["load"]["peak_rps"], 20.0);
    assert_eq!(again["scenario"]["params"], r["scenario"]["params"]);
    assert_eq!(
        again["scenario"]["load"]["stages"],
        r["scenario"]["load"]["stages"]
    );
    // Against the file (SLOs may be edited): its `${env:PEAK}` takes the recorded value too, so
    // the load is the one that ran.
    let d = dir.clone();
    let o = tokio::task::spawn_blocking(move || {
        chaos_in(
            &d,
            &["report", "run", "--scenario", "rep.toml", "--out", "rej2"],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        report(&dir.join("rej2"))["scenario"]["load"]["peak_rps"],
        20.0
    );
}
