//! `[users]`: the closed model — the peak user count, the plan in multiples of it, think time,
//! the users' client and their journeys (steps validated as requests, with `{{user}}` and the
//! captures of earlier steps as variables).

use std::time::Duration;

use super::env::Got;
use super::keys;
use super::request::Kind;
use super::Ctx;
use crate::scenario::model::{Client, Journey, UserStage, Users};
use crate::scenario::node::{Node, V};

/// Most concurrent users one run may plan: goose gives each user its own HTTP client (about
/// 170 KB measured, shared/FACTS.md), so 100,000 users is already some 17 GB.
pub const MAX_USERS: i64 = 100_000;
pub const DEFAULT_THINK: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3));
/// Journey names that would read as SLO window prefixes (`during:x`) or the journey SLO key.
const RESERVED: &[&str] = &["during", "after", "journey"];

pub(super) fn users(cx: &mut Ctx<'_>, n: &Node, load_client: Option<&Client>) -> Option<Users> {
    let t = cx.table(n, "[users]")?;
    t.check_keys(cx, keys::USERS, "in [users]");
    let peak = t
        .get("peak")
        .and_then(|n| cx.int(n, "peak", 1, MAX_USERS).map(|v| v as u32));
    // A bad peak is already reported; don't also report every "Nx" count as lacking it.
    let peak_for_plan = peak.or(t.get("peak").map(|_| 1));
    let plan = t
        .required(cx, "plan")
        .and_then(|n| plan(cx, n, peak_for_plan));
    let think = match t.get("think") {
        Some(n) => think(cx, n),
        None => Some(DEFAULT_THINK),
    };
    let client = match t.get("client") {
        Some(n) => super::load::client(cx, n, &[], "[users.client]"),
        None => Some(
            load_client
                .cloned()
                .unwrap_or_else(super::load::default_client),
        ),
    };
    let journeys = t.required(cx, "journeys").and_then(|n| journeys(cx, n));
    let (think_min, think_max) = think?;
    Some(Users {
        peak: peak.unwrap_or(0),
        plan: plan?,
        think_min,
        think_max,
        client: client?,
        journeys: journeys?,
    })
}

const STAGE_HELP: &str = "a stage is { ramp = \"4x\", over = \"20s\" } (linear, from the previous count) or { hold = \"4x\", for = \"2m\" }; counts are multiples of peak (\"4x\") or users (200)";

fn plan(cx: &mut Ctx<'_>, n: &Node, peak: Option<u32>) -> Option<Vec<UserStage>> {
    let items = cx.array(n, "plan")?;
    if items.is_empty() {
        cx.err(
            &n.span,
            "plan is empty",
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

fn stage(cx: &mut Ctx<'_>, n: &Node, peak: Option<u32>) -> Option<UserStage> {
    let (kind, (users, users_text), duration) =
        super::load::ramp_or_hold(cx, n, "a plan stage", STAGE_HELP, |cx, v| {
            count(cx, v, peak)
        })?;
    Some(UserStage {
        kind,
        users,
        users_text,
        duration,
    })
}

const COUNT_HELP: &str =
    "a user count is a multiple of peak (\"4x\", \"0.5x\") or a number of users (200)";

/// A user count: `"4x"` (of `peak`), `200` or `"200"`, or `${env:…}` giving one.
fn count(cx: &mut Ctx<'_>, n: &Node, peak: Option<u32>) -> Option<(u32, String)> {
    let written = match &n.v {
        V::Str(s) => s.trim().to_string(),
        _ => String::new(),
    };
    let n = match cx.numeric(n, "users") {
        Got::Node(n) => n,
        Got::Unknown => return Some((1, written)),
        Got::Failed => return None,
    };
    let n = n.as_ref();
    let (v, text) = match &n.v {
        V::Int(i) => (*i as f64, i.to_string()),
        V::Str(s) => {
            let t = s.trim();
            let v = if let Some(m) = t.strip_suffix('x') {
                let Some(peak) = peak else {
                    cx.err(
                        &n.span,
                        &format!("users \"{s}\" is a multiple of peak, but [users] sets no peak"),
                        Some("add `peak = <the stated peak of concurrent users>` to [users], or write a number of users"),
                    );
                    return None;
                };
                m.trim().parse::<f64>().ok().map(|m| m * f64::from(peak))
            } else {
                t.parse::<u64>().ok().map(|u| u as f64)
            };
            let Some(v) = v.filter(|v| v.is_finite() && *v >= 0.0) else {
                cx.err(
                    &n.span,
                    &format!("invalid user count \"{s}\""),
                    Some(COUNT_HELP),
                );
                return None;
            };
            (v, t.to_string())
        }
        _ => {
            cx.err(
                &n.span,
                &format!(
                    "a user count: expected a string or integer, found {}",
                    n.type_name()
                ),
                Some(COUNT_HELP),
            );
            return None;
        }
    };
    let users = v.round();
    if users > MAX_USERS as f64 || users < 0.0 {
        cx.err(
            &n.span,
            &format!("{users} users is out of range"),
            Some(&format!(
                "from 0 to {MAX_USERS} concurrent users (each holds its own HTTP client)"
            )),
        );
        return None;
    }
    Some((users as u32, text))
}

fn think(cx: &mut Ctx<'_>, n: &Node) -> Option<(Duration, Duration)> {
    let t = cx.table(n, "think")?;
    t.check_keys(cx, keys::THINK, "in think");
    let max = Duration::from_secs(3600);
    let get = |cx: &mut Ctx<'_>, k: &str, d: Duration| match t.get(k) {
        Some(n) => cx.duration_in(n, k, Duration::ZERO, max),
        None => Some(d),
    };
    let lo = get(cx, "min", DEFAULT_THINK.0);
    let hi = get(
        cx,
        "max",
        lo.unwrap_or(DEFAULT_THINK.0).max(DEFAULT_THINK.1),
    );
    let known = |cx: &Ctx<'_>, k: &str| t.get(k).is_none_or(|n| !cx.unknown(n));
    if let (Some(l), Some(h)) = (lo, hi) {
        if h < l && known(cx, "min") && known(cx, "max") {
            let at = t
                .get("max")
                .or(t.get("min"))
                .map_or(n.span.clone(), |n| n.span.clone());
            cx.err(
                &at,
                &format!(
                    "think max {} is below min {}",
                    super::show(h),
                    super::show(l)
                ),
                Some("a user thinks a time drawn between min and max, so max is at least min"),
            );
            return None;
        }
    }
    Some((lo?, hi?))
}

fn journeys(cx: &mut Ctx<'_>, n: &Node) -> Option<Vec<Journey>> {
    let items = cx.array(n, "journeys")?;
    if items.is_empty() {
        cx.err(
            &n.span,
            "journeys is empty",
            Some("at least one [[users.journeys]] with a name and steps"),
        );
        return None;
    }
    let mut out: Vec<Journey> = Vec::new();
    let mut ok = true;
    for item in items {
        match journey(cx, item, &out) {
            Some(j) => out.push(j),
            None => ok = false,
        }
    }
    if ok && out.iter().map(|j| u64::from(j.weight)).sum::<u64>() == 0 {
        cx.err(
            &n.span,
            "the journey weights sum to 0: no user would ever run one",
            Some("give at least one journey a weight above 0 (the default weight is 1)"),
        );
        return None;
    }
    ok.then_some(out)
}

fn journey(cx: &mut Ctx<'_>, n: &Node, earlier: &[Journey]) -> Option<Journey> {
    let t = cx.table(n, "a journey")?;
    t.check_keys(cx, keys::JOURNEY, "in [[users.journeys]]");
    let name = t.required(cx, "name").and_then(|nn| {
        let name = cx.ident(nn, "journey name")?;
        if earlier.iter().any(|j| j.name == name) {
            cx.err(
                &nn.span,
                &format!("duplicate journey name \"{name}\""),
                Some("journey names are unique: reports and SLOs refer to journeys by name"),
            );
            return None;
        }
        if RESERVED.contains(&name.as_str()) {
            cx.err(
                &nn.span,
                &format!("journey name \"{name}\" is reserved"),
                Some(&format!(
                    "`{name}:` starts SLO keys; reserved: {}",
                    RESERVED.join(", ")
                )),
            );
            return None;
        }
        Some(name)
    });
    let weight = match t.get("weight") {
        Some(w) => cx.int(w, "weight", 0, 1_000_000).map(|v| v as u32),
        None => Some(1),
    };
    let steps = t
        .required(cx, "steps")
        .and_then(|s| super::request::requests(cx, s, &[], Kind::Step));
    Some(Journey {
        name: name?,
        weight: weight?,
        steps: steps?,
    })
}
