//! The shipped scenarios, run by the binary against the local stack (`ci/local-stack.sh`:
//! haproxy, three app nodes on real PostgreSQL under Patroni and Redis under Sentinel, the fault
//! proxy on every link): each verdict is whatever the system earned, and each test checks the
//! report against the servers' own account — Patroni's and Sentinel's logs, the tables of the
//! PostgreSQL nodes, the proxies' and processes' states. (ci/test.sh installs the packages.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::stack::{
    acked_and_lost, events, log_event, logged_at, logged_times, pid_in, slo_value, started_s,
    Stack, ONE,
};

/// The shipped `db-failover` scenario against the stack (haproxy, three app nodes on the real
/// PostgreSQL and Redis): the run kills the primary node, Patroni promotes the replica, and the
/// report's recovery matches Patroni's own promotion within an interval; the lost writes the
/// read-back reports are exactly the acknowledged ids the promoted primary lacks, by querying
/// it directly.
#[test]
fn the_shipped_db_failover_runs_on_the_stack_with_patronis_promotion_beside_the_recovery() {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let stack = Stack::up(1);
    let (code, stderr, r) = stack.run("db-failover");
    // An honest verdict either way (writes fail while Patroni waits out its ttl).
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    let fault = &r["timeline"]["faults"][0];
    assert_eq!(fault["status"], "reverted", "{fault}");
    let rec = r["recovery"][0]["from_inject_s"]
        .as_f64()
        .expect("recovered");
    // Patroni's promotion, by its own log, on the run's clock.
    let log = stack.log("pg2/patroni.log");
    let promoted = logged_at(&log, "promoted self to leader").unwrap_or_else(|| panic!("{log}"));
    let start_s = started_s(&r);
    let inject_s = fault["injected_at_s"].as_f64().unwrap();
    let patroni = promoted - start_s - inject_s;
    eprintln!("recovery measured {rec:.2} s after the inject; Patroni promoted pg2 {patroni:.2} s after it");
    let interval = r["interval_s"].as_f64().unwrap();
    assert!(
        (rec - patroni).abs() <= interval + 1.0,
        "recovery {rec} s vs Patroni's promotion {patroni} s"
    );
    // The control-plane events show pg2 becoming the primary, and Patroni's own line saying
    // so, read from its log during the run, beside the recovery.
    let ev = r["timeline"]["events"].to_string();
    assert!(ev.contains("process pg2 role"), "{ev}");
    let seen = log_event(&r, "patroni-pg2", "promoted self to leader")
        .unwrap_or_else(|| panic!("no Patroni event in the report: {ev}"));
    assert!(
        (seen - inject_s - rec).abs() <= interval + 1.0,
        "Patroni's line read at {seen} s, recovery {rec} s after the inject at {inject_s} s"
    );
    // Lost writes: the acknowledged ids the promoted primary lacks, asked directly.
    let (acked, lost) = acked_and_lost(&r);
    assert!(!acked.is_empty());
    let (_, _, missing) = stack.missing(&acked);
    assert_eq!(
        lost, missing,
        "the read-back's lost writes vs the promoted primary's table"
    );
}

/// A run's verdict is honest: exit 0 for pass and 1 for fail (never a harness error), and
/// every fault was reverted.
#[allow(clippy::print_stderr)] // the verdicts, for the CI log
fn judged(name: &str, code: Option<i32>, stderr: &str, r: &serde_json::Value) {
    let want = match r["verdict"].as_str() {
        Some("pass") => Some(0),
        Some("fail") => Some(1),
        v => panic!("{name}: verdict {v:?}: {stderr}"),
    };
    assert_eq!(code, want, "{name}: {stderr}");
    for f in r["timeline"]["faults"].as_array().unwrap() {
        assert_eq!(f["status"], "reverted", "{name}: {f}");
    }
    let failed: Vec<String> = r["slo"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] != "pass")
        .map(|o| format!("{} was {}", o["objective"]["text"], o["shown_value"]))
        .collect();
    let rec: Vec<String> = r["recovery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{} {:?} s", x["fault"], x["from_inject_s"].as_f64()))
        .collect();
    eprintln!(
        "{name}: {} (not passed: {failed:?}; recovery: {rec:?})",
        r["verdict"]
    );
}

/// Whether the events hold `what: from -> to`.
fn saw(ev: &[String], what: &str, from: &str, to: &str) -> bool {
    let want = format!(" {what}: {from} -> {to}");
    ev.iter().any(|e| e.ends_with(&want))
}

/// haproxy's weight of `server` in backend `app`, asked on its runtime API: (now, initial).
fn haproxy_weight(stack: &Stack, server: &str) -> (u32, u32) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", stack.base + 58)).unwrap();
    writeln!(s, "get weight app/{server}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    // "1 (initial 1)"
    let nums: Vec<u32> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{out}");
    (nums[0], nums[1])
}

/// Six more shipped scenarios on one stack, one after another, each verdict whatever the
/// system earned, each report checked against the servers: the proxies' links really cut or
/// slowed, Sentinel's switch beside the recovery, the killed app node started again, zone a
/// frozen and thawed with Patroni promoting pg2 meanwhile, and the lost writes exactly the
/// acknowledged ids the primary lacks. Before them `blue-green` on the stack's haproxy: its
/// weights move the requests to the green nodes (v2 in the report's versions series) and back,
/// and haproxy ends with its configured weights.
#[test]
fn six_more_shipped_scenarios_run_on_one_stack_and_their_reports_match_the_servers() {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let stack = Stack::up(2);

    // blue-green: haproxy's weights moved to g1, g2 (v2) in steps, then back to a1..a3.
    assert_eq!(haproxy_weight(&stack, "g1"), (0, 0));
    let (code, stderr, r) = stack.run("blue-green");
    judged("blue-green", code, &stderr, &r);
    let by = |p: &serde_json::Value, v: &str| p["responses_by"][v].as_u64().unwrap_or(0);
    let series = r["series"].as_array().unwrap();
    let shape: Vec<(bool, bool)> = series
        .iter()
        .map(|p| (by(p, "v1") > 0, by(p, "v2") > 0))
        .filter(|&s| s != (false, false))
        .collect();
    assert_eq!(shape.first(), Some(&(true, false)), "{shape:?}");
    assert_eq!(shape.last(), Some(&(true, false)), "{shape:?}");
    assert!(shape.contains(&(true, true)), "{shape:?}");
    assert!(
        shape.contains(&(false, true)),
        "green alone at 100%: {shape:?}"
    );
    for s in ["a1", "a2", "a3"] {
        assert_eq!(haproxy_weight(&stack, s), (1, 1), "{s} back at its weight");
    }
    for s in ["g1", "g2"] {
        assert_eq!(haproxy_weight(&stack, s), (0, 0), "{s} out again");
    }
    let j = r["journal"].as_array().unwrap();
    assert!(j.iter().any(|e| e["step"] == "reverted"), "{j:?}");

    // redis-partition: both cache links blackholed; the app's reads wait out its 200 ms cache
    // timeout (fail-open), so p99 rises by about that and nothing else fails.
    let (code, stderr, r) = stack.run("redis-partition");
    judged("redis-partition", code, &stderr, &r);
    let ev = events(&r);
    for p in ["proxy cache-r1", "proxy cache-r2"] {
        assert!(saw(&ev, p, "passing", "partition"), "{ev:#?}");
        assert!(saw(&ev, p, "partition", "passing"), "{ev:#?}");
    }
    let base = slo_value(&r, "baseline", "p99 < 300ms");
    let during = slo_value(&r, "during:cache-cut", "p99 < 1s");
    eprintln!("redis-partition: p99 {base} us before, {during} us during");
    assert!(during >= base + 100_000.0, "{base} → {during}");

    // cache-failover: the process driver kills the Redis primary; Sentinel promotes the
    // replica; the service is impaired no longer than until Sentinel's switch (one interval).
    let before = stack.sentinel_primary();
    let (code, stderr, r) = stack.run("cache-failover");
    judged("cache-failover", code, &stderr, &r);
    let after = stack.sentinel_primary();
    assert_ne!(before, after, "Sentinel switched the primary");
    let fault = &r["timeline"]["faults"][0];
    let inject_s = started_s(&r) + fault["injected_at_s"].as_f64().unwrap();
    let slog = stack.log("s1/sentinel.log");
    let switch = logged_times(&slog, "+switch-master")
        .into_iter()
        .find(|t| *t >= inject_s - 0.5)
        .unwrap_or_else(|| panic!("no +switch-master after the kill:\n{slog}"))
        - inject_s;
    let rec = &r["recovery"][0];
    let from_inject = rec["from_inject_s"].as_f64().expect("recovered");
    let interval = r["interval_s"].as_f64().unwrap();
    eprintln!(
        "cache-failover: Sentinel's +switch-master {switch:.2} s after the kill; recovery \
         {from_inject:.2} s ({})",
        rec["note"]
    );
    assert!(
        from_inject <= switch + interval + 1.0,
        "recovery {from_inject} s, Sentinel switched at {switch} s"
    );
    // Sentinel's line is in the report too, read during the run.
    let seen = log_event(&r, "sentinel", "+switch-master")
        .expect("Sentinel's switch in the report")
        - fault["injected_at_s"].as_f64().unwrap();
    assert!(
        (seen - switch).abs() <= interval + 1.0,
        "read {seen} s after the kill, logged {switch} s after it"
    );
    // The revert started the old primary again, and it follows the new one.
    let old: u16 = before.parse().unwrap();
    let port = old - 2; // cache-rN's link is 2 above rN
    let t = std::time::Instant::now();
    while stack.redis_role(port) != "slave" {
        assert!(
            t.elapsed().as_secs() < 30,
            "the old primary is not a replica"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // node-kill: one app node of zone b (a3) is killed and started again by the revert;
    // haproxy routes around it meanwhile.
    let pid = pid_in(&stack.dir.join("a3/app.pid")).unwrap();
    let (code, stderr, r) = stack.run("node-kill");
    judged("node-kill", code, &stderr, &r);
    let ev = events(&r);
    assert!(saw(&ev, "process a3", "running", "not running"), "{ev:#?}");
    assert!(saw(&ev, "process a3", "not running", "running"), "{ev:#?}");
    let again = pid_in(&stack.dir.join("a3/app.pid")).unwrap();
    assert_ne!(pid, again, "a3 runs again as a new process");
    // haproxy's own account: a3 taken out of the pool and put back.
    let down = log_event(&r, "haproxy", "a3 is DOWN").expect("haproxy's DOWN in the report");
    let up = log_event(&r, "haproxy", "a3 is UP").expect("haproxy's UP in the report");
    assert!(down < up, "DOWN at {down} s, UP at {up} s");

    // db-latency: 100 ms more on the app's links to PostgreSQL; every write waits it.
    let (code, stderr, r) = stack.run("db-latency");
    judged("db-latency", code, &stderr, &r);
    let ev = events(&r);
    for p in ["proxy db-pg1", "proxy db-pg2"] {
        assert!(saw(&ev, p, "passing", "latency +100ms"), "{ev:#?}");
        assert!(saw(&ev, p, "latency +100ms", "passing"), "{ev:#?}");
    }
    let base = slo_value(&r, "baseline", "p99 < 300ms");
    let during = slo_value(&r, "during:slow-db", "p99 < 1s");
    eprintln!("db-latency: p99 {base} us before, {during} us during");
    assert!(during >= base + 80_000.0, "{base} → {during}");

    // az-outage: zone a's processes (a1, a2, pg1, r1) frozen, its links (db-pg1, repl-pg1,
    // cache-r1) blackholed; Patroni promotes pg2 and the app writes to it while the zone is out.
    let (code, stderr, r) = stack.run("az-outage");
    judged("az-outage", code, &stderr, &r);
    let ev = events(&r);
    for p in ["process a1", "process a2", "process pg1", "process r1"] {
        assert!(saw(&ev, p, "running", "frozen"), "{p}: {ev:#?}");
        // Thawed: running, or (pg1) its postmaster restarted at once by Patroni to demote it.
        let thawed = format!(" {p}: frozen -> ");
        assert!(ev.iter().any(|e| e.contains(&thawed)), "{p}: {ev:#?}");
    }
    for p in ["proxy db-pg1", "proxy cache-r1"] {
        assert!(saw(&ev, p, "passing", "partition"), "{p}: {ev:#?}");
    }
    let fault = &r["timeline"]["faults"][0];
    let (at, back) = (
        fault["injected_at_s"].as_f64().unwrap(),
        fault["reverted_at_s"].as_f64().unwrap(),
    );
    let plog = stack.log("pg2/patroni.log");
    let promoted = logged_times(&plog, "promoted self to leader")
        .into_iter()
        .map(|t| t - started_s(&r))
        .find(|t| (at..back).contains(t))
        .unwrap_or_else(|| panic!("Patroni did not promote pg2 during the outage:\n{plog}"));
    // Writes acknowledged after the promotion and before the zone came back: the app found
    // the new primary past the blackholed one (each host's connection bounded on its own).
    let written: u64 = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| (promoted + 2.0..back).contains(&p["t"].as_f64().unwrap()))
        .map(|p| p["status_counts"]["201"].as_u64().unwrap_or(0))
        .sum();
    eprintln!(
        "az-outage: pg2 promoted {:.1} s into the outage; {written} writes acknowledged after it \
         while the zone was out; events:\n{}",
        promoted - at,
        ev.join("\n")
    );
    assert!(written > 0, "no write acknowledged after pg2's promotion");
    assert!(
        log_event(&r, "patroni-pg2", "promoted self to leader").is_some(),
        "Patroni's promotion in the report"
    );
    let (acked, lost) = acked_and_lost(&r);
    // pg2, promoted; or pg1 if it took the leader key back after its thaw (Patroni 3.0.2's
    // etcd3 leader update could overwrite the key: patroni/patroni#2689, fixed in 3.0.3) and
    // pg2 was demoted.
    let (primary, present, missing) = stack.missing(&acked);
    let only_lost = lost.iter().filter(|i| !missing.contains(i)).count();
    let only_missing = missing.iter().filter(|i| !lost.contains(i)).count();
    eprintln!(
        "az-outage: {} of {} acknowledged writes lost by the read-back; {} missing from {primary} \
         now ({only_lost} lost but present, {only_missing} missing but found)",
        lost.len(),
        acked.len(),
        missing.len()
    );
    if primary == "pg2" {
        assert_eq!(
            lost, missing,
            "the read-back's lost writes vs {primary}'s table"
        );
    } else {
        // The split brain: pg1 is the primary again on its old timeline, so what pg2
        // acknowledged during the outage is gone, and pg1, thawed, hands pg2's ids out again
        // to other notes (its sequence never saw them). The read-back misses none: an id pg1
        // lacks is lost, and an id pg1 has is lost only when it holds another note
        // (`durable.same`).
        assert!(!missing.is_empty(), "pg1 came back with every write?");
        assert_eq!(
            only_missing, 0,
            "acknowledged writes {primary} lacks, not reported lost"
        );
        let lost_rows = r["durable"]["read_back"]["lost"].as_array().unwrap();
        for w in lost_rows {
            let id: i64 = w["id"].as_str().unwrap().parse().unwrap();
            if present.contains(&id) {
                assert_eq!(
                    w["reason"], "another value at $.text under its id",
                    "{w}: lost though {primary} has it"
                );
            }
        }
    }
}

/// The restore drill on the stack: the shipped `dr-restore` (the app cut off from PostgreSQL,
/// the notes table emptied on every instance, refilled from the stack's newest pg_dump, taken
/// every 10 s, and the links back), then a restore whose job dies half-way, finished.
#[test]
fn the_restore_drill_runs_on_the_stack_and_an_interrupted_restore_is_finished() {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let stack = Stack::up(2);
    dr_restore_on(&stack);
    restore_interrupted_is_finished(&stack);
}

/// The shipped `dr-restore` on the stack (its [restore]: `ci/local-stack.sh restore`), checked
/// against the stack's own account: the restore's log lines in the report beside the recovery;
/// the lost writes exactly the acknowledged ids the primary lacks, or holds with another note
/// (the restore set the id sequence back to the backup's, so later writes got those ids again);
/// and the rpo the time from the backup's snapshot to the loss.
#[allow(clippy::print_stderr)] // the figures, for the CI log
fn dr_restore_on(stack: &Stack) {
    let (code, stderr, r) = stack.run("dr-restore");
    judged("dr-restore", code, &stderr, &r);
    let rlog = stack.log("restore/restore.log");
    for line in [
        "the app cut off from the database",
        "the database lost",
        "restored from notes-",
        "links to the database back",
    ] {
        assert!(
            log_event(&r, "restore", line).is_some(),
            "`{line}` not in the report's events: {:#?}",
            events(&r)
        );
    }
    let cut = logged_at(&rlog, "the app cut off").expect("the cut logged");
    let back = logged_at(&rlog, "links to the database back").expect("the links back");
    let backup_s = rlog
        .lines()
        .find_map(|l| l.split("restored from notes-").nth(1))
        .and_then(|t| t.split(".dump").next())
        .and_then(|ms| ms.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no backup restored:\n{rlog}"))
        / 1e3;
    assert!(
        backup_s < cut,
        "the backup restored was taken after the loss:\n{rlog}"
    );
    // The fault proxy's own log: both of the app's links held and released by the restore (a
    // cut of 0.3 s falls between two of the run's polls as often as not).
    let proxy_events = proxy_events(stack);
    for link in ["db-pg1", "db-pg2"] {
        for e in ["fault_applied", "fault_released"] {
            assert!(
                proxy_events.iter().any(|x| x["event"] == e
                    && x["proxy"] == link
                    && x["fault"] == "partition"
                    && x["by"] == "restore"),
                "no {e} of {link} by the restore: {proxy_events:#?}"
            );
        }
    }

    let (acked, lost) = acked_and_lost(&r);
    let (primary, present, missing) = stack.missing(&acked);
    let reused = lost.iter().filter(|i| present.contains(i)).count();
    eprintln!(
        "dr-restore: {} of {} acknowledged writes lost ({} missing from {primary}, {reused} of \
         their ids holding later notes); the backup {:.2} s before the cut; the restore took \
         {:.2} s",
        lost.len(),
        acked.len(),
        missing.len(),
        cut - backup_s,
        back - cut
    );
    assert!(!lost.is_empty(), "a restore from a backup lost nothing?");
    assert!(
        missing.iter().all(|i| lost.contains(i)),
        "acknowledged writes {primary} lacks, not reported lost"
    );
    for w in r["durable"]["read_back"]["lost"].as_array().unwrap() {
        let id: i64 = w["id"].as_str().unwrap().parse().unwrap();
        if present.contains(&id) {
            assert_eq!(
                w["reason"], "another value at $.text under its id",
                "{w}: lost though {primary} has it"
            );
        }
    }

    // The rpo: from the loss back to the newest write that survived, i.e. to the backup's
    // snapshot. The backup's age at the cut is a little more: pg_dump's snapshot comes just
    // after the time in its name, and the loss (the fault's time) a moment before the cut. Never
    // less: that would be writes acknowledged before the backup began, lost.
    let age = cut - backup_s;
    let rpo = slo_value(&r, "data", "rpo < 22.5s (45s × 0.5)") / 1e6;
    assert!(
        rpo <= age + 0.3 && rpo >= age - 2.0,
        "rpo {rpo} s; the backup was taken {age} s before the cut"
    );
    // The RTO: the service back soon after the links' return (the app reconnects within
    // 500 ms; the recovery is seen at an interval's grain).
    let rec = r["recovery"][0]["from_inject_s"]
        .as_f64()
        .expect("recovered");
    let interval = r["interval_s"].as_f64().unwrap();
    assert!(
        rec <= back - cut + 2.0 * interval + 2.0,
        "recovery {rec} s; the links were back {} s after the cut",
        back - cut
    );
}

/// The question an owner asks of a failover: is any acknowledged write lost? The example
/// `replica-behind-failover` cuts replication off (the target's `cut-replication` command: the
/// repl-* proxy links blackholed), lets the primary take writes, then kills it; Patroni
/// promotes pg2. Asynchronous replication loses exactly the writes acknowledged during the cut
/// (asked of pg2 directly); Patroni's synchronous mode loses none, because those writes were
/// never acknowledged (their commits waited for the replica until the app's 2 s timeout).
#[test]
#[allow(clippy::print_stderr)] // the figures, for the CI log
fn a_failover_behind_a_cut_replica_loses_acknowledged_writes_async_and_none_in_sync_mode() {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/examples/replica-behind-failover.toml"
    );
    for sync in [false, true] {
        let mode = if sync { "sync" } else { "async" };
        let stack = Stack::up_with(0, sync);
        let standby = stack.psql("pg1", "show synchronous_standby_names", 2);
        assert_eq!(standby.trim().is_empty(), !sync, "{mode}: {standby:?}");
        let (code, stderr, r) = stack.run(scenario);
        let faults = r["timeline"]["faults"].as_array().unwrap();
        for f in faults {
            assert_eq!(f["status"], "reverted", "{mode}: {f}");
        }
        let ev = events(&r);
        for p in ["proxy repl-pg1", "proxy repl-pg2"] {
            assert!(saw(&ev, p, "passing", "partition"), "{mode}: {ev:#?}");
        }
        assert!(
            log_event(&r, "patroni-pg2", "promoted self to leader").is_some(),
            "{mode}: Patroni promoted pg2: {ev:#?}"
        );
        let (acked, lost) = acked_and_lost(&r);
        let (primary, present, missing) = stack.missing(&acked);
        assert_eq!(primary, "pg2", "{mode}");
        // Asked of pg2 directly: every acknowledged id it lacks is lost. Promoted from behind,
        // pg2 hands the ids of the lost writes out again to new notes (its sequence never saw
        // them): such an id is lost only because it holds another note (`durable.same`).
        let lost_rows = r["durable"]["read_back"]["lost"].as_array().unwrap();
        let mut reused = 0;
        for w in lost_rows {
            let id: i64 = w["id"].as_str().unwrap().parse().unwrap();
            if present.contains(&id) {
                reused += 1;
                assert_eq!(
                    w["reason"], "another value at $.text under its id",
                    "{mode}: {w}: lost though pg2 has it"
                );
            }
        }
        let lost_missing: Vec<i64> = lost
            .iter()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        assert_eq!(
            lost_missing, missing,
            "{mode}: the read-back vs pg2's table"
        );
        let cut = faults[0]["injected_at_s"].as_f64().unwrap();
        let kill = faults[1]["injected_at_s"].as_f64().unwrap();
        eprintln!(
            "replica-behind-failover, {mode}: {} acknowledged, {} lost: {} missing from pg2, \
             {reused} under their id holding another note (cut at {cut:.1} s, primary killed \
             at {kill:.1} s)",
            acked.len(),
            lost.len(),
            missing.len()
        );
        assert!(acked.len() > 500, "{mode}: {} acknowledged", acked.len());
        let write_p99 = r["per_request"]["create-note"]["latency_us"]["p99"]
            .as_f64()
            .unwrap();
        if sync {
            assert_eq!(code, Some(0), "{stderr}");
            assert!(lost.is_empty(), "sync mode lost {lost:?}");
            // The writes during the cut waited for the replica until the app gave up (2 s).
            assert!(write_p99 >= 1.9e6, "write p99 {write_p99} us");
        } else {
            assert_eq!(code, Some(1), "lost_writes == 0 fails the run: {stderr}");
            // Acknowledged at once during the cut (50 writes/s), and gone with the primary.
            assert!(write_p99 < 1e6, "write p99 {write_p99} us");
            assert!(lost.len() > 100, "async mode lost only {}", lost.len());
        }
    }
}

/// A restore job that dies with the data lost (killed, as an OOM or an operator would) is
/// finished by `restore finish` — the revert the run, or the guardian of a killed run, runs: the
/// newest backup's rows back, the app's links back, and the service takes writes again.
fn restore_interrupted_is_finished(stack: &Stack) {
    let o = Command::new("bash")
        .arg(stack.dir.join("local-stack.sh"))
        .args(["restore", "start"])
        .env("CHAOS_STACK_DIR", &stack.dir)
        .env("CHAOS_STACK_PORT_BASE", stack.base.to_string())
        .env("CHAOS_STACK_RESTORE_TIME", "60")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state = || std::fs::read_to_string(stack.dir.join("restore/state")).unwrap_or_default();
    let t = std::time::Instant::now();
    while state().trim() != "lost" {
        assert!(
            t.elapsed().as_secs() < 20,
            "the restore never lost the data: {}",
            state()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (primary, rows, _) = stack.missing(&[]);
    assert!(
        rows.is_empty(),
        "{primary} still holds {} notes",
        rows.len()
    );
    let job = pid_in(&stack.dir.join("restore/job.pid")).unwrap();
    // Its own session: the whole group (the job and its sleep).
    assert!(Command::new("kill")
        .args(["-KILL", "--", &format!("-{job}")])
        .status()
        .unwrap()
        .success());
    let o = stack.script(&["restore", "finish"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(state().trim(), "done");
    let (primary, rows, _) = stack.missing(&[]);
    assert!(!rows.is_empty(), "{primary}: nothing restored");
    let rlog = stack.log("restore/restore.log");
    assert!(
        rlog.contains("finished after an interruption at 'lost'"),
        "{rlog}"
    );
    // The app's links are back: a write through haproxy is acknowledged.
    let t = std::time::Instant::now();
    loop {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args([
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"text":"after"}"#,
            ])
            .arg(format!("http://127.0.0.1:{}/notes", stack.base + 50))
            .output()
            .unwrap();
        if o.stdout == b"201" {
            break;
        }
        assert!(
            t.elapsed().as_secs() < 20,
            "no write acknowledged after the restore was finished: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The stack's fault proxy's own event log (`GET /events`: held, released, lease expired).
fn proxy_events(stack: &Stack) -> Vec<serde_json::Value> {
    let o = Command::new("curl")
        .args(["-sfS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{}/events", stack.base + 55))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list of events: {v}"))
}
