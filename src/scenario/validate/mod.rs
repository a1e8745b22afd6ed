//! Validation: the spanned tree ([`Node`]) in, a [`Scenario`] or every problem out.
//!
//! The validator never stops at the first error: each table is checked field by field, a bad
//! field is reported and skipped, and the rest of the file is still checked, so one `chaos check`
//! shows everything to fix. Every diagnostic carries the span of the offending key or value and
//! says what would be accepted. The accepted keys of each table are the constants in [`keys`],
//! which the JSON Schema (`chaos schema`) is tested against, so the two cannot drift.

mod abort;
mod faults;
pub mod keys;
mod load;
mod request;
mod sandbox;
mod slo;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::diag::Diagnostic;
use super::model::Scenario;
use super::node::{Entry, LineIndex, Node, V};
use super::values::{self, Bad};

/// More diagnostics than this from one file are summarised (binary garbage gives thousands).
const MAX_DIAGNOSTICS: usize = 50;

/// What validation needs besides the tree.
pub struct Input<'a> {
    pub file: &'a str,
    pub text: &'a str,
    /// Resolves `${env:NAME}`.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Relative paths in the scenario (ca_cert) are relative to this directory.
    pub base_dir: Option<&'a Path>,
}

pub(super) struct Ctx<'a> {
    input: &'a Input<'a>,
    ix: LineIndex<'a>,
    errs: Vec<Diagnostic>,
}

pub fn validate(input: &Input<'_>, root: &Node) -> Result<Scenario, Vec<Diagnostic>> {
    let mut cx = Ctx {
        input,
        ix: LineIndex::new(input.text),
        errs: Vec::new(),
    };
    let s = scenario(&mut cx, root);
    match s {
        Some(s) if cx.errs.is_empty() => Ok(s),
        _ => Err(cx.finish()),
    }
}

/// Turn syntax errors into diagnostics with the same rendering and cap.
pub fn syntax_diagnostics(input: &Input<'_>, errs: &[super::node::SyntaxError]) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        input,
        ix: LineIndex::new(input.text),
        errs: Vec::new(),
    };
    let help = if looks_like_json(input.file, input.text) {
        "the file is read as JSON (RFC 8259: double-quoted keys, no comments, no trailing commas)"
    } else {
        "the file is read as TOML (https://toml.io/en/v1.0.0); a JSON scenario starts with `{` or ends in .json"
    };
    for e in errs {
        cx.err(&e.span, &format!("syntax error: {}", e.message), Some(help));
    }
    cx.finish()
}

pub fn looks_like_json(file: &str, text: &str) -> bool {
    file.ends_with(".json") || text.trim_start().starts_with('{')
}

fn scenario(cx: &mut Ctx<'_>, root: &Node) -> Option<Scenario> {
    let top = cx.table(root, "the scenario")?;
    top.check_keys(cx, keys::TOP, "at the top level");
    let name = top
        .required(cx, "name")
        .and_then(|n| cx.ident(n, "scenario name"));
    let description = match top.get("description") {
        Some(n) => cx.string(n, "description").unwrap_or_default(),
        None => String::new(),
    };
    let load = top.required(cx, "load").and_then(|n| load::load(cx, n));
    let run = load
        .as_ref()
        .map(|l| l.stages.iter().map(|s| s.duration).sum::<Duration>());
    let faults = match top.get("faults") {
        Some(n) => faults::faults(cx, n, run),
        None => Vec::new(),
    };
    // SLO keys are checked against every name written, valid or not: an invalid fault is
    // reported once, not again as an unknown window in every SLO that names it.
    let raw_requests = match top.get("load").map(|l| &l.v) {
        Some(V::Table(entries)) => entries
            .iter()
            .find(|e| e.key == "requests")
            .map(|e| &e.node),
        _ => None,
    };
    let request_names = names_written(raw_requests);
    let fault_names = names_written(top.get("faults"));
    let slo = match top.get("slo") {
        Some(n) => slo::slo(cx, n, &fault_names, &request_names),
        None => Default::default(),
    };
    let abort = match top.get("abort") {
        Some(n) => abort::abort(cx, n),
        None => Vec::new(),
    };
    let sandbox = match top.get("sandbox") {
        Some(n) => sandbox::sandbox(cx, n),
        None => Default::default(),
    };
    Some(Scenario {
        name: name?,
        description,
        source: cx.input.file.to_string(),
        text: cx.input.text.to_string(),
        load: load?,
        faults,
        slo,
        sandbox,
        abort,
    })
}

/// The `name` strings of an array of tables, read leniently (no diagnostics).
fn names_written(array: Option<&Node>) -> Vec<String> {
    let Some(V::Array(items)) = array.map(|n| &n.v) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| match &i.v {
            V::Table(es) => es
                .iter()
                .find(|e| e.key == "name")
                .and_then(|e| match &e.node.v {
                    V::Str(s) => Some(s.clone()),
                    _ => None,
                }),
            _ => None,
        })
        .collect()
}

/// A table's entries, with the node for error positions.
pub(super) struct Fields<'n> {
    pub node: &'n Node,
    pub entries: &'n [Entry],
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.node)
    }

    /// The value of a required key, or a "missing" diagnostic at the table.
    pub fn required(&self, cx: &mut Ctx<'_>, key: &str) -> Option<&'n Node> {
        let n = self.get(key);
        if n.is_none() {
            cx.err(
                &self.node.span,
                &format!("missing required key `{key}`"),
                None,
            );
        }
        n
    }

    /// Report every key not in `allowed`, with a suggestion when one is close.
    pub fn check_keys(&self, cx: &mut Ctx<'_>, allowed: &[&str], place: &str) {
        for e in self.entries {
            if !allowed.contains(&e.key.as_str()) {
                cx.unknown_key(e, allowed, place);
            }
        }
    }
}

impl Ctx<'_> {
    pub fn err(&mut self, span: &Range<usize>, message: &str, help: Option<&str>) {
        let (line, column, text, width) = self.ix.locate(span);
        self.errs.push(Diagnostic {
            file: self.input.file.to_string(),
            line,
            column,
            message: message.to_string(),
            source_line: text.chars().take(200).collect(),
            width: width.min(200),
            help: help.map(str::to_string),
        });
    }

    pub fn bad(&mut self, n: &Node, b: Bad) {
        self.err(&n.span, &b.message, Some(&b.help));
    }

    pub fn unknown_key(&mut self, e: &Entry, allowed: &[&str], place: &str) {
        let hint = did_you_mean(&e.key, allowed.iter().copied())
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        self.err(
            &e.key_span,
            &format!("unknown key `{}` {place}", e.key),
            Some(&format!("{hint}accepted keys: {}", allowed.join(", "))),
        );
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        self.errs.sort_by_key(|d| (d.line, d.column));
        self.errs.dedup();
        if self.errs.len() > MAX_DIAGNOSTICS {
            let more = self.errs.len() - MAX_DIAGNOSTICS;
            self.errs.truncate(MAX_DIAGNOSTICS);
            let last = self.errs.last().cloned();
            if let Some(mut d) = last {
                d.message = format!("... and {more} more errors not shown");
                d.help = Some("fix the errors above first".to_string());
                d.source_line.clear();
                self.errs.push(d);
            }
        }
        self.errs
    }

    fn expected(&mut self, n: &Node, what: &str, expected: &str) {
        self.err(
            &n.span,
            &format!("{what}: expected {expected}, found {}", n.type_name()),
            None,
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

    /// An integer in `lo..=hi`.
    pub fn int(&mut self, n: &Node, what: &str, lo: i64, hi: i64) -> Option<i64> {
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

    /// Any finite number (integer or float).
    pub fn number(&mut self, n: &Node, what: &str) -> Option<f64> {
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

    pub fn duration(&mut self, n: &Node, what: &str) -> Option<Duration> {
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

/// A short human form of a duration for messages: `90s`, `250ms`.
pub fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{}s", (s * 1000.0).round() / 1000.0)
    } else {
        format!("{}ms", (s * 1e6).round() / 1000.0)
    }
}

/// The closest candidate if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(got: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(got, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
