//! Faults at run time: the [`Driver`] trait, the fault timeline that injects and reverts on
//! schedule, and the journal that makes every step recoverable.
//!
//! The timeline never learns how the load is doing (DESIGN.md: a fault is seen in the numbers
//! or not at all). Each fault runs on its own schedule, concurrently with the others: it is
//! injected at its `at`, reverted after its `for` (or at the end of the run), and on shutdown
//! (Ctrl-C, SIGTERM, an abort) reverted at once — an inject that takes 20 s (a cloud API) never
//! delays another fault's injection. An inject already in flight is never cancelled (what it
//! did would be unknown): it finishes, then is reverted. A revert that fails is retried as its
//! error says (retryable: with backoff, honouring the driver's `after`, until the driver's
//! revert deadline; permanent: not at all; already reverted: done); if it still fails, the run
//! ends with exit 4 and a message saying what is still applied and the command that undoes it.
//! From one poll interval before the first fault (from the run's start in a game day, when any
//! fault may come early) to the end of the run, a driver that can read
//! its target's control plane is polled at its own bounded rate, and each poll is diffed against
//! the one before into [`ControlEvent`]s (an instance stopping, the writer moving): the target's
//! side of the story, beside the load's ([`watch`]).
//! With game-day hands ([`manual`]), a person may inject a fault before its time or revert it
//! before its time; it then goes through the very same steps, journaled as done by hand.
//! Time comes from tokio's clock, so tests run the timeline in paused time.

pub mod journal;
pub mod live;
pub mod manual;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use crate::scenario::Fault;
use crate::shutdown::Shutdown;
use journal::{Journal, Record, Step};
use watch::watch;
pub use watch::{diff, MAX_EVENTS};
#[cfg(test)]
use watch::{event, push};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Undo data: what `revert` needs, self-contained (a rollback in another process uses it).
pub type Undo = serde_json::Value;

/// One call a driver makes, driver-neutral: shown by plans, kept in the journal. An HTTP
/// control API's call (the sandbox, the proxy) prints as `POST /zones/a/down`; a cloud API's
/// as `ec2:StopInstances i-0abc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The API called: `sandbox` (its control API), `ec2`, `rds`, `proxy`, …
    /// (Journals written before this field held sandbox calls only.)
    #[serde(default = "sandbox_service")]
    pub service: String,
    /// An HTTP method for an HTTP control API, the API's action otherwise (`StopInstances`).
    #[serde(alias = "method")]
    pub operation: String,
    /// What it acts on: the path (and query) for an HTTP API, a resource id otherwise.
    #[serde(alias = "path")]
    pub resource: String,
    /// Further arguments, shown as `key=value`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub args: std::collections::BTreeMap<String, String>,
}

fn sandbox_service() -> String {
    "sandbox".into()
}

impl Call {
    /// A call to an HTTP control API: `operation` is the method, `resource` the path.
    pub fn http(service: &str, method: &str, path: impl Into<String>) -> Call {
        Call {
            service: service.into(),
            operation: method.into(),
            resource: path.into(),
            args: Default::default(),
        }
    }

    /// Whether this is an HTTP call (its resource is a path).
    pub fn is_http(&self) -> bool {
        self.resource.starts_with('/')
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_http() {
            write!(f, "{} {}", self.operation, self.resource)?;
        } else {
            write!(f, "{}:{} {}", self.service, self.operation, self.resource)?;
        }
        for (k, v) in &self.args {
            write!(f, " {k}={v}")?;
        }
        Ok(())
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
    /// What the driver's `confirm` looks for once the fault is injected (driver-specific).
    #[serde(default)]
    pub check: serde_json::Value,
}

/// A scenario's fault with its plan on the target: what the timeline runs.
#[derive(Debug, Clone)]
pub struct Planned {
    pub fault: Fault,
    pub plan: FaultPlan,
}

/// The target's control plane as a driver reads it: one value per thing it watches
/// (`ec2 instance i-0abc (eu-west-1b)` → `stopping`). Two polls diffed give [`ControlEvent`]s.
pub type Snapshot = BTreeMap<String, String>;

/// A change the target's own control plane showed during the run (DESIGN.md: the faults'
/// side of the timeline, never an input to the load or the verdict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlEvent {
    /// Seconds from the start of the run when the poll that saw it returned: the change
    /// happened at most one poll interval before.
    pub at_s: f64,
    /// What changed, as the driver names it: `ec2 instance i-0abc (eu-west-1b)`,
    /// `rds cluster notes writer`, or `control plane` for the reads themselves failing.
    pub what: String,
    /// Its value before; null: it was not there (an instance the ASG launched).
    pub from: Option<String>,
    /// Its value now; null: it is gone.
    pub to: Option<String>,
}

impl std::fmt::Display for ControlEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
        write!(f, "{}: {} → {}", self.what, v(&self.from), v(&self.to))
    }
}

/// A run id for what a driver tags or holds on a target: `chaos-20261202T081500Z-<pid>-<random>`
/// (two runs started in one second, even on one machine, never share one).
pub fn new_run_id() -> String {
    let t = crate::report::utc(std::time::SystemTime::now()).replace([':', '-'], "");
    format!(
        "chaos-{t}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Why a driver step failed, and so what the timeline does next.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The driver cannot do this fault on this target (found at plan time).
    #[error("{0}")]
    Unsupported(String),
    /// Worth trying again (a timeout, throttling, the target briefly unreachable), after
    /// `after` if the target said when.
    #[error("{message}")]
    Retryable {
        message: String,
        after: Option<Duration>,
    },
    /// Trying again cannot help (refused, bad undo data).
    #[error("{0}")]
    Permanent(String),
    /// A revert found nothing left to undo: the fault is gone.
    #[error("already reverted")]
    AlreadyReverted,
}

impl DriverError {
    pub fn retryable(message: impl Into<String>) -> DriverError {
        DriverError::Retryable {
            message: message.into(),
            after: None,
        }
    }
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
    /// How long a revert failing with retryable errors is retried before the fault is reported
    /// as still applied: seconds for a local target, minutes for a cloud API that throttles.
    fn revert_deadline(&self) -> Duration {
        Duration::from_secs(5)
    }
    /// Whether the fault took effect, by the driver's own read calls (the node's port is
    /// closed, the zone is down, the writer moved). `Ok(())` once it shows; a retryable error
    /// while it does not yet (the timeline asks again until [`Driver::confirm_deadline`]).
    fn confirm<'a>(
        &'a self,
        p: &'a FaultPlan,
        undo: &'a Undo,
    ) -> BoxFut<'a, Result<(), DriverError>>;
    /// How long an injected fault may take to show before it counts as unconfirmed.
    fn confirm_deadline(&self) -> Duration {
        Duration::from_secs(5)
    }
    /// The target's control plane now, for what these faults touch (instance states, the
    /// writer, the cache primary), by read calls only. Polled every [`Driver::observe_every`]
    /// from one interval before the first fault to the end of the run. `None`: this driver
    /// reads nothing of the kind.
    fn observe<'a>(
        &'a self,
        _planned: &'a [Planned],
    ) -> Option<BoxFut<'a, Result<Snapshot, DriverError>>> {
        None
    }
    /// The pause between two [`Driver::observe`] polls: the bound on the read calls' rate.
    fn observe_every(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// How long a fault this driver applies holds unless renewed: the target heals it by
    /// itself after that (a run that died leaves nothing applied). `None`: held until reverted.
    fn lease(&self) -> Option<Duration> {
        None
    }
    /// Renew an applied fault's lease (idempotent); called every third of [`Driver::lease`]
    /// while the fault is confirmed and while it waits for its revert.
    fn renew<'a>(&'a self, _undo: &'a Undo) -> BoxFut<'a, Result<(), DriverError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Run `work` while renewing the lease of the fault `undo` holds, every third of the driver's
/// lease (nothing to do for a driver without leases). A renewal that fails is logged; the next
/// one tries again (the target heals the fault if none gets through within a lease).
async fn renewing<T>(
    driver: &dyn Driver,
    fault: &str,
    undo: Option<&Undo>,
    work: impl Future<Output = T>,
) -> T {
    let (Some(lease), Some(undo)) = (driver.lease(), undo) else {
        return work.await;
    };
    let every = (lease / 3).max(Duration::from_millis(10));
    let renew = async {
        loop {
            tokio::time::sleep(every).await;
            // One slow call must not outlast the lease: each try gets a third of it.
            match tokio::time::timeout(every, driver.renew(undo)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("fault {fault}: renewing its lease failed: {e}"),
                Err(_) => tracing::warn!("fault {fault}: renewing its lease took over {every:?}"),
            }
        }
    };
    tokio::select! {
        r = work => r,
        () = renew => unreachable!("the renewal loop never ends"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Injected and reverted (or nothing to revert).
    Reverted,
    /// The run ended before its time came (interrupted).
    NotReached,
    InjectFailed,
    /// Injected, but the driver's read calls never showed its effect before the deadline
    /// (reverted at once; the run fails with exit 4).
    Unconfirmed,
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
    /// Which steps were taken by hand (`--gameday`).
    pub by_hand: manual::ByHand,
}

/// What the fault timeline did: each fault's fate, in the plan's order, and what the target's
/// control plane showed meanwhile.
#[derive(Debug, Default)]
pub struct TimelineResult {
    pub outcomes: Vec<Outcome>,
    pub events: Vec<ControlEvent>,
}

/// Run the fault timeline: inject and revert on schedule from `start`, stop early on
/// `shutdown`, and always revert whatever is still applied before returning. Each fault is its
/// own future; they run concurrently on this task, with the control-plane watch beside them. A
/// panic in one fault's future (a driver bug) is caught at that fault: the run is shut down,
/// every other fault finishes its call in flight and is reverted, and only then does the panic
/// go on (the caller rolls the panicked fault back from the journal).
pub async fn run_timeline(
    planned: &[Planned],
    driver: &dyn Driver,
    journal: &Journal,
    (start, end): (Instant, Duration),
    shutdown: &Shutdown,
    hands: Option<&manual::Hands>,
    board: Option<&live::Board>,
) -> TimelineResult {
    let each = planned.iter().map(|Planned { fault: f, plan }| async move {
        let hand = hands.and_then(|h| h.hand(&f.name));
        let life = one_fault(
            f,
            plan,
            driver,
            journal,
            (start, end),
            shutdown,
            (hand, board),
        );
        let r = crate::shutdown::CatchUnwind(Box::pin(life)).await;
        // Over, whatever happened (a panic too): a hand waiting on it gets its answer.
        if let Some(h) = hand {
            h.over();
        }
        if let (Some(b), Ok(o)) = (board, &r) {
            b.publish(o, true);
        }
        if r.is_err() {
            shutdown.trigger();
        }
        r
    });
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let faults = async {
        let all = futures_util::future::join_all(each).await;
        let _ = done_tx.send(true);
        all
    };
    // A panic in the watch (a driver bug in `observe`) ends the watch, never the faults.
    let watched = async {
        // A game day may inject any fault from the start: watched from there.
        let from = hands.map(|_| Duration::ZERO);
        let w = crate::shutdown::CatchUnwind(Box::pin(watch(
            planned,
            driver,
            (start, from, end),
            shutdown,
            done_rx,
        )))
        .await;
        w.unwrap_or_else(|_| {
            tracing::error!("reading the control plane panicked: no more control-plane events");
            Vec::new()
        })
    };
    let (all, events) = tokio::join!(faults, watched);
    let mut outcomes = Vec::new();
    let mut panicked = None;
    for r in all {
        match r {
            Ok(o) => outcomes.push(o),
            Err(p) => panicked = panicked.or(Some(p)),
        }
    }
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
    TimelineResult { outcomes, events }
}

/// Wait for `hand`'s signal (`which` of its two), forever without one.
async fn by_hand(hand: Option<&manual::Hand>, which: fn(&manual::Hand) -> &tokio::sync::Notify) {
    match hand {
        Some(h) => which(h).notified().await,
        None => std::future::pending().await,
    }
}

/// One fault's life on the timeline: wait for its time (or a hand), inject, confirm, wait
/// (for its revert time or a hand), revert.
async fn one_fault(
    f: &Fault,
    plan: &FaultPlan,
    driver: &dyn Driver,
    journal: &Journal,
    (start, end): (Instant, Duration),
    shutdown: &Shutdown,
    // Who follows it besides the journal: a game day's hand, the conductor's board.
    (hand, board): (Option<&manual::Hand>, Option<&live::Board>),
) -> Outcome {
    let mut o = Outcome {
        name: f.name.clone(),
        kind: f.kind.name().to_string(),
        status: Status::NotReached,
        injected_at_s: None,
        reverted_at_s: None,
        error: None,
        undo: None,
        by_hand: manual::ByHand::default(),
    };
    // Shutdown first: a hand or the schedule ready at the same moment never injects into a
    // run that is stopping. Who started the inject is the branch that won.
    let by_a_hand = tokio::select! {
        biased;
        _ = shutdown.wait() => return o,
        () = by_hand(hand, |h| &h.inject) => true,
        _ = tokio::time::sleep_until(start + f.at) => false,
    };
    o.by_hand.injected = by_a_hand;
    let tell = |f: &dyn Fn(&manual::Hand)| {
        if let Some(h) = hand {
            f(h);
        }
    };
    tell(&|h| h.injecting(by_a_hand));
    // Not raced against shutdown: an inject cut off halfway would leave its effect unknown.
    let injected = inject_one(driver, journal, f, plan, &mut o, start).await;
    if let Some(b) = board {
        b.publish(&o, false);
    }
    if !injected {
        tell(&|h| h.applied(false));
        return o;
    }
    // A failed inject may have half-applied: undone at once, never left to its schedule.
    if o.status == Status::InjectFailed {
        revert_one(driver, journal, f, &mut o, start).await;
        let reverted = o.reverted_at_s.is_some();
        tell(&|h| h.reverted(Some(reverted)));
        tell(&|h| h.applied(false));
        return o;
    }
    // A fault whose effect never shows is reverted at once: the run measured something
    // else than the scenario asked for. A shutdown meanwhile skips the wait: revert now.
    let undo = o.undo.clone();
    let confirmed = renewing(driver, &f.name, undo.as_ref(), async {
        tokio::select! {
            c = confirm_one(driver, plan, &o) => Some(c),
            _ = shutdown.wait() => None,
        }
    })
    .await;
    match confirmed {
        Some(Ok(())) => {
            let r = Record::new(&f.name, f.kind.name(), driver.name(), Step::Confirmed);
            let _ = journal_write(journal, &r);
        }
        Some(Err(e)) => {
            let mut r = Record::new(&f.name, f.kind.name(), driver.name(), Step::Failed);
            r.error = Some(format!("confirm: {e}"));
            let _ = journal_write(journal, &r);
            o.error = Some(format!("not confirmed: {e}"));
            revert_one(driver, journal, f, &mut o, start).await;
            let reverted = o.reverted_at_s.is_some();
            tell(&|h| h.reverted(Some(reverted)));
            tell(&|h| h.applied(false));
            if o.status == Status::Reverted {
                o.status = Status::Unconfirmed;
            }
            return o;
        }
        None => {}
    }
    tell(&|h| h.applied(true));
    // Its window as scheduled: `for` after its scheduled time — or after its injection, for
    // one injected by hand before its time.
    let from = if o.by_hand.injected {
        o.injected_at_s
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(f.at)
    } else {
        f.at
    };
    let revert_at = f.duration.map_or(end, |d| from + d).min(end);
    // Who reverts it: the run stopping, a hand, or its schedule.
    let (stopping, by_a_hand) = renewing(driver, &f.name, undo.as_ref(), async {
        tokio::select! {
            biased;
            _ = shutdown.wait() => (true, false),
            () = by_hand(hand, |h| &h.revert) => (false, true),
            _ = tokio::time::sleep_until(start + revert_at) => (false, false),
        }
    })
    .await;
    o.by_hand.reverted = by_a_hand;
    tell(&|h| h.reverting(by_a_hand, stopping));
    revert_one(driver, journal, f, &mut o, start).await;
    let reverted = o.reverted_at_s.is_some();
    tell(&|h| h.reverted(Some(reverted)));
    o
}

fn journal_write(journal: &Journal, r: &Record) -> Result<(), journal::JournalError> {
    journal
        .write(r)
        .map_err(|source| journal::JournalError::Write {
            path: journal.path().display().to_string(),
            source,
        })
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
    let by = o.by_hand.injected.then(|| HAND.to_string());
    let mut intent = Record::new(&f.name, kind, driver.name(), Step::Intent);
    intent.by = by.clone();
    intent.plan = Some(plan.clone());
    // Undo data from the plan alone: if the process dies mid-inject, rollback still knows
    // where the target is and how to revert.
    intent.undo = Some(driver.undo_for(plan));
    // No journal, no inject: a fault we could not undo after a crash is never applied.
    if let Err(e) = journal_write(journal, &intent) {
        o.status = Status::InjectFailed;
        o.error = Some(e.to_string());
        return false;
    }
    match driver.inject(plan).await {
        Ok(undo) => {
            o.injected_at_s = Some(start.elapsed().as_secs_f64());
            let mut r = Record::new(&f.name, kind, driver.name(), Step::Applied);
            r.by = by;
            r.undo = Some(undo.clone());
            o.undo = Some(undo);
            o.status = Status::RevertFailed; // until reverted
            if let Err(e) = journal_write(journal, &r) {
                o.error = Some(e.to_string());
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

/// Ask the driver until the fault shows, a permanent answer, or its confirm deadline.
async fn confirm_one(driver: &dyn Driver, plan: &FaultPlan, o: &Outcome) -> Result<(), String> {
    let Some(undo) = &o.undo else {
        return Ok(());
    };
    let deadline = Instant::now() + driver.confirm_deadline();
    let mut pause = Duration::from_millis(20);
    let mut polls = 0;
    loop {
        polls += 1;
        match driver.confirm(plan, undo).await {
            Ok(()) => return Ok(()),
            Err(DriverError::Retryable { message, after }) => {
                let wait = after.unwrap_or(pause);
                if polls >= MIN_ATTEMPTS && Instant::now() + wait > deadline {
                    return Err(format!(
                        "{message} (still so {:.0?} after the inject)",
                        driver.confirm_deadline()
                    ));
                }
                tokio::time::sleep(wait).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What the journal's `by` says of a step a person took (`--gameday`).
pub const HAND: &str = "hand";

/// Backoff between revert attempts: 0.2 s doubling to 5 s, or what the target asked for.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Tries a revert (or polls a confirm) gets whatever the deadline: one hung call must not be
/// the only one.
const MIN_ATTEMPTS: u32 = 3;

/// Revert until it succeeds, the error is permanent, or the driver's deadline passes.
async fn revert_with_retries(driver: &dyn Driver, undo: &Undo) -> Result<u32, (u32, String)> {
    let deadline = Instant::now() + driver.revert_deadline();
    let mut pause = FIRST_RETRY;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let wait = match driver.revert(undo).await {
            Ok(()) | Err(DriverError::AlreadyReverted) => return Ok(attempts),
            Err(DriverError::Retryable { message, after }) => {
                let wait = after.unwrap_or(pause);
                // At least MIN_ATTEMPTS, however long one call took (a call may time out after
                // longer than the whole deadline).
                if attempts >= MIN_ATTEMPTS && Instant::now() + wait > deadline {
                    return Err((
                        attempts,
                        format!(
                            "{message} (retried for {:.0?}, the driver's revert deadline)",
                            driver.revert_deadline()
                        ),
                    ));
                }
                wait
            }
            Err(e @ (DriverError::Permanent(_) | DriverError::Unsupported(_))) => {
                return Err((attempts, e.to_string()));
            }
        };
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}

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
    match revert_with_retries(driver, &undo).await {
        Ok(_) => {
            let mut r = Record::new(&f.name, kind, driver.name(), Step::Reverted);
            r.by = o.by_hand.reverted.then(|| HAND.to_string());
            let _ = journal_write(journal, &r);
            o.reverted_at_s = Some(start.elapsed().as_secs_f64());
            if o.status != Status::InjectFailed {
                o.status = Status::Reverted;
            }
        }
        Err((attempts, last)) => {
            let mut r = Record::new(&f.name, kind, driver.name(), Step::Failed);
            r.error = Some(format!("revert: {last}"));
            let _ = journal_write(journal, &r);
            o.status = Status::RevertFailed;
            // After what went before (an inject failure, an unconfirmed effect), not over it.
            let failed = format!(
                "revert failed after {attempts} attempt{}: {last}",
                if attempts == 1 { "" } else { "s" }
            );
            o.error = Some(match o.error.take() {
                Some(before) => format!("{before}; {failed}"),
                None => failed,
            });
        }
    }
}

/// What `chaos rollback` did with one open fault.
pub struct Rollback {
    pub fault: String,
    pub kind: String,
    pub result: Result<(), RollbackError>,
}

/// Why one open fault could not be rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no undo data for driver `{0}` in the journal: revert it by hand")]
    NoDriver(String),
    /// The revert failed after its retries (the driver's last error).
    #[error("{0}")]
    Revert(String),
}

/// Revert every fault the journal at `path` shows as possibly applied, newest first, appending
/// `reverted` (or `failed`) records to it. `driver_for` builds the driver from undo data.
pub async fn rollback(
    path: &std::path::Path,
    driver_for: &(dyn Fn(&Undo) -> Option<Box<dyn Driver>> + Sync),
) -> Result<Vec<Rollback>, journal::JournalError> {
    let records = journal::read(path)?;
    let open = journal::open_faults(&records);
    let j = Journal::create(path).map_err(|source| journal::JournalError::Write {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for r in open.into_iter().rev() {
        let result = match r.undo.as_ref().and_then(|u| driver_for(u).map(|d| (d, u))) {
            None => Err(RollbackError::NoDriver(r.driver.clone())),
            Some((d, undo)) => revert_with_retries(d.as_ref(), undo)
                .await
                .map(|_| ())
                .map_err(|(_, e)| RollbackError::Revert(e)),
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
mod tests;
