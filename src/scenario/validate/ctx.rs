//! The context's checkers of single values: a table, an array, a string, an integer or number
//! in range, a duration, a name, one of a set of choices. Each reads one node, reports what is
//! wrong at its span with what would be accepted, and returns `None` so the caller skips it.
//!
//! They check one value only; they must never stop validation (an error is a diagnostic, never
//! a return of `Err` up the tree) or look at other keys — rules across fields are the
//! table validators'.

use std::time::Duration;

use super::env::Got;
use super::{did_you_mean, show, Ctx, Fields};
use crate::scenario::node::{Node, V};
use crate::scenario::values;

impl Ctx<'_> {
    fn expected(&mut self, n: &Node, what: &str, expected: &str) {
        // A `--set` value: say how it was read.
        let help = (n.span.start > self.input.text.len()).then_some(
            "--set reads VALUE as a TOML value when it is one (400, 1.5, true, \"text\", [\"a\"]), else as text (30s, 4x)",
        );
        self.err(
            &n.span,
            &format!("{what}: expected {expected}, found {}", n.type_name()),
            help,
        );
    }

    pub fn table<'n>(&mut self, n: &'n Node, what: &str) -> Option<Fields<'n>> {
        match &n.v {
            V::Table(entries) => Some(Fields { node: n, entries }),
            _ => {
                self.expected(n, what, "a table");
                None
            }
        }
    }

    pub fn array<'n>(&mut self, n: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &n.v {
            V::Array(items) => Some(items),
            _ => {
                self.expected(n, what, "an array");
                None
            }
        }
    }

    pub fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.v {
            V::Str(s) => Some(s.clone()),
            _ => {
                self.expected(n, what, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, n: &Node, what: &str) -> Option<bool> {
        match &n.v {
            V::Bool(b) => Some(*b),
            _ => {
                self.expected(n, what, "true or false");
                None
            }
        }
    }

    /// An integer in `lo..=hi` (or `${env:…}` giving one).
    pub fn int(&mut self, n: &Node, what: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = match self.numeric(n, what) {
            Got::Node(n) => n,
            Got::Unknown => return Some(lo.max(1).min(hi)),
            Got::Failed => return None,
        };
        let n = n.as_ref();
        match n.v {
            V::Int(i) if (lo..=hi).contains(&i) => Some(i),
            V::Int(i) => {
                self.err(
                    &n.span,
                    &format!("{what} {i} is out of range"),
                    Some(&format!("an integer from {lo} to {hi}")),
                );
                None
            }
            _ => {
                self.expected(n, what, "an integer");
                None
            }
        }
    }

    /// Any finite number (integer or float, or `${env:…}` giving one).
    pub fn number(&mut self, n: &Node, what: &str) -> Option<f64> {
        let n = match self.numeric(n, what) {
            Got::Node(n) => n,
            Got::Unknown => return Some(1.0),
            Got::Failed => return None,
        };
        let n = n.as_ref();
        match n.v {
            V::Int(i) => Some(i as f64),
            V::Float(f) if f.is_finite() => Some(f),
            V::Float(_) => {
                self.err(&n.span, &format!("{what} is not a finite number"), None);
                None
            }
            _ => {
                self.expected(n, what, "a number");
                None
            }
        }
    }

    /// A duration string (or `${env:…}` giving one); 1s stands in for an unknown one.
    pub fn duration(&mut self, n: &Node, what: &str) -> Option<Duration> {
        let n = match self.numeric(n, what) {
            Got::Node(n) => n,
            Got::Unknown => return Some(Duration::from_secs(1)),
            Got::Failed => return None,
        };
        let n = n.as_ref();
        let s = match &n.v {
            V::Str(s) => s,
            V::Int(_) | V::Float(_) => {
                self.err(
                    &n.span,
                    &format!("{what}: a duration needs a unit"),
                    Some(&format!(
                        "write it as a string, e.g. \"30s\"; {}",
                        values::DURATION_HELP
                    )),
                );
                return None;
            }
            _ => {
                self.expected(n, what, "a duration string such as \"30s\"");
                return None;
            }
        };
        values::duration(s).map_err(|b| self.bad(n, b)).ok()
    }

    /// A duration in `[lo, hi]`.
    pub fn duration_in(
        &mut self,
        n: &Node,
        what: &str,
        lo: Duration,
        hi: Duration,
    ) -> Option<Duration> {
        let d = self.duration(n, what)?;
        if self.unknown(n) {
            return Some(d.clamp(lo, hi));
        }
        if d < lo || d > hi {
            self.err(
                &n.span,
                &format!("{what} {} is out of range", show(d)),
                Some(&format!("from {} to {}", show(lo), show(hi))),
            );
            return None;
        }
        Some(d)
    }

    /// A name used in reports, directory names and SLO keys: letters, digits, `-`, `_`, `.`.
    pub fn ident(&mut self, n: &Node, what: &str) -> Option<String> {
        let s = self.string(n, what)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !s.starts_with('.');
        if !ok {
            self.err(
                &n.span,
                &format!("invalid {what} \"{s}\""),
                Some(
                    "1 to 64 of: letters, digits, `-`, `_`, `.` (not first), e.g. \"zone-a-down\"",
                ),
            );
            return None;
        }
        Some(s)
    }

    /// Exactly one of `choices`.
    pub fn choice(&mut self, n: &Node, what: &str, choices: &[&str]) -> Option<String> {
        let s = self.string(n, what)?;
        if choices.contains(&s.as_str()) {
            return Some(s);
        }
        let hint = did_you_mean(&s, choices.iter().copied())
            .map(|k| format!("did you mean \"{k}\"? "))
            .unwrap_or_default();
        self.err(
            &n.span,
            &format!("unknown {what} \"{s}\""),
            Some(&format!("{hint}accepted: {}", choices.join(", "))),
        );
        None
    }
}
