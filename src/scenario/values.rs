//! The small languages inside scenario strings: durations, rates, percentages, templates, JSON
//! paths and SLO expressions.
//!
//! Each parser is a pure function from text to a value or a [`Bad`] (what is wrong, and what
//! would be accepted); the validator attaches the place. Nothing here reads a file or the
//! network; `${env:VAR}` is resolved through a resolver function the caller passes.

use std::time::Duration;

use super::model::{CmpOp, JsonPath, Metric, Offset, Part, PathStep, Template, Trim};

/// What is wrong with a value, and what would be accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    pub message: String,
    pub help: String,
}

pub fn bad(message: impl Into<String>, help: impl Into<String>) -> Bad {
    Bad {
        message: message.into(),
        help: help.into(),
    }
}

pub const DURATION_HELP: &str =
    "a duration is a number with a unit: \"250ms\", \"2s\", \"1.5m\", \"1h\", \"1m30s\" (units: us, ms, s, m, h)";

/// The longest duration a scenario may name anywhere (a week; longer is surely a typo).
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// `"250ms"`, `"2s"`, `"1.5m"`, `"1m30s"`.
pub fn duration(s: &str) -> Result<Duration, Bad> {
    let t = s.trim();
    let fail = || bad(format!("invalid duration \"{s}\""), DURATION_HELP);
    if t.is_empty() {
        return Err(fail());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(fail());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| fail())?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(bad(
                    format!("duration \"{s}\" has no unit"),
                    format!("write e.g. \"{}s\" or \"{}ms\"; {DURATION_HELP}", n, n),
                ))
            }
            u => {
                return Err(bad(
                    format!("unknown duration unit `{u}` in \"{s}\""),
                    DURATION_HELP,
                ))
            }
        };
        total += n * secs;
        rest = rest[unit_len..].trim_start();
    }
    if !total.is_finite() || total > MAX_DURATION.as_secs_f64() {
        return Err(bad(
            format!("duration \"{s}\" is too long"),
            "at most 7 days (\"168h\")",
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

pub const RATE_HELP: &str = "a rate is a multiple of peak_rps (\"4x\", \"0.5x\") or requests per second (\"800/s\", \"800 rps\", or the number 800)";

/// The highest rate a stage may ask for, in requests per second.
pub const MAX_RPS: f64 = 1_000_000.0;

/// A rate: `"4x"` (times `peak`, which the caller passes if the scenario has one), `"800/s"`,
/// `"800 rps"`. Returns requests per second.
pub fn rate(s: &str, peak: Option<f64>) -> Result<f64, Bad> {
    let t = s.trim();
    let fail = || bad(format!("invalid rate \"{s}\""), RATE_HELP);
    let (num, mult) = if let Some(n) = t.strip_suffix('x') {
        let Some(peak) = peak else {
            return Err(bad(
                format!("rate \"{s}\" is a multiple of peak_rps, but [load] sets no peak_rps"),
                "add `peak_rps = <the service's stated peak>` to [load], or write the rate as \"800/s\"",
            ));
        };
        (n, peak)
    } else if let Some(n) = ["/s", "rps", "req/s"]
        .iter()
        .find_map(|suf| t.strip_suffix(suf))
    {
        (n, 1.0)
    } else {
        return Err(fail());
    };
    let n: f64 = num.trim().parse().map_err(|_| fail())?;
    checked_rps(n * mult, s)
}

pub fn checked_rps(rps: f64, shown: &str) -> Result<f64, Bad> {
    if !rps.is_finite() || rps < 0.0 {
        return Err(bad(
            format!("rate {shown} is not a non-negative number"),
            RATE_HELP,
        ));
    }
    if rps > MAX_RPS {
        return Err(bad(
            format!("rate {shown} is {rps} req/s, above the {MAX_RPS} req/s one run can schedule"),
            "split the load over several machines and merge their histograms",
        ));
    }
    Ok(rps)
}

/// `"20%"` → 0.2.
pub fn percent(s: &str) -> Result<f64, Bad> {
    let help = "a percentage, e.g. \"20%\" or \"0.5%\"";
    let Some(n) = s.trim().strip_suffix('%') else {
        return Err(bad(format!("expected a percentage, found \"{s}\""), help));
    };
    match n.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(bad(format!("invalid percentage \"{s}\""), help)),
    }
}

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

pub const PATH_HELP: &str =
    "a JSON path from the response body's root: \"$.id\", \"$.data.items[0].id\"";

/// `"$.a.b[0]"`.
pub fn json_path(s: &str) -> Result<JsonPath, Bad> {
    let fail = || bad(format!("invalid JSON path \"{s}\""), PATH_HELP);
    let mut rest = s.trim().strip_prefix('$').ok_or_else(fail)?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(fail());
            }
            steps.push(PathStep::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(fail)?;
            let idx: usize = r[..end].trim().parse().map_err(|_| fail())?;
            steps.push(PathStep::Index(idx));
            rest = &r[end + 1..];
        } else {
            return Err(fail());
        }
    }
    Ok(JsonPath {
        text: s.trim().to_string(),
        steps,
    })
}

/// The metrics an SLO expression may name, for messages and "did you mean".
pub const METRICS: &[&str] = &[
    "p50",
    "p90",
    "p95",
    "p99",
    "p99.9",
    "max",
    "errors",
    "throughput",
    "not_sent",
    "retry_rate",
    "amplification",
    "retries_exhausted",
    "lost_writes",
];

pub const SLO_HELP: &str = "an SLO is `<metric> <op> <value>`, e.g. \"p99 < 800ms\", \"errors < 2%\", \"throughput >= 99%\", \"amplification < 1.5\"; ops: < <= > >= ==";

/// `"p99 < 800ms"` → (metric, op, bound). Latency bounds are returned in µs, ratios in 0..=1.
pub fn slo_expr(s: &str) -> Result<(Metric, CmpOp, f64), Bad> {
    let t = s.trim();
    let op_at = t.find(['<', '>', '=', '!']).ok_or_else(|| {
        bad(
            format!("SLO \"{s}\" has no comparison"),
            SLO_HELP.to_string(),
        )
    })?;
    let name = t[..op_at].trim();
    let after = &t[op_at..];
    let (op, value) = [
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("==", CmpOp::Eq),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ]
    .iter()
    .find_map(|(sym, op)| after.strip_prefix(sym).map(|v| (*op, v.trim())))
    .ok_or_else(|| bad(format!("invalid comparison in SLO \"{s}\""), SLO_HELP))?;
    let metric = metric(name)?;
    let bound = match metric {
        Metric::Latency(_) | Metric::MaxLatency => {
            let d = duration(value).map_err(|_| {
                bad(
                    format!("`{name}` is a latency: its bound needs a unit, found \"{value}\""),
                    "e.g. \"p99 < 800ms\" or \"max < 2s\"",
                )
            })?;
            d.as_secs_f64() * 1e6
        }
        Metric::LostWrites => value.parse::<u64>().map(|v| v as f64).map_err(|_| {
            bad(
                format!("invalid lost_writes bound \"{value}\""),
                "a count of writes: \"lost_writes == 0\"",
            )
        })?,
        Metric::Amplification => value
            .trim_end_matches('x')
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                bad(
                    format!("invalid amplification bound \"{value}\""),
                    "attempts per request, a plain number: \"amplification < 1.5\"",
                )
            })?,
        _ => percent(value).map_err(|_| {
            let example = match value.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => format!("{}%", v * 100.0),
                Ok(v) if v.is_finite() && v >= 0.0 => format!("{v}%"),
                _ => "2%".to_string(),
            };
            bad(
                format!("`{name}` is a ratio: its bound is a percentage, found \"{value}\""),
                format!("e.g. \"{name} {} {example}\"", op.symbol()),
            )
        })?,
    };
    Ok((metric, op, bound))
}

fn metric(name: &str) -> Result<Metric, Bad> {
    Ok(match name {
        "max" => Metric::MaxLatency,
        "errors" => Metric::Errors,
        "throughput" => Metric::Throughput,
        "not_sent" => Metric::NotSent,
        "retry_rate" => Metric::RetryRate,
        "amplification" => Metric::Amplification,
        "retries_exhausted" => Metric::RetriesExhausted,
        "lost_writes" => Metric::LostWrites,
        "recovery" => {
            return Err(bad(
                "`recovery` is not an expression metric",
                "write recovery bounds as `recovery = { \"<fault>\" = \"< 30s\" }` in [slo]",
            ))
        }
        p if p.starts_with('p') => {
            let q: f64 = p[1..].parse().map_err(|_| unknown_metric(name))?;
            if !(q > 0.0 && q < 100.0) {
                return Err(bad(
                    format!("percentile `{name}` is out of range"),
                    "between p0 and p100 exclusive, e.g. p50, p99, p99.9",
                ));
            }
            Metric::Latency(q / 100.0)
        }
        _ => return Err(unknown_metric(name)),
    })
}

fn unknown_metric(name: &str) -> Bad {
    let hint = super::validate::did_you_mean(name, METRICS.iter().copied())
        .map(|m| format!("did you mean `{m}`? "))
        .unwrap_or_default();
    bad(
        format!("unknown metric `{name}`"),
        format!("{hint}metrics: {}", METRICS.join(", ")),
    )
}

pub const TRIM_HELP: &str = "a trimmed window is `<window>[from..to]`; each end empty, a duration from the window's start (\"10s\") or back from its end (\"-5s\"): \"baseline[10s..]\", \"during:f[..-5s]\", \"after:f[-30s..]\"";

/// The part between the brackets of `baseline[10s..]`: `"10s.."`, `"..-5s"`, `"5s..20s"`.
pub fn trim(s: &str) -> Result<Trim, Bad> {
    let fail = |why: &str| bad(format!("invalid window trim \"[{s}]\": {why}"), TRIM_HELP);
    let Some((a, b)) = s.split_once("..") else {
        return Err(fail("no `..`"));
    };
    let end = |t: &str| -> Result<Option<Offset>, Bad> {
        let t = t.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let (from_end, d) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let by = duration(d).map_err(|e| fail(&e.message))?;
        Ok(Some(Offset { from_end, by }))
    };
    let (from, to) = (end(a)?, end(b)?);
    if from.is_none() && to.is_none() {
        return Err(fail("it keeps the whole window; drop the brackets"));
    }
    // Ends counted the same way must not cross (mixed ends depend on the window's length and
    // are judged when the run is: an empty window is insufficient data).
    if let (Some(x), Some(y)) = (from, to) {
        let crossed = match (x.from_end, y.from_end) {
            (false, false) => x.by >= y.by,
            (true, true) => x.by <= y.by,
            _ => false,
        };
        if crossed {
            return Err(fail("it keeps nothing (its end is not after its start)"));
        }
    }
    Ok(Trim {
        text: s.trim().to_string(),
        from,
        to,
    })
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
    fn durations() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("100us").unwrap(), Duration::from_micros(100));
        for b in ["", "10", "s", "-1s", "1 parsec", "1e3s", "9999999h"] {
            assert!(duration(b).is_err(), "{b}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate("4x", Some(200.0)).unwrap(), 800.0);
        assert_eq!(rate("800/s", None).unwrap(), 800.0);
        assert_eq!(rate("800 rps", None).unwrap(), 800.0);
        assert!(rate("4x", None).unwrap_err().message.contains("peak_rps"));
        assert!(rate("fast", None).is_err());
        assert!(rate("-1/s", None).is_err());
        assert!(rate("2000000/s", None).is_err());
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

    #[test]
    fn slo_expressions() {
        assert_eq!(
            slo_expr("p99 < 800ms").unwrap(),
            (Metric::Latency(0.99), CmpOp::Lt, 800_000.0)
        );
        assert_eq!(
            slo_expr("errors<=2%").unwrap(),
            (Metric::Errors, CmpOp::Le, 0.02)
        );
        assert_eq!(
            slo_expr("amplification < 1.5").unwrap(),
            (Metric::Amplification, CmpOp::Lt, 1.5)
        );
        let e = slo_expr("p99 < 800").unwrap_err();
        assert!(e.message.contains("needs a unit"), "{e:?}");
        let e = slo_expr("erors < 2%").unwrap_err();
        assert!(e.help.contains("did you mean `errors`"), "{e:?}");
        assert!(slo_expr("errors < 0.02").is_err());
        assert!(slo_expr("p100 < 1s").is_err());
        assert!(slo_expr("errors").is_err());
        assert_eq!(
            slo_expr("lost_writes == 0").unwrap(),
            (Metric::LostWrites, CmpOp::Eq, 0.0)
        );
        assert!(slo_expr("lost_writes == 1%").is_err());
        assert!(slo_expr("recovery < 30s").is_err());
    }

    #[test]
    fn json_paths() {
        let p = json_path("$.data.items[2].id").unwrap();
        assert_eq!(
            p.steps,
            vec![
                PathStep::Key("data".into()),
                PathStep::Key("items".into()),
                PathStep::Index(2),
                PathStep::Key("id".into()),
            ]
        );
        for b in ["id", "$.", "$[x]", "$.a["] {
            assert!(json_path(b).is_err(), "{b}");
        }
    }
}
