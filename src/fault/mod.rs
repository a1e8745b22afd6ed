//! Faults at run time: the [`Driver`] trait, the fault timeline that injects and reverts on
//! schedule, and the journal that makes every step recoverable.
//!
//! The timeline never learns how the load is doing (DESIGN.md: a fault is seen in the numbers
//! or not at all). It injects each fault at its `at`, reverts it after its `for` (or at the end
//! of the run), and on shutdown (Ctrl-C, SIGTERM) reverts everything still applied at once.
//! A revert that fails is retried; if it still fails, the run ends with exit 4 and a message
//! saying what is still applied and the command that undoes it.

pub mod journal;

use std::future::Future;
use std::pin::Pin;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::scenario::Fault;
use crate::shutdown::Shutdown;
use journal::{Journal, Record, Step};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Undo data: what `revert` needs, self-contained (a rollback in another process uses it).
pub type Undo = serde_json::Value;

/// One call a driver makes: shown by plans, kept in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub method: String,
    pub path: String,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A fault resolved against a target: what it hits and every call it would make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultPlan {
    pub fault: String,
    pub kind: String,
    /// Resources hit (node ids, zone, instance names): the blast radius.
    pub targets: Vec<String>,
    pub inject: Vec<Call>,
    /// Idempotent calls that undo the inject; empty when nothing can be undone (a failover
    /// stays done, as on AWS).
    pub revert: Vec<Call>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The driver cannot do this fault on this target (found at plan time).
    #[error("{0}")]
    Unsupported(String),
    /// A call failed.
    #[error("{0}")]
    Call(String),
}

/// How faults are done on one kind of target (DESIGN.md "Driver"). All three steps are
/// idempotent; `plan` changes nothing.
pub trait Driver: Send + Sync {
    fn name(&self) -> &'static str;
    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>>;
    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>>;
    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>>;
    /// Undo data built from a plan alone (its idempotent revert calls): used when an inject
    /// failed halfway or the process died between `intent` and `applied`.
    fn undo_for(&self, p: &FaultPlan) -> Undo;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Injected and reverted (or nothing to revert).
    Reverted,
    /// The run ended before its time came (interrupted).
    NotReached,
    InjectFailed,
    /// Still applied: the revert failed after retries.
    RevertFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub kind: String,
    pub status: Status,
    /// Offsets from the start of the run.
    pub injected_at_s: Option<f64>,
    pub reverted_at_s: Option<f64>,
    pub error: Option<String>,
    #[serde(skip)]
    pub undo: Option<Undo>,
}

/// Run the fault timeline: inject and revert on schedule from `start`, stop early on
/// `shutdown`, and always revert whatever is still applied before returning.
pub async fn run_timeline(
    faults: &[Fault],
    plans: &[FaultPlan],
    driver: &dyn Driver,
    journal: &Journal,
    start: Instant,
    end: Duration,
    shutdown: &Shutdown,
) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = faults
        .iter()
        .map(|f| Outcome {
            name: f.name.clone(),
            kind: f.kind.name().to_string(),
            status: Status::NotReached,
            injected_at_s: None,
            reverted_at_s: None,
            error: None,
            undo: None,
        })
        .collect();
    // (time, revert first at equal times, fault index)
    let mut steps: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        steps.push((f.at, false, i));
        steps.push((f.duration.map_or(end, |d| f.at + d).min(end), true, i));
    }
    steps.sort_by_key(|s| (s.0, !s.1, s.2));
    let mut applied: Vec<usize> = Vec::new();
    for (t, is_revert, i) in steps {
        let wait = tokio::time::sleep_until((start + t).into());
        tokio::select! {
            _ = wait => {}
            _ = shutdown.wait() => break,
        }
        if is_revert {
            if applied.contains(&i) {
                revert_one(driver, journal, &faults[i], &mut out[i], start).await;
                applied.retain(|&a| a != i);
            }
        } else if inject_one(driver, journal, &faults[i], &plans[i], &mut out[i], start).await {
            applied.push(i);
        }
    }
    // The end of the run, an interrupt, or an early stop: revert everything still applied,
    // newest first.
    for i in applied.into_iter().rev() {
        revert_one(driver, journal, &faults[i], &mut out[i], start).await;
    }
    out
}

fn journal_write(journal: &Journal, r: &Record) -> Result<(), String> {
    journal
        .write(r)
        .map_err(|e| format!("cannot write the journal {}: {e}", journal.path().display()))
}

async fn inject_one(
    driver: &dyn Driver,
    journal: &Journal,
    f: &Fault,
    plan: &FaultPlan,
    o: &mut Outcome,
    start: Instant,
) -> bool {
    let kind = f.kind.name();
    let mut intent = Record::new(&f.name, kind, driver.name(), Step::Intent);
    intent.plan = Some(plan.clone());
    // Undo data from the plan alone: if the process dies mid-inject, rollback still knows
    // where the target is and how to revert.
    intent.undo = Some(driver.undo_for(plan));
    // No journal, no inject: a fault we could not undo after a crash is never applied.
    if let Err(e) = journal_write(journal, &intent) {
        o.status = Status::InjectFailed;
        o.error = Some(e);
        return false;
    }
    match driver.inject(plan).await {
        Ok(undo) => {
            o.injected_at_s = Some(start.elapsed().as_secs_f64());
            let mut r = Record::new(&f.name, kind, driver.name(), Step::Applied);
            r.undo = Some(undo.clone());
            o.undo = Some(undo);
            o.status = Status::RevertFailed; // until reverted
            if let Err(e) = journal_write(journal, &r) {
                o.error = Some(e);
            }
            true
        }
        Err(e) => {
            let mut r = Record::new(&f.name, kind, driver.name(), Step::Failed);
            r.error = Some(format!("inject: {e}"));
            let _ = journal_write(journal, &r);
            o.status = Status::InjectFailed;
            o.error = Some(format!("inject failed: {e}"));
            // It may have half-applied: revert with the plan's idempotent steps.
            o.undo = Some(driver.undo_for(plan));
            true
        }
    }
}

/// Revert with retries (0.2 s, 1 s, 3 s apart).
async fn revert_one(
    driver: &dyn Driver,
    journal: &Journal,
    f: &Fault,
    o: &mut Outcome,
    start: Instant,
) {
    let Some(undo) = o.undo.clone() else {
        return;
    };
    let kind = f.kind.name();
    let mut last = String::new();
    for pause in [0.0, 0.2, 1.0, 3.0] {
        tokio::time::sleep(Duration::from_secs_f64(pause)).await;
        match driver.revert(&undo).await {
            Ok(()) => {
                let r = Record::new(&f.name, kind, driver.name(), Step::Reverted);
                let _ = journal_write(journal, &r);
                o.reverted_at_s = Some(start.elapsed().as_secs_f64());
                if o.status != Status::InjectFailed {
                    o.status = Status::Reverted;
                }
                return;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let mut r = Record::new(&f.name, kind, driver.name(), Step::Failed);
    r.error = Some(format!("revert: {last}"));
    let _ = journal_write(journal, &r);
    o.status = Status::RevertFailed;
    o.error = Some(format!("revert failed after 4 attempts: {last}"));
}

/// What `chaos rollback` did with one open fault.
pub struct Rollback {
    pub fault: String,
    pub kind: String,
    pub result: Result<(), String>,
}

/// Revert every fault the journal at `path` shows as possibly applied, newest first, appending
/// `reverted` (or `failed`) records to it. `driver_for` builds the driver from undo data.
pub async fn rollback(
    path: &std::path::Path,
    driver_for: &dyn Fn(&Undo) -> Option<Box<dyn Driver>>,
) -> Result<Vec<Rollback>, String> {
    let records = journal::read(path)?;
    let open = journal::open_faults(&records);
    let j = Journal::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for r in open.into_iter().rev() {
        let result = match r.undo.as_ref().and_then(|u| driver_for(u).map(|d| (d, u))) {
            None => Err(format!(
                "no undo data for driver `{}` in the journal: revert it by hand",
                r.driver
            )),
            Some((d, undo)) => {
                let mut last = Ok(());
                for pause in [0.0, 0.5, 2.0] {
                    tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                    last = d.revert(undo).await.map_err(|e| e.to_string());
                    if last.is_ok() {
                        break;
                    }
                }
                last
            }
        };
        let step = if result.is_ok() {
            Step::Reverted
        } else {
            Step::Failed
        };
        let mut rec = Record::new(&r.fault, &r.kind, &r.driver, step);
        rec.error = result.as_ref().err().map(|e| format!("rollback: {e}"));
        journal_write(&j, &rec)?;
        out.push(Rollback {
            fault: r.fault,
            kind: r.kind,
            result,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The timeline and rollback against a test driver whose reverts fail on demand (the
    //! sandbox driver is tested end to end in tests/cli.rs).
    use super::*;
    use crate::scenario::FaultKind;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// Fails the first `fail_reverts` reverts; counts every call.
    #[derive(Default)]
    struct Flaky {
        fail_reverts: AtomicU32,
        injects: AtomicU32,
        reverts: AtomicU32,
    }

    impl Driver for Arc<Flaky> {
        fn name(&self) -> &'static str {
            "test"
        }
        fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
            Box::pin(async move {
                Ok(FaultPlan {
                    fault: f.name.clone(),
                    kind: f.kind.name().into(),
                    targets: vec!["thing".into()],
                    inject: vec![],
                    revert: vec![],
                })
            })
        }
        fn inject<'a>(&'a self, _: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
            Box::pin(async move {
                self.injects.fetch_add(1, Ordering::SeqCst);
                Ok(serde_json::json!({ "driver": "test" }))
            })
        }
        fn revert<'a>(&'a self, _: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
            Box::pin(async move {
                self.reverts.fetch_add(1, Ordering::SeqCst);
                let left = self.fail_reverts.load(Ordering::SeqCst);
                if left > 0 {
                    self.fail_reverts.store(left - 1, Ordering::SeqCst);
                    return Err(DriverError::Call("target said no".into()));
                }
                Ok(())
            })
        }
        fn undo_for(&self, _: &FaultPlan) -> Undo {
            serde_json::json!({ "driver": "test" })
        }
    }

    fn fault(name: &str, at_ms: u64, for_ms: u64) -> Fault {
        Fault {
            name: name.into(),
            kind: FaultKind::DbFailover {},
            at: Duration::from_millis(at_ms),
            duration: Some(Duration::from_millis(for_ms)),
        }
    }

    async fn run(d: &Arc<Flaky>, faults: &[Fault], journal: &Journal) -> Vec<Outcome> {
        let mut plans = Vec::new();
        for f in faults {
            plans.push(d.plan(f).await.unwrap());
        }
        run_timeline(
            faults,
            &plans,
            d,
            journal,
            Instant::now(),
            Duration::from_millis(300),
            &Shutdown::new(),
        )
        .await
    }

    fn steps(path: &std::path::Path) -> Vec<(String, Step)> {
        journal::read(path)
            .unwrap()
            .into_iter()
            .map(|r| (r.fault, r.step))
            .collect()
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("chaos-fault-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("journal.jsonl")
    }

    #[tokio::test]
    async fn a_revert_that_fails_twice_is_retried_until_it_succeeds() {
        let d = Arc::new(Flaky::default());
        d.fail_reverts.store(2, Ordering::SeqCst);
        let p = tmp("retry");
        let j = Journal::create(&p).unwrap();
        let out = run(&d, &[fault("f", 10, 50)], &j).await;
        assert_eq!(out[0].status, Status::Reverted);
        assert_eq!(d.reverts.load(Ordering::SeqCst), 3);
        assert_eq!(
            steps(&p),
            [
                ("f".into(), Step::Intent),
                ("f".into(), Step::Applied),
                ("f".into(), Step::Reverted)
            ]
        );
    }

    #[tokio::test]
    async fn a_revert_that_keeps_failing_is_reported_and_rollback_finishes_it() {
        let d = Arc::new(Flaky::default());
        let p = tmp("fail");
        let j = Journal::create(&p).unwrap();
        // Two faults: the first reverts fine before the driver turns bad at 60 ms.
        let faults = [fault("ok", 0, 20), fault("stuck", 100, 50)];
        let d2 = d.clone();
        let breaker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            d2.fail_reverts.store(100, Ordering::SeqCst);
        });
        let out = run(&d, &faults, &j).await;
        breaker.await.unwrap();
        assert_eq!(out[0].status, Status::Reverted);
        assert_eq!(out[1].status, Status::RevertFailed);
        assert!(out[1].error.as_deref().unwrap().contains("4 attempts"));
        assert_eq!(
            d.reverts.load(Ordering::SeqCst),
            1 + 4,
            "4 attempts for the stuck one"
        );
        let open = journal::open_faults(&journal::read(&p).unwrap());
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].fault, "stuck");
        // `chaos rollback` later, the target answering again: the journal closes.
        d.fail_reverts.store(0, Ordering::SeqCst);
        let d3 = d.clone();
        let driver_for = move |_: &Undo| Some(Box::new(d3.clone()) as Box<dyn Driver>);
        let done = rollback(&p, &driver_for).await.unwrap();
        assert_eq!(done.len(), 1);
        assert!(done[0].result.is_ok());
        assert!(journal::open_faults(&journal::read(&p).unwrap()).is_empty());
        // A second rollback has nothing to do.
        assert!(rollback(&p, &driver_for).await.unwrap().is_empty());
    }
}
