//! SLO expressions (`"p99 < 800ms"`, `"errors < 2%"`) and window trims (`baseline[10s..]`):
//! the metric, comparison and bound, each bound in the unit the judge uses (latency in µs,
//! ratios in 0..=1).
//!
//! It parses text only; it must never decide which windows or faults exist (the validator
//! knows the scenario) or evaluate an SLO against data (that is `slo`'s).

use super::{bad, duration, percent, Bad};
use crate::scenario::model::{CmpOp, Metric, Offset, Trim};

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
    "rpo",
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
        Metric::Rpo => {
            let d = duration(value).map_err(|_| {
                bad(
                    format!("`rpo` is a duration: its bound needs a unit, found \"{value}\""),
                    "e.g. \"rpo < 5m\" (how far back in time a restore's data may end)",
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
        // A ratio of exactly none needs no unit: "errors == 0".
        _ if value.trim().parse::<f64>() == Ok(0.0) => 0.0,
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
        "rpo" => Metric::Rpo,
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
    let hint = crate::scenario::validate::did_you_mean(name, METRICS.iter().copied())
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
}
