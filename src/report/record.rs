//! `report.json` as types: [`ReportFile`] is the file field for field (layout
//! [`super::SCHEMA`], published as `reports/schema/report.v1.json`), the one definition that
//! `report::json` writes and `chaos report` (`reread`) and `chaos compare` read back with serde.
//! Nothing here computes a figure or judges anything: it mirrors the file, and turns the raw
//! part of it into a [`RunRecord`] (the validated run the judge works on).
//!
//! The file's top level mixes three kinds of fields, grouped below in that order:
//! - the **raw run** — what was measured and what happened: the scenario as it ran (text,
//!   `--set` params, parsed model), target, times, the fault timeline with each fault's fate,
//!   the recording (per-interval HDR histograms, base64 V2 deflate, and counters), the first
//!   failed responses, the journal, the durable writes and their read-back. [`RunRecord`] is
//!   this part, validated ([`ReportFile::into_run_record`]);
//! - **derived** figures a reader would otherwise recompute (per-interval `series`, `totals`,
//!   `per_request`, the scenario digest), written for other tools, never read back as truth;
//! - the **judgement**: SLO results, recovery, verdict, exit code and its one-line reason.
//!
//! Compatibility: reports written before a field existed still load — the fields the schema
//! calls "absent in older reports" (`scenario_digest`, `scenario.text`, `journal`, `failures`,
//! `statuses`, `status_counts`, `responses_by`, `timeline.events`) default, `outcomes` arrays may be shorter (the missing outcomes
//! are 0), and `interval_s` may be null (no usable recording: `compare` then judges on sample
//! counts). Everything else the schema requires is required here, and every field has its type:
//! a string where a number belongs is an error at its line and column, never a silent 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{FaultRecord, FaultStatus, Verdict, SCHEMA};
use crate::fault::journal;
use crate::load::engine::DurableWrite;
use crate::metrics::recorder::Compact;
use crate::metrics::{hist, FailedResponse, Outcome, Recording, Stats, StatusCounts};
use crate::scenario::{Applied, StageKind};
use crate::slo::recovery::Recovery;
use crate::slo::SloResult;
use crate::verify::Verification;

/// The whole of `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportFile {
    /// Always [`SCHEMA`] (checked before the rest is read: [`load`]).
    pub schema: String,
    pub chaos_version: String,

    // The raw run.
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    /// UTC, second precision: `2026-11-23T06:58:58Z`.
    pub started_at: String,
    pub time_scale: f64,
    pub wall_s: f64,
    pub interrupted: bool,
    /// The abort condition that held, and when; null when none did.
    pub aborted: Option<Aborted>,
    pub timeline: TimelineInfo,
    /// Logical requests the scheduler issued.
    pub scheduled: u64,
    /// The recorder's interval; null: the recording is unusable (see the module doc).
    pub interval_s: Option<f64>,
    /// Request names, in the scenario's order (the order of every per-request list).
    pub requests: Vec<String>,
    pub histograms: Histograms,
    #[serde(default)]
    pub failures: Vec<FailedResponse>,
    #[serde(default)]
    pub journal: Vec<journal::Record>,
    pub durable: Durable,
    /// The users' journeys (`[users]`), one entry each; absent without users and in older
    /// reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journeys: Vec<crate::load::journeys::JourneyCounts>,
    /// Per journey (named as in `journeys`), one sample per ended iteration: its steps' time
    /// without think time, its outcome. Same layout and interval as `histograms`; absent
    /// without users and in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey_histograms: Option<Histograms>,
    /// The shards this run is made of (see `RunReport::shards`); absent for a run on one
    /// machine and in older reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<crate::run::shard::ShardInfo>,

    // Derived from the raw run.
    /// See `report::compare::digest`; absent in older reports.
    pub scenario_digest: Option<String>,
    pub totals: StatsSummary,
    pub per_request: BTreeMap<String, StatsSummary>,
    pub series: Vec<SeriesPoint>,

    // The judgement.
    pub verdict: Verdict,
    pub exit_code: i32,
    pub reason: String,
    pub slo: Vec<SloResult>,
    pub recovery: Vec<Recovery>,
}

/// The scenario as the run read it. `chaos report` and `compare` rebuild the scenario from
/// `text` and `params`; the parsed model (`load`, `faults`, `slo`, `sandbox`, `abort`, …) is
/// kept as written, for other tools and to tell an edited scenario from the one that ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: String,
    /// A path, or `builtin:<name>`.
    pub source: String,
    /// The file as written (secrets are `${env:…}` references); absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The run's `--set` overrides and numeric `${env:…}` values.
    #[serde(default, skip_serializing_if = "Applied::is_empty")]
    pub params: Applied,
    /// Every other key of the parsed scenario, as the run serialized it.
    #[serde(flatten)]
    pub model: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aborted {
    pub condition: String,
    /// Seconds from the start of the run.
    pub at_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineInfo {
    pub total_s: f64,
    pub stages: Vec<StageInfo>,
    pub faults: Vec<FaultInfo>,
    /// The target's control-plane changes seen while faults were applied, in time order
    /// (absent when there were none, and in older reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<crate::fault::ControlEvent>,
    /// Notes the team wrote during a game day (`chaos note`), in time order (absent when
    /// there were none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<crate::fault::manual::Note>,
}

/// One load stage as scheduled (seconds from the start, rates in requests per second).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageInfo {
    pub kind: StageKind,
    /// As written: `2x`, `800/s`.
    pub rate: String,
    pub start_s: f64,
    pub end_s: f64,
    pub from_rps: f64,
    pub to_rps: f64,
}

/// One fault: its schedule, and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultInfo {
    pub name: String,
    pub kind: String,
    pub start_s: f64,
    pub end_s: f64,
    pub status: Option<FaultStatus>,
    pub note: Option<String>,
    pub injected_at_s: Option<f64>,
    pub reverted_at_s: Option<f64>,
    /// Which of its steps were taken by hand in a game day (absent when none was).
    #[serde(default, skip_serializing_if = "crate::fault::manual::ByHand::is_none")]
    pub by_hand: crate::fault::manual::ByHand,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Histograms {
    /// `hdr-v2-deflate+base64`.
    pub encoding: String,
    /// `us`.
    pub unit: String,
    pub intervals: Vec<IntervalCells>,
}

pub const ENCODING: &str = "hdr-v2-deflate+base64";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalCells {
    /// The interval's start, seconds.
    pub t: f64,
    /// Request name → that interval's histograms and counters.
    pub requests: BTreeMap<String, Cell>,
}

/// One interval of one request, as the recorder closed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub latency: Hdr,
    pub service: Hdr,
    pub lateness: Hdr,
    /// Positional, in [`Outcome::ALL`]'s order (shorter in older reports).
    pub outcomes: Vec<u64>,
    /// `attempts[k]`: logical requests that made k attempts.
    pub attempts: Vec<u64>,
    pub exhausted: u64,
    #[serde(default)]
    pub statuses: StatusCounts,
    /// Final responses by the value of the scenario's `responses_by` header (absent without
    /// it, and in older reports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub responses_by: BTreeMap<String, u64>,
}

/// An HDR histogram in the V2 deflate form; base64 in the file. Only the base64 is checked when
/// the file is read; the histogram itself is decoded when a [`Recording`] is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hdr(pub Vec<u8>);

impl Serialize for Hdr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hdr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hdr, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Hdr)
            .map_err(|e| serde::de::Error::custom(format!("bad histogram encoding: {e}")))
    }
}

impl Cell {
    /// `tags`: the recording's names of the tag ids.
    pub fn of(c: &Compact, tags: &[String]) -> Cell {
        Cell {
            responses_by: tag_names(&c.tags, tags),
            latency: Hdr(c.latency.clone()),
            service: Hdr(c.service.clone()),
            lateness: Hdr(c.lateness.clone()),
            outcomes: c.outcomes.to_vec(),
            attempts: c.attempts.to_vec(),
            exhausted: c.exhausted,
            statuses: c.statuses.clone(),
        }
    }

    /// The recorder's form, every histogram checked to decode.
    /// `tags`: the names the recording gives ids to (a name not among them is not counted).
    fn to_compact(&self, tags: &[String]) -> Result<Compact, (&'static str, hist::DecodeError)> {
        for (which, h) in [
            ("latency", &self.latency),
            ("service", &self.service),
            ("lateness", &self.lateness),
        ] {
            hist::decode(&h.0).map_err(|e| (which, e))?;
        }
        let mut c = Compact {
            latency: self.latency.0.clone(),
            service: self.service.0.clone(),
            lateness: self.lateness.0.clone(),
            exhausted: self.exhausted,
            statuses: self.statuses.clone(),
            ..Compact::default()
        };
        for (name, n) in &self.responses_by {
            if let Some(i) = tags.iter().position(|t| t == name) {
                c.tags.add((i + 1) as u16, *n);
            }
        }
        // Older reports have fewer outcomes (the missing ones are 0); extra entries from a
        // newer build have no outcome here to count under.
        for (o, x) in c.outcomes.iter_mut().zip(&self.outcomes) {
            *o = *x;
        }
        for (a, x) in c.attempts.iter_mut().zip(&self.attempts) {
            *a = *x;
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Durable {
    pub acknowledged: u64,
    /// Acknowledged (2xx) without an id at the configured path: cannot be read back.
    pub acknowledged_without_id: u64,
    pub writes: Vec<DurableWrite>,
    /// Null: no read-back (no durable writes, or the run was cut short).
    pub read_back: Option<Verification>,
}

/// Counts by tag id as counts by the names `tags` gives the ids.
pub fn tag_names(c: &StatusCounts, tags: &[String]) -> BTreeMap<String, u64> {
    c.iter()
        .map(|(id, n)| {
            let name = tags
                .get(usize::from(id).saturating_sub(1))
                .cloned()
                .unwrap_or_else(|| format!("#{id}"));
            (name, n)
        })
        .collect()
}

/// One interval of the run over all requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub t: f64,
    pub scheduled_rps: f64,
    pub requests: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Outcome name → count.
    pub outcomes: BTreeMap<String, u64>,
    pub attempts: u64,
    pub retried: u64,
    #[serde(default)]
    pub status_counts: StatusCounts,
    /// Responses by the value of the scenario's `responses_by` header (absent without it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub responses_by: BTreeMap<String, u64>,
    pub latency_us: SeriesLatency,
    pub lateness_p99_us: Option<u64>,
}

/// An interval's latency quantiles, µs; null without samples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesLatency {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// Latency summary of a histogram, µs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<LatencySummary> {
        (!h.is_empty()).then(|| LatencySummary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// A `Stats` in report form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsSummary {
    pub requests: u64,
    pub sent: u64,
    /// Outcome name → count.
    pub outcomes: BTreeMap<String, u64>,
    pub error_rate: f64,
    pub throughput: f64,
    pub attempts: u64,
    pub retried: u64,
    pub retries_exhausted: u64,
    pub amplification: f64,
    /// `by_attempts[k]` = logical requests that made k attempts.
    pub by_attempts: Vec<u64>,
    pub latency_us: Option<LatencySummary>,
    pub service_us: Option<LatencySummary>,
    pub lateness_us: Option<LatencySummary>,
    /// Final responses by HTTP status; absent in older reports.
    #[serde(default)]
    pub status_counts: StatusCounts,
}

impl StatsSummary {
    pub fn of(s: &Stats) -> StatsSummary {
        StatsSummary {
            requests: s.requests(),
            sent: s.sent(),
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.name().to_string(), s.count(*o)))
                .collect(),
            error_rate: s.error_rate(),
            throughput: s.throughput(),
            attempts: s.total_attempts(),
            retried: s.retried(),
            retries_exhausted: s.exhausted,
            amplification: s.amplification(),
            by_attempts: s.attempts.to_vec(),
            latency_us: LatencySummary::of(&s.latency),
            service_us: LatencySummary::of(&s.service),
            lateness_us: LatencySummary::of(&s.lateness),
            status_counts: s.statuses.clone(),
        }
    }
}

/// The raw run, validated: what a judge needs to judge it again (with the scenario rebuilt from
/// `scenario.text` and `scenario.params`), and nothing it decided.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub scenario: ScenarioInfo,
    pub target_url: String,
    pub time_scale: f64,
    pub started_at: SystemTime,
    pub wall: Duration,
    pub interrupted: bool,
    pub scheduled: u64,
    /// The abort condition that stopped the run, and when (seconds from the start).
    pub aborted: Option<(String, f64)>,
    pub recording: Recording,
    /// Each fault's fate: status, note, injection and revert times.
    pub faults: Vec<FaultRecord>,
    pub durable_writes: Vec<DurableWrite>,
    pub durable_without_id: u64,
    pub verification: Option<Verification>,
    pub journal: Vec<journal::Record>,
    /// What the target's control plane showed while the faults were applied.
    pub events: Vec<crate::fault::ControlEvent>,
    /// The game day's notes.
    pub notes: Vec<crate::fault::manual::Note>,
    /// The users' journeys (`[users]`): counts and their recording.
    pub journeys: Option<super::JourneysRecord>,
    /// See [`super::RunReport::shards`].
    pub shards: Vec<crate::run::shard::ShardInfo>,
}

/// A report.json whose fields parse but do not describe a run this build can use.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("`interval_s` is missing: the report has no usable recording")]
    NoInterval,
    #[error("`interval_s` is {0}: not a positive duration in seconds")]
    Interval(f64),
    #[error("`histograms.intervals[{interval}].requests` has no `{request}` (one of `requests`)")]
    MissingCell { interval: usize, request: String },
    #[error("`histograms.intervals[{interval}].requests.{request}.{which}`: {source}")]
    Histogram {
        interval: usize,
        request: String,
        which: &'static str,
        #[source]
        source: hist::DecodeError,
    },
    #[error("`started_at` is {0:?}: not a UTC time like 2026-11-23T06:58:58Z")]
    StartedAt(String),
    #[error("`wall_s` is {0}: not a duration in seconds")]
    Wall(f64),
}

/// Why a report.json could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a JSON report: {source}", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: schema {found} is not {SCHEMA}: not a chaos run's report.json, or from another chaos version", path.display())]
    Schema { path: PathBuf, found: String },
    /// A field missing or of the wrong type (serde_json's message names its line and column).
    #[error("{}: not a {SCHEMA} report: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Read and parse the report.json at `path`: its layout is checked first, so a report of
/// another version says so instead of naming the first field it lacks.
pub fn load(path: &Path) -> Result<ReportFile, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// [`load`] on text already read.
pub fn parse(path: &Path, text: &str) -> Result<ReportFile, ReadError> {
    #[derive(Deserialize)]
    struct Header {
        #[serde(default)]
        schema: Value,
    }
    let h: Header = serde_json::from_str(text).map_err(|source| ReadError::NotJson {
        path: path.to_path_buf(),
        source,
    })?;
    if h.schema != SCHEMA {
        return Err(ReadError::Schema {
            path: path.to_path_buf(),
            found: h.schema.to_string(),
        });
    }
    serde_json::from_str(text).map_err(|source| ReadError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// "2026-11-23T06:58:58Z" → SystemTime (the inverse of [`super::utc`]).
pub fn parse_utc(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

mod run;
#[cfg(test)]
mod tests;
