//! `expect`: what counts as a success for one request (part of the validated model; judged by
//! `load::expect`).

use serde::Serialize;

use super::JsonPath;

/// `expect = { status = [200, 404], body_contains = "ok", json = { path = "$.ok", equals = true } }`:
/// a response is `ok` only if its status is listed (below 400 when no list is given) and every
/// body check holds. Body checks read the whole body, so only requests that declare one pay for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expect {
    /// Statuses that count as success, sorted and deduplicated; empty = any status below 400.
    pub status: Vec<u16>,
    /// The body must contain this text (bytes, case-sensitive).
    pub body_contains: Option<String>,
    pub json: Option<JsonCheck>,
}

impl Expect {
    /// Does this status pass the status part of the expectation?
    #[inline]
    pub fn status_ok(&self, status: u16) -> bool {
        if self.status.is_empty() {
            status < 400
        } else {
            self.status.contains(&status)
        }
    }

    /// The accepted statuses as a user would write them: `< 400`, or `2xx, 404`, `200–204`.
    pub fn status_text(&self) -> String {
        let st = &self.status;
        if st.is_empty() {
            return "< 400".to_string();
        }
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < st.len() {
            let s = st[i];
            // A whole class (sorted and deduplicated: 100 codes from s00 end at s99).
            if s.is_multiple_of(100) && st.get(i + 99) == Some(&(s + 99)) {
                out.push(format!("{}xx", s / 100));
                i += 100;
                continue;
            }
            // A run of consecutive codes, cut where a class begins.
            let mut j = i;
            while j + 1 < st.len() && st[j + 1] == st[j] + 1 && !st[j + 1].is_multiple_of(100) {
                j += 1;
            }
            out.push(match j - i {
                0 => s.to_string(),
                1 => format!("{s}, {}", st[j]),
                _ => format!("{s}–{}", st[j]),
            });
            i = j + 1;
        }
        out.join(", ")
    }

    /// Does the expectation look into the body?
    pub fn reads_body(&self) -> bool {
        self.body_contains.is_some() || self.json.is_some()
    }
}

/// A JSON body check: the value at `path` exists (and is not null) or, with `equals`, equals it
/// (numbers compare by value: 1 equals 1.0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonCheck {
    pub path: JsonPath,
    pub equals: Option<serde_json::Value>,
}
