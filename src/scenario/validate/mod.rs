//! Validation: the spanned tree ([`Node`]) in, a [`Scenario`] or every problem out.
//!
//! The validator never stops at the first error: each table is checked field by field, a bad
//! field is reported and skipped, and the rest of the file is still checked, so one `chaos check`
//! shows everything to fix. Every diagnostic carries the span of the offending key or value and
//! says what would be accepted. The accepted keys of each table are the constants in [`keys`],
//! which the JSON Schema (`chaos schema`) is tested against, so the two cannot drift.
//!
//! The context ([`Ctx`]) and its diagnostics are here; its checkers of single values (tables,
//! strings, numbers, durations, names, choices) are in [`ctx`], `${env:…}` in [`env`].

mod abort;
mod ctx;
mod env;
mod faults;
pub mod keys;
mod load;
mod request;
pub(crate) mod sandbox;
mod slo;
mod users;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::diag::Diagnostic;
use super::model::{FaultKind, Metric, Scenario, SloSpec};
use super::node::{Entry, LineIndex, Node, V};
use super::params::{Applied, EnvMode, Flags, Unknown, Zones};
use super::values::Bad;

/// More diagnostics than this from one file are summarised (binary garbage gives thousands).
const MAX_DIAGNOSTICS: usize = 50;

/// What validation needs besides the tree.
pub struct Input<'a> {
    pub file: &'a str,
    pub text: &'a str,
    /// The process environment (or a test's), for `${env:NAME}` that `--env` does not give.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Relative paths in the scenario (ca_cert) are relative to this directory.
    pub base_dir: Option<&'a Path>,
    /// Whether a `${env:NAME}` nobody gives a value is an error or a warning.
    pub mode: EnvMode,
    /// The zones of the target faults run on (`None`: not checked).
    pub zones: Option<&'a Zones>,
    /// `--set` / `--env`: their texts in span space past `text`, their values, their errors.
    pub flags: &'a Flags,
}

pub(crate) struct Ctx<'a> {
    input: &'a Input<'a>,
    ix: LineIndex<'a>,
    errs: Vec<Diagnostic>,
    warns: Vec<Diagnostic>,
    /// Substituted values: (the string's span, its references' span, where the value came
    /// from). A diagnostic at either span points at the references and says where from.
    notes: Vec<(Range<usize>, Range<usize>, String)>,
    /// Numeric fields whose `${env:…}` has no value: placeholders in the model, range checks
    /// that combine them with other values are skipped.
    unknown_spans: Vec<Range<usize>>,
    unknown: Vec<Unknown>,
    /// A stage's duration is unknown, so the run's length is.
    run_unknown: bool,
    /// `${env:NAME}` of numeric fields and the values they took (recorded in the scenario).
    numeric_env: BTreeMap<String, String>,
    /// Every `${env:NAME}` referenced: name, whether as a secret (header, body), where.
    used_env: Vec<(String, bool, Range<usize>)>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a Input<'a>) -> Self {
        Ctx {
            input,
            ix: LineIndex::new(input.text),
            errs: Vec::new(),
            warns: Vec::new(),
            notes: Vec::new(),
            unknown_spans: Vec::new(),
            unknown: Vec::new(),
            run_unknown: false,
            numeric_env: BTreeMap::new(),
            used_env: Vec::new(),
        }
    }
}

pub fn validate(input: &Input<'_>, root: &Node) -> Result<Scenario, Vec<Diagnostic>> {
    let mut cx = Ctx::new(input);
    for e in &input.flags.errors {
        cx.err(&e.span, &e.message, e.help.as_deref());
    }
    let s = scenario(&mut cx, root);
    cx.check_env_use();
    match s {
        Some(mut s) if cx.errs.is_empty() => {
            s.unknown = std::mem::take(&mut cx.unknown);
            s.params.env = std::mem::take(&mut cx.numeric_env);
            s.warnings = cx.finish_warnings();
            Ok(s)
        }
        _ => Err(cx.finish()),
    }
}

/// Validate another kind of document (a target file) with the same diagnostics as a scenario:
/// `f` reads the tree through the context; every error it reports fails the document, its
/// warnings come back with the value.
pub(crate) fn validate_doc<T>(
    input: &Input<'_>,
    root: &Node,
    f: impl FnOnce(&mut Ctx<'_>, &Node) -> Option<T>,
) -> Result<(T, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut cx = Ctx::new(input);
    match f(&mut cx, root) {
        Some(v) if cx.errs.is_empty() => {
            let w = cx.finish_warnings();
            Ok((v, w))
        }
        _ => Err(cx.finish()),
    }
}

/// Turn syntax errors into diagnostics with the same rendering and cap.
pub fn syntax_diagnostics(input: &Input<'_>, errs: &[super::node::SyntaxError]) -> Vec<Diagnostic> {
    let mut cx = Ctx::new(input);
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
    // `[load]` (the open model), `[users]` (the closed one), or both at once.
    let load = match (top.get("load"), top.get("users")) {
        (Some(n), _) => load::load(cx, n),
        (None, Some(_)) => Some(load::no_load()),
        (None, None) => {
            cx.err(
                &top.node.span,
                "missing required key `load` (or `users`)",
                Some("[load] sends requests at a rate (the open model), [users] runs user journeys (the closed model); a scenario has one or both"),
            );
            None
        }
    };
    let users = match top.get("users") {
        Some(n) => {
            let written_client = top.get("load").and(load.as_ref()).map(|l| &l.client);
            users::users(cx, n, written_client).map(Some)
        }
        None => Some(None),
    };
    let run = match (&load, &users) {
        (Some(l), Some(u)) if !cx.run_unknown => Some(
            l.duration()
                .max(u.as_ref().map_or(Duration::ZERO, |u| u.duration())),
        ),
        _ => None,
    };
    if let Some(n) = top.get("sandbox") {
        // Still read (for the default target only), but a scenario should run unchanged on
        // every target: the sandbox's settings belong in a target file.
        cx.warn(
            &n.span,
            "[sandbox] in a scenario is deprecated: it applies only when no --target is named",
            Some(
                "move these keys into a sandbox target file (see scenarios/targets/sandbox.toml) \
                 and run with --target FILE",
            ),
        );
    }
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
    let mut request_names = names_written(raw_requests);
    request_names.extend(step_names_written(top.get("users")));
    let fault_names = names_written(top.get("faults"));
    let slo = match top.get("slo") {
        Some(n) => slo::slo(
            cx,
            n,
            &fault_names,
            &request_names,
            &journey_names_written(top.get("users")),
        ),
        None => Default::default(),
    };
    rpo_needs_a_restore(cx, &top, &slo);
    let abort = match top.get("abort") {
        Some(n) => abort::abort(cx, n),
        None => Vec::new(),
    };
    let sandbox = match top.get("sandbox") {
        Some(n) => sandbox::sandbox(cx, n),
        None => Default::default(),
    };
    if slo.objectives.is_empty() {
        let at = top.get("slo").map_or(0..0, |n| n.span.clone());
        cx.warn(
            &at,
            "the scenario has no SLOs: nothing will be judged",
            Some("a run without objectives ends NOT JUDGED (exit 0) whatever it measures; add e.g. [slo] whole = [\"p99 < 800ms\", \"errors < 1%\"]"),
        );
        if top.get("slo").is_none() {
            // About the whole file: no line to show.
            if let Some(w) = cx.warns.last_mut() {
                w.source_line.clear();
            }
        }
    }
    Some(Scenario {
        name: name?,
        description,
        source: cx.input.file.to_string(),
        text: cx.input.text.to_string(),
        params: Applied::default(),
        unknown: Vec::new(),
        warnings: Vec::new(),
        load: load?,
        users: users?,
        faults,
        slo,
        sandbox,
        abort,
    })
}

/// The `name` strings of an array of tables, read leniently (no diagnostics).
fn names_written(array: Option<&Node>) -> Vec<String> {
    strings_written(array, "name")
}

/// The `key` strings of an array of tables, read leniently (no diagnostics).
fn strings_written(array: Option<&Node>, key: &str) -> Vec<String> {
    let Some(V::Array(items)) = array.map(|n| &n.v) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| match &i.v {
            V::Table(es) => es
                .iter()
                .find(|e| e.key == key)
                .and_then(|e| match &e.node.v {
                    V::Str(s) => Some(s.clone()),
                    _ => None,
                }),
            _ => None,
        })
        .collect()
}

/// An `rpo` objective needs a restore to measure: without a `db-restore` fault written, it
/// is an error at the `data` window that holds it.
fn rpo_needs_a_restore(cx: &mut Ctx<'_>, top: &Fields<'_>, slo: &SloSpec) {
    let restore = FaultKind::RESTORE;
    if !slo.objectives.iter().any(|o| o.metric == Metric::Rpo)
        || strings_written(top.get("faults"), "kind")
            .iter()
            .any(|k| k == restore)
    {
        return;
    }
    // The first `data` entry holding an rpo, wherever it is (top level or a request's table).
    fn find(n: &Node) -> Option<&Node> {
        let V::Table(es) = &n.v else { return None };
        es.iter().find_map(|e| {
            let holds = |n: &Node| match &n.v {
                V::Array(items) => items
                    .iter()
                    .any(|i| matches!(&i.v, V::Str(s) if s.trim_start().starts_with("rpo"))),
                _ => false,
            };
            if e.key == "data" && holds(&e.node) {
                Some(&e.node)
            } else {
                find(&e.node)
            }
        })
    }
    let Some(slo_node) = top.get("slo") else {
        return;
    };
    let at = find(slo_node).unwrap_or(slo_node).span.clone();
    cx.err(
        &at,
        "`rpo` measures a restore, and this scenario has none",
        Some(&format!(
            "add a fault of kind \"{restore}\" (the database lost, then restored from its newest snapshot), or remove the rpo SLO"
        )),
    );
}

/// The journeys of `[users]` (the `journeys` array), read leniently.
fn journeys_written(users: Option<&Node>) -> Option<&Node> {
    let Some(V::Table(entries)) = users.map(|n| &n.v) else {
        return None;
    };
    entries
        .iter()
        .find(|e| e.key == "journeys")
        .map(|e| &e.node)
}

/// The journey names of `[users]`, read leniently like [`names_written`].
fn journey_names_written(users: Option<&Node>) -> Vec<String> {
    names_written(journeys_written(users))
}

/// The `journey:step` names of `[users]`, read leniently like [`names_written`].
fn step_names_written(users: Option<&Node>) -> Vec<String> {
    let Some(V::Array(items)) = journeys_written(users).map(|n| &n.v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for j in items {
        let V::Table(es) = &j.v else { continue };
        let name = es
            .iter()
            .find(|e| e.key == "name")
            .and_then(|e| match &e.node.v {
                V::Str(s) => Some(s.clone()),
                _ => None,
            });
        let steps = es.iter().find(|e| e.key == "steps").map(|e| &e.node);
        if let Some(name) = name {
            out.extend(
                names_written(steps)
                    .into_iter()
                    .map(|s| format!("{name}:{s}")),
            );
        }
    }
    out
}

/// A table's entries, with the node for error positions.
pub(crate) struct Fields<'n> {
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
        let d = self.diagnostic(span, message, help);
        self.errs.push(d);
    }

    /// A problem that does not make the scenario invalid (`chaos check` prints it).
    pub fn warn(&mut self, span: &Range<usize>, message: &str, help: Option<&str>) {
        let d = self.diagnostic(span, message, help);
        self.warns.push(d);
    }

    fn diagnostic(&self, span: &Range<usize>, message: &str, help: Option<&str>) -> Diagnostic {
        let noted = self
            .notes
            .iter()
            .find(|(whole, refs, _)| whole == span || refs == span);
        let span = noted.map_or(span, |(_, refs, _)| refs);
        let flag = self
            .input
            .flags
            .extras
            .iter()
            .rev()
            .find(|x| span.start >= x.base);
        let (file, (line, column, text, width)) = match flag {
            Some(x) if span.start > self.input.text.len() => (
                x.text.as_str(),
                LineIndex::new(&x.text)
                    .locate(&(span.start - x.base..span.end.saturating_sub(x.base))),
            ),
            _ => (self.input.file, self.ix.locate(span)),
        };
        let note = noted.map(|(_, _, n)| n.as_str());
        let help = match (help, note) {
            (Some(h), Some(n)) => Some(format!("{h}; {n}")),
            (None, Some(n)) => Some(n.to_string()),
            (h, None) => h.map(str::to_string),
        };
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: message.to_string(),
            // Whole: the renderer shows a long line as a window around the caret.
            source_line: text.to_string(),
            width,
            help,
        }
    }

    /// The source text of a span (the scenario's, or a flag's).
    fn slice(&self, span: &Range<usize>) -> &str {
        let text = self.input.text;
        if span.start > text.len() {
            if let Some(x) = self
                .input
                .flags
                .extras
                .iter()
                .rev()
                .find(|x| span.start >= x.base)
            {
                return x
                    .text
                    .get(span.start - x.base..span.end.saturating_sub(x.base))
                    .unwrap_or("");
            }
        }
        text.get(span.clone()).unwrap_or("")
    }

    /// True if this node's value was unknown (a placeholder stands in for it).
    pub fn unknown(&self, n: &Node) -> bool {
        self.unknown_spans.contains(&n.span)
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

    /// File order: the scenario's diagnostics by line and column, then the flags' in order.
    fn order(&self, d: &Diagnostic) -> (usize, usize, usize) {
        let flag = if d.file == self.input.file {
            0
        } else {
            let extras = &self.input.flags.extras;
            extras
                .iter()
                .position(|x| x.text == d.file)
                .map_or(extras.len() + 1, |i| i + 1)
        };
        (flag, d.line, d.column)
    }

    fn finish_warnings(&mut self) -> Vec<Diagnostic> {
        let mut w = std::mem::take(&mut self.warns);
        w.sort_by_key(|d| self.order(d));
        w.dedup();
        w
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        let mut errs = std::mem::take(&mut self.errs);
        errs.sort_by_key(|d| self.order(d));
        self.errs = errs;
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
