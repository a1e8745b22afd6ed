//! `${env:NAME}` and `${env:NAME:-default}` during validation: where values come from (`--env`
//! first, then the process environment, then the default), what a missing one is (an error
//! when running, a warning when only checking), and where diagnostics point.
//!
//! In numeric and duration fields a string holding references is substituted and the result is
//! validated as that field, with diagnostics at the references' position saying where the value
//! came from (these values are not secret: plans and reports show them, and they are recorded in
//! the scenario). In headers and bodies the value is a secret part of a template: never shown,
//! never recorded. A name used both ways is refused, since the numeric use would publish it.

use std::borrow::Cow;
use std::ops::Range;

use super::Ctx;
use crate::scenario::model::Template;
use crate::scenario::node::{Node, V};
use crate::scenario::params::{EnvMode, Unknown};
use crate::scenario::values;

/// What a numeric field reads.
pub(in crate::scenario) enum Got<'n> {
    /// The node itself, or the substituted value at the references' span.
    Node(Cow<'n, Node>),
    /// A reference without a value (names-only validation): warned about; use a placeholder.
    Unknown,
    /// Reported already.
    Failed,
}

/// Where a value came from, for diagnostics.
enum From {
    Flag,
    Process,
    Default,
}

fn set_help(name: &str) -> String {
    format!("export {name}=... or pass --env {name}=..., or give a default in the file: ${{env:{name}:-<value>}}")
}

impl Ctx<'_> {
    /// file:line:col of a span (the scenario's, or a flag's).
    fn place(&self, span: &Range<usize>) -> String {
        let d = self.diagnostic(span, "", None);
        format!("{}:{}:{}", d.file, d.line, d.column)
    }

    /// The value of `name`: `--env` (the last one given wins), then the process environment.
    fn lookup(&self, name: &str) -> Option<(String, From)> {
        let flag = self
            .input
            .flags
            .env
            .iter()
            .rev()
            .find(|(n, _, _)| n == name);
        if let Some((_, v, _)) = flag {
            return Some((v.clone(), From::Flag));
        }
        (self.input.env)(name).map(|v| (v, From::Process))
    }

    /// The span of the `${…}` references inside a string node's source (the node's span if the
    /// source text does not show them, e.g. when written with escapes).
    fn refs_span(&self, n: &Node, name: Option<&str>) -> Range<usize> {
        let src = self.slice(&n.span);
        let start = match name {
            Some(name) => src.find(&format!("${{env:{name}")),
            None => src.find("${"),
        };
        let end = match name {
            Some(_) => start.and_then(|s| src[s..].find('}').map(|e| s + e + 1)),
            None => src.rfind('}').map(|e| e + 1),
        };
        match (start, end) {
            (Some(s), Some(e)) if s < e => n.span.start + s..n.span.start + e,
            _ => n.span.clone(),
        }
    }

    /// The node a numeric or duration field reads: `n` itself, or, for a string holding
    /// `${env:…}`, the substituted text at the references' span — an integer or a float if it
    /// reads as one, else a string — with a note saying where the value came from.
    pub(super) fn numeric<'n>(&mut self, n: &'n Node, what: &str) -> Got<'n> {
        let V::Str(s) = &n.v else {
            return Got::Node(Cow::Borrowed(n));
        };
        if !s.contains("${") {
            return Got::Node(Cow::Borrowed(n));
        }
        let span = self.refs_span(n, None);
        let mut took: Vec<(String, String, From)> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let substituted = values::substitute(s, &mut |name, default| {
            match (self.lookup(name), default) {
                (Some((v, from)), _) => took.push((name.to_string(), v.clone(), from)),
                (None, Some(d)) => took.push((name.to_string(), d.to_string(), From::Default)),
                (None, None) => {
                    missing.push(name.to_string());
                    return Ok(None);
                }
            }
            Ok(took.last().map(|(_, v, _)| v.clone()))
        });
        for name in took.iter().map(|t| &t.0).chain(&missing) {
            let at = self.refs_span(n, Some(name));
            self.used_env.push((name.clone(), false, at));
        }
        let text = match substituted {
            Err(b) => {
                self.bad(n, b);
                return Got::Failed;
            }
            Ok(Some(text)) => text,
            Ok(None) => {
                let mut failed = false;
                for name in &missing {
                    let at = self.refs_span(n, Some(name));
                    if self.input.mode == EnvMode::Require {
                        self.err(
                            &at,
                            &format!("environment variable `{name}` is not set ({what} reads it)"),
                            Some(&set_help(name)),
                        );
                        failed = true;
                    } else {
                        self.warn(
                            &at,
                            &format!(
                                "environment variable `{name}` is not set: `{what}` is unknown here, and `chaos run` will need it"
                            ),
                            Some(&set_help(name)),
                        );
                        self.unknown.push(Unknown {
                            name: name.clone(),
                            field: what.to_string(),
                            place: self.place(&at),
                        });
                    }
                }
                if failed {
                    return Got::Failed;
                }
                self.unknown_spans.push(n.span.clone());
                return Got::Unknown;
            }
        };
        let origins: Vec<String> = took
            .iter()
            .map(|(name, v, from)| match from {
                From::Flag => format!("`{v}` came from --env {name}"),
                From::Process => format!("`{v}` came from the environment variable {name}"),
                From::Default => format!("`{v}` is the default of ${{env:{name}}}"),
            })
            .collect();
        for (name, v, _) in &took {
            self.numeric_env.insert(name.clone(), v.clone());
        }
        let note = match origins.as_slice() {
            [one] => one.clone(),
            many => format!("the value `{text}` was substituted: {}", many.join(", ")),
        };
        self.notes.push((n.span.clone(), span.clone(), note));
        Got::Node(Cow::Owned(Node {
            span,
            v: number_or_string(&text),
        }))
    }

    /// A template string (header value, body), with `${env:…}` as secret parts. A missing value
    /// is an error when running, a warning (and an empty stand-in) when only checking; either
    /// is reported here, at the reference.
    pub(super) fn env_template(&mut self, n: &Node, s: &str, allow_env: bool) -> Option<Template> {
        let mut names: Vec<String> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let t = values::template(s, allow_env, &mut |name, default| {
            names.push(name.to_string());
            match (self.lookup(name), default) {
                (Some((v, _)), _) => Ok(Some(v)),
                (None, Some(d)) => Ok(Some(d.to_string())),
                (None, None) => {
                    missing.push(name.to_string());
                    Ok(None)
                }
            }
        });
        let t = match t {
            Ok(t) => t,
            Err(b) => {
                self.bad(n, b);
                return None;
            }
        };
        for name in &names {
            let at = self.refs_span(n, Some(name));
            self.used_env.push((name.clone(), true, at));
        }
        let help = |name: &str| format!("{} (its value is never shown: ***)", set_help(name));
        let require = self.input.mode == EnvMode::Require;
        for name in &missing {
            let at = self.refs_span(n, Some(name));
            if require {
                self.err(
                    &at,
                    &format!("environment variable `{name}` is not set"),
                    Some(&help(name)),
                );
            } else {
                self.warn(
                    &at,
                    &format!("environment variable `{name}` is not set: `chaos run` will need it"),
                    Some(&help(name)),
                );
            }
        }
        (missing.is_empty() || !require).then_some(t)
    }

    /// After the whole file: a name used as a secret and as a number (the number is shown in
    /// plans and reports, so the secret would be too) is an error; an `--env` the scenario
    /// never reads is a warning (a typo, most likely).
    pub(super) fn check_env_use(&mut self) {
        let used = std::mem::take(&mut self.used_env);
        for (name, secret, at) in &used {
            if !*secret {
                continue;
            }
            if let Some((_, _, num_at)) = used.iter().find(|(n, s, _)| n == name && !*s) {
                let place = self.place(num_at);
                self.err(
                    at,
                    &format!("`{name}` is used as a secret here and as a number at {place}"),
                    Some("values of numeric fields are shown in plans and reports: use a separate variable for the secret"),
                );
            }
        }
        let names: Vec<&str> = used.iter().map(|(n, _, _)| n.as_str()).collect();
        for (name, _, span) in &self.input.flags.env {
            if names.contains(&name.as_str()) {
                continue;
            }
            let hint = super::did_you_mean(name, names.iter().copied())
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            let read = if names.is_empty() {
                "the scenario reads no ${env:…}".to_string()
            } else {
                let mut n = names.clone();
                n.sort_unstable();
                n.dedup();
                format!("it reads: {}", n.join(", "))
            };
            self.warn(
                span,
                &format!("--env {name} is not used by the scenario"),
                Some(&format!("{hint}{read}")),
            );
        }
    }
}

/// Substituted text as a field would have read it written plainly: `400` an integer, `1.5` a
/// float, anything else (`30s`, `4x`, `abc`) a string.
fn number_or_string(text: &str) -> V {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return V::Int(i);
    }
    let numeric = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && t.chars().any(|c| c.is_ascii_digit());
    match t.parse::<f64>() {
        Ok(f) if numeric => V::Float(f),
        _ => V::Str(text.to_string()),
    }
}
