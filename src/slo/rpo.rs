//! `rpo`: a restore's recovery point, measured on the read-back. For each `db-restore` fault
//! of the run (as applied), from the database's loss — the fault's injection — back to the
//! newest write acknowledged before the loss that still read back after the run: how far back
//! in time the restored data ends. With none of them read back but some lost, the restored
//! data ends before the oldest lost one. The objective's value is the largest over the run's
//! restores.
//!
//! The consistency check rides on it: a restore brings back one point in time, no earlier than
//! the first send of any write that read back (it was committed after that). A lost write
//! acknowledged before that (since the previous restore) is a hole in the restored data, and
//! fails the objective whatever the bound — as would a hole a failover left earlier in the same
//! stretch (the data is no point in time either way). Send and acknowledgement times bound
//! each commit from both sides, so responses overtaking each other make no false hole.
//!
//! It judges what the read-back saw and when each write was acknowledged ([`DataCheck`]); it
//! must never look at the target's own account of its snapshots (the data is the evidence).

use super::{show, Answered, DataCheck, SloResult, Status, Timeline};
use crate::scenario::model::Objective;

/// The kind of fault an `rpo` is measured for.
pub const RESTORE_KIND: &str = crate::scenario::FaultKind::RESTORE;

/// One restore's recovery point.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPoint {
    pub fault: String,
    /// The loss: the fault's injection, ms on the run's clock.
    pub loss_ms: u64,
    /// The newest write acknowledged before the loss that read back, ms.
    pub newest_kept_ms: Option<u64>,
    /// Writes acknowledged before the loss and lost.
    pub lost_before: u64,
    /// Lost writes acknowledged before a kept one was first sent (since the previous restore):
    /// holes in what should be one point in time.
    pub holes: u64,
    /// `None`: no write acknowledged before the loss was read back (nothing to measure on).
    pub rpo_ms: Option<u64>,
}

/// Each restore's recovery point on the writes of `request` (all when `None`).
pub fn recovery_points(
    data: &DataCheck,
    tl: &Timeline,
    request: Option<&str>,
) -> Vec<RecoveryPoint> {
    let mut losses: Vec<(&str, u64)> = tl
        .faults
        .iter()
        .filter(|f| f.kind == RESTORE_KIND)
        .map(|f| (f.name.as_str(), f.start.as_millis() as u64))
        .collect();
    losses.sort_by_key(|l| l.1);
    let mut since = 0;
    let mut points = Vec::new();
    for (fault, loss_ms) in losses {
        let before: Vec<&Answered> = data
            .answered
            .iter()
            .filter(|w| w.acked_ms < loss_ms && request.is_none_or(|q| q == w.request))
            .collect();
        let kept = || before.iter().filter(|w| w.found);
        let lost = || before.iter().filter(|w| !w.found);
        let newest_kept = kept().map(|w| w.acked_ms).max();
        // The restored point in time is no earlier than any kept write's first send: a write
        // acknowledged before that must be there too.
        let point_after = kept().map(|w| w.sent_ms).max();
        let holes = point_after.map_or(0, |t| {
            lost()
                .filter(|w| w.acked_ms >= since && w.acked_ms < t)
                .count() as u64
        });
        points.push(RecoveryPoint {
            fault: fault.to_string(),
            loss_ms,
            newest_kept_ms: newest_kept,
            lost_before: lost().count() as u64,
            holes,
            rpo_ms: newest_kept
                .or_else(|| lost().map(|w| w.acked_ms).min())
                .map(|at| loss_ms - at),
        });
        since = loss_ms;
    }
    points
}

pub(super) fn judge_rpo(o: &Objective, data: Option<&DataCheck>, tl: &Timeline) -> SloResult {
    let shown_bound = format!("{} {}", o.op.symbol(), show(o.metric, o.bound));
    let insufficient = |note: String, samples: u64| SloResult {
        objective: o.clone(),
        status: Status::InsufficientData,
        value: None,
        samples,
        shown_value: "—".into(),
        shown_bound: shown_bound.clone(),
        note: Some(note),
    };
    if !tl.faults.iter().any(|f| f.kind == RESTORE_KIND) {
        return insufficient(
            format!(
                "insufficient data: no `{RESTORE_KIND}` fault in this run (rpo measures a restore)"
            ),
            0,
        );
    }
    let Some(data) = data else {
        return insufficient(
            "insufficient data: no read-back (the run did not finish)".into(),
            0,
        );
    };
    let points = recovery_points(data, tl, o.request.as_deref());
    let samples = data
        .answered
        .iter()
        .filter(|w| o.request.as_deref().is_none_or(|q| q == w.request))
        .count() as u64;
    let measured: Vec<&RecoveryPoint> = points.iter().filter(|p| p.rpo_ms.is_some()).collect();
    let Some(worst) = measured.iter().max_by_key(|p| p.rpo_ms) else {
        let why = if data.untimed > 0 {
            "the writes' acknowledgement times are not in this report (an older version)"
        } else {
            "no write acknowledged before the loss was read back"
        };
        return insufficient(format!("insufficient data: {why}"), samples);
    };
    let v = worst.rpo_ms.unwrap_or(0) as f64 * 1e3;
    let holes: u64 = points.iter().map(|p| p.holes).sum();
    let note = points
        .iter()
        .map(|p| {
            let at = |ms: u64| format!("{:.1}s", ms as f64 / 1e3);
            match (p.newest_kept_ms, p.rpo_ms) {
                (Some(kept), _) if p.holes > 0 => format!(
                    "`{}`: lost at {}, the newest write read back was acknowledged at {}, but {} acknowledged before the newest kept ones were sent are lost: the restored data is no point in time",
                    p.fault,
                    at(p.loss_ms),
                    at(kept),
                    p.holes
                ),
                (Some(kept), _) => format!(
                    "`{}`: lost at {}, the newest write read back was acknowledged at {}, {} acknowledged before the loss lost",
                    p.fault,
                    at(p.loss_ms),
                    at(kept),
                    p.lost_before
                ),
                (None, Some(_)) => format!(
                    "`{}`: lost at {}, every write acknowledged before it lost ({})",
                    p.fault,
                    at(p.loss_ms),
                    p.lost_before
                ),
                (None, None) => format!(
                    "`{}`: lost at {}, no write acknowledged before it",
                    p.fault,
                    at(p.loss_ms)
                ),
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    SloResult {
        objective: o.clone(),
        status: if o.op.holds(v, o.bound) && holes == 0 {
            Status::Pass
        } else {
            Status::Fail
        },
        value: Some(v),
        samples,
        shown_value: show(o.metric, v),
        shown_bound,
        note: Some(note),
    }
}
