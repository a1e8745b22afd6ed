//! Runs of the library on a real sandbox (in this process, on loopback) with a driver the test
//! wraps around the real sandbox driver: a fault that never shows, a driver that panics, a
//! live view that panics. What was a `CHAOS_SELFTEST_*` hook in the product is a driver or a
//! progress sink injected through [`chaos::run::run_connected`] (oha's habit: call the library).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chaos::drivers::sandbox::SandboxDriver;
use chaos::fault::{BoxFut, Driver, DriverError, FaultPlan, Undo};
use chaos::load::{Progress, ProgressSnapshot};
use chaos::report::{FaultStatus, Verdict};
use chaos::run::{run_connected, RunOptions};
use chaos::sandbox::{Sandbox, SandboxConfig};
use chaos::scenario::Fault;
use chaos::shutdown::Shutdown;
use chaos::target::Connected;
use common::cli::{count, lines, tmpdir};

/// 6 s of 50 req/s; zone a down from 1 s for 4 s; the outage must not fail the service.
const SCENARIO: &str = r#"
name = "injected"
[load]
peak_rps = 50
stages = [{ hold = "1x", for = "6s" }]
[[load.requests]]
name = "list"
path = "/notes"
[[faults]]
name = "zone-a-down"
kind = "az-outage"
zone = "a"
at = "1s"
for = "4s"
[slo]
whole = ["errors < 50%"]
"during:zone-a-down" = ["errors < 50%"]
"#;

/// What the wrapped driver does differently from the real one.
#[derive(Clone, Copy, PartialEq)]
enum Twist {
    /// `confirm` never sees the fault (it is applied all the same).
    NeverConfirms,
    /// The first `revert` panics (a driver bug in the fault timeline).
    PanicsOnRevert,
    /// `inject` does its work, then panics before returning the undo data: only the journal's
    /// `intent` (with undo data built from the plan) knows the fault is applied.
    PanicsAfterInject,
    /// Nothing: the real driver (and, with `UnwritableReports`, a run directory whose
    /// report.json cannot be written).
    None,
    UnwritableReports,
}

struct Wrapped {
    inner: SandboxDriver,
    twist: Twist,
    panicked: AtomicBool,
}

impl Driver for Wrapped {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        self.inner.plan(f)
    }
    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            let undo = self.inner.inject(p).await;
            if self.twist == Twist::PanicsAfterInject {
                panic!("test driver panics after its inject");
            }
            undo
        })
    }
    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        if self.twist == Twist::PanicsOnRevert && !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("test driver panics in revert");
        }
        self.inner.revert(undo)
    }
    fn undo_for(&self, p: &FaultPlan) -> Undo {
        self.inner.undo_for(p)
    }
    fn confirm<'a>(
        &'a self,
        p: &'a FaultPlan,
        undo: &'a Undo,
    ) -> BoxFut<'a, Result<(), DriverError>> {
        if self.twist == Twist::NeverConfirms {
            return Box::pin(async {
                Err(DriverError::retryable(
                    "the test driver never sees the fault",
                ))
            });
        }
        self.inner.confirm(p, undo)
    }
    fn confirm_deadline(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A live view that panics once the run is `after` old (a bug in the load path).
struct PanicsAfter(Duration);
impl Progress for PanicsAfter {
    fn update(&mut self, s: &ProgressSnapshot) {
        if s.elapsed >= self.0 {
            panic!("test progress panics in the load path");
        }
    }
    fn finish(&mut self, _: &ProgressSnapshot) {}
}

struct Quiet;
impl Progress for Quiet {
    fn update(&mut self, _: &ProgressSnapshot) {}
    fn finish(&mut self, _: &ProgressSnapshot) {}
}

/// Run SCENARIO on a fresh in-process sandbox (its events in `dir`) with `twist`, in a task of
/// its own so a panic comes back as a `JoinError`.
async fn run(
    tag: &str,
    twist: Twist,
    progress: Box<dyn Progress>,
) -> (
    std::path::PathBuf,
    Result<Result<chaos::run::RunOutcome, chaos::run::RunError>, tokio::task::JoinError>,
) {
    let dir = tmpdir(tag);
    std::fs::create_dir_all(&dir).unwrap();
    if twist == Twist::UnwritableReports {
        // A directory where report.json goes: writing it fails once the run is over.
        std::fs::create_dir_all(dir.join("report.json")).unwrap();
    }
    let sb = Sandbox::start(
        SandboxConfig::default(),
        Some(&dir.join("sandbox-events.jsonl")),
    )
    .await
    .unwrap();
    let driver = Wrapped {
        inner: SandboxDriver::new(&sb.control_url),
        twist,
        panicked: AtomicBool::new(false),
    };
    let c = Connected::given(&sb.lb_url, Some(Box::new(driver)));
    let s = chaos::scenario::parse_str("injected.toml", SCENARIO).unwrap();
    let opts = RunOptions {
        progress_every: Duration::from_millis(200),
        ..RunOptions::default()
    };
    let d = dir.clone();
    let r = tokio::spawn(async move {
        let mut progress = progress;
        let shutdown = Arc::new(Shutdown::new());
        run_connected(&opts, s, c, &d, shutdown, progress.as_mut()).await
    })
    .await;
    sb.stop();
    (dir, r)
}

fn steps(dir: &std::path::Path) -> Vec<String> {
    lines(&dir.join("journal.jsonl"))
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect()
}

/// A fault the driver's own read calls never show is reverted at once and fails the run with
/// exit 4 — even though every SLO holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_fault_fails_the_run_with_exit_4() {
    let (dir, r) = run("unconfirmed", Twist::NeverConfirms, Box::new(Quiet)).await;
    let o = r.unwrap().unwrap();
    let f = &o.report.faults[0];
    assert_eq!(f.status, FaultStatus::Unconfirmed, "{}", f.note);
    assert!(f.note.contains("never sees the fault"), "{}", f.note);
    assert_eq!(o.report.verdict, Verdict::FaultError);
    assert_eq!(o.report.verdict.exit_code(), 4);
    assert_eq!(steps(&dir), ["intent", "applied", "failed", "reverted"]);
    // The zone really went down (the inject was real) and is back.
    let ev = lines(&dir.join("sandbox-events.jsonl"));
    assert_eq!(count(&ev, "zone_down"), 1);
    assert_eq!(count(&ev, "zone_up"), 1);
    // Its SLOs are not judged as if the outage had been measured.
    let during = o
        .report
        .slo
        .iter()
        .find(|s| s.objective.window_label().starts_with("during"))
        .unwrap();
    assert_eq!(during.status, chaos::slo::Status::NotJudged);
}

/// The same run with the real driver is a pass: the twist above is what failed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_run_with_the_real_driver_passes() {
    let (dir, r) = run("confirmed", Twist::None, Box::new(Quiet)).await;
    let o = r.unwrap().unwrap();
    assert_eq!(o.report.faults[0].status, FaultStatus::Reverted);
    assert_eq!(o.report.verdict, Verdict::Pass, "{}", o.summary);
    assert_eq!(steps(&dir), ["intent", "applied", "confirmed", "reverted"]);
}

/// A panic inside the run — in the load path (the live view) or in the fault timeline (the
/// driver) — still reverts the applied fault before the panic goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_mid_fault_still_reverts_it() {
    for (place, twist, progress) in [
        (
            "load",
            Twist::None,
            Box::new(PanicsAfter(Duration::from_millis(2500))) as Box<dyn Progress>,
        ),
        ("faults", Twist::PanicsOnRevert, Box::new(Quiet)),
        ("inject", Twist::PanicsAfterInject, Box::new(Quiet)),
    ] {
        let (dir, r) = run(&format!("panic-{place}"), twist, progress).await;
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{place}: the run did not panic"));
        assert!(e.is_panic(), "{place}: {e}");
        let msg = e.into_panic();
        let msg = msg
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| msg.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("test "), "{place}: {msg}");
        // In the load path the timeline reverts (shutdown); in the timeline the journal is
        // rolled back as `chaos rollback` would.
        // A panic inside the inject leaves only its intent: rolled back from the plan's undo.
        let want: &[&str] = if place == "inject" {
            &["intent", "reverted"]
        } else {
            &["intent", "applied", "confirmed", "reverted"]
        };
        assert_eq!(steps(&dir), want, "{place}");
        let ev = lines(&dir.join("sandbox-events.jsonl"));
        assert_eq!(count(&ev, "zone_down"), 1, "{place}");
        assert_eq!(count(&ev, "zone_up"), 1, "{place}: zone a is back");
    }
}

/// A run that finished but cannot write its reports says its verdict, and a pass without its
/// reports is not a pass (exit 2); the faults were still reverted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_reports_cannot_be_written_says_its_verdict() {
    let (dir, r) = run("unreported", Twist::UnwritableReports, Box::new(Quiet)).await;
    let e = match r.unwrap() {
        Ok(_) => panic!("report.json is a directory: writing it must fail"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains("the run ended PASS"), "{msg}");
    assert!(msg.contains("its reports could not be written"), "{msg}");
    assert_eq!(e.exit_code(), 2, "a pass without reports");
    assert_eq!(steps(&dir), ["intent", "applied", "confirmed", "reverted"]);
}
