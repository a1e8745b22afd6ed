//! The spanned document tree both input formats are read into before validation.
//!
//! TOML (through `toml`'s spanned `DeTable` parser) and JSON (through [`super::json`]) both become
//! a [`Node`] tree in which every value and every key carries its byte span in the source text.
//! The validator only ever sees this tree, so every rule is written once and every diagnostic can
//! name file:line:column whatever the format. Table entries keep their order in the file.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A value and where it is in the source text (byte offsets).
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Range<usize>,
    pub v: V,
}

#[derive(Debug, Clone)]
pub enum V {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// TOML date/times: never valid in a scenario, kept only to say so precisely.
    Datetime,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub node: Node,
}

impl Node {
    /// The type's name as a user would say it, for "expected X, found Y".
    pub fn type_name(&self) -> &'static str {
        match self.v {
            V::Str(_) => "a string",
            V::Int(_) => "an integer",
            V::Float(_) => "a float",
            V::Bool(_) => "a boolean",
            V::Datetime => "a date-time",
            V::Array(_) => "an array",
            V::Table(_) => "a table",
        }
    }
}

/// A syntax error from either format: a message and a byte span.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub span: Range<usize>,
    pub message: String,
}

/// Parse TOML text into a tree, or every syntax error the parser could recover past.
pub fn from_toml(text: &str) -> Result<Node, Vec<SyntaxError>> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| SyntaxError {
                span: e.span().unwrap_or(0..0),
                message: tidy_toml_message(e.message()),
            })
            .collect());
    }
    let span = root.span();
    Ok(Node {
        // The document's span is the whole text: a missing top-level key points at line 1.
        span: 0..span.end.max(text.len()).min(text.len()),
        v: V::Table(table(root.get_ref())),
    })
}

fn table(t: &DeTable<'_>) -> Vec<Entry> {
    t.iter()
        .map(|(k, v)| Entry {
            key: k.get_ref().to_string(),
            key_span: k.span(),
            node: value(v.get_ref(), v.span()),
        })
        .collect()
}

/// Depth is bounded by the TOML parser's own recursion limit (80), so recursion here is safe.
fn value(v: &DeValue<'_>, span: Range<usize>) -> Node {
    let v = match v {
        DeValue::String(s) => V::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => V::Int(n),
            // Out of i64 range: keep it as a float so the range check reports it.
            Err(_) => V::Float(f64::INFINITY),
        },
        DeValue::Float(f) => V::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => V::Bool(*b),
        DeValue::Datetime(_) => V::Datetime,
        DeValue::Array(a) => V::Array(a.iter().map(|e| value(e.get_ref(), e.span())).collect()),
        DeValue::Table(t) => V::Table(table(t)),
    };
    Node { span, v }
}

/// The toml parser's messages are good; make the first letter lower-case to match ours.
fn tidy_toml_message(m: &str) -> String {
    let m = m.trim().trim_end_matches('.');
    let mut c = m.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => "invalid TOML".to_string(),
    }
}

/// Byte offset → 1-based (line, column in characters), plus the line's text.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// (line, column, line text, width of the span on that line in characters, at least 1).
    pub fn locate(&self, span: &Range<usize>) -> (usize, usize, &'a str, usize) {
        let at = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= at).max(1);
        let start = self.starts[line - 1];
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line_text = self.text[start..end].trim_end_matches('\r');
        let column = self.text[start..at].chars().count() + 1;
        let span_end = floor_char_boundary(self.text, span.end.clamp(at, end.max(at)));
        let width = self.text[at..span_end].chars().count().max(1);
        (line, column, line_text, width)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns_in_characters() {
        let t = "a = 1\nbé = \"x\"\n";
        let ix = LineIndex::new(t);
        assert_eq!(ix.locate(&(0..1)), (1, 1, "a = 1", 1));
        let at = t.find("\"x\"").unwrap_or(0);
        assert_eq!(ix.locate(&(at..at + 3)), (2, 6, "bé = \"x\"", 3));
        // Past the end: the last (empty) line, never a panic.
        assert_eq!(ix.locate(&(999..1000)).0, 3);
    }

    #[test]
    fn toml_keeps_spans_and_order() {
        let n = from_toml("z = 1\na = \"s\"\n").unwrap_or_else(|_| unreachable!());
        let V::Table(es) = n.v else { unreachable!() };
        assert_eq!(es[0].key, "z");
        assert_eq!(es[1].key, "a");
        assert_eq!(es[1].node.span, 10..13);
    }
}
