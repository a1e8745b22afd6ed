//! `[load]`: the rate curve, the client's behaviour (timeout, retries, headers, CA) and the
//! request mix.

use std::time::Duration;

use super::env::Got;
use super::keys;
use super::{Ctx, Fields};
use crate::scenario::model::{Client, Jitter, Load, RetryOn, RetryPolicy, Stage, StageKind};
use crate::scenario::node::{Node, V};
use crate::scenario::values;

pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The load of a file without `[load]` (only `[users]`): no requests, no stages, the defaults.
pub fn no_load() -> Load {
    Load {
        peak_rps: 0.0,
        stages: Vec::new(),
        max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        interval: DEFAULT_INTERVAL,
        client: default_client(),
        requests: Vec::new(),
        responses_by: None,
    }
}

pub(super) fn load(cx: &mut Ctx<'_>, n: &Node) -> Option<Load> {
    let t = cx.table(n, "[load]")?;
    t.check_keys(cx, keys::LOAD, "in [load]");
    let peak = t.get("peak_rps").and_then(|n| {
        let v = cx.number(n, "peak_rps")?;
        if v <= 0.0 || v > values::MAX_RPS {
            cx.err(
                &n.span,
                &format!("peak_rps {v} is out of range"),
                Some("the service's stated peak in requests per second, above 0"),
            );
            return None;
        }
        Some(v)
    });
    // A bad peak_rps is already reported; don't also report every "Nx" stage as lacking it.
    let peak_for_stages = peak.or(t.get("peak_rps").map(|_| 1.0));
    let stages = t
        .required(cx, "stages")
        .and_then(|n| stages(cx, n, peak_for_stages));
    let max_in_flight = match t.get("max_in_flight") {
        Some(n) => cx.int(n, "max_in_flight", 1, 1_000_000).map(|v| v as usize),
        None => Some(DEFAULT_MAX_IN_FLIGHT),
    };
    let interval = match t.get("interval") {
        Some(n) => cx.duration_in(
            n,
            "interval",
            Duration::from_millis(100),
            Duration::from_secs(60),
        ),
        None => Some(DEFAULT_INTERVAL),
    };
    let captures = super::request::capture_names(t.get("requests"));
    let client = match t.get("client") {
        Some(n) => client(cx, n, &captures, "[load.client]"),
        None => Some(default_client()),
    };
    let requests = t
        .required(cx, "requests")
        .and_then(|n| super::request::requests(cx, n, &captures, super::request::Kind::Load));
    let responses_by = match t.get("responses_by") {
        Some(n) => cx.string(n, "responses_by").and_then(|h| {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                cx.err(
                    &n.span,
                    &format!("responses_by: \"{h}\" is not a header name"),
                    Some("the response header to count responses by, e.g. \"x-app-version\""),
                );
                return None;
            }
            Some(Some(h.to_ascii_lowercase()))
        }),
        None => Some(None),
    };
    Some(Load {
        peak_rps: peak.unwrap_or(0.0),
        stages: stages?,
        max_in_flight: max_in_flight?,
        interval: interval?,
        client: client?,
        requests: requests?,
        responses_by: responses_by?,
    })
}

fn stages(cx: &mut Ctx<'_>, n: &Node, peak: Option<f64>) -> Option<Vec<Stage>> {
    let items = cx.array(n, "stages")?;
    if items.is_empty() {
        cx.err(
            &n.span,
            "stages is empty",
            Some("at least one stage, e.g. { hold = \"1x\", for = \"60s\" }"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match stage(cx, item, peak) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

const STAGE_HELP: &str =
    "a stage is { ramp = \"4x\", over = \"20s\" } (linear, from the previous rate) or { hold = \"4x\", for = \"90s\" }";

fn stage(cx: &mut Ctx<'_>, n: &Node, peak: Option<f64>) -> Option<Stage> {
    let (kind, (rps, rate_text), duration) =
        ramp_or_hold(cx, n, "a stage", STAGE_HELP, |cx, v| rate(cx, v, peak))?;
    Some(Stage {
        kind,
        rps,
        rate_text,
        duration,
    })
}

/// A `{ ramp = X, over = D }` or `{ hold = X, for = D }` table (`what`: "a stage"): its kind,
/// what `value` reads from X, its duration (above 0). Shared by `[load]` stages (rates) and
/// the `[users]` plan (user counts).
pub(super) fn ramp_or_hold<T>(
    cx: &mut Ctx<'_>,
    n: &Node,
    what: &str,
    help: &str,
    value: impl FnOnce(&mut Ctx<'_>, &Node) -> Option<T>,
) -> Option<(StageKind, T, Duration)> {
    let t = cx.table(n, what)?;
    let (kind, value_key, dur_key, allowed) = match (t.get("ramp"), t.get("hold")) {
        (Some(_), None) => (StageKind::Ramp, "ramp", "over", keys::RAMP),
        (None, Some(_)) => (StageKind::Hold, "hold", "for", keys::HOLD),
        (Some(_), Some(_)) => {
            cx.err(&n.span, "a stage has both `ramp` and `hold`", Some(help));
            return None;
        }
        (None, None) => {
            let all: Vec<&str> = keys::RAMP.iter().chain(keys::HOLD).copied().collect();
            t.check_keys(cx, &all, &format!("in {what}"));
            cx.err(&n.span, "a stage needs `ramp` or `hold`", Some(help));
            return None;
        }
    };
    t.check_keys(cx, allowed, &format!("in a `{value_key}` stage"));
    let v = value(cx, t.get(value_key)?);
    let duration = match t.get(dur_key) {
        Some(d_node) => cx.duration(d_node, dur_key).and_then(|d| {
            if cx.unknown(d_node) {
                cx.run_unknown = true;
            }
            if d.is_zero() {
                cx.err(&n.span, "a stage lasts 0s", Some("above 0, e.g. \"30s\""));
                return None;
            }
            Some(d)
        }),
        None => {
            cx.err(
                &n.span,
                &format!("a `{value_key}` stage needs `{dur_key}`"),
                Some(help),
            );
            None
        }
    };
    Some((kind, v?, duration?))
}

/// A rate as a string ("4x", "800/s") or a plain number of requests per second, or
/// `${env:…}` giving one.
fn rate(cx: &mut Ctx<'_>, n: &Node, peak: Option<f64>) -> Option<(f64, String)> {
    let written = match &n.v {
        V::Str(s) => s.trim().to_string(),
        _ => String::new(),
    };
    let n = match cx.numeric(n, "rate") {
        Got::Node(n) => n,
        Got::Unknown => return Some((1.0, written)),
        Got::Failed => return None,
    };
    let n = n.as_ref();
    let r = match &n.v {
        V::Str(s) => values::rate(s, peak).map(|v| (v, s.trim().to_string())),
        V::Int(_) | V::Float(_) => {
            let v = cx.number(n, "rate")?;
            values::checked_rps(v, &v.to_string()).map(|v| (v, format!("{v}/s")))
        }
        _ => {
            cx.err(
                &n.span,
                &format!(
                    "a rate: expected a string or number, found {}",
                    n.type_name()
                ),
                Some(values::RATE_HELP),
            );
            return None;
        }
    };
    r.map_err(|b| cx.bad(n, b)).ok()
}

pub fn default_client() -> Client {
    Client {
        timeout: DEFAULT_TIMEOUT,
        retry: default_retry(),
        headers: Vec::new(),
        ca_cert: None,
    }
}

pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 1,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        jitter: Jitter::Full,
        on: RetryOn {
            connect: true,
            timeout: false,
            reset: true,
            statuses: vec![502, 503, 504],
        },
        budget: None,
        budget_window: Duration::from_secs(10),
    }
}

/// A client table: `[load.client]` or `[users.client]` (`place`).
pub(super) fn client(
    cx: &mut Ctx<'_>,
    n: &Node,
    captures: &[String],
    place: &str,
) -> Option<Client> {
    let t = cx.table(n, place)?;
    t.check_keys(cx, keys::CLIENT, &format!("in {place}"));
    let d = default_client();
    let timeout = match t.get("timeout") {
        Some(n) => cx.duration_in(
            n,
            "timeout",
            Duration::from_millis(1),
            Duration::from_secs(3600),
        ),
        None => Some(d.timeout),
    };
    let retry = match t.get("retry") {
        Some(n) => retry(cx, n),
        None => Some(d.retry),
    };
    let headers = match t.get("headers") {
        Some(n) => super::request::headers(cx, n, captures),
        None => Some(Vec::new()),
    };
    let ca_cert = match t.get("ca_cert") {
        Some(n) => ca_cert(cx, n).map(Some),
        None => Some(None),
    };
    Some(Client {
        timeout: timeout?,
        retry: retry?,
        headers: headers?,
        ca_cert: ca_cert?,
    })
}

fn ca_cert(cx: &mut Ctx<'_>, n: &Node) -> Option<std::path::PathBuf> {
    let s = cx.string(n, "ca_cert")?;
    let p = std::path::PathBuf::from(&s);
    let p = match cx.input.base_dir {
        Some(base) if p.is_relative() => base.join(p),
        _ => p,
    };
    if !p.is_file() {
        cx.err(
            &n.span,
            &format!("ca_cert file {} does not exist", p.display()),
            Some("a PEM file with the extra root CA; relative paths are relative to the scenario file"),
        );
        return None;
    }
    Some(p)
}

fn retry(cx: &mut Ctx<'_>, n: &Node) -> Option<RetryPolicy> {
    let t: Fields<'_> = cx.table(n, "retry")?;
    t.check_keys(cx, keys::RETRY, "in retry");
    let d = default_retry();
    let attempts = match t.get("attempts") {
        Some(n) => cx.int(n, "attempts", 1, 10).map(|v| v as u32),
        None => Some(d.attempts),
    };
    let max = Duration::from_secs(600);
    let backoff = match t.get("backoff") {
        Some(n) => cx.duration_in(n, "backoff", Duration::ZERO, max),
        None => Some(d.backoff),
    };
    let max_backoff = match t.get("max_backoff") {
        Some(n) => cx.duration_in(n, "max_backoff", Duration::ZERO, max),
        None => Some(d.max_backoff.max(backoff.unwrap_or_default())),
    };
    let known = |cx: &Ctx<'_>, k: &str| t.get(k).is_none_or(|n| !cx.unknown(n));
    let both_known = known(cx, "backoff") && known(cx, "max_backoff");
    if let (Some(b), Some(m), Some(n)) = (backoff, max_backoff, t.get("max_backoff")) {
        if m < b && both_known {
            cx.err(
                &n.span,
                &format!(
                    "max_backoff {} is below backoff {}",
                    super::show(m),
                    super::show(b)
                ),
                Some("max_backoff caps the exponential backoff, so it is at least backoff"),
            );
        }
    }
    let jitter = match t.get("jitter") {
        Some(n) => cx
            .choice(n, "jitter", keys::JITTERS)
            .map(|j| match j.as_str() {
                "none" => Jitter::None,
                "equal" => Jitter::Equal,
                _ => Jitter::Full,
            }),
        None => Some(d.jitter),
    };
    let on = match t.get("on") {
        Some(n) => retry_on(cx, n),
        None => Some(d.on),
    };
    let budget = match t.get("budget") {
        Some(n) => budget(cx, n).map(Some),
        None => Some(None),
    };
    let budget_window = match t.get("budget_window") {
        Some(n) => cx.duration_in(
            n,
            "budget_window",
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        None => Some(d.budget_window),
    };
    Some(RetryPolicy {
        attempts: attempts?,
        backoff: backoff?,
        max_backoff: max_backoff?,
        jitter: jitter?,
        on: on?,
        budget: budget?,
        budget_window: budget_window?,
    })
}

fn budget(cx: &mut Ctx<'_>, n: &Node) -> Option<f64> {
    let help = "retries allowed per request over the budget window, as a percentage: \"20%\"";
    let n = match cx.numeric(n, "budget") {
        Got::Node(n) => n,
        Got::Unknown => return Some(0.2),
        Got::Failed => return None,
    };
    let n = n.as_ref();
    let s = match &n.v {
        V::Str(s) => s,
        _ => {
            cx.err(
                &n.span,
                &format!(
                    "budget: expected a percentage string, found {}",
                    n.type_name()
                ),
                Some(help),
            );
            return None;
        }
    };
    let v = values::percent(s).map_err(|b| cx.bad(n, b)).ok()?;
    if v > 10.0 {
        cx.err(&n.span, &format!("budget {s} is out of range"), Some(help));
        return None;
    }
    Some(v)
}

const RETRY_ON_HELP: &str =
    "outcomes to retry: \"connect\", \"timeout\", \"reset\", HTTP statuses (\"503\" or 503), or a class (\"5xx\")";

fn retry_on(cx: &mut Ctx<'_>, n: &Node) -> Option<RetryOn> {
    let items = cx.array(n, "on")?;
    let mut on = RetryOn::default();
    let mut ok = true;
    for item in items {
        let status = |v: i64| (100..=599).contains(&v).then_some(v as u16);
        let parsed: bool = match &item.v {
            V::Int(i) => status(*i).map(|s| on.statuses.push(s)).is_some(),
            V::Str(s) => match s.trim() {
                "connect" => {
                    on.connect = true;
                    true
                }
                "timeout" => {
                    on.timeout = true;
                    true
                }
                "reset" => {
                    on.reset = true;
                    true
                }
                c if c.len() == 3 && c.ends_with("xx") => match c[..1].parse::<u16>() {
                    Ok(k @ 1..=5) => {
                        on.statuses.extend(k * 100..k * 100 + 100);
                        true
                    }
                    _ => false,
                },
                c => c
                    .parse::<i64>()
                    .ok()
                    .and_then(status)
                    .map(|s| on.statuses.push(s))
                    .is_some(),
            },
            _ => false,
        };
        if !parsed {
            ok = false;
            let shown = match &item.v {
                V::Str(s) => format!("\"{s}\""),
                V::Int(i) => i.to_string(),
                _ => item.type_name().to_string(),
            };
            let hint = match &item.v {
                V::Str(s) => super::did_you_mean(s, keys::RETRY_ON_WORDS.iter().copied())
                    .map(|w| format!("did you mean \"{w}\"? "))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            cx.err(
                &item.span,
                &format!("cannot retry on {shown}"),
                Some(&format!("{hint}{RETRY_ON_HELP}")),
            );
        }
    }
    on.statuses.sort_unstable();
    on.statuses.dedup();
    ok.then_some(on)
}
