//! The open-model engine: sends each request at its scheduled time whether or not earlier ones
//! have returned, and measures latency from that intended time.
//!
//! Threads and tasks:
//! - the *scheduler* runs on a blocking-pool OS thread, because tokio's timer has 1 ms
//!   granularity and would make every send up to 1 ms late; `std::thread::sleep` wakes within
//!   tens of µs. For each due offset it spawns one task onto the runtime and moves on — it never
//!   waits for responses (that is what makes the model open).
//! - each *logical request* is a task: wait for a `max_in_flight` slot (the wait is part of its
//!   latency; past its timeout it is `not_sent`), send, judge the response (its class, or the
//!   request's `expect`: [`super::expect`]), retry per policy and budget, then send one
//!   [`Sample`] to the recorder — and, while its request name has fewer than a few, hand a
//!   failure to [`super::failures`] for the post-mortem.
//! - the *recorder* is the `run` future itself: it owns the [`Recorder`], drains the sample
//!   channel in batches, compresses intervals that can no longer change, and ticks the progress
//!   view. It ends when every sender is gone: the scheduler finished and every request reported.
//!
//! Shutdown (Ctrl-C, abort) stops the scheduler and further retries; requests already in
//! flight finish (each is bounded by its timeout), so every scheduled request is accounted for.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Request};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, Semaphore};

use super::client::{ClientConfig, ClientError, ReadBackHeaders};
use super::expect::{self, Rejection};
use super::failures::{Failures, Seen};
use super::prepared::{prepare, render, Prepared, Rendered};
use super::retry::{backoff, RetryBudget};
use super::schedule::{self, Schedule};
use super::template::{self, Captures};
use super::transport::{self, Target, Transport};
use crate::metrics::{Outcome, Recorder, Recording, Sample, Stats};
use crate::scenario::{Load, RetryPolicy};
use crate::shutdown::Shutdown;

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
    pub started_at: SystemTime,
    /// Wall time from the first scheduled send to the last response.
    pub wall: Duration,
}

/// A moment of the run, for the live view.
#[derive(Debug, Clone, Default)]
pub struct ProgressSnapshot {
    pub elapsed: Duration,
    pub total: Duration,
    /// Scheduled rate now (req/s).
    pub target_rps: f64,
    /// Responses per second over the last tick.
    pub achieved_rps: f64,
    /// p99 latency of the responses in the last tick (µs).
    pub p99_us: Option<u64>,
    pub error_rate: f64,
    pub in_flight: u64,
    pub completed: u64,
    /// Everything measured over the last tick (responses that completed in it): what abort
    /// conditions judge, over a sliding window of ticks.
    pub live: Stats,
}

pub trait Progress: Send {
    fn update(&mut self, s: &ProgressSnapshot);
    fn finish(&mut self, s: &ProgressSnapshot);
}

/// A progress sink that shows nothing (`--quiet`, tests).
pub struct NoProgress;
impl Progress for NoProgress {
    fn update(&mut self, _: &ProgressSnapshot) {}
    fn finish(&mut self, _: &ProgressSnapshot) {}
}

struct Shared {
    transport: Transport,
    reqs: Vec<Prepared>,
    policy: RetryPolicy,
    timeout: Duration,
    budget: RetryBudget,
    caps: Captures,
    sem: Arc<Semaphore>,
    start: Instant,
    durable: Mutex<Vec<DurableWrite>>,
    durable_without_id: AtomicU64,
    failures: Failures,
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
/// triggers; `tick` is how often `progress` is updated.
pub async fn run(
    load: &Load,
    base_url: &str,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
    tick: Duration,
) -> Result<LoadResult, EngineError> {
    run_mode(load, base_url, Mode::Open, shutdown, progress, tick).await
}

/// [`run`] with an explicit [`Mode`].
pub async fn run_mode(
    load: &Load,
    base_url: &str,
    mode: Mode,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
    tick: Duration,
) -> Result<LoadResult, EngineError> {
    let load = &match mode {
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
    let reqs = prepare(load, &cfg, &target)?;
    let transport = Transport::new(target, &cfg, load.max_in_flight)?;
    let cap_names: Vec<&str> = load
        .requests
        .iter()
        .flat_map(|r| r.capture.iter().map(|c| c.name.as_str()))
        .collect();
    let segs = schedule::segments(&load.stages);
    let total: Duration = load.stages.iter().map(|s| s.duration).sum();
    let policy = load.client.retry.clone();
    // The longest a logical request can live after its intended time: a slot wait (bounded by
    // the timeout), every attempt's timeout and every backoff. Intervals older than this are
    // final and get compressed.
    let lifetime = load.client.timeout * (policy.attempts + 1)
        + policy.max_backoff * policy.attempts.saturating_sub(1)
        + load.interval;

    let started_at = SystemTime::now();
    let shared = Arc::new(Shared {
        transport,
        reqs,
        timeout: load.client.timeout,
        budget: RetryBudget::new(policy.budget, policy.budget_window),
        policy,
        caps: Captures::new(cap_names),
        sem: Arc::new(Semaphore::new(load.max_in_flight)),
        start: Instant::now(),
        durable: Mutex::new(Vec::new()),
        durable_without_id: AtomicU64::new(0),
        failures: Failures::new(load),
        shutdown: shutdown.clone(),
    });

    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let weights: Vec<u64> = load.requests.iter().map(|r| u64::from(r.weight)).collect();
    let scheduler = match mode {
        Mode::Open => {
            let shared = shared.clone();
            let stages = load.stages.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || scheduler(shared, &stages, &weights, tx, handle))
        }
        Mode::Max { connections } => tokio::spawn(closed_loop(
            shared.clone(),
            connections.max(1),
            total,
            weights,
            tx,
        )),
    };

    let names = load.requests.iter().map(|r| r.name.clone()).collect();
    let mut rec = Recorder::new(names, load.interval);
    let mut buf = Vec::with_capacity(4096);
    let mut last_tick = Instant::now();
    let mut completed = 0u64;
    let snapshot = |live: &Stats, dt: f64, completed: u64, sh: &Shared| {
        let elapsed = sh.start.elapsed();
        ProgressSnapshot {
            elapsed,
            total,
            target_rps: schedule::rate_at(&segs, elapsed),
            achieved_rps: if dt > 0.0 {
                live.requests() as f64 / dt
            } else {
                0.0
            },
            p99_us: (!live.latency.is_empty()).then(|| live.latency.value_at_quantile(0.99)),
            error_rate: live.error_rate(),
            in_flight: (load.max_in_flight - sh.sem.available_permits()) as u64,
            completed,
            live: live.clone(),
        }
    };
    // The recorder drains the channel on its own clock instead of being woken per sample: at
    // tens of thousands of requests per second, a wake-up per send (a futex call across
    // threads) costs more than the recording itself. Samples wait at most `DRAIN` here; their
    // times were taken when they happened, so nothing measured changes.
    const DRAIN: Duration = Duration::from_millis(5);
    let mut next_tick = Instant::now() + tick;
    'record: loop {
        tokio::time::sleep(DRAIN).await;
        loop {
            match rx.try_recv() {
                Ok(s) => buf.push(s),
                Err(mpsc::error::TryRecvError::Empty) => break,
                // Every sender is gone: all requests are accounted for.
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    completed += buf.len() as u64;
                    for s in buf.drain(..) {
                        rec.record(&s);
                    }
                    break 'record;
                }
            }
            if buf.len() >= 4096 {
                completed += buf.len() as u64;
                for s in buf.drain(..) {
                    rec.record(&s);
                }
            }
        }
        completed += buf.len() as u64;
        for s in buf.drain(..) {
            rec.record(&s);
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + tick;
            let dt = now.duration_since(last_tick).as_secs_f64();
            last_tick = now;
            let live = rec.take_live();
            progress.update(&snapshot(&live, dt, completed, &shared));
            rec.close_before(shared.start.elapsed().saturating_sub(lifetime));
        }
    }
    let (scheduled, interrupted) = scheduler.await.unwrap_or((completed, true));
    let wall = shared.start.elapsed();
    let live = rec.take_live();
    let dt = last_tick.elapsed().as_secs_f64();
    progress.finish(&snapshot(&live, dt, completed, &shared));
    let durable_writes =
        std::mem::take(&mut *shared.durable.lock().unwrap_or_else(|p| p.into_inner()));
    let mut recording = rec.finish();
    recording.failures = shared.failures.take();
    Ok(LoadResult {
        recording,
        durable_writes,
        durable_without_id: shared.durable_without_id.load(Relaxed),
        scheduled,
        interrupted,
        started_at,
        wall,
    })
}

/// A usable base URL (http or https, a host, no query), normalised without a trailing `/`.
pub fn check_url(url: &str) -> Result<String, EngineError> {
    Target::parse(url).map_err(|reason| EngineError::BadUrl {
        url: url.to_string(),
        reason,
    })?;
    Ok(url.trim_end_matches('/').to_string())
}

/// The scheduler thread: returns (requests issued, stopped early).
fn scheduler(
    sh: Arc<Shared>,
    stages: &[crate::scenario::Stage],
    weights: &[u64],
    tx: mpsc::UnboundedSender<Sample>,
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
    let mut seq = 0u64;
    for offset in Schedule::new(stages) {
        let due = sh.start + offset;
        loop {
            if sh.shutdown.is_triggered() {
                return (seq, true);
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            // Short sleeps keep shutdown responsive; nanosleep is accurate to tens of µs.
            std::thread::sleep((due - now).min(Duration::from_millis(10)));
        }
        let pick = rng.random_range(0..total_weight);
        let r = cumulative.partition_point(|&c| c <= pick);
        handle.spawn(logical_request(sh.clone(), seq, offset, r, tx.clone()));
        seq += 1;
    }
    (seq, false)
}

/// The closed loop of [`Mode::Max`]: returns (requests issued, stopped early).
async fn closed_loop(
    sh: Arc<Shared>,
    connections: usize,
    total: Duration,
    weights: Vec<u64>,
    tx: mpsc::UnboundedSender<Sample>,
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

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// The result of one attempt.
struct Attempt {
    outcome: Outcome,
    /// 0 when there was no response.
    status: u16,
    rejection: Option<Rejection>,
    /// Kept for a capture, durable write or body check (whole), or for a possible failure
    /// sample (its head), else `None`.
    headers: Option<HeaderMap>,
    body: Option<Vec<u8>>,
    body_len: u64,
}

impl Attempt {
    fn failed(outcome: Outcome) -> Attempt {
        Attempt {
            outcome,
            status: 0,
            rejection: None,
            headers: None,
            body: None,
            body_len: 0,
        }
    }
}

async fn logical_request(
    sh: Arc<Shared>,
    seq: u64,
    intended: Duration,
    r: usize,
    tx: mpsc::UnboundedSender<Sample>,
) {
    let due = sh.start + intended;
    let mut sample = Sample {
        request: r as u16,
        intended,
        latency_us: 0,
        service_us: 0,
        lateness_us: 0,
        outcome: Outcome::NotSent,
        status: 0,
        attempts: 0,
        exhausted: false,
    };
    // Wait for a slot; a request that cannot start before its timeout is not sent (counted).
    // A free slot is taken at once, without arming a timer (the common case).
    let permit = match sh.sem.clone().try_acquire_owned() {
        Ok(p) => Some(p),
        Err(_) => {
            let deadline = tokio::time::Instant::from_std(due + sh.timeout);
            tokio::select! {
                p = sh.sem.clone().acquire_owned() => p.ok(),
                _ = tokio::time::sleep_until(deadline) => None,
            }
        }
    };
    let Some(_permit) = permit else {
        let _ = tx.send(sample);
        return;
    };
    let req = &sh.reqs[r];
    let Ok(rendered) = render(req, seq, &sh.transport.target().base_path, &sh.caps) else {
        let _ = tx.send(sample);
        return;
    };
    sh.budget.deposit(intended);
    let first_send = Instant::now();
    sample.lateness_us = micros(first_send.saturating_duration_since(due));
    let policy = &sh.policy;
    let mut attempts = 0u32;
    let last = loop {
        attempts += 1;
        let a = attempt(&sh, r, req, &rendered).await;
        // An expected status is a success, never retried; a response `expect` rejects is
        // retried like any other when its status is in `retry.on`.
        let retryable = match a.outcome {
            Outcome::Ok | Outcome::NotSent => false,
            Outcome::Http4xx | Outcome::Http5xx | Outcome::Unexpected => {
                policy.on.statuses.contains(&a.status)
            }
            Outcome::Timeout => policy.on.timeout,
            Outcome::ConnectError => policy.on.connect,
            Outcome::Reset => policy.on.reset,
        };
        if !retryable {
            break a;
        }
        if attempts >= policy.attempts || sh.shutdown.is_triggered() {
            sample.exhausted = true;
            break a;
        }
        if !sh.budget.try_withdraw(sh.start.elapsed()) {
            sample.exhausted = true;
            break a;
        }
        let pause = backoff(policy, attempts, &mut rand::rng());
        tokio::time::sleep(pause).await;
    };
    let end = Instant::now();
    sample.outcome = last.outcome;
    sample.status = last.status;
    sample.attempts = attempts.min(u32::from(u8::MAX)) as u8;
    sample.latency_us = micros(end.saturating_duration_since(due));
    sample.service_us = micros(end.saturating_duration_since(first_send));
    // Captures and durable writes come from successes below 400 only: an expected 404 is `ok`
    // but acknowledges nothing.
    let reads = !req.captures.is_empty() || req.durable.is_some();
    if last.outcome == Outcome::Ok && last.status < 400 && reads {
        if let Some(body) = &last.body {
            after_success(&sh, req, body, rendered.headers.as_ref());
        }
    }
    let _ = tx.send(sample);
    if last.outcome != Outcome::Ok {
        let seen = Seen {
            outcome: last.outcome,
            status: last.status,
            rejection: last.rejection,
            headers: last.headers.as_ref(),
            body: last.body.as_deref(),
            body_len: last.body_len,
        };
        let at = intended.as_secs_f64();
        let e = req.expect.as_ref();
        sh.failures
            .offer(r, &req.name, at, sample.attempts, e, &seen);
    }
}

/// One attempt of request `ri`: take or open a connection, send, and read the whole response,
/// all within the client timeout. The body is kept whole when a capture, durable write or
/// body check reads it; otherwise only the head of a response that fails on its status, and
/// only while request `ri` still collects failure samples (one comparison on a success).
async fn attempt(sh: &Shared, ri: usize, req: &Prepared, r: &Rendered) -> Attempt {
    let mut rq = Request::new(transport::Body::new(r.body.clone()));
    *rq.method_mut() = req.method.clone();
    *rq.uri_mut() = r.uri.clone();
    *rq.headers_mut() = r.headers.as_ref().unwrap_or(&req.headers).clone();
    let keep = |status: u16| {
        if req.keep_body {
            Some(usize::MAX)
        } else if expect::fails_by_status(req.expect.as_ref(), status) && sh.failures.open(ri) {
            Some(sh.failures.body_limit())
        } else {
            None
        }
    };
    match tokio::time::timeout(sh.timeout, sh.transport.send(rq, keep)).await {
        Err(_) => Attempt::failed(Outcome::Timeout),
        Ok(Err(outcome)) => Attempt::failed(outcome),
        Ok(Ok(resp)) => {
            let (outcome, rejection) =
                expect::judge(req.expect.as_ref(), resp.status, resp.body.as_deref());
            Attempt {
                outcome,
                status: resp.status,
                rejection,
                headers: resp.headers,
                body: resp.body,
                body_len: resp.body_len,
            }
        }
    }
}

/// Captures and durable-write ids from a successful response; `rendered` is the headers the
/// request went with when some were templated (`None`: the prepared ones).
fn after_success(sh: &Shared, req: &Prepared, body: &[u8], rendered: Option<&HeaderMap>) {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        if req.durable.is_some() {
            sh.durable_without_id.fetch_add(1, Relaxed);
        }
        return;
    };
    for c in &req.captures {
        if let Some(v) = template::extract(&doc, &c.path) {
            sh.caps.put(&c.name, v);
        }
    }
    if let Some(d) = &req.durable {
        match template::extract(&doc, &d.id) {
            Some(id) => {
                let w = DurableWrite {
                    request: req.name.clone(),
                    read_path: d.read_path.replace("{id}", &id),
                    read_method: d.read_method.clone(),
                    id,
                    headers: match rendered {
                        Some(sent) => ReadBackHeaders::pick(sent, &req.read_back),
                        None => req.read_back_fixed.clone(),
                    },
                };
                sh.durable.lock().unwrap_or_else(|p| p.into_inner()).push(w);
            }
            None => {
                sh.durable_without_id.fetch_add(1, Relaxed);
            }
        }
    }
}
