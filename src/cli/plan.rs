//! `chaos plan`: the resolved timeline of a scenario as text — what will be sent when, which
//! faults at which times, which SLOs. Pure: the same scenario always prints the same plan.
//!
//! A scenario validated without some `${env:…}` value (see [`Scenario::unknown`]) holds
//! placeholders: its plan says which values are unknown and prints nothing computed from
//! numbers (no rates, times or blast radius) rather than numbers that will not be the run's.

use std::fmt::Write as _;

use crate::load::schedule;
use crate::report::plural;
use crate::scenario::{Body, Scenario, StageKind};
use crate::slo::Timeline;

/// `2 stages, 1 request, 1 fault, 3 SLOs` (`chaos check`'s line).
pub fn counts(s: &Scenario) -> String {
    let load = if s.load.is_empty() {
        "no [load]".to_string()
    } else {
        format!(
            "{}, {}",
            plural(s.load.stages.len(), "stage"),
            plural(s.load.requests.len(), "request")
        )
    };
    let mut c = format!(
        "{}: {load}, {}, {}",
        s.name,
        plural(s.faults.len(), "fault"),
        plural(s.slo.objectives.len(), "SLO")
    );
    if let Some(u) = &s.users {
        // A count computed from a placeholder is no count: none while values are unknown.
        let users = if s.unknown.is_empty() {
            format!("up to {} in ", plural(u.max_users() as usize, "user"))
        } else {
            "users in ".to_string()
        };
        let _ = write!(c, "; {users}{}", plural(u.journeys.len(), "journey"));
    }
    if !s.unknown.is_empty() {
        let _ = write!(c, "; not set: {}", unknown_names(s).join(", "));
    }
    c
}

/// The names of the unknown values, each once, in file order.
fn unknown_names(s: &Scenario) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for u in &s.unknown {
        if !names.contains(&u.name.as_str()) {
            names.push(&u.name);
        }
    }
    names
}

pub fn render(s: &Scenario) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "scenario {} — {}", s.name, s.description);
    let _ = writeln!(o, "source   {}", s.source);
    for set in &s.params.set {
        let _ = writeln!(o, "override --set {set}");
    }
    for (name, value) in &s.params.env {
        let _ = writeln!(o, "env      {name}={value}");
    }
    if !s.unknown.is_empty() {
        render_unknown(&mut o, s);
        return o;
    }
    let segs = schedule::segments(&s.load.stages);
    let total = s.duration();
    if s.load.is_empty() {
        let _ = writeln!(
            o,
            "length   {:.1}s, users only (no [load])",
            total.as_secs_f64()
        );
        if let Some(u) = &s.users {
            users(&mut o, u);
        }
        faults_and_slos(&mut o, s);
        return o;
    }
    let _ = writeln!(
        o,
        "length   {:.1}s, about {:.0} requests (peak {} req/s){}",
        total.as_secs_f64(),
        schedule::expected_total(&segs),
        s.load.peak_rps,
        if s.users.is_some() {
            " besides the users'"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "\nload (open model: sends on schedule, latency from intended send time)"
    );
    for (seg, st) in segs.iter().zip(&s.load.stages) {
        let what = match st.kind {
            StageKind::Ramp => format!("ramp {:.1} -> {:.1} req/s", seg.from_rps, seg.to_rps),
            StageKind::Hold => format!("hold {:.1} req/s", seg.to_rps),
        };
        let _ = writeln!(
            o,
            "  {:>8.1}s - {:>8.1}s  {what} ({})",
            seg.start.as_secs_f64(),
            (seg.start + seg.duration).as_secs_f64(),
            st.rate_text
        );
    }
    let c = &s.load.client;
    let r = &c.retry;
    let _ = writeln!(
        o,
        "  max in flight {}, interval {:?}, timeout {:?}",
        s.load.max_in_flight, s.load.interval, c.timeout
    );
    let mut on: Vec<String> = Vec::new();
    for (flag, name) in [
        (r.on.connect, "connect"),
        (r.on.timeout, "timeout"),
        (r.on.reset, "reset"),
    ] {
        if flag {
            on.push(name.into());
        }
    }
    on.extend(r.on.statuses.iter().map(u16::to_string));
    let _ = writeln!(
        o,
        "  retry: {}, backoff {:?} (max {:?}, jitter {:?}) on [{}], budget {}",
        plural(r.attempts as usize, "attempt"),
        r.backoff,
        r.max_backoff,
        r.jitter,
        on.join(", "),
        r.budget.map_or_else(
            || "unlimited".into(),
            |b| format!("{:.0}% over {:?}", b * 100.0, r.budget_window)
        )
    );
    for h in &c.headers {
        let _ = writeln!(o, "  header {}: {}", h.name, h.value);
    }
    let total_w: u32 = s.load.requests.iter().map(|r| r.weight).sum();
    let _ = writeln!(o, "\nrequests");
    for q in &s.load.requests {
        let body = match &q.body {
            Some(Body::Json(_)) => " +json",
            Some(Body::Text(_)) => " +body",
            None => "",
        };
        let _ = writeln!(
            o,
            "  {:>5.1}%  {:<16} {} {}{body}{}",
            f64::from(q.weight) * 100.0 / f64::from(total_w.max(1)),
            q.name,
            q.method,
            q.path,
            if q.durable.is_some() {
                " (durable)"
            } else {
                ""
            }
        );
    }
    if let Some(u) = &s.users {
        users(&mut o, u);
    }
    faults_and_slos(&mut o, s);
    o
}

/// The fault timeline and the SLOs with their windows.
fn faults_and_slos(o: &mut String, s: &Scenario) {
    let tl = Timeline::of(s);
    let _ = writeln!(o, "\nfaults");
    if tl.faults.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for (f, span) in s.faults.iter().zip(&tl.faults) {
        let _ = writeln!(
            o,
            "  {:>8.1}s - {:>8.1}s  {} ({}) {}",
            span.start.as_secs_f64(),
            span.end.as_secs_f64(),
            f.name,
            f.kind.name(),
            serde_json::to_string(&f.kind).unwrap_or_default()
        );
    }
    let _ = writeln!(o, "\nSLOs");
    if s.slo.objectives.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for ob in &s.slo.objectives {
        let (a, b) = tl.span_of(ob);
        let _ = writeln!(
            o,
            "  {:<22} {:<28} {} ({:.1}s - {:.1}s)",
            ob.window_label(),
            ob.text,
            ob.request.as_deref().unwrap_or("all requests"),
            a.as_secs_f64(),
            b.as_secs_f64()
        );
    }
}

/// `[users]`: the plan of concurrent users, think time, each journey's steps.
fn users(o: &mut String, u: &crate::scenario::Users) {
    let _ = writeln!(
        o,
        "\nusers (closed model on goose: each user runs one journey, its next step after the last answer and a think time of {:?}..{:?})",
        u.think_min, u.think_max
    );
    let mut at = std::time::Duration::ZERO;
    let mut from = 0;
    for st in &u.plan {
        let what = match st.kind {
            StageKind::Ramp => format!("ramp {from} -> {} users", st.users),
            StageKind::Hold => format!("hold {} users", st.users),
        };
        let _ = writeln!(
            o,
            "  {:>8.1}s - {:>8.1}s  {what} ({})",
            at.as_secs_f64(),
            (at + st.duration).as_secs_f64(),
            st.users_text
        );
        at += st.duration;
        from = st.users;
    }
    journeys(o, u);
}

/// Each journey: its share of the users and its steps.
fn journeys(o: &mut String, u: &crate::scenario::Users) {
    let total: u32 = u.journeys.iter().map(|j| j.weight).sum();
    for j in &u.journeys {
        let steps: Vec<String> = j
            .steps
            .iter()
            .map(|q| {
                let durable = if q.durable.is_some() {
                    " (durable)"
                } else {
                    ""
                };
                format!("{} {} {}{durable}", q.name, q.method, q.path)
            })
            .collect();
        let _ = writeln!(
            o,
            "  {:>5.1}%  journey {}: {}",
            f64::from(j.weight) * 100.0 / f64::from(total.max(1)),
            j.name,
            steps.join(" → ")
        );
    }
}

/// The plan of a scenario with unknown values: which, where, and what does not depend on them.
fn render_unknown(o: &mut String, s: &Scenario) {
    let _ = writeln!(
        o,
        "\nunknown values (validated without them; `chaos run` needs them)"
    );
    for u in &s.unknown {
        let _ = writeln!(o, "  {:<16} {} at {}", u.name, u.field, u.place);
    }
    let give: Vec<String> = unknown_names(s)
        .iter()
        .map(|n| format!("--env {n}=..."))
        .collect();
    let _ = writeln!(
        o,
        "  rates, times and the faults' blast radius are not computed; pass {} (or export them) to see them",
        give.join(" ")
    );
    if !s.load.requests.is_empty() {
        let _ = writeln!(o, "\nrequests");
        for q in &s.load.requests {
            let _ = writeln!(o, "  {:<16} {} {}", q.name, q.method, q.path);
        }
    }
    if let Some(u) = &s.users {
        let _ = writeln!(o, "\nusers");
        journeys(o, u);
    }
    let _ = writeln!(o, "\nfaults");
    if s.faults.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for f in &s.faults {
        let _ = writeln!(o, "  {} ({})", f.name, f.kind.name());
    }
    let _ = writeln!(o, "\nSLOs");
    if s.slo.objectives.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for ob in &s.slo.objectives {
        let _ = writeln!(
            o,
            "  {:<22} {:<28} {}",
            ob.window_label(),
            ob.text,
            ob.request.as_deref().unwrap_or("all requests")
        );
    }
}

/// `chaos plan` of one scenario on target `t`: the timeline, then the run plan — every fault
/// resolved through the target's driver, exactly as `chaos run` builds it (after a blank line if
/// an earlier plan was printed). Returns the exit code and whether a plan was printed.
pub async fn plan_one(
    arg: &str,
    t: &crate::target::TargetFile,
    time_scale: f64,
    skip_faults: bool,
    p: &crate::scenario::Params,
    after: bool,
) -> (i32, bool) {
    use crate::cli::output::{error, out};
    let s = match crate::run::prepare_with(arg, time_scale, p) {
        Ok(s) => s,
        Err(e) => {
            error(&e);
            return (e.exit_code(), false);
        }
    };
    for w in &s.warnings {
        crate::cli::output::err(&crate::scenario::Warning(w).to_string());
    }
    if after {
        out("");
    }
    out(&render(&s));
    if !s.unknown.is_empty() {
        // The blast radius may depend on the unknown values (a count, a zone's faults' times).
        return (0, true);
    }
    let settings = match crate::target::connect::settings_for(t, &s.sandbox) {
        Ok(x) => x,
        Err(e) => {
            error(&e);
            return (2, true);
        }
    };
    if s.faults.is_empty() {
        return (0, true);
    }
    let c = match crate::target::connect(t, &settings, &crate::target::Mode::Plan).await {
        Ok(c) => c,
        Err(e) => {
            let e = crate::run::RunError::from(e);
            error(&e);
            return (e.exit_code(), true);
        }
    };
    let built = crate::run::build(&s, &c, skip_faults).await;
    c.close(None).await;
    match built {
        Ok(plan) => {
            out(plan.render().trim_end_matches('\n'));
            (0, true)
        }
        Err(e) => {
            let e = crate::run::RunError::from(e);
            error(&e);
            (e.exit_code(), true)
        }
    }
}
