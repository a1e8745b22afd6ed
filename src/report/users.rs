//! What the users did, as every human report shows it: the user plan beside the steps/s they
//! achieved in each stage, and each journey's counts and duration. Built here once from the
//! run's record; `markdown` and `html` only lay the rows out. Never judges anything (the
//! `journey:NAME` SLOs are judged in `slo`).

use std::time::Duration;

use super::RunReport;
use crate::scenario::{StageKind, Users};

/// One stage of the user plan and what the users sent during it.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    pub from: Duration,
    pub to: Duration,
    /// `0 → 50 (1x)` for a ramp, `200 (4x)` for a hold.
    pub users: String,
    /// Steps sent (by every journey) in the stage's intervals.
    pub sent: u64,
    pub per_s: f64,
}

/// One journey's counts and its iterations' duration (µs; `None`: no iteration ended).
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyRow {
    pub name: String,
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// The steps iterations failed at, with how many (only those above 0, in step order).
    pub failed_at: Vec<(String, u64)>,
    pub canceled: u64,
    pub p50_us: Option<f64>,
    pub p95_us: Option<f64>,
    pub max_us: Option<f64>,
}

impl JourneyRow {
    /// The steps iterations failed at, each as `name(step) count`, or `—` when none failed.
    pub fn failed_at_text(&self, name: impl Fn(&str) -> String) -> String {
        if self.failed_at.is_empty() {
            return "—".to_string();
        }
        let at: Vec<String> = self
            .failed_at
            .iter()
            .map(|(s, n)| format!("{} {n}", name(s)))
            .collect();
        at.join(", ")
    }
}

/// The user plan beside what the users achieved: the steps they sent per second in each
/// stage. A closed model sends less when the service slows down; the rate shows by how much.
pub fn stages(r: &RunReport, u: &Users) -> Vec<StageRow> {
    let rec = &r.recording;
    let steps = r.scenario.load.requests.len()..rec.names.len();
    let mut at = Duration::ZERO;
    let mut before = 0;
    let mut out = Vec::new();
    for st in &u.plan {
        let end = at + st.duration;
        let (a, b) = rec.range(at, end);
        let sent: u64 = steps
            .clone()
            .map(|i| rec.aggregate(a, b, Some(i)).requests())
            .sum();
        let users = match st.kind {
            StageKind::Ramp => format!("{before} → {} ({})", st.users, st.users_text),
            StageKind::Hold => format!("{} ({})", st.users, st.users_text),
        };
        let secs = (rec.interval * (b - a) as u32).as_secs_f64();
        out.push(StageRow {
            from: at,
            to: end,
            users,
            sent,
            per_s: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        });
        at = end;
        before = st.users;
    }
    out
}

/// Each journey's row; none for a run without users.
pub fn journeys(r: &RunReport) -> Vec<JourneyRow> {
    let Some(js) = &r.journeys else {
        return Vec::new();
    };
    let rec = &js.recording;
    js.counts
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let d = rec.aggregate(0, rec.intervals.len(), Some(i)).latency;
            let q = |p: f64| (!d.is_empty()).then(|| d.value_at_quantile(p) as f64);
            JourneyRow {
                name: j.name.clone(),
                started: j.started,
                completed: j.completed,
                failed: j.failed.iter().map(|(_, n)| n).sum(),
                failed_at: j.failed.iter().filter(|(_, n)| *n > 0).cloned().collect(),
                canceled: j.canceled,
                p50_us: q(0.5),
                p95_us: q(0.95),
                max_us: (!d.is_empty()).then(|| d.max() as f64),
            }
        })
        .collect()
}

/// The sentence that heads the users' section of a report.
pub fn caption(u: &Users) -> String {
    format!(
        "Up to {} virtual users (closed model, on goose; peak {}), think time {}–{}. An iteration ends at its first failed step; its duration is its steps' time without think time.",
        u.max_users(),
        u.peak,
        crate::scenario::validate::show(u.think_min),
        crate::scenario::validate::show(u.think_max),
    )
}
