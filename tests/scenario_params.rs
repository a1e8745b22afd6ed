//! Parametrized scenarios (issue 9 §6, §4, §5, §1): `${env:NAME:-default}` in numeric and
//! duration fields, `--set` / `--env` overrides validated like the file, validation without
//! values (`check`, `plan`, `report`) against `run` requiring them, path-versus-name resolution,
//! zones the target does not have, `plan` of several scenarios, and the no-SLO warning.
//! Diagnostics are snapshots of the exact text `chaos check` prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::cli::{report, text, tmpdir};

use chaos::scenario::{parse_full, Diagnostics, EnvMode, Params, Scenario, Warning};

/// Every numeric and duration field a scenario can parametrize, each with a default.
const PARAM: &str = r#"name = "param"
description = "one scenario for staging and production"

[load]
peak_rps = "${env:PEAK:-200}"
stages = [
  { ramp = "1x", over = "${env:RAMP:-10s}" },
  { hold = "${env:MULT:-2}x", for = "${env:SOAK:-50s}" },
]
max_in_flight = "${env:IN_FLIGHT:-500}"

[load.client]
timeout = "${env:TIMEOUT:-2s}"
retry = { attempts = "${env:ATTEMPTS:-3}", backoff = "${env:BACKOFF:-50ms}" }

[[load.requests]]
name = "list"
path = "/notes"

[[faults]]
name = "zone-a-down"
kind = "az-outage"
zone = "a"
at = "${env:AT:-20s}"
for = "${env:FOR:-20s}"

[sandbox]
nodes_per_zone = "${env:NODES:-3}"
failover_time = "${env:FAILOVER:-4s}"

[slo]
whole = ["p99 < 800ms", "errors < 2%"]
"during:zone-a-down" = ["p99 < 2s"]
"#;

/// The process environment a test pretends to have.
fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn params(mode: EnvMode, set: &[&str], env: &[&str]) -> Params {
    Params {
        set: set.iter().map(|s| s.to_string()).collect(),
        env: env.iter().map(|s| s.to_string()).collect(),
        mode,
        ..Params::default()
    }
}

fn load(
    text: &str,
    process: &'static [(&'static str, &'static str)],
    p: &Params,
) -> Result<Scenario, Diagnostics> {
    parse_full("param.toml", text, &env_of(process), None, p)
}

/// The diagnostics as `chaos check` prints them; panics if the input was accepted.
fn errors(text: &str, process: &'static [(&'static str, &'static str)], p: &Params) -> String {
    match load(text, process, p) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => d.to_string(),
    }
}

fn warnings(s: &Scenario) -> String {
    s.warnings
        .iter()
        .map(|w| Warning(w).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn env_defaults_fill_numeric_and_duration_fields_and_are_recorded() {
    let s = load(PARAM, &[], &Params::default()).unwrap();
    assert_eq!(s.load.peak_rps, 200.0);
    assert_eq!(s.load.stages[0].duration.as_secs(), 10);
    assert_eq!(s.load.stages[1].rps, 400.0);
    assert_eq!(s.load.stages[1].rate_text, "2x");
    assert_eq!(s.load.stages[1].duration.as_secs(), 50);
    assert_eq!(s.load.max_in_flight, 500);
    assert_eq!(s.load.client.timeout.as_secs(), 2);
    assert_eq!(s.load.client.retry.attempts, 3);
    assert_eq!(s.load.client.retry.backoff.as_millis(), 50);
    assert_eq!(s.faults[0].at.as_secs(), 20);
    assert_eq!(s.faults[0].duration.map(|d| d.as_secs()), Some(20));
    assert_eq!(s.sandbox.nodes_per_zone, Some(3));
    assert_eq!(s.sandbox.failover_time_s, Some(4.0));
    assert!(s.unknown.is_empty());
    // What ran is recorded (report.json keeps it): every numeric value and where it came from.
    assert_eq!(s.params.env["PEAK"], "200");
    assert_eq!(s.params.env["SOAK"], "50s");
    assert_eq!(s.params.env.len(), 12, "{:?}", s.params.env);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["params"]["env"]["AT"], "20s");

    // The process environment beats the default; --env beats the process environment.
    let process = &[("PEAK", "300"), ("MULT", "4"), ("SOAK", "1m")];
    let s = load(PARAM, process, &Params::default()).unwrap();
    assert_eq!((s.load.peak_rps, s.load.stages[1].rps), (300.0, 1200.0));
    assert_eq!(s.load.stages[1].duration.as_secs(), 60);
    let s = load(
        PARAM,
        process,
        &params(EnvMode::Require, &[], &["PEAK=100"]),
    )
    .unwrap();
    assert_eq!((s.load.peak_rps, s.load.stages[1].rps), (100.0, 400.0));
    assert_eq!(s.params.env["PEAK"], "100");
}

#[test]
fn a_bad_value_from_the_environment_is_reported_at_the_reference() {
    let process = &[("PEAK", "abc"), ("SOAK", "30"), ("NODES", "0")];
    insta::assert_snapshot!(errors(
        PARAM,
        process,
        &params(EnvMode::Require, &[], &["FOR=-1s"])
    ));
    // Checks that combine values name the reference too.
    insta::assert_snapshot!(
        "fault_outside_the_run",
        errors(PARAM, &[("AT", "1m"), ("FOR", "1m")], &Params::default())
    );
}

#[test]
fn overrides_change_the_tree_before_validation_and_are_recorded() {
    let set = [
        "load.peak_rps=400",
        "faults.zone-a-down.at=30s",
        "load.stages.1.for=5m",
        "load.requests.list.weight=7",
        "load.interval=500ms",
        "description=\"from the flag\"",
    ];
    let s = load(PARAM, &[], &params(EnvMode::Require, &set, &[])).unwrap();
    assert_eq!(s.load.peak_rps, 400.0);
    assert_eq!(s.load.stages[1].rps, 800.0, "2x of the overridden peak");
    assert_eq!(s.faults[0].at.as_secs(), 30);
    assert_eq!(s.load.stages[1].duration.as_secs(), 300);
    assert_eq!(s.load.requests[0].weight, 7);
    assert_eq!(
        s.load.interval.as_millis(),
        500,
        "a key the file does not set"
    );
    assert_eq!(s.description, "from the flag");
    assert_eq!(s.params.set, set);
    assert!(
        !s.params.env.contains_key("PEAK"),
        "the override replaced the reference"
    );
    // A value given by --set may itself read the environment.
    let s = load(
        PARAM,
        &[],
        &params(EnvMode::Require, &["load.peak_rps=${env:P2:-50}"], &[]),
    )
    .unwrap();
    assert_eq!(s.load.peak_rps, 50.0);
}

#[test]
fn override_errors_point_at_the_override() {
    let set = [
        "load.peak_rps=abc",
        "load.peak_rp=3",
        "faults.zone-a-dwn.at=1s",
        "faults.1.at=1s",
        "load.client.headers.Authorization=Bearer x",
        "faults.0.at=2 minutes",
        "name",
    ];
    let env = ["PEAK", "SECRET_TOKEN=s3cret"];
    let text = errors(PARAM, &[], &params(EnvMode::Require, &set, &env));
    assert!(!text.contains("s3cret"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn validation_without_values_warns_and_run_mode_refuses() {
    let t = PARAM
        .replace("${env:PEAK:-200}", "${env:PEAK}")
        .replace("${env:SOAK:-50s}", "${env:SOAK}")
        .replace(
            "timeout = \"${env:TIMEOUT:-2s}\"",
            "timeout = \"2s\"\nheaders = { Authorization = \"Bearer ${env:TOKEN}\" }",
        );
    let s = load(&t, &[], &params(EnvMode::NamesOnly, &[], &["PEK=1"])).unwrap();
    let names: Vec<(&str, &str)> = s
        .unknown
        .iter()
        .map(|u| (u.name.as_str(), u.field.as_str()))
        .collect();
    assert_eq!(names, [("PEAK", "peak_rps"), ("SOAK", "for")]);
    assert_eq!(s.unknown[0].place, "param.toml:5:13");
    insta::assert_snapshot!("names_only_warnings", warnings(&s));
    // `run`: the same file is invalid, every missing value named at its place.
    insta::assert_snapshot!("run_requires_values", errors(&t, &[], &Params::default()));
}

#[test]
fn a_variable_used_as_a_secret_and_as_a_number_is_refused() {
    let t = PARAM.replace(
        "timeout = \"${env:TIMEOUT:-2s}\"",
        "timeout = \"2s\"\nheaders = { Authorization = \"Bearer ${env:PEAK}\" }",
    );
    let e = errors(&t, &[("PEAK", "100")], &Params::default());
    assert!(
        e.contains("`PEAK` is used as a secret here and as a number at param.toml:5:13"),
        "{e}"
    );
    assert!(!e.contains("100"), "{e}");
}

#[test]
fn zones_the_target_lacks_are_refused_unless_no_faults_run_there() {
    let t = PARAM.replace("zone = \"a\"", "zone = \"d\"");
    insta::assert_snapshot!(errors(&t, &[], &Params::default()));
    // A plain --target-url runs no faults: the zone is not judged there.
    let no_zones = Params {
        zones: None,
        ..Params::default()
    };
    assert!(load(&t, &[], &no_zones).is_ok());
    // kill-nodes zones too, and a --set that names one.
    let kill = PARAM.replace(
        "kind = \"az-outage\"\nzone = \"a\"",
        "kind = \"kill-nodes\"\nzone = \"A\"",
    );
    let e = errors(&kill, &[], &Params::default());
    assert!(e.contains("the embedded sandbox has no zone \"A\""), "{e}");
    assert!(e.contains("did you mean \"a\"?"), "{e}");
    let e = errors(
        PARAM,
        &[],
        &params(EnvMode::Require, &["faults.0.zone=e"], &[]),
    );
    assert!(e.contains("--> --set faults.0.zone=e:1:21"), "{e}");
}

#[test]
fn no_slos_is_a_warning() {
    let (head, _) = PARAM.split_once("[[faults]]").unwrap();
    let s = load(head, &[], &Params::default()).unwrap();
    insta::assert_snapshot!(warnings(&s));
    // With SLOs: no such warning (PARAM's only one is about its deprecated [sandbox] table).
    let s = load(PARAM, &[], &Params::default()).unwrap();
    let w = warnings(&s);
    assert!(!w.contains("SLO"), "{w}");
    assert_eq!(s.warnings.len(), 1, "{w}");
    assert!(w.contains("[sandbox] in a scenario is deprecated"), "{w}");
}

// ---- the binary ----------------------------------------------------------------------------

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

/// `--set` cannot get round the secret check by setting a parent table whole, and its message
/// never prints the value; `expect.json` is a check, not a body.
#[test]
fn a_secret_set_inside_a_table_is_refused_too() {
    for set in [
        "load.client={ headers = { Authorization = \"Bearer hunter2\" } }",
        "load.requests.0={ name = \"r\", path = \"/\", body = \"hunter2\" }",
    ] {
        let text = errors(PARAM, &[], &params(EnvMode::Require, &[set], &[]));
        assert!(text.contains("not even inside a table"), "{set}: {text}");
    }
    let text = errors(
        PARAM,
        &[],
        &params(
            EnvMode::Require,
            &["load.requests.0.expect.json.equals=1"],
            &[],
        ),
    );
    assert!(
        !text.contains("cannot set") && !text.contains("cannot change"),
        "{text}"
    );
}
