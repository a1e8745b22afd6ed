//! What the recorder keeps about responses beyond their outcome class: counts by final HTTP
//! status (404, 401 and 429 apart, not only "4xx"), and the first few failed responses of each
//! request name, kept for the post-mortem.
//!
//! [`StatusCounts`] sits in every per-interval [`super::Stats`], so its `add` is on the
//! recorder's hot path: a short sorted list of `(status, count)` pairs scanned linearly (a run
//! sees a handful of distinct codes), with no allocation once an interval has seen a code.
//! [`FailedResponse`]s are built by the load engine off the steady state (only while fewer than
//! its limit are kept) and are already masked: nothing here ever holds a secret.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Outcome;

/// Final responses counted by HTTP status. Status 0 (no response: timeout, connect error,
/// reset, not sent) is not counted here; those are outcome counters only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Sorted by status, each status once, counts above zero.
    pairs: Vec<(u16, u64)>,
}

impl StatusCounts {
    /// Count `n` responses of `status` (ignored for status 0 or `n == 0`).
    #[inline]
    pub fn add(&mut self, status: u16, n: u64) {
        if status == 0 || n == 0 {
            return;
        }
        // A linear scan beats a binary search over the few codes a run sees.
        for p in &mut self.pairs {
            if p.0 == status {
                p.1 += n;
                return;
            }
        }
        let at = self.pairs.partition_point(|p| p.0 < status);
        self.pairs.insert(at, (status, n));
    }

    pub fn merge(&mut self, o: &StatusCounts) {
        for &(s, n) in &o.pairs {
            self.add(s, n);
        }
    }

    pub fn get(&self, status: u16) -> u64 {
        self.pairs.iter().find(|p| p.0 == status).map_or(0, |p| p.1)
    }

    /// `(status, count)` in status order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.pairs.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Responses counted (every status).
    pub fn total(&self) -> u64 {
        self.pairs.iter().map(|p| p.1).sum()
    }

    /// `(status, count)`, most frequent first (ties: lower status first).
    pub fn by_count(&self) -> Vec<(u16, u64)> {
        let mut v = self.pairs.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// `{"200": 9120, "404": 12}`: the report.json form (keys in status order).
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.pairs
            .iter()
            .map(|&(s, n)| (s.to_string(), n))
            .collect()
    }

    /// The inverse of [`Self::to_map`]; keys that are not a status 1..=999 and counts that are
    /// not integers are skipped.
    pub fn from_json(v: &serde_json::Value) -> StatusCounts {
        let mut out = StatusCounts::default();
        for (k, n) in v.as_object().into_iter().flatten() {
            if let (Ok(s @ 1..=999), Some(n)) = (k.parse::<u16>(), n.as_u64()) {
                out.add(s, n);
            }
        }
        out
    }
}

/// One failed logical request, as its last attempt saw it: kept (up to a few per request name)
/// in report.json's `failures` for the post-mortem. Header values and the body are masked
/// (secret-looking header names and the scenario's `${env:…}` values are `***`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedResponse {
    /// The request's name.
    pub request: String,
    /// Intended send time, seconds from the start of the run.
    pub at_s: f64,
    pub attempts: u8,
    #[serde(serialize_with = "outcome_name")]
    pub outcome: Outcome,
    /// The HTTP status; `None` when there was no response (timeout, connect error, reset).
    pub status: Option<u16>,
    /// Why `expect` rejected the response, if it did.
    pub reason: Option<String>,
    /// A few response headers (lowercase names), masked.
    pub headers: BTreeMap<String, String>,
    /// The body's first bytes (lossy UTF-8), masked; empty when there was no response.
    pub body: String,
    /// The whole body's length in bytes, as received.
    pub body_bytes: u64,
}

fn outcome_name<S: serde::Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(o.name())
}

impl FailedResponse {
    /// Read one back from its report.json form; `None` if it is not one.
    pub fn from_json(v: &serde_json::Value) -> Option<FailedResponse> {
        let outcome = Outcome::from_name(v["outcome"].as_str()?)?;
        Some(FailedResponse {
            request: v["request"].as_str()?.to_string(),
            at_s: v["at_s"].as_f64()?,
            attempts: v["attempts"]
                .as_u64()
                .map_or(0, |a| a.min(u64::from(u8::MAX)) as u8),
            outcome,
            status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
            reason: v["reason"].as_str().map(str::to_string),
            headers: v["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, x)| Some((k.clone(), x.as_str()?.to_string())))
                .collect(),
            body: v["body"].as_str().unwrap_or_default().to_string(),
            body_bytes: v["body_bytes"].as_u64().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_status_apart_and_merges() {
        let mut a = StatusCounts::default();
        for s in [200, 404, 200, 401, 429, 200, 0, 503] {
            a.add(s, 1);
        }
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![(200, 3), (401, 1), (404, 1), (429, 1), (503, 1)]
        );
        assert_eq!(a.total(), 7, "status 0 is no response: not counted");
        let mut b = StatusCounts::default();
        b.add(404, 5);
        b.add(201, 2);
        a.merge(&b);
        assert_eq!((a.get(404), a.get(201), a.get(418)), (6, 2, 0));
        assert_eq!(a.by_count()[0], (404, 6));
        assert_eq!(a.by_count()[1], (200, 3));
        let back = StatusCounts::from_json(&serde_json::json!(a.to_map()));
        assert_eq!(back, a);
    }

    #[test]
    fn failed_responses_round_trip_through_json() {
        let f = FailedResponse {
            request: "login".into(),
            at_s: 1.25,
            attempts: 2,
            outcome: Outcome::Unexpected,
            status: Some(200),
            reason: Some("body does not contain \"ok\"".into()),
            headers: [("content-type".to_string(), "text/plain".to_string())].into(),
            body: "nope".into(),
            body_bytes: 4,
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["outcome"], "unexpected");
        assert_eq!(FailedResponse::from_json(&v), Some(f));
        let timeout = serde_json::json!({"request": "a", "at_s": 0.5, "outcome": "timeout",
            "status": null, "headers": {}, "body": "", "body_bytes": 0});
        let t = FailedResponse::from_json(&timeout).unwrap();
        assert_eq!((t.status, t.outcome), (None, Outcome::Timeout));
        assert_eq!(
            FailedResponse::from_json(&serde_json::json!({"request": "a"})),
            None
        );
    }
}
