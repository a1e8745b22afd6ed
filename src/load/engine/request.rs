//! One logical request of the open model: wait for an in-flight slot, render and send it,
//! judge the answer, retry per policy and budget, then one [`Sample`] into the recorder — and,
//! from a success, its captures and its acknowledged durable write. Never schedules anything:
//! the scheduler in [`super`] spawns one of these per due arrival.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Request};

use super::{DurableWrite, Shared};
use crate::load::client::ReadBackHeaders;
use crate::load::expect::{self, Rejection};
use crate::load::failures::Seen;
use crate::load::prepared::{render, Prepared, Rendered};
use crate::load::retry::{backoff, retryable};
use crate::load::template;
use crate::load::transport;
use crate::metrics::recorder::SampleSink;
use crate::metrics::{Outcome, Sample};

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
    /// The `responses_by` header's value.
    tag: Option<http::HeaderValue>,
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
            tag: None,
        }
    }
}

pub(super) async fn logical_request(
    sh: Arc<Shared>,
    seq: u64,
    intended: Duration,
    r: usize,
    tx: SampleSink,
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
        tag: 0,
    };
    // Wait for a slot; a request that cannot start before its timeout is not sent (counted).
    // A free slot is taken at once, without arming a timer (the common case).
    let permit = match sh.sem.clone().try_acquire_owned() {
        Ok(p) => Some(p),
        Err(_) => {
            let deadline = sh.clock.at(intended + sh.timeout);
            tokio::select! {
                p = sh.sem.clone().acquire_owned() => p.ok(),
                _ = tokio::time::sleep_until(deadline) => None,
            }
        }
    };
    let Some(_permit) = permit else {
        tx.send(sample);
        return;
    };
    let req = &sh.reqs[r];
    let Ok(rendered) = render(req, seq, &sh.transport.target().base_path, &sh.caps) else {
        tx.send(sample);
        return;
    };
    sh.budget.deposit(intended);
    let first_send = Instant::now();
    let sent_at = sh.clock.elapsed();
    sample.lateness_us = micros(first_send.saturating_duration_since(due));
    let policy = &sh.policy;
    let mut attempts = 0u32;
    let last = loop {
        attempts += 1;
        let a = attempt(&sh, r, req, &rendered).await;
        if !retryable(policy, a.outcome, a.status) {
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
    if let Some(v) = &last.tag {
        sample.tag = sh.tags.id(v.as_bytes());
    }
    sample.attempts = attempts.min(u32::from(u8::MAX)) as u8;
    sample.latency_us = micros(end.saturating_duration_since(due));
    sample.service_us = micros(end.saturating_duration_since(first_send));
    // Captures and durable writes come from successes below 400 only: an expected 404 is `ok`
    // but acknowledges nothing.
    let reads = !req.captures.is_empty() || req.durable.is_some();
    if last.outcome == Outcome::Ok && last.status < 400 && reads {
        if let Some(body) = &last.body {
            let sent = (&rendered.body[..], sent_at);
            after_success(&sh, req, body, sent, rendered.headers.as_ref());
        }
    }
    tx.send(sample);
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
                tag: resp.tag,
            }
        }
    }
}

/// Captures and durable-write ids from a successful response; `sent` is the request's body
/// and when its first attempt went out, `rendered` the headers it went with when some were
/// templated (`None`: the prepared ones).
fn after_success(
    sh: &Shared,
    req: &Prepared,
    body: &[u8],
    (sent, sent_at): (&[u8], Duration),
    rendered: Option<&HeaderMap>,
) {
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
                let headers = match rendered {
                    Some(sent) => ReadBackHeaders::pick(sent, &req.read_back),
                    None => req.read_back_fixed.clone(),
                };
                let when = (id, sent_at, sh.clock.elapsed());
                let w = DurableWrite::new(&req.name, d, when, headers, sent);
                sh.durable.lock().unwrap_or_else(|p| p.into_inner()).push(w);
            }
            None => {
                sh.durable_without_id.fetch_add(1, Relaxed);
            }
        }
    }
}
