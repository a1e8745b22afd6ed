//! `[slo]`: objectives per window, over all requests or per request name.
//!
//! ```toml
//! [slo]
//! whole = ["p99 < 800ms", "errors < 2%"]
//! "during:zone-a-down" = ["p99 < 2s"]
//! "create-note" = { whole = ["p95 < 500ms"] }
//! ```

use super::keys;
use super::Ctx;
use crate::scenario::model::{Metric, Objective, SloSpec, Trim, Window, JOURNEY_PREFIX};
use crate::scenario::node::{Entry, Node, V};
use crate::scenario::values;

pub(super) fn slo(
    cx: &mut Ctx<'_>,
    n: &Node,
    faults: &[String],
    requests: &[String],
    journeys: &[String],
) -> SloSpec {
    let mut objectives = Vec::new();
    let mut allow_insufficient = false;
    let Some(t) = cx.table(n, "[slo]") else {
        return SloSpec {
            objectives,
            allow_insufficient,
        };
    };
    for e in t.entries {
        if e.key == "recovery" {
            recovery(cx, &e.node, faults, None, &mut objectives);
            continue;
        }
        if e.key == "insufficient_data" {
            match cx.string(&e.node, "insufficient_data").as_deref() {
                Some("fail") => {}
                Some("allow") => allow_insufficient = true,
                Some(other) => cx.err(
                    &e.node.span,
                    &format!("insufficient_data = \"{other}\" is not a policy"),
                    Some("\"fail\" (the default: an SLO without enough data to judge fails the run) or \"allow\" (reported, not failing)"),
                ),
                None => {}
            }
            continue;
        }
        if let Some(name) = e.key.strip_prefix(JOURNEY_PREFIX) {
            journey(cx, e, name, faults, journeys, &mut objectives);
            continue;
        }
        if requests.contains(&e.key) {
            let Some(per) = cx.table(&e.node, &format!("SLOs of request `{}`", e.key)) else {
                continue;
            };
            for w in per.entries {
                if w.key == "recovery" {
                    recovery(cx, &w.node, faults, Some(&e.key), &mut objectives);
                    continue;
                }
                if let Some(window) = window(cx, w, faults, &[]) {
                    list(cx, &w.node, &window, Some(&e.key), &mut objectives);
                }
            }
        } else if let Some(window) = window(cx, e, faults, requests) {
            list(cx, &e.node, &window, None, &mut objectives);
        }
    }
    SloSpec {
        objectives,
        allow_insufficient,
    }
}

const WINDOW_HELP: &str = "windows: whole, baseline (before the first fault), \"during:<fault>\", \"after:<fault>\", data (lost_writes and rpo, judged after the run), any but data trimmed as \"baseline[10s..]\"; or a request name holding its own windows";

/// A window key, optionally trimmed: `baseline`, `"during:f"`, `"baseline[10s..]"`.
fn window(
    cx: &mut Ctx<'_>,
    e: &Entry,
    faults: &[String],
    requests: &[String],
) -> Option<(Window, Option<Trim>)> {
    let k = e.key.as_str();
    let Some((base, rest)) = k.split_once('[').filter(|_| k.ends_with(']')) else {
        return base_window(cx, e, k, faults, requests).map(|w| (w, None));
    };
    let trim = match values::trim(&rest[..rest.len() - 1]) {
        Ok(t) => t,
        Err(b) => {
            cx.err(&e.key_span, &b.message, Some(&b.help));
            return None;
        }
    };
    let w = base_window(cx, e, base, faults, &[])?;
    if w == Window::Data {
        cx.err(
            &e.key_span,
            "the data window cannot be trimmed",
            Some("lost writes are counted once, after the run: use `data`"),
        );
        return None;
    }
    Some((w, Some(trim)))
}

fn base_window(
    cx: &mut Ctx<'_>,
    e: &Entry,
    k: &str,
    faults: &[String],
    requests: &[String],
) -> Option<Window> {
    if keys::SLO_LATER.contains(&k) {
        cx.err(
            &e.key_span,
            &format!("`{k}` SLOs are not supported yet"),
            Some("not supported yet"),
        );
        return None;
    }
    match k {
        "whole" => return Some(Window::Whole),
        "baseline" => return Some(Window::Baseline),
        "data" => return Some(Window::Data),
        _ => {}
    }
    let phase = k
        .strip_prefix("during:")
        .map(|f| (f, true))
        .or_else(|| k.strip_prefix("after:").map(|f| (f, false)));
    if let Some((fault, during)) = phase {
        if faults.iter().any(|f| f == fault) {
            return Some(if during {
                Window::During(fault.to_string())
            } else {
                Window::After(fault.to_string())
            });
        }
        let hint = super::did_you_mean(fault, faults.iter().map(String::as_str))
            .map(|f| format!("did you mean `{f}`? "))
            .unwrap_or_default();
        let known = if faults.is_empty() {
            "this scenario has no faults".to_string()
        } else {
            format!("faults: {}", faults.join(", "))
        };
        cx.err(
            &e.key_span,
            &format!("SLO window `{k}` names no fault of this scenario"),
            Some(&format!("{hint}{known}")),
        );
        return None;
    }
    let mut candidates: Vec<String> = keys::SLO_WINDOWS.iter().map(|s| s.to_string()).collect();
    candidates.extend(faults.iter().map(|f| format!("during:{f}")));
    candidates.extend(faults.iter().map(|f| format!("after:{f}")));
    candidates.extend(requests.iter().cloned());
    let hint = super::did_you_mean(k, candidates.iter().map(String::as_str))
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default();
    cx.err(
        &e.key_span,
        &format!("unknown SLO window `{k}`"),
        Some(&format!("{hint}{WINDOW_HELP}")),
    );
    None
}

const JOURNEY_HELP: &str = "a journey's SLOs are judged on its iterations (its steps' time without think time): \"failed < 1%\" (iterations that ended at a failed step), \"p95 < 3s\", \"max < 10s\"";

/// `"journey:NAME" = ["failed < 1%", "p95 < 3s"]` (over the whole run) or
/// `"journey:NAME" = { "during:f" = [...], ... }` (windows as a request's).
fn journey(
    cx: &mut Ctx<'_>,
    e: &Entry,
    name: &str,
    faults: &[String],
    journeys: &[String],
    out: &mut Vec<Objective>,
) {
    if !journeys.iter().any(|j| j == name) {
        let hint = super::did_you_mean(name, journeys.iter().map(String::as_str))
            .map(|j| format!("did you mean `{JOURNEY_PREFIX}{j}`? "))
            .unwrap_or_default();
        let known = if journeys.is_empty() {
            "this scenario has no [[users.journeys]]".to_string()
        } else {
            format!("journeys: {}", journeys.join(", "))
        };
        cx.err(
            &e.key_span,
            &format!("SLOs for journey `{name}`, which is no journey of this scenario"),
            Some(&format!("{hint}{known}")),
        );
        return;
    }
    if let V::Array(_) = &e.node.v {
        list(cx, &e.node, &(Window::Whole, None), Some(&e.key), out);
        return;
    }
    let Some(per) = cx.table(&e.node, &format!("SLOs of journey `{name}`")) else {
        return;
    };
    for w in per.entries {
        if w.key == "recovery" || w.key == "data" {
            cx.err(
                &w.key_span,
                &format!("a journey has no `{}` SLOs", w.key),
                Some(JOURNEY_HELP),
            );
            continue;
        }
        if let Some(window) = window(cx, w, faults, &[]) {
            list(cx, &w.node, &window, Some(&e.key), out);
        }
    }
}

fn list(
    cx: &mut Ctx<'_>,
    n: &Node,
    (window, trim): &(Window, Option<Trim>),
    request: Option<&str>,
    out: &mut Vec<Objective>,
) {
    let journey = request.is_some_and(|r| r.starts_with(JOURNEY_PREFIX));
    let label = match trim {
        Some(t) => format!("{window}[{}]", t.text),
        None => window.to_string(),
    };
    let Some(items) = cx.array(n, &format!("SLOs of window `{label}`")) else {
        return;
    };
    for item in items {
        let Some(text) = cx.string(item, "an SLO") else {
            continue;
        };
        // A journey's `failed` is its iterations' error rate.
        let parsed = match text.trim().strip_prefix("failed") {
            Some(rest) if journey => values::slo_expr(&format!("errors{rest}")),
            _ => values::slo_expr(&text),
        };
        if journey
            && !matches!(
                parsed,
                Ok((
                    Metric::Latency(_) | Metric::MaxLatency | Metric::Errors,
                    _,
                    _
                )) | Err(_)
            )
        {
            cx.err(
                &item.span,
                &format!("`{}` is no SLO of a journey", text.trim()),
                Some(JOURNEY_HELP),
            );
            continue;
        }
        match parsed {
            Ok((metric, _, _)) if metric.is_data() != (*window == Window::Data) => {
                let help = if metric == Metric::LostWrites {
                    "lost writes are counted after the run, once: put it under `data = [\"lost_writes == 0\"]`"
                } else if metric == Metric::Rpo {
                    "a restore's RPO is measured on the read-back after the run: put it under `data = [\"rpo < 5m\"]`"
                } else {
                    "the data window holds lost_writes and rpo only; put latency and error SLOs under whole, baseline, during:<fault> or after:<fault>"
                };
                cx.err(
                    &item.span,
                    &format!("`{}` does not belong in window `{label}`", text.trim()),
                    Some(help),
                );
            }
            Ok((metric, op, bound)) => out.push(Objective {
                text: text.trim().to_string(),
                window: window.clone(),
                trim: trim.clone(),
                request: request.map(str::to_string),
                metric,
                op,
                bound,
            }),
            Err(b) => cx.bad(item, b),
        }
    }
}

const RECOVERY_HELP: &str = "recovery = { \"<fault>\" = \"< 30s\" }: time from the fault's injection until errors and p99 are back within the baseline for 5 s";

/// `recovery = { "zone-a-down" = "< 30s" }`.
fn recovery(
    cx: &mut Ctx<'_>,
    n: &Node,
    faults: &[String],
    request: Option<&str>,
    out: &mut Vec<Objective>,
) {
    let Some(t) = cx.table(n, "recovery") else {
        return;
    };
    for e in t.entries {
        if !faults.contains(&e.key) {
            let hint = super::did_you_mean(&e.key, faults.iter().map(String::as_str))
                .map(|f| format!("did you mean `{f}`? "))
                .unwrap_or_default();
            cx.err(
                &e.key_span,
                &format!(
                    "recovery bound for `{}`, which is no fault of this scenario",
                    e.key
                ),
                Some(&format!("{hint}faults: {}", faults.join(", "))),
            );
            continue;
        }
        let Some(text) = cx.string(&e.node, "a recovery bound") else {
            continue;
        };
        match values::slo_expr(&format!("p50 {text}")) {
            Ok((_, op, bound)) => out.push(Objective {
                text: format!("recovery {}", text.trim()),
                window: Window::During(e.key.clone()),
                trim: None,
                request: request.map(str::to_string),
                metric: Metric::Recovery,
                op,
                bound,
            }),
            Err(_) => cx.err(
                &e.node.span,
                &format!("invalid recovery bound \"{text}\""),
                Some(RECOVERY_HELP),
            ),
        }
    }
}
