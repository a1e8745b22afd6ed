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
//! What it must never do: run in the process whose signal handling does the rollback. goose's
//! `execute` installs a process-wide SIGINT handler (`ctrlc::set_handler`, which replaces
//! tokio's; a second SIGINT exits the process), and its killswitch and logger are
//! process-wide too, so a run is to drive journeys from a child process (not built yet); this
//! module only runs the attack and reports. goose prints "N users launched." on stdout.
//!
//! A goose user runs one journey (scenario) for its whole life: with fewer users than the
//! journeys' total weight a light journey may get none. Each user's client is built from
//! `[load.client]` with its own cookie jar: no proxy, no redirects, no compression, the
//! client's headers and CA roots — as the open model's.
//! Its latency is measured from when a step was sent (a closed model has no intended send
//! time: a stalled service slows the users instead — what it hides is said in the README).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;

use super::client::{self, ClientConfig, ClientError};
use super::expect;
use super::template::{self, Captures};
use crate::clock::Clock;
use crate::metrics::recorder::SampleSink;
use crate::metrics::{Outcome, Sample};
use crate::scenario::{Body, RequestSpec};

/// What the users do: journeys, how many users over time, how long each thinks.
#[derive(Debug, Clone)]
pub struct Journeys {
    pub journeys: Vec<Journey>,
    /// The user plan, in goose's order: reach `users` over `over` (0 s: at once).
    pub plan: Vec<(usize, Duration)>,
    /// Think time, drawn in `think.0..=think.1`: between two steps of a journey (a user
    /// reads the page before the next click) and between two iterations.
    pub think: (Duration, Duration),
    /// `[load.client]`: each step's timeout, the headers every step sends (a step's own
    /// header of the same name wins), the extra CA roots. No proxy, no redirects followed, no
    /// compression asked for, as in the open model.
    pub client: ClientConfig,
}

#[derive(Debug, Clone)]
pub struct Journey {
    pub name: String,
    pub weight: u32,
    /// In order; a step's captures are `{{name}}` for the later steps of the same iteration,
    /// besides `{{user}}` (the user's number, from 0).
    pub steps: Vec<RequestSpec>,
}

impl Journeys {
    /// The recorder's request names, `journey:step`, in the order of [`run`]'s sample indices.
    pub fn step_names(&self) -> Vec<String> {
        self.journeys
            .iter()
            .flat_map(|j| {
                j.steps
                    .iter()
                    .map(move |s| format!("{}:{}", j.name, s.name))
            })
            .collect()
    }

    /// The plan as goose's test plan text (`10,5s;10,30s;0,0s`). goose takes whole seconds:
    /// a step's length is rounded to the nearest (a ramp of under half a second is at once).
    fn test_plan(&self) -> String {
        self.plan
            .iter()
            .map(|(u, d)| format!("{u},{}s", d.as_secs_f64().round() as u64))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// One journey's counts over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
    clock: Clock,
    client: ClientConfig,
    /// The target's base URL without its trailing `/`: a step's path is appended to it (goose
    /// would resolve it against the origin, losing a base path).
    base: String,
    think: (Duration, Duration),
    /// Logical requests so far (`{{seq}}`), over every journey.
    seq: Arc<AtomicU64>,
    started: AtomicU64,
    completed: AtomicU64,
    canceled: AtomicU64,
    failed: Vec<AtomicU64>,
    /// The capture names its steps use (a fresh store per iteration).
    vars: Vec<String>,
}

/// Run the users until their plan ends (or goose's killswitch is pulled), sending each step's
/// sample to `sink` with index `first + ` its place in [`Journeys::step_names`].
pub async fn run(
    j: &Journeys,
    base_url: &str,
    sink: SampleSink,
    clock: Clock,
    first: u16,
) -> Result<Vec<JourneyCounts>, JourneyError> {
    // A client is built once here so that a bad configuration fails the run before any user
    // starts; each user then builds its own (its own cookie jar).
    j.client.reqwest(base_url)?;
    let seq = Arc::new(AtomicU64::new(0));
    let mut shared = Vec::new();
    let mut index = first;
    for journey in &j.journeys {
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
            clock,
            client: j.client.clone(),
            base: base_url.trim_end_matches('/').to_string(),
            think: j.think,
            seq: seq.clone(),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            canceled: AtomicU64::new(0),
            failed: journey.steps.iter().map(|_| AtomicU64::new(0)).collect(),
            vars,
        }));
        index = index.saturating_add(journey.steps.len() as u16);
    }
    drop(sink);
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
                if let Ok(c) = s.client.reqwest_builder(&s.base).and_then(|b| {
                    b.cookie_store(true)
                        .build()
                        .map_err(|e| ClientError::Build(e.to_string()))
                }) {
                    user.client = c;
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
    attack.execute().await.map_err(goose)?;
    Ok(shared
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
        .collect())
}

impl Shared {
    /// One iteration: each step in order until one fails.
    async fn iterate(&self, user: &mut GooseUser) {
        self.started.fetch_add(1, Relaxed);
        let caps = Captures::new(self.vars.iter().map(String::as_str));
        caps.put("user", user.weighted_users_index.to_string());
        for (k, step) in self.journey.steps.iter().enumerate() {
            if k > 0 {
                // The user thinks before the next step (the time is drawn before the await:
                // the thread's rng is not Send).
                let (lo, hi) = self.think;
                let pause = if hi > lo {
                    rand::Rng::random_range(&mut rand::rng(), lo..=hi)
                } else {
                    lo
                };
                tokio::time::sleep(pause).await;
            }
            if goose::is_killswitch_triggered() {
                self.canceled.fetch_add(1, Relaxed);
                return;
            }
            let ok = self.step(user, k, step, &caps).await;
            if !ok {
                self.failed[k].fetch_add(1, Relaxed);
                return;
            }
        }
        self.completed.fetch_add(1, Relaxed);
    }

    /// Send one step, record its sample, keep its captures; whether it succeeded.
    async fn step(
        &self,
        user: &mut GooseUser,
        k: usize,
        step: &RequestSpec,
        caps: &Captures,
    ) -> bool {
        let seq = self.seq.fetch_add(1, Relaxed);
        let at = self.clock.elapsed();
        let sample = |outcome: Outcome, status: u16, us: u64| Sample {
            request: self.first.saturating_add(k as u16),
            intended: at,
            latency_us: us,
            service_us: us,
            lateness_us: 0,
            outcome,
            status,
            attempts: u8::from(outcome != Outcome::NotSent),
            exhausted: false,
        };
        // Rendered before any await (the thread's rng is not Send).
        let rendered = {
            let mut rng = rand::rng();
            let mut path = String::new();
            let headers: Result<Vec<(String, String)>, template::Missing> =
                client::merge(&self.client.headers, &step.headers)
                    .into_iter()
                    .map(|h| {
                        let mut v = String::new();
                        template::render(&h.value, seq, &mut rng, caps, &mut v)?;
                        Ok((h.name.clone(), v))
                    })
                    .collect();
            let body = match &step.body {
                Some(Body::Json(t)) => template::render_json(t, seq, &mut rng, caps).map(Some),
                Some(Body::Text(t)) => {
                    let mut b = String::new();
                    template::render(t, seq, &mut rng, caps, &mut b).map(|()| Some(b))
                }
                None => Ok(None),
            };
            template::render(&step.path, seq, &mut rng, caps, &mut path)
                .and_then(|()| Ok((path, headers?, body?)))
        };
        let Ok((path, headers, body)) = rendered else {
            // A captured value the step needs never came: not sent.
            self.sink.send(sample(Outcome::NotSent, 0, 0));
            return false;
        };
        let method = match step.method.as_str() {
            "GET" => GooseMethod::Get,
            "POST" => GooseMethod::Post,
            "PUT" => GooseMethod::Put,
            "PATCH" => GooseMethod::Patch,
            "DELETE" => GooseMethod::Delete,
            "HEAD" => GooseMethod::Head,
            _ => {
                self.sink.send(sample(Outcome::NotSent, 0, 0));
                return false;
            }
        };
        // An absolute URL: goose sends it as it is (the base path kept).
        let url = format!("{}{path}", self.base);
        let Ok(mut rb) = user.get_request_builder(&method, &url) else {
            self.sink.send(sample(Outcome::NotSent, 0, 0));
            return false;
        };
        rb = rb.timeout(self.client.timeout);
        for (n, v) in &headers {
            rb = rb.header(n.as_str(), v.as_str());
        }
        if let Some(b) = body {
            if matches!(step.body, Some(Body::Json(_)))
                && !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                rb = rb.header("content-type", "application/json");
            }
            rb = rb.body(b);
        }
        let name = format!("{}:{}", self.journey.name, step.name);
        let req = GooseRequest::builder()
            .set_request_builder(rb)
            .name(name.as_str())
            .build();
        let sent = self.clock.elapsed();
        let resp = user.request(req).await;
        let took = || {
            let d = self.clock.elapsed().saturating_sub(sent);
            d.as_micros().min(u128::from(u64::MAX)) as u64
        };
        let (outcome, status, keep, us) = match resp {
            Ok(r) => match r.response {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // The body is part of the answer: a timeout or reset while it arrives is
                    // that outcome, not a success on the status alone.
                    match resp.bytes().await {
                        Ok(body) => {
                            let us = took();
                            let (o, _) = expect::judge(step.expect.as_ref(), status, Some(&body));
                            (o, status, Some(body), us)
                        }
                        Err(e) => (transport_outcome(&e), status, None, took()),
                    }
                }
                Err(e) => (transport_outcome(&e), 0, None, took()),
            },
            // goose could not build the request (a rendered header that is no valid value):
            // nothing was sent.
            Err(_) => (Outcome::NotSent, 0, None, 0),
        };
        self.sink.send(sample(outcome, status, us));
        if outcome != Outcome::Ok {
            return false;
        }
        if !step.capture.is_empty() {
            let doc = keep.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            // One missing: a later step that needs it is not sent (the journey fails there).
            for c in &step.capture {
                if let Some(v) = doc.as_ref().and_then(|d| template::extract(d, &c.path)) {
                    caps.put(&c.name, v);
                }
            }
        }
        true
    }
}

/// A transport failure's outcome, as the open model counts it.
fn transport_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::ConnectError
    } else {
        Outcome::Reset
    }
}
