//! `chaos report <run-dir> [--scenario FILE] [--out DIR]`: rebuild a [`RunReport`] from
//! `report.json` — after an upgrade of the renderers, or with edited SLOs (`--scenario`), which
//! are re-judged on the recorded histograms. Nothing is re-run: the recording (per-interval HDR
//! histograms and counters), the faults' fate and the durable-write read-back come from
//! `report.json` as they were measured. Only SLOs can be judged again: a scenario whose load,
//! faults, abort conditions or sandbox differ from what ran is refused. The CLI writes the result
//! into a directory of its own (`RUN/rejudged-<time>/`), never over the run's files.
//!
//! The file is read through [`super::record`] (typed: a malformed report is refused with its
//! path, line and column, never read as zeros) into a [`RunRecord`], which is judged here by
//! [`super::judge::judge`], as `chaos run` is.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::record::{self, ReadError, RecordError, RunRecord, ScenarioInfo};
use super::RunReport;

/// Why a run could not be reported again; each names the file or the scenario at fault.
#[derive(Debug, thiserror::Error)]
pub enum RereadError {
    #[error(transparent)]
    Report(#[from] ReadError),
    #[error("{}: {source}", path.display())]
    Record {
        path: PathBuf,
        #[source]
        source: RecordError,
    },
    #[error("{}: the scenario stored in it no longer parses:\n{diagnostics}", path.display())]
    StoredScenario {
        path: PathBuf,
        diagnostics: crate::scenario::Diagnostics,
    },
    /// The scenario given (or, for a report without the scenario's text, the one it names).
    #[error("{source}{}", hint.as_deref().unwrap_or(""))]
    Scenario {
        #[source]
        source: Box<crate::run::RunError>,
        /// What to do about it, e.g. pass --scenario when the file moved.
        hint: Option<String>,
    },
    #[error("{arg}: `{name}` ({field}, at {place}) is not set and the run recorded no value for it: pass it in the environment")]
    UnknownValue {
        arg: String,
        name: String,
        field: String,
        place: String,
    },
    #[error("{arg}: report.json does not record the scenario's load, so an edited scenario cannot be checked against what ran; run `chaos report` without --scenario")]
    NoRecordedLoad { arg: String },
    #[error("{arg}: cannot compare it with the run's scenario: {source}")]
    Compare {
        arg: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{arg}: its {} differ from what this run ran: only SLOs can be judged again on a recording (run the edited scenario to measure the rest)", differ.join(", "))]
    Differs {
        arg: String,
        differ: Vec<&'static str>,
    },
    #[error(transparent)]
    Judge(#[from] super::judge::JudgeError),
}

/// Rebuild the report of `dir`, judged against `scenario_arg` (a path or shipped name) or the
/// scenario the run used.
pub fn reread(dir: &Path, scenario_arg: Option<&str>) -> Result<RunReport, RereadError> {
    let p = dir.join("report.json");
    let run = record::load(&p)?
        .into_run_record()
        .map_err(|source| RereadError::Record {
            path: p.clone(),
            source,
        })?;
    let scenario = scenario_of(&p, &run, scenario_arg)?;
    Ok(super::judge::judge(scenario, run)?)
}

/// The scenario to judge the run on: `scenario_arg` checked against what ran, else the one
/// stored in the report (or, in a report without its text, the file it names).
pub(crate) fn scenario_of(
    p: &Path,
    run: &RunRecord,
    scenario_arg: Option<&str>,
) -> Result<crate::scenario::Scenario, RereadError> {
    let time_scale = run.time_scale;
    let source = &run.scenario.source;
    // The run's `--set` overrides and numeric `${env:…}` values: re-judging uses what ran.
    let params = crate::scenario::Params::recorded(&run.scenario.params);
    let scenario_err = |e: crate::run::RunError, hint: Option<String>| RereadError::Scenario {
        source: Box::new(e),
        hint,
    };
    match (scenario_arg, run.scenario.text.as_deref()) {
        (Some(a), _) => {
            // An edited file: the run's values first, today's environment for any new name.
            let p = crate::scenario::Params {
                process_env: true,
                ..params.clone()
            };
            let edited =
                crate::run::prepare_with(a, time_scale, &p).map_err(|e| scenario_err(e, None))?;
            if let Some(u) = edited.unknown.first() {
                return Err(RereadError::UnknownValue {
                    arg: a.to_string(),
                    name: u.name.clone(),
                    field: u.field.to_string(),
                    place: u.place.to_string(),
                });
            }
            same_run(&run.scenario, &edited, a)?;
            Ok(edited)
        }
        // The scenario as the run read it, from report.json: no file needed. Secrets are
        // `${env:…}` references in it, not needed (re-judging sends nothing).
        (None, Some(text)) => {
            let base = Path::new(source).parent();
            let no_env = |_: &str| None;
            let s = crate::scenario::parse_full(source, text, &no_env, base, &params).map_err(
                |diagnostics| RereadError::StoredScenario {
                    path: p.to_path_buf(),
                    diagnostics,
                },
            )?;
            Ok(if time_scale == 1.0 {
                s
            } else {
                s.time_scaled(time_scale)
            })
        }
        // A report from before the scenario's text was stored: read it from where it was.
        (None, None) => {
            let arg = source
                .strip_prefix("builtin:")
                .map_or(source.clone(), str::to_string);
            let p = crate::scenario::Params::names_only(&[], &[]);
            crate::run::prepare_with(&arg, time_scale, &p).map_err(|e| {
                scenario_err(
                    e,
                    Some(format!(
                        "\n(the run used scenario `{source}`; pass --scenario FILE if it moved)"
                    )),
                )
            })
        }
    }
}

/// Only the SLOs of a recording can be judged again: an edited scenario whose load, faults,
/// abort conditions or sandbox differ from what ran (as report.json recorded it) describes
/// another run.
fn same_run(
    ran: &ScenarioInfo,
    edited: &crate::scenario::Scenario,
    arg: &str,
) -> Result<(), RereadError> {
    let edited = serde_json::to_value(edited).map_err(|source| RereadError::Compare {
        arg: arg.to_string(),
        source,
    })?;
    // What a scenario's place or display changes, not what ran: where its CA file lies, and
    // the abort conditions' text (the bound, metric and stretch are compared).
    let part = |v: Option<&Value>, key: &str| {
        let mut v = v.cloned().unwrap_or(Value::Null);
        if let Some(c) = v.get_mut("client").and_then(Value::as_object_mut) {
            c.remove("ca_cert");
        }
        if let Some(list) = v.as_array_mut().filter(|_| key == "abort") {
            for a in list.iter_mut().filter_map(Value::as_object_mut) {
                a.remove("text");
            }
        }
        v
    };
    if !ran.model.contains_key("load") {
        return Err(RereadError::NoRecordedLoad {
            arg: arg.to_string(),
        });
    }
    let differ: Vec<&'static str> = ["load", "faults", "abort", "sandbox"]
        .into_iter()
        .filter(|k| part(ran.model.get(*k), k) != part(edited.get(*k), k))
        .collect();
    if differ.is_empty() {
        Ok(())
    } else {
        Err(RereadError::Differs {
            arg: arg.to_string(),
            differ,
        })
    }
}

#[cfg(test)]
mod tests {

    use std::time::{Duration, SystemTime};

    #[test]
    fn utc_round_trips() {
        use super::super::record::parse_utc;
        for secs in [0u64, 951_782_400, 1_795_403_539, 4_102_444_799] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_utc(&super::super::utc(t)), Some(t));
        }
        assert_eq!(parse_utc("2026-11-23 06:58:58"), None);
    }
}
