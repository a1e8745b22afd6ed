//! `[[load.requests]]`: the request mix, templates, headers, bodies, captures, durable writes,
//! and `expect` (what counts as a success).

use super::keys;
use super::Ctx;
use crate::scenario::model::{
    Body, Capture, Durable, Expect, Header, JsonCheck, JsonTemplate, Part, RequestSpec, Template,
};
use crate::scenario::node::{Node, V};
use crate::scenario::values;

/// Names usable as `{{name}}` besides captured ones.
const BUILTIN_VARS: &[&str] = &["seq", "uuid", "rand_int(a,b)"];

/// Every name any request captures (captured values may be used by any request: the mix is
/// random, so "earlier" means earlier in time, not in the file). Read leniently: errors in
/// `capture` tables are reported when each request is validated.
pub(super) fn capture_names(requests: Option<&Node>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(Node {
        v: V::Array(items), ..
    }) = requests
    else {
        return out;
    };
    for item in items {
        let V::Table(entries) = &item.v else { continue };
        for e in entries.iter().filter(|e| e.key == "capture") {
            if let V::Table(caps) = &e.node.v {
                out.extend(caps.iter().map(|c| c.key.clone()));
            }
        }
    }
    out
}

/// What a list of requests is: the open model's mix, or a journey's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `[[load.requests]]`: weighted, any captured name usable by any request.
    Load,
    /// A journey's `steps`: in order, `{{user}}` and the earlier steps' captures usable.
    Step,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Load => "request",
            Kind::Step => "step",
        }
    }
}

/// The names the captures of one request table write (read leniently).
fn captures_of(item: &Node) -> Vec<String> {
    let V::Table(entries) = &item.v else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.key == "capture")
        .filter_map(|e| match &e.node.v {
            V::Table(caps) => Some(caps.iter().map(|c| c.key.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(super) fn requests(
    cx: &mut Ctx<'_>,
    n: &Node,
    captures: &[String],
    kind: Kind,
) -> Option<Vec<RequestSpec>> {
    let what = match kind {
        Kind::Load => "requests",
        Kind::Step => "steps",
    };
    let items = cx.array(n, what)?;
    if items.is_empty() {
        let help = match kind {
            Kind::Load => "at least one [[load.requests]] with a name and a path",
            Kind::Step => {
                "at least one step, e.g. { name = \"login\", method = \"POST\", path = \"/login\" }"
            }
        };
        cx.err(&n.span, &format!("{what} is empty"), Some(help));
        return None;
    }
    let mut out: Vec<RequestSpec> = Vec::new();
    let mut ok = true;
    // A step sees `{{user}}` and what the steps before it capture, in this iteration.
    let mut known: Vec<String> = match kind {
        Kind::Load => captures.to_vec(),
        Kind::Step => vec!["user".to_string()],
    };
    for item in items {
        match request(cx, item, &known, &out, kind) {
            Some(r) => out.push(r),
            None => ok = false,
        }
        if kind == Kind::Step {
            known.extend(captures_of(item));
        }
    }
    if ok && kind == Kind::Load && out.iter().map(|r| u64::from(r.weight)).sum::<u64>() == 0 {
        cx.err(
            &n.span,
            "the request weights sum to 0: no request would ever be sent",
            Some("give at least one request a weight above 0 (the default weight is 1)"),
        );
        return None;
    }
    ok.then_some(out)
}

fn request(
    cx: &mut Ctx<'_>,
    n: &Node,
    captures: &[String],
    earlier: &[RequestSpec],
    kind: Kind,
) -> Option<RequestSpec> {
    let noun = kind.noun();
    let t = cx.table(n, &format!("a {noun}"))?;
    match kind {
        Kind::Load => t.check_keys(cx, keys::REQUEST, "in [[load.requests]]"),
        Kind::Step => t.check_keys(cx, keys::STEP, "in a journey step"),
    }
    let name = t.required(cx, "name").and_then(|nn| {
        let name = cx.ident(nn, &format!("{noun} name"))?;
        if earlier.iter().any(|r| r.name == name) {
            cx.err(
                &nn.span,
                &format!("duplicate {noun} name \"{name}\""),
                Some(&format!(
                    "{noun} names are unique: reports and SLOs refer to {noun}s by name"
                )),
            );
            return None;
        }
        let reserved = keys::SLO_WINDOWS.iter().chain(keys::SLO_LATER);
        if kind == Kind::Load && reserved.clone().any(|w| *w == name) {
            cx.err(
                &nn.span,
                &format!("request name \"{name}\" is reserved"),
                Some(&format!(
                    "these names are SLO keys: {}",
                    reserved.copied().collect::<Vec<_>>().join(", ")
                )),
            );
            return None;
        }
        Some(name)
    });
    let weight = match t.get("weight").filter(|_| kind == Kind::Load) {
        Some(w) => cx.int(w, "weight", 0, 1_000_000).map(|v| v as u32),
        None => Some(1),
    };
    let method = match t.get("method") {
        Some(m) => method(cx, m, kind),
        None => Some("GET".to_string()),
    };
    let path = t.required(cx, "path").and_then(|p| {
        let s = cx.string(p, "path")?;
        if !s.starts_with('/') {
            cx.err(
                &p.span,
                &format!("path \"{s}\" does not start with `/`"),
                Some("a path (and query) on the target, e.g. \"/notes?limit=10\"; the host comes from the target"),
            );
            return None;
        }
        template(cx, p, &s, false, captures)
    });
    let headers = match t.get("headers") {
        Some(h) => headers(cx, h, captures),
        None => Some(Vec::new()),
    };
    let body = match (t.get("json"), t.get("body")) {
        (Some(j), Some(b)) => {
            cx.err(
                &b.span,
                "a request has both `json` and `body`",
                Some("`json` sends a JSON document, `body` sends text as is: keep one"),
            );
            let _ = j;
            None
        }
        (Some(j), None) => json(cx, j, captures).map(|j| Some(Body::Json(j))),
        (None, Some(b)) => cx
            .string(b, "body")
            .and_then(|s| template(cx, b, &s, true, captures))
            .map(|t| Some(Body::Text(t))),
        (None, None) => Some(None),
    };
    let capture = match t.get("capture") {
        Some(c) => capture(cx, c, kind),
        None => Some(Vec::new()),
    };
    let durable = match t.get("durable") {
        Some(d) => durable(cx, d, t.get("json").is_some()).map(Some),
        None => Some(None),
    };
    let expect = match t.get("expect") {
        Some(e) => expect(cx, e).map(Some),
        None => Some(None),
    };
    Some(RequestSpec {
        name: name?,
        weight: weight?,
        method: method?,
        path: path?,
        headers: headers?,
        body: body?,
        capture: capture?,
        durable: durable?,
        expect: expect?,
    })
}

fn method(cx: &mut Ctx<'_>, n: &Node, kind: Kind) -> Option<String> {
    let s = cx.string(n, "method")?;
    let up = s.trim().to_ascii_uppercase();
    if kind == Kind::Step && keys::METHODS.contains(&up.as_str()) && up == "OPTIONS" {
        cx.err(
            &n.span,
            "a journey step cannot send OPTIONS",
            Some(
                "journeys run on goose, whose requests are GET, POST, PUT, PATCH, DELETE and HEAD",
            ),
        );
        return None;
    }
    if keys::METHODS.contains(&up.as_str()) {
        return Some(up);
    }
    cx.err(
        &n.span,
        &format!("unknown HTTP method \"{s}\""),
        Some(&format!("accepted: {}", keys::METHODS.join(", "))),
    );
    None
}

/// A template string, with captured-variable names checked.
fn template(
    cx: &mut Ctx<'_>,
    n: &Node,
    s: &str,
    allow_env: bool,
    captures: &[String],
) -> Option<Template> {
    let t = cx.env_template(n, s, allow_env)?;
    let mut ok = true;
    for v in t.vars() {
        if captures.iter().any(|c| c == v) {
            continue;
        }
        ok = false;
        let known = BUILTIN_VARS
            .iter()
            .copied()
            .chain(captures.iter().map(String::as_str));
        let hint = super::did_you_mean(v, known.clone())
            .map(|k| format!("did you mean `{{{{{k}}}}}`? "))
            .unwrap_or_default();
        let captured = if captures.is_empty() {
            "no request captures any value".to_string()
        } else {
            format!("captured: {}", captures.join(", "))
        };
        cx.err(
            &n.span,
            &format!("unknown template variable `{{{{{v}}}}}`"),
            Some(&format!(
                "{hint}built in: {{{{seq}}}}, {{{{uuid}}}}, {{{{rand_int(a,b)}}}}; {captured} (add `capture = {{ {v} = \"$.path\" }}` to the request that returns it)"
            )),
        );
    }
    ok.then_some(t)
}

pub(super) fn headers(cx: &mut Ctx<'_>, n: &Node, captures: &[String]) -> Option<Vec<Header>> {
    let t = cx.table(n, "headers")?;
    let mut out = Vec::new();
    let mut ok = true;
    for e in t.entries {
        if http::header::HeaderName::from_bytes(e.key.as_bytes()).is_err() {
            cx.err(
                &e.key_span,
                &format!("invalid header name \"{}\"", e.key),
                Some("letters, digits and !#$%&'*+-.^_`|~ only, e.g. \"X-Request-Id\""),
            );
            ok = false;
            continue;
        }
        let value = cx
            .string(&e.node, &format!("header `{}`", e.key))
            .and_then(|s| template(cx, &e.node, &s, true, captures));
        let lit_ok = value.as_ref().is_none_or(|v| {
            v.parts.iter().all(|p| match p {
                Part::Lit(s) => http::header::HeaderValue::from_str(s).is_ok(),
                _ => true,
            })
        });
        if !lit_ok {
            cx.err(
                &e.node.span,
                &format!("header `{}` holds characters a header value cannot", e.key),
                Some("visible ASCII, spaces and tabs; no newlines or control characters"),
            );
        }
        match value {
            Some(value) if lit_ok => out.push(Header {
                name: e.key.clone(),
                value,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A JSON body: any value, strings are templates (environment values allowed: bodies are never
/// written to reports).
fn json(cx: &mut Ctx<'_>, n: &Node, captures: &[String]) -> Option<JsonTemplate> {
    Some(match &n.v {
        V::Str(s) => JsonTemplate::String(template(cx, n, s, true, captures)?),
        V::Int(i) => JsonTemplate::Number((*i).into()),
        V::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(num) => JsonTemplate::Number(num),
            None => {
                cx.err(&n.span, "JSON has no NaN or infinity", None);
                return None;
            }
        },
        V::Bool(b) => JsonTemplate::Bool(*b),
        V::Datetime => {
            cx.err(
                &n.span,
                "a date-time in a JSON body",
                Some("JSON has no date type: write it as a string"),
            );
            return None;
        }
        V::Array(items) => {
            let v: Vec<_> = items.iter().map(|i| json(cx, i, captures)).collect();
            JsonTemplate::Array(v.into_iter().collect::<Option<_>>()?)
        }
        V::Table(entries) => {
            let v: Vec<_> = entries
                .iter()
                .map(|e| json(cx, &e.node, captures).map(|j| (e.key.clone(), j)))
                .collect();
            JsonTemplate::Object(v.into_iter().collect::<Option<_>>()?)
        }
    })
}

fn capture(cx: &mut Ctx<'_>, n: &Node, kind: Kind) -> Option<Vec<Capture>> {
    let t = cx.table(n, "capture")?;
    let mut out = Vec::new();
    let mut ok = true;
    for e in t.entries {
        if kind == Kind::Step && e.key == "user" {
            cx.err(
                &e.key_span,
                "a journey step cannot capture `user`",
                Some("{{user}} is the user's number in a journey: capture under another name"),
            );
            ok = false;
            continue;
        }
        let name_ok = !e.key.is_empty()
            && e.key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !matches!(e.key.as_str(), "seq" | "uuid");
        if !name_ok {
            cx.err(
                &e.key_span,
                &format!("invalid capture name \"{}\"", e.key),
                Some("letters, digits, `_` and `-`, not `seq` or `uuid`; used later as {{name}}"),
            );
            ok = false;
        }
        let path = cx
            .string(&e.node, "a capture")
            .and_then(|s| values::json_path(&s).map_err(|b| cx.bad(&e.node, b)).ok());
        match path {
            Some(path) if name_ok => out.push(Capture {
                name: e.key.clone(),
                path,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

const READ_HELP: &str =
    "how to read a write back: \"<METHOD> <path with {id}>\", e.g. \"GET /notes/{id}\"";

fn durable(cx: &mut Ctx<'_>, n: &Node, has_json: bool) -> Option<Durable> {
    let t = cx.table(n, "durable")?;
    t.check_keys(cx, keys::DURABLE, "in durable");
    let id = t.required(cx, "id").and_then(|i| {
        let s = cx.string(i, "durable id")?;
        values::json_path(&s).map_err(|b| cx.bad(i, b)).ok()
    });
    let read = t.required(cx, "read").and_then(|r| {
        let s = cx.string(r, "durable read")?;
        let mut it = s.split_whitespace();
        let (Some(m), Some(p), None) = (it.next(), it.next(), it.next()) else {
            cx.err(&r.span, &format!("invalid read \"{s}\""), Some(READ_HELP));
            return None;
        };
        let m = m.to_ascii_uppercase();
        if !keys::METHODS.contains(&m.as_str()) || !p.starts_with('/') || !p.contains("{id}") {
            cx.err(&r.span, &format!("invalid read \"{s}\""), Some(READ_HELP));
            return None;
        }
        Some((m, p.to_string()))
    });
    let same = match t.get("same") {
        Some(n) if !has_json => {
            cx.err(
                &n.span,
                "durable `same` compares a value of the write's JSON body, but the request has no `json`",
                Some("send the write with `json = { ... }`, or leave `same` out"),
            );
            return None;
        }
        Some(n) => {
            let s = cx.string(n, "durable same")?;
            Some(values::json_path(&s).map_err(|b| cx.bad(n, b)).ok()?)
        }
        None => None,
    };
    let (read_method, read_path) = read?;
    Some(Durable {
        id: id?,
        read_method,
        read_path,
        same,
    })
}

const EXPECT_HELP: &str = "what counts as a success, e.g. `expect = { status = [200, 404], body_contains = \"ok\", json = { path = \"$.ok\", equals = true } }`";
const STATUS_HELP: &str =
    "HTTP statuses 100 to 599 (404 or \"404\") or classes (\"2xx\"), e.g. `status = [200, 201, 404]`";

fn expect(cx: &mut Ctx<'_>, n: &Node) -> Option<Expect> {
    let t = cx.table(n, "expect")?;
    t.check_keys(cx, keys::EXPECT, "in expect");
    if t.entries.is_empty() {
        cx.err(
            &n.span,
            "expect is empty: it would accept what the default accepts",
            Some(EXPECT_HELP),
        );
        return None;
    }
    let status = match t.get("status") {
        Some(s) => statuses(cx, s),
        None => Some(Vec::new()),
    };
    let body_contains = match t.get("body_contains") {
        Some(b) => cx.string(b, "body_contains").and_then(|s| {
            if s.is_empty() {
                cx.err(
                    &b.span,
                    "body_contains is empty: every body contains it",
                    Some("the text a good response's body holds, e.g. \"\\\"ok\\\":true\""),
                );
                return None;
            }
            Some(Some(s))
        }),
        None => Some(None),
    };
    let json = match t.get("json") {
        Some(j) => json_check(cx, j).map(Some),
        None => Some(None),
    };
    Some(Expect {
        status: status?,
        body_contains: body_contains?,
        json: json?,
    })
}

/// `status = 404`, `status = [200, "201", "3xx"]`: sorted, deduplicated.
fn statuses(cx: &mut Ctx<'_>, n: &Node) -> Option<Vec<u16>> {
    let items: Vec<&Node> = match &n.v {
        V::Array(items) => items.iter().collect(),
        _ => vec![n],
    };
    if items.is_empty() {
        cx.err(
            &n.span,
            "expect.status is empty: no response would ever be a success",
            Some(STATUS_HELP),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        let one = |v: i64| (100..=599).contains(&v).then_some(v as u16);
        let parsed: Option<Vec<u16>> = match &item.v {
            V::Int(i) => one(*i).map(|s| vec![s]),
            V::Str(s) => match s.trim() {
                c if c.len() == 3 && c.ends_with("xx") => match c[..1].parse::<u16>() {
                    Ok(k @ 1..=5) => Some((k * 100..k * 100 + 100).collect()),
                    _ => None,
                },
                c => c.parse::<i64>().ok().and_then(one).map(|s| vec![s]),
            },
            _ => None,
        };
        match parsed {
            Some(v) => out.extend(v),
            None => {
                ok = false;
                let shown = match &item.v {
                    V::Str(s) => format!("\"{s}\""),
                    V::Int(i) => i.to_string(),
                    _ => item.type_name().to_string(),
                };
                cx.err(
                    &item.span,
                    &format!("{shown} is not an HTTP status"),
                    Some(STATUS_HELP),
                );
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    ok.then_some(out)
}

fn json_check(cx: &mut Ctx<'_>, n: &Node) -> Option<JsonCheck> {
    let t = cx.table(n, "expect.json")?;
    t.check_keys(cx, keys::EXPECT_JSON, "in expect.json");
    let path = t.required(cx, "path").and_then(|p| {
        let s = cx.string(p, "expect.json path")?;
        values::json_path(&s).map_err(|b| cx.bad(p, b)).ok()
    });
    let equals = match t.get("equals") {
        Some(e) => plain_json(cx, e).map(Some),
        None => Some(None),
    };
    Some(JsonCheck {
        path: path?,
        equals: equals?,
    })
}

/// A plain JSON value (no templates) from a scenario value.
fn plain_json(cx: &mut Ctx<'_>, n: &Node) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match &n.v {
        V::Str(s) => Value::String(s.clone()),
        V::Int(i) => Value::from(*i),
        V::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(num) => Value::Number(num),
            None => {
                cx.err(&n.span, "JSON has no NaN or infinity", None);
                return None;
            }
        },
        V::Bool(b) => Value::Bool(*b),
        V::Datetime => {
            cx.err(
                &n.span,
                "a date-time in expect.json equals",
                Some("JSON has no date type: write it as a string"),
            );
            return None;
        }
        V::Array(items) => {
            let v: Vec<_> = items.iter().map(|i| plain_json(cx, i)).collect();
            Value::Array(v.into_iter().collect::<Option<_>>()?)
        }
        V::Table(entries) => {
            let v: Vec<_> = entries
                .iter()
                .map(|e| plain_json(cx, &e.node).map(|j| (e.key.clone(), j)))
                .collect();
            Value::Object(v.into_iter().collect::<Option<_>>()?)
        }
    })
}
