//! The open-model engine: sends each request at its scheduled time whether or not earlier ones
//! have returned, and measures latency from that intended time.
//!
//! Time: every offset is from the run's [`Clock`] epoch, the same one the fault timeline and
//! the recorder use. Preparing an [`Engine`] reads no clock; running it does.
//!
//! Threads and tasks:
//! - the *scheduler* runs on a blocking-pool OS thread, because tokio's timer has 1 ms
//!   granularity and would make every send up to 1 ms late; `std::thread::sleep` wakes within
//!   tens of µs. It sleeps against [`Clock::std_epoch`] (the clock's epoch as a std `Instant`).
//!   For each due offset it spawns one task onto the runtime and moves on — it never waits for
//!   responses (that is what makes the model open).
//! - each *logical request* is a task ([`request`]): wait for a `max_in_flight` slot (the wait is part of its
//!   latency; past its timeout it is `not_sent`), send, judge the response (its class, or the
//!   request's `expect`: [`super::expect`]), retry per policy and budget, then send one
//!   [`Sample`] into the recorder's [`SampleSink`] — and, while its request name has fewer than
//!   a few, hand a failure to [`super::failures`] for the post-mortem.
//! - the *recorder* is its own task (`metrics::recorder::spawn`); the engine only holds sink
//!   clones (the scheduler and every request task), so the recording ends when the last request
//!   reports. The `run` future reads the recorder's ticks and turns them into progress
//!   snapshots: the live view and abort conditions see what the recorder recorded.
//!
//! Shutdown (Ctrl-C, abort) stops the scheduler and further retries; requests already in
//! flight finish (each is bounded by its timeout), so every scheduled request is accounted for.

mod request;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

use super::client::{ClientConfig, ClientError, ReadBackHeaders};
use super::failures::Failures;
use super::prepared::{prepare, Prepared};
pub use super::progress::{NoProgress, Progress, ProgressSnapshot};
use super::retry::RetryBudget;
use super::schedule::{self, Schedule};
use super::template::{self, Captures};
use super::transport::{self, Target, Transport};
use crate::clock::Clock;
use crate::metrics::recorder::{self, Options, SampleSink, Tick};
use crate::metrics::Recording;
use crate::scenario::{Load, RetryPolicy};
use crate::shutdown::Shutdown;
use request::logical_request;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("target URL `{url}` is not usable: {reason}")]
    BadUrl {
        url: String,
        reason: transport::UrlError,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid HTTP method `{0}`")]
    BadMethod(String),
    #[error("a load at maximum rate has no schedule to split into shards")]
    Shard,
}

/// One acknowledged durable write, to be read back after the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DurableWrite {
    pub request: String,
    pub id: String,
    pub read_method: String,
    pub read_path: String,
    /// The headers the write was sent with that its read-back sends again (its auth, say):
    /// never serialized (report.json, the journal), values hidden from `Debug`.
    #[serde(skip)]
    pub headers: ReadBackHeaders,
    /// `durable.same`: the path, and a fingerprint of the single value the write sent there
    /// (`None`: it sent none — the write cannot be checked), that its read-back must hold.
    /// Never the value itself: it may be a secret, and it is kept for every write.
    #[serde(skip)]
    pub same: Option<(crate::scenario::JsonPath, Option<u64>)>,
    /// When its first attempt was sent, in ms on the run's clock (shards share it): it was
    /// committed no earlier. Absent in reports of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_ms: Option<u64>,
    /// When its acknowledgement arrived, in ms on the run's clock: it was committed no later;
    /// what a restore's `rpo` is measured from. Absent in reports of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_ms: Option<u64>,
}

impl DurableWrite {
    /// Write `id`, acknowledged for `request` (declared `d`): first sent at `sent_at` and
    /// acknowledged at `acked` on the run's clock, with `sent` as its body and `headers` among
    /// what it sent again on its read-back.
    pub fn new(
        request: &str,
        d: &crate::scenario::Durable,
        (id, sent_at, acked): (String, Duration, Duration),
        headers: ReadBackHeaders,
        sent: &[u8],
    ) -> DurableWrite {
        DurableWrite {
            sent_ms: Some(sent_at.as_millis() as u64),
            acked_ms: Some(acked.as_millis() as u64),
            request: request.to_string(),
            read_path: d.read_path.replace("{id}", &id),
            read_method: d.read_method.clone(),
            id,
            headers,
            same: d.same.as_ref().map(|path| {
                let doc = serde_json::from_slice::<serde_json::Value>(sent).ok();
                let held = doc.as_ref().and_then(|d| template::lookup(d, path));
                (path.clone(), held.and_then(crate::verify::fingerprint))
            }),
        }
    }
}

/// What the engine hands back.
pub struct LoadResult {
    pub recording: Recording,
    pub durable_writes: Vec<DurableWrite>,
    /// Durable writes acknowledged (2xx) whose response held no id at the configured path.
    pub durable_without_id: u64,
    /// Logical requests the scheduler issued.
    pub scheduled: u64,
    /// The scheduler stopped early (shutdown).
    pub interrupted: bool,
    /// The wall-clock time of the run clock's epoch (offset 0 of the schedule).
    pub started_at: SystemTime,
    /// From the clock's epoch to the last response.
    pub wall: Duration,
    /// What the users did (`[users]`): their journeys' counts and recording, or why goose
    /// could not run them (the run was shut down then).
    pub users: Option<super::journeys::UsersResult>,
}

struct Shared {
    transport: Transport,
    reqs: Vec<Prepared>,
    policy: RetryPolicy,
    timeout: Duration,
    budget: RetryBudget,
    caps: Captures,
    sem: Arc<Semaphore>,
    clock: Clock,
    /// The clock's epoch as a std `Instant`: the scheduler thread sleeps against it, and the
    /// per-request timestamps are taken with `std::time::Instant::now()` (see `crate::clock`).
    start: Instant,
    durable: Mutex<Vec<DurableWrite>>,
    durable_without_id: AtomicU64,
    failures: Failures,
    /// The values of `responses_by` seen so far, as the samples' tag ids.
    tags: crate::metrics::tags::Tags,
    shutdown: Arc<Shutdown>,
}

/// How requests are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The open model: on the stages' arrival schedule, whatever is in flight.
    Open,
    /// Closed loop, as fast as possible: `connections` workers each send their next request as
    /// soon as the previous one ends, for the stages' total duration. Rates are ignored and
    /// latency starts at the actual send (a closed loop cannot correct coordinated omission).
    /// For capacity probes and the throughput benchmark against wrk/oha.
    Max { connections: usize },
}

/// Run the load described by `load` against `base_url` until its schedule ends or `shutdown`
/// triggers. The schedule's offsets are from `clock`'s epoch; `progress` is updated from the
/// recorder's ticks, every `tick`.
pub async fn run(
    load: &Load,
    base_url: &str,
    clock: Clock,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
    tick: Duration,
) -> Result<LoadResult, EngineError> {
    run_mode(load, base_url, Mode::Open, clock, shutdown, progress, tick).await
}

/// [`run`] with an explicit [`Mode`].
pub async fn run_mode(
    load: &Load,
    base_url: &str,
    mode: Mode,
    clock: Clock,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
    tick: Duration,
) -> Result<LoadResult, EngineError> {
    let engine = Engine::new(load, base_url, mode)?;
    Ok(engine.run(clock, shutdown, progress, tick).await)
}

/// A load ready to run: URL checked, requests prepared, transport built. Building it reads no
/// clock, so a caller can prepare first and start the run's [`Clock`] after (the first sends
/// are then not late by the preparation).
pub struct Engine {
    load: Load,
    mode: Mode,
    reqs: Vec<Prepared>,
    transport: Transport,
    /// The closed model run beside the load (`[users]`), and the URL its users go to.
    users: Option<(super::journeys::Journeys, String)>,
    /// A shard's part of the schedule (`--shard`): the arrivals it sends.
    shard: Option<crate::run::shard::Shard>,
}

impl Engine {
    pub fn new(load: &Load, base_url: &str, mode: Mode) -> Result<Engine, EngineError> {
        let load = match mode {
            Mode::Open => load.clone(),
            Mode::Max { connections } => Load {
                max_in_flight: connections.max(1),
                ..load.clone()
            },
        };
        let target = Target::parse(base_url).map_err(|reason| EngineError::BadUrl {
            url: base_url.to_string(),
            reason,
        })?;
        let cfg = ClientConfig::new(&load.client)?;
        let reqs = prepare(&load, &cfg, &target)?;
        let mut transport = Transport::new(target, &cfg, load.max_in_flight)?;
        // (Validated as a header name; one that is not is not counted.)
        if let Some(h) = load
            .responses_by
            .as_deref()
            .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
        {
            transport = transport.with_tag(h);
        }
        Ok(Engine {
            load,
            mode,
            reqs,
            transport,
            users: None,
            shard: None,
        })
    }

    /// Send only `shard`'s part of the schedule (the arrivals n ≡ I mod N, `{{seq}}` still
    /// numbering the whole schedule's) and run its share of the users: set it before
    /// [`Engine::with_users`]. The open model only (a `Mode::Max` load has no schedule).
    pub fn with_shard(mut self, shard: crate::run::shard::Shard) -> Result<Engine, EngineError> {
        if matches!(self.mode, Mode::Max { .. }) {
            return Err(EngineError::Shard);
        }
        self.shard = Some(shard);
        Ok(self)
    }

    /// Run the users' journeys (`[users]`) beside the load, into the same recorder: their
    /// steps come after the load's requests in the recording's names (`journey:step`).
    pub fn with_users(
        mut self,
        users: &crate::scenario::Users,
        base_url: &str,
    ) -> Result<Engine, EngineError> {
        let j = super::journeys::Journeys::new_sharded(users, self.shard)?;
        self.users = Some((j, base_url.to_string()));
        Ok(self)
    }

    /// Run to the end of the schedule (or `shutdown`): the recorder task gets the samples, and
    /// its ticks drive `progress` (the live view, abort conditions).
    pub async fn run(
        mut self,
        clock: Clock,
        shutdown: Arc<Shutdown>,
        progress: &mut dyn Progress,
        tick: Duration,
    ) -> LoadResult {
        let load = &self.load;
        let policy = &load.client.retry;
        // The longest a logical request can live after its intended time: a slot wait (bounded
        // by the timeout), every attempt's timeout and every backoff. Intervals older than this
        // are final and get compressed.
        let lives = |timeout: Duration, p: &RetryPolicy| {
            timeout * (p.attempts + 1) + p.max_backoff * p.attempts.saturating_sub(1)
        };
        let mut settle = lives(load.client.timeout, policy) + load.interval;
        let mut names: Vec<String> = load.requests.iter().map(|r| r.name.clone()).collect();
        let mut total: Duration = load.stages.iter().map(|s| s.duration).sum();
        if let Some((j, _)) = &self.users {
            // A step lives as long as its attempts, and a user may still think before it.
            settle = settle.max(lives(j.client.timeout, &j.retry) + j.think.1 + load.interval);
            names.extend(j.step_names());
            total = total.max(j.duration());
        }
        let first_step = load.requests.len().min(usize::from(u16::MAX)) as u16;
        let (sink, mut recorder) =
            recorder::spawn(names, load.interval, clock, Options { tick, settle });
        let segs = schedule::segments(&load.stages);
        let shard_count = self.shard.map_or(1, |s| s.count);
        let max_in_flight = load.max_in_flight;
        let user_plan = self.users.as_ref().map(|(j, _)| j.plan.clone());
        let users = self.users.take().map(|(j, url)| {
            let rec = (load.interval, settle);
            super::journeys::spawn(
                j,
                url,
                sink.clone(),
                clock,
                first_step,
                shutdown.clone(),
                rec,
            )
        });
        let running = self.start(clock, sink, shutdown);
        let snapshot = |t: &Tick, sh: &Shared| {
            let dt = t.at.saturating_sub(t.since).as_secs_f64();
            ProgressSnapshot {
                elapsed: t.at,
                total,
                // A shard's share of the schedule, beside what it sends.
                target_rps: schedule::rate_at(&segs, t.at) / f64::from(shard_count),
                users: user_plan
                    .as_deref()
                    .map(|p| super::journeys::users_at(p, t.at)),
                achieved_rps: if dt > 0.0 {
                    t.live.requests() as f64 / dt
                } else {
                    0.0
                },
                p99_us: (!t.live.latency.is_empty())
                    .then(|| t.live.latency.value_at_quantile(0.99)),
                error_rate: t.live.error_rate(),
                in_flight: (max_in_flight - sh.sem.available_permits()) as u64,
                completed: t.recorded,
                live: t.live.clone(),
            }
        };
        // The ticks end when every sink is gone: the scheduler finished and every request
        // reported.
        let mut completed = 0;
        while let Some(t) = recorder.tick().await {
            completed = t.recorded;
            let s = snapshot(&t, &running.shared);
            if t.last {
                progress.finish(&s);
            } else {
                progress.update(&s);
            }
        }
        let mut recording = recorder.finish().await;
        let (scheduled, interrupted) = running.scheduler.await.unwrap_or((completed, true));
        let users = match users {
            Some(u) => Some(u.finish().await),
            None => None,
        };
        let wall = clock.elapsed();
        let sh = running.shared;
        let durable_writes =
            std::mem::take(&mut *sh.durable.lock().unwrap_or_else(|p| p.into_inner()));
        recording.failures = sh.failures.take();
        recording.tags = sh.tags.names();
        LoadResult {
            recording,
            durable_writes,
            durable_without_id: sh.durable_without_id.load(Relaxed),
            scheduled,
            interrupted,
            started_at: clock.started_at(),
            wall,
            users,
        }
    }

    /// Start issuing requests (scheduler thread or closed-loop workers); every sample goes to
    /// `sink`, whose clones live exactly as long as some request can still report.
    fn start(self, clock: Clock, sink: SampleSink, shutdown: Arc<Shutdown>) -> Running {
        let load = self.load;
        let policy = load.client.retry.clone();
        let cap_names: Vec<&str> = load
            .requests
            .iter()
            .flat_map(|r| r.capture.iter().map(|c| c.name.as_str()))
            .collect();
        let shared = Arc::new(Shared {
            transport: self.transport,
            reqs: self.reqs,
            timeout: load.client.timeout,
            budget: RetryBudget::new(policy.budget, policy.budget_window),
            policy,
            caps: Captures::new(cap_names),
            sem: Arc::new(Semaphore::new(load.max_in_flight)),
            clock,
            start: clock.std_epoch(),
            durable: Mutex::new(Vec::new()),
            durable_without_id: AtomicU64::new(0),
            failures: Failures::new(&load),
            tags: Default::default(),
            shutdown,
        });
        let weights: Vec<u64> = load.requests.iter().map(|r| u64::from(r.weight)).collect();
        if load.requests.is_empty() {
            // Only users (`[users]` without `[load]`): nothing to schedule.
            drop(sink);
            let scheduler = tokio::spawn(async { (0, false) });
            return Running { shared, scheduler };
        }
        let scheduler = match self.mode {
            Mode::Open => {
                let shared = shared.clone();
                let stages = load.stages.clone();
                let handle = tokio::runtime::Handle::current();
                let shard = self.shard;
                tokio::task::spawn_blocking(move || {
                    scheduler(shared, (&stages, shard), &weights, sink, handle)
                })
            }
            Mode::Max { connections } => {
                let total: Duration = load.stages.iter().map(|s| s.duration).sum();
                tokio::spawn(closed_loop(
                    shared.clone(),
                    connections.max(1),
                    total,
                    weights,
                    sink,
                ))
            }
        };
        Running { shared, scheduler }
    }
}

/// A started engine: its shared state (for the in-flight gauge) and what issues requests.
struct Running {
    shared: Arc<Shared>,
    /// (requests issued, stopped early).
    scheduler: tokio::task::JoinHandle<(u64, bool)>,
}

/// A usable base URL (http or https, a host, no query), normalised without a trailing `/`.
pub fn check_url(url: &str) -> Result<String, EngineError> {
    Target::parse(url).map_err(|reason| EngineError::BadUrl {
        url: url.to_string(),
        reason,
    })?;
    Ok(url.trim_end_matches('/').to_string())
}

/// The scheduler thread: returns (requests issued, stopped early). With a shard, only its
/// arrivals are sent; `seq` numbers the whole schedule's either way.
fn scheduler(
    sh: Arc<Shared>,
    (stages, shard): (&[crate::scenario::Stage], Option<crate::run::shard::Shard>),
    weights: &[u64],
    tx: SampleSink,
    handle: tokio::runtime::Handle,
) -> (u64, bool) {
    let cumulative: Vec<u64> = weights
        .iter()
        .scan(0u64, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect();
    let total_weight = cumulative.last().copied().unwrap_or(0).max(1);
    let mut rng = SmallRng::from_os_rng();
    let mut issued = 0u64;
    let mut arrivals = Schedule::new(stages)
        .enumerate()
        .map(|(n, offset)| (n as u64, offset))
        .filter(|(n, _)| shard.is_none_or(|s| s.takes(*n)))
        .peekable();
    // When this thread may wake next: at most one wake per BATCH (see its doc).
    let mut next_wake = sh.start;
    let mut batch: Vec<(u64, Duration, usize)> = Vec::new();
    while let Some(&(_, offset)) = arrivals.peek() {
        let due = (sh.start + offset).max(next_wake);
        loop {
            if sh.shutdown.is_triggered() {
                return (issued, true);
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            // Short sleeps keep shutdown responsive; nanosleep is accurate to tens of µs.
            std::thread::sleep((due - now).min(Duration::from_millis(10)));
        }
        // Every arrival due by now leaves in this wake.
        let now = Instant::now();
        next_wake = now + BATCH;
        while let Some(&(seq, offset)) = arrivals.peek() {
            if sh.start + offset > now {
                break;
            }
            arrivals.next();
            let pick = rng.random_range(0..total_weight);
            batch.push((seq, offset, cumulative.partition_point(|&c| c <= pick)));
        }
        issued += batch.len() as u64;
        match batch.as_slice() {
            [] => {}
            [(seq, offset, r)] => {
                handle.spawn(logical_request(sh.clone(), *seq, *offset, *r, tx.clone()));
                batch.clear();
            }
            _ => {
                // One task spawns the batch from inside the runtime: one cross-thread wake-up
                // of a worker instead of one per request.
                let (sh, tx) = (sh.clone(), tx.clone());
                let b = std::mem::take(&mut batch);
                handle.spawn(async move {
                    for (seq, offset, r) in b {
                        tokio::spawn(logical_request(sh.clone(), seq, offset, r, tx.clone()));
                    }
                });
            }
        }
    }
    (issued, false)
}

/// The scheduler thread wakes at most once per this: every arrival due by a wake leaves in
/// it, in one batch. Above 1/BATCH arrivals per second this trades up to BATCH of send
/// lateness (recorded, and counted in every latency: it is measured from the intended time)
/// for far fewer wake-ups of this thread and of the runtime's workers — the largest cost per
/// request at a constant rate. Below that rate each arrival has its own wake, on time.
const BATCH: Duration = Duration::from_micros(500);

/// The closed loop of [`Mode::Max`]: returns (requests issued, stopped early).
async fn closed_loop(
    sh: Arc<Shared>,
    connections: usize,
    total: Duration,
    weights: Vec<u64>,
    tx: SampleSink,
) -> (u64, bool) {
    let seq = Arc::new(AtomicU64::new(0));
    let total_weight: u64 = weights.iter().sum::<u64>().max(1);
    let weights = Arc::new(weights);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (sh, tx, seq, weights) = (sh.clone(), tx.clone(), seq.clone(), weights.clone());
        workers.spawn(async move {
            let mut rng = SmallRng::from_os_rng();
            loop {
                let now = sh.start.elapsed();
                if now >= total || sh.shutdown.is_triggered() {
                    return;
                }
                let pick = rng.random_range(0..total_weight);
                let mut acc = 0;
                let r = weights.iter().position(|w| {
                    acc += w;
                    pick < acc
                });
                let n = seq.fetch_add(1, Relaxed);
                logical_request(sh.clone(), n, now, r.unwrap_or(0), tx.clone()).await;
            }
        });
    }
    drop(tx);
    while workers.join_next().await.is_some() {}
    (seq.load(Relaxed), sh.shutdown.is_triggered())
}
