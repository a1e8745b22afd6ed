//! What a scenario gets from outside its file: `--set key.path=value` overrides, `--env
//! NAME=value` values for `${env:NAME}`, whether a value nobody gave is an error (`chaos run`)
//! or a warning (`check`, `plan`, `report`: a PR lint job has no production secret), and the
//! zones of the target the faults will run on.
//!
//! Overrides are applied to the spanned tree before validation, so the validators check them like
//! the file. In diagnostics each flag is its own "file" (`--set load.peak_rps=abc`, line 1, the
//! column at the value): its text lives in span space past the end of the scenario's text (see
//! [`Flags::extras`]). What was applied is recorded in [`Applied`] (kept in report.json) so a
//! report says what ran and `chaos report` rebuilds the same scenario. Never secrets: `--set`
//! refuses header values and bodies, `--env` values are shown as `***` in diagnostics, and only
//! the values of `${env:…}` in numeric fields (which plans and reports show anyway) are recorded.

use std::collections::BTreeMap;
use std::ops::Range;

use super::node::{self, Entry, Node, V};
use super::validate::keys;

/// What to do with `${env:NAME}` when no value is given (and there is no `:-default`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnvMode {
    /// An error naming file:line:col (`chaos run`: the value is needed).
    #[default]
    Require,
    /// A warning; the field is validated without it (`check`, `plan`, `report`). Numeric fields
    /// without a value hold placeholders and are listed in [`super::Scenario::unknown`].
    NamesOnly,
}

/// The zones a target has, for checking the `zone` of faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    /// How diagnostics name the target, e.g. "the embedded sandbox".
    pub target: String,
    pub zones: Vec<String>,
}

impl Zones {
    /// The embedded sandbox's zones (the default target until target files exist).
    pub fn sandbox() -> Zones {
        Zones {
            target: "the embedded sandbox".to_string(),
            zones: keys::ZONES.iter().map(|z| z.to_string()).collect(),
        }
    }
}

/// How to load a scenario besides its text.
#[derive(Debug, Clone)]
pub struct Params {
    /// `--set key.path=value`, in the order given (a later one wins).
    pub set: Vec<String>,
    /// `--env NAME=value`: values for `${env:NAME}`, before the process environment.
    pub env: Vec<String>,
    pub mode: EnvMode,
    /// Read the process environment for names `--env` does not give (false when rebuilding a
    /// recorded run: it must see the values the run saw, not today's).
    pub process_env: bool,
    /// The zones faults may name; `None` = not checked (a plain `--target-url` runs no faults).
    pub zones: Option<Zones>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            set: Vec::new(),
            env: Vec::new(),
            mode: EnvMode::Require,
            process_env: true,
            zones: Some(Zones::sandbox()),
        }
    }
}

impl Params {
    /// `chaos check` / `plan`: the flags given, values not required.
    pub fn names_only(set: &[String], env: &[String]) -> Params {
        Params {
            set: set.to_vec(),
            env: env.to_vec(),
            mode: EnvMode::NamesOnly,
            ..Params::default()
        }
    }

    /// `chaos run`: every value required; zones checked when the faults run on the sandbox.
    pub fn run(set: &[String], env: &[String], on_sandbox: bool) -> Params {
        Params {
            set: set.to_vec(),
            env: env.to_vec(),
            zones: on_sandbox.then(Zones::sandbox),
            ..Params::default()
        }
    }

    /// Rebuild the scenario a run used from what it recorded: its overrides and numeric values
    /// only (never today's environment); secrets are not needed (nothing is sent).
    pub fn recorded(applied: &Applied) -> Params {
        Params {
            set: applied.set.clone(),
            env: applied
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            mode: EnvMode::NamesOnly,
            process_env: false,
            zones: None,
        }
    }
}

/// What changed the file's values, as recorded in the scenario (and report.json).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// The `--set` overrides, as given, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// The value each `${env:NAME}` of a numeric field took (from `--env`, the environment or
    /// its default). Secrets (headers, bodies) are never listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.env.is_empty()
    }
}

/// A numeric field whose `${env:NAME}` had no value (validation without values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub name: String,
    /// The field, e.g. `peak_rps`.
    pub field: String,
    /// file:line:col of the reference.
    pub place: String,
}

/// A command-line flag shown as a "file" in diagnostics; its text starts at `base` in span space.
#[derive(Debug, Clone)]
pub struct Extra {
    pub text: String,
    pub base: usize,
}

/// A problem found before validation (a malformed flag, a key path that leads nowhere).
#[derive(Debug, Clone)]
pub struct Raw {
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

fn raw(span: Range<usize>, message: impl Into<String>, help: impl Into<String>) -> Raw {
    Raw {
        span,
        message: message.into(),
        help: Some(help.into()),
    }
}

struct Seg {
    key: String,
    span: Range<usize>,
}

struct Set {
    path: Vec<Seg>,
    value: Node,
}

/// The flags, parsed.
pub struct Flags {
    /// Each flag's text, after the scenario's text in span space.
    pub extras: Vec<Extra>,
    sets: Vec<Set>,
    /// `--env` values: (name, value, span of the flag).
    pub env: Vec<(String, String, Range<usize>)>,
    pub errors: Vec<Raw>,
}

const SET_HELP: &str = "--set KEY.PATH=VALUE, e.g. --set load.peak_rps=400, --set faults.zone-a-down.at=30s, --set load.stages.1.for=5m (array items by index from 0, or by their name)";

impl Flags {
    /// Parse `params`' flags; `text_len` is the length of the scenario's text.
    pub fn parse(params: &Params, text_len: usize) -> Flags {
        let mut f = Flags {
            extras: Vec::new(),
            sets: Vec::new(),
            env: Vec::new(),
            errors: Vec::new(),
        };
        let mut base = text_len + 1;
        for s in &params.set {
            let text = format!("--set {s}");
            let start = base + "--set ".len();
            f.extras.push(Extra {
                text: text.clone(),
                base,
            });
            base += text.len() + 1;
            let Some((key, value)) = s.split_once('=') else {
                f.errors.push(raw(
                    start..start + s.len(),
                    format!("--set `{s}` has no `=`"),
                    SET_HELP,
                ));
                continue;
            };
            match key_path(key, start) {
                Ok(path) => f.sets.push(Set {
                    path,
                    value: value_node(value, start + key.len() + 1),
                }),
                Err(e) => f.errors.push(e),
            }
        }
        for e in &params.env {
            let (name, value) = e.split_once('=').unwrap_or((e.as_str(), ""));
            // The value may be a secret: diagnostics show the flag with it masked.
            let text = if e.contains('=') {
                format!("--env {name}=***")
            } else {
                format!("--env {e}")
            };
            let start = base + "--env ".len();
            f.extras.push(Extra {
                text: text.clone(),
                base,
            });
            base += text.len() + 1;
            let span = start..start + name.len().max(1);
            if !e.contains('=') {
                f.errors.push(raw(
                    span,
                    format!("--env `{e}` has no `=`"),
                    "--env NAME=VALUE gives ${env:NAME} its value (before the process environment)",
                ));
            } else if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                f.errors.push(raw(
                    span,
                    format!("invalid environment variable name `{name}`"),
                    "letters, digits and _ only, e.g. --env PEAK_RPS=400",
                ));
            } else {
                f.env.push((name.to_string(), value.to_string(), span));
            }
        }
        f
    }

    /// Apply every `--set` to the tree, in order; a path that leads nowhere is an error.
    pub fn apply(&mut self, root: &mut Node) {
        for set in &self.sets {
            if let Err(e) = apply_one(root, set) {
                self.errors.push(e);
            }
        }
    }
}

/// `load.peak_rps`, `faults."a.b".at`: segments split at `.`, optionally double-quoted.
fn key_path(key: &str, start: usize) -> Result<Vec<Seg>, Raw> {
    let mut out = Vec::new();
    let b = key.as_bytes();
    let mut i = 0;
    loop {
        let (seg, end, next) = if b.get(i) == Some(&b'"') {
            let Some(close) = key[i + 1..].find('"') else {
                return Err(raw(
                    start + i..start + key.len(),
                    format!("unclosed `\"` in the key `{key}`"),
                    SET_HELP,
                ));
            };
            let end = i + 1 + close + 1;
            (&key[i + 1..end - 1], end, end)
        } else {
            let end = key[i..].find('.').map_or(key.len(), |j| i + j);
            (key[i..end].trim(), end, end)
        };
        if seg.is_empty() {
            return Err(raw(
                start + i..start + next.max(i + 1),
                format!("empty key in `{key}`"),
                SET_HELP,
            ));
        }
        out.push(Seg {
            key: seg.to_string(),
            span: start + i..start + end,
        });
        match b.get(next) {
            None => return Ok(out),
            Some(b'.') => i = next + 1,
            Some(_) => {
                return Err(raw(
                    start + next..start + key.len(),
                    format!("expected `.` after `{seg}` in `{key}`"),
                    SET_HELP,
                ))
            }
        }
    }
}

/// An override's value: a TOML value if it reads as one (`400`, `1.5`, `true`, `"text"`,
/// `["a"]`), otherwise the text itself as a string (`30s`, `4x`, `abc`).
fn value_node(value: &str, start: usize) -> Node {
    let as_string = || Node {
        span: start..start + value.len(),
        v: V::Str(value.to_string()),
    };
    let prefix = "v = ";
    let Ok(root) = node::from_toml(&format!("{prefix}{value}")) else {
        return as_string();
    };
    match root.v {
        V::Table(mut es) if es.len() == 1 && es[0].key == "v" => {
            let mut n = es.remove(0).node;
            shift(&mut n, start, prefix.len());
            n
        }
        _ => as_string(),
    }
}

/// Move spans parsed from `"v = VALUE"` to where VALUE is in span space.
fn shift(n: &mut Node, to: usize, from: usize) {
    let mv = |r: &mut Range<usize>| *r = r.start - from + to..r.end - from + to;
    mv(&mut n.span);
    match &mut n.v {
        V::Array(items) => items.iter_mut().for_each(|i| shift(i, to, from)),
        V::Table(es) => {
            for e in es {
                mv(&mut e.key_span);
                shift(&mut e.node, to, from);
            }
        }
        _ => {}
    }
}

/// Keys `--set` refuses: what they hold may be a secret, and overrides are written to reports.
const SECRET_KEYS: &[&str] = &["headers", "json", "body"];

/// The first key of `SECRET_KEYS` anywhere inside a value (`--set 'load.client={headers=…}'`
/// must not get round the check on the path), but not `expect.json` (a check, not a body).
fn secret_key_inside(n: &Node, parent: &str) -> Option<String> {
    match &n.v {
        V::Table(es) => es.iter().find_map(|e| {
            if SECRET_KEYS.contains(&e.key.as_str()) && !(e.key == "json" && parent == "expect") {
                Some(e.key.clone())
            } else {
                secret_key_inside(&e.node, &e.key)
            }
        }),
        V::Array(items) => items.iter().find_map(|i| secret_key_inside(i, parent)),
        _ => None,
    }
}

fn apply_one(root: &mut Node, set: &Set) -> Result<(), Raw> {
    let last_key = set.path.last().map_or("", |s| s.key.as_str());
    if let Some(key) = secret_key_inside(&set.value, last_key) {
        return Err(raw(
            set.value.span.clone(),
            format!("--set cannot set `{key}`, not even inside a table"),
            "header values and bodies may hold secrets, and overrides are written to reports: write ${env:NAME} in the file and export NAME",
        ));
    }
    let mut cur = root;
    let mut walked: Vec<&str> = Vec::new();
    for (i, seg) in set.path.iter().enumerate() {
        let last = i + 1 == set.path.len();
        let in_expect = i > 0 && set.path[i - 1].key == "expect";
        if SECRET_KEYS.contains(&seg.key.as_str()) && !(seg.key == "json" && in_expect) {
            return Err(raw(
                seg.span.clone(),
                format!("--set cannot change `{}`", seg.key),
                "header values and bodies may hold secrets, and overrides are written to reports: write ${env:NAME} in the file and export NAME (an --env value shows in the process list)",
            ));
        }
        let here = if walked.is_empty() {
            "the top level".to_string()
        } else {
            format!("`{}`", walked.join("."))
        };
        let kind = cur.type_name();
        cur = match &mut cur.v {
            V::Table(entries) => {
                let j = match entries.iter().position(|e| e.key == seg.key) {
                    Some(j) => j,
                    None => {
                        // A key the file does not have: added, so the validator judges it
                        // (an unknown key is reported there, at this segment, with a suggestion).
                        let node = if last {
                            set.value.clone()
                        } else {
                            Node {
                                span: seg.span.clone(),
                                v: V::Table(Vec::new()),
                            }
                        };
                        entries.push(Entry {
                            key: seg.key.clone(),
                            key_span: seg.span.clone(),
                            node,
                        });
                        if last {
                            return Ok(());
                        }
                        entries.len() - 1
                    }
                };
                if last {
                    entries[j].node = set.value.clone();
                    return Ok(());
                }
                &mut entries[j].node
            }
            V::Array(items) => {
                let j = item_index(items, &seg.key).ok_or_else(|| no_item(items, seg, &here))?;
                if last {
                    items[j] = set.value.clone();
                    return Ok(());
                }
                &mut items[j]
            }
            _ => {
                return Err(raw(
                    seg.span.clone(),
                    format!("{here} is {kind}: it has no key `{}`", seg.key),
                    SET_HELP,
                ))
            }
        };
        walked.push(&seg.key);
    }
    Ok(())
}

/// An array item by index (`0`) or by its `name`.
fn item_index(items: &[Node], key: &str) -> Option<usize> {
    if let Ok(i) = key.parse::<usize>() {
        return (i < items.len()).then_some(i);
    }
    items.iter().position(|n| item_name(n) == Some(key))
}

fn item_name(n: &Node) -> Option<&str> {
    match &n.v {
        V::Table(es) => es
            .iter()
            .find(|e| e.key == "name")
            .and_then(|e| match &e.node.v {
                V::Str(s) => Some(s.as_str()),
                _ => None,
            }),
        _ => None,
    }
}

fn no_item(items: &[Node], seg: &Seg, here: &str) -> Raw {
    let names: Vec<&str> = items.iter().filter_map(item_name).collect();
    let hint = super::validate::did_you_mean(&seg.key, names.iter().copied())
        .map(|n| format!("did you mean `{n}`? "))
        .unwrap_or_default();
    let by_name = if names.is_empty() {
        String::new()
    } else {
        format!("by name: {}; ", names.join(", "))
    };
    let by_index = match items.len() {
        0 => "it is empty".to_string(),
        1 => "by index: 0".to_string(),
        n => format!("by index: 0 to {}", n - 1),
    };
    raw(
        seg.span.clone(),
        format!("{here} has no item `{}`", seg.key),
        format!("{hint}{by_name}{by_index}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(set: &[&str]) -> Flags {
        let p = Params {
            set: set.iter().map(|s| s.to_string()).collect(),
            ..Params::default()
        };
        Flags::parse(&p, 100)
    }

    #[test]
    fn values_read_as_toml_or_else_as_text() {
        let f = flags(&["load.peak_rps=400", "a.b=30s", "x=\"q\"", "y=[1, 2]"]);
        assert!(f.errors.is_empty());
        assert!(matches!(f.sets[0].value.v, V::Int(400)));
        assert!(matches!(&f.sets[1].value.v, V::Str(s) if s == "30s"));
        assert!(matches!(&f.sets[2].value.v, V::Str(s) if s == "q"));
        assert!(matches!(&f.sets[3].value.v, V::Array(a) if a.len() == 2));
        // Spans point into the flag's text: "--set load.peak_rps=400" starts at 101.
        let v = &f.sets[0].value.span;
        assert_eq!(&f.extras[0].text[v.start - 101..v.end - 101], "400");
        let k = &f.sets[0].path[1].span;
        assert_eq!(&f.extras[0].text[k.start - 101..k.end - 101], "peak_rps");
        let y = &f.sets[3].value;
        let V::Array(items) = &y.v else {
            unreachable!()
        };
        let base = f.extras[3].base;
        assert_eq!(
            &f.extras[3].text[items[1].span.start - base..items[1].span.end - base],
            "2"
        );
    }

    #[test]
    fn malformed_flags_are_errors() {
        let f = flags(&["load.peak_rps", "load..x=1", "\"a.b=1", "\"a\"b.c=1"]);
        assert_eq!(f.errors.len(), 4, "{:?}", f.errors);
        let p = Params {
            env: vec!["PEAK".into(), "A-B=1".into(), "OK=s3cret".into()],
            ..Params::default()
        };
        let f = Flags::parse(&p, 0);
        assert_eq!(f.errors.len(), 2);
        assert_eq!(f.env, vec![("OK".into(), "s3cret".into(), 32..34)]);
        assert!(f.extras.iter().all(|x| !x.text.contains("s3cret")));
    }

    #[test]
    fn quoted_segments_keep_dots() {
        let p = key_path("faults.\"a.b\".at", 0).unwrap_or_default();
        let keys: Vec<&str> = p.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["faults", "a.b", "at"]);
    }

    #[test]
    fn the_zones_checked_are_the_sandboxs() {
        assert_eq!(
            Zones::sandbox().zones,
            crate::sandbox::SandboxConfig::default().zones
        );
    }

    #[test]
    fn recorded_params_replay_without_the_environment() {
        let mut a = Applied::default();
        a.set.push("load.peak_rps=400".into());
        a.env.insert("P".into(), "3".into());
        let p = Params::recorded(&a);
        assert_eq!(p.env, ["P=3"]);
        assert!(!p.process_env);
        assert_eq!(p.mode, EnvMode::NamesOnly);
    }
}
