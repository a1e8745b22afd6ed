//! Judging a run: its [`RunRecord`] (the raw data — recording, faults as applied, durable writes
//! and their read-back, journal) and the scenario in, the [`RunReport`] with every SLO, recovery
//! and the verdict out. `chaos run` judges the record it just made, `chaos report` one read back
//! from report.json (with edited SLOs, if asked), `chaos merge` the shards' records joined —
//! through this one function, so they cannot disagree. Pure: no clock, no I/O.

use super::record::RunRecord;
use super::{RunReport, Verdict};
use crate::scenario::Scenario;
use crate::slo::{self, Timeline};

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("the scenario's requests differ from the recorded ones: SLOs could not be judged on this recording")]
    Requests,
}

/// Judge the recorded run on `scenario` — by the same rule as `chaos run`. What happened
/// during the run (its faults' fate, an abort, an interrupt) stands; only the SLOs are judged
/// again.
pub fn judge(scenario: Scenario, run: RunRecord) -> Result<RunReport, JudgeError> {
    if run.recording.names != scenario.request_names() {
        return Err(JudgeError::Requests);
    }
    let timeline = Timeline::of(&scenario);
    let (slo, recoveries) = slo::judge_run(
        &scenario,
        (&run.recording, run.journeys.as_ref().map(|j| &j.recording)),
        &timeline,
        run.faults
            .iter()
            .map(|f| (f.name.as_str(), f.injected_at_s, f.reverted_at_s)),
        &super::unapplied(&run.faults),
        crate::verify::data_check(
            run.verification.as_ref(),
            &run.durable_writes,
            !run.interrupted,
            run.durable_without_id,
        )
        .as_ref(),
        run.time_scale,
    );
    let verdict = Verdict::of_run(&run.faults, run.aborted.is_some(), run.interrupted, &slo);
    Ok(RunReport {
        journeys: run.journeys,
        shards: run.shards,
        journal: run.journal,
        events: run.events,
        notes: run.notes,
        segments: crate::load::schedule::segments(&scenario.load.stages),
        target_url: run.target_url,
        time_scale: run.time_scale,
        started_at: run.started_at,
        wall: run.wall,
        interrupted: run.interrupted,
        scheduled: run.scheduled,
        timeline,
        recording: run.recording,
        slo,
        faults: run.faults,
        durable_without_id: run.durable_without_id,
        durable_writes: run.durable_writes,
        recoveries,
        aborted: run.aborted,
        verification: run.verification,
        verdict,
        scenario,
    })
}
