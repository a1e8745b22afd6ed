//! The closed model: virtual users running journeys (login → create → read back) with think
//! time and a cookie jar each, on goose (DESIGN.md "Load engine"). Every step's outcome and
//! latency goes into the run's recorder through the same [`SampleSink`] as the open model's, so
//! windows, recovery and every report read them alike; journey-level counts (started,
//! completed, failed at which step) come back from [`run`].
//!
//! How it uses goose (0.19, read from its source): one goose scenario per journey, weighted;
//! one goose transaction per journey *iteration* that runs the steps in order — a transaction
//! that fails does not stop goose's iteration, so a journey that must end at its first failed
//! step cannot be one transaction per step. The user plan is goose's test plan
//! (`users,timespan;…`), the think time its wait time (after every iteration) and a pause
//! between two steps inside the iteration. The attack is
//! built from a [`GooseConfiguration`] in code, never from the process's argv (which is
//! clap's), with goose's telnet controller and its final table off.
//!
//! Process-wide state: goose's `execute` installs a SIGINT handler with `ctrlc::set_handler`
//! (a second SIGINT then exits the process), sets itself as the `log` logger unless one is
//! set, and its killswitch is global. A run drives its users in-process all the same: `chaos
//! run` installs its own ctrlc handler and logger first (`cli::signals`), so goose's attempts
//! fail harmlessly and the harness's shutdown — and rollback — stays in charge; the killswitch
//! is pulled by [`run`] itself when the run's shutdown fires or the plan's time is up. One
//! attack per process at a time (a `chaos run` has one; tests take a lock).
//!
//! A goose user runs one journey (scenario) for its whole life: with fewer users than the
//! journeys' total weight a light journey may get none. Each user's client is built from
//! `[load.client]` with its own cookie jar: no proxy, no redirects, no compression, the
//! client's headers and CA roots — as the open model's.
//! Its latency is measured from when a step was sent (a closed model has no intended send
//! time: a stalled service slows the users instead — what it hides is said in the README).
//! This module owns the plan and the attack; [`iteration`] one user's pass through its journey.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;

mod iteration;

use super::client::{ClientConfig, ClientError};
use super::engine::DurableWrite;
use super::retry::RetryBudget;
use crate::clock::Clock;
use crate::metrics::recorder::{self, Options, RecorderHandle, SampleSink};
use crate::metrics::Recording;
use crate::scenario::{Journey, RetryPolicy, StageKind, Users};
use crate::shutdown::Shutdown;

use iteration::lock;

/// What the users do: journeys, how many users over time, how long each thinks.
#[derive(Debug, Clone)]
pub struct Journeys {
    /// In order; a step's captures are `{{name}}` for the later steps of the same iteration,
    /// besides `{{user}}` (the user's number, from 0).
    pub journeys: Vec<Journey>,
    /// The user plan, in goose's order: reach `users` over `over` (0 s: at once).
    pub plan: Vec<(usize, Duration)>,
    /// Think time, drawn in `think.0..=think.1`: between two steps of a journey (a user
    /// reads the page before the next click) and between two iterations.
    pub think: (Duration, Duration),
    /// The users' client: each step's timeout, the headers every step sends (a step's own
    /// header of the same name wins), the extra CA roots. No proxy, no redirects followed, no
    /// compression asked for, as in the open model.
    pub client: ClientConfig,
    /// Retries of a step, with backoff and a budget shared by every user, as the open model's.
    pub retry: RetryPolicy,
    /// A shard's part of the users (`--shard`): its share of each stage's count, its users
    /// numbered so that `{{user}}` is unique over all shards.
    pub shard: Option<crate::run::shard::Shard>,
}

impl Journeys {
    /// The scenario's `[users]` as goose will run it: a ramp is goose's "reach N over D", a
    /// hold is "reach N at once, then stay for D".
    pub fn new(u: &Users) -> Result<Journeys, ClientError> {
        Journeys::new_sharded(u, None)
    }

    /// [`Journeys::new`] for one shard of a sharded run: its share of each stage's users.
    pub fn new_sharded(
        u: &Users,
        shard: Option<crate::run::shard::Shard>,
    ) -> Result<Journeys, ClientError> {
        let mut plan = Vec::new();
        for st in &u.plan {
            let n = shard.map_or(st.users, |s| s.users(st.users)) as usize;
            match st.kind {
                StageKind::Ramp => plan.push((n, st.duration)),
                StageKind::Hold => {
                    // A step that changes nothing in no time stalls goose's plan (measured:
                    // the attack never ended): a hold at the count already reached is one step.
                    let at = plan.last().map_or(0, |(u, _)| *u);
                    if at != n {
                        plan.push((n, Duration::ZERO));
                    }
                    plan.push((n, st.duration));
                }
            }
        }
        // goose ends a plan where it is: the last users leave at once.
        if plan.last().is_some_and(|(n, _)| *n > 0) {
            plan.push((0, Duration::ZERO));
        }
        Ok(Journeys {
            journeys: u.journeys.clone(),
            plan,
            think: (u.think_min, u.think_max),
            client: ClientConfig::new(&u.client)?,
            retry: u.client.retry.clone(),
            shard,
        })
    }

    /// The plan's length.
    pub fn duration(&self) -> Duration {
        self.plan.iter().map(|(_, d)| *d).sum()
    }

    /// The recorder's request names, `journey:step`, in the order of [`run`]'s sample indices.
    pub fn step_names(&self) -> Vec<String> {
        crate::scenario::step_names(&self.journeys)
    }

    /// The journeys' recording's names, in the order of its sample indices.
    pub fn journey_names(&self) -> Vec<String> {
        self.journeys.iter().map(|j| j.name.clone()).collect()
    }

    /// The plan as goose's test plan text (`10,5s;10,30s;0,0s`). goose takes whole seconds:
    /// each step ends at its end rounded to the nearest second (so rounding never adds up
    /// over the steps; a ramp of under half a second is at once).
    fn test_plan(&self) -> String {
        let mut end = Duration::ZERO;
        let mut shown = 0u64;
        self.plan
            .iter()
            .map(|(u, d)| {
                end += *d;
                let at = end.as_secs_f64().round() as u64;
                let secs = at.saturating_sub(shown);
                shown = at;
                format!("{u},{secs}s")
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Users a goose plan (`(users, over)` steps, linear from the previous count) has at `t`.
pub fn users_at(plan: &[(usize, Duration)], t: Duration) -> usize {
    let mut start = Duration::ZERO;
    let mut from = 0usize;
    for (to, d) in plan {
        let end = start + *d;
        if t < end {
            let f = (t - start).as_secs_f64() / d.as_secs_f64();
            return (from as f64 + (*to as f64 - from as f64) * f).round() as usize;
        }
        start = end;
        from = *to;
    }
    from
}

/// One journey's counts over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JourneyCounts {
    pub name: String,
    /// `completed + canceled + Σ failed`.
    pub started: u64,
    pub completed: u64,
    /// Iterations stopped between two steps by goose's killswitch (the run stopping early).
    pub canceled: u64,
    /// Iterations that ended at a failed step, by the step's name (in step order).
    pub failed: Vec<(String, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum JourneyError {
    #[error("the user journeys could not run: {0}")]
    Goose(String),
    #[error("the journeys' HTTP client: {0}")]
    Client(#[from] ClientError),
}

/// What one journey's transaction needs, shared by all its users.
struct Shared {
    journey: Journey,
    /// The recorder index of its first step.
    first: u16,
    sink: SampleSink,
    /// Its index in the journeys' recording, and that recording's sink: one sample per
    /// iteration that ended (completed, or failed at a step), not one the run's end canceled.
    index: u16,
    journeys: SampleSink,
    clock: Clock,
    client: ClientConfig,
    /// The target's base URL without its trailing `/`: a step's path is appended to it (goose
    /// would resolve it against the origin, losing a base path).
    base: String,
    think: (Duration, Duration),
    retry: RetryPolicy,
    budget: Arc<RetryBudget>,
    /// Logical requests so far (`{{seq}}`), over every journey.
    seq: Arc<AtomicU64>,
    /// Every journey's acknowledged durable writes.
    writes: Arc<Writes>,
    started: AtomicU64,
    completed: AtomicU64,
    canceled: AtomicU64,
    failed: Vec<AtomicU64>,
    /// The capture names its steps use (a fresh store per iteration).
    vars: Vec<String>,
    shard: Option<crate::run::shard::Shard>,
}

/// What the users did over a run.
#[derive(Debug)]
pub struct UsersResult {
    /// One entry per journey.
    pub counts: Vec<JourneyCounts>,
    /// Per journey (the names of [`Journeys::journey_names`]), one sample per ended
    /// iteration: its steps' time without think time, failed or not. `journey:NAME` SLOs are
    /// judged on it.
    pub recording: Recording,
    /// Why goose could not run the users; the run's shutdown was triggered.
    pub error: Option<String>,
    /// The steps' acknowledged durable writes, to be read back after the run (with the
    /// headers and the session cookie each was made with).
    pub durable_writes: Vec<DurableWrite>,
    /// Durable writes acknowledged (2xx) whose response held no id at the configured path.
    pub durable_without_id: u64,
}

/// What [`run`] hands back once the users have stopped.
#[derive(Debug, Default)]
pub struct Ran {
    /// One entry per journey.
    pub counts: Vec<JourneyCounts>,
    /// See [`UsersResult::durable_writes`].
    pub durable_writes: Vec<DurableWrite>,
    /// See [`UsersResult::durable_without_id`].
    pub durable_without_id: u64,
}

/// The durable writes the steps of every journey acknowledged.
#[derive(Default)]
struct Writes {
    acknowledged: Mutex<Vec<DurableWrite>>,
    without_id: AtomicU64,
}

/// A user's state between its iterations (goose's session data): its cookie jar, kept so
/// that a durable write is read back with the session it was made under.
#[derive(Clone)]
struct Session(Arc<reqwest::cookie::Jar>);

/// The users running beside a run's load: [`spawn`], then [`UsersTask::finish`].
pub struct UsersTask {
    task: tokio::task::JoinHandle<Result<Ran, JourneyError>>,
    recorder: RecorderHandle,
}

/// Start the users on a task of their own: steps into `sink` from index `first`, journeys
/// into a recording of their own (`(interval, settle)` as the run's recorder). A goose error
/// triggers `shutdown`: half a run is no run.
pub fn spawn(
    j: Journeys,
    base_url: String,
    sink: SampleSink,
    clock: Clock,
    first: u16,
    shutdown: Arc<Shutdown>,
    (interval, settle): (Duration, Duration),
) -> UsersTask {
    let opts = Options {
        // Nobody reads its ticks: the live view and aborts read the steps.
        tick: Duration::from_secs(3600),
        settle,
    };
    let (journey_sink, recorder) = recorder::spawn(j.journey_names(), interval, clock, opts);
    let task = tokio::spawn(async move {
        let r = run(
            &j,
            &base_url,
            sink,
            journey_sink,
            clock,
            first,
            shutdown.clone(),
        )
        .await;
        if r.is_err() {
            shutdown.trigger();
        }
        r
    });
    UsersTask { task, recorder }
}

impl UsersTask {
    /// Wait for the users to end (the plan, the shutdown) and their recording to close.
    pub async fn finish(self) -> UsersResult {
        let r = self.task.await;
        let recording = self.recorder.finish().await;
        let (ran, error) = match r {
            Ok(Ok(ran)) => (ran, None),
            Ok(Err(e)) => (Ran::default(), Some(e.to_string())),
            Err(e) => (Ran::default(), Some(format!("the users' task ended: {e}"))),
        };
        UsersResult {
            counts: ran.counts,
            recording,
            error,
            durable_writes: ran.durable_writes,
            durable_without_id: ran.durable_without_id,
        }
    }
}

/// Run the users until their plan ends, `shutdown` fires or goose's killswitch is pulled,
/// sending each step's sample to `sink` with index `first + ` its place in
/// [`Journeys::step_names`], and each ended iteration's to `journey_sink` with the journey's
/// index (for journey SLOs: its duration without think time, failed or not). The killswitch is pulled here when `shutdown` fires and a second
/// after the plan's time (from the clock's epoch) is up: goose's whole-second plan never
/// outlives ours by more.
pub async fn run(
    j: &Journeys,
    base_url: &str,
    sink: SampleSink,
    journey_sink: SampleSink,
    clock: Clock,
    first: u16,
    shutdown: Arc<Shutdown>,
) -> Result<Ran, JourneyError> {
    // A client is built once here so that a bad configuration fails the run before any user
    // starts; each user then builds its own (its own cookie jar).
    j.client.reqwest(base_url)?;
    // A shard whose share of every stage is no user (fewer users than shards) runs none: goose
    // refuses a plan that starts no user.
    if j.plan.iter().all(|(u, _)| *u == 0) {
        return Ok(Ran {
            counts: j
                .journeys
                .iter()
                .map(|jn| JourneyCounts {
                    name: jn.name.clone(),
                    failed: jn.steps.iter().map(|s| (s.name.clone(), 0)).collect(),
                    ..JourneyCounts::default()
                })
                .collect(),
            ..Ran::default()
        });
    }
    let seq = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(RetryBudget::new(j.retry.budget, j.retry.budget_window));
    let writes = Arc::new(Writes::default());
    let mut shared = Vec::new();
    let mut index = first;
    for (ji, journey) in j.journeys.iter().enumerate() {
        let mut vars: Vec<String> = journey
            .steps
            .iter()
            .flat_map(|s| s.capture.iter().map(|c| c.name.clone()))
            .collect();
        vars.push("user".into());
        shared.push(Arc::new(Shared {
            journey: journey.clone(),
            first: index,
            sink: sink.clone(),
            index: ji.min(usize::from(u16::MAX)) as u16,
            journeys: journey_sink.clone(),
            clock,
            client: j.client.clone(),
            base: base_url.trim_end_matches('/').to_string(),
            think: j.think,
            retry: j.retry.clone(),
            budget: budget.clone(),
            seq: seq.clone(),
            writes: writes.clone(),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            canceled: AtomicU64::new(0),
            failed: journey.steps.iter().map(|_| AtomicU64::new(0)).collect(),
            vars,
            shard: j.shard,
        }));
        index = index.saturating_add(journey.steps.len() as u16);
    }
    drop(sink);
    drop(journey_sink);
    let goose = |e: GooseError| JourneyError::Goose(e.to_string());
    let mut config = GooseConfiguration::default();
    config.host = Some(base_url.to_string());
    config.no_telnet = true;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.quiet = 1;
    // goose's own metrics: nothing reads them (every step goes to our recorder).
    config.no_metrics = true;
    let mut attack = *GooseAttack::initialize_with_config(config)
        .map_err(goose)?
        .set_default(GooseDefault::TestPlan, j.test_plan().as_str())
        .map_err(goose)?;
    for s in &shared {
        let tx_shared = s.clone();
        let f: TransactionFunction = Arc::new(move |user| {
            let s = tx_shared.clone();
            Box::pin(async move {
                s.iterate(user).await;
                Ok(())
            })
        });
        // Each user's own client, built from `[load.client]` with a cookie jar of its own,
        // before its first iteration.
        let setup_shared = s.clone();
        let setup: TransactionFunction = Arc::new(move |user| {
            let s = setup_shared.clone();
            Box::pin(async move {
                let jar = Arc::new(reqwest::cookie::Jar::default());
                if let Ok(c) = s.client.reqwest_builder(&s.base).and_then(|b| {
                    b.cookie_provider(jar.clone())
                        .build()
                        .map_err(|e| ClientError::Build(e.to_string()))
                }) {
                    user.client = c;
                    user.set_session_data(Session(jar));
                }
                Ok(())
            })
        });
        let scenario = Scenario::new(&s.journey.name)
            .set_weight(s.journey.weight.max(1) as usize)
            .map_err(goose)?
            .set_wait_time(j.think.0, j.think.1)
            .map_err(goose)?
            .register_transaction(Transaction::new(setup).set_on_start())
            .register_transaction(Transaction::new(f).set_name(&s.journey.name));
        attack = attack.register_scenario(scenario);
    }
    // goose clears the killswitch when its attack starts: keep pulling it while the run is
    // over (shut down, or past the plan's end) until the attack has returned. At the plan's
    // end goose lets each user finish its iteration; one still running a second later (goose
    // rounds the plan to whole seconds) is stopped before its next step, counted `canceled`.
    let end = j.duration() + Duration::from_secs(1);
    let stopper = async {
        tokio::select! {
            _ = shutdown.wait() => {}
            _ = tokio::time::sleep_until(clock.at(end)) => {}
        }
        loop {
            goose::trigger_killswitch("the run is over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let attack = attack.execute();
    tokio::pin!(attack);
    let r = tokio::select! {
        r = &mut attack => r,
        () = stopper => unreachable!("the stopper loops until the attack returns"),
    };
    r.map_err(goose)?;
    let counts = shared
        .iter()
        .map(|s| JourneyCounts {
            name: s.journey.name.clone(),
            started: s.started.load(Relaxed),
            completed: s.completed.load(Relaxed),
            canceled: s.canceled.load(Relaxed),
            failed: s
                .journey
                .steps
                .iter()
                .zip(&s.failed)
                .map(|(st, n)| (st.name.clone(), n.load(Relaxed)))
                .collect(),
        })
        .collect();
    // Taken, not unwrapped: a user's closure may still hold the Arc.
    let durable_writes = std::mem::take(&mut *lock(&writes.acknowledged));
    Ok(Ran {
        counts,
        durable_writes,
        durable_without_id: writes.without_id.load(Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps: &[(usize, f64)]) -> Vec<(usize, Duration)> {
        steps
            .iter()
            .map(|(u, s)| (*u, Duration::from_secs_f64(*s)))
            .collect()
    }

    #[test]
    fn the_plan_counts_users_linearly_and_jumps_at_once() {
        let p = plan(&[(10, 10.0), (40, 0.0), (40, 20.0), (0, 5.0)]);
        let at = |s: f64| users_at(&p, Duration::from_secs_f64(s));
        assert_eq!((at(0.0), at(5.0), at(9.9)), (0, 5, 10));
        assert_eq!((at(10.0), at(29.9)), (40, 40), "the jump to 40 is at once");
        assert_eq!((at(32.5), at(35.0), at(99.0)), (20, 0, 0));
    }

    #[test]
    fn shards_split_every_stage_of_the_user_plan_and_sum_to_it() {
        let text = crate::scenario::builtin::get("journeys-redis-partition").unwrap();
        let s = crate::scenario::parse_str("j.toml", text).unwrap();
        let u = s.users.as_ref().unwrap();
        let whole = Journeys::new(u).unwrap().plan;
        for n in [1u32, 2, 3, 7] {
            let parts: Vec<Vec<(usize, Duration)>> = (0..n)
                .map(|index| {
                    let shard = crate::run::shard::Shard { index, count: n };
                    Journeys::new_sharded(u, Some(shard)).unwrap().plan
                })
                .collect();
            // At every moment of the plan the shards' users add up to the whole plan's (a
            // jump to a count a shard already has is no step of its own: it would stall goose).
            for t in (0..=80).map(|s| Duration::from_millis(s * 1000 + 500)) {
                let sum: usize = parts.iter().map(|p| users_at(p, t)).sum();
                let want = users_at(&whole, t);
                assert!(
                    sum.abs_diff(want) <= n as usize,
                    "{n} shards at {t:?}: {sum} vs {want}"
                );
            }
            for p in &parts {
                assert_eq!(
                    p.iter().map(|(_, d)| *d).sum::<Duration>(),
                    Duration::from_secs(75)
                );
                assert!(
                    p.windows(2)
                        .all(|w| !(w[1].1.is_zero() && w[0].0 == w[1].0)),
                    "{p:?}"
                );
            }
            let peak: usize = parts
                .iter()
                .map(|p| p.iter().map(|(u, _)| *u).max().unwrap())
                .sum();
            assert_eq!(peak, 200, "4x of 50 users over {n} shards");
        }
    }

    #[test]
    fn goose_gets_whole_seconds_rounded_at_each_step_end_so_errors_do_not_add_up() {
        let j = Journeys {
            journeys: Vec::new(),
            plan: plan(&[(5, 1.4), (5, 1.4), (5, 1.4), (0, 0.0)]),
            think: (Duration::ZERO, Duration::ZERO),
            client: ClientConfig::plain(Duration::from_secs(1)),
            retry: RetryPolicy {
                attempts: 1,
                backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
                jitter: crate::scenario::Jitter::None,
                on: crate::scenario::RetryOn::default(),
                budget: None,
                budget_window: Duration::from_secs(10),
            },
            shard: None,
        };
        // Ends at 1.4, 2.8, 4.2 s: goose's steps end at 1, 3 and 4 s (not 1, 2, 3).
        assert_eq!(j.test_plan(), "5,1s;5,2s;5,1s;0,0s");
    }
}
