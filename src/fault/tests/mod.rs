//! The timeline and rollback against a test driver whose injects, confirms and reverts are
//! slow or fail on demand, in paused time (the sandbox driver is tested against a real sandbox
//! in tests/confirm.rs and end to end in tests/run_sandbox.rs).

use super::*;
use crate::scenario::FaultKind;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Fails the first `fail_reverts` reverts (retryably); its injects take `inject_takes`;
/// records when each inject started and every call.
#[derive(Default)]
struct Flaky {
    fail_reverts: AtomicU32,
    permanent: std::sync::atomic::AtomicBool,
    injects: AtomicU32,
    reverts: AtomicU32,
    inject_takes: std::sync::Mutex<std::collections::HashMap<String, Duration>>,
    inject_started: std::sync::Mutex<Vec<(String, Duration)>>,
    epoch: std::sync::Mutex<Option<Instant>>,
    /// When (from the epoch) each listed fault's effect shows to `confirm`; an unlisted
    /// fault's shows at once.
    shows_after: std::sync::Mutex<std::collections::HashMap<String, Duration>>,
    /// A fault whose inject panics (a driver bug).
    panics_in: std::sync::Mutex<Option<String>>,
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
                check: serde_json::Value::Null,
            })
        })
    }
    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            self.injects.fetch_add(1, Ordering::SeqCst);
            let epoch = self.epoch.lock().unwrap().unwrap_or_else(Instant::now);
            self.inject_started
                .lock()
                .unwrap()
                .push((p.fault.clone(), epoch.elapsed()));
            let takes = self.inject_takes.lock().unwrap().get(&p.fault).copied();
            if let Some(d) = takes {
                tokio::time::sleep(d).await;
            }
            let panics = self.panics_in.lock().unwrap().as_deref() == Some(p.fault.as_str());
            if panics {
                panic!("test driver panics injecting {}", p.fault);
            }
            Ok(serde_json::json!({ "driver": "test" }))
        })
    }
    fn revert<'a>(&'a self, _: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.reverts.fetch_add(1, Ordering::SeqCst);
            let left = self.fail_reverts.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_reverts.store(left - 1, Ordering::SeqCst);
                if self.permanent.load(Ordering::SeqCst) {
                    return Err(DriverError::Permanent("target refused".into()));
                }
                return Err(DriverError::retryable("target said no"));
            }
            Ok(())
        })
    }
    fn undo_for(&self, _: &FaultPlan) -> Undo {
        serde_json::json!({ "driver": "test" })
    }
    fn confirm<'a>(&'a self, p: &'a FaultPlan, _: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let shows_after = self.shows_after.lock().unwrap().get(&p.fault).copied();
            let epoch = self.epoch.lock().unwrap().unwrap_or_else(Instant::now);
            match shows_after {
                Some(t) if epoch.elapsed() < t => {
                    Err(DriverError::retryable(format!("{} not down yet", p.fault)))
                }
                _ => Ok(()),
            }
        })
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

/// Each fault planned by `d`.
async fn plan_all(d: &impl Driver, faults: &[Fault]) -> Vec<Planned> {
    let mut planned = Vec::new();
    for f in faults {
        planned.push(Planned {
            fault: f.clone(),
            plan: d.plan(f).await.unwrap(),
        });
    }
    planned
}

/// The timeline of `faults` over a run of `end_ms`, from now (paused time in the tests).
async fn run_for(
    d: &Arc<Flaky>,
    faults: &[Fault],
    journal: &Journal,
    end_ms: u64,
    shutdown: &Shutdown,
) -> Vec<Outcome> {
    let planned = plan_all(d, faults).await;
    let start = Instant::now();
    *d.epoch.lock().unwrap() = Some(start);
    run_timeline(
        &planned,
        d,
        journal,
        (start, Duration::from_millis(end_ms)),
        shutdown,
        None,
        None,
    )
    .await
    .outcomes
}

async fn run(d: &Arc<Flaky>, faults: &[Fault], journal: &Journal) -> Vec<Outcome> {
    run_for(d, faults, journal, 300, &Shutdown::new()).await
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

#[tokio::test(start_paused = true)]
async fn a_revert_that_fails_twice_is_retried_until_it_succeeds() {
    let d = Arc::new(Flaky::default());
    d.fail_reverts.store(2, Ordering::SeqCst);
    let p = tmp("retry");
    let j = Journal::create(&p).unwrap();
    let out = run(&d, &[fault("f", 10, 50)], &j).await;
    assert_eq!(out[0].status, Status::Reverted);
    assert_eq!(d.reverts.load(Ordering::SeqCst), 3);
    // Reverted after two backoffs (0.2 s, then 0.4 s) from its scheduled 60 ms.
    let at = out[0].reverted_at_s.unwrap();
    assert!((0.66..0.67).contains(&at), "{at}");
    assert_eq!(
        steps(&p),
        [
            ("f".into(), Step::Intent),
            ("f".into(), Step::Applied),
            ("f".into(), Step::Confirmed),
            ("f".into(), Step::Reverted)
        ]
    );
}

/// The timeline injects on time whatever another inject costs: a 20 s inject (a cloud
/// API) at 1 s does not delay a fault scheduled at 5 s. Paused time: deterministic.
#[tokio::test(start_paused = true)]
async fn a_slow_inject_does_not_delay_the_next_fault() {
    let d = Arc::new(Flaky::default());
    d.inject_takes
        .lock()
        .unwrap()
        .insert("slow".into(), Duration::from_secs(20));
    let p = tmp("slow");
    let j = Journal::create(&p).unwrap();
    let faults = [fault("slow", 1_000, 30_000), fault("next", 5_000, 2_000)];
    let out = run_for(&d, &faults, &j, 60_000, &Shutdown::new()).await;
    let started = d.inject_started.lock().unwrap().clone();
    assert_eq!(
        started,
        [
            ("slow".to_string(), Duration::from_secs(1)),
            ("next".to_string(), Duration::from_secs(5))
        ]
    );
    let next = &out[1];
    assert_eq!(next.status, Status::Reverted);
    assert!(
        (5.0..5.01).contains(&next.injected_at_s.unwrap()),
        "{next:?}"
    );
    assert!(
        (7.0..7.01).contains(&next.reverted_at_s.unwrap()),
        "{next:?}"
    );
    // The slow one took effect when its call returned, at 21 s, and is reverted on time.
    let slow = &out[0];
    assert!(
        (21.0..21.01).contains(&slow.injected_at_s.unwrap()),
        "{slow:?}"
    );
    assert!(
        (31.0..31.01).contains(&slow.reverted_at_s.unwrap()),
        "{slow:?}"
    );
}

/// Shutdown reverts what is applied at once, lets an inject in flight finish (then reverts
/// it), and leaves faults not yet due untouched.
#[tokio::test(start_paused = true)]
async fn shutdown_reverts_at_once_and_never_cuts_an_inject_short() {
    let d = Arc::new(Flaky::default());
    d.inject_takes
        .lock()
        .unwrap()
        .insert("in-flight".into(), Duration::from_secs(10));
    let p = tmp("shutdown");
    let j = Journal::create(&p).unwrap();
    let faults = [
        fault("applied", 1_000, 50_000),
        fault("in-flight", 2_000, 50_000),
        fault("later", 20_000, 1_000),
    ];
    let stop = Arc::new(Shutdown::new());
    let s2 = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        s2.trigger();
    });
    let out = run_for(&d, &faults, &j, 60_000, &stop).await;
    assert_eq!(out[0].status, Status::Reverted);
    assert!(
        (4.0..4.01).contains(&out[0].reverted_at_s.unwrap()),
        "{:?}",
        out[0]
    );
    assert_eq!(out[1].status, Status::Reverted);
    assert!(
        (12.0..12.01).contains(&out[1].injected_at_s.unwrap()),
        "{:?}",
        out[1]
    );
    assert!(
        (12.0..12.01).contains(&out[1].reverted_at_s.unwrap()),
        "{:?}",
        out[1]
    );
    assert_eq!(out[2].status, Status::NotReached);
    assert_eq!(d.injects.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
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
    // Retried with backoff 0.2, 0.4, 0.8, 1.6 s within the 5 s deadline (3.0 s), the next
    // pause (3.2 s) would pass it: 5 attempts, then reported.
    let err = out[1].error.as_deref().unwrap();
    assert!(
        err.contains("after 5 attempts") && err.contains("deadline"),
        "{err}"
    );
    assert_eq!(
        d.reverts.load(Ordering::SeqCst),
        1 + 5,
        "5 attempts for the stuck one"
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

/// A permanent error is not retried: reported at once.
#[tokio::test(start_paused = true)]
async fn a_permanent_revert_error_is_not_retried() {
    let d = Arc::new(Flaky::default());
    d.fail_reverts.store(100, Ordering::SeqCst);
    d.permanent.store(true, Ordering::SeqCst);
    let p = tmp("permanent");
    let j = Journal::create(&p).unwrap();
    let out = run(&d, &[fault("f", 10, 50)], &j).await;
    assert_eq!(out[0].status, Status::RevertFailed);
    assert_eq!(d.reverts.load(Ordering::SeqCst), 1);
    let err = out[0].error.as_deref().unwrap();
    assert!(err.contains("after 1 attempt: target refused"), "{err}");
}

/// A fault whose effect never shows is unconfirmed: reverted at once, reported; one that
/// shows a little late is confirmed.
#[tokio::test(start_paused = true)]
async fn an_injected_fault_that_never_shows_is_unconfirmed_and_reverted_at_once() {
    let d = Arc::new(Flaky::default());
    {
        let mut s = d.shows_after.lock().unwrap();
        s.insert("never".into(), Duration::from_secs(3600));
        s.insert("late".into(), Duration::from_millis(1_500));
    }
    let p = tmp("confirm");
    let j = Journal::create(&p).unwrap();
    let faults = [fault("never", 1_000, 30_000), fault("late", 1_000, 30_000)];
    let out = run_for(&d, &faults, &j, 60_000, &Shutdown::new()).await;
    assert_eq!(out[0].status, Status::Unconfirmed, "{:?}", out[0]);
    let err = out[0].error.as_deref().unwrap();
    assert!(err.contains("not confirmed: never not down yet"), "{err}");
    // Reverted right after the 5 s confirm deadline, not at its scheduled 31 s.
    let rev = out[0].reverted_at_s.unwrap();
    assert!((5.5..6.6).contains(&rev), "{rev}");
    assert_eq!(out[1].status, Status::Reverted);
    assert!((31.0..31.01).contains(&out[1].reverted_at_s.unwrap()));
    let never: Vec<Step> = steps(&p)
        .into_iter()
        .filter(|(f, _)| f == "never")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        never,
        [Step::Intent, Step::Applied, Step::Failed, Step::Reverted]
    );
}

/// Ctrl-C while a fault's effect is still awaited: reverted at once, not after the confirm
/// deadline, and the run is interrupted — not "unconfirmed" (exit 130, not 4).
#[tokio::test(start_paused = true)]
async fn shutdown_during_confirm_reverts_at_once() {
    let d = Arc::new(Flaky::default());
    d.shows_after
        .lock()
        .unwrap()
        .insert("slow-to-show".into(), Duration::from_secs(3600));
    let p = tmp("confirm-shutdown");
    let j = Journal::create(&p).unwrap();
    let stop = Arc::new(Shutdown::new());
    let s2 = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        s2.trigger();
    });
    let out = run_for(
        &d,
        &[fault("slow-to-show", 1_000, 30_000)],
        &j,
        60_000,
        &stop,
    )
    .await;
    assert_eq!(out[0].status, Status::Reverted, "{:?}", out[0]);
    let rev = out[0].reverted_at_s.unwrap();
    assert!((2.0..2.01).contains(&rev), "{rev}");
}

#[test]
fn calls_are_driver_neutral_and_read_old_journals() {
    let c = Call::http("sandbox", "POST", "/zones/a/down?by=fault:z");
    assert_eq!(c.to_string(), "POST /zones/a/down?by=fault:z");
    let mut ec2 = Call {
        service: "ec2".into(),
        operation: "StopInstances".into(),
        resource: "i-0abc".into(),
        args: Default::default(),
    };
    assert_eq!(ec2.to_string(), "ec2:StopInstances i-0abc");
    ec2.args.insert("Force".into(), "true".into());
    assert_eq!(ec2.to_string(), "ec2:StopInstances i-0abc Force=true");
    // A journal written before calls were typed: `{method, path}`, sandbox calls only.
    let old: Call =
        serde_json::from_str(r#"{"method": "POST", "path": "/zones/a/up?by=fault:z"}"#).unwrap();
    assert_eq!(old, Call::http("sandbox", "POST", "/zones/a/up?by=fault:z"));
    // Round trip of the new form; no empty args written.
    let text = serde_json::to_string(&c).unwrap();
    assert!(!text.contains("args"), "{text}");
    assert_eq!(serde_json::from_str::<Call>(&text).unwrap(), c);
}

/// A panic in one fault's driver call (a bug) is caught at that fault: the others finish the
/// call they have in flight and are reverted at once, and only then does the panic go on —
/// it never drops another fault's inject halfway or leaves it applied.
#[tokio::test(start_paused = true)]
async fn a_panic_in_one_fault_still_reverts_the_others() {
    let d = Arc::new(Flaky::default());
    *d.panics_in.lock().unwrap() = Some("bug".into());
    d.inject_takes
        .lock()
        .unwrap()
        .insert("slow".into(), Duration::from_secs(3));
    let p = tmp("panic-one");
    let j = Journal::create(&p).unwrap();
    // `held` is applied when `bug` panics at 2 s; `slow`'s inject (1 s to 4 s) is in flight.
    let faults = [
        fault("held", 500, 30_000),
        fault("bug", 2_000, 1_000),
        fault("slow", 1_000, 30_000),
    ];
    let shutdown = Shutdown::new();
    let r =
        crate::shutdown::CatchUnwind(Box::pin(run_for(&d, &faults, &j, 60_000, &shutdown))).await;
    let Err(panic) = r else {
        panic!("the timeline's panic goes on");
    };
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("panics injecting bug"), "{msg}");
    assert!(shutdown.is_triggered(), "the panic shuts the run down");
    let steps = steps(&p);
    let of = |name: &str| -> Vec<Step> {
        steps
            .iter()
            .filter(|(f, _)| f == name)
            .map(|(_, s)| *s)
            .collect()
    };
    assert_eq!(
        of("held"),
        [Step::Intent, Step::Applied, Step::Confirmed, Step::Reverted]
    );
    // Its inject finished (never cut short), then it was reverted at once (its confirm races
    // the shutdown: either may win).
    let slow: Vec<Step> = of("slow")
        .into_iter()
        .filter(|s| *s != Step::Confirmed)
        .collect();
    assert_eq!(slow, [Step::Intent, Step::Applied, Step::Reverted]);
    // The panicked one is left open for the caller's rollback from the journal.
    assert_eq!(of("bug"), [Step::Intent]);
    assert_eq!(journal::open_faults(&journal::read(&p).unwrap()).len(), 1);
}

/// A driver whose control plane is a value per fault that reads `up` until its inject and
/// `down` from then until its revert; it counts its polls. `fail_polls` polls after the
/// first fail (reads refused).
#[derive(Default)]
struct Observed {
    down: std::sync::Mutex<std::collections::BTreeSet<String>>,
    polls: AtomicU32,
    fail_from: AtomicU32,
    fail_polls: AtomicU32,
}

impl Driver for Arc<Observed> {
    fn name(&self) -> &'static str {
        "observed"
    }
    fn plan<'a>(&'a self, f: &'a Fault) -> BoxFut<'a, Result<FaultPlan, DriverError>> {
        Box::pin(async move {
            Ok(FaultPlan {
                fault: f.name.clone(),
                kind: f.kind.name().into(),
                targets: vec![],
                inject: vec![],
                revert: vec![],
                check: serde_json::Value::Null,
            })
        })
    }
    fn inject<'a>(&'a self, p: &'a FaultPlan) -> BoxFut<'a, Result<Undo, DriverError>> {
        Box::pin(async move {
            self.down.lock().unwrap().insert(p.fault.clone());
            Ok(serde_json::json!({ "fault": p.fault }))
        })
    }
    fn revert<'a>(&'a self, undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let f = undo["fault"].as_str().unwrap_or_default();
            self.down.lock().unwrap().remove(f);
            Ok(())
        })
    }
    fn undo_for(&self, p: &FaultPlan) -> Undo {
        serde_json::json!({ "fault": p.fault })
    }
    fn confirm<'a>(&'a self, _: &'a FaultPlan, _: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async { Ok(()) })
    }
    fn observe<'a>(
        &'a self,
        planned: &'a [Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        Some(Box::pin(async move {
            let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            let from = self.fail_from.load(Ordering::SeqCst);
            if from > 0 && n >= from && n < from + self.fail_polls.load(Ordering::SeqCst) {
                return Err(DriverError::Permanent("AccessDenied".into()));
            }
            let down = self.down.lock().unwrap();
            Ok(planned
                .iter()
                .map(|p| {
                    let v = if down.contains(&p.fault.name) {
                        "down"
                    } else {
                        "up"
                    };
                    (format!("thing {}", p.fault.name), v.to_string())
                })
                .collect())
        }))
    }
    fn observe_every(&self) -> Duration {
        Duration::from_millis(500)
    }
}

async fn observed_run(
    tag: &str,
    d: &Arc<Observed>,
    faults: &[Fault],
    end_ms: u64,
) -> TimelineResult {
    let j = Journal::create(&tmp(tag)).unwrap();
    let planned = plan_all(d, faults).await;
    let start = Instant::now();
    run_timeline(
        &planned,
        d,
        &j,
        (start, Duration::from_millis(end_ms)),
        &Shutdown::new(),
        None,
        None,
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn the_control_plane_is_polled_while_faults_are_applied_and_its_changes_are_events() {
    let d = Arc::new(Observed::default());
    // Applied from 10 s to 20 s of a 30 s run, polled every 0.5 s.
    let r = observed_run("observed", &d, &[fault("z", 10_000, 10_000)], 30_000).await;
    assert_eq!(r.outcomes[0].status, Status::Reverted);
    let shown: Vec<String> = r.events.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown, ["thing z: up → down", "thing z: down → up"]);
    // Seen by the polls right after the inject and the revert (a poll due at the same instant
    // as the inject may read just before it).
    assert!((10.0..=10.5).contains(&r.events[0].at_s), "{:?}", r.events);
    assert_eq!(
        r.events[1].at_s, 20.0,
        "the poll as the last revert finished"
    );
    // From 9.5 s (one interval before the fault) to the run's end at 30 s, every 0.5 s, plus
    // the poll as the revert finished: bounded by the run, not polling before the faults.
    let polls = d.polls.load(Ordering::SeqCst);
    assert!((41..=44).contains(&polls), "{polls} polls");
}

#[tokio::test(start_paused = true)]
async fn reads_that_fail_are_one_event_each_way_and_no_fault_means_no_polls() {
    let d = Arc::new(Observed::default());
    d.fail_from.store(4, Ordering::SeqCst);
    d.fail_polls.store(3, Ordering::SeqCst);
    let r = observed_run("observed-fails", &d, &[fault("z", 10_000, 10_000)], 20_000).await;
    let shown: Vec<String> = r.events.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "thing z: up → down",
            "control plane: read → unreadable: AccessDenied",
            "control plane: unreadable → read",
            "thing z: down → up",
        ],
        "three failing polls are one event, and the diff resumes from the last good read"
    );
    let none = Arc::new(Observed::default());
    let r = observed_run("observed-none", &none, &[], 5_000).await;
    assert!(r.events.is_empty());
    assert_eq!(none.polls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_diff_names_what_changed_appeared_and_went() {
    let snap = |kv: &[(&str, &str)]| -> Snapshot {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let before = snap(&[("i-1", "running"), ("i-2", "running"), ("writer", "db-1")]);
    let after = snap(&[("i-1", "stopping"), ("i-3", "pending"), ("writer", "db-1")]);
    let shown: Vec<String> = diff(&before, &after, 1.0)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "i-1: running → stopping",
            "i-2: running → (none)",
            "i-3: (none) → pending"
        ]
    );
    assert!(diff(&after, &after, 2.0).is_empty());
    let mut events = Vec::new();
    for i in 0..MAX_EVENTS + 5 {
        push(&mut events, event(i as f64, "x", None, Some("y")));
    }
    assert_eq!(events.len(), MAX_EVENTS + 1);
    assert_eq!(events[MAX_EVENTS].what, "control plane events");
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_the_watch_reads_once_after_the_revert_and_stops() {
    let d = Arc::new(Observed::default());
    let j = Journal::create(&tmp("observed-shutdown")).unwrap();
    // A fault to the end of a 60 s run; Ctrl-C at 15 s.
    let f = fault("z", 10_000, 50_000);
    let planned = vec![Planned {
        fault: f.clone(),
        plan: d.plan(&f).await.unwrap(),
    }];
    let stop = Shutdown::new();
    let start = Instant::now();
    let timeline = run_timeline(
        &planned,
        &d,
        &j,
        (start, Duration::from_secs(60)),
        &stop,
        None,
        None,
    );
    let trigger = async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        stop.trigger();
    };
    let (r, ()) = tokio::join!(timeline, trigger);
    let shown: Vec<String> = r.events.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown, ["thing z: up → down", "thing z: down → up"]);
    assert!(
        start.elapsed() < Duration::from_secs(16),
        "{:?}",
        start.elapsed()
    );
    // 9.5 s to 15 s every 0.5 s, and the one after the revert: no polling on to 60 s.
    let polls = d.polls.load(Ordering::SeqCst);
    assert!((12..=14).contains(&polls), "{polls} polls");
}

mod board;
mod hands;
