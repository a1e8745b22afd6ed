//! A [`ReportFile`] turned into the raw run it records: the recordings (every histogram
//! checked), each fault's fate, and the validated [`RunRecord`] the judge works on. Computes
//! no figure and judges nothing.

use std::time::Duration;

use super::{parse_utc, Histograms, RecordError, ReportFile, RunRecord};
use crate::metrics::Recording;
use crate::report::{FaultRecord, FaultStatus};

impl ReportFile {
    /// The recording (per-interval histograms and counters), every histogram checked.
    pub fn recording(&self) -> Result<Recording, RecordError> {
        let mut r = self.recording_of(&self.histograms, &self.requests)?;
        r.failures = self.failures.clone();
        Ok(r)
    }

    /// The journeys' recording (`journey_histograms`, named by `journeys`), if the run had
    /// users.
    pub fn journey_recording(&self) -> Result<Option<Recording>, RecordError> {
        let Some(h) = &self.journey_histograms else {
            return Ok(None);
        };
        let names: Vec<String> = self.journeys.iter().map(|j| j.name.clone()).collect();
        self.recording_of(h, &names).map(Some)
    }

    /// A recording of `names` from `h` at the file's interval, every histogram checked.
    fn recording_of(&self, h: &Histograms, names: &[String]) -> Result<Recording, RecordError> {
        let interval = match self.interval_s {
            None => return Err(RecordError::NoInterval),
            Some(s) => Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(RecordError::Interval(s))?,
        };
        // The `responses_by` values named anywhere, as tag ids 1..
        let tags: Vec<String> = h
            .intervals
            .iter()
            .flat_map(|row| row.requests.values())
            .flat_map(|c| c.responses_by.keys().cloned())
            .collect::<std::collections::BTreeSet<String>>()
            .into_iter()
            .collect();
        let mut intervals = Vec::with_capacity(h.intervals.len());
        for (i, row) in h.intervals.iter().enumerate() {
            let mut cells = Vec::with_capacity(names.len());
            for n in names {
                let c = row
                    .requests
                    .get(n)
                    .ok_or_else(|| RecordError::MissingCell {
                        interval: i,
                        request: n.clone(),
                    })?;
                let c = c
                    .to_compact(&tags)
                    .map_err(|(which, source)| RecordError::Histogram {
                        interval: i,
                        request: n.clone(),
                        which,
                        source,
                    })?;
                cells.push(c);
            }
            intervals.push(cells);
        }
        Ok(Recording {
            interval,
            names: names.to_vec(),
            intervals,
            failures: Vec::new(),
            tags,
        })
    }

    /// Each fault's fate as the run recorded it (a fault without a status: skipped).
    pub fn faults(&self) -> Vec<FaultRecord> {
        self.timeline
            .faults
            .iter()
            .map(|f| FaultRecord {
                name: f.name.clone(),
                kind: f.kind.clone(),
                status: f.status.unwrap_or(FaultStatus::Skipped),
                note: f.note.clone().unwrap_or_default(),
                injected_at_s: f.injected_at_s,
                reverted_at_s: f.reverted_at_s,
                by_hand: f.by_hand,
            })
            .collect()
    }

    /// The raw run, validated (the judgement and the derived figures are left behind).
    pub fn into_run_record(self) -> Result<RunRecord, RecordError> {
        let recording = self.recording()?;
        let journeys = self
            .journey_recording()?
            .map(|recording| crate::report::JourneysRecord {
                counts: self.journeys.clone(),
                recording,
            });
        let faults = self.faults();
        let started_at =
            parse_utc(&self.started_at).ok_or(RecordError::StartedAt(self.started_at))?;
        let wall =
            Duration::try_from_secs_f64(self.wall_s).map_err(|_| RecordError::Wall(self.wall_s))?;
        let durable = self.durable;
        // `per_request` is not in the file: count it again from the writes.
        let verification = durable.read_back.map(|mut v| {
            for w in &durable.writes {
                let same = |request: &str, id: &str| request == w.request && id == w.id;
                if v.unverified.iter().any(|u| same(&u.request, &u.id)) {
                    continue;
                }
                let lost = v.lost.iter().any(|l| same(&l.request, &l.id));
                let e = v.per_request.entry(w.request.clone()).or_default();
                e.0 += 1;
                e.1 += u64::from(lost);
            }
            v
        });
        Ok(RunRecord {
            scenario: self.scenario,
            target_url: self.target.url,
            time_scale: self.time_scale,
            started_at,
            wall,
            interrupted: self.interrupted,
            scheduled: self.scheduled,
            aborted: self.aborted.map(|a| (a.condition, a.at_s)),
            recording,
            faults,
            durable_writes: durable.writes,
            durable_without_id: durable.acknowledged_without_id,
            verification,
            journal: self.journal,
            events: self.timeline.events,
            notes: self.timeline.notes,
            journeys,
            shards: self.shards,
        })
    }
}
