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

use serde::{Deserialize, Serialize};

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
}

/// The report.json form, `{"200": 9120, "404": 12}` (keys in status order).
impl Serialize for StatusCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

/// The inverse of its `Serialize`: every key a status 1..=999, every count an integer.
impl<'de> Deserialize<'de> for StatusCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StatusCounts, D::Error> {
        let mut out = StatusCounts::default();
        for (k, n) in BTreeMap::<String, u64>::deserialize(d)? {
            match k.parse::<u16>() {
                Ok(s @ 1..=999) => out.add(s, n),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "`{k}` is not an HTTP status (1 to 999)"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// One failed logical request, as its last attempt saw it: kept (up to a few per request name)
/// in report.json's `failures` for the post-mortem. Header values and the body are masked
/// (secret-looking header names and the scenario's `${env:…}` values are `***`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedResponse {
    /// The request's name.
    pub request: String,
    /// Intended send time, seconds from the start of the run.
    pub at_s: f64,
    #[serde(default)]
    pub attempts: u8,
    #[serde(serialize_with = "outcome_name", deserialize_with = "outcome_by_name")]
    pub outcome: Outcome,
    /// The HTTP status; `None` when there was no response (timeout, connect error, reset).
    pub status: Option<u16>,
    /// Why `expect` rejected the response, if it did.
    pub reason: Option<String>,
    /// A few response headers (lowercase names), masked.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body's first bytes (lossy UTF-8), masked; empty when there was no response.
    #[serde(default)]
    pub body: String,
    /// The whole body's length in bytes, as received.
    #[serde(default)]
    pub body_bytes: u64,
}

fn outcome_name<S: serde::Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(o.name())
}

/// The inverse of [`outcome_name`]: report.json read back.
fn outcome_by_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
    let name = String::deserialize(d)?;
    Outcome::from_name(&name).ok_or_else(|| {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
        serde::de::Error::custom(format!(
            "unknown outcome `{name}` (one of: {})",
            names.join(", ")
        ))
    })
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
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v, serde_json::json!(a.to_map()));
        let back: StatusCounts = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
        let bad = serde_json::from_value::<StatusCounts>(serde_json::json!({"2xx": 1}));
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("`2xx` is not an HTTP status"));
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
        let back: FailedResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
        let timeout = serde_json::json!({"request": "a", "at_s": 0.5, "outcome": "timeout",
            "status": null, "headers": {}, "body": "", "body_bytes": 0});
        let t: FailedResponse = serde_json::from_value(timeout).unwrap();
        assert_eq!((t.status, t.outcome), (None, Outcome::Timeout));
        let not_one = serde_json::from_value::<FailedResponse>(serde_json::json!({"request": "a"}));
        assert!(not_one.is_err());
        let bad = serde_json::json!({"request": "a", "at_s": 0.5, "outcome": "http4xx"});
        let e = serde_json::from_value::<FailedResponse>(bad).unwrap_err();
        assert!(e.to_string().contains("unknown outcome `http4xx`"), "{e}");
    }
}
