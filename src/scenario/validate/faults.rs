//! `[[faults]]`: the fault timeline. Parsed and validated here (kinds, per-kind fields, windows
//! inside the run); executed by the drivers of the sandbox issue.

use std::time::Duration;

use super::env::Got;
use super::keys;
use super::{show, Ctx};
use crate::scenario::model::{AzPart, AzParts, Count, Fault, FaultKind, KillMode, Link, Role};
use crate::scenario::node::{Node, V};
use crate::scenario::values;

/// Validated faults; a fault with errors is reported and left out. `run` is the load's length
/// when the load itself is valid (windows are checked against it).
pub(super) fn faults(cx: &mut Ctx<'_>, n: &Node, run: Option<Duration>) -> Vec<Fault> {
    let Some(items) = cx.array(n, "faults") else {
        return Vec::new();
    };
    let mut out: Vec<Fault> = Vec::new();
    for item in items {
        if let Some(f) = fault(cx, item, run, &out) {
            out.push(f);
        }
    }
    out
}

fn fault(cx: &mut Ctx<'_>, n: &Node, run: Option<Duration>, earlier: &[Fault]) -> Option<Fault> {
    let t = cx.table(n, "a fault")?;
    let name = t.required(cx, "name").and_then(|nn| {
        let name = cx.ident(nn, "fault name")?;
        if earlier.iter().any(|f| f.name == name) {
            cx.err(
                &nn.span,
                &format!("duplicate fault name \"{name}\""),
                Some("fault names are unique: SLO windows (during:<name>) refer to them"),
            );
            return None;
        }
        Some(name)
    });
    let kinds: Vec<&str> = keys::FAULT_KINDS.iter().map(|(k, _)| *k).collect();
    let kind_name = t
        .required(cx, "kind")
        .and_then(|k| cx.choice(k, "fault kind", &kinds));
    // Keys: the common ones plus the kind's own; unknown-kind faults only get the common check
    // skipped (their fields can't be judged).
    let extra = kind_name
        .as_deref()
        .and_then(|k| keys::FAULT_KINDS.iter().find(|(n, _)| *n == k))
        .map(|(_, extra)| *extra);
    if let (Some(extra), Some(k)) = (extra, kind_name.as_deref()) {
        let allowed: Vec<&str> = keys::FAULT.iter().chain(extra).copied().collect();
        t.check_keys(cx, &allowed, &format!("for fault kind `{k}`"));
    }
    let at = t
        .required(cx, "at")
        .and_then(|a| cx.duration(a, "at").map(|d| (d, a)));
    let dur = match t.get("for") {
        Some(f) => cx.duration(f, "for").and_then(|d| {
            if d.is_zero() {
                cx.err(
                    &f.span,
                    "a fault lasting 0s",
                    Some("leave `for` out to keep the fault until the end of the run"),
                );
                return None;
            }
            Some(Some((d, f)))
        }),
        None => Some(None),
    };
    // A window with an unknown end (validation without values) is checked at run time.
    let known = !at.is_some_and(|(_, a)| cx.unknown(a))
        && !matches!(dur, Some(Some((_, f))) if cx.unknown(f));
    if let (Some(run), Some((at, at_node)), Some(dur), true) = (run, at, dur, known) {
        if at >= run {
            cx.err(
                &at_node.span,
                &format!(
                    "fault starts at {} but the run lasts {}",
                    show(at),
                    show(run)
                ),
                Some(&format!(
                    "`at` is an offset from the start of the run, below {}",
                    show(run)
                )),
            );
        } else if let Some((d, f_node)) = dur {
            if at + d > run {
                cx.err(
                    &f_node.span,
                    &format!(
                        "fault window {}..{} ends after the run ({})",
                        show(at),
                        show(at + d),
                        show(run)
                    ),
                    Some(&format!(
                        "at most {} (or leave `for` out: reverted at the end of the run)",
                        show(run - at)
                    )),
                );
            }
        }
    }
    let kind = match kind_name.as_deref() {
        Some(k) => kind(cx, k, &t),
        None => None,
    };
    // A cutover's last step must come before its rollback (or the run's end), and one
    // cutover at a time: the load balancer has one set of weights.
    let every_known = !t.get("every").is_some_and(|e| cx.unknown(e));
    if let (Some(FaultKind::BlueGreen { steps, every, .. }), Some((at, at_node)), Some(dur)) =
        (&kind, at, dur)
    {
        let last = *every * (steps.len() as u32).saturating_sub(1);
        let end = dur.map(|(d, _)| at + d).or(run);
        for e in earlier {
            if !matches!(e.kind, FaultKind::BlueGreen { .. }) {
                continue;
            }
            let e_end = e.duration.map(|d| e.at + d).or(run);
            let overlap = e_end.is_none_or(|x| at < x) && end.is_none_or(|x| e.at < x);
            if overlap && known {
                cx.err(
                    &at_node.span,
                    &format!(
                        "this cutover overlaps the cutover `{}` ({}..{})",
                        e.name,
                        show(e.at),
                        e_end.map_or_else(|| "the end".to_string(), show)
                    ),
                    Some(
                        "one cutover at a time (the load balancer has one set of weights): \
                         start it after the other's `for`",
                    ),
                );
            }
        }
        if let (None, Some(run)) = (dur, run) {
            if at + last >= run && every_known && known {
                cx.err(
                    &at_node.span,
                    &format!(
                        "the cutover's last step would come at {}, but the run ends at {}",
                        show(at + last),
                        show(run)
                    ),
                    Some("an earlier `at`, fewer steps, or a shorter `every`"),
                );
            }
        }
    }
    if let (Some(FaultKind::BlueGreen { steps, every, .. }), Some(Some((d, f_node)))) = (&kind, dur)
    {
        let last = *every * (steps.len() as u32).saturating_sub(1);
        if last >= d && !cx.unknown(f_node) && every_known {
            cx.err(
                &f_node.span,
                &format!(
                    "the cutover's last step comes {} after it starts, but the fault is rolled \
                     back after {}",
                    show(last),
                    show(d)
                ),
                Some(&format!(
                    "`for` longer than {} (the last step's time), fewer steps, or a shorter \
                     `every`",
                    show(last)
                )),
            );
        }
    }
    Some(Fault {
        name: name?,
        kind: kind?,
        at: at?.0,
        duration: dur?.map(|(d, _)| d),
    })
}

fn kind(cx: &mut Ctx<'_>, k: &str, t: &super::Fields<'_>) -> Option<FaultKind> {
    let role = |cx: &mut Ctx<'_>| match t.get("role") {
        Some(r) => cx.choice(r, "role", keys::ROLES).map(|r| match r.as_str() {
            "db" => Role::Db,
            "cache" => Role::Cache,
            "lb" => Role::Lb,
            _ => Role::App,
        }),
        None => Some(Role::App),
    };
    let opt_zone = |cx: &mut Ctx<'_>| match t.get("zone") {
        Some(z) => zone(cx, z).map(Some),
        None => Some(None),
    };
    Some(match k {
        "kill-nodes" => {
            let role = role(cx);
            let count = match t.get("count") {
                Some(c) => count(cx, c),
                None => Some(Count::Nodes(1)),
            };
            let zone = opt_zone(cx);
            let mode = match t.get("mode") {
                Some(m) => cx.choice(m, "mode", keys::KILL_MODES).map(|m| {
                    if m == "stop" {
                        KillMode::Stop
                    } else {
                        KillMode::Kill
                    }
                }),
                None => Some(KillMode::Kill),
            };
            let restart = match t.get("restart") {
                Some(r) => cx.bool(r, "restart"),
                None => Some(true),
            };
            FaultKind::KillNodes {
                role: role?,
                count: count?,
                zone: zone?,
                mode: mode?,
                restart: restart?,
            }
        }
        "freeze" => {
            let role = role(cx);
            let count = match t.get("count") {
                Some(c) => count(cx, c),
                None => Some(Count::Nodes(1)),
            };
            let zone = opt_zone(cx);
            FaultKind::Freeze {
                role: role?,
                count: count?,
                zone: zone?,
            }
        }
        "command" => {
            let command = t
                .required(cx, "command")
                .and_then(|c| cx.ident(c, "command"));
            FaultKind::Command { command: command? }
        }
        "restart-nodes" => {
            let role = role(cx);
            let down_for = match t.get("down_for") {
                Some(d) => cx.duration_in(
                    d,
                    "down_for",
                    Duration::from_millis(1),
                    Duration::from_secs(3600),
                ),
                None => Some(Duration::from_secs(10)),
            };
            let zone = opt_zone(cx);
            FaultKind::RestartNodes {
                role: role?,
                down_for: down_for?,
                zone: zone?,
            }
        }
        "az-outage" => {
            let zone = t.required(cx, "zone").and_then(|z| zone(cx, z));
            let parts = match t.get("parts") {
                Some(p) => az_parts(cx, p),
                None => Some(AzParts::default()),
            };
            FaultKind::AzOutage {
                zone: zone?,
                parts: parts?,
            }
        }
        "db-failover" => FaultKind::DbFailover {},
        FaultKind::RESTORE => FaultKind::DbRestore {},
        FaultKind::BLUE_GREEN | "cutover" => blue_green(cx, t)?,
        "cache-partition" => FaultKind::CachePartition {},
        "cache-failover" => FaultKind::CacheFailover {},
        "latency" => {
            let link = t.required(cx, "link").and_then(|l| {
                cx.choice(l, "link", keys::LINKS).map(|l| {
                    if l == "app-cache" {
                        Link::AppCache
                    } else {
                        Link::AppDb
                    }
                })
            });
            let max = Duration::from_secs(600);
            let delay = t
                .required(cx, "delay")
                .and_then(|d| cx.duration_in(d, "delay", Duration::ZERO, max));
            let jitter = match t.get("jitter") {
                Some(j) => cx.duration_in(j, "jitter", Duration::ZERO, max),
                None => Some(Duration::ZERO),
            };
            FaultKind::Latency {
                link: link?,
                delay: delay?,
                jitter: jitter?,
            }
        }
        _ => return None,
    })
}

/// A cutover's `steps` (whole percentages of the requests for green, increasing, default
/// `["100%"]`), `every` (between steps, default 30s) and `drain` (default true).
fn blue_green(cx: &mut Ctx<'_>, t: &super::Fields<'_>) -> Option<FaultKind> {
    let help = "whole percentages of the requests for green from 1% to 100%, increasing, \
                e.g. steps = [\"10%\", \"50%\", \"100%\"]";
    let steps = match t.get("steps") {
        None => Some(vec![100]),
        Some(n) => cx.array(n, "steps").and_then(|items| {
            if items.is_empty() {
                cx.err(
                    &n.span,
                    "steps is empty: the cutover would move nothing",
                    Some(help),
                );
                return None;
            }
            let mut out = Vec::new();
            for it in items {
                let pct = match &it.v {
                    V::Str(s) => values::percent(s)
                        .ok()
                        .map(|p| p * 100.0)
                        .filter(|p| (1.0..=100.0).contains(p) && (p - p.round()).abs() < 1e-6),
                    _ => None,
                };
                let Some(pct) = pct else {
                    let found = match &it.v {
                        V::Str(s) => format!("\"{s}\""),
                        _ => it.type_name().to_string(),
                    };
                    cx.err(&it.span, &format!("invalid step {found}"), Some(help));
                    return None;
                };
                let pct = pct.round() as u32;
                if out.last().is_some_and(|l| *l >= pct) {
                    cx.err(
                        &it.span,
                        &format!("step {pct}% does not follow a smaller one"),
                        Some(help),
                    );
                    return None;
                }
                out.push(pct);
            }
            Some(out)
        }),
    };
    let every = match t.get("every") {
        Some(e) => cx.duration_in(
            e,
            "every",
            Duration::from_millis(1),
            Duration::from_secs(3600),
        ),
        None => Some(Duration::from_secs(30)),
    };
    let drain = match t.get("drain") {
        Some(d) => cx.bool(d, "drain"),
        None => Some(true),
    };
    Some(FaultKind::BlueGreen {
        steps: steps?,
        every: every?,
        drain: drain?,
    })
}

/// `parts = ["network", "instances"]`: some of an AZ outage's parts, at least one.
fn az_parts(cx: &mut Ctx<'_>, n: &Node) -> Option<AzParts> {
    let items = cx.array(n, "parts")?;
    if items.is_empty() {
        cx.err(
            &n.span,
            "parts is empty: the outage would do nothing",
            Some(&format!(
                "some of {} (leave `parts` out for all of them)",
                AzPart::NAMES.join(", ")
            )),
        );
        return None;
    }
    let mut parts = Vec::new();
    let mut ok = true;
    for item in items {
        match cx.choice(item, "part", &AzPart::NAMES) {
            Some(p) => parts.extend(AzPart::ALL.into_iter().filter(|x| x.name() == p)),
            None => ok = false,
        }
    }
    ok.then(|| AzParts::of(parts))
}

/// A zone name, one of the target's zones when they are known.
fn zone(cx: &mut Ctx<'_>, n: &Node) -> Option<String> {
    let z = cx.ident(n, "zone")?;
    let Some(target) = cx.input.zones else {
        return Some(z);
    };
    if target.zones.contains(&z) {
        return Some(z);
    }
    let same_but_case = target.zones.iter().find(|k| k.eq_ignore_ascii_case(&z));
    let hint = same_but_case
        .map(String::as_str)
        .or_else(|| super::did_you_mean(&z, target.zones.iter().map(String::as_str)))
        .map(|k| format!("did you mean \"{k}\"? "))
        .unwrap_or_default();
    cx.err(
        &n.span,
        &format!("{} has no zone \"{z}\"", target.target),
        Some(&format!("{hint}its zones: {}", target.zones.join(", "))),
    );
    None
}

/// `count = 2` (nodes) or `count = "50%"` (of the role's nodes, rounded up).
fn count(cx: &mut Ctx<'_>, n: &Node) -> Option<Count> {
    let help =
        "a number of nodes (count = 2) or a percentage of the role's nodes (count = \"50%\")";
    let n = match cx.numeric(n, "count") {
        Got::Node(n) => n,
        Got::Unknown => return Some(Count::Nodes(1)),
        Got::Failed => return None,
    };
    let n = n.as_ref();
    match &n.v {
        V::Int(_) => cx
            .int(n, "count", 1, 10_000)
            .map(|c| Count::Nodes(c as u32)),
        V::Str(s) => match values::percent(s) {
            Ok(p) if p > 0.0 && p <= 1.0 => Some(Count::Percent(p * 100.0)),
            _ => {
                cx.err(&n.span, &format!("invalid count \"{s}\""), Some(help));
                None
            }
        },
        _ => {
            cx.err(
                &n.span,
                &format!(
                    "count: expected a number or a percentage, found {}",
                    n.type_name()
                ),
                Some(help),
            );
            None
        }
    }
}
