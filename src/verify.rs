//! The data check: after the load has stopped and every fault is reverted, each acknowledged
//! durable write (a 2xx with an id, see `durable` in the scenario) is read back (a shard that
//! does not drive the faults waits for the fault timeline's end instead; `report::merge` checks
//! that the conductor's last revert came before). Those the
//! system no longer has are **lost** and listed by id in the report; `lost_writes` SLOs judge
//! them.
//!
//! The read-back is not part of the measured load: its own client (reqwest, built from the
//! same [`ClientConfig`] as the writes' client: CA, timeout — `[load.client]` for the load's
//! requests, `[users.client]` for journey steps), bounded concurrency, not recorded. Each
//! write is read back with the headers it was acknowledged with — the client's and its
//! request's, a templated one with the value rendered for that write, and for a journey step
//! its user's session cookie — and nothing else. Those headers are never written anywhere
//! (report, journal, logs).
//!
//! A 404 is only believed after it repeats (a replica catching up is not a loss). A 401 or
//! 403 (a token expired, a session lost since) makes the write **unverified** at once, never
//! lost. Transient failures (connect, timeout, 5xx) are retried with backoff, and a write that
//! still cannot be read is reported as **unverified** — never silently counted as found or
//! lost. With `durable.same`, an id that answers must also hold what its write sent (at that
//! path): another value under it — an id handed out again after a split brain — is a lost
//! write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::load::client::{ClientConfig, ClientError};
use crate::load::engine::DurableWrite;
use crate::scenario::Client;
use crate::slo::DataCheck;

/// At most this many read-back requests in flight.
const CONCURRENCY: usize = 32;
/// After this many attempts in a row the target did not answer (a transport error, a 5xx),
/// the rest are reported unverified at once: ten rounds of every request in flight.
const GIVE_UP_AFTER: u64 = 10 * CONCURRENCY as u64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LostWrite {
    pub request: String,
    pub id: String,
    /// Why, when it is not that the id is gone (404): `durable.same` found another value
    /// under it. (The value itself is never written.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unverified {
    pub request: String,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    pub checked: u64,
    pub found: u64,
    pub lost: Vec<LostWrite>,
    pub unverified: Vec<Unverified>,
    /// Per request name: (read back with a definite answer, lost).
    #[serde(skip)]
    pub per_request: BTreeMap<String, (u64, u64)>,
}

/// What the `lost_writes` SLOs are judged on: the read-back, an empty one for a finished run
/// that acknowledged no durable write ("nothing to read back", not "the run did not finish"),
/// none for a run cut short before its read-back. Writes acknowledged without an id at the
/// configured path (`without_id`) could not be read back: lost or not, unknown.
///
/// `writes` are the acknowledged writes that were read back: with the read-back's answers,
/// when each found or lost one was acknowledged (what `rpo` is measured on).
pub fn data_check(
    v: Option<&Verification>,
    writes: &[DurableWrite],
    finished: bool,
    without_id: u64,
) -> Option<DataCheck> {
    let mut d = match v {
        Some(v) => v.data_check(),
        None if finished => DataCheck::default(),
        None => return None,
    };
    if let Some(v) = v {
        let key = |r: &str, id: &str| (r.to_string(), id.to_string());
        let lost: std::collections::HashSet<(String, String)> =
            v.lost.iter().map(|l| key(&l.request, &l.id)).collect();
        let unknown: std::collections::HashSet<(String, String)> = v
            .unverified
            .iter()
            .map(|u| key(&u.request, &u.id))
            .collect();
        for w in writes {
            let k = key(&w.request, &w.id);
            if unknown.contains(&k) {
                continue;
            }
            match (w.sent_ms, w.acked_ms) {
                (Some(sent_ms), Some(acked_ms)) => d.answered.push(crate::slo::Answered {
                    request: w.request.clone(),
                    sent_ms,
                    acked_ms,
                    found: !lost.contains(&k),
                }),
                _ => d.untimed += 1,
            }
        }
        d.answered.sort_by_key(|a| a.acked_ms);
    }
    if without_id > 0 {
        d.unverified
            .push(("(acknowledged without an id)".into(), without_id));
    }
    Some(d)
}

impl Verification {
    pub fn data_check(&self) -> DataCheck {
        DataCheck {
            per_request: self
                .per_request
                .iter()
                .map(|(n, (c, l))| (n.clone(), *c, *l))
                .collect(),
            unverified: self
                .unverified
                .iter()
                .fold(std::collections::BTreeMap::new(), |mut m, u| {
                    *m.entry(u.request.clone()).or_insert(0u64) += 1;
                    m
                })
                .into_iter()
                .collect(),
            ..DataCheck::default()
        }
    }
}

/// Read back each group of writes with its own client configuration (the load's writes with
/// `[load.client]`, the journeys' with `[users.client]`) into one verification. A group whose
/// client cannot be built (a CA file gone since validation) is not bad input and loses no
/// evidence: its writes are unverified, with the reason.
pub async fn read_back_groups(
    base_url: &str,
    groups: &[(&Client, &[DurableWrite])],
) -> Verification {
    let mut all = Verification::default();
    for (client, writes) in groups.iter().filter(|(_, w)| !w.is_empty()) {
        let v = match read_back(base_url, client, writes).await {
            Ok(v) => v,
            Err(e) => {
                Verification::none_read(writes, &format!("cannot read back durable writes: {e}"))
            }
        };
        all.absorb(v);
    }
    all
}

impl Verification {
    /// Add another read-back's answers (of other writes) to this one: counts summed, lost and
    /// unverified writes listed together (lost ones in id order).
    pub fn absorb(&mut self, v: Verification) {
        self.checked += v.checked;
        self.found += v.found;
        self.lost.extend(v.lost);
        self.unverified.extend(v.unverified);
        for (name, (checked, lost)) in v.per_request {
            let e = self.per_request.entry(name).or_default();
            e.0 += checked;
            e.1 += lost;
        }
        self.lost.sort_by_key(|l| natural(&l.id));
    }

    /// A read-back that could not start at all: every write unverified, for `reason`.
    pub fn none_read(writes: &[DurableWrite], reason: &str) -> Verification {
        let mut v = Verification::default();
        for w in writes {
            v.checked += 1;
            v.per_request.entry(w.request.clone()).or_default();
            v.unverified.push(Unverified {
                request: w.request.clone(),
                id: w.id.clone(),
                reason: reason.to_string(),
            });
        }
        v
    }
}

enum Answer {
    Found,
    /// With a reason when the id answers with another value (`durable.same`).
    Lost(Option<String>),
    /// No definite answer: the target kept failing (transport errors, 5xx).
    Unverified(String),
    /// Unverified too, but the target answered (401, 403): not a sign it is down.
    Refused(String),
}

/// Why the read-back could not even start (a write that cannot be read is data, not this).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot build the read-back client for {url}: {reason}")]
    Client { url: String, reason: ClientError },
}

/// Read back every write against `base_url` with the scenario's client configuration (its CA
/// and timeout: [`ClientConfig`], the same the load's transport is built from). Each read-back
/// sends the headers its write was acknowledged with ([`DurableWrite::headers`]: the client's
/// and the request's, with the values rendered for that write), so a token set only on the
/// write request, or templated per request, reads back as it wrote.
pub async fn read_back(
    base_url: &str,
    client_cfg: &Client,
    writes: &[DurableWrite],
) -> Result<Verification, VerifyError> {
    let started = std::time::Instant::now();
    let failed = |reason| VerifyError::Client {
        url: base_url.to_string(),
        reason,
    };
    let cfg = ClientConfig::new(client_cfg).map_err(failed)?;
    let client = cfg.reqwest(base_url).map_err(failed)?;
    let base = Arc::new(base_url.trim_end_matches('/').to_string());
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    // A dead target would cost every write its full retry schedule: the attempts it did not
    // answer in a row are counted ([`GIVE_UP_AFTER`]), and any answer starts the count again.
    let dead = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for w in writes.iter().cloned() {
        let (client, base, sem, dead) = (client.clone(), base.clone(), sem.clone(), dead.clone());
        set.spawn(async move {
            let a = one(&client, &base, &w, &sem, &dead).await;
            (w, a)
        });
    }
    let mut v = Verification::default();
    while let Some(r) = set.join_next().await {
        let Ok((w, a)) = r else { continue };
        v.checked += 1;
        let e = v.per_request.entry(w.request.clone()).or_default();
        match a {
            Answer::Found => {
                v.found += 1;
                e.0 += 1;
            }
            Answer::Lost(reason) => {
                e.0 += 1;
                e.1 += 1;
                v.lost.push(LostWrite {
                    request: w.request,
                    id: w.id,
                    reason,
                });
            }
            Answer::Unverified(reason) | Answer::Refused(reason) => {
                tracing::debug!(request = %w.request, id = %w.id, %reason, "write unverified");
                v.unverified.push(Unverified {
                    request: w.request,
                    id: w.id,
                    reason,
                })
            }
        }
    }
    v.lost.sort_by_key(|l| natural(&l.id));
    tracing::info!(
        checked = v.checked,
        found = v.found,
        lost = v.lost.len(),
        unverified = v.unverified.len(),
        ms = started.elapsed().as_millis() as u64,
        "read-back of durable writes"
    );
    Ok(v)
}

/// A single JSON value's fingerprint, the same for equal values (numbers by value: `1` and
/// `1.0` alike); `None` for an object, an array or null (not one value to compare).
pub fn fingerprint(v: &serde_json::Value) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match v {
        serde_json::Value::String(s) => (0u8, s).hash(&mut h),
        serde_json::Value::Number(n) => (1u8, n.as_f64()?.to_bits()).hash(&mut h),
        serde_json::Value::Bool(b) => (2u8, b).hash(&mut h),
        _ => return None,
    }
    Some(h.finish())
}

/// Numeric ids sort as numbers, others as text.
fn natural(id: &str) -> (u64, String) {
    (id.parse().unwrap_or(u64::MAX), id.to_string())
}

/// Read one write back: up to five attempts, each holding one of the `sem` permits only while
/// its request is out (a write waiting to ask again — a 404 being confirmed — holds none, so
/// a restore's thousands of lost writes are confirmed side by side, not 32 at a time). Each
/// attempt counts in `dead` (the attempts in a row the target did not answer, reset by any
/// answer); once it reaches [`GIVE_UP_AFTER`], no further attempt is made.
async fn one(
    client: &reqwest::Client,
    base: &str,
    w: &DurableWrite,
    sem: &Semaphore,
    dead: &AtomicU64,
) -> Answer {
    let Ok(method) = reqwest::Method::from_bytes(w.read_method.as_bytes()) else {
        return Answer::Unverified(format!("bad method {}", w.read_method));
    };
    let url = format!("{base}{}", w.read_path);
    let mut not_found = 0;
    let mut last = String::new();
    for pause_ms in [0, 200, 500, 1000, 2000] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let Ok(_permit) = sem.acquire().await else {
            return Answer::Unverified("the read-back was stopped".into());
        };
        if dead.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
            return Answer::Unverified("skipped: the target stopped answering".into());
        }
        let req = client
            .request(method.clone(), &url)
            .headers(w.headers.map().clone());
        let resp = req.send().await;
        // Not answered: a transport error or a 5xx. Any other status is an answer (a 429 is
        // a target alive and busy).
        let answered = resp.as_ref().is_ok_and(|r| !r.status().is_server_error());
        if answered {
            dead.store(0, Ordering::Relaxed);
        } else {
            dead.fetch_add(1, Ordering::Relaxed);
        }
        match resp {
            Ok(r) if r.status().is_success() => {
                let Some((path, sent)) = &w.same else {
                    return Answer::Found;
                };
                let Some(sent) = sent else {
                    return Answer::Unverified(format!(
                        "the write sent no single value at {}",
                        path.text
                    ));
                };
                // The id answers; is it this write? (A split brain's old primary hands the
                // promoted one's ids out again, to other writes.)
                let body = match r.bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        last = format!("reading the answer: {e}");
                        continue;
                    }
                };
                let held = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|d| crate::load::template::lookup(&d, path).and_then(fingerprint));
                return match held {
                    Some(h) if h == *sent => Answer::Found,
                    Some(_) => {
                        Answer::Lost(Some(format!("another value at {} under its id", path.text)))
                    }
                    None => Answer::Unverified(format!(
                        "the read-back has no single value at {}",
                        path.text
                    )),
                };
            }
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                not_found += 1;
                // Three 404s over ~0.7 s: gone, not a replica catching up.
                if not_found >= 3 {
                    return Answer::Lost(None);
                }
            }
            // The target answers, and refuses the credentials the write was made with (a
            // session lost since, a token expired): no retry makes them valid again.
            Ok(r) if [401, 403].contains(&r.status().as_u16()) => {
                return Answer::Refused(format!(
                    "HTTP {}: the credentials it was written with are refused now",
                    r.status().as_u16()
                ));
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
    }
    Answer::Unverified(format!("{not_found} × 404 and then: {last}"))
}
