//! A small JSON parser that keeps byte spans, for scenarios written as JSON.
//!
//! serde_json gives no spans for values, and every diagnostic must name line and column, so JSON
//! scenarios are read here into the same [`Node`] tree as TOML. Strict RFC 8259 (no comments, no
//! trailing commas); nesting is capped at [`MAX_DEPTH`] so hostile input cannot overflow the
//! stack. A JSON syntax error stops parsing: only the first one is reported.

use super::node::{Entry, Node, SyntaxError, V};

/// Deeper documents are rejected (a scenario needs about 6 levels).
pub const MAX_DEPTH: usize = 64;

pub fn parse(text: &str) -> Result<Node, Vec<SyntaxError>> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let r = (|| {
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i < p.s.len() {
            return Err(p.err(p.i..p.i + 1, "unexpected text after the JSON document"));
        }
        Ok(v)
    })();
    r.map_err(|e| vec![e])
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

type R<T> = Result<T, SyntaxError>;

impl Parser<'_> {
    fn err(&self, span: std::ops::Range<usize>, m: &str) -> SyntaxError {
        SyntaxError {
            span: span.start.min(self.s.len())..span.end.min(self.s.len()),
            message: m.to_string(),
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> R<Node> {
        if depth > MAX_DEPTH {
            return Err(self.err(
                self.i..self.i + 1,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let start = self.i;
        let v = match self.peek() {
            None => return Err(self.err(start..start, "expected a JSON value, found the end")),
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => V::Str(self.string()?),
            Some(b't') => self.word("true", V::Bool(true))?,
            Some(b'f') => self.word("false", V::Bool(false))?,
            Some(b'n') => {
                self.word("null", V::Bool(false))?;
                return Err(self.err(
                    start..self.i,
                    "null is not accepted in a scenario; leave the key out instead",
                ));
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.err(start..start + 1, "expected a JSON value")),
        };
        Ok(Node {
            span: start..self.i,
            v,
        })
    }

    fn word(&mut self, w: &str, v: V) -> R<V> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(self.err(self.i..self.i + 1, "expected a JSON value"))
        }
    }

    fn object(&mut self, depth: usize) -> R<V> {
        self.i += 1;
        let mut entries: Vec<Entry> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(V::Table(entries));
        }
        loop {
            self.ws();
            let ks = self.i;
            if self.peek() != Some(b'"') {
                return Err(self.err(ks..ks + 1, "expected a \"key\" in double quotes"));
            }
            let key = self.string()?;
            let key_span = ks..self.i;
            if entries.iter().any(|e| e.key == key) {
                return Err(self.err(key_span, &format!("duplicate key `{key}`")));
            }
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err(self.i..self.i + 1, "expected `:` after the key"));
            }
            self.i += 1;
            self.ws();
            let node = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                key_span,
                node,
            });
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(V::Table(entries));
                }
                _ => return Err(self.err(self.i..self.i + 1, "expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> R<V> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(V::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(V::Array(items));
                }
                _ => return Err(self.err(self.i..self.i + 1, "expected `,` or `]`")),
            }
        }
    }

    fn string(&mut self) -> R<String> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err(start..start + 1, "unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let esc = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    match esc {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => out.push(self.unicode_escape()?),
                        _ => return Err(self.err(
                            self.i - 2..self.i,
                            "invalid escape; accepted: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                        )),
                    }
                }
                0..=0x1f => {
                    return Err(self.err(
                        self.i..self.i + 1,
                        "control character in a string (write it as an escape, e.g. \\n)",
                    ))
                }
                _ => {
                    // Copy one whole UTF-8 character (the text is valid UTF-8).
                    let rest = &self.text[self.i..];
                    let ch = rest.chars().next().unwrap_or('\u{fffd}');
                    out.push(ch);
                    self.i += ch.len_utf8().max(1);
                }
            }
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let at = self.i;
        let h = self
            .s
            .get(at..at + 4)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err(at - 2..at + 4, "expected 4 hex digits after \\u"))?;
        self.i += 4;
        Ok(h)
    }

    fn unicode_escape(&mut self) -> R<char> {
        let at = self.i - 2;
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                return Err(self.err(at..self.i, "unpaired surrogate in \\u escape"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err(at..self.i, "unpaired surrogate in \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err(at..self.i, "invalid \\u escape"))
    }

    fn number(&mut self) -> R<V> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - s
        };
        let int_start = self.i;
        if digits(self) == 0 {
            return Err(self.err(start..self.i + 1, "invalid number"));
        }
        if self.s[int_start] == b'0' && self.i - int_start > 1 {
            return Err(self.err(start..self.i, "numbers may not have leading zeros"));
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            float = true;
            if digits(self) == 0 {
                return Err(self.err(start..self.i, "expected digits after `.`"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err(start..self.i, "expected digits in the exponent"));
            }
        }
        let t = &self.text[start..self.i];
        if !float {
            if let Ok(n) = t.parse::<i64>() {
                return Ok(V::Int(n));
            }
        }
        Ok(V::Float(t.parse().unwrap_or(f64::INFINITY)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_spans() {
        let n = parse(r#"{"a": [1, 2.5, "x\u00e9"], "b": true}"#).unwrap();
        let V::Table(es) = &n.v else { panic!() };
        assert_eq!(es[0].key, "a");
        assert_eq!(es[0].key_span, 1..4);
        let V::Array(items) = &es[0].node.v else {
            panic!()
        };
        assert!(matches!(items[0].v, V::Int(1)));
        assert!(matches!(items[2].v, V::Str(ref s) if s == "xé"));
        assert_eq!(items[1].span, 10..13);
    }

    #[test]
    fn rejects_without_panicking() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "\"\\u12\"",
            "01",
            "-",
            "1e",
            "{\"a\":1}x",
            "nul",
            "\"\\ud800\"",
            "{\"a\":1,\"a\":2}",
            "\"\u{1}\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = "[".repeat(1_000_000);
        let e = parse(&deep).unwrap_err();
        assert!(e[0].message.contains("nesting"), "{}", e[0].message);
    }
}
