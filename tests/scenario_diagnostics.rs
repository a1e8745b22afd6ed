//! The scenario parser's diagnostics, one snapshot per class of bad input (issue 2 §2), plus the
//! no-panic guarantees on hostile bytes. Snapshots are the exact text `chaos check` prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chaos::scenario::{self, parse_with, Diagnostics, Scenario};

const GOOD: &str = r#"name = "demo"
description = "a valid base the cases below break"

[load]
peak_rps = 100
stages = [
  { ramp = "1x", over = "10s" },
  { hold = "2x", for = "50s" },
]

[load.client]
timeout = "2s"
retry = { attempts = 3, backoff = "50ms", jitter = "full", on = ["connect", "503"], budget = "20%" }

[[load.requests]]
name = "list"
weight = 70
path = "/notes"

[[load.requests]]
name = "create"
weight = 30
method = "POST"
path = "/notes"
json = { text = "note {{seq}}" }
capture = { note_id = "$.id" }

[[faults]]
name = "zone-a-down"
kind = "az-outage"
zone = "a"
at = "20s"
for = "20s"

[slo]
whole = ["p99 < 800ms", "errors < 2%"]
"during:zone-a-down" = ["p99 < 2s"]
"#;

fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "s3cret-value".to_string())
}

fn parse(file: &str, text: &str) -> Result<Scenario, Diagnostics> {
    parse_with(file, text, &env, None)
}

/// The diagnostics as `chaos check` prints them; panics if the input was accepted.
fn errors(text: &str) -> String {
    match parse("demo.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => d.to_string(),
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "base scenario lacks {from:?}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn the_base_and_the_shipped_scenarios_are_valid() {
    let s = parse("demo.toml", GOOD).unwrap();
    assert_eq!(s.load.stages.len(), 2);
    assert_eq!(s.load.stages[1].rps, 200.0);
    assert_eq!(s.load.requests[1].method, "POST");
    assert_eq!(s.faults[0].at.as_secs(), 20);
    assert_eq!(s.slo.objectives.len(), 3);
    for name in scenario::builtin::names() {
        let s = scenario::load(name).unwrap();
        assert_eq!(s.name, name);
        assert_eq!(s.source, format!("builtin:{name}"));
    }
}

#[test]
fn every_scenario_file_in_the_repository_is_valid() {
    let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")];
    let (mut seen, mut targets) = (0, 0);
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml" || x == "json") {
                let arg = p.display().to_string();
                // scenarios/targets/ holds target files, checked as targets.
                if p.parent().is_some_and(|d| d.ends_with("targets")) {
                    if let Err(e) = chaos::target::load(&arg) {
                        panic!("{e}");
                    }
                    targets += 1;
                    continue;
                }
                match scenario::load(&arg) {
                    Err(e) => panic!("{e}"),
                    // A shipped scenario runs unchanged on every target: no [sandbox] table.
                    Ok(s) => assert!(s.warnings.is_empty(), "{arg}: {:?}", s.warnings),
                }
                seen += 1;
            }
        }
    }
    assert!(seen >= 3, "found {seen} scenario files");
    assert!(targets >= 3, "found {targets} target files");
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(errors(&with("peak_rps = 100", "peak_rps = = 100")));
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    let t = with("peak_rps = 100", "peak_rps = 100\nmax_in_flite = 5")
        .replace("timeout = \"2s\"", "timout = \"2s\"")
        + "\n[sandbx]\nnodes = 2\n";
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn wrong_types() {
    let t = with("weight = 70", "weight = \"70\"").replace("peak_rps = 100", "peak_rps = true");
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn bad_durations_rates_and_percentages() {
    let t = with("over = \"10s\"", "over = \"10\"")
        .replace("hold = \"2x\"", "hold = \"2 times\"")
        .replace("timeout = \"2s\"", "timeout = \"2 parsecs\"")
        .replace("budget = \"20%\"", "budget = 0.2");
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn sandbox_settings() {
    let ok = parse(
        "demo.toml",
        &(GOOD.to_string() + "\n[sandbox]\nreplication = \"async\"\nfailover_time = \"3s\"\n"),
    )
    .unwrap();
    assert_eq!(ok.sandbox.replication.as_deref(), Some("async"));
    assert_eq!(ok.sandbox.failover_time_s, Some(3.0));
    let t = GOOD.to_string()
        + "\n[sandbox]\nreplication = \"semi-sync\"\nfailover_time = 5\nnodes_per_zone = 0\n";
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn abort_conditions() {
    let ok = parse(
        "demo.toml",
        &(GOOD.to_string()
            + "\n[abort]\nwhen = [\"errors > 50% for 10s\", \"p99 > 5s for 30s\", \"amplification > 2 for 20s\"]\n"),
    )
    .unwrap();
    assert_eq!(ok.abort.len(), 3);
    assert_eq!(ok.abort[1].sustain.as_secs(), 30);
    let t = GOOD.to_string()
        + "\n[abort]\nwhen = [\"errors > 50%\", \"lost_writes > 0 for 5s\", \"errors > 50% for ever\"]\n";
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn weights_that_sum_to_zero() {
    let t = with("weight = 70", "weight = 0").replace("weight = 30", "weight = 0");
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn templates_with_unknown_variables() {
    let t = with("note {{seq}}", "note {{seqq}} {{note_idd}}")
        .replace(
            "path = \"/notes\"\n\n[[load",
            "path = \"/notes/{{note_id}}?t=${env:TOKEN}\"\nheaders = { X-R = \"{{rand_int(9,1)}}\" }\n\n[[load",
        );
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn faults_outside_the_run_and_unknown_kinds_and_fields() {
    let t = with("for = \"20s\"", "for = \"90s\"")
        + "\n[[faults]]\nname = \"db\"\nkind = \"db-failover\"\nzone = \"a\"\nat = \"70s\"\n\
           \n[[faults]]\nname = \"net\"\nkind = \"network-partition\"\nat = \"1s\"\n";
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn slo_expressions_metrics_and_windows() {
    let t = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "whole = [\"p99 < 800\", \"erors < 2%\", \"errors 2%\", \"throughput > 0.99\"]\n\
         \"during:zone-b-down\" = [\"p99 < 2s\"]\nwhloe = [\"p50 < 1s\"]\ndata = [\"p99 < 1s\", \"lost_writes == 0\"]\nrecovery = { \"zone-b-down\" = \"< 30s\", \"zone-a-down\" = \"soon\" }",
    );
    insta::assert_snapshot!(errors(&t));
}

#[test]
fn trimmed_windows() {
    let ok = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "\"baseline[10s..]\" = [\"p99 < 300ms\"]\n\"during:zone-a-down[..-5s]\" = [\"errors < 5%\"]\n\
         \"after:zone-a-down[-10s..]\" = [\"p99 < 1s\"]\ncreate = { \"whole[5s..55s]\" = [\"p95 < 1s\"] }",
    );
    let s = parse("demo.toml", &ok).unwrap();
    let labels: Vec<String> = s.slo.objectives.iter().map(|o| o.window_label()).collect();
    assert_eq!(
        labels,
        [
            "baseline[10s..]",
            "during:zone-a-down[..-5s]",
            "after:zone-a-down[-10s..]",
            "whole[5s..55s]",
            "during:zone-a-down"
        ]
    );
    let t = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "\"baseline[..]\" = [\"p99 < 1s\"]\n\"baseline[20s..10s]\" = [\"p99 < 1s\"]\n\
         \"baseline[10 seconds..]\" = [\"p99 < 1s\"]\n\"during:zone-b-down[5s..]\" = [\"p99 < 1s\"]\n\
         \"data[1s..]\" = [\"lost_writes == 0\"]\ninsufficient_data = \"ignore\"",
    );
    insta::assert_snapshot!(errors(&t));
    let allowed = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "whole = [\"p99 < 800ms\"]\ninsufficient_data = \"allow\"",
    );
    assert!(parse("demo.toml", &allowed).unwrap().slo.allow_insufficient);
    // Recovery bounds per request name.
    let per = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "create = { recovery = { \"zone-a-down\" = \"< 30s\" } }",
    );
    let s = parse("demo.toml", &per).unwrap();
    let o = &s.slo.objectives[0];
    assert_eq!(
        (o.request.as_deref(), o.metric, o.window_label().as_str()),
        (
            Some("create"),
            chaos::scenario::Metric::Recovery,
            "during:zone-a-down"
        )
    );
    assert!(!parse("demo.toml", GOOD).unwrap().slo.allow_insufficient);
}

#[test]
fn missing_required_keys_and_empty_file() {
    insta::assert_snapshot!("empty", errors(""));
    insta::assert_snapshot!(
        "no_requests",
        errors("name = \"x\"\n[load]\nstages = [{ hold = \"10/s\", for = \"1s\" }]\n")
    );
}

#[test]
fn json_scenarios_get_the_same_rules_and_positions() {
    let good = r#"{
  "name": "j",
  "load": {
    "stages": [{ "hold": "10/s", "for": "5s" }],
    "requests": [{ "name": "home", "path": "/" }]
  },
  "slo": { "whole": ["p99 < 1s"] }
}"#;
    let s = parse("j.json", good).unwrap();
    assert_eq!(s.load.stages[0].rps, 10.0);
    let bad = good
        .replace("\"5s\"", "\"5 secs\"")
        .replace("\"path\"", "\"paht\"");
    insta::assert_snapshot!("json_validation", {
        match parse("j.json", &bad) {
            Ok(_) => panic!("accepted"),
            Err(d) => d.to_string(),
        }
    });
    insta::assert_snapshot!("json_syntax", {
        match parse("j.json", &good.replace("\"j\",", "\"j\"")) {
            Ok(_) => panic!("accepted"),
            Err(d) => d.to_string(),
        }
    });
}

#[test]
fn every_error_in_a_file_is_reported_in_file_order() {
    let t = with("weight = 70", "weight = -1")
        .replace("kind = \"az-outage\"", "kind = \"az-outag\"")
        .replace("p99 < 800ms", "p99 < fast");
    let d = parse("demo.toml", &t).unwrap_err();
    assert_eq!(d.0.len(), 3, "{d}");
    let lines: Vec<usize> = d.0.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

#[test]
fn secrets_never_appear_in_errors_or_the_model() {
    let t = with(
        "timeout = \"2s\"",
        "timeout = \"2s\"\nheaders = { Authorization = \"Bearer ${env:TOKEN}\" }",
    );
    let s = parse("demo.toml", &t).unwrap();
    let shown = format!("{}", s.load.client.headers[0].value);
    assert_eq!(shown, "Bearer ***");
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    // A bad file holding a secret reference: the error shows the reference, not the value.
    let bad = t.replace("weight = 70", "weight = \"x\"");
    assert!(!errors(&bad).contains("s3cret"));
    // An unset variable is an error naming the variable.
    let unset = t.replace("env:TOKEN", "env:NOT_SET_ANYWHERE");
    assert!(errors(&unset).contains("`NOT_SET_ANYWHERE` is not set"));
}

#[test]
fn hostile_bytes_never_panic() {
    let deep_toml = format!("a = {}", "[".repeat(10 * 1024 * 1024));
    let deep_table = "x = { y = ".repeat(200_000);
    let deep_json = format!("{{\"a\": {}", "[".repeat(10 * 1024 * 1024));
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep.toml", deep_toml.into_bytes()),
        ("deep2.toml", deep_table.into_bytes()),
        ("deep.json", deep_json.into_bytes()),
        ("garbage.toml", garbage.clone()),
        ("garbage.json", garbage),
        ("nul.toml", vec![0; 1000]),
        ("bom.toml", b"\xef\xbb\xbfname = 1".to_vec()),
        ("arr.json", b"[1,2,3]".to_vec()),
        ("str.toml", b"\"just a string\"".to_vec()),
        (
            "big.toml",
            b"name = \"x\"\n[load]\npeak_rps = 1e308\nmax_in_flight = 99999999999999999999\n"
                .to_vec(),
        ),
    ];
    for (file, bytes) in cases {
        let d = scenario::parse_bytes(file, &bytes).unwrap_err();
        assert!(!d.0.is_empty(), "{file}");
        assert!(d.0.len() <= 51, "{file}: {} diagnostics", d.0.len());
        let text = d.to_string();
        assert!(
            text.len() < 64 * 1024,
            "{file}: {} bytes of errors",
            text.len()
        );
    }
}

#[test]
fn invalid_utf8() {
    let d = scenario::parse_bytes("bin.toml", b"name = \"a\"\nx = \"\xff\"\n").unwrap_err();
    insta::assert_snapshot!(d.to_string());
}

#[test]
fn schema_lists_exactly_the_keys_the_validator_accepts() {
    use chaos::scenario::validate::keys;
    let s = scenario::schema::json_schema();
    let props = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let sorted = |k: &[&str]| {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    let load = &s["properties"]["load"];
    let client = &load["properties"]["client"];
    let request = &load["properties"]["requests"]["items"];
    assert_eq!(props(&s), sorted(keys::TOP));
    assert_eq!(props(load), sorted(keys::LOAD));
    assert_eq!(props(client), sorted(keys::CLIENT));
    assert_eq!(props(&client["properties"]["retry"]), sorted(keys::RETRY));
    assert_eq!(props(request), sorted(keys::REQUEST));
    assert_eq!(
        props(&request["properties"]["durable"]),
        sorted(keys::DURABLE)
    );
    let stages = &load["properties"]["stages"]["items"]["oneOf"];
    assert_eq!(props(&stages[0]), sorted(keys::RAMP));
    assert_eq!(props(&stages[1]), sorted(keys::HOLD));
    let users = &s["properties"]["users"];
    assert_eq!(props(users), sorted(keys::USERS));
    assert_eq!(props(&users["properties"]["think"]), sorted(keys::THINK));
    assert_eq!(props(&users["properties"]["client"]), sorted(keys::CLIENT));
    let journey = &users["properties"]["journeys"]["items"];
    assert_eq!(props(journey), sorted(keys::JOURNEY));
    assert_eq!(
        props(&journey["properties"]["steps"]["items"]),
        sorted(keys::STEP)
    );
    let plan = &users["properties"]["plan"]["items"]["oneOf"];
    assert_eq!(props(&plan[0]), sorted(keys::RAMP));
    assert_eq!(props(&plan[1]), sorted(keys::HOLD));
    let variants = s["properties"]["faults"]["items"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(variants.len(), keys::FAULT_KINDS.len());
    for (v, (kind, extra)) in variants.iter().zip(keys::FAULT_KINDS) {
        let want: Vec<&str> = keys::FAULT.iter().chain(*extra).copied().collect();
        assert_eq!(props(v), sorted(&want), "{kind}");
    }
}

/// A generated scenario with one 200,000-character line and an error in its middle: the
/// diagnostic shows a window of that line, not all of it, and the caret is on the error.
#[test]
fn a_huge_line_is_shown_as_a_window_around_the_error() {
    let many = r#"{ hold = "1x", for = "1s" }, "#.repeat(3_300);
    let bad = r#"{ hold = "1x", for = "2 parsecs" }, "#;
    let line = format!("stages = [{many}{bad}{many}]");
    assert!(line.len() > 190_000);
    let t = with(
        "stages = [\n  { ramp = \"1x\", over = \"10s\" },\n  { hold = \"2x\", for = \"50s\" },\n]",
        &line,
    );
    let e = errors(&t);
    assert!(e.len() < 1_000, "{} bytes:\n{e}", e.len());
    assert!(e.contains("unknown duration unit `parsecs`"), "{e}");
    // The caret is under the bad value: the same column in the shown line and the caret line.
    let lines: Vec<&str> = e.lines().collect();
    let src = lines
        .iter()
        .position(|l| l.contains("…"))
        .expect("a cut line");
    let (shown, caret) = (lines[src], lines[src + 1]);
    let at = caret.chars().position(|c| c == '^').unwrap();
    let rest: String = shown.chars().skip(at).collect();
    assert!(rest.starts_with("\"2 parsecs\""), "{shown}\n{caret}");
    assert_eq!(caret.matches('^').count(), "\"2 parsecs\"".len());
    let col = t.lines().nth(5).unwrap().find("\"2 parsecs\"").unwrap() + 1;
    assert!(e.contains(&format!("demo.toml:6:{col}")), "{e}");
}

/// An AZ outage's parts: some of network, instances, asg, db, cache; all when left out (and
/// then not written into the parsed model, so older reports' digests still match).
#[test]
fn az_outage_parts_are_some_of_five_and_default_to_all() {
    use chaos::scenario::{AzPart, FaultKind};
    let zone = "zone = \"a\"\nat = \"20s\"";
    let s = parse("demo.toml", GOOD).unwrap();
    let FaultKind::AzOutage { parts, .. } = &s.faults[0].kind else {
        panic!("{:?}", s.faults[0].kind)
    };
    assert!(parts.is_all());
    let json = serde_json::to_value(&s.faults[0]).unwrap();
    assert!(json["kind"].get("parts").is_none(), "{json}");
    let some = with(
        zone,
        "zone = \"a\"\nparts = [\"network\", \"db\", \"network\"]\nat = \"20s\"",
    );
    let s = parse("demo.toml", &some).unwrap();
    let FaultKind::AzOutage { parts, .. } = &s.faults[0].kind else {
        panic!()
    };
    assert!(parts.has(AzPart::Network) && parts.has(AzPart::Db) && !parts.has(AzPart::Asg));
    assert_eq!(parts.missing(), ["instances", "asg", "cache"]);
    assert_eq!(
        serde_json::to_value(&s.faults[0]).unwrap()["kind"]["parts"],
        serde_json::json!(["network", "db"])
    );
    let e = errors(&with(zone, "zone = \"a\"\nparts = []\nat = \"20s\""));
    assert!(e.contains("parts is empty"), "{e}");
    assert!(e.contains("network, instances, asg, db, cache"), "{e}");
    let e = errors(&with(
        zone,
        "zone = \"a\"\nparts = [\"netwrk\"]\nat = \"20s\"",
    ));
    assert!(e.contains("demo.toml:"), "{e}");
    assert!(e.contains("netwrk"), "{e}");
    assert!(e.contains("network"), "{e}");
    // `parts` belongs to az-outage only.
    let e = errors(&(GOOD.to_string()
        + "\n[[faults]]\nname = \"db\"\nkind = \"db-failover\"\nparts = [\"db\"]\nat = \"30s\"\n"));
    assert!(e.contains("parts"), "{e}");
}

/// `freeze` and `command` faults, and `restart` on kill-nodes (written into the model only when
/// false, so older scenarios' digests still match).
#[test]
fn freeze_command_and_restart_are_validated_with_positions() {
    use chaos::scenario::{Count, FaultKind};
    let add = |body: &str| format!("{GOOD}\n[[faults]]\nname = \"x\"\nat = \"30s\"\n{body}\n");
    let s = parse(
        "demo.toml",
        &add("kind = \"freeze\"\nrole = \"db\"\ncount = \"50%\""),
    )
    .unwrap();
    assert!(
        matches!(&s.faults[1].kind, FaultKind::Freeze { count: Count::Percent(p), .. } if *p == 50.0),
        "{:?}",
        s.faults[1].kind
    );
    let s = parse(
        "demo.toml",
        &add("kind = \"command\"\ncommand = \"drain-a\""),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&s.faults[1].kind).unwrap(),
        serde_json::json!({"kind": "command", "command": "drain-a"})
    );
    let s = parse("demo.toml", &add("kind = \"kill-nodes\"")).unwrap();
    assert!(serde_json::to_value(&s.faults[1].kind)
        .unwrap()
        .get("restart")
        .is_none());
    let s = parse("demo.toml", &add("kind = \"kill-nodes\"\nrestart = false")).unwrap();
    assert_eq!(
        serde_json::to_value(&s.faults[1].kind).unwrap()["restart"],
        false
    );
    let text = add("kind = \"kill-nodes\"\nrestart = \"no\"");
    let e = errors(&text);
    let line = text.lines().position(|l| l.starts_with("restart")).unwrap() + 1;
    assert!(
        e.contains(&format!("demo.toml:{line}:11")) && e.contains("true or false"),
        "{e}"
    );
    let e = errors(&add("kind = \"command\""));
    assert!(e.contains("missing required key `command`"), "{e}");
    let e = errors(&add("kind = \"freeze\"\nmode = \"stop\""));
    assert!(e.contains("mode"), "{e}");
}

/// `durable.same` compares a value of the write's JSON body: accepted with `json`, refused
/// with a raw `body`, at its place.
#[test]
fn durable_same_needs_a_json_body() {
    let ok = with(
        "capture = { note_id = \"$.id\" }",
        "durable = { id = \"$.id\", read = \"GET /notes/{id}\", same = \"$.text\" }",
    );
    let s = parse("demo.toml", &ok).unwrap();
    let d = s.load.requests[1].durable.as_ref().unwrap();
    assert_eq!(d.same.as_ref().unwrap().text, "$.text");
    let e = errors(&ok.replace(
        "json = { text = \"note {{seq}}\" }",
        "body = \"note {{seq}}\"",
    ));
    assert!(
        e.contains("demo.toml:26:59")
            && e.contains("durable `same` compares a value of the write's JSON body"),
        "{e}"
    );
}

/// `[users]` alone: the closed model's plan in multiples of the peak, think time, journeys whose
/// steps see `{{user}}` and what earlier steps captured; the run is as long as the plan.
const USERS: &str = r#"name = "journeys"

[users]
peak = 50
plan = [ { ramp = "1x", over = "20s" }, { hold = "4x", for = "2m" }, { ramp = "0x", over = "10s" } ]
think = { min = "500ms", max = "2s" }

[[users.journeys]]
name = "write-and-read"
weight = 3
steps = [
  { name = "login",  method = "POST", path = "/login", json = { user = "u{{user}}" } },
  { name = "create", method = "POST", path = "/notes", json = { text = "{{uuid}}" }, capture = { id = "$.id" }, durable = { id = "$.id", read = "GET /notes/{id}" } },
  { name = "read",   method = "GET",  path = "/notes/{{id}}" },
]

[[users.journeys]]
name = "browse"
steps = [ { name = "list", path = "/notes" } ]

[slo]
whole = ["errors < 1%"]
"write-and-read:read" = { whole = ["p95 < 3s"] }
"#;

#[test]
fn a_users_section_is_read_into_a_plan_of_users_and_journeys() {
    let s = parse("demo.toml", USERS).unwrap_or_else(|d| panic!("{d}"));
    assert!(s.load.is_empty(), "no [load]: no open-model requests");
    let u = s.users.as_ref().expect("users");
    let plan: Vec<(u32, u64)> = u
        .plan
        .iter()
        .map(|p| (p.users, p.duration.as_secs()))
        .collect();
    assert_eq!(plan, [(50, 20), (200, 120), (0, 10)]);
    assert_eq!(u.max_users(), 200);
    assert_eq!(
        (u.think_min.as_millis(), u.think_max.as_millis()),
        (500, 2000)
    );
    assert_eq!(
        s.duration().as_secs(),
        150,
        "the run is as long as the user plan"
    );
    assert_eq!(
        u.step_names(),
        [
            "write-and-read:login",
            "write-and-read:create",
            "write-and-read:read",
            "browse:list"
        ]
    );
    assert_eq!((u.journeys[0].weight, u.journeys[1].weight), (3, 1));
    let create = &u.journeys[0].steps[1];
    let d = create.durable.as_ref().expect("a step's durable write");
    assert_eq!(
        (d.read_method.as_str(), d.read_path.as_str()),
        ("GET", "/notes/{id}")
    );
    assert!(u.journeys[0].steps[0].durable.is_none());
    assert_eq!(u.client.timeout.as_secs(), 10, "the default client");
    assert_eq!(
        s.slo.objectives[1].request.as_deref(),
        Some("write-and-read:read"),
        "a step's SLOs are keyed `journey:step`"
    );
    // With [load] too, both run: the run is as long as the longer, and the users' client is
    // [load.client] when they have none of their own.
    let both = format!(
        "{}\n[load]\npeak_rps = 10\nstages = [{{ hold = \"1x\", for = \"3m\" }}]\n         [load.client]\ntimeout = \"2s\"\n[[load.requests]]\nname = \"list\"\npath = \"/notes\"\n",
        USERS.replace("[slo]\nwhole = [\"errors < 1%\"]\n\"write-and-read:read\" = { whole = [\"p95 < 3s\"] }\n", "")
    );
    let s = parse("demo.toml", &both).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(s.duration().as_secs(), 180);
    assert_eq!(s.users.as_ref().unwrap().client.timeout.as_secs(), 2);
}

#[test]
fn a_bad_users_section_is_refused_at_each_mistake_with_what_is_accepted() {
    let bad = USERS
        .replace("peak = 50\n", "")
        .replace("think = { min = \"500ms\", max = \"2s\" }", "think = { min = \"3s\", max = \"2s\" }\nthinks = 1")
        .replace("path = \"/notes/{{id}}\"", "path = \"/notes/{{idd}}\", capture = { user = \"$.u\" }")
        .replace("{ name = \"list\", path = \"/notes\" }", "{ name = \"list\", method = \"OPTIONS\", path = \"/notes\", weight = 2, durable = { id = \"$.id\", read = \"GET /n\" } }");
    let e = errors(&bad);
    let has = |needle: &str| assert!(e.contains(needle), "no `{needle}` in:\n{e}");
    has("demo.toml:4:19");
    has("users \"1x\" is a multiple of peak, but [users] sets no peak");
    has("unknown key `thinks` in [users]");
    has("did you mean `think`?");
    has("think max 2s is below min 3s");
    has("unknown template variable `{{idd}}`");
    has("did you mean `{{id}}`?");
    has("a journey step cannot capture `user`");
    has("a journey step cannot send OPTIONS");
    has("unknown key `weight` in a journey step");
    // A step's durable write is checked as a request's is.
    has("invalid read \"GET /n\"");
    // A step cannot use what only a later step captures.
    let later = USERS.replace("path = \"/login\"", "path = \"/login/{{id}}\"");
    let e = errors(&later);
    assert!(e.contains("unknown template variable `{{id}}`"), "{e}");
    assert!(e.contains("demo.toml:12:46"), "{e}");
    assert!(
        !e.contains("unknown SLO window"),
        "the steps are still known to [slo]: {e}"
    );
    // Neither [load] nor [users]: one error that names both.
    let e = errors("name = \"x\"\n");
    assert!(
        e.contains("missing required key `load` (or `users`)"),
        "{e}"
    );
    let zero = USERS
        .replace("weight = 3", "weight = 0")
        .replace("name = \"browse\"", "name = \"browse\"\nweight = 0");
    assert!(errors(&zero).contains("the journey weights sum to 0"));
    // Journey SLOs: a journey that exists, its own metrics, no recovery.
    let slos = USERS.replace(
        "whole = [\"errors < 1%\"]",
        "\"journey:write-and-red\" = [\"failed < 1%\"]\n\"journey:browse\" = [\"throughput > 99%\", \"failed < 2%\", \"p95 < 3s\"]\n\"journey:write-and-read\" = { recovery = { x = \"< 1s\" } }",
    );
    let e = errors(&slos);
    let has = |needle: &str| assert!(e.contains(needle), "no `{needle}` in:\n{e}");
    has("SLOs for journey `write-and-red`, which is no journey of this scenario");
    has("did you mean `journey:write-and-read`?");
    has("`throughput > 99%` is no SLO of a journey");
    has("a journey has no `recovery` SLOs");
    assert_eq!(e.matches("error:").count(), 3, "{e}");
    let ok = USERS.replace(
        "whole = [\"errors < 1%\"]",
        "\"journey:browse\" = [\"failed < 2%\", \"p95 < 3s\"]",
    );
    let s = parse("demo.toml", &ok).unwrap_or_else(|d| panic!("{d}"));
    let o = &s.slo.objectives[0];
    assert_eq!(
        (o.journey(), o.metric, o.bound),
        (Some("browse"), chaos::scenario::Metric::Errors, 0.02)
    );
    assert_eq!(o.text, "failed < 2%");
    let dup = USERS.replace("name = \"browse\"", "name = \"during\"");
    assert!(errors(&dup).contains("journey name \"during\" is reserved"));
}

/// The restore drill's SLOs: `rpo` is a duration judged on the read-back (the `data` window
/// only, never an abort condition), and it needs a `db-restore` fault to measure.
#[test]
fn restore_drill_slos() {
    let ok = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "data = [\"rpo < 5m\", \"lost_writes <= 1000\"]\nrecovery = { \"restore\" = \"< 10m\" }",
    )
    .replacen(
        "\n[slo]",
        "\n[[faults]]\nname = \"restore\"\nkind = \"db-restore\"\nat = \"40s\"\n\n[slo]",
        1,
    );
    let s = parse("demo.toml", &ok).unwrap();
    assert_eq!(s.faults[1].kind, scenario::FaultKind::DbRestore {});
    let rpo = s
        .slo
        .objectives
        .iter()
        .find(|o| o.metric == scenario::Metric::Rpo)
        .unwrap();
    assert_eq!(rpo.bound, 300e6, "in µs");
    assert_eq!(rpo.window, scenario::Window::Data);
    // Without a restore; a bound without a unit; in a time window; as an abort condition.
    let t = with(
        "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
        "whole = [\"rpo < 1m\"]\ndata = [\"rpo < 45\", \"rpo < 30s\"]",
    ) + "\n[abort]\nwhen = [\"rpo > 1m for 5s\"]\n";
    insta::assert_snapshot!(errors(&t));
}

/// A blue/green cutover: its steps, `every` and `drain` read (`cutover` is the same kind; a
/// bare 0 is a ratio bound), and every way to get them wrong named at its position.
#[test]
fn blue_green_cutover() {
    let fault = |body: &str| {
        with(
            "whole = [\"p99 < 800ms\", \"errors < 2%\"]",
            "\"during:bg\" = [\"errors == 0\"]",
        )
        .replacen(
            "\n[slo]",
            &format!("\n[[faults]]\nname = \"bg\"\n{body}\n\n[slo]"),
            1,
        )
    };
    let s = parse(
        "demo.toml",
        &fault("kind = \"cutover\"\nsteps = [\"10%\", \"50%\", \"100%\"]\nevery = \"5s\"\ndrain = false\nat = \"20s\"\nfor = \"15s\""),
    )
    .unwrap();
    assert_eq!(
        s.faults[1].kind,
        scenario::FaultKind::BlueGreen {
            steps: vec![10, 50, 100],
            every: std::time::Duration::from_secs(5),
            drain: false
        }
    );
    assert_eq!(s.faults[1].kind.name(), "blue-green");
    let s = parse("demo.toml", &fault("kind = \"blue-green\"\nat = \"20s\"")).unwrap();
    assert_eq!(
        s.faults[1].kind,
        scenario::FaultKind::BlueGreen {
            steps: vec![100],
            every: std::time::Duration::from_secs(30),
            drain: true
        }
    );
    let bad = [
        "kind = \"blue-green\"\nsteps = [\"50%\", \"10%\"]\nat = \"20s\"",
        "kind = \"blue-green\"\nsteps = [\"12.5%\", \"0%\", 40]\nat = \"20s\"",
        "kind = \"blue-green\"\nsteps = []\nat = \"20s\"",
        "kind = \"blue-green\"\nsteps = [\"10%\", \"100%\"]\nevery = \"10s\"\nat = \"20s\"\nfor = \"10s\"",
        "kind = \"cutover\"\ndrain = \"yes\"\nzone = \"a\"\nat = \"20s\"",
        // Without `for`, past the run's end (60 s).
        "kind = \"blue-green\"\nsteps = [\"10%\", \"50%\", \"100%\"]\nevery = \"20s\"\nat = \"30s\"",
        // Two at once: the load balancer has one set of weights.
        "kind = \"blue-green\"\nat = \"20s\"\nfor = \"20s\"\n\n[[faults]]\nname = \"bg2\"\nkind = \"cutover\"\nat = \"30s\"",
    ];
    let all: Vec<String> = bad.iter().map(|b| errors(&fault(b))).collect();
    insta::assert_snapshot!(all.join("\n----\n"));
    // The versions chart's header: lowercased, and a name that is no header refused.
    let s = parse(
        "demo.toml",
        &with("[load]\n", "[load]\nresponses_by = \"X-App-Version\"\n"),
    )
    .unwrap();
    assert_eq!(s.load.responses_by.as_deref(), Some("x-app-version"));
    let e = errors(&with("[load]\n", "[load]\nresponses_by = \"x app\"\n"));
    assert!(
        e.contains("responses_by: \"x app\" is not a header name"),
        "{e}"
    );
}
