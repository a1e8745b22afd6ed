//! The local stack (`ci/local-stack.sh`: PostgreSQL 15 under Patroni with etcd, Redis with
//! three Sentinels, all real, on loopback) with the process driver: db-failover kills the
//! node that is the primary — its Patroni and its postmaster — and Patroni on the other node
//! promotes itself, as Aurora would, not the harness; cache-failover kills the Redis primary
//! and Sentinel promotes the replica. Each revert starts the old primary again and it rejoins
//! as a replica. The times are the HA machinery's own, read back from its logs beside what
//! the test measured. The stack is started by the test and stopped by pid at the end, its
//! directory removed. (ci/test.sh installs the Debian packages.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chaos::drivers::local::LocalDriver;
use chaos::fault::{Driver, FaultPlan, Undo};
use chaos::scenario::{Fault, FaultKind};
use chaos::target::Kind;

struct Stack {
    dir: PathBuf,
    base: u16,
}

impl Stack {
    fn script(&self, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/local-stack.sh"))
            .args(args)
            .env("CHAOS_STACK_DIR", &self.dir)
            .env("CHAOS_STACK_PORT_BASE", self.base.to_string())
            .env("CHAOS_BIN", env!("CARGO_BIN_EXE_chaos"))
            .output()
            .unwrap()
    }

    fn up(slot: u16) -> Stack {
        for c in ["patroni", "etcd", "redis-sentinel", "psql", "haproxy"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {c}")])
                .output()
                .unwrap()
                .status
                .success();
            assert!(
                found,
                "{c} is not installed: ci/test.sh installs patroni etcd-server postgresql-15 \
                 redis-server redis-sentinel redis-tools haproxy"
            );
        }
        // A port block of its own: 60 ports from a base no other test uses.
        // (Below Linux's ephemeral range, 32768 and up, which outgoing connections take.)
        let base = 20_000 + (std::process::id() % 100) as u16 * 120 + slot * 60;
        let s = Stack {
            dir: std::env::temp_dir().join(format!("chaos-stack-{}-{slot}", std::process::id())),
            base,
        };
        let o = s.script(&["up"]);
        if !o.status.success() {
            let logs: String = ["etcd/etcd.log", "pg1/patroni.log", "pg2/patroni.log"]
                .iter()
                .map(|f| {
                    let t = s.log(f);
                    let tail: Vec<&str> = t.lines().rev().take(15).collect();
                    format!(
                        "--- {f}\n{}\n",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            panic!(
                "the stack did not come up:\n{}\n{logs}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        s
    }

    fn pg_port(&self, n: &str) -> u16 {
        self.base + if n == "pg1" { 10 } else { 20 }
    }

    /// `pg_is_in_recovery()` of a node: Some(false) on the primary; None when it does not answer.
    fn in_recovery(&self, n: &str) -> Option<bool> {
        let o = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg_port(n).to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAqc",
                "select pg_is_in_recovery()",
            ])
            .env("PGCONNECT_TIMEOUT", "1")
            .output()
            .ok()?;
        match String::from_utf8_lossy(&o.stdout).trim() {
            "t" => Some(true),
            "f" => Some(false),
            _ => None,
        }
    }

    /// How many replicas stream from node `n`.
    fn streaming(&self, n: &str) -> u32 {
        let o = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg_port(n).to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-tAqc"])
            .arg("select count(*) from pg_stat_replication where state = 'streaming'")
            .env("PGCONNECT_TIMEOUT", "1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    fn sentinel_primary(&self) -> String {
        let o = Command::new("redis-cli")
            .args(["-p", &(self.base + 40).to_string()])
            .args(["sentinel", "get-master-addr-by-name", "chaos"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap_or("")
            .to_string()
    }

    fn redis_role(&self, port: u16) -> String {
        let o = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "role"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }
}

/// One stack at a time: each is a dozen real servers on a 2-core machine.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}

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

/// The time of the first log line after `from` that holds `needle` (Patroni's
/// `YYYY-MM-DD HH:MM:SS,mmm` or Redis's `DD Mon YYYY HH:MM:SS.mmm`), as seconds of the day.
fn logged_at(log: &str, needle: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let hms = line
        .split_whitespace()
        .find(|w| w.len() >= 12 && w.as_bytes()[2] == b':' && w.as_bytes()[5] == b':')?;
    let (h, rest) = hms.split_once(':')?;
    let (m, s) = rest.split_once(':')?;
    Some(
        h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + s.replace(',', ".").parse::<f64>().ok()?,
    )
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

fn pid_in(f: &Path) -> Option<i32> {
    std::fs::read_to_string(f)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].trim_start().chars().next())
            .is_some_and(|c| c != 'Z')
    })
}

/// The shipped `db-failover` scenario against the stack (haproxy, three app nodes on the real
/// PostgreSQL and Redis): the run kills the primary node, Patroni promotes the replica, and the
/// report's recovery matches Patroni's own promotion within an interval; the lost writes the
/// read-back reports are exactly the acknowledged ids the promoted primary lacks, by querying
/// it directly.
#[test]
fn the_shipped_db_failover_runs_on_the_stack_with_patronis_promotion_beside_the_recovery() {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let stack = Stack::up(1);
    let target = stack.dir.join("target.toml");
    std::fs::write(&target, stack.script(&["target"]).stdout).unwrap();
    let out = stack.dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            "db-failover",
            "--time-scale",
            "0.5",
            "--quiet",
            "--target",
        ])
        .arg(&target)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    // An honest verdict either way (writes fail while Patroni waits out its ttl).
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let fault = &r["timeline"]["faults"][0];
    assert_eq!(fault["status"], "reverted", "{fault}");
    let rec = r["recovery"][0]["from_inject_s"]
        .as_f64()
        .expect("recovered");
    // Patroni's promotion, by its own log, on the run's clock.
    let log = stack.log("pg2/patroni.log");
    let promoted = logged_at(&log, "promoted self to leader").unwrap_or_else(|| panic!("{log}"));
    let started = r["started_at"].as_str().unwrap();
    let t = started.split('T').nth(1).unwrap().trim_end_matches('Z');
    let hms: Vec<f64> = t.split(':').map(|x| x.parse().unwrap()).collect();
    let start_s = hms[0] * 3600.0 + hms[1] * 60.0 + hms[2];
    let inject_s = fault["injected_at_s"].as_f64().unwrap();
    let patroni = promoted - start_s - inject_s;
    eprintln!("recovery measured {rec:.2} s after the inject; Patroni promoted pg2 {patroni:.2} s after it");
    let interval = r["interval_s"].as_f64().unwrap();
    assert!(
        (rec - patroni).abs() <= interval + 1.0,
        "recovery {rec} s vs Patroni's promotion {patroni} s"
    );
    // The control-plane events show pg2 becoming the primary.
    let ev = r["timeline"]["events"].to_string();
    assert!(ev.contains("process pg2 role"), "{ev}");
    // Lost writes: the acknowledged ids the promoted primary lacks, asked directly.
    let acked: Vec<i64> = r["durable"]["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(!acked.is_empty());
    let primary = if stack.in_recovery("pg2") == Some(false) {
        "pg2"
    } else {
        "pg1"
    };
    let o = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &stack.pg_port(primary).to_string()])
        .args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAqc",
            "select id from notes",
        ])
        .output()
        .unwrap();
    let present: std::collections::BTreeSet<i64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let missing: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|i| !present.contains(i))
        .collect();
    let lost: Vec<i64> = r["durable"]["read_back"]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["id"]
                .as_str()
                .map_or_else(|| w.as_i64().unwrap(), |s| s.parse().unwrap())
        })
        .collect();
    assert_eq!(
        lost, missing,
        "the read-back's lost writes vs the promoted primary's table"
    );
}
