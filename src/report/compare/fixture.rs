//! Synthetic reports for compare's tests: real recordings (per-interval HDR histograms) made
//! from chosen latencies, error counts, retries and unsent requests, SLOs judged on them by the
//! SLO code itself, written as report.json by `report::json`, as `chaos run` writes it.

use super::*;
use crate::metrics::recorder::Compact;
use crate::metrics::{hist, Outcome, MAX_ATTEMPTS};
use std::path::PathBuf;

/// A 26-interval run at 1 s intervals, the fault `f` from 10 s to the end.
const INTERVALS: usize = 26;
const FAULT_AT: usize = 10;

pub(super) fn scenario_text(rate: &str) -> String {
    format!(
        r#"name = "s"
[load]
stages = [{{ hold = "{rate}", for = "{INTERVALS}s" }}]
[[load.requests]]
name = "r"
path = "/"
[[faults]]
name = "f"
kind = "db-failover"
at = "{FAULT_AT}s"
[slo]
whole = ["throughput > 99%"]
"during:f" = ["p99 < 1s", "errors < 5%", "max < 5s", "amplification < 2"]
recovery = {{ "f" = "< 20s" }}
"#
    )
}

/// Deterministic latencies (µs): 10 ms plus an exponential tail of mean `tail_us`.
pub(super) fn latencies(seed: u64, n: usize, tail_us: f64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (10_000.0 - u.ln() * tail_us) as u64
        })
        .collect()
}

/// One run: `per` requests an interval, latencies from `seed` (tail mean `tail_us`),
/// `errors_during` failed requests spread over the fault's intervals, `not_sent` requests
/// spread over the whole run never sent, `spikes` requests of the fault's first interval at
/// 500 ms, `retried` requests of the fault's intervals with a second attempt.
pub(super) struct Spec {
    pub seed: u64,
    pub per: usize,
    pub tail_us: f64,
    pub errors_during: u64,
    pub not_sent: u64,
    pub spikes: u64,
    pub retried: u64,
    pub rate: &'static str,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            seed: 1,
            per: 1000,
            tail_us: 2_000.0,
            errors_during: 0,
            not_sent: 0,
            spikes: 0,
            retried: 0,
            rate: "1000/s",
        }
    }
}

pub(super) fn recording(sp: &Spec) -> Recording {
    let during = (INTERVALS - FAULT_AT) as u64;
    let intervals = (0..INTERVALS)
        .map(|i| {
            let share = |total: u64, over: u64, k: u64| total / over + u64::from(k < total % over);
            let not_sent = share(sp.not_sent, INTERVALS as u64, i as u64);
            let sent = sp.per as u64 - not_sent;
            let mut h = hist::new_hist();
            let spikes = if i == FAULT_AT { sp.spikes } else { 0 };
            for (k, v) in latencies(sp.seed * 1000 + i as u64, sent as usize, sp.tail_us)
                .into_iter()
                .enumerate()
            {
                hist::record(&mut h, if (k as u64) < spikes { 500_000 } else { v });
            }
            let mut outcomes = [0u64; Outcome::COUNT];
            // Spread evenly: each interval gets its share of the total, remainders first.
            let errors = if i >= FAULT_AT {
                share(sp.errors_during, during, (i - FAULT_AT) as u64)
            } else {
                0
            };
            outcomes[Outcome::Http5xx.index()] = errors;
            outcomes[Outcome::NotSent.index()] = not_sent;
            outcomes[Outcome::Ok.index()] = sent - errors;
            let retried = if i >= FAULT_AT {
                share(sp.retried, during, (i - FAULT_AT) as u64)
            } else {
                0
            };
            let mut attempts = [0u64; MAX_ATTEMPTS + 1];
            attempts[1] = sent - retried;
            attempts[2] = retried;
            attempts[0] = not_sent;
            vec![Compact {
                latency: hist::encode(&h),
                service: hist::encode(&h),
                lateness: hist::encode(&hist::new_hist()),
                outcomes,
                attempts,
                exhausted: 0,
                statuses: Default::default(),
                tags: Default::default(),
            }]
        })
        .collect();
    Recording {
        interval: Duration::from_secs(1),
        names: vec!["r".into()],
        intervals,
        failures: Vec::new(),
        tags: Vec::new(),
    }
}

/// Write the run's report.json, through the writer `chaos run` uses, into a fresh directory.
pub(super) fn run(tag: &str, sp: &Spec) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaos-compare-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let s = crate::scenario::parse_str("synthetic.toml", &scenario_text(sp.rate)).unwrap();
    let rec = recording(sp);
    let tl = crate::slo::Timeline::of(&s);
    let slo = crate::slo::evaluate(&s.slo.objectives, &rec, &tl);
    let faults = vec![crate::report::FaultRecord {
        name: "f".into(),
        kind: "db-failover".into(),
        status: crate::report::FaultStatus::Reverted,
        note: String::new(),
        injected_at_s: Some(FAULT_AT as f64),
        reverted_at_s: Some(INTERVALS as f64),
        by_hand: Default::default(),
    }];
    let r = crate::report::RunReport {
        segments: crate::load::schedule::segments(&s.load.stages),
        target_url: "http://127.0.0.1:1".into(),
        time_scale: 1.0,
        started_at: std::time::SystemTime::UNIX_EPOCH,
        wall: Duration::from_secs(INTERVALS as u64),
        interrupted: false,
        scheduled: (sp.per * INTERVALS) as u64,
        timeline: tl,
        recording: rec,
        verdict: crate::report::Verdict::of_run(&faults, false, false, &slo),
        slo,
        faults,
        durable_writes: Vec::new(),
        durable_without_id: 0,
        recoveries: Vec::new(),
        aborted: None,
        verification: None,
        journal: Vec::new(),
        events: Vec::new(),
        notes: Vec::new(),
        journeys: None,
        shards: Vec::new(),
        scenario: s,
    };
    let v = crate::report::json::render(&r);
    std::fs::write(d.join("report.json"), v.to_string()).unwrap();
    d
}

pub(super) fn edit(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("report.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

/// The stored result of the SLO written `text`.
pub(super) fn slo<'a>(v: &'a mut Value, text: &str) -> &'a mut Value {
    v["slo"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["objective"]["text"] == text)
        .unwrap()
}

pub(super) fn opts() -> Options {
    Options::default()
}

pub(super) fn flagged(c: &Comparison) -> Vec<String> {
    c.rows
        .iter()
        .filter(|r| r.is_regression())
        .map(|r| format!("{} {}", r.window, r.what))
        .collect()
}

pub(super) fn row<'a>(c: &'a Comparison, window: &str, what: &str) -> &'a Row {
    c.rows
        .iter()
        .find(|r| r.window == window && r.what == what)
        .unwrap_or_else(|| panic!("no row {window} {what}: {}", render(c)))
}
