//! Parametrized scenarios (issue 9 §6, §4, §5, §1), through the library: `${env:NAME:-default}`
//! in numeric and duration fields, `--set` / `--env` overrides validated like the file,
//! validation without values against `run` requiring them, secrets that `--set` cannot reach,
//! zones the target does not have, and the no-SLO warning. Diagnostics are snapshots of the
//! exact text `chaos check` prints. The same through the binary (`check`, `plan`, `run`,
//! `report`, path-versus-name resolution) is in tests/scenario_params_cli.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::params::PARAM;

use chaos::scenario::{parse_full, Diagnostics, EnvMode, Params, Scenario, Warning};

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
