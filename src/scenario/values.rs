//! The small languages inside scenario strings: durations, rates, percentages, templates, JSON
//! paths and SLO expressions.
//!
//! Each parser is a pure function from text to a value or a [`Bad`] (what is wrong, and what
//! would be accepted); the validator attaches the place. Nothing here reads a file or the
//! network; `${env:VAR}` is resolved through a resolver function the caller passes.
//!
//! This file holds the plain values (durations, rates, percentages, JSON paths); templates and
//! `${env:…}` substitution are in [`templates`], SLO expressions and window trims in [`slo`].

mod slo;
mod templates;

use std::time::Duration;

use super::model::{JsonPath, PathStep};

pub use slo::{slo_expr, trim};
pub use templates::{substitute, template};

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

#[cfg(test)]
mod tests {
    use super::*;

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
