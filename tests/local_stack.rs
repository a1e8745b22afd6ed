//! The local stack (`ci/local-stack.sh`: PostgreSQL 15 under Patroni with etcd, Redis with
//! three Sentinels, all real, on loopback) with the process driver: db-failover kills the
//! node that is the primary — its Patroni and its postmaster — and Patroni on the other node
//! promotes itself, as Aurora would, not the harness; cache-failover kills the Redis primary
//! and Sentinel promotes the replica. Each revert starts the old primary again and it rejoins
//! as a replica. The times are the HA machinery's own, read back from its logs beside what
//! the test measured. The stack is started by the test and stopped by pid at the end, its
//! directory removed. (ci/test.sh installs the Debian packages.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use chaos::drivers::local::LocalDriver;
use chaos::fault::{Driver, FaultPlan, Undo};
use chaos::scenario::{Fault, FaultKind};
use chaos::target::Kind;
use common::stack::{alive, logged_at, pid_in, started_s, Stack, ONE};

async fn until(what: &str, limit: Duration, f: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

fn fault(name: &str, kind: FaultKind) -> Fault {
    Fault {
        name: name.into(),
        kind,
        at: Duration::ZERO,
        duration: None,
    }
}

async fn inject(d: &LocalDriver, f: &Fault) -> (FaultPlan, Undo) {
    let p = d.plan(f).await.unwrap();
    let undo = d.inject(&p).await.unwrap();
    let t = Instant::now();
    while let Err(e) = d.confirm(&p, &undo).await {
        assert!(t.elapsed() < Duration::from_secs(5), "not confirmed: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (p, undo)
}

fn killed(undo: &Undo) -> Vec<String> {
    undo["signalled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n[0].as_str().unwrap().to_string())
        .collect()
}

// The lock only keeps the two tests of this file from running at once (each has its own
// runtime); no task of this runtime ever waits for it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_and_sentinel_promote_a_replica_when_the_process_driver_kills_the_primary() {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let stack = Stack::up(0);
    let text = String::from_utf8(stack.script(&["target"]).stdout).unwrap();
    let t = chaos::target::parse_str("local-stack.toml", &text)
        .unwrap_or_else(|d| panic!("{d}\n{text}"));
    let Kind::Local(l) = &t.kind else { panic!() };
    let d = LocalDriver::connect(l).await.unwrap();
    assert_eq!(
        stack.in_recovery("pg1"),
        Some(false),
        "pg1 bootstraps as the leader"
    );

    // --- PostgreSQL: the primary node dies; Patroni promotes the replica.
    let (p, undo) = inject(&d, &fault("db", FaultKind::DbFailover {})).await;
    assert!(p.targets[0].contains("pg1, pg2"), "{:?}", p.targets);
    assert_eq!(killed(&undo), ["pg1"], "the primary, and only it");
    let promoted = until("Patroni promotes pg2", Duration::from_secs(60), || {
        stack.in_recovery("pg2") == Some(false)
    })
    .await;
    let log = stack.log("pg2/patroni.log");
    assert!(log.contains("promoted self to leader"), "{log}");
    // Node death is seen when the leader key's ttl (10 s) runs out: the promotion is
    // Patroni's, not the harness's (killing the postmaster alone is restarted in place).
    eprintln!("db-failover: pg2 promoted {promoted:?} after the kill");
    assert!(
        promoted > Duration::from_secs(3),
        "promoted in {promoted:?}: not by Patroni's ttl?"
    );
    // The control plane as the driver reads it: pg1 down, pg2 primary.
    let snap = d.observe(&[]).unwrap().await.unwrap();
    assert_eq!(snap["process pg1"], "not running", "{snap:?}");
    assert_eq!(snap["process pg2 role"], "primary", "{snap:?}");
    // The revert starts pg1 again; Patroni makes it a replica of the new leader (pg_rewind).
    d.revert(&undo).await.unwrap();
    let rejoined = until(
        "pg1 rejoins as a streaming replica",
        Duration::from_secs(60),
        || stack.in_recovery("pg1") == Some(true) && stack.streaming("pg2") >= 1,
    )
    .await;
    eprintln!("db-failover revert: pg1 a replica {rejoined:?} after its start");

    // --- Redis: the primary dies; the Sentinels promote the replica.
    // Each Redis node on its own port, known to everyone (Sentinels included) by its link
    // through the fault proxy.
    let (r1, r2) = (stack.base + 30, stack.base + 31);
    let (r1_link, r2_link) = (stack.base + 32, stack.base + 33);
    assert_eq!(stack.sentinel_primary(), r1_link.to_string());
    let (_, undo) = inject(&d, &fault("cache", FaultKind::CacheFailover {})).await;
    assert_eq!(killed(&undo), ["r1"]);
    let switched = until("Sentinel switches to r2", Duration::from_secs(30), || {
        stack.sentinel_primary() == r2_link.to_string()
    })
    .await;
    // Sentinel names the new primary while it reconfigures the replicas, before it logs
    // +switch-master (about a second later): wait for the log line.
    until(
        "Sentinel logs +switch-master",
        Duration::from_secs(15),
        || stack.log("s1/sentinel.log").contains("+switch-master"),
    )
    .await;
    let slog = stack.log("s1/sentinel.log");
    let at = logged_at(&slog, "+switch-master").unwrap_or_else(|| panic!("{slog}"));
    let sdown = logged_at(&slog, "+sdown master").unwrap_or_else(|| panic!("{slog}"));
    eprintln!(
        "cache-failover: Sentinel switched {switched:?} after the kill; its log: +sdown to \
         +switch-master {:.2} s",
        at - sdown
    );
    // down-after-milliseconds is 1 s: the switch comes after it, by Sentinel's own clock.
    assert!(at - sdown >= 0.0 && at - sdown < 10.0, "{slog}");
    assert_eq!(stack.redis_role(r2), "master");
    d.revert(&undo).await.unwrap();
    until(
        "r1 comes back as a replica",
        Duration::from_secs(30),
        || stack.redis_role(r1) == "slave",
    )
    .await;
    // `down` stops every process the stack started, by pid, and removes its directory.
    let dir = stack.dir.clone();
    let pids: Vec<(String, i32)> = [
        "etcd/etcd.pid",
        "pg1/patroni.pid",
        "pg1/data/postmaster.pid",
        "pg2/patroni.pid",
        "pg2/data/postmaster.pid",
        "r1/redis.pid",
        "r2/redis.pid",
        "s1/sentinel.pid",
        "s2/sentinel.pid",
        "s3/sentinel.pid",
        "a1/app.pid",
        "a2/app.pid",
        "a3/app.pid",
        "lb/haproxy.pid",
        "proxy/proxy.pid",
    ]
    .iter()
    .filter_map(|f| Some((f.to_string(), pid_in(&dir.join(f))?)))
    .collect();
    // Every process had a pid, but for a postmaster Patroni may be restarting at this instant.
    let named: Vec<&str> = pids.iter().map(|(f, _)| f.as_str()).collect();
    for f in [
        "etcd/",
        "pg1/patroni",
        "pg2/patroni",
        "r1/",
        "r2/",
        "s1/",
        "s2/",
        "s3/",
        "a1/",
        "a2/",
        "a3/",
        "lb/",
        "proxy/",
    ] {
        assert!(
            named.iter().any(|n| n.starts_with(f)),
            "no pid for {f}: {named:?}"
        );
    }
    drop(d);
    drop(stack);
    assert!(!dir.exists(), "down removes the stack's directory");
    for (f, pid) in pids {
        assert!(!alive(pid), "{f}: pid {pid} still runs after down");
    }
}

/// The stack tests' clock: log lines of both formats and a run's start, across midnight, in
/// seconds since the epoch.
#[test]
fn log_times_across_midnight_and_formats() {
    let patroni = "2026-12-07 00:00:11,955 INFO: promoted self to leader by acquiring session lock";
    let redis = "123:X 06 Dec 2026 23:59:58.500 # +switch-master chaos 127.0.0.1 1 127.0.0.1 2";
    let p = logged_at(patroni, "promoted").unwrap();
    let r = logged_at(redis, "+switch-master").unwrap();
    assert!((p - r - 13.455).abs() < 1e-6, "{p} {r}");
    // 2026-12-06 is day 20,793 since the epoch.
    let day = serde_json::json!({ "started_at": "2026-12-06T00:00:00Z" });
    assert_eq!(started_s(&day), 20_793.0 * 86400.0);
    let run = serde_json::json!({ "started_at": "2026-12-06T23:59:50.000Z" });
    assert!((p - started_s(&run) - 21.955).abs() < 1e-6);
}
