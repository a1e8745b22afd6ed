//! `summary.md`: verdict first, then the SLO table, per-request totals, responses by status
//! (with the first failed response of each request) and the timeline —
//! readable as plain text in a CI log and as a GitHub job summary. Deterministic for a given
//! report (tests snapshot it with times masked).

use std::fmt::Write as _;

use super::{utc, RunReport};
use crate::metrics::Outcome;
use crate::slo::{show_ratio, show_us, Status};

pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let badge = r.verdict.badge();
    let _ = writeln!(o, "# chaos run `{}`: **{badge}**\n", r.scenario.name);
    let _ = writeln!(o, "{}\n", r.reason());
    if !r.scenario.description.is_empty() {
        let _ = writeln!(o, "> {}\n", r.scenario.description);
    }
    let _ = writeln!(
        o,
        "- target: `{}`\n- started: {} · scheduled length {:.1}s · wall {:.1}s{}",
        r.target_url,
        utc(r.started_at),
        r.timeline.total.as_secs_f64(),
        r.wall.as_secs_f64(),
        if r.time_scale == 1.0 {
            String::new()
        } else {
            format!(" · time scale {}", r.time_scale)
        }
    );
    if let Some(line) = r.shard_line() {
        let _ = writeln!(o, "- {line}");
    }
    let t = r.totals(None);
    let _ = writeln!(
        o,
        "- requests: {} scheduled, {} sent, {} ok, {} failed ({}), {} not sent\n",
        t.requests(),
        t.sent(),
        t.count(Outcome::Ok),
        t.errors(),
        show_ratio(t.error_rate()),
        t.count(Outcome::NotSent)
    );

    let _ = writeln!(o, "## SLOs\n");
    if r.slo.is_empty() {
        let _ = writeln!(o, "No SLOs in this scenario: nothing was judged.\n");
    } else {
        let _ = writeln!(
            o,
            "| result | window | request | objective | measured | samples |\n|---|---|---|---|---|---|"
        );
        for s in &r.slo {
            let res = match s.status {
                Status::Pass => "pass".to_string(),
                Status::Fail | Status::InsufficientData => format!("**{}**", s.status.label()),
                Status::InsufficientAllowed | Status::NotJudged => s.status.label().to_string(),
            };
            let _ = writeln!(
                o,
                "| {res} | {} | {} | `{}` | {} | {} |",
                s.objective.window_label(),
                s.objective.request.as_deref().unwrap_or("all"),
                s.objective.text,
                s.shown_value,
                s.samples
            );
        }
        // Each note once (three SLOs of one skipped fault share theirs).
        let mut seen = std::collections::HashSet::new();
        for s in r.slo.iter().filter_map(|s| s.note.as_ref()) {
            if seen.insert(s) {
                let _ = writeln!(o, "\n- {s}");
            }
        }
        let _ = writeln!(o);
    }

    let _ = writeln!(o, "## Requests\n");
    let _ = writeln!(
        o,
        "| request | scheduled | ok | 4xx | 5xx | unexpected | timeout | connect | reset | not sent | p50 | p95 | p99 | max | retried | attempts/req |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let rows = r
        .recording
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), r.totals(Some(i))))
        .chain(std::iter::once(("**all**", t.clone())));
    for (name, s) in rows {
        let q = |p: f64| {
            if s.latency.is_empty() {
                "—".to_string()
            } else {
                show_us(s.latency.value_at_quantile(p) as f64)
            }
        };
        let max = if s.latency.is_empty() {
            "—".to_string()
        } else {
            show_us(s.latency.max() as f64)
        };
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {max} | {} | {:.2} |",
            s.requests(),
            s.count(Outcome::Ok),
            s.count(Outcome::Http4xx),
            s.count(Outcome::Http5xx),
            s.count(Outcome::Unexpected),
            s.count(Outcome::Timeout),
            s.count(Outcome::ConnectError),
            s.count(Outcome::Reset),
            s.count(Outcome::NotSent),
            q(0.5),
            q(0.95),
            q(0.99),
            s.retried(),
            s.amplification(),
        );
    }
    let late = &t.lateness;
    if !r.scenario.load.is_empty() && !late.is_empty() {
        let _ = writeln!(
            o,
            "\nLatency is measured from each request's intended send time. Send lateness: p50 {}, p99 {}, max {}.",
            show_us(late.value_at_quantile(0.5) as f64),
            show_us(late.value_at_quantile(0.99) as f64),
            show_us(late.max() as f64)
        );
    }
    if r.scenario.users.is_some() {
        let _ = writeln!(
            o,
            "\nA journey step (`journey:step`) is timed from when its user sent it: a closed model has no intended send time, so a stalled service slows the users instead of piling up late requests (see Journeys)."
        );
    }

    statuses(&mut o, r);

    if !r.faults.is_empty() {
        let _ = writeln!(
            o,
            "\n## Recovery\n\n| fault | impact after | recovered after injection | after revert | failed requests | extra p99 | note |\n|---|---:|---:|---:|---:|---:|---|"
        );
        let secs = |v: Option<f64>, none: &str| v.map_or(none.to_string(), |s| format!("{s:.1}s"));
        for rc in &r.recoveries {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                rc.fault,
                secs(rc.time_to_impact_s, "no impact"),
                secs(rc.from_inject_s, "**not recovered**"),
                if rc.reverted_at_end {
                    "— (at the end)".to_string()
                } else {
                    secs(rc.from_revert_s, "**not recovered**")
                },
                rc.failed_requests,
                rc.extra_p99_us.map_or("—".into(), |v| show_us(v.max(0.0))),
                rc.note
            );
        }
        for f in r.faults.iter().filter(|f| !f.applied()) {
            let _ = writeln!(
                o,
                "| `{}` | — | not judged | — | — | — | fault {} |",
                f.name,
                f.status.name()
            );
        }
    }
    control_plane(&mut o, r);
    durable_writes(&mut o, r);
    responses_by(&mut o, r);
    journeys(&mut o, r);
    let _ = writeln!(o, "\n## Timeline\n");
    let _ = writeln!(o, "| from | to | stage | rate |\n|---:|---:|---|---|");
    for (seg, st) in r.segments.iter().zip(&r.scenario.load.stages) {
        let _ = writeln!(
            o,
            "| {:.1}s | {:.1}s | {} {} | {:.0} → {:.0} req/s |",
            seg.start.as_secs_f64(),
            (seg.start + seg.duration).as_secs_f64(),
            match st.kind {
                crate::scenario::StageKind::Ramp => "ramp to",
                crate::scenario::StageKind::Hold => "hold",
            },
            st.rate_text,
            seg.from_rps,
            seg.to_rps
        );
    }
    // Each fault as it happened: injected and reverted at (an interrupted run's revert is when
    // the rollback undid it), the schedule only for a fault that never took effect.
    for f in &r.timeline.faults {
        let rec = r.faults.iter().find(|x| x.name == f.name);
        let status = rec
            .map(|x| format!(" — **{}**: {}", x.status.name(), x.note))
            .unwrap_or_default();
        let at = |actual: Option<f64>, scheduled: std::time::Duration| match actual {
            Some(t) => format!("{t:.1}s"),
            None => format!("({:.1}s scheduled)", scheduled.as_secs_f64()),
        };
        let applied = rec.is_some_and(|x| x.applied());
        let reverted = match rec.and_then(|x| x.reverted_at_s) {
            None if applied => "**still applied**".to_string(),
            r => at(r, f.end),
        };
        let hand = rec.map_or(String::new(), |x| super::by_hand_text(x.by_hand));
        let _ = writeln!(
            o,
            "| {} | {reverted} | fault `{}` ({}){status}{hand} | |",
            at(rec.and_then(|x| x.injected_at_s), f.start),
            f.name,
            f.kind
        );
    }
    for n in &r.notes {
        let _ = writeln!(o, "| {:.1}s | | note: {} | |", n.at_s, cell(&n.text));
    }
    o
}

/// The users' journeys: how many began, ended complete, failed (at which step), or were
/// stopped by the run's end. Each step's latency and outcomes are in the per-request table,
/// as `journey:step`.
fn journeys(o: &mut String, r: &RunReport) {
    let Some(u) = &r.scenario.users else {
        return;
    };
    if r.journeys.is_none() {
        return;
    }
    let _ = writeln!(o, "\n## Journeys\n\n{}", super::users::caption(u));
    let _ = writeln!(
        o,
        "\n| from | to | users | steps sent | steps/s achieved |\n|---:|---:|---|---:|---:|"
    );
    for s in super::users::stages(r, u) {
        let _ = writeln!(
            o,
            "| {:.1}s | {:.1}s | {} | {} | {:.1} |",
            s.from.as_secs_f64(),
            s.to.as_secs_f64(),
            s.users,
            s.sent,
            s.per_s
        );
    }
    let _ = writeln!(
        o,
        "\n| journey | started | completed | failed | failed at | canceled at the end | duration p50 | p95 | max |\n|---|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    let us = |v: Option<f64>| v.map_or("—".to_string(), show_us);
    for j in super::users::journeys(r) {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            j.name,
            j.started,
            j.completed,
            j.failed,
            j.failed_at_text(|s| format!("`{s}`")),
            j.canceled,
            us(j.p50_us),
            us(j.p95_us),
            us(j.max_us),
        );
    }
}

/// What the target's control plane showed while the faults were applied, beside the
/// recovery the clients saw.
fn control_plane(o: &mut String, r: &RunReport) {
    if r.events.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n## Control plane\n\nWhat the target reported while the faults were applied (polled; each change is seen at most one poll after it happened).\n\n| at | what | from | to |\n|---:|---|---|---|"
    );
    let v = |x: &Option<String>| x.as_deref().map_or("—".to_string(), code);
    for e in &r.events {
        let _ = writeln!(
            o,
            "| {:.1}s | {} | {} | {} |",
            e.at_s,
            cell(&e.what),
            v(&e.from),
            v(&e.to)
        );
    }
}

/// Each value of the `responses_by` header: its responses, share, and when it was served.
fn responses_by(o: &mut String, r: &RunReport) {
    let Some((header, values)) = super::versions::of(r) else {
        return;
    };
    let total: u64 = values.iter().map(|v| v.responses).sum();
    let _ = writeln!(o, "\n## Responses by `{header}`\n");
    let _ = writeln!(
        o,
        "| value | responses | share | first seen | last seen |\n|---|---:|---:|---:|---:|"
    );
    for v in &values {
        let _ = writeln!(
            o,
            "| `{}` | {} | {:.1}% | {:.1}s | {:.1}s |",
            v.name.replace('|', "\\|").replace('`', "'"),
            v.responses,
            v.responses as f64 * 100.0 / total.max(1) as f64,
            v.first_s,
            v.last_s
        );
    }
}

/// Acknowledged durable writes and the read-back: what was lost, by id.
fn durable_writes(o: &mut String, r: &RunReport) {
    if !r.durable_writes.is_empty() || r.durable_without_id > 0 {
        let _ = writeln!(o, "\n## Durable writes\n");
        let _ = writeln!(
            o,
            "{} acknowledged ({} without an id at the configured path).",
            r.durable_writes.len(),
            r.durable_without_id
        );
        match &r.verification {
            None => {
                let _ = writeln!(o, "Not read back: the run did not finish.");
            }
            Some(v) => {
                let _ = writeln!(
                    o,
                    "Read back after the run: {} checked, {} found, **{} lost**, {} unverified.",
                    v.checked,
                    v.found,
                    v.lost.len(),
                    v.unverified.len()
                );
                if !v.lost.is_empty() {
                    let shown: Vec<String> = v
                        .lost
                        .iter()
                        .take(50)
                        .map(|l| format!("`{}`", l.id))
                        .collect();
                    let more = v.lost.len().saturating_sub(50);
                    let _ = writeln!(
                        o,
                        "\nLost ids: {}{}",
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more (all in report.json)")
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
}

/// Most statuses shown per request; the rest are summed up (all are in report.json).
const TOP_STATUSES: usize = 6;
/// Characters of a failed response's body shown.
const BODY_SHOWN: usize = 80;

/// Responses by status per request (most frequent first), what each request expects, and the
/// first failed response of each request.
fn statuses(o: &mut String, r: &RunReport) {
    let t = r.totals(None);
    if t.statuses.is_empty() && r.recording.failures.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n## Responses by status\n\n| request | a success is | statuses, most frequent first |\n|---|---|---|"
    );
    let expect = |name: &str| {
        let e = r
            .scenario
            .load
            .requests
            .iter()
            .find(|q| q.name == name)
            .and_then(|q| q.expect.as_ref());
        let Some(e) = e else {
            return "status < 400".to_string();
        };
        let mut parts = vec![format!("status {}", e.status_text())];
        if let Some(b) = &e.body_contains {
            parts.push(format!("body has {}", code(b)));
        }
        if let Some(j) = &e.json {
            parts.push(match &j.equals {
                Some(v) => code(&format!("{} == {v}", j.path.text)),
                None => format!("{} present", code(&j.path.text)),
            });
        }
        parts.join(" · ")
    };
    let rows = r
        .recording
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), expect(n), r.totals(Some(i))))
        .chain(std::iter::once(("**all**", String::new(), t.clone())));
    for (name, exp, s) in rows {
        let by = s.statuses.by_count();
        let mut shown: Vec<String> = by
            .iter()
            .take(TOP_STATUSES)
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect();
        if by.len() > TOP_STATUSES {
            let rest: u64 = by[TOP_STATUSES..].iter().map(|p| p.1).sum();
            shown.push(format!("{} more codes ×{rest}", by.len() - TOP_STATUSES));
        }
        if shown.is_empty() {
            shown.push("no response".into());
        }
        let _ = writeln!(o, "| {name} | {exp} | {} |", shown.join(" · "));
    }
    let firsts: Vec<_> = r
        .recording
        .names
        .iter()
        .filter_map(|n| r.recording.failures.iter().find(|f| &f.request == n))
        .collect();
    if firsts.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nFirst failed response of each request (up to {} per request are kept, with headers, in report.json `failures`):\n\n| request | at | result | reason | body |\n|---|---:|---|---|---|",
        crate::load::failures::KEEP
    );
    for f in firsts {
        let result = match f.status {
            Some(s) => format!("{s} ({})", f.outcome.name()),
            None => f.outcome.name().to_string(),
        };
        let mut body: String = f.body.chars().take(BODY_SHOWN).collect();
        if f.body.chars().count() > BODY_SHOWN
            || f.body_bytes > crate::load::failures::BODY_HEAD as u64
        {
            body.push('…');
        }
        let _ = writeln!(
            o,
            "| {} | {:.2}s | {result} | {} | {} |",
            f.request,
            f.at_s,
            f.reason.as_deref().map(cell).unwrap_or_default(),
            if body.is_empty() {
                String::new()
            } else {
                code(&body)
            }
        );
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Text as an inline code span inside a table cell (backticks cannot be escaped in one).
fn code(s: &str) -> String {
    format!("`{}`", cell(&s.replace('`', "'")))
}
