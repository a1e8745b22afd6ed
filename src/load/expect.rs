//! Judging a response against its request's `expect`: the outcome a status and body come to,
//! and why a response was rejected.
//!
//! Without `expect`, a status below 400 is `ok` and the rest falls in its class, as it always
//! has; nothing here looks at a body then. With it, a response is `ok` only if its status is
//! listed (below 400 when no list is given) and every body check holds. A rejected response
//! keeps its class when it is a 4xx/5xx and is `unexpected` when below 400 (a 200 with the
//! wrong body, a 302 that was not listed): either way an error. The reason is a small `Copy`
//! value; its text is only written for the few failed responses kept as samples.

use crate::metrics::Outcome;
use crate::scenario::{Expect, JsonCheck};

use super::template;

/// Why `expect` rejected a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The status is not one of `expect.status` (or not below 400 with no list).
    Status,
    /// The body does not contain `expect.body_contains`.
    BodyLacks,
    /// `expect.json` needs a JSON body and this one is not JSON.
    NotJson,
    /// Nothing (or null) at `expect.json.path`.
    JsonMissing,
    /// The value at `expect.json.path` is not `expect.json.equals`.
    JsonDiffers,
}

/// The outcome of a response with `status` and (when the request keeps it) `body`.
#[inline]
pub fn judge(
    expect: Option<&Expect>,
    status: u16,
    body: Option<&[u8]>,
) -> (Outcome, Option<Rejection>) {
    let Some(e) = expect else {
        return (Outcome::from_status(status), None);
    };
    let rejected = |why| {
        let o = if status >= 400 {
            Outcome::from_status(status)
        } else {
            Outcome::Unexpected
        };
        (o, Some(why))
    };
    if !e.status_ok(status) {
        return rejected(Rejection::Status);
    }
    // A request whose expectation reads the body always keeps it; an absent body is empty.
    let body = body.unwrap_or_default();
    if let Some(needle) = &e.body_contains {
        if !contains(body, needle.as_bytes()) {
            return rejected(Rejection::BodyLacks);
        }
    }
    if let Some(j) = &e.json {
        if let Some(why) = check_json(j, body) {
            return rejected(why);
        }
    }
    (Outcome::Ok, None)
}

/// Would a response with this status fail on its status alone? (Decides, before a body is
/// read, whether it may be kept as a failure sample.)
#[inline]
pub fn fails_by_status(expect: Option<&Expect>, status: u16) -> bool {
    match expect {
        None => status >= 400,
        Some(e) => !e.status_ok(status),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn check_json(j: &JsonCheck, body: &[u8]) -> Option<Rejection> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some(Rejection::NotJson);
    };
    match (template::lookup(&doc, &j.path), &j.equals) {
        (None | Some(serde_json::Value::Null), None) => Some(Rejection::JsonMissing),
        (None, Some(_)) => Some(Rejection::JsonMissing),
        (Some(_), None) => None,
        (Some(v), Some(want)) => (!json_eq(v, want)).then_some(Rejection::JsonDiffers),
    }
}

/// JSON equality with numbers compared by value (1 == 1.0).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

impl Rejection {
    /// The reason in words, for a kept failure sample.
    pub fn describe(self, e: Option<&Expect>, status: u16, body: Option<&[u8]>) -> String {
        let listed = || match e {
            Some(e) if !e.status.is_empty() => format!("expect.status: {}", e.status_text()),
            _ => "expected a status below 400".to_string(),
        };
        let path = || {
            e.and_then(|e| e.json.as_ref())
                .map_or("", |j| j.path.text.as_str())
        };
        match self {
            Rejection::Status => format!("status {status} is not expected ({})", listed()),
            Rejection::BodyLacks => format!(
                "the body does not contain {:?}",
                e.and_then(|e| e.body_contains.as_deref())
                    .unwrap_or_default()
            ),
            Rejection::NotJson => "the body is not JSON (expect.json)".to_string(),
            Rejection::JsonMissing => format!("nothing at {} in the body", path()),
            Rejection::JsonDiffers => {
                let want = e
                    .and_then(|e| e.json.as_ref())
                    .and_then(|j| j.equals.as_ref())
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let got = body
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .and_then(|doc| {
                        let j = e.and_then(|e| e.json.as_ref())?;
                        template::lookup(&doc, &j.path).map(|v| v.to_string())
                    })
                    .unwrap_or_default();
                let got: String = got.chars().take(100).collect();
                format!("{} is {got}, expected {want}", path())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{JsonPath, PathStep};
    use serde_json::json;

    fn expect(
        status: &[u16],
        contains: Option<&str>,
        json: Option<(&str, Option<serde_json::Value>)>,
    ) -> Expect {
        Expect {
            status: status.to_vec(),
            body_contains: contains.map(str::to_string),
            json: json.map(|(k, equals)| JsonCheck {
                path: JsonPath {
                    text: format!("$.{k}"),
                    steps: vec![PathStep::Key(k.to_string())],
                },
                equals,
            }),
        }
    }

    #[test]
    fn without_expect_the_class_decides_and_the_body_is_not_read() {
        assert_eq!(judge(None, 200, None), (Outcome::Ok, None));
        assert_eq!(judge(None, 302, None), (Outcome::Ok, None));
        assert_eq!(
            judge(None, 404, Some(b"whatever")),
            (Outcome::Http4xx, None)
        );
        assert_eq!(judge(None, 503, None), (Outcome::Http5xx, None));
        assert!(fails_by_status(None, 400) && !fails_by_status(None, 399));
    }

    #[test]
    fn listed_statuses_are_ok_and_others_are_errors() {
        let e = expect(&[200, 201, 404], None, None);
        assert_eq!(
            judge(Some(&e), 404, None),
            (Outcome::Ok, None),
            "an expected 404 is ok"
        );
        assert_eq!(judge(Some(&e), 201, None).0, Outcome::Ok);
        // Not listed: below 400 is `unexpected`, above keeps its class.
        assert_eq!(
            judge(Some(&e), 204, None),
            (Outcome::Unexpected, Some(Rejection::Status))
        );
        assert_eq!(
            judge(Some(&e), 401, None),
            (Outcome::Http4xx, Some(Rejection::Status))
        );
        assert_eq!(
            judge(Some(&e), 503, None),
            (Outcome::Http5xx, Some(Rejection::Status))
        );
        assert!(fails_by_status(Some(&e), 204) && !fails_by_status(Some(&e), 404));
        let text = Rejection::Status.describe(Some(&e), 204, None);
        assert_eq!(
            text,
            "status 204 is not expected (expect.status: 200, 201, 404)"
        );
        let mut wide = expect(&[], None, None);
        wide.status = (200..300)
            .chain([304])
            .chain(400..404)
            .chain([499, 500])
            .collect();
        assert_eq!(wide.status_text(), "2xx, 304, 400–403, 499, 500");
        wide.status = (100..600).collect();
        assert_eq!(wide.status_text(), "1xx, 2xx, 3xx, 4xx, 5xx");
        wide.status = (250..302).collect();
        assert_eq!(wide.status_text(), "250–299, 300, 301");
        assert_eq!(expect(&[], None, None).status_text(), "< 400");
    }

    #[test]
    fn body_checks_fail_a_good_status() {
        let e = expect(&[], Some("\"ok\":true"), None);
        assert_eq!(judge(Some(&e), 200, Some(br#"{"ok":true}"#)).0, Outcome::Ok);
        assert_eq!(
            judge(Some(&e), 200, Some(br#"{"ok":false}"#)),
            (Outcome::Unexpected, Some(Rejection::BodyLacks))
        );
        // The status is judged first: a 500 stays a 5xx whatever its body.
        assert_eq!(
            judge(Some(&e), 500, Some(b"\"ok\":true")).0,
            Outcome::Http5xx
        );
        assert_eq!(judge(Some(&e), 200, None).1, Some(Rejection::BodyLacks));

        let e = expect(&[], None, Some(("ok", Some(json!(true)))));
        assert_eq!(
            judge(Some(&e), 200, Some(br#"{"ok": true}"#)).0,
            Outcome::Ok
        );
        assert_eq!(
            judge(Some(&e), 200, Some(br#"{"ok": false}"#)).1,
            Some(Rejection::JsonDiffers)
        );
        assert_eq!(
            judge(Some(&e), 200, Some(br#"{"no": 1}"#)).1,
            Some(Rejection::JsonMissing)
        );
        assert_eq!(
            judge(Some(&e), 200, Some(b"<html>")).1,
            Some(Rejection::NotJson)
        );
        let body = br#"{"ok": false}"#;
        assert_eq!(
            Rejection::JsonDiffers.describe(Some(&e), 200, Some(body)),
            "$.ok is false, expected true"
        );

        let e = expect(&[], None, Some(("n", Some(json!(1)))));
        assert_eq!(
            judge(Some(&e), 200, Some(br#"{"n": 1.0}"#)).0,
            Outcome::Ok,
            "1 == 1.0"
        );
        let e = expect(&[], None, Some(("id", None)));
        assert_eq!(judge(Some(&e), 200, Some(br#"{"id": "x"}"#)).0, Outcome::Ok);
        assert_eq!(
            judge(Some(&e), 200, Some(br#"{"id": null}"#)).1,
            Some(Rejection::JsonMissing)
        );
    }
}
