//! The run directory: where one run's evidence goes, never mixed with another's. Checked
//! before anything happens (an `--out` holding another run is refused), emptied only as far as
//! `--force` allows, created before any traffic.

use std::path::{Path, PathBuf};

use super::{RunError, RunOptions};
use crate::fault;
use crate::report;
use crate::scenario::Scenario;

/// A directory that does not exist yet: `<parent>/<prefix>-<UTC time>`, with `-2`, `-3`… if
/// two are made in the same second.
pub fn new_dir(parent: &Path, prefix: &str) -> PathBuf {
    let stamp: String = report::utc(std::time::SystemTime::now())
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let base = parent.join(format!("{prefix}-{stamp}"));
    let mut dir = base.clone();
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

/// What a run writes into its directory (and `chaos report` into its `rejudged-*` ones).
const RUN_FILES: &[&str] = &[
    "report.json",
    "junit.xml",
    "report.html",
    "summary.md",
    "journal.jsonl",
    "sandbox-events.jsonl",
    // A game day's (`--gameday`): its notes, and its desk's file while it lasts (left behind
    // by a run killed with SIGKILL).
    "notes.jsonl",
    "gameday.json",
    "gameday.json.tmp",
];

/// A run (or `chaos report`) directory, checked and not yet touched: [`OutDir::make`] empties
/// what `--force` allows and creates it.
///
/// A directory must not hold another run: its journal would get this run's records appended
/// and its reports would list both runs' faults. `--force` empties a directory that holds only
/// a run's files — never one with other files in it (`--out .` in a repository), and never one
/// whose journal (or, without a journal, whose report.json) shows a fault still applied:
/// `chaos rollback` needs that record.
pub struct OutDir {
    pub path: PathBuf,
    stale: Vec<PathBuf>,
}

/// Who asks for a directory: the refusal says what the user can do instead.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OutFor {
    Run,
    Report,
}

impl OutDir {
    /// `chaos run`'s directory: `--out`, or a new `reports/<scenario>-<UTC time>/`.
    pub(super) fn check(opts: &RunOptions, s: &Scenario) -> Result<OutDir, RunError> {
        match &opts.out {
            Some(d) => OutDir::check_path(d, opts.force, OutFor::Run),
            None => Ok(OutDir {
                path: new_dir(&opts.reports_dir, &s.name),
                stale: Vec::new(),
            }),
        }
    }

    /// Check `dir` for use; nothing is changed.
    pub fn check_path(dir: &Path, force: bool, who: OutFor) -> Result<OutDir, RunError> {
        let werr = |source| RunError::Write {
            path: dir.display().to_string(),
            source,
        };
        let entries: Vec<std::fs::DirEntry> = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(werr(e)),
            Ok(it) => it.collect::<Result<_, _>>().map_err(werr)?,
        };
        let ok = |stale| {
            Ok(OutDir {
                path: dir.to_path_buf(),
                stale,
            })
        };
        if entries.is_empty() {
            return ok(Vec::new());
        }
        let names: Vec<String> = entries
            .iter()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let ours = |n: &str| RUN_FILES.contains(&n) || n.starts_with("rejudged-");
        let foreign: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !ours(n))
            .collect();
        let shown = |list: &[&str]| {
            let mut l: Vec<&str> = list.iter().take(4).copied().collect();
            if list.len() > 4 {
                l.push("…");
            }
            l.join(", ")
        };
        if !force {
            let what = if foreign.len() < names.len() {
                "a run"
            } else {
                "other files"
            };
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            let instead = match who {
                OutFor::Run => {
                    "Name a new directory (without --out every run gets a new \
                     reports/<scenario>-<time>/), or pass --force to empty it first"
                }
                OutFor::Report => {
                    "Name a new directory (without --out the reports go to a new \
                     RUN_DIR/rejudged-<time>/)"
                }
            };
            return Err(RunError::Usage(format!(
                "--out {} already holds {what} ({}): a run's evidence is never mixed with \
                 another's. {instead}",
                dir.display(),
                shown(&list)
            )));
        }
        if !foreign.is_empty() {
            return Err(RunError::Usage(format!(
                "--out {} holds files no run writes ({}): --force empties only a run directory; \
                 name an empty or new directory",
                dir.display(),
                shown(&foreign)
            )));
        }
        let still = still_applied(dir)?;
        if !still.is_empty() {
            return Err(RunError::Usage(format!(
                "--out {} holds a run whose faults may still be applied ({}): undo them with \
                 `chaos rollback {}` first; --force would delete the record it needs",
                dir.display(),
                still.join(", "),
                dir.display()
            )));
        }
        ok(entries.iter().map(std::fs::DirEntry::path).collect())
    }

    /// Empty what `--force` allowed, create the directory, and return its path.
    pub fn make(self) -> Result<PathBuf, RunError> {
        let werr = |p: &Path, source| RunError::Write {
            path: p.display().to_string(),
            source,
        };
        for p in &self.stale {
            // symlink_metadata: a link is removed, never followed.
            let is_dir = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
            let r = if is_dir {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
            r.map_err(|e| werr(p, e))?;
        }
        std::fs::create_dir_all(&self.path).map_err(|e| werr(&self.path, e))?;
        Ok(self.path)
    }
}

/// Faults an earlier run in `dir` may have left applied: its journal's open faults, or — with
/// no journal — those its report.json lists as `revert_failed`.
fn still_applied(dir: &Path) -> Result<Vec<String>, RunError> {
    let unreadable = |what: &Path, e: String| {
        RunError::Usage(format!(
            "--out {}: {} cannot be read ({e}); a fault may still be applied: check it, then \
             remove the directory by hand",
            dir.display(),
            what.display()
        ))
    };
    let journal = dir.join("journal.jsonl");
    if journal.exists() {
        let records =
            fault::journal::read(&journal).map_err(|e| unreadable(&journal, e.to_string()))?;
        return Ok(fault::journal::open_faults(&records)
            .into_iter()
            .map(|r| r.fault)
            .collect());
    }
    let report = dir.join("report.json");
    if !report.exists() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = std::fs::read_to_string(&report)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| unreadable(&report, e))?;
    Ok(v["timeline"]["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["status"] == "revert_failed")
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect())
}
