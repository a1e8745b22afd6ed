//! The first few failed responses of each request name, kept for the post-mortem: status (or
//! the transport's outcome), why `expect` rejected it, a few headers and the body's first
//! [`BODY_HEAD`] bytes — masked before they are stored.
//!
//! Off the steady state by construction: each request name has an atomic count of samples
//! claimed, read (one relaxed load) before anything is copied; once [`KEEP`] are claimed, a
//! failing request costs that load and nothing else, and the transport no longer keeps failed
//! bodies. Only the claimed few take the lock and build a sample.
//!
//! Masking: a header whose name looks secret (authorization, cookie, set-cookie, x-api-key,
//! anything with token, secret, password, session, credential or api-key in it) is shown as
//! `***`; every `${env:…}` value the scenario sends (client and request headers, bodies) is
//! replaced by `***` wherever it appears in a kept header value or body. The body is masked
//! before it is cut to its head, so a secret that starts inside the head is never shown in part.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use http::HeaderMap;

use super::expect::Rejection;
use crate::metrics::{FailedResponse, Outcome};
use crate::scenario::{Body, Expect, JsonTemplate, Load, Part, Template};

/// Failed responses kept per request name.
pub const KEEP: usize = 5;
/// Body bytes shown per kept response.
pub const BODY_HEAD: usize = 512;
/// Headers shown per kept response.
const MAX_HEADERS: usize = 6;
/// Header values are cut to this many characters.
const MAX_HEADER_VALUE: usize = 200;
/// Shown first when present, in this order; other headers fill up to [`MAX_HEADERS`].
const PREFERRED: &[&str] = &[
    "content-type",
    "retry-after",
    "www-authenticate",
    "location",
    "x-served-by",
    "server",
    "x-request-id",
    "via",
];
const SECRET_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];
const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "session",
    "credential",
    "api-key",
    "apikey",
    "api_key",
];

/// What the last attempt of a failed logical request saw.
pub struct Seen<'a> {
    pub outcome: Outcome,
    /// 0 when there was no response.
    pub status: u16,
    pub rejection: Option<Rejection>,
    pub headers: Option<&'a HeaderMap>,
    pub body: Option<&'a [u8]>,
    pub body_len: u64,
}

pub struct Failures {
    /// Per request: samples claimed so far (claims past [`KEEP`] are refused, not stored).
    claimed: Vec<AtomicUsize>,
    kept: Mutex<Vec<(usize, FailedResponse)>>,
    /// The scenario's secret values, longest first (so a secret containing another is masked
    /// whole).
    secrets: Vec<String>,
    /// Body bytes the transport keeps for a sample: the head plus the longest secret.
    body_limit: usize,
}

impl Failures {
    pub fn new(load: &Load) -> Failures {
        let mut secrets = secrets_of(load);
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        let longest = secrets.first().map_or(0, String::len);
        Failures {
            claimed: load.requests.iter().map(|_| AtomicUsize::new(0)).collect(),
            kept: Mutex::new(Vec::new()),
            secrets,
            body_limit: BODY_HEAD + longest,
        }
    }

    /// Is request `r` still collecting samples? One relaxed load.
    #[inline]
    pub fn open(&self, r: usize) -> bool {
        self.claimed.get(r).is_some_and(|c| c.load(Relaxed) < KEEP)
    }

    /// How many body bytes to keep for a possible sample.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Keep this failure if request `r` has fewer than [`KEEP`].
    pub fn offer(
        &self,
        r: usize,
        name: &str,
        at_s: f64,
        attempts: u8,
        expect: Option<&Expect>,
        seen: &Seen<'_>,
    ) {
        let Some(c) = self.claimed.get(r) else { return };
        if c.load(Relaxed) >= KEEP || c.fetch_add(1, Relaxed) >= KEEP {
            return;
        }
        let f = FailedResponse {
            request: name.to_string(),
            at_s,
            attempts,
            outcome: seen.outcome,
            status: (seen.status != 0).then_some(seen.status),
            // The reason may quote the response (a JSON value that differed): masked like the
            // body, so an echoed secret never reaches the report.
            reason: seen.rejection.map(|why| {
                let text = why.describe(expect, seen.status, seen.body);
                self.mask(text.as_bytes(), text.len())
            }),
            headers: seen.headers.map(|h| self.headers(h)).unwrap_or_default(),
            body: seen.body.map(|b| self.body(b)).unwrap_or_default(),
            body_bytes: seen.body_len,
        };
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((r, f));
    }

    /// Everything kept, by request (scenario order), then intended time.
    pub fn take(&self) -> Vec<FailedResponse> {
        let mut v = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()));
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.at_s.total_cmp(&b.1.at_s)));
        v.into_iter().map(|(_, f)| f).collect()
    }

    fn headers(&self, h: &HeaderMap) -> BTreeMap<String, String> {
        let preferred = PREFERRED.iter().filter_map(|n| h.get(*n).map(|v| (*n, v)));
        let rest = h
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .filter(|(n, _)| !PREFERRED.contains(n));
        let mut out = BTreeMap::new();
        for (name, value) in preferred.chain(rest) {
            if out.len() >= MAX_HEADERS {
                break;
            }
            if out.contains_key(name) {
                continue;
            }
            let shown = if secret_name(name) {
                "***".to_string()
            } else {
                let v = self.mask(value.as_bytes(), usize::MAX);
                v.chars().take(MAX_HEADER_VALUE).collect()
            };
            out.insert(name.to_string(), shown);
        }
        out
    }

    fn body(&self, b: &[u8]) -> String {
        self.mask(b, BODY_HEAD)
    }

    /// `bytes` up to `head` bytes (of the original), every secret that starts before `head`
    /// replaced whole by `***`, as lossy UTF-8.
    fn mask(&self, bytes: &[u8], head: usize) -> String {
        let mut out = Vec::with_capacity(bytes.len().min(head));
        let mut i = 0;
        'bytes: while i < bytes.len().min(head) {
            for s in &self.secrets {
                if bytes[i..].starts_with(s.as_bytes()) {
                    out.extend_from_slice(b"***");
                    i += s.len();
                    continue 'bytes;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Does a header's name say its value is a credential?
pub fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&n.as_str()) || SECRET_PARTS.iter().any(|p| n.contains(p))
}

/// Every `${env:…}` value the scenario sends.
fn secrets_of(load: &Load) -> Vec<String> {
    fn template(t: &Template, out: &mut Vec<String>) {
        for p in &t.parts {
            if let Part::Secret(s) = p {
                if !s.is_empty() {
                    out.push(s.clone());
                }
            }
        }
    }
    fn json(j: &JsonTemplate, out: &mut Vec<String>) {
        match j {
            JsonTemplate::String(t) => template(t, out),
            JsonTemplate::Array(a) => a.iter().for_each(|v| json(v, out)),
            JsonTemplate::Object(o) => o.iter().for_each(|(_, v)| json(v, out)),
            JsonTemplate::Null | JsonTemplate::Bool(_) | JsonTemplate::Number(_) => {}
        }
    }
    let mut out = Vec::new();
    for h in &load.client.headers {
        template(&h.value, &mut out);
    }
    for r in &load.requests {
        template(&r.path, &mut out);
        for h in &r.headers {
            template(&h.value, &mut out);
        }
        match &r.body {
            Some(Body::Text(t)) => template(t, &mut out),
            Some(Body::Json(j)) => json(j, &mut out),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(secrets: &[&str]) -> Failures {
        let mut s: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        let longest = s.first().map_or(0, String::len);
        Failures {
            claimed: vec![AtomicUsize::new(0), AtomicUsize::new(0)],
            kept: Mutex::new(Vec::new()),
            secrets: s,
            body_limit: BODY_HEAD + longest,
        }
    }

    fn seen<'a>(h: Option<&'a HeaderMap>, body: &'a [u8]) -> Seen<'a> {
        Seen {
            outcome: Outcome::Http4xx,
            status: 401,
            rejection: None,
            headers: h,
            body: Some(body),
            body_len: body.len() as u64,
        }
    }

    #[test]
    fn keeps_the_first_few_per_request_only() {
        let f = failures(&[]);
        for i in 0..20 {
            assert_eq!(f.open(0), i < KEEP);
            f.offer(0, "a", i as f64, 1, None, &seen(None, b"x"));
        }
        f.offer(1, "b", 0.5, 1, None, &seen(None, b"y"));
        assert!(!f.open(0) && f.open(1) && !f.open(7));
        let kept = f.take();
        assert_eq!(kept.len(), KEEP + 1);
        assert_eq!(kept[KEEP].request, "b");
        assert_eq!(kept[0].status, Some(401));
    }

    #[test]
    fn secrets_are_masked_in_headers_and_bodies_even_at_the_cut() {
        let f = failures(&["s3cr3t-token-value", "s3cr3t"]);
        let mut h = HeaderMap::new();
        h.insert("set-cookie", "session=abc".parse().unwrap());
        h.insert("x-auth-token", "zzz".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        h.insert("x-echo", "Bearer s3cr3t-token-value".parse().unwrap());
        for i in 0..10 {
            h.insert(
                http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        let got = f.headers(&h);
        assert_eq!(got.len(), MAX_HEADERS);
        assert_eq!(got["content-type"], "text/plain", "preferred headers first");
        assert_eq!(got["set-cookie"], "***");
        assert_eq!(got["x-auth-token"], "***");
        assert_eq!(got["x-echo"], "Bearer ***");

        // A secret straddling the 512-byte cut is masked whole, not shown in part.
        let mut body = vec![b'a'; BODY_HEAD - 3];
        body.extend_from_slice(b"s3cr3t-token-value and more");
        let shown = f.body(&body);
        assert!(shown.ends_with("a***"), "{}", &shown[shown.len() - 10..]);
        assert!(!shown.contains("s3c"));
        let long = vec![b'b'; 5000];
        assert_eq!(f.body(&long).len(), BODY_HEAD);
        assert_eq!(f.body("é".repeat(300).as_bytes()).chars().count(), 256);
        assert!(secret_name("X-Api-Key") && secret_name("Authorization"));
        assert!(!secret_name("content-type") && !secret_name("retry-after"));
    }
}
