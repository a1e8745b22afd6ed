//! Rendering request templates (`{{seq}}`, `{{uuid}}`, `{{rand_int(a,b)}}`, captured
//! `{{name}}`, `${env:VAR}` secrets) into bytes on the wire, and the store of captured values.
//!
//! Captured values come from earlier responses (a request's `capture` paths); a later request
//! using `{{name}}` gets one of the most recent values, chosen at random. Each variable has its
//! own small lock, touched only by requests that capture or read that variable.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use rand::Rng;

use crate::scenario::{JsonPath, JsonTemplate, Part, PathStep, Template};

/// How many recent values are kept per captured variable.
const KEEP: usize = 1024;

/// Values captured from responses, by variable name.
#[derive(Default)]
pub struct Captures {
    vars: HashMap<String, Mutex<Ring>>,
}

#[derive(Default)]
struct Ring {
    values: Vec<String>,
    next: usize,
}

impl Captures {
    /// A store for exactly these variable names (others are ignored).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Captures {
        Captures {
            vars: names
                .into_iter()
                .map(|n| (n.to_string(), Mutex::default()))
                .collect(),
        }
    }

    pub fn put(&self, name: &str, value: String) {
        if let Some(m) = self.vars.get(name) {
            let mut r = m.lock().unwrap_or_else(|p| p.into_inner());
            if r.values.len() < KEEP {
                r.values.push(value);
            } else {
                let i = r.next;
                r.values[i] = value;
                r.next = (i + 1) % KEEP;
            }
        }
    }

    pub fn get(&self, name: &str, rng: &mut impl Rng) -> Option<String> {
        let r = self
            .vars
            .get(name)?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if r.values.is_empty() {
            None
        } else {
            Some(r.values[rng.random_range(0..r.values.len())].clone())
        }
    }
}

/// A captured variable a template needs has no value yet.
#[derive(Debug, PartialEq, Eq)]
pub struct Missing(pub String);

/// Render a template for logical request `seq`. Secrets are rendered in clear: the result goes
/// on the wire only.
pub fn render(
    t: &Template,
    seq: u64,
    rng: &mut impl Rng,
    caps: &Captures,
    out: &mut String,
) -> Result<(), Missing> {
    for p in &t.parts {
        match p {
            Part::Lit(s) | Part::Secret(s) => out.push_str(s),
            Part::Seq => {
                let _ = write!(out, "{seq}");
            }
            Part::Uuid => push_uuid(rng, out),
            Part::RandInt(a, b) => {
                let _ = write!(out, "{}", rng.random_range(*a..=*b));
            }
            Part::Var(v) => match caps.get(v, rng) {
                Some(val) => out.push_str(&val),
                None => return Err(Missing(v.clone())),
            },
        }
    }
    Ok(())
}

/// Render a JSON body template to its serialized text.
pub fn render_json(
    t: &JsonTemplate,
    seq: u64,
    rng: &mut impl Rng,
    caps: &Captures,
) -> Result<String, Missing> {
    fn value(
        t: &JsonTemplate,
        seq: u64,
        rng: &mut impl Rng,
        caps: &Captures,
    ) -> Result<serde_json::Value, Missing> {
        Ok(match t {
            JsonTemplate::Null => serde_json::Value::Null,
            JsonTemplate::Bool(b) => serde_json::Value::Bool(*b),
            JsonTemplate::Number(n) => serde_json::Value::Number(n.clone()),
            JsonTemplate::String(s) => {
                let mut out = String::new();
                render(s, seq, rng, caps, &mut out)?;
                serde_json::Value::String(out)
            }
            JsonTemplate::Array(a) => serde_json::Value::Array(
                a.iter()
                    .map(|v| value(v, seq, rng, caps))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), value(v, seq, rng, caps)?)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
    Ok(value(t, seq, rng, caps)?.to_string())
}

/// A random (v4) UUID in its canonical text form.
fn push_uuid(rng: &mut impl Rng, out: &mut String) {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{x:02x}");
    }
}

/// The value at a JSON path, if there is one.
pub fn lookup<'a>(doc: &'a serde_json::Value, path: &JsonPath) -> Option<&'a serde_json::Value> {
    let mut v = doc;
    for step in &path.steps {
        v = match step {
            PathStep::Key(k) => v.get(k)?,
            PathStep::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

/// Follow a JSON path; strings are returned bare, other scalars as their JSON text.
pub fn extract(doc: &serde_json::Value, path: &JsonPath) -> Option<String> {
    match lookup(doc, path)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn renders_every_part() {
        let t = Template {
            parts: vec![
                Part::Lit("n ".into()),
                Part::Seq,
                Part::Lit(" ".into()),
                Part::RandInt(5, 5),
                Part::Lit(" ".into()),
                Part::Uuid,
                Part::Secret("s3cret".into()),
                Part::Var("id".into()),
            ],
        };
        let caps = Captures::new(["id"]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut out = String::new();
        assert_eq!(
            render(&t, 42, &mut rng, &caps, &mut out),
            Err(Missing("id".into()))
        );
        caps.put("id", "abc".into());
        out.clear();
        render(&t, 42, &mut rng, &caps, &mut out).unwrap();
        assert!(out.starts_with("n 42 5 "), "{out}");
        assert!(out.ends_with("s3cretabc"), "{out}");
        let uuid = &out[7..43];
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        // Display masks the secret.
        assert!(t.to_string().contains("***") && !t.to_string().contains("s3cret"));
    }

    #[test]
    fn extracts_paths() {
        let doc: serde_json::Value =
            serde_json::from_str(r#"{"id": 7, "a": {"b": ["x", "y"]}}"#).unwrap();
        let p = |steps: Vec<PathStep>| JsonPath {
            text: String::new(),
            steps,
        };
        assert_eq!(
            extract(&doc, &p(vec![PathStep::Key("id".into())])),
            Some("7".into())
        );
        assert_eq!(
            extract(
                &doc,
                &p(vec![
                    PathStep::Key("a".into()),
                    PathStep::Key("b".into()),
                    PathStep::Index(1)
                ])
            ),
            Some("y".into())
        );
        assert_eq!(extract(&doc, &p(vec![PathStep::Key("zz".into())])), None);
    }
}
