//! What one request of the load sends and reads: method, templated path, headers and body,
//! the values it captures from a response, its durable write, and the templates all of these
//! are made of.
//!
//! A [`Template`] holds a secret (a header value from `${env:VAR}`) only as a [`Part::Secret`]:
//! its `Display` and `Serialize` must never show one — anything that prints or stores a
//! template gets `***` in its place. The load engine is the only reader of the value: it sends
//! it, and masks it from what it records.

use serde::Serialize;

use super::Expect;

#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub name: String,
    pub value: Template,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestSpec {
    pub name: String,
    pub weight: u32,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path (and query) appended to the target's base URL; may hold templates.
    pub path: Template,
    pub headers: Vec<Header>,
    pub body: Option<Body>,
    /// Values captured from a successful response's JSON body, usable by later requests as
    /// `{{name}}`.
    pub capture: Vec<Capture>,
    pub durable: Option<Durable>,
    /// What counts as a success; `None` = any status below 400.
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum Body {
    /// A JSON document whose string leaves are templates; sent with `content-type: application/json`.
    Json(JsonTemplate),
    /// A raw body (templated), sent as is.
    Text(Template),
}

/// A JSON value whose strings may hold templates.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    /// Variable name, used as `{{name}}`.
    pub name: String,
    pub path: JsonPath,
}

/// An acknowledged durable write: its id is taken from the response and read back after the run.
#[derive(Debug, Clone, Serialize)]
pub struct Durable {
    pub id: JsonPath,
    pub read_method: String,
    /// The read-back path, with `{id}` replaced by the captured id.
    pub read_path: String,
    /// `same = "$.text"`: the read-back must hold at this path what the write's JSON body
    /// held there — an id that answers with another value (reused after a split brain) is a
    /// lost write, not a found one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same: Option<JsonPath>,
}

/// A `$.a.b[0]`-style path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonPath {
    pub text: String,
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// A string with template parts, e.g. `"note {{seq}} {{uuid}}"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// `Debug` never shows a secret's value (`Secret(***)`): a scenario printed with `{:?}` in a
/// log or a panic message must not leak a token.
#[derive(Clone, PartialEq)]
pub enum Part {
    Lit(String),
    /// A value from the environment: sent as is, shown everywhere else as `***`.
    Secret(String),
    /// The logical request's sequence number (0-based, unique within the run).
    Seq,
    /// A random UUID v4.
    Uuid,
    /// A uniformly random integer in `[lo, hi]`.
    RandInt(i64, i64),
    /// A value captured from an earlier response (see [`Capture`]).
    Var(String),
}

impl Template {
    pub fn literal(s: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Lit(s.into())],
        }
    }

    /// True if rendering needs nothing but the literal text.
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Lit(_) | Part::Secret(_)))
    }

    /// Names of captured variables this template reads.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }
}

/// Shown with secrets masked: safe for logs, plans and reports.
impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.parts {
            match p {
                Part::Lit(s) => f.write_str(s)?,
                Part::Secret(_) => f.write_str("***")?,
                Part::Seq => f.write_str("{{seq}}")?,
                Part::Uuid => f.write_str("{{uuid}}")?,
                Part::RandInt(a, b) => write!(f, "{{{{rand_int({a},{b})}}}}")?,
                Part::Var(v) => write!(f, "{{{{{v}}}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Lit(s) => f.debug_tuple("Lit").field(s).finish(),
            Part::Secret(_) => f.write_str("Secret(***)"),
            Part::Seq => f.write_str("Seq"),
            Part::Uuid => f.write_str("Uuid"),
            Part::RandInt(lo, hi) => f.debug_tuple("RandInt").field(lo).field(hi).finish(),
            Part::Var(v) => f.debug_tuple("Var").field(v).finish(),
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::Part;

    #[test]
    fn debug_never_shows_a_secret() {
        let parts = vec![
            Part::Lit("Bearer ".into()),
            Part::Secret("s3cr3t-token".into()),
        ];
        let shown = format!("{parts:?}");
        assert_eq!(shown, r#"[Lit("Bearer "), Secret(***)]"#);
    }
}
