//! Templates in request paths, headers and bodies (`{{seq}}`, `{{uuid}}`, `{{rand_int(a,b)}}`,
//! `{{<captured>}}`), and `${env:NAME}` substitution in them and in numeric fields.
//!
//! Environment values reach a template only as [`Part::Secret`] parts, and never where they
//! could leak into a report (a path): this module must never put one in a literal part. It
//! reads no environment itself; the caller's resolver answers every `${env:…}`.

use super::{bad, Bad};
use crate::scenario::model::{Part, Template};

pub const TEMPLATE_HELP: &str = "templates: {{seq}}, {{uuid}}, {{rand_int(a,b)}}, {{<captured name>}}; environment values: ${env:NAME} or ${env:NAME:-default}";

/// Answers one `${env:NAME}` reference (`default` is the text after `:-`, if any): the value,
/// `Ok(None)` when it is not known (validation without values), or what is wrong.
pub type EnvResolver<'r> = dyn FnMut(&str, Option<&str>) -> Result<Option<String>, Bad> + 'r;

/// The inside of `${...}`: `env:NAME` or `env:NAME:-default` → (NAME, default).
pub fn env_ref(inner: &str) -> Result<(&str, Option<&str>), Bad> {
    let Some(rest) = inner.trim().strip_prefix("env:") else {
        return Err(bad(
            format!("unknown substitution `${{{}}}`", inner.trim()),
            "only ${env:NAME} (or ${env:NAME:-default}) is substituted (write $$ for a literal $)",
        ));
    };
    let (name, default) = match rest.split_once(":-") {
        Some((n, d)) => (n.trim(), Some(d)),
        None => (rest.trim(), None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(
            format!("invalid environment variable name `{name}`"),
            "letters, digits and _ only, e.g. ${env:STAGING_TOKEN} or ${env:PEAK_RPS:-200}",
        ));
    }
    Ok((name, default))
}

/// Replace every `${env:NAME}` / `${env:NAME:-default}` in `s` (and `$$` by `$`), for the
/// numeric and duration fields of a scenario. `Ok(None)` if some reference has no known value.
pub fn substitute(s: &str, resolve: &mut EnvResolver<'_>) -> Result<Option<String>, Bad> {
    let mut out = String::new();
    let mut known = true;
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        if let Some(after) = r.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = r.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(bad(format!("unclosed `${{` in \"{s}\""), TEMPLATE_HELP));
            };
            let (name, default) = env_ref(&after[..end])?;
            match resolve(name, default)? {
                Some(v) => out.push_str(&v),
                None => known = false,
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &r[1..];
        }
    }
    out.push_str(rest);
    Ok(known.then_some(out))
}

/// Parse a template. `env` resolves `${env:NAME}` (its value becomes a secret part: an unknown
/// value, in validation without values, an empty one); `allow_env` is false where a secret could
/// leak into a URL. Captured names are returned as [`Part::Var`] and checked by the caller, who
/// knows which names are captured.
pub fn template(s: &str, allow_env: bool, env: &mut EnvResolver<'_>) -> Result<Template, Bad> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{{") {
            let Some(end) = r.find("}}") else {
                return Err(bad(
                    format!("unclosed `{{{{` in \"{s}\""),
                    format!("close it with `}}}}`; {TEMPLATE_HELP}"),
                ));
            };
            flush(&mut lit, &mut parts);
            parts.push(template_var(r[..end].trim())?);
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix("${") {
            let Some(end) = r.find('}') else {
                return Err(bad(format!("unclosed `${{` in \"{s}\""), TEMPLATE_HELP));
            };
            let (name, default) = env_ref(&r[..end])?;
            if !allow_env {
                return Err(bad(
                    format!("`${{env:{name}}}` is not allowed here"),
                    "environment values are secrets: use them in headers or bodies, never in a path (paths appear in reports)",
                ));
            }
            let value = env(name, default)?.unwrap_or_default();
            flush(&mut lit, &mut parts);
            parts.push(Part::Secret(value));
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix("$$") {
            lit.push('$');
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut lit, &mut parts);
    Ok(Template { parts })
}

fn flush(lit: &mut String, parts: &mut Vec<Part>) {
    if !lit.is_empty() {
        parts.push(Part::Lit(std::mem::take(lit)));
    }
}

fn template_var(v: &str) -> Result<Part, Bad> {
    match v {
        "seq" => return Ok(Part::Seq),
        "uuid" => return Ok(Part::Uuid),
        _ => {}
    }
    if let Some(args) = v
        .strip_prefix("rand_int")
        .map(str::trim_start)
        .and_then(|a| a.strip_prefix('('))
        .and_then(|a| a.strip_suffix(')'))
    {
        let help = "rand_int takes two integers, lowest first: {{rand_int(1,1000)}}";
        let nums: Vec<Option<i64>> = args.split(',').map(|a| a.trim().parse().ok()).collect();
        return match nums.as_slice() {
            [Some(a), Some(b)] if a <= b => Ok(Part::RandInt(*a, *b)),
            _ => Err(bad(format!("invalid `{{{{{v}}}}}`"), help)),
        };
    }
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Ok(Part::Var(v.to_string()));
    }
    Err(bad(
        format!("invalid template `{{{{{v}}}}}`"),
        TEMPLATE_HELP,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver that requires every value, like `chaos run`: `T` is set, the rest are not.
    fn env(name: &str, default: Option<&str>) -> Result<Option<String>, Bad> {
        match (name, default) {
            ("T", _) => Ok(Some("s3cret".into())),
            (_, Some(d)) => Ok(Some(d.to_string())),
            _ => Err(bad(format!("`{name}` is not set"), "")),
        }
    }

    fn no_env(name: &str, _: Option<&str>) -> Result<Option<String>, Bad> {
        Err(bad(format!("`{name}` is not set"), ""))
    }

    #[test]
    fn templates() {
        let t = template(
            "n {{seq}}-{{ uuid }}{{rand_int(1, 9)}}{{tok}}$$",
            false,
            &mut no_env,
        )
        .unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Lit("n ".into()),
                Part::Seq,
                Part::Lit("-".into()),
                Part::Uuid,
                Part::RandInt(1, 9),
                Part::Var("tok".into()),
                Part::Lit("$".into()),
            ]
        );
        let t = template("Bearer ${env:T}", true, &mut env).unwrap();
        assert_eq!(t.to_string(), "Bearer ***");
        assert_eq!(t.parts[1], Part::Secret("s3cret".into()));
        let t = template("${env:NOPE:-dflt}", true, &mut env).unwrap();
        assert_eq!(t.parts, vec![Part::Secret("dflt".into())]);
        assert!(template("${env:T}", false, &mut env).is_err());
        assert!(template("${env:NOPE}", true, &mut env).is_err());
        assert!(template("${env:A B}", true, &mut env).is_err());
        assert!(template("${file:x}", true, &mut env).is_err());
        assert!(template("{{seq", false, &mut no_env).is_err());
        assert!(template("{{rand_int(9,1)}}", false, &mut no_env).is_err());
        assert!(template("{{a b}}", false, &mut no_env).is_err());
    }

    #[test]
    fn substitutions_in_numeric_fields() {
        let sub = |s: &str| substitute(s, &mut env);
        assert_eq!(sub("${env:T}").unwrap().as_deref(), Some("s3cret"));
        assert_eq!(sub("${env:PEAK:-200}").unwrap().as_deref(), Some("200"));
        assert_eq!(sub(" ${env:N:-4}x").unwrap().as_deref(), Some(" 4x"));
        assert_eq!(
            sub("${env:A:-1}m${env:B:-30}s").unwrap().as_deref(),
            Some("1m30s")
        );
        assert_eq!(sub("$$5").unwrap().as_deref(), Some("$5"));
        assert_eq!(sub("${env:X:-}").unwrap().as_deref(), Some(""));
        assert!(sub("${env:NOPE}").is_err());
        assert!(sub("${env:T").is_err());
        assert!(sub("${nope}").is_err());
        // Unknown (validation without values): None, not an error.
        let mut unknown = |_: &str, d: Option<&str>| Ok(d.map(str::to_string));
        assert_eq!(substitute("${env:P}", &mut unknown).unwrap(), None);
        assert_eq!(
            substitute("${env:P:-3}", &mut unknown).unwrap().as_deref(),
            Some("3")
        );
    }
}
