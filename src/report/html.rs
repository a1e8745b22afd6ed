//! `report.html`: one self-contained file for a game-day room — no scripts, fonts or URLs.
//! Charts are inline SVG drawn from the per-interval series: throughput (achieved against
//! scheduled), error rate, and p50/p95/p99 latency over time, each with the faults' windows
//! shaded and their recovery marked, and a game day's notes as numbered markers; then the SLO
//! table, latency percentiles per window, the faults' fate and the notes.

use std::fmt::Write as _;

use super::{RunReport, Verdict};
use crate::scenario::Window;
use crate::slo::{show_ratio, show_us, Status};

const W: f64 = 900.0;
const H: f64 = 180.0;
const PAD: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One value per interval (None = no data), as a line.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<Option<f64>>,
}

fn chart(
    r: &RunReport,
    title: &str,
    unit: &dyn Fn(f64) -> String,
    series: &[Series<'_>],
) -> String {
    let n = r.recording.intervals.len().max(1);
    let iv = r.recording.interval.as_secs_f64();
    let total = (n as f64 * iv)
        .max(r.timeline.total.as_secs_f64())
        .max(1e-9);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9);
    let x = |t: f64| PAD + (t / total) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD / 2.0 - (v / max) * (H - PAD);
    let applied = r.applied_timeline();
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    // Fault windows, shaded, with the recovery point marked.
    for f in &applied.faults {
        if !r.fault_applied(&f.name) {
            continue; // skipped or never reached: no window to shade
        }
        let (a, b) = (x(f.start.as_secs_f64()), x(f.end.as_secs_f64()));
        let _ = write!(
            o,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f4b183" opacity="0.35"><title>{}</title></rect>"##,
            PAD / 2.0,
            (b - a).max(1.0),
            H - PAD,
            esc(&f.name)
        );
        if let Some(rec) = r.recovery_of(&f.name).and_then(|rc| rc.from_inject_s) {
            let rx = x(f.start.as_secs_f64() + rec);
            let _ = write!(
                o,
                r##"<line x1="{rx:.1}" x2="{rx:.1}" y1="{:.1}" y2="{:.1}" stroke="#2e7d32" stroke-dasharray="4 3"><title>{} recovered after {rec:.1}s</title></line>"##,
                PAD / 2.0,
                H - PAD / 2.0,
                esc(&f.name)
            );
        }
    }
    // A game day's notes: a marker at each, the text on hover.
    for (i, n) in r.notes.iter().enumerate() {
        // A note typed after the load ended (while the last reverts ran) stays on the plot.
        let nx = x(n.at_s).clamp(PAD, W - PAD);
        let _ = write!(
            o,
            r##"<g class="note"><line x1="{nx:.1}" x2="{nx:.1}" y1="{:.1}" y2="{:.1}" stroke="#5e35b1" stroke-width="1"/><circle cx="{nx:.1}" cy="{:.1}" r="6" fill="#5e35b1"/><text x="{nx:.1}" y="{:.1}" font-size="9" fill="#fff" text-anchor="middle">{}</text><title>{:.1}s: {}</title></g>"##,
            PAD / 2.0,
            H - PAD / 2.0,
            PAD / 2.0,
            PAD / 2.0 + 3.0,
            i + 1,
            n.at_s,
            esc(&n.text)
        );
    }
    // Axes and labels.
    let _ = write!(
        o,
        r##"<line x1="{PAD}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/><text x="{PAD}" y="{:.1}" font-size="11">0s</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{total:.0}s</text><text x="4" y="{:.1}" font-size="11">{}</text>"##,
        H - PAD / 2.0,
        W - PAD,
        H - PAD / 2.0,
        H - 4.0,
        W - PAD,
        H - 4.0,
        PAD / 2.0 + 4.0,
        esc(&unit(max))
    );
    for s in series {
        let mut d = String::new();
        let mut pen_up = true;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let cmd = if pen_up { 'M' } else { 'L' };
                    let _ = write!(d, "{cmd}{:.1},{:.1} ", x((i as f64 + 0.5) * iv), y(*v));
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        let _ = write!(
            o,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.5"><title>{}</title></path>"#,
            s.color,
            esc(s.name)
        );
    }
    let legend: Vec<String> = series
        .iter()
        .map(|s| {
            format!(
                r#"<span style="color:{}">■</span> {}"#,
                s.color,
                esc(s.name)
            )
        })
        .collect();
    let _ = write!(
        o,
        "</svg><div class=legend>{}</div></figure>",
        legend.join(" &nbsp; ")
    );
    o
}

/// The users' section: the plan beside the steps/s achieved, and each journey's counts and
/// duration (the rows of [`super::users`]).
fn journeys(o: &mut String, r: &RunReport) {
    let Some(u) = &r.scenario.users else {
        return;
    };
    if r.journeys.is_none() {
        return;
    }
    let _ = write!(
        o,
        "<h2>Journeys</h2><p>{}</p><table><tr><th>from</th><th>to</th><th>users</th><th>steps sent</th><th>steps/s achieved</th></tr>",
        esc(&super::users::caption(u))
    );
    for s in super::users::stages(r, u) {
        let _ = write!(
            o,
            "<tr><td>{:.1}s</td><td>{:.1}s</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            s.from.as_secs_f64(),
            s.to.as_secs_f64(),
            esc(&s.users),
            s.sent,
            s.per_s
        );
    }
    o.push_str("</table><table><tr><th>journey</th><th>started</th><th>completed</th><th>failed</th><th>failed at</th><th>canceled at the end</th><th>duration p50</th><th>p95</th><th>max</th></tr>");
    let us = |v: Option<f64>| v.map_or("—".to_string(), show_us);
    for j in super::users::journeys(r) {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.name),
            j.started,
            j.completed,
            if j.failed > 0 { " class=fail" } else { "" },
            j.failed,
            j.failed_at_text(|s| format!("<code>{}</code>", esc(s))),
            j.canceled,
            us(j.p50_us),
            us(j.p95_us),
            us(j.max_us),
        );
    }
    o.push_str("</table>");
}

pub fn render(r: &RunReport) -> String {
    let rec = &r.recording;
    let iv = rec.interval.as_secs_f64();
    let per: Vec<_> = (0..rec.intervals.len())
        .map(|i| rec.aggregate(i, i + 1, None))
        .collect();
    let q = |p: f64| -> Vec<Option<f64>> {
        per.iter()
            .map(|s| (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(p) as f64))
            .collect()
    };
    let achieved: Vec<Option<f64>> = per.iter().map(|s| Some(s.sent() as f64 / iv)).collect();
    let scheduled: Vec<Option<f64>> = (0..per.len())
        .map(|i| {
            Some(crate::load::schedule::rate_at(
                &r.segments,
                rec.interval * i as u32,
            ))
        })
        .collect();
    let errors: Vec<Option<f64>> = per
        .iter()
        .map(|s| (s.requests() > 0).then(|| s.error_rate()))
        .collect();
    let verdict_color = match r.verdict {
        Verdict::Pass => "#2e7d32",
        Verdict::NotJudged => "#757575",
        _ => "#c62828",
    };
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>chaos run {name}</title><style>\
         body{{font:14px/1.45 system-ui,sans-serif;max-width:960px;margin:24px auto;padding:0 12px;color:#222}}\
         table{{border-collapse:collapse;margin:8px 0 16px}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}\
         th{{background:#f5f5f5}}.pass{{color:#2e7d32}}.skip{{color:#757575}}.fail{{color:#c62828;font-weight:600}}\
         figure{{margin:12px 0}}figcaption{{font-weight:600}}.legend{{font-size:12px}}</style></head><body>\
         <h1>chaos run <code>{name}</code>: <span style=\"color:{verdict_color}\">{badge}</span></h1><p>{reason}</p>\
         <p>{desc}<br>target <code>{target}</code> · started {started} · {len:.1}s scheduled, {wall:.1}s wall{scale}</p>",
        name = esc(&r.scenario.name),
        badge = r.verdict.badge(),
        reason = esc(&r.reason()),
        desc = esc(&r.scenario.description),
        target = esc(&r.target_url),
        started = super::utc(r.started_at),
        len = r.timeline.total.as_secs_f64(),
        wall = r.wall.as_secs_f64(),
        scale = if r.time_scale == 1.0 {
            String::new()
        } else {
            format!(" · time scale {}", r.time_scale)
        },
    );
    if let Some(line) = r.shard_line() {
        let _ = write!(o, "<p>{}</p>", esc(&line));
    }
    o.push_str(&chart(
        r,
        "Throughput (requests/s by intended send time)",
        &|v| format!("{v:.0}/s"),
        &[
            Series {
                name: "scheduled",
                color: "#9e9e9e",
                values: scheduled,
            },
            Series {
                name: "sent",
                color: "#1565c0",
                values: achieved,
            },
        ],
    ));
    o.push_str(&chart(
        r,
        "Error rate",
        &|v| show_ratio(v),
        &[Series {
            name: "errors",
            color: "#c62828",
            values: errors,
        }],
    ));
    o.push_str(&chart(
        r,
        "Latency from intended send time",
        &|v| show_us(v),
        &[
            Series {
                name: "p50",
                color: "#2e7d32",
                values: q(0.5),
            },
            Series {
                name: "p95",
                color: "#f9a825",
                values: q(0.95),
            },
            Series {
                name: "p99",
                color: "#c62828",
                values: q(0.99),
            },
        ],
    ));
    if let Some((header, values)) = super::versions::of(r) {
        const COLORS: [&str; 6] = [
            "#1565c0", "#2e7d32", "#f9a825", "#6a1b9a", "#c62828", "#00838f",
        ];
        let series: Vec<Series<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Series {
                name: &v.name,
                color: COLORS[i % COLORS.len()],
                values: v.shares.clone(),
            })
            .collect();
        o.push_str(&chart(
            r,
            &format!("Responses by {header} (share of each interval's responses)"),
            &|v| show_ratio(v),
            &series,
        ));
    }
    o.push_str("<h2>SLOs</h2><table><tr><th>result</th><th>window</th><th>request</th><th>objective</th><th>measured</th><th>samples</th></tr>");
    for s in &r.slo {
        let (class, label) = match s.status {
            Status::Pass => ("pass", "pass"),
            Status::Fail => ("fail", "FAIL"),
            Status::InsufficientData => ("fail", s.status.label()),
            Status::InsufficientAllowed | Status::NotJudged => ("skip", s.status.label()),
        };
        let _ = write!(
            o,
            "<tr><td class={class}>{label}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&s.objective.window_label()),
            esc(s.objective.request.as_deref().unwrap_or("all")),
            esc(&s.objective.text),
            esc(&s.shown_value),
            s.samples
        );
    }
    o.push_str("</table><h2>Latency per window</h2><table><tr><th>window</th><th>requests</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr>");
    let mut windows = vec![Window::Whole];
    if !r.timeline.faults.is_empty() {
        windows.push(Window::Baseline);
    }
    // Windows as judged: from each fault's injection to its revert; none for a fault that
    // never took effect.
    let applied = r.applied_timeline();
    for f in applied.faults.iter().filter(|f| r.fault_applied(&f.name)) {
        windows.push(Window::During(f.name.clone()));
        windows.push(Window::After(f.name.clone()));
    }
    for w in windows {
        let (a, b) = applied.span(&w);
        let (from, to) = rec.range(a, b);
        let s = rec.aggregate(from, to, None);
        let lat = |p: f64| {
            if s.latency.is_empty() {
                "—".to_string()
            } else {
                show_us(s.latency.value_at_quantile(p) as f64)
            }
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.to_string()),
            s.requests(),
            lat(0.5),
            lat(0.9),
            lat(0.99),
            lat(0.999),
            lat(1.0),
            show_ratio(s.error_rate())
        );
    }
    o.push_str("</table>");
    journeys(&mut o, r);
    if !r.faults.is_empty() {
        o.push_str("<h2>Faults</h2><table><tr><th>fault</th><th>kind</th><th>status</th><th>injected</th><th>reverted</th><th>recovered after</th><th>note</th></tr>");
        for f in &r.faults {
            let t = |v: Option<f64>| v.map_or("—".to_string(), |s| format!("{s:.1}s"));
            let recovered = r.recovery_of(&f.name).map_or_else(
                || "not judged".to_string(),
                |rc| match rc.from_inject_s {
                    Some(s) => format!("{s:.1}s"),
                    None => "not recovered".into(),
                },
            );
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{recovered}</td><td>{}</td></tr>",
                esc(&f.name),
                esc(&f.kind),
                esc(f.status.name()),
                t(f.injected_at_s),
                t(f.reverted_at_s),
                esc(&format!("{}{}", f.note, super::by_hand_text(f.by_hand)))
            );
        }
        o.push_str("</table>");
    }
    if !r.notes.is_empty() {
        o.push_str("<h2>Game-day notes</h2><p>Numbered as marked on the charts.</p><table><tr><th>#</th><th>at</th><th>note</th></tr>");
        for (i, n) in r.notes.iter().enumerate() {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{:.1}s</td><td>{}</td></tr>",
                i + 1,
                n.at_s,
                esc(&n.text)
            );
        }
        o.push_str("</table>");
    }
    if !r.events.is_empty() {
        o.push_str("<h2>Control plane</h2><p>What the target reported while the faults were applied (polled; each change is seen at most one poll after it happened).</p><table><tr><th>at</th><th>what</th><th>from</th><th>to</th></tr>");
        for e in &r.events {
            let v = |x: &Option<String>| x.as_deref().map_or("—".to_string(), esc);
            let _ = write!(
                o,
                "<tr><td>{:.1}s</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                e.at_s,
                esc(&e.what),
                v(&e.from),
                v(&e.to)
            );
        }
        o.push_str("</table>");
    }
    if !r.journal.is_empty() {
        o.push_str("<h2>Fault journal</h2><p>Every step, fsynced before it was taken (<code>journal.jsonl</code> next to this file; <code>chaos rollback</code> reads it).</p><table><tr><th>time (UTC)</th><th>fault</th><th>step</th><th>driver</th><th>calls / error</th></tr>");
        for j in &r.journal {
            let what = match (&j.error, &j.plan, j.step) {
                (Some(e), _, _) => e.clone(),
                (None, Some(p), crate::fault::journal::Step::Intent) => p
                    .inject
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => String::new(),
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&j.at),
                esc(&j.fault),
                esc(&format!("{:?}", j.step).to_lowercase()),
                esc(&j.driver),
                esc(&what)
            );
        }
        o.push_str("</table>");
    }
    if let Some(v) = &r.verification {
        let _ = write!(
            o,
            "<h2>Durable writes</h2><p>{} checked after the run: {} found, <b>{} lost</b>, {} unverified.</p>",
            v.checked,
            v.found,
            v.lost.len(),
            v.unverified.len()
        );
        if !v.lost.is_empty() {
            let ids: Vec<String> = v
                .lost
                .iter()
                .take(200)
                .map(|l| format!("<code>{}</code>", esc(&l.id)))
                .collect();
            let more = v.lost.len().saturating_sub(200);
            let _ = write!(
                o,
                "<p>Lost ids: {}{}</p>",
                ids.join(", "),
                if more > 0 {
                    format!(" and {more} more (all in report.json)")
                } else {
                    String::new()
                }
            );
        }
    }
    o.push_str("</body></html>\n");
    o
}
