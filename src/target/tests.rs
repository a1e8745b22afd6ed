#![allow(clippy::unwrap_used)]

use super::*;

fn errors(file: &str, text: &str) -> String {
    match parse_str(file, text) {
        Ok(t) => panic!("expected errors, got {t:?}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn every_shipped_target_is_valid_and_named() {
    for name in builtin::names() {
        let t = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.name, name);
        assert_eq!(t.source, format!("builtin:{name}"));
        assert!(!t.description.is_empty(), "{name}");
        assert!(t.warnings.is_empty(), "{name}: {:?}", t.warnings);
    }
    // The shipped sandbox file spells out the defaults: the same sandbox as no target at all.
    let s = load("sandbox").unwrap();
    let cfg = |spec: &SandboxSpec| {
        format!(
            "{:?}",
            crate::sandbox::SandboxConfig::default().with_spec(spec)
        )
    };
    assert_eq!(
        cfg(s.sandbox_settings().unwrap()),
        cfg(&SandboxSpec::default()),
        "scenarios/targets/sandbox.toml must hold the sandbox's defaults"
    );
    let a = load("sandbox-async").unwrap();
    assert_eq!(
        a.sandbox_settings().unwrap().replication.as_deref(),
        Some("async")
    );
    assert_eq!(
        load("url-example").unwrap().kind,
        Kind::Url {
            base_url: "http://127.0.0.1:8080".into()
        }
    );
}

#[test]
fn a_target_file_gets_a_scenarios_diagnostics() {
    let e = errors("t.toml", "kind = \"sandbx\"\n");
    assert!(e.contains("t.toml:1:8"), "{e}");
    assert!(e.contains("did you mean \"sandbox\"?"), "{e}");
    assert!(e.contains("accepted: sandbox, url"), "{e}");

    let e = errors("t.toml", "kind = \"sandbox\"\nfailovr_time = \"3s\"\n");
    assert!(e.contains("t.toml:2:1"), "{e}");
    assert!(e.contains("did you mean `failover_time`?"), "{e}");

    // A key of the other kind says whose it is.
    let e = errors(
        "t.toml",
        "kind = \"url\"\nbase_url = \"http://127.0.0.1:1\"\nfailover_time = \"3s\"\n",
    );
    assert!(
        e.contains("`failover_time` is a setting of kind \"sandbox\", not \"url\""),
        "{e}"
    );
    let e = errors("t.toml", "kind = \"url\"\n");
    assert!(e.contains("missing required key `base_url`"), "{e}");
    let e = errors("t.toml", "kind = \"url\"\nbase_url = \"ftp://x\"\n");
    assert!(e.contains("t.toml:2:12"), "{e}");
    assert!(e.contains("base_url"), "{e}");
    let e = errors("t.toml", "description = \"x\"\n");
    assert!(e.contains("missing required key `kind`"), "{e}");
    // Values are checked as in a scenario's [sandbox].
    let e = errors("t.toml", "kind = \"sandbox\"\nreplication = \"eventual\"\n");
    assert!(e.contains("accepted: sync, async"), "{e}");
    // Every problem at once.
    let e = errors("t.toml", "kind = \"sandbox\"\nnodes = 2\nreplication = 3\n");
    assert!(e.contains("t.toml:2:1") && e.contains("t.toml:3:15"), "{e}");
    // JSON too, and broken syntax.
    let e = errors("t.json", "{\"kind\": \"url\"}");
    assert!(e.contains("missing required key `base_url`"), "{e}");
    let e = errors("t.toml", "kind = \n");
    assert!(e.contains("syntax error"), "{e}");
}

#[test]
fn a_running_sandbox_refuses_settings_that_would_not_apply() {
    let e = errors(
        "t.toml",
        "kind = \"sandbox\"\ncontrol_url = \"http://127.0.0.1:7070\"\nfailover_time = \"3s\"\n",
    );
    assert!(e.contains("would not apply: failover_time"), "{e}");
    let t = parse_str(
        "t.toml",
        "kind = \"sandbox\"\ncontrol_url = \"http://127.0.0.1:7070/\"\n",
    )
    .unwrap();
    assert_eq!(
        t.kind,
        Kind::Sandbox {
            control_url: Some("http://127.0.0.1:7070".into()),
            settings: Box::default()
        }
    );
    assert!(t.sandbox_settings().is_none(), "nothing to start");
}

#[test]
fn names_and_paths_resolve_like_scenarios() {
    let e = load("sandbox-asyn").unwrap_err().to_string();
    assert!(
        e.contains("no shipped target `sandbox-asyn`; did you mean `sandbox-async`?"),
        "{e}"
    );
    assert!(
        e.contains("shipped: sandbox, sandbox-async, url-example"),
        "{e}"
    );
    let e = load("no/such/sandbox.toml").unwrap_err().to_string();
    assert!(e.contains("no such target file"), "{e}");
    assert!(
        e.contains("did you mean the shipped target `sandbox`"),
        "{e}"
    );
    let t = load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/targets/sandbox-async.toml"
    ))
    .unwrap();
    assert_eq!(t.name, "sandbox-async");
    assert_eq!(t.kind, load("sandbox-async").unwrap().kind);
}

#[test]
fn the_scenarios_sandbox_table_applies_only_without_a_target_file() {
    let old = SandboxSpec {
        failover_time_s: Some(50.0),
        ..SandboxSpec::default()
    };
    let dflt = TargetFile::default_sandbox();
    assert_eq!(connect::settings_for(&dflt, &old).unwrap(), old);
    let file = load("sandbox-async").unwrap();
    let e = connect::settings_for(&file, &old).unwrap_err().to_string();
    assert!(
        e.contains("both the scenario's [sandbox] table and the target builtin:sandbox-async"),
        "{e}"
    );
    assert_eq!(
        connect::settings_for(&file, &SandboxSpec::default()).unwrap(),
        file.sandbox_settings().unwrap().clone()
    );
    // A sandbox already running keeps its own settings: a [sandbox] table cannot apply.
    let running = TargetFile::from_sandbox_url("http://127.0.0.1:7070");
    let e = connect::settings_for(&running, &old)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot apply to the sandbox already running at http://127.0.0.1:7070"),
        "{e}"
    );
    assert_eq!(
        connect::settings_for(&running, &SandboxSpec::default()).unwrap(),
        SandboxSpec::default()
    );
    // A target file whose source string happens to read "default" is still a file.
    let mut named_default = load("sandbox-async").unwrap();
    named_default.source = "default".into();
    assert!(connect::settings_for(&named_default, &old).is_err());
    // Nothing is started for a URL: no settings at all.
    assert_eq!(
        connect::settings_for(&TargetFile::from_url("http://127.0.0.1:1"), &old).unwrap(),
        SandboxSpec::default()
    );
}

#[test]
fn the_schema_lists_exactly_the_keys_the_validator_accepts() {
    let s = schema::json_schema();
    for (i, kind) in file::KINDS.iter().enumerate() {
        let mut props: Vec<String> = s["oneOf"][i]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        props.sort();
        let mut keys: Vec<String> = file::keys_of(kind).iter().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(props, keys, "{kind}");
        assert_eq!(s["oneOf"][i]["properties"]["kind"]["const"], *kind);
    }
}

#[test]
fn check_tells_targets_from_scenarios() {
    for (_, text) in builtin::TARGETS {
        assert!(looks_like_target(text));
    }
    for (_, text) in crate::scenario::builtin::SCENARIOS {
        assert!(!looks_like_target(text));
    }
    assert!(looks_like_target("{\"kind\": \"url\"}"));
    assert!(
        looks_like_target("kind = \n"),
        "broken TOML still reads as a target"
    );
}

const AWS_OK: &str = r#"kind = "aws"
region = "eu-west-1"
account = "123456789012"
base_url = "https://staging.example.com"
opt_in_tag = { key = "chaos", value = "allowed" }
[roles.app]
asg = "notes"
"#;

#[test]
fn an_aws_target_is_validated_with_positions_and_defaults() {
    let t = parse_str("s.toml", AWS_OK).unwrap();
    let Kind::Aws(a) = &t.kind else {
        panic!("{t:?}")
    };
    assert_eq!(a.max_instances, aws::DEFAULT_MAX_INSTANCES);
    assert_eq!(a.max_percent, aws::DEFAULT_MAX_PERCENT);
    assert_eq!(a.observe_every, aws::DEFAULT_OBSERVE_EVERY);
    assert_eq!(a.az("b"), Some("eu-west-1b"));
    assert_eq!(
        t.zones().unwrap().zones,
        ["a", "b", "c"].map(String::from).to_vec()
    );
    assert!(t.has_driver());
    // An account as an integer would lose its leading zeros.
    let e = errors("s.toml", &AWS_OK.replace("\"123456789012\"", "12345678901"));
    assert!(
        e.contains("s.toml:3:11") && e.contains("\"012345678901\""),
        "{e}"
    );
    let e = errors("s.toml", &AWS_OK.replace("eu-west-1", "europe"));
    assert!(e.contains("invalid region \"europe\""), "{e}");
    // A zone of another region, and two names for one AZ.
    let e = errors(
        "s.toml",
        &format!("{AWS_OK}[zones]\na = \"us-east-1a\"\nb = \"eu-west-1b\"\nc = \"eu-west-1b\"\n"),
    );
    assert!(e.contains("not an Availability Zone of eu-west-1"), "{e}");
    assert!(e.contains("zones b and c both map to eu-west-1b"), "{e}");
    // The app by exactly one of asg or tags.
    let e = errors(
        "s.toml",
        &AWS_OK.replace(
            "asg = \"notes\"",
            "asg = \"notes\"\ntags = { Service = \"notes\" }",
        ),
    );
    assert!(e.contains("exactly one of `asg` or `tags`"), "{e}");
    // A missing opt-in tag, a bad cap, a sandbox key.
    let e = errors(
        "s.toml",
        &AWS_OK.replace(
            "opt_in_tag = { key = \"chaos\", value = \"allowed\" }\n",
            "max_percent = \"150%\"\nreplication = \"async\"\nobserve_every = \"100ms\"\n",
        ),
    );
    assert!(e.contains("missing required key `opt_in_tag`"), "{e}");
    assert!(e.contains("max_percent 150% is out of range"), "{e}");
    assert!(e.contains("observe_every 100ms is out of range"), "{e}");
    assert!(
        e.contains("`replication` is a setting of kind \"sandbox\", not \"aws\""),
        "{e}"
    );
    let e = errors(
        "s.toml",
        &AWS_OK.replace("value = \"allowed\"", "value = \"allowed\", key2 = 1"),
    );
    assert!(e.contains("key2"), "{e}");
}

const LOCAL_OK: &str = r#"kind = "local"
base_url = "http://127.0.0.1:8080"
[processes.pg1]
pidfiles = ["/run/stack/pg1/patroni.pid", "/run/stack/pg1/data/postmaster.pid"]
role = "db"
zone = "a"
start = "ci/local-stack.sh start pg1"
primary_if = "curl -sf http://127.0.0.1:8008/primary"
[commands.drain]
inject = "echo drain"
"#;

#[test]
fn a_local_target_declares_processes_and_commands_with_positions() {
    let t = parse_str("l.toml", LOCAL_OK).unwrap();
    let Kind::Local(l) = &t.kind else {
        panic!("{t:?}")
    };
    // No proxies: no proxy_control needed.
    assert_eq!(l.proxy_control, None);
    assert_eq!(l.processes.len(), 1);
    assert_eq!(l.processes[0].pidfiles.len(), 2);
    assert_eq!(l.processes[0].start_timeout, local::DEFAULT_COMMAND_TIMEOUT);
    assert_eq!(l.commands[0].revert, None);
    assert!(t.has_driver());
    let e = errors(
        "l.toml",
        &LOCAL_OK.replace(
            "pidfiles = [\"/run/stack/pg1/patroni.pid\", \"/run/stack/pg1/data/postmaster.pid\"]",
            "pidfiles = []",
        ),
    );
    assert!(
        e.contains("l.toml:4:12") && e.contains("pidfiles is empty"),
        "{e}"
    );
    let e = errors(
        "l.toml",
        &LOCAL_OK.replace("zone = \"a\"", "zone = \"a\"\npattern = \"patroni\""),
    );
    assert!(
        e.contains("pattern") && e.contains("[processes.pg1]"),
        "{e}"
    );
    let e = errors(
        "l.toml",
        &LOCAL_OK.replace(
            "inject = \"echo drain\"",
            "inject = \"echo\"\ntimeout = \"20m\"",
        ),
    );
    assert!(e.contains("timeout 1200s is out of range"), "{e}");
    let e = errors(
        "l.toml",
        &LOCAL_OK.replace("inject = \"echo drain\"", "revert = \"x\""),
    );
    assert!(e.contains("missing required key `inject`"), "{e}");
    let e = errors(
        "l.toml",
        &format!("{LOCAL_OK}[proxies.cache]\nlisten = \"127.0.0.1:16379\"\nupstream = \"127.0.0.1:6379\"\n"),
    );
    assert!(e.contains("declares proxies but no proxy_control"), "{e}");
}

#[test]
fn a_local_target_names_its_ha_logs_with_positions() {
    let ok = format!(
        "{LOCAL_OK}[logs.patroni]\nfile = \"/run/stack/pg1/patroni.log\"\n\
         lines = [\"promoted self to leader\", \"Demoting self\"]\n"
    );
    let t = parse_str("l.toml", &ok).unwrap();
    let Kind::Local(l) = &t.kind else {
        panic!("{t:?}")
    };
    assert_eq!(l.logs.len(), 1);
    assert_eq!(l.logs[0].name, "patroni");
    assert_eq!(
        l.logs[0].lines,
        ["promoted self to leader", "Demoting self"]
    );
    let e = errors(
        "l.toml",
        &ok.replace(
            "lines = [\"promoted self to leader\", \"Demoting self\"]",
            "lines = []",
        ),
    );
    assert!(
        e.contains("l.toml:13:9") && e.contains("lines is empty"),
        "{e}"
    );
    let e = errors(
        "l.toml",
        &ok.replace("file = \"/run/stack/pg1/patroni.log\"\n", ""),
    );
    assert!(e.contains("missing required key `file`"), "{e}");
    let e = errors("l.toml", &ok.replace("file =", "path ="));
    assert!(e.contains("`path`") && e.contains("[logs.patroni]"), "{e}");
    let e = errors("l.toml", &ok.replace("\"Demoting self\"", "\" \""));
    assert!(
        e.contains("l.toml:13:37") && e.contains("lines is empty"),
        "{e}"
    );
}

/// `setup` says how the stack is brought up (the advice when its proxy does not answer); an
/// empty one, or one that is not a string, is refused at its position.
#[test]
fn a_local_target_says_how_it_is_set_up() {
    let with = |v: &str| LOCAL_OK.replacen('\n', &format!("\nsetup = {v}\n"), 1);
    let t = parse_str("l.toml", &with("\"./stack.sh up\"")).unwrap();
    let Kind::Local(l) = &t.kind else {
        panic!("{t:?}")
    };
    assert_eq!(l.setup.as_deref(), Some("./stack.sh up"));
    let t = parse_str("l.toml", LOCAL_OK).unwrap();
    let Kind::Local(l) = &t.kind else {
        panic!("{t:?}")
    };
    assert_eq!(l.setup, None);
    let e = errors("l.toml", &with("\" \""));
    assert!(
        e.contains("l.toml:2:9") && e.contains("setup is empty"),
        "{e}"
    );
    let e = errors("l.toml", &with("true"));
    assert!(e.contains("l.toml:2:9") && e.contains("setup"), "{e}");
}
