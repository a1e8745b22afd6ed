//! One user's iteration of its journey: each step sent in order through goose with the
//! client's retries, its sample into the run's recorder, its captures kept for the next steps,
//! and a durable write it acknowledges kept for the after-run read-back (with the user's
//! session cookie). The journey's own sample (its steps' time without think time) ends the
//! iteration. Never schedules users: goose does, from the plan in [`super`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use goose::prelude::*;

use super::{Session, Shared};
use crate::load::client::{self, ReadBackHeaders};
use crate::load::engine::DurableWrite;
use crate::load::expect;
use crate::load::retry as retries;
use crate::load::template::{self, Captures};
use crate::metrics::{Outcome, Sample};
use crate::scenario::{Body, Durable, Header, RequestSpec};

impl Shared {
    /// One iteration: each step in order until one fails.
    pub(super) async fn iterate(&self, user: &mut GooseUser) {
        self.started.fetch_add(1, Relaxed);
        let began = self.clock.elapsed();
        // The journey's own sample: its steps' latencies summed (no think time), the
        // outcome of the step it ended at.
        let mut journey = Sample {
            request: self.index,
            intended: began,
            latency_us: 0,
            service_us: 0,
            lateness_us: 0,
            outcome: Outcome::Ok,
            status: 0,
            attempts: 1,
            exhausted: false,
            tag: 0,
        };
        let caps = Captures::new(self.vars.iter().map(String::as_str));
        let number = user.weighted_users_index;
        let number = self
            .shard
            .map_or(number, |s| s.global(number as u64) as usize);
        caps.put("user", number.to_string());
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
            let s = self.step(user, k, step, &caps).await;
            journey.latency_us = journey.latency_us.saturating_add(s.latency_us);
            journey.service_us = journey.latency_us;
            journey.status = s.status;
            if s.outcome != Outcome::Ok {
                self.failed[k].fetch_add(1, Relaxed);
                journey.outcome = s.outcome;
                self.journeys.send(journey);
                return;
            }
        }
        self.completed.fetch_add(1, Relaxed);
        self.journeys.send(journey);
    }

    /// Send one step, record its sample, keep its captures; the sample (`ok` or not).
    async fn step(
        &self,
        user: &mut GooseUser,
        k: usize,
        step: &RequestSpec,
        caps: &Captures,
    ) -> Sample {
        let seq = self.seq.fetch_add(1, Relaxed);
        let seq = self.shard.map_or(seq, |s| s.global(seq));
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
            // `responses_by` counts the open model's responses only.
            tag: 0,
        };
        // Rendered before any await (the thread's rng is not Send).
        let rendered = {
            let mut rng = rand::rng();
            let mut path = String::new();
            let headers: Result<Vec<(&Header, String)>, template::Missing> =
                client::merge(&self.client.headers, &step.headers)
                    .into_iter()
                    .map(|h| {
                        let mut v = String::new();
                        template::render(&h.value, seq, &mut rng, caps, &mut v)?;
                        Ok((h, v))
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
            return self.sent(sample(Outcome::NotSent, 0, 0));
        };
        let method = match step.method.as_str() {
            "GET" => GooseMethod::Get,
            "POST" => GooseMethod::Post,
            "PUT" => GooseMethod::Put,
            "PATCH" => GooseMethod::Patch,
            "DELETE" => GooseMethod::Delete,
            "HEAD" => GooseMethod::Head,
            _ => {
                return self.sent(sample(Outcome::NotSent, 0, 0));
            }
        };
        // An absolute URL: goose sends it as it is (the base path kept).
        let url = format!("{}{path}", self.base);
        let Ok(mut rb) = user.get_request_builder(&method, &url) else {
            return self.sent(sample(Outcome::NotSent, 0, 0));
        };
        rb = rb.timeout(self.client.timeout);
        for (h, v) in &headers {
            rb = rb.header(h.name.as_str(), v.as_str());
        }
        // A durable write's body, kept for its `same` check.
        let mut written = Vec::new();
        if let Some(b) = body {
            if matches!(step.body, Some(Body::Json(_)))
                && !headers
                    .iter()
                    .any(|(h, _)| h.name.eq_ignore_ascii_case("content-type"))
            {
                rb = rb.header("content-type", "application/json");
            }
            if step.durable.as_ref().is_some_and(|d| d.same.is_some()) {
                written = b.clone().into_bytes();
            }
            rb = rb.body(b);
        }
        let name = format!("{}:{}", self.journey.name, step.name);
        let sent = self.clock.elapsed();
        self.budget.deposit(sent);
        let took = || {
            let d = self.clock.elapsed().saturating_sub(sent);
            d.as_micros().min(u128::from(u64::MAX)) as u64
        };
        let mut attempts = 0u32;
        let mut exhausted = false;
        let (outcome, status, keep) = loop {
            attempts += 1;
            let Some(rb) = rb.try_clone() else {
                break (Outcome::NotSent, 0, None);
            };
            let req = GooseRequest::builder()
                .set_request_builder(rb)
                .name(name.as_str())
                .build();
            let (outcome, status, keep) = match user.request(req).await {
                Ok(r) => match r.response {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        // The body is part of the answer: a timeout or reset while it arrives
                        // is that outcome, not a success on the status alone.
                        match resp.bytes().await {
                            Ok(body) => {
                                let (o, _) =
                                    expect::judge(step.expect.as_ref(), status, Some(&body));
                                (o, status, Some(body))
                            }
                            Err(e) => (transport_outcome(&e), status, None),
                        }
                    }
                    Err(e) => (transport_outcome(&e), 0, None),
                },
                // goose could not build the request (a rendered header that is no valid
                // value): nothing was sent.
                Err(_) => (Outcome::NotSent, 0, None),
            };
            if !retries::retryable(&self.retry, outcome, status) {
                break (outcome, status, keep);
            }
            if attempts >= self.retry.attempts
                || goose::is_killswitch_triggered()
                || !self.budget.try_withdraw(self.clock.elapsed())
            {
                exhausted = true;
                break (outcome, status, keep);
            }
            let pause = retries::backoff(&self.retry, attempts, &mut rand::rng());
            tokio::time::sleep(pause).await;
        };
        let us = if outcome == Outcome::NotSent && attempts == 1 {
            0
        } else {
            took()
        };
        let sample = Sample {
            attempts: if outcome == Outcome::NotSent && attempts == 1 {
                0
            } else {
                attempts.min(u32::from(u8::MAX)) as u8
            },
            exhausted,
            ..sample(outcome, status, us)
        };
        self.sink.send(sample);
        if outcome != Outcome::Ok {
            return sample;
        }
        // Captures and durable writes come from successes below 400 only: an expected 404
        // is `ok` but acknowledges nothing.
        if status >= 400 || (step.capture.is_empty() && step.durable.is_none()) {
            return sample;
        }
        let doc = keep.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        // One missing: a later step that needs it is not sent (the journey fails there).
        for c in &step.capture {
            if let Some(v) = doc.as_ref().and_then(|d| template::extract(d, &c.path)) {
                caps.put(&c.name, v);
            }
        }
        if let Some(d) = &step.durable {
            let id = doc.as_ref().and_then(|doc| template::extract(doc, &d.id));
            match id {
                Some(id) => {
                    let w = self.durable(user, &name, d, (id, sent), &headers, &written);
                    lock(&self.writes.acknowledged).push(w);
                }
                None => {
                    self.writes.without_id.fetch_add(1, Relaxed);
                }
            }
        }
        sample
    }

    /// An acknowledged durable write of step `name`, read back after the run with the headers
    /// it was sent with (the client's and the step's, rendered; secrets stay marked
    /// sensitive) and its user's cookies for the read's URL — the session it was made under,
    /// unless the step set its own `cookie` header. A session lost by then makes the
    /// read-back unverified (a 401), never a loss.
    fn durable(
        &self,
        user: &GooseUser,
        name: &str,
        d: &Durable,
        (id, sent_at): (String, std::time::Duration),
        headers: &[(&Header, String)],
        written: &[u8],
    ) -> DurableWrite {
        let mut m = reqwest::header::HeaderMap::new();
        for (h, v) in headers {
            let (Ok(n), Ok(v)) = (client::header_name(h), client::header_value(h, v)) else {
                continue;
            };
            if client::read_back_sends(&n) {
                m.insert(n, v);
            }
        }
        let when = (id, sent_at, self.clock.elapsed());
        let mut w = DurableWrite::new(name, d, when, ReadBackHeaders::new(m.clone()), written);
        let url = reqwest::Url::parse(&format!("{}{}", self.base, w.read_path));
        let cookies = user
            .get_session_data::<Session>()
            .zip(url.ok())
            .and_then(|(s, u)| {
                use reqwest::cookie::CookieStore as _;
                s.0.cookies(&u)
            });
        if let Some(mut c) = cookies {
            if !m.contains_key(reqwest::header::COOKIE) {
                c.set_sensitive(true);
                m.insert(reqwest::header::COOKIE, c);
                w.headers = ReadBackHeaders::new(m);
            }
        }
        w
    }

    /// `s`, once sent to the recorder.
    fn sent(&self, s: Sample) -> Sample {
        self.sink.send(s);
        s
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
