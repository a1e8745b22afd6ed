//! The aws driver against moto, a real AWS API emulator on loopback (started by ci/test.sh;
//! skipped, with a line saying so, when `CHAOS_MOTO_URL` is unset). Each test resets moto and
//! builds the fixture stack (ci/moto_stack.py: a VPC over three AZs, an auto scaling group of
//! six tagged instances, Aurora with a writer and two readers, ElastiCache, app → cache
//! security groups). The load goes to a local sandbox: the faults and the traffic are on
//! different systems here, and the tests look at what the faults did on moto.
//!
//! moto has no ElastiCache `TestFailover` (HTTP 500, HTML) and its `RebootDBInstance` with
//! `ForceFailover` moves nothing: the first is tested as a clean failure (exit 4, nothing left
//! applied), the second only by its plan.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::cli::{lines, report, scenario_file, signal, text, tmpdir, wait_applied};
use common::moto::{creds, stack, Stack};

fn chaos(args: &[&str]) -> Output {
    creds(&mut Command::new(env!("CARGO_BIN_EXE_chaos")))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A sandbox to send the load to: (its process, its load balancer's URL).
fn sandbox() -> (std::process::Child, String) {
    let (sb, urls) = common::cli::sandbox_urls();
    (sb, urls["lb_url"].as_str().unwrap().to_string())
}

/// The IAM actions a `-vv` run logged ("aws call" lines).
fn actions_logged(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("aws call"))
        .filter_map(|l| l.split("action=").nth(1))
        .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

fn policy_actions() -> Vec<String> {
    let p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/aws-iam-policy.json"
        ))
        .unwrap(),
    )
    .unwrap();
    p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn assert_in_policy(actions: &[String]) {
    let policy = policy_actions();
    assert!(!actions.is_empty(), "no aws call was logged");
    for a in actions {
        assert!(
            policy.contains(a),
            "{a} is called but not in docs/aws-iam-policy.json"
        );
    }
}

/// The journal's steps for the run in `dir`.
fn steps(dir: &Path) -> Vec<String> {
    lines(&dir.join("journal.jsonl"))
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect()
}

/// `state` without the database's writer (a failover stays done, as on AWS).
fn without_writers(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("writers");
    v
}

fn writer(state: &serde_json::Value) -> String {
    state["writers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w[1] == true)
        .map(|w| w[0].as_str().unwrap().to_string())
        .unwrap()
}

fn zone_a_instances(s: &Stack) -> Vec<String> {
    s.ids["instances"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, az)| *az == "eu-west-1a")
        .map(|(id, _)| id.clone())
        .collect()
}

/// `chaos run <scenario> --target <t> --yes -vv` at a tenth of the time, to its end.
fn run(scenario: &str, target: &str, dir: &Path) -> Output {
    chaos(&[
        "-vv",
        "run",
        scenario,
        "--target",
        target,
        "--yes",
        "--time-scale",
        "0.1",
        "--quiet",
        "--out",
        &dir.display().to_string(),
    ])
}

#[test]
fn plan_resolves_every_resource_and_changes_nothing() {
    let Some(s) = stack("plan_resolves_every_resource_and_changes_nothing") else {
        return;
    };
    let dir = tmpdir("aws-plan");
    let t = s.target(&dir, "http://127.0.0.1:9", "");
    let before = s.state();
    let o = chaos(&[
        "-vv",
        "plan",
        "az-outage",
        "db-failover",
        "node-kill",
        "redis-partition",
        "--target",
        &t,
    ]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert_eq!(
        before,
        s.state(),
        "chaos plan changed what a fault could change"
    );
    // Read calls only, by the log of every call the clients sent.
    let called = actions_logged(&text(&o.stderr));
    assert!(called.len() > 5, "{called:?}");
    for a in &called {
        let op = a.split(':').nth(1).unwrap();
        assert!(
            op.starts_with("Describe") || op.starts_with("List") || op == "GetCallerIdentity",
            "chaos plan called {a}"
        );
    }
    // Every resource by id, every call.
    let subnet_a = s.ids["subnets"]["eu-west-1a"].as_str().unwrap();
    for i in zone_a_instances(&s) {
        assert!(out.contains(&i), "{i} missing from\n{out}");
    }
    for want in [
        &format!("ec2:ReplaceNetworkAclAssociation {subnet_a}"),
        "ec2:CreateNetworkAcl",
        "autoscaling:UpdateAutoScalingGroup notes-moto",
        "ec2:StopInstances",
        "rds:FailoverDBCluster notes-moto TargetDBInstanceIdentifier=notes-moto-reader-1",
        "ec2:TerminateInstances",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupIngress",
        s.ids["app_security_group_id"].as_str().unwrap(),
    ] {
        assert!(out.contains(want), "`{want}` missing from\n{out}");
    }
    // The cache's primary is in zone b: zone a's outage does not fail it over.
    assert!(!out.contains("TestFailover"), "{out}");
}

#[test]
fn az_outage_injects_confirms_and_reverts_to_the_original_state() {
    let Some(s) = stack("az_outage_injects_confirms_and_reverts_to_the_original_state") else {
        return;
    };
    let (mut sb, lb) = sandbox();
    let dir = tmpdir("aws-az");
    let t = s.target(&dir, &lb, "");
    let before = s.state();
    let o = run("az-outage", &t, &dir.join("run"));
    let _ = sb.kill();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        steps(&dir.join("run")),
        ["intent", "applied", "confirmed", "reverted"]
    );
    let r = report(&dir.join("run"));
    assert_eq!(r["timeline"]["faults"][0]["status"], "reverted");
    let after = s.state();
    // Every association, instance, tag, the ASG's subnets and the ingress are as before; the
    // deny-all ACL is gone. The writer moved out of zone a and stays moved.
    assert_eq!(
        without_writers(before.clone()),
        without_writers(after.clone())
    );
    assert_eq!(writer(&before), "notes-moto-writer");
    assert_eq!(writer(&after), "notes-moto-reader-1");
    assert_in_policy(&actions_logged(&text(&o.stderr)));
    // The control plane as the driver polled it (every 1 s here): zone a's subnets onto the
    // deny-all ACL and back, its instances stopped and started, the ASG's subnets without the
    // zone and back, the writer moved — in the report, beside the client's numbers.
    let events = r["timeline"]["events"].as_array().unwrap();
    let shown: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} -> {}", e["what"], e["from"], e["to"]))
        .collect();
    let seen = |what: &str, to: &dyn Fn(&str) -> bool| {
        events
            .iter()
            .any(|e| e["what"].as_str().unwrap().contains(what) && e["to"].as_str().is_some_and(to))
    };
    let deny = |v: &str| v.starts_with("acl-") && !before.to_string().contains(v);
    assert!(seen("network acl", &deny), "{shown:#?}");
    assert!(
        seen("network acl", &|v| before.to_string().contains(v)),
        "{shown:#?}"
    );
    let zone_a = zone_a_instances(&s);
    assert!(
        seen(&zone_a[0], &|v| v == "stopping" || v == "stopped"),
        "{shown:#?}"
    );
    assert!(
        seen(&zone_a[0], &|v| v == "pending" || v == "running"),
        "{shown:#?}"
    );
    assert!(
        seen("autoscaling group notes-moto subnets", &|_| true),
        "{shown:#?}"
    );
    assert!(
        seen("rds cluster notes-moto writer", &|v| v
            .starts_with("notes-moto-reader-1")),
        "{shown:#?}"
    );
    let html = std::fs::read_to_string(dir.join("run").join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Control plane</h2>"),
        "no control plane in report.html"
    );
    let md = std::fs::read_to_string(dir.join("run").join("summary.md")).unwrap();
    assert!(md.contains("rds cluster notes-moto writer"), "{md}");
}

/// `chaos plan` of `text` (a scenario file's faults) on the stack: exit code, output.
fn plan(s: &Stack, dir: &Path, name: &str, faults: &str) -> (Option<i32>, String) {
    let sc = scenario_file(dir, name, 20, 60.0, faults);
    let t = s.target(dir, "http://127.0.0.1:9", "");
    let o = chaos(&["plan", &sc, "--target", &t]);
    (
        o.status.code(),
        format!("{}{}", text(&o.stdout), text(&o.stderr)),
    )
}

#[test]
fn az_outage_does_only_the_parts_it_names() {
    let Some(s) = stack("az_outage_does_only_the_parts_it_names") else {
        return;
    };
    let dir = tmpdir("aws-parts");
    let before = s.state();
    let (code, out) = plan(
        &s,
        &dir,
        "net.toml",
        "[[faults]]\nname = \"z\"\nkind = \"az-outage\"\nzone = \"a\"\n\
         parts = [\"network\", \"db\"]\nat = \"10s\"\nfor = \"20s\"\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ec2:ReplaceNetworkAclAssociation"), "{out}");
    assert!(out.contains("rds:FailoverDBCluster"), "{out}");
    for absent in [
        "ec2:StopInstances",
        "UpdateAutoScalingGroup",
        "TestFailover",
    ] {
        assert!(!out.contains(absent), "{absent} planned: {out}");
    }
    // Only the instances: no ACL, no failover.
    let (code, out) = plan(
        &s,
        &dir,
        "inst.toml",
        "[[faults]]\nname = \"z\"\nkind = \"az-outage\"\nzone = \"a\"\n\
         parts = [\"instances\"]\nat = \"10s\"\nfor = \"20s\"\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ec2:StopInstances"), "{out}");
    assert!(
        !out.contains("CreateNetworkAcl") && !out.contains("Failover"),
        "{out}"
    );
    // The cache's primary is in zone b, the writer in a: a zone-c outage of those parts
    // would do nothing, and is refused as such.
    let (code, out) = plan(
        &s,
        &dir,
        "none.toml",
        "[[faults]]\nname = \"z\"\nkind = \"az-outage\"\nzone = \"c\"\n\
         parts = [\"db\", \"cache\"]\nat = \"10s\"\n",
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("would change nothing"), "{out}");
    assert_eq!(before, s.state(), "a plan changed moto's state");
}

/// The caps hold for the run, not per fault: two faults down at the same time count together;
/// two faults at once on one subnet or group are refused; apart in time, both are fine.
#[test]
fn caps_count_every_fault_down_at_once_and_overlapping_faults_on_one_resource_are_refused() {
    let Some(s) = stack(
        "caps_count_every_fault_down_at_once_and_overlapping_faults_on_one_resource_are_refused",
    ) else {
        return;
    };
    let dir = tmpdir("aws-caps");
    let outage = "[[faults]]\nname = \"za\"\nkind = \"az-outage\"\nzone = \"a\"\n\
                  parts = [\"instances\"]\nat = \"10s\"\nfor = \"20s\"\n";
    // Zone a's 2 stopped and 2 more stopped from 15 s: 4 of 6 at once, over the default 50%.
    let kill = |at: &str| {
        format!(
            "[[faults]]\nname = \"k\"\nkind = \"kill-nodes\"\ncount = 2\nmode = \"stop\"\n\
             at = \"{at}\"\nfor = \"10s\"\n"
        )
    };
    let (code, out) = plan(&s, &dir, "both.toml", &format!("{outage}{}", kill("15s")));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("4 of the role's 6 instances")
            && out.contains("2 by faults applied at the same time"),
        "{out}"
    );
    // Apart in time: fine, and the kill may pick zone a's instances again.
    let (code, out) = plan(&s, &dir, "apart.toml", &format!("{outage}{}", kill("40s")));
    assert_eq!(code, Some(0), "{out}");
    // Counted at each instant, not over the window: a stop of 1 over 5-45 s meets the outage
    // (2, 10-30 s) and the kill (2, 40-50 s) but never both at once: 3 of 6, within 50%.
    let long = "[[faults]]\nname = \"one\"\nkind = \"kill-nodes\"\ncount = 1\nzone = \"c\"\n\
                mode = \"stop\"\nat = \"5s\"\nfor = \"40s\"\n";
    let (code, out) = plan(
        &s,
        &dir,
        "instants.toml",
        &format!(
            "{outage}{}{long}",
            kill("40s").replace("count = 2\n", "count = 2\nzone = \"b\"\n")
        ),
    );
    assert_eq!(code, Some(0), "{out}");
    // A terminate never comes back: listed after a stop of zone c at 40 s, one of zone b at
    // 1 s for 5 s still counts then (2 + 2 = 4 of 6).
    let stop_c = "[[faults]]\nname = \"sc\"\nkind = \"kill-nodes\"\ncount = 2\nzone = \"c\"\n\
                  mode = \"stop\"\nat = \"40s\"\nfor = \"10s\"\n";
    let term_b = "[[faults]]\nname = \"tb\"\nkind = \"kill-nodes\"\ncount = 2\nzone = \"b\"\n\
                  at = \"1s\"\nfor = \"5s\"\n";
    let (code, out) = plan(&s, &dir, "term.toml", &format!("{stop_c}{term_b}"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("4 of the role's 6 instances"), "{out}");
    // Two outages of one zone at once: one subnet's ACL changed twice.
    let second = outage
        .replace("\"za\"", "\"za2\"")
        .replace("[\"instances\"]", "[\"network\"]");
    let first = outage.replace("[\"instances\"]", "[\"network\", \"asg\"]");
    let (code, out) = plan(&s, &dir, "twice.toml", &format!("{first}{second}"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("`za` and `za2` both change subnet"), "{out}");
}

/// An IAM policy that lacks an action: the inject fails naming the action, exit 4, nothing left
/// applied (moto enforcing IAM for an access key made for this test).
#[test]
fn access_denied_names_the_missing_iam_action_and_leaves_nothing_applied() {
    let Some(s) = stack("access_denied_names_the_missing_iam_action_and_leaves_nothing_applied")
    else {
        return;
    };
    let (mut sb, lb) = sandbox();
    let dir = tmpdir("aws-denied");
    let t = s.target(&dir, &lb, "");
    let before = s.state();
    let key = dir.join("key.json");
    s.boto(&format!(
        "iam=c('iam')\niam.create_user(UserName='chaos-ci')\n\
         iam.put_user_policy(UserName='chaos-ci', PolicyName='most', PolicyDocument=json.dumps(\
         {{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}},\
         {{'Effect': 'Deny', 'Action': 'ec2:CreateNetworkAcl', 'Resource': '*'}}]}}))\n\
         k=iam.create_access_key(UserName='chaos-ci')['AccessKey']\n\
         open('{}', 'w').write(json.dumps([k['AccessKeyId'], k['SecretAccessKey']]))",
        key.display()
    ));
    let k: Vec<String> = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    s.enforce_iam(true);
    let o = creds(&mut Command::new(env!("CARGO_BIN_EXE_chaos")))
        .env("AWS_ACCESS_KEY_ID", &k[0])
        .env("AWS_SECRET_ACCESS_KEY", &k[1])
        .args([
            "run",
            "az-outage",
            "--target",
            &t,
            "--yes",
            "--time-scale",
            "0.1",
            "--quiet",
        ])
        .arg("--out")
        .arg(dir.join("run"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    s.enforce_iam(false);
    let _ = sb.kill();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("access denied") && err.contains("`ec2:CreateNetworkAcl`"),
        "{err}"
    );
    assert_eq!(steps(&dir.join("run")), ["intent", "failed", "reverted"]);
    assert_eq!(before, s.state());
}

#[test]
fn cache_partition_revokes_only_the_app_rule_and_restores_it() {
    let Some(s) = stack("cache_partition_revokes_only_the_app_rule_and_restores_it") else {
        return;
    };
    let (mut sb, lb) = sandbox();
    let dir = tmpdir("aws-cache");
    let t = s.target(&dir, &lb, "");
    let before = s.state();
    let o = run("redis-partition", &t, &dir.join("run"));
    let _ = sb.kill();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        steps(&dir.join("run")),
        ["intent", "applied", "confirmed", "reverted"]
    );
    // The group-pair rule came back with its description; the CIDR rule was never touched.
    assert_eq!(before, s.state());
    let err = text(&o.stderr);
    assert!(err.contains("ec2:RevokeSecurityGroupIngress"), "{err}");
    assert_in_policy(&actions_logged(&err));
}

#[test]
fn node_kill_terminates_one_instance_of_the_zone_and_db_failover_moves_the_writer() {
    let Some(s) =
        stack("node_kill_terminates_one_instance_of_the_zone_and_db_failover_moves_the_writer")
    else {
        return;
    };
    let (mut sb, lb) = sandbox();
    let dir = tmpdir("aws-kill");
    let t = s.target(&dir, &lb, "");
    let before = s.state();
    let o = run("node-kill", &t, &dir.join("kill"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j = lines(&dir.join("kill").join("journal.jsonl"));
    assert_eq!(j[2]["step"], "confirmed");
    let target = j[0]["plan"]["targets"][0].as_str().unwrap().to_string();
    let id = target.split_whitespace().next().unwrap();
    assert!(target.contains("eu-west-1b"), "{target}");
    let st = s.state();
    let inst = st["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[0] == id)
        .unwrap();
    assert_eq!(inst[1], "terminated", "{st}");
    // Only that one: every instance of the stack but it is as it was (moto's replacement is a
    // new instance).
    let was = |i: &serde_json::Value| {
        before["instances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b[0] == i[0] && b[1] == i[1])
    };
    let changed: Vec<&serde_json::Value> = st["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i[0] != id && s.ids["instances"].get(i[0].as_str().unwrap()).is_some())
        .filter(|i| !was(i))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    let o = run("db-failover", &t, &dir.join("db"));
    let _ = sb.kill();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(writer(&s.state()), "notes-moto-reader-1");
    assert_eq!(
        steps(&dir.join("db")),
        ["intent", "applied", "confirmed", "reverted"]
    );
}

#[test]
fn cache_failover_that_moto_cannot_do_fails_with_exit_4_and_leaves_nothing() {
    let Some(s) = stack("cache_failover_that_moto_cannot_do_fails_with_exit_4_and_leaves_nothing")
    else {
        return;
    };
    let (mut sb, lb) = sandbox();
    let dir = tmpdir("aws-cfail");
    let t = s.target(&dir, &lb, "");
    let sc = scenario_file(
        &dir,
        "cf.toml",
        20,
        30.0,
        "[[faults]]\nname = \"cache-flip\"\nkind = \"cache-failover\"\nat = \"10s\"\n\
         [slo]\nwhole = [\"p99 < 5s\"]",
    );
    let before = s.state();
    let o = run(&sc, &t, &dir.join("run"));
    let _ = sb.kill();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("elasticache:TestFailover"), "{err}");
    assert_eq!(steps(&dir.join("run"))[..2], ["intent", "failed"]);
    assert_eq!(before, s.state());
}

#[test]
fn refusals_come_before_anything_runs_and_change_nothing() {
    let Some(s) = stack("refusals_come_before_anything_runs_and_change_nothing") else {
        return;
    };
    let dir = tmpdir("aws-refuse");
    let before = s.state();
    // The wrong account.
    let t = s.target(&dir, "http://127.0.0.1:9", "");
    std::fs::write(
        &t,
        std::fs::read_to_string(&t)
            .unwrap()
            .replace("123456789012", "000000000000"),
    )
    .unwrap();
    let o = run("az-outage", &t, &dir.join("r1"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("account 123456789012") && err.contains("000000000000"),
        "{err}"
    );
    // A cap exceeded: zone a has two instances.
    let t = s.target(&dir, "http://127.0.0.1:9", "max_instances = 1");
    let o = run("az-outage", &t, &dir.join("r2"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("max_instances = 1"), "{err}");
    // No --yes, and no terminal to ask on.
    let t = s.target(&dir, "http://127.0.0.1:9", "");
    let o = chaos(&[
        "run",
        "az-outage",
        "--target",
        &t,
        "--time-scale",
        "0.1",
        "--quiet",
        "--out",
        &dir.join("r0").display().to_string(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(before, s.state(), "a refused run changed moto's state");
    // An instance without the opt-in tag, named with the tag it lacks.
    let untagged = zone_a_instances(&s)[0].clone();
    s.boto(&format!(
        "ec2.delete_tags(Resources=['{untagged}'], Tags=[{{'Key': 'chaos'}}])"
    ));
    let before = s.state();
    let o = run("az-outage", &t, &dir.join("r3"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&untagged) && err.contains("chaos=allowed"),
        "{err}"
    );
    assert_eq!(before, s.state(), "a refused run changed moto's state");
}

/// An az-outage of zone b, where moto cannot fail the cache over (no TestFailover): the inject
/// stops halfway, after the network, the ASG and the instances; all that is reverted at once
/// and the run ends with exit 4.
#[test]
fn a_half_applied_az_outage_is_reverted_as_far_as_it_went() {
    let Some(s) = stack("a_half_applied_az_outage_is_reverted_as_far_as_it_went") else {
        return;
    };
    let (mut sb, lb) = sandbox();
    let dir = tmpdir("aws-half");
    let t = s.target(&dir, &lb, "");
    let before = s.state();
    let o = chaos(&[
        "run",
        "az-outage",
        "--target",
        &t,
        "--yes",
        "--time-scale",
        "0.1",
        "--quiet",
        "--set",
        "faults.zone-a-down.zone=b",
        "--out",
        &dir.join("run").display().to_string(),
    ]);
    let _ = sb.kill();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("elasticache:TestFailover"), "{err}");
    assert_eq!(steps(&dir.join("run")), ["intent", "failed", "reverted"]);
    // Everything as before; the writer was in zone a, so zone b's outage did not move it.
    assert_eq!(before, s.state());
}

/// `chaos run az-outage` killed with SIGKILL once its fault is confirmed: what it left applied.
fn killed_mid_outage(s: &Stack, dir: &Path) -> (String, serde_json::Value) {
    let (mut sb, lb) = sandbox();
    let t = s.target(dir, &lb, "");
    let before = s.state();
    let out = dir.join("run");
    let mut child = creds(&mut Command::new(env!("CARGO_BIN_EXE_chaos")))
        .args([
            "run",
            "az-outage",
            "--target",
            &t,
            "--yes",
            "--time-scale",
            "0.1",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_applied(&out.join("journal.jsonl"));
    signal(&child, "KILL");
    let _ = child.wait();
    let _ = sb.kill();
    let left = s.state();
    assert_ne!(
        without_writers(before.clone()),
        without_writers(left),
        "the outage was not applied when the run was killed"
    );
    (t, before)
}

#[test]
fn rollback_after_kill_9_restores_every_association_and_deletes_the_acl() {
    let Some(s) = stack("rollback_after_kill_9_restores_every_association_and_deletes_the_acl")
    else {
        return;
    };
    let dir = tmpdir("aws-kill9");
    let (_, before) = killed_mid_outage(&s, &dir);
    let run_dir = dir.join("run").display().to_string();
    // A copy of the journal as the kill left it, to roll back a second time for real.
    let again = dir.join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(dir.join("run/journal.jsonl"), again.join("journal.jsonl")).unwrap();
    let o = chaos(&["rollback", &run_dir]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("reverted: zone-a-down"));
    let restored = s.state();
    assert_eq!(without_writers(before), without_writers(restored.clone()));
    // Twice is harmless: the same undo, run again on what is already restored.
    let o = chaos(&["rollback", &again.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("reverted: zone-a-down"));
    assert_eq!(restored, s.state());
}

#[test]
fn sweep_finds_and_undoes_a_leftover_without_the_run_directory() {
    let Some(s) = stack("sweep_finds_and_undoes_a_leftover_without_the_run_directory") else {
        return;
    };
    let dir = tmpdir("aws-sweep");
    let (t, before) = killed_mid_outage(&s, &dir);
    std::fs::remove_dir_all(dir.join("run")).unwrap();
    let o = chaos(&["rollback", "--sweep", "--target", &t]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("deleted") && out.contains("started"), "{out}");
    assert_eq!(without_writers(before), without_writers(s.state()));
    let o = chaos(&["rollback", "--sweep", "--target", &t]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o.stdout).contains("nothing left by chaos"),
        "{}",
        text(&o.stdout)
    );
}

/// Every IAM action the driver's source names is in the least-privilege policy (the runs
/// above check the actions really called, from their `-vv` logs).
#[test]
fn the_iam_policy_names_every_action_the_driver_calls() {
    let policy = policy_actions();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/drivers/aws");
    let mut named = Vec::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for part in src.split("api_err(\"").skip(1) {
            named.push(part.split('"').next().unwrap().to_string());
        }
    }
    named.sort();
    named.dedup();
    assert!(named.len() >= 20, "{named:?}");
    for a in &named {
        assert!(policy.contains(a), "{a} is not in docs/aws-iam-policy.json");
    }
}
