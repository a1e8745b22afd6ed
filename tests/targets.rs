//! Target files end to end: `--target FILE|NAME` on run, plan and check; `chaos schema
//! --target`; the plan `chaos plan` prints is the one `chaos run` executes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::cli::*;
use common::{serve, Behavior};

const TARGETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/targets");

#[test]
fn check_accepts_target_files_and_shows_their_errors() {
    let o = chaos(&[
        "check",
        &format!("{TARGETS}/sandbox.toml"),
        &format!("{TARGETS}/sandbox-async.toml"),
        "url-example",
        "az-outage",
    ]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains("sandbox.toml (target, kind sandbox)"), "{out}");
    assert!(out.contains("ok: url-example (target, kind url)"), "{out}");
    assert!(out.contains("ok: az-outage (az-outage:"), "{out}");
    // Against a target without a fault driver, a scenario with faults is valid but warned of.
    let o = chaos(&["check", "az-outage", "peak-4x", "--target", "url-example"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: az-outage: http://127.0.0.1:8080 (a plain URL) has no fault driver"),
        "{err}"
    );
    assert!(!err.contains("peak-4x:"), "peak-4x has no faults: {err}");

    let dir = tmpdir("target-check");
    let bad = dir.join("staging.toml");
    std::fs::write(
        &bad,
        "kind = \"url\"\nbase_url = \"http://127.0.0.1:8080\"\nreplication = \"async\"\n",
    )
    .unwrap();
    let o = chaos(&["check", bad.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("staging.toml:3:1"), "{err}");
    assert!(
        err.contains("`replication` is a setting of kind \"sandbox\", not \"url\""),
        "{err}"
    );
}

#[test]
fn a_bad_target_stops_a_run_before_anything_happens() {
    let dir = tmpdir("target-bad");
    let bad = dir.join("t.toml");
    std::fs::write(&bad, "kind = \"sandbx\"\n").unwrap();
    let out = dir.join("run");
    let o = chaos(&[
        "run",
        "az-outage",
        "--target",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("t.toml:1:8"), "{err}");
    assert!(err.contains("did you mean \"sandbox\"?"), "{err}");
    assert!(!out.exists(), "nothing is written for bad input");
    // A misspelt shipped name.
    let o = chaos(&["run", "az-outage", "--target", "sandbox-asyn"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean `sandbox-async`?"), "{err}");
    // --target and a shorthand at once.
    let o = chaos(&[
        "run",
        "az-outage",
        "--target",
        "sandbox",
        "--target-url",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    // The sandbox's settings in both the scenario and the target file: one would not apply.
    let s = dir.join("s.toml");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/db-failover.toml"
    ))
    .unwrap();
    std::fs::write(&s, shipped + "\n[sandbox]\nfailover_time = \"50s\"\n").unwrap();
    let o = chaos(&["run", s.to_str().unwrap(), "--target", "sandbox-async"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("both the scenario's [sandbox] table and the target"),
        "{err}"
    );
    // `run` shows the scenario's warnings too, not only `check`.
    assert!(
        err.contains("[sandbox] in a scenario is deprecated"),
        "{err}"
    );
    // On its own the old [sandbox] table is still read, with a warning.
    let o = chaos(&["check", s.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("[sandbox] in a scenario is deprecated"),
        "{err}"
    );
}

#[test]
fn the_target_schema_is_printed() {
    let o = chaos(&["schema", "--target"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["title"], "chaos target file");
    assert_eq!(v["oneOf"].as_array().unwrap().len(), 4);
    assert!(v["oneOf"][0]["properties"]["failover_time"].is_object());
    assert!(v["oneOf"][2]["properties"]["opt_in_tag"].is_object());
    assert!(v["oneOf"][3]["properties"]["proxies"].is_object());
}

/// A `url` target file: the load goes to its base_url; a scenario with faults runs only with
/// --skip-faults, each fault reported as skipped because the target has no driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_target_file_runs_the_load_alone() {
    let srv = serve(Behavior::Delay(Duration::from_millis(2))).await;
    let dir = tmpdir("target-url");
    let t = dir.join("staging.toml");
    std::fs::write(
        &t,
        format!(
            "kind = \"url\"\ndescription = \"a test server\"\nbase_url = \"{}\"\n",
            srv.url()
        ),
    )
    .unwrap();
    let s = scenario_file(
        &dir,
        "s.toml",
        100,
        1.0,
        "[[faults]]\nname = \"kill\"\nkind = \"kill-nodes\"\nat = \"0.5s\"\n[slo]\nwhole = [\"errors < 1%\"]",
    );
    let out = dir.join("run");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = ["run", &s, "--target", t.to_str().unwrap(), "--quiet"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let o = chaos_async(args(&["--out", out.to_str().unwrap()])).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("(a plain URL) has no fault driver"), "{err}");
    assert!(err.contains("--skip-faults"), "{err}");
    assert!(!out.exists(), "refused before the run directory is made");
    // An unwritable CI job summary is a warning: the run's verdict and files stand.
    let a = args(&["--skip-faults", "--out", out.to_str().unwrap()]);
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chaos"))
            .args(&a)
            .env("GITHUB_STEP_SUMMARY", "/nonexistent-dir/summary.md")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: cannot append the summary to GITHUB_STEP_SUMMARY"),
        "{err}"
    );
    let r = report(&out);
    assert_eq!(r["timeline"]["faults"][0]["status"], "skipped");
    let note = r["timeline"]["faults"][0]["note"].as_str().unwrap();
    assert!(note.contains("has no fault driver"), "{note}");
    assert_eq!(
        srv.seen.count.load(std::sync::atomic::Ordering::SeqCst),
        100
    );
}

/// `chaos plan --target` prints exactly the plan `chaos run --target` executes: the same
/// targets and calls for every fault, as the run's journal records them.
#[test]
fn plan_prints_the_plan_the_run_executes() {
    let _turn = heavy();
    let target = format!("{TARGETS}/sandbox.toml");
    let o = chaos(&[
        "plan",
        "az-outage",
        "--target",
        &target,
        "--time-scale",
        "0.1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let plan = text(&o.stdout);
    assert!(
        plan.contains("fault plan on the embedded sandbox (driver: sandbox)"),
        "{plan}"
    );
    let dir = tmpdir("target-plan");
    let out = dir.join("run");
    let o = run_cmd("az-outage", &["--target", &target], &out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let intents: Vec<serde_json::Value> = lines(&out.join("journal.jsonl"))
        .into_iter()
        .filter(|r| r["step"] == "intent")
        .collect();
    assert_eq!(intents.len(), 1);
    // Nothing in the plan that the run did not do: as many call lines as the journal's calls.
    let planned_calls = plan
        .lines()
        .filter(|l| l.starts_with("      inject  ") || l.starts_with("      revert  "))
        .filter(|l| !l.contains("(nothing: it stays done)"))
        .count();
    let journal_calls: usize = intents
        .iter()
        .map(|i| {
            i["plan"]["inject"].as_array().unwrap().len()
                + i["plan"]["revert"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(planned_calls, journal_calls, "{plan}");
    for i in &intents {
        let p = &i["plan"];
        let hits = format!(
            "  {} ({}) hits {}",
            p["fault"].as_str().unwrap(),
            p["kind"].as_str().unwrap(),
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(plan.contains(&hits), "{hits} not in\n{plan}");
        for (what, calls) in [("inject", &p["inject"]), ("revert", &p["revert"])] {
            for c in calls.as_array().unwrap() {
                let line = format!(
                    "      {what}  {} {}",
                    c["operation"].as_str().unwrap(),
                    c["resource"].as_str().unwrap()
                );
                assert!(plan.contains(&line), "{line} not in\n{plan}");
            }
        }
    }
    let r = report(&out);
    assert_eq!(r["verdict"], "pass");
}

/// `-v`/`-vv` turn on structured logs of every driver call on stderr; without them the output
/// is as it was. (`plan` resolves faults through the sandbox driver: its reads are `debug`.)
#[test]
fn verbose_logs_the_driver_calls() {
    let quiet = chaos(&["plan", "node-kill"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet.stderr));
    assert!(!text(&quiet.stderr).contains("control call"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["-vv", "plan", "node-kill"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("control call"), "{err}");
    assert!(err.contains("path=\"/resources\""), "{err}");
    assert_eq!(
        text(&o.stdout),
        text(&quiet.stdout),
        "logs never go to stdout"
    );
    // A bad RUST_LOG is bad input.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["plan", "node-kill"])
        .env("RUST_LOG", "chaos=[")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("RUST_LOG"), "{}", text(&o.stderr));
}

/// Every shipped scenario runs on the shipped sandbox target file exactly as with no target:
/// it passes and leaves every fault reverted (az-outage is run above, in the plan test).
#[test]
fn every_shipped_scenario_passes_with_the_shipped_sandbox_target() {
    let _turn = heavy();
    let target = format!("{TARGETS}/sandbox.toml");
    let dir = tmpdir("target-shipped");
    let names = chaos::scenario::builtin::names();
    assert!(names.len() >= 6, "{names:?}");
    for name in names.into_iter().filter(|n| *n != "az-outage") {
        let out = dir.join(name);
        let o = run_cmd(name, &["--target", &target], &out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        let r = report(&out);
        assert_eq!(r["verdict"], "pass", "{name}");
        for f in r["timeline"]["faults"].as_array().unwrap() {
            assert_eq!(f["status"], "reverted", "{name}: {f}");
        }
        let ev = lines(&out.join("sandbox-events.jsonl"));
        assert_eq!(count(&ev, "sandbox_down"), 1, "{name}: sandbox stopped");
    }
}

/// `chaos plan --sandbox-url` resolves the faults on a sandbox already running, reading only:
/// the plan names that sandbox, and its nodes are all still up afterwards.
#[test]
fn plan_resolves_the_faults_on_a_running_sandbox_without_touching_it() {
    let (mut child, ctl) = sandbox_up();
    let o = chaos(&["plan", "node-kill", "--sandbox-url", &ctl]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.contains(&format!(
            "fault plan on the sandbox at {ctl} (driver: sandbox)"
        )),
        "{out}"
    );
    assert!(out.contains("inject  POST /nodes/"), "{out}");
    let res = http("GET", &format!("{ctl}/resources"));
    let down: Vec<&serde_json::Value> = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] != "running")
        .collect();
    assert!(down.is_empty(), "plan changed the sandbox: {down:?}");
    let _ = child.kill();
    let _ = child.wait();
}

/// What a hurried user gets wrong with targets: two at once, a running sandbox that is not
/// there, a `url` target given to `sandbox up` — each exit 2 with a message saying why.
#[test]
fn target_misuse_is_bad_input() {
    let o = chaos(&[
        "plan",
        "node-kill",
        "--target",
        "sandbox",
        "--sandbox-url",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("cannot be used with"),
        "{}",
        text(&o.stderr)
    );
    // Nothing listens on port 1 of loopback.
    let o = chaos(&["plan", "node-kill", "--sandbox-url", "http://127.0.0.1:1"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--sandbox-url http://127.0.0.1:1: no sandbox answers there"),
        "{err}"
    );
    let o = chaos(&["sandbox", "up", "--target", "url-example"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("needs a target of kind \"sandbox\""), "{err}");
    let o = chaos(&["sandbox", "up", "--target", "no-such-target"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no shipped target `no-such-target`"));
}

/// The shipped `local-stack` target is what `ci/local-stack.sh target` prints with the
/// script's defaults: the stack and the file that describes it cannot drift apart.
#[test]
fn the_shipped_local_stack_target_is_the_one_the_stack_script_writes() {
    let o = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/local-stack.sh"))
        .arg("target")
        .env_remove("CHAOS_STACK_DIR")
        .env("CHAOS_STACK_PORT_BASE", "15400")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let shipped = std::fs::read_to_string(format!("{TARGETS}/local-stack.toml")).unwrap();
    assert_eq!(
        text(&o.stdout),
        shipped,
        "regenerate it: bash ci/local-stack.sh target > scenarios/targets/local-stack.toml"
    );
    let t = chaos::target::load("local-stack").unwrap();
    assert!(matches!(t.kind, chaos::target::Kind::Local(_)));
}

/// `--target local-stack` before `ci/local-stack.sh up`: refused before anything happens —
/// exit 2, the address that did not answer named, no run directory, nothing applied.
#[test]
fn the_local_stack_target_without_the_stack_is_refused() {
    let dir = tmpdir("no-stack");
    let out = dir.join("run");
    // The stack's default proxy control port: nothing of the tests listens there.
    if std::net::TcpStream::connect("127.0.0.1:15455").is_ok() {
        eprintln!("skipped: a local stack is up on the default ports");
        return;
    }
    let o = run_cmd("db-failover", &["--target", "local-stack"], &out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("no fault proxy answers at 127.0.0.1:15455"),
        "{err}"
    );
    // The advice is the target's own `setup`, not `chaos proxy up` (the script starts it).
    assert!(
        err.contains("start it with `bash ci/local-stack.sh up`"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing written for a run that never started"
    );
}

/// A hurried user's `[lb]`: haproxy's API off loopback, a server in both groups, an empty
/// group, a misspelt key — each refused with its position (exit 2); and a cutover on a local
/// target without `[lb]` is refused at plan time, naming what it needs.
#[test]
fn lb_misuse_is_bad_input() {
    let dir = tmpdir("lb-misuse");
    let base = "kind = \"local\"\nbase_url = \"http://127.0.0.1:1\"\n";
    for (lb, want) in [
        (
            "haproxy = \"10.0.0.5:9999\"\nbackend = \"app\"\nblue = [\"a1\"]\ngreen = [\"g1\"]",
            "haproxy: `10.0.0.5:9999` is not a loopback address",
        ),
        (
            "haproxy = \"127.0.0.1:9999\"\nbackend = \"app\"\nblue = [\"a1\", \"g1\"]\ngreen = [\"g1\"]",
            "server `g1` is in both groups",
        ),
        (
            "haproxy = \"127.0.0.1:9999\"\nbackend = \"app\"\nblue = [\"a1\"]\ngreen = []",
            "green is empty",
        ),
        (
            "haproxy = \"127.0.0.1:9999\"\nbackend = \"app\"\nblue = [\"a1\"]\ngreen = [\"g 1\"]",
            "green `g 1` is not a haproxy name",
        ),
        (
            "haproxy = \"127.0.0.1:9999\"\nbackends = \"app\"\nblue = [\"a1\"]\ngreen = [\"g1\"]",
            "unknown key `backends` in [lb]",
        ),
    ] {
        let f = dir.join("t.toml");
        std::fs::write(&f, format!("{base}\n[lb]\n{lb}\n")).unwrap();
        let o = chaos(&["check", f.to_str().unwrap()]);
        let err = text(&o.stderr) + &text(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(err.contains("t.toml:"), "a position: {err}");
    }
    // A cutover on a local target that names no haproxy: refused before anything runs.
    let f = dir.join("no-lb.toml");
    std::fs::write(&f, format!("{base}\n[commands.x]\ninject = \"true\"\n")).unwrap();
    let o = chaos(&["plan", "blue-green", "--target", f.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("needs its haproxy ([lb]"), "{err}");
}

/// `[restore]` (what a db-restore runs on a local target) refused at its position when it has
/// no revert (a run stopped mid-restore would leave the data lost) or a misspelt key; a
/// db-restore on a local target without it refused before anything runs.
#[test]
fn restore_misuse_is_bad_input() {
    let dir = tmpdir("restore-misuse");
    let base = "kind = \"local\"\nbase_url = \"http://127.0.0.1:1\"\n";
    for (restore, want) in [
        ("inject = \"true\"", "[restore] has no revert"),
        (
            "inject = \"true\"\nrevert = \"true\"\ntimout = \"1s\"",
            "unknown key `timout` in [restore]",
        ),
        ("inject = \"\"\nrevert = \"true\"", "inject"),
    ] {
        let f = dir.join("t.toml");
        std::fs::write(&f, format!("{base}\n[restore]\n{restore}\n")).unwrap();
        let o = chaos(&["check", f.to_str().unwrap()]);
        let err = text(&o.stderr) + &text(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(err.contains("t.toml:"), "a position: {err}");
    }
    let f = dir.join("no-restore.toml");
    std::fs::write(&f, format!("{base}\n[commands.x]\ninject = \"true\"\n")).unwrap();
    let o = chaos(&["plan", "dr-restore", "--target", f.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("needs its restore ([restore]"), "{err}");
}
