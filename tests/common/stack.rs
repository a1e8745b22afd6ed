//! The local stack (`ci/local-stack.sh`) for the tests that run against it: started in a port
//! block of its own, asked directly (psql, redis-cli, its logs), stopped by pid when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Stack {
    pub dir: PathBuf,
    pub base: u16,
    /// Patroni's synchronous mode (`CHAOS_STACK_SYNC=1`), else asynchronous replication.
    pub sync: bool,
}

impl Stack {
    pub fn script(&self, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/local-stack.sh"))
            .args(args)
            .env("CHAOS_STACK_DIR", &self.dir)
            .env("CHAOS_STACK_PORT_BASE", self.base.to_string())
            .env("CHAOS_BIN", env!("CARGO_BIN_EXE_chaos"))
            .env("CHAOS_STACK_SYNC", if self.sync { "1" } else { "0" })
            .output()
            .unwrap()
    }

    pub fn up(slot: u16) -> Stack {
        Stack::up_with(slot, false)
    }

    /// [`Stack::up`] with Patroni's synchronous mode (`sync`) or asynchronous replication.
    pub fn up_with(slot: u16, sync: bool) -> Stack {
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
        // A port block of its own: 60 ports from a base no other test uses (three slots per
        // process, so two test binaries' blocks never overlap).
        // (Below Linux's ephemeral range, 32768 and up, which outgoing connections take.)
        let base = 20_000 + (std::process::id() % 60) as u16 * 180 + slot * 60;
        let s = Stack {
            dir: std::env::temp_dir().join(format!("chaos-stack-{}-{slot}", std::process::id())),
            base,
            sync,
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

    pub fn pg_port(&self, n: &str) -> u16 {
        self.base + if n == "pg1" { 10 } else { 20 }
    }

    /// What `sql` prints on PostgreSQL node `n` (`psql -tA`; empty when it does not answer
    /// within `connect_s`).
    pub fn psql(&self, n: &str, sql: &str, connect_s: u32) -> String {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg_port(n).to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-tAqc", sql])
            .env("PGCONNECT_TIMEOUT", connect_s.to_string())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `pg_is_in_recovery()` of a node: Some(false) on the primary; None when it does not answer.
    pub fn in_recovery(&self, n: &str) -> Option<bool> {
        match self.psql(n, "select pg_is_in_recovery()", 1).trim() {
            "t" => Some(true),
            "f" => Some(false),
            _ => None,
        }
    }

    /// How many replicas stream from node `n`.
    pub fn streaming(&self, n: &str) -> u32 {
        self.psql(
            n,
            "select count(*) from pg_stat_replication where state = 'streaming'",
            1,
        )
        .trim()
        .parse()
        .unwrap_or(0)
    }

    pub fn sentinel_primary(&self) -> String {
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

    pub fn redis_role(&self, port: u16) -> String {
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

    pub fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }
}

/// One stack at a time: each is a dozen real servers on a 2-core machine.
pub static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}

/// The time of the first log line that holds `needle` (Patroni's `YYYY-MM-DD HH:MM:SS,mmm` or
/// Redis's `DD Mon YYYY HH:MM:SS.mmm`, UTC here), as seconds since the Unix epoch: a run that
/// crosses midnight compares its times as any other.
pub fn logged_at(log: &str, needle: &str) -> Option<f64> {
    logged_times(log, needle).into_iter().next()
}

/// The times of every log line that holds `needle`, as seconds since the Unix epoch.
pub fn logged_times(log: &str, needle: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(line_time)
        .collect()
}

fn line_time(line: &str) -> Option<f64> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w
        .iter()
        .position(|w| w.len() >= 12 && w.as_bytes()[2] == b':' && w.as_bytes()[5] == b':')?;
    // The date before it: `YYYY-MM-DD` (Patroni) or `DD Mon YYYY` (Redis).
    let (y, m, d) = match w[..i] {
        [.., ymd] if ymd.len() == 10 && ymd.as_bytes()[4] == b'-' => {
            let mut p = ymd.split('-').map(str::parse::<i64>);
            (p.next()?.ok()?, p.next()?.ok()?, p.next()?.ok()?)
        }
        [.., d, mon, y] => {
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let m = MONTHS.iter().position(|x| *x == mon)? as i64 + 1;
            (y.parse().ok()?, m, d.parse().ok()?)
        }
        _ => return None,
    };
    Some(epoch_days(y, m, d) as f64 * 86400.0 + day_seconds(w[i])?)
}

/// `HH:MM:SS.mmm` (or `,mmm`) as seconds of the day.
fn day_seconds(hms: &str) -> Option<f64> {
    let (h, rest) = hms.split_once(':')?;
    let (m, s) = rest.split_once(':')?;
    Some(
        h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + s.replace(',', ".").parse::<f64>().ok()?,
    )
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d`.
fn epoch_days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn pid_in(f: &Path) -> Option<i32> {
    std::fs::read_to_string(f)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].trim_start().chars().next())
            .is_some_and(|c| c != 'Z')
    })
}

impl Stack {
    /// `chaos run NAME` (or a scenario file) at half its length on this stack (the target file `up` wrote):
    /// its exit code, its stderr and its report.
    pub fn run(&self, scenario: &str) -> (Option<i32>, String, serde_json::Value) {
        // A shipped name or a file's path: the run directory is named after its stem.
        let stem = Path::new(scenario).file_stem().unwrap();
        let out = self.dir.join("runs").join(stem);
        let o = Command::new(env!("CARGO_BIN_EXE_chaos"))
            .args([
                "run",
                scenario,
                "--time-scale",
                "0.5",
                "--quiet",
                "--target",
            ])
            .arg(self.dir.join("target.toml"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let report = std::fs::read_to_string(out.join("report.json"))
            .unwrap_or_else(|e| panic!("{scenario}: no report ({e}): {stderr}"));
        (
            o.status.code(),
            stderr,
            serde_json::from_str(&report).unwrap(),
        )
    }

    /// The ids in the notes table of PostgreSQL node `n`, asked directly.
    pub fn notes(&self, n: &str) -> std::collections::BTreeSet<i64> {
        self.psql(n, "select id from notes", 2)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The primary now (pg2 asked first: a thawed or restarted pg1 can answer as a primary for a
    /// moment before Patroni demotes it), its ids, and the `acked` ids it lacks, in order.
    pub fn missing(
        &self,
        acked: &[i64],
    ) -> (&'static str, std::collections::BTreeSet<i64>, Vec<i64>) {
        let primary = if self.in_recovery("pg2") == Some(false) {
            "pg2"
        } else {
            "pg1"
        };
        let present = self.notes(primary);
        let missing = acked
            .iter()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        (primary, present, missing)
    }
}

/// When a run started, as seconds since the Unix epoch (UTC, the logs' clock here).
pub fn started_s(r: &serde_json::Value) -> f64 {
    let t = r["started_at"].as_str().unwrap();
    let (date, time) = t.trim_end_matches('Z').split_once('T').unwrap();
    let ymd: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    epoch_days(ymd[0], ymd[1], ymd[2]) as f64 * 86400.0 + day_seconds(time).unwrap()
}

/// The acknowledged durable writes' ids, and those the read-back found lost.
pub fn acked_and_lost(r: &serde_json::Value) -> (Vec<i64>, Vec<i64>) {
    fn id(v: &serde_json::Value) -> i64 {
        let v = if v.is_object() { &v["id"] } else { v };
        v.as_str()
            .map_or_else(|| v.as_i64().unwrap(), |s| s.parse().unwrap())
    }
    let ids =
        |v: &serde_json::Value| -> Vec<i64> { v.as_array().unwrap().iter().map(id).collect() };
    (
        ids(&r["durable"]["writes"]),
        ids(&r["durable"]["read_back"]["lost"]),
    )
}

/// The measured value of the SLO `text` in `window` (`baseline`, `during:FAULT`, `after:FAULT`).
pub fn slo_value(r: &serde_json::Value, window: &str, text: &str) -> f64 {
    let (kind, fault) = window.split_once(':').unwrap_or((window, ""));
    r["slo"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            let w = &o["objective"]["window"];
            o["objective"]["text"] == text
                && w["type"] == kind
                && (fault.is_empty() || w["fault"] == fault)
        })
        .and_then(|o| o["value"].as_f64())
        .unwrap_or_else(|| panic!("no measured `{text}` in {window}: {}", r["slo"]))
}

/// The control-plane events of a run as `what: from -> to` lines, for messages and matching.
pub fn events(r: &serde_json::Value) -> Vec<String> {
    r["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{:.1} {}: {} -> {}",
                e["at_s"].as_f64().unwrap_or(0.0),
                e["what"].as_str().unwrap_or(""),
                e["from"].as_str().unwrap_or(""),
                e["to"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// When (run clock) the run's control-plane watch read a line holding `needle` from the
/// stack's log `log` (the target's `[logs.NAME]`), if it did.
pub fn log_event(r: &serde_json::Value, log: &str, needle: &str) -> Option<f64> {
    let prefix = format!("log {log} #");
    r["timeline"]["events"]
        .as_array()?
        .iter()
        .find(|e| {
            e["what"].as_str().is_some_and(|w| w.starts_with(&prefix))
                && e["to"].as_str().is_some_and(|t| t.contains(needle))
        })
        .and_then(|e| e["at_s"].as_f64())
}
