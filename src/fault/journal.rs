//! The fault journal: `<run-dir>/journal.jsonl`, one JSON record per line, each fsynced before
//! the call that follows it. `intent` (with the plan) is written before an inject, `applied`
//! (with the undo data) after it, `reverted` after a revert, `failed` when either fails.
//!
//! Whatever happens to the process — a panic, SIGKILL, a power cut — the journal says what may
//! still be applied, and `chaos rollback <run-dir>` reverts exactly that ([`open_faults`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{FaultPlan, Undo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Intent,
    Applied,
    /// The driver's read calls showed the fault's effect (after `applied`).
    Confirmed,
    Reverted,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub at: String,
    pub fault: String,
    pub kind: String,
    pub step: Step,
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<FaultPlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who took the step when not the schedule: `hand` (`chaos inject`/`revert` in a game day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Record {
    pub fn new(fault: &str, kind: &str, driver: &str, step: Step) -> Record {
        Record {
            at: crate::report::utc(SystemTime::now()),
            fault: fault.to_string(),
            kind: kind.to_string(),
            step,
            driver: driver.to_string(),
            plan: None,
            undo: None,
            error: None,
            by: None,
        }
    }
}

pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Journal {
    pub fn create(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record and fsync it before returning.
    pub fn write(&self, r: &Record) -> std::io::Result<()> {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(f, "{line}")?;
        f.sync_data()
    }
}

/// A journal that cannot be read or written, with its place.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {source}")]
    BadRecord {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the journal {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Read a journal. A torn last line (the process died mid-write) is ignored; any other bad line
/// is an error naming its line number.
pub fn read(path: &Path) -> Result<Vec<Record>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(source) => {
                return Err(JournalError::BadRecord {
                    path: path.display().to_string(),
                    line: i + 1,
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Faults that may still be applied: an `intent` or `applied` with no `reverted` after it.
/// Returns, per fault, the last record holding undo data or a plan (whose revert steps are
/// idempotent, so a fault that died between intent and applied is reverted too).
pub fn open_faults(records: &[Record]) -> Vec<Record> {
    let mut open: Vec<Record> = Vec::new();
    for r in records {
        match r.step {
            Step::Intent => {
                open.retain(|o| o.fault != r.fault);
                open.push(r.clone());
            }
            Step::Applied => {
                let plan = open
                    .iter()
                    .find(|o| o.fault == r.fault)
                    .and_then(|o| o.plan.clone());
                open.retain(|o| o.fault != r.fault);
                let mut r = r.clone();
                if r.plan.is_none() {
                    r.plan = plan;
                }
                open.push(r);
            }
            Step::Reverted => open.retain(|o| o.fault != r.fault),
            // Still applied, and now known to be.
            Step::Confirmed => {}
            // A failed inject may have half-applied; a failed revert left it applied: both stay.
            Step::Failed => {}
        }
    }
    open
}
