//! Reports: the run's results as data ([`RunReport`]), and its renderings — `report.json`
//! (versioned, everything needed to redraw a chart or re-judge an SLO) and `summary.md` (what a
//! human reads in a CI log). Renderers are pure functions of the report: no clock, no I/O
//! beyond writing the files they are asked to write.

pub mod compare;
pub mod html;
pub mod json;
pub mod judge;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod record;
pub mod reread;
pub mod users;
pub mod versions;
pub mod write;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::load::engine::DurableWrite;
use crate::load::schedule::Segment;
use crate::metrics::{Recording, Stats};

use crate::scenario::Scenario;
use crate::slo::{SloResult, Timeline};
pub use record::{LatencySummary, StatsSummary};

/// The version of `report.json`'s layout. Bump on any incompatible change.
pub const SCHEMA: &str = "chaos.report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// A fault could not be injected or reverted (exit 4): the system may be degraded.
    FaultError,
    /// An abort condition held (exit 3): the run stopped early, faults reverted.
    Aborted,
    Interrupted,
    /// The run finished and nothing failed, but no SLO was judged (the scenario has none, or
    /// each belongs to a fault that did not take effect): exit 0, never shown as a pass.
    NotJudged,
}

impl Verdict {
    /// The verdict of a run that finished (no fault error, abort or interrupt) on its SLOs:
    /// a failure if any failed (or could not be judged and the scenario does not allow it),
    /// a pass if at least one was met, otherwise "not judged".
    pub fn of_slos(results: &[SloResult]) -> Verdict {
        if !crate::slo::all_pass(results) {
            Verdict::Fail
        } else if results.iter().any(|r| r.status == crate::slo::Status::Pass) {
            Verdict::Pass
        } else {
            Verdict::NotJudged
        }
    }

    /// The verdict of a run (what `chaos run` decides and `chaos report` decides again): a
    /// fault left applied, not injected or not confirmed first (exit 4: the system may not be
    /// as the run thinks), then an abort, an interrupt, then the SLOs.
    pub fn of_run(
        faults: &[FaultRecord],
        aborted: bool,
        interrupted: bool,
        slo: &[SloResult],
    ) -> Verdict {
        let fault_error = faults.iter().any(|f| {
            matches!(
                f.status,
                FaultStatus::InjectFailed | FaultStatus::Unconfirmed | FaultStatus::RevertFailed
            )
        });
        if fault_error {
            Verdict::FaultError
        } else if aborted {
            Verdict::Aborted
        } else if interrupted {
            Verdict::Interrupted
        } else {
            Verdict::of_slos(slo)
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass | Verdict::NotJudged => 0,
            Verdict::Fail => 1,
            Verdict::FaultError => 4,
            Verdict::Aborted => 3,
            Verdict::Interrupted => 130,
        }
    }

    pub fn badge(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::FaultError => "FAULT ERROR",
            Verdict::Aborted => "ABORTED",
            Verdict::Interrupted => "INTERRUPTED",
            Verdict::NotJudged => "NOT JUDGED",
        }
    }
}

/// What a fault became in this run.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub name: String,
    pub kind: String,
    pub status: FaultStatus,
    pub note: String,
    /// When it was injected and reverted, from the start of the run.
    pub injected_at_s: Option<f64>,
    pub reverted_at_s: Option<f64>,
    /// Which of its steps were taken by hand (`--gameday`).
    pub by_hand: crate::fault::manual::ByHand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultStatus {
    /// Not executed: `--skip-faults` was given (needed on a plain URL, which has no fault
    /// driver).
    Skipped,
    /// Injected, then reverted (or nothing to revert, like a failover).
    Reverted,
    /// The run stopped before its time came.
    NotReached,
    InjectFailed,
    /// Injected, but its effect never showed (the driver's read calls): reverted at once, and
    /// the run fails with exit 4 — it measured something else than the scenario asked for.
    Unconfirmed,
    /// Still applied: its revert failed. `chaos rollback <run-dir>` retries it.
    RevertFailed,
}

impl FaultRecord {
    /// Whether it ever took effect (an injection returned and its effect was confirmed).
    pub fn applied(&self) -> bool {
        self.injected_at_s.is_some() && self.status != FaultStatus::Unconfirmed
    }
}

/// What a report says of a fault's steps taken by hand in a game day (empty when none was).
pub fn by_hand_text(b: crate::fault::manual::ByHand) -> String {
    match (b.injected, b.reverted) {
        (true, true) => " (injected and reverted by hand)".into(),
        (true, false) => " (injected by hand)".into(),
        (false, true) => " (reverted by hand)".into(),
        (false, false) => String::new(),
    }
}

/// The faults that never took effect, with why: what the judge marks "not judged".
pub fn unapplied(faults: &[FaultRecord]) -> Vec<(&str, &str)> {
    faults
        .iter()
        .filter(|f| !f.applied())
        .map(|f| (f.name.as_str(), f.status.name()))
        .collect()
}

impl FaultStatus {
    pub fn name(self) -> &'static str {
        match self {
            FaultStatus::Skipped => "skipped",
            FaultStatus::Reverted => "injected and reverted",
            FaultStatus::NotReached => "not reached",
            FaultStatus::InjectFailed => "inject failed",
            FaultStatus::Unconfirmed => "unconfirmed (its effect never showed)",
            FaultStatus::RevertFailed => "STILL APPLIED (revert failed)",
        }
    }
}

/// Everything a run produced, ready to render.
pub struct RunReport {
    pub scenario: Scenario,
    pub target_url: String,
    pub time_scale: f64,
    pub started_at: SystemTime,
    pub wall: Duration,
    pub interrupted: bool,
    pub scheduled: u64,
    pub timeline: Timeline,
    pub segments: Vec<Segment>,
    pub recording: Recording,
    pub slo: Vec<SloResult>,
    pub faults: Vec<FaultRecord>,
    pub durable_writes: Vec<DurableWrite>,
    pub durable_without_id: u64,
    /// Per fault: time to impact, recovery from injection and from revert, impact size.
    pub recoveries: Vec<crate::slo::recovery::Recovery>,
    /// The abort condition that stopped the run, and when (seconds from the start).
    pub aborted: Option<(String, f64)>,
    /// The read-back of the durable writes (`None`: no durable writes, or the run was cut short).
    pub verification: Option<crate::verify::Verification>,
    /// The fault journal's records (journal.jsonl), every step with its time.
    pub journal: Vec<crate::fault::journal::Record>,
    /// What the target's control plane showed while the faults were applied (in time order).
    pub events: Vec<crate::fault::ControlEvent>,
    /// Notes the team wrote during a game day (`chaos note`), in time order.
    pub notes: Vec<crate::fault::manual::Note>,
    /// The users' journeys (`[users]`): counts and their recording.
    pub journeys: Option<JourneysRecord>,
    /// The shards this run is made of: one for a shard's own run, every one for a merged
    /// run, none for a run on one machine.
    pub shards: Vec<crate::run::shard::ShardInfo>,
    pub verdict: Verdict,
}

/// What the users did (`[users]`): each journey's counts, and the journeys' recording (one
/// sample per ended iteration: its steps' time without think time) that `journey:NAME` SLOs
/// are judged on.
#[derive(Debug, Clone)]
pub struct JourneysRecord {
    pub counts: Vec<crate::load::journeys::JourneyCounts>,
    pub recording: Recording,
}

impl RunReport {
    /// Whole-run statistics, over all requests or one.
    pub fn totals(&self, request: Option<usize>) -> Stats {
        self.recording
            .aggregate(0, self.recording.intervals.len(), request)
    }

    /// The timeline as the faults were really applied (injection to revert); the schedule
    /// for a fault that never took effect.
    pub fn applied_timeline(&self) -> Timeline {
        self.timeline.as_applied(
            self.faults
                .iter()
                .map(|f| (f.name.as_str(), f.injected_at_s, f.reverted_at_s)),
        )
    }

    /// Whether the fault of this name took effect in the run.
    pub fn fault_applied(&self, name: &str) -> bool {
        self.faults.iter().any(|f| f.name == name && f.applied())
    }

    /// The measured recovery of a fault (none for a fault that never took effect).
    pub fn recovery_of(&self, fault: &str) -> Option<&crate::slo::recovery::Recovery> {
        self.recoveries.iter().find(|r| r.fault == fault)
    }

    /// What the run is of a sharded run, for the reports' header: `None` for a run on one
    /// machine.
    pub fn shard_line(&self) -> Option<String> {
        let first = self.shards.first()?;
        let late = |us: u64| crate::slo::show_us(us as f64);
        // Each follower's clock against the conductor's (the recorded offset is the
        // conductor's minus the shard's: a shard ahead has a negative one).
        let offset = |s: &crate::run::shard::ShardInfo| {
            s.clock_offset_us.map(|o| {
                format!(
                    "{}{} ±{}",
                    if o > 0 { "-" } else { "+" },
                    crate::slo::show_us(o.unsigned_abs() as f64),
                    crate::slo::show_us(s.clock_rtt_us.unwrap_or(0) as f64 / 2.0)
                )
            })
        };
        Some(match self.shards.as_slice() {
            [one] if one.count > 1 => format!(
                "shard {}/{} of a run started at {} ({} late{}): its verdict covers its share only; `chaos merge` judges the whole run (shard {} drives the faults)",
                one.index,
                one.count,
                one.start_at,
                late(one.late_us),
                offset(one)
                    .map(|o| format!("; its clock {o} against the conductor's"))
                    .unwrap_or_default(),
                one.conductor
            ),
            all => {
                let offsets: Vec<String> = all
                    .iter()
                    .filter_map(|s| offset(s).map(|o| format!("shard {} {o}", s.index)))
                    .collect();
                format!(
                    "merged from {} shards (`chaos merge`), started at {}, each at most {} late{}; shard {} drove the faults",
                    all.len(),
                    first.start_at,
                    late(all.iter().map(|s| s.late_us).max().unwrap_or(0)),
                    if offsets.is_empty() {
                        String::new()
                    } else {
                        format!("; clocks against the conductor's: {}", offsets.join(", "))
                    },
                    first.conductor
                )
            }
        })
    }

    /// One line of why, for the end of the run (after the badge: `PASS: 6 SLOs met, 4 not
    /// judged: fault `zd` skipped`). Every SLO is counted once, under what became of it.
    pub fn reason(&self) -> String {
        use crate::slo::Status;
        let with = |st: Status| -> Vec<&SloResult> {
            self.slo.iter().filter(|r| r.status == st).collect()
        };
        let label = |r: &SloResult| {
            format!(
                "{}{} `{}`",
                r.objective.window_label(),
                r.objective
                    .request
                    .as_deref()
                    .map(|n| format!(" [{n}]"))
                    .unwrap_or_default(),
                r.objective.text
            )
        };
        let mut parts: Vec<String> = Vec::new();
        let breached = with(Status::Fail);
        if !breached.is_empty() {
            let list: Vec<String> = breached
                .iter()
                .map(|r| format!("{} measured {}", label(r), r.shown_value))
                .collect();
            parts.push(format!(
                "{} of {} breached: {}",
                breached.len(),
                plural(self.slo.len(), "SLO"),
                list.join("; ")
            ));
        }
        let insufficient = with(Status::InsufficientData);
        if !insufficient.is_empty() {
            let list: Vec<String> = insufficient
                .iter()
                // The note names the window: `p99 < 1s (insufficient data: 45 samples in
                // window whole, 100 needed)`.
                .map(|r| {
                    format!(
                        "`{}`{} ({})",
                        r.objective.text,
                        r.objective
                            .request
                            .as_deref()
                            .map(|n| format!(" [{n}]"))
                            .unwrap_or_default(),
                        r.note.as_deref().unwrap_or("insufficient data")
                    )
                })
                .collect();
            parts.push(format!(
                "{} could not be judged: {}",
                plural(insufficient.len(), "SLO"),
                list.join("; ")
            ));
        }
        let met = with(Status::Pass).len();
        if met > 0 && met == self.slo.len() {
            parts.push(format!("all {} met", plural(met, "SLO")));
        } else if met > 0 {
            parts.push(format!("{} met", plural(met, "SLO")));
        }
        let allowed = with(Status::InsufficientAllowed).len();
        if allowed > 0 {
            parts.push(format!(
                "{allowed} could not be judged (insufficient data, allowed by the scenario)"
            ));
        }
        let not_judged = with(Status::NotJudged);
        if !not_judged.is_empty() {
            let mut why: Vec<String> = not_judged
                .iter()
                .filter_map(|r| r.note.as_deref())
                .map(|n| n.trim_start_matches("not judged: ").to_string())
                .collect();
            let mut seen = std::collections::HashSet::new();
            why.retain(|w| seen.insert(w.clone()));
            parts.push(format!(
                "{} not judged: {}",
                not_judged.len(),
                why.join(", ")
            ));
        }
        if self.slo.is_empty() {
            parts.push("the scenario has no SLOs: nothing was judged".into());
        }
        let slos = parts.join(", ");
        match self.verdict {
            Verdict::Interrupted => format!(
                "stopped at {:.1}s by a signal, faults rolled back; results are partial ({slos})",
                self.wall.as_secs_f64()
            ),
            Verdict::Aborted => match &self.aborted {
                Some((why, at)) => format!("`{why}` held at {at:.1}s; faults reverted ({slos})"),
                None => format!("an abort condition held; faults reverted ({slos})"),
            },
            Verdict::FaultError => {
                let bad: Vec<String> = self
                    .faults
                    .iter()
                    .filter(|f| {
                        matches!(
                            f.status,
                            FaultStatus::InjectFailed
                                | FaultStatus::Unconfirmed
                                | FaultStatus::RevertFailed
                        )
                    })
                    .map(|f| format!("`{}` {}: {}", f.name, f.status.name(), f.note))
                    .collect();
                format!("{} ({slos})", bad.join("; "))
            }
            Verdict::Pass | Verdict::Fail | Verdict::NotJudged => slos,
        }
    }
}

/// `1 SLO`, `2 SLOs`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `2026-11-23T03:12:19Z` for a system time (UTC, second precision).
pub fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) — Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_not_injected_confirmed_or_reverted_is_exit_4_whatever_the_slos() {
        let fault = |status| FaultRecord {
            name: "f".into(),
            kind: "az-outage".into(),
            status,
            note: String::new(),
            injected_at_s: Some(1.0),
            reverted_at_s: Some(2.0),
            by_hand: Default::default(),
        };
        for st in [
            FaultStatus::InjectFailed,
            FaultStatus::Unconfirmed,
            FaultStatus::RevertFailed,
        ] {
            let v = Verdict::of_run(&[fault(st)], true, true, &[]);
            assert_eq!((v, v.exit_code()), (Verdict::FaultError, 4), "{st:?}");
        }
        let ok = [fault(FaultStatus::Reverted)];
        assert_eq!(Verdict::of_run(&ok, true, false, &[]), Verdict::Aborted);
        assert_eq!(Verdict::of_run(&ok, false, true, &[]), Verdict::Interrupted);
        assert_eq!(Verdict::of_run(&ok, false, false, &[]), Verdict::NotJudged);
        // An unconfirmed fault's windows are not judged: it is not "applied".
        assert!(!fault(FaultStatus::Unconfirmed).applied());
        assert!(fault(FaultStatus::RevertFailed).applied());
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_403_539);
        assert_eq!(utc(t), "2026-11-23T03:12:19Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29T00:00:00Z");
    }
}

#[cfg(test)]
mod snapshots;
