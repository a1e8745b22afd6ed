//! The orchestration of one run, in DESIGN.md's order: load the scenario, check the target,
//! drive the load (recorder inside), evaluate SLOs, write the reports, decide the exit code.
//!
//! Targets: with no `--target-url`, the embedded sandbox is started as a child process and its
//! faults are done by the sandbox driver, journaled, and always reverted (at their time, at the
//! end, or on Ctrl-C/SIGTERM); the sandbox is stopped at the end. A plain `--target-url` has no
//! fault driver: a scenario with faults runs there only with `--skip-faults`, and every skipped
//! fault is written into the reports as skipped — never silently dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::drivers::sandbox::SandboxDriver;
use crate::fault::{self, journal::Journal, Driver as _};
use crate::load::{self, engine::EngineError, Progress};
use crate::report::{self, FaultRecord, FaultStatus, RunReport, Verdict};
use crate::sandbox::child::SandboxChild;
use crate::scenario::{self, LoadError, Scenario};
use crate::shutdown::Shutdown;
use crate::slo::{self, Timeline};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A scenario path or the name of a shipped scenario.
    pub scenario: String,
    pub target_url: Option<String>,
    /// The run directory; default `<reports_dir>/<scenario>-<UTC time>/`.
    pub out: Option<PathBuf>,
    pub reports_dir: PathBuf,
    pub time_scale: f64,
    pub skip_faults: bool,
    /// `--force`: empty an `--out` directory that holds an earlier run's files.
    pub force: bool,
    /// The control URL of a sandbox already running (`chaos sandbox up`), instead of starting one.
    pub sandbox_url: Option<String>,
    /// The program started as the sandbox child (`<exe> sandbox up`); default: this program.
    pub sandbox_exe: Option<PathBuf>,
    /// How often the progress view updates.
    pub progress_every: Duration,
    /// `--set key.path=value` overrides and `--env NAME=value` values for the scenario.
    pub set: Vec<String>,
    pub env: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            scenario: String::new(),
            target_url: None,
            out: None,
            reports_dir: PathBuf::from("reports"),
            time_scale: 1.0,
            skip_faults: false,
            force: false,
            sandbox_url: None,
            sandbox_exe: None,
            progress_every: Duration::from_secs(1),
            set: Vec::new(),
            env: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scenario(#[from] LoadError),
    /// Bad flags or a scenario/target combination that cannot run.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot write the run directory {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// DESIGN.md's exit codes: everything here is bad input (2) — a scenario, a flag, a target
    /// URL, a CA file, an unwritable output directory.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

pub struct RunOutcome {
    pub dir: PathBuf,
    pub report: RunReport,
    pub summary: String,
}

/// Check flags that do not depend on the scenario.
pub fn check_time_scale(f: f64) -> Result<(), RunError> {
    if f.is_finite() && f > 0.0 && f <= 100.0 {
        Ok(())
    } else {
        Err(RunError::Usage(format!(
            "--time-scale {f} is out of range: give a factor in (0, 100], e.g. 0.1 to run ten times faster"
        )))
    }
}

/// Load and time-scale the scenario (what `check`, `plan` and `run` share).
pub fn prepare(arg: &str, time_scale: f64) -> Result<Scenario, RunError> {
    prepare_with(arg, time_scale, &scenario::Params::default())
}

/// [`prepare`] with overrides, an environment mode and the target's zones.
pub fn prepare_with(
    arg: &str,
    time_scale: f64,
    params: &scenario::Params,
) -> Result<Scenario, RunError> {
    check_time_scale(time_scale)?;
    let s = scenario::load_with(arg, params)?;
    Ok(if time_scale == 1.0 {
        s
    } else {
        s.time_scaled(time_scale)
    })
}

/// Where the load goes and how faults are done.
enum Target {
    /// A plain URL: no fault driver (faults only with --skip-faults, reported as skipped).
    Url(String),
    /// The embedded sandbox, started here as a child process and stopped at the end.
    Spawned(SandboxChild),
    /// A sandbox already running (`chaos sandbox up` elsewhere), by its control URL.
    Existing { lb_url: String, control_url: String },
}

impl Target {
    fn url(&self) -> &str {
        match self {
            Target::Url(u) => u,
            Target::Spawned(c) => &c.lb_url,
            Target::Existing { lb_url, .. } => lb_url,
        }
    }
    fn control_url(&self) -> Option<&str> {
        match self {
            Target::Url(_) => None,
            Target::Spawned(c) => Some(&c.control_url),
            Target::Existing { control_url, .. } => Some(control_url),
        }
    }
    fn stop(self) {
        if let Target::Spawned(c) = self {
            c.stop();
        }
    }
}

pub async fn run(
    opts: &RunOptions,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunOutcome, RunError> {
    let params = scenario::Params::run(&opts.set, &opts.env, opts.target_url.is_none());
    let scenario = prepare_with(&opts.scenario, opts.time_scale, &params)?;
    if let Some(url) = &opts.target_url {
        if opts.sandbox_url.is_some() {
            return Err(RunError::Usage(
                "--target-url and --sandbox-url exclude each other: name one target".into(),
            ));
        }
        if !scenario.faults.is_empty() && !opts.skip_faults {
            let list: Vec<String> = scenario
                .faults
                .iter()
                .map(|f| format!("{} ({})", f.name, f.kind.name()))
                .collect();
            return Err(RunError::Usage(format!(
                "scenario `{}` injects {}: {}; a plain --target-url has no fault driver. \
                 Pass --skip-faults to run the load alone (the faults are reported as skipped), \
                 or leave --target-url out to run on the embedded sandbox",
                scenario.name,
                report::plural(list.len(), "fault"),
                list.join(", ")
            )));
        }
        load::engine::check_url(url)?;
    }
    // The run directory is checked first (an --out holding another run is refused before
    // anything happens), emptied (--force) only once a sandbox named by --sandbox-url answers,
    // and created before any traffic: an unwritable --out fails fast.
    let out = OutDir::check(opts, &scenario)?;
    let existing = match (&opts.target_url, &opts.sandbox_url) {
        (None, Some(ctl)) => {
            let d = SandboxDriver::new(ctl);
            let res = d.call("GET", "/resources").await.map_err(|e| {
                RunError::Usage(format!(
                    "--sandbox-url {ctl}: no sandbox answers there ({e})"
                ))
            })?;
            Some(Target::Existing {
                lb_url: res["lb_url"].as_str().unwrap_or_default().to_string(),
                control_url: ctl.trim_end_matches('/').to_string(),
            })
        }
        _ => None,
    };
    let dir = out.make()?;
    let target = match (&opts.target_url, existing) {
        (Some(u), _) => Target::Url(u.clone()),
        (None, Some(t)) => t,
        (None, None) => {
            let exe = match &opts.sandbox_exe {
                Some(p) => p.clone(),
                None => std::env::current_exe().map_err(|e| {
                    RunError::Usage(format!(
                        "cannot find this program to start the sandbox: {e}"
                    ))
                })?,
            };
            let events = dir.join("sandbox-events.jsonl");
            let ts = opts.time_scale;
            let spec = scenario.sandbox.clone();
            let child =
                tokio::task::spawn_blocking(move || SandboxChild::start(&exe, &events, ts, &spec))
                    .await
                    .map_err(|e| RunError::Usage(format!("cannot start the sandbox: {e}")))?
                    .map_err(RunError::Usage)?;
            wait_healthy(&child.control_url).await.map_err(|e| {
                RunError::Usage(format!("the sandbox started but is not healthy: {e}"))
            })?;
            Target::Spawned(child)
        }
    };
    let r = run_on(opts, scenario, &target, &dir, shutdown, progress).await;
    if let Target::Existing { control_url, .. } = &target {
        // The sandbox's ground truth for this run, from the sandbox itself.
        if let Ok(ev) = SandboxDriver::new(control_url).call("GET", "/events").await {
            let lines: Vec<String> = ev
                .as_array()
                .map(|a| a.iter().map(|e| e.to_string()).collect())
                .unwrap_or_default();
            let _ = std::fs::write(dir.join("sandbox-events.jsonl"), lines.join("\n") + "\n");
        }
    }
    let _ = tokio::task::spawn_blocking(move || target.stop()).await;
    let rep = r?;
    let summary = write_reports(&dir, &rep)?;
    Ok(RunOutcome {
        dir,
        report: rep,
        summary,
    })
}

/// The run proper on a resolved target: plan faults, drive load and faults together, judge.
async fn run_on(
    opts: &RunOptions,
    scenario: Scenario,
    target: &Target,
    dir: &Path,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunReport, RunError> {
    let url = target.url().to_string();
    // `--skip-faults`: no fault is planned, injected or journaled, on any target; each is
    // reported as skipped and its windows as not judged.
    let driver = target
        .control_url()
        .filter(|_| !opts.skip_faults)
        .map(SandboxDriver::new);
    // Plan every fault before any traffic: a fault the target cannot do stops the run here,
    // never halfway through it.
    let mut plans = Vec::new();
    if let Some(d) = &driver {
        for f in &scenario.faults {
            let p = d
                .plan(f)
                .await
                .map_err(|e| RunError::Usage(e.to_string()))?;
            plans.push(p);
        }
    }
    let journal = if driver.is_some() && !scenario.faults.is_empty() {
        let path = dir.join("journal.jsonl");
        Some(Journal::create(&path).map_err(|e| RunError::Write {
            path: path.display().to_string(),
            source: e,
        })?)
    } else {
        None
    };

    let timeline = Timeline::of(&scenario);
    let segments = load::schedule::segments(&scenario.load.stages);
    // The run's one clock: the schedule's offsets, the fault timeline and the report's
    // started_at all count from this epoch.
    let clock = crate::clock::Clock::start();
    let mut watch = AbortWatch::new(&scenario.abort, progress, shutdown.clone());
    // Abort conditions are judged per tick: tick at least once per recorder interval.
    let tick = opts.progress_every.min(scenario.load.interval);
    let load_fut = load::run(
        &scenario.load,
        &url,
        clock,
        shutdown.clone(),
        &mut watch,
        tick,
    );
    // Self-test hook for the panic path (tests only): panic after N seconds in the load path,
    // or with CHAOS_SELFTEST_PANIC_IN=faults in the fault timeline. Debug builds only: a
    // release binary never reads these variables.
    let panic_after = std::env::var("CHAOS_SELFTEST_PANIC_AFTER_S")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse::<f64>().ok());
    let panic_in_faults = std::env::var("CHAOS_SELFTEST_PANIC_IN").as_deref() == Ok("faults");
    let load_fut = async move {
        match panic_after.filter(|_| !panic_in_faults) {
            Some(s) => tokio::select! {
                r = load_fut => r,
                _ = tokio::time::sleep(Duration::from_secs_f64(s)) => panic!("self-test panic"),
            },
            None => load_fut.await,
        }
    };
    // A panic in the load path must not skip the reverts: it is caught here, the run is shut
    // down, the fault timeline reverts everything, and only then is the panic resumed.
    let sd = shutdown.clone();
    let load_fut = async move {
        let r = CatchUnwind(Box::pin(load_fut)).await;
        // A panic, or the load ending before its time for any reason (its scheduler died):
        // stop the fault timeline too, so no fault is injected into a run without traffic.
        if !matches!(&r, Ok(Ok(res)) if !res.interrupted) {
            sd.trigger();
        }
        r
    };
    // A panic in the fault timeline (or a driver) is caught too: the run is shut down and
    // whatever the journal shows applied is reverted from it, as `chaos rollback` would.
    let faults_fut = async {
        let (Some(d), Some(j)) = (&driver, &journal) else {
            return None;
        };
        let timeline_fut = async {
            let t = fault::run_timeline(
                &scenario.faults,
                &plans,
                d,
                j,
                clock.epoch(),
                timeline.total,
                &shutdown,
            );
            match panic_after.filter(|_| panic_in_faults) {
                Some(s) => tokio::select! {
                    r = t => r,
                    _ = tokio::time::sleep(Duration::from_secs_f64(s)) => panic!("self-test panic in the fault timeline"),
                },
                None => t.await,
            }
        };
        let r = CatchUnwind(Box::pin(timeline_fut)).await;
        if r.is_err() {
            shutdown.trigger();
        }
        Some(r)
    };
    let (result, outcomes) = tokio::join!(load_fut, faults_fut);
    let outcomes = match outcomes {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(panic)) => {
            let driver_for = |u: &fault::Undo| -> Option<Box<dyn fault::Driver>> {
                SandboxDriver::from_undo(u).map(|d| Box::new(d) as Box<dyn fault::Driver>)
            };
            let still: Vec<String> = match &journal {
                None => Vec::new(),
                Some(j) => match fault::rollback(j.path(), &driver_for).await {
                    Ok(done) => done
                        .into_iter()
                        .filter(|r| r.result.is_err())
                        .map(|r| r.fault)
                        .collect(),
                    Err(e) => vec![format!("(journal unreadable: {e})")],
                },
            };
            report_panic(&still, dir);
            std::panic::resume_unwind(panic);
        }
    };
    let result = match result {
        Ok(r) => r?,
        Err(panic) => {
            let still: Vec<String> = outcomes
                .iter()
                .flatten()
                .filter(|o| o.status == fault::Status::RevertFailed)
                .map(|o| o.name.clone())
                .collect();
            report_panic(&still, dir);
            std::panic::resume_unwind(panic);
        }
    };
    let aborted = watch.fired.take();

    // Stopped by Ctrl-C/SIGTERM (an abort condition also stops the load early, but the run ran
    // its course as the scenario asked: its acknowledged writes are still read back).
    let interrupted = aborted.is_none() && (result.interrupted || shutdown.is_triggered());
    // The data check, once the faults are reverted (run_timeline returns only then).
    let verification = if !interrupted && !result.durable_writes.is_empty() {
        match crate::verify::read_back(&url, &scenario.load.client, &result.durable_writes).await {
            Ok(v) => Some(v),
            Err(e) => {
                return Err(RunError::Usage(format!(
                    "cannot read back durable writes: {e}"
                )))
            }
        }
    } else {
        None
    };
    let faults: Vec<FaultRecord> = match outcomes {
        Some(outcomes) => outcomes
            .into_iter()
            .zip(&plans)
            .map(|(o, p)| FaultRecord {
                status: match o.status {
                    fault::Status::Reverted => FaultStatus::Reverted,
                    fault::Status::NotReached => FaultStatus::NotReached,
                    fault::Status::InjectFailed => FaultStatus::InjectFailed,
                    fault::Status::Unconfirmed => FaultStatus::Unconfirmed,
                    fault::Status::RevertFailed => FaultStatus::RevertFailed,
                },
                note: match &o.error {
                    Some(e) if o.status == fault::Status::RevertFailed => format!(
                        "{e}; still applied on {}: undo with `chaos rollback {}`",
                        p.targets.join(", "),
                        dir.display()
                    ),
                    Some(e) => e.clone(),
                    None if p.revert.is_empty() => {
                        format!(
                            "on {} (nothing to revert: it stays done)",
                            p.targets.join(", ")
                        )
                    }
                    None => format!("on {}", p.targets.join(", ")),
                },
                name: o.name,
                kind: o.kind,
                injected_at_s: o.injected_at_s,
                reverted_at_s: o.reverted_at_s,
            })
            .collect(),
        None => scenario
            .faults
            .iter()
            .map(|f| FaultRecord {
                name: f.name.clone(),
                kind: f.kind.name().to_string(),
                status: FaultStatus::Skipped,
                note: if target.control_url().is_some() {
                    "not injected: --skip-faults".into()
                } else {
                    "not injected: the target is a plain URL with no fault driver (--skip-faults)"
                        .into()
                },
                injected_at_s: None,
                reverted_at_s: None,
            })
            .collect(),
    };
    // SLOs and recovery are judged on the faults as they really were applied: from each
    // injection to its revert (a slow inject call moves "during" with it), the scheduled times
    // for a fault that never ran.
    let (slo, recoveries) = slo::judge_run(
        &scenario,
        &result.recording,
        &timeline,
        faults
            .iter()
            .map(|f| (f.name.as_str(), f.injected_at_s, f.reverted_at_s)),
        &report::unapplied(&faults),
        crate::verify::data_check(
            verification.as_ref(),
            !interrupted,
            result.durable_without_id,
        )
        .as_ref(),
        opts.time_scale,
    );
    let verdict = Verdict::of_run(&faults, aborted.is_some(), interrupted, &slo);
    // The journal as written (fsynced records); what rollback would read.
    let journal = journal
        .as_ref()
        .and_then(|j| fault::journal::read(j.path()).ok())
        .unwrap_or_default();
    Ok(RunReport {
        journal,
        scenario,
        target_url: url,
        time_scale: opts.time_scale,
        started_at: result.started_at,
        wall: result.wall,
        interrupted,
        scheduled: result.scheduled,
        timeline,
        segments,
        recording: result.recording,
        slo,
        faults,
        durable_writes: result.durable_writes,
        durable_without_id: result.durable_without_id,
        aborted,
        verification,
        recoveries,
        verdict,
    })
}

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
    fn check(opts: &RunOptions, s: &Scenario) -> Result<OutDir, RunError> {
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
        let records = fault::journal::read(&journal).map_err(|e| unreadable(&journal, e))?;
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

/// Write report.json, junit.xml, report.html and summary.md (and append the summary to `GITHUB_STEP_SUMMARY` when set).
/// Returns the summary text.
pub fn write_reports(dir: &Path, rep: &RunReport) -> Result<String, RunError> {
    let werr = |path: PathBuf, source| RunError::Write {
        path: path.display().to_string(),
        source,
    };
    let json = report::json::render(rep);
    let path = dir.join("report.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
    std::fs::write(&path, text).map_err(|e| werr(path, e))?;
    let path = dir.join("junit.xml");
    std::fs::write(&path, report::junit::render(rep)).map_err(|e| werr(path, e))?;
    let path = dir.join("report.html");
    std::fs::write(&path, report::html::render(rep)).map_err(|e| werr(path, e))?;
    let summary = report::markdown::render(rep);
    let path = dir.join("summary.md");
    std::fs::write(&path, &summary).map_err(|e| werr(path, e))?;
    if let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write as _;
        let path = PathBuf::from(p);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| werr(path.clone(), e))?;
        f.write_all(summary.as_bytes())
            .map_err(|e| werr(path.clone(), e))?;
    }
    Ok(summary)
}

/// Watches the live view for `[abort]` conditions and stops the run when one holds for its
/// whole `for` stretch; passes every update on to the real progress view.
/// Abort conditions, judged at every progress tick over a sliding window: `errors > 50% for
/// 10s` fires when the responses of the last 10 s (a whole window of them: not before 10 s of
/// run) have an error rate over 50%, with enough of them to judge it (as an SLO would need).
struct AbortWatch<'a> {
    conds: &'a [scenario::AbortCondition],
    inner: &'a mut dyn Progress,
    shutdown: Arc<Shutdown>,
    /// The last ticks, (elapsed at the tick, its statistics), as long as the longest window.
    ticks: std::collections::VecDeque<(Duration, crate::metrics::Stats)>,
    first_tick: Option<Duration>,
    fired: Option<(String, f64)>,
}

impl<'a> AbortWatch<'a> {
    fn new(
        conds: &'a [scenario::AbortCondition],
        inner: &'a mut dyn Progress,
        shutdown: Arc<Shutdown>,
    ) -> Self {
        AbortWatch {
            ticks: std::collections::VecDeque::new(),
            first_tick: None,
            conds,
            inner,
            shutdown,
            fired: None,
        }
    }
}

impl Progress for AbortWatch<'_> {
    fn update(&mut self, s: &load::ProgressSnapshot) {
        self.inner.update(s);
        if self.fired.is_some() || self.conds.is_empty() {
            return;
        }
        // A tick covers the time since the one before it: the first starts at 0.
        let started = *self.first_tick.get_or_insert(Duration::ZERO);
        self.ticks.push_back((s.elapsed, s.live.clone()));
        let longest = self
            .conds
            .iter()
            .map(|c| c.sustain)
            .max()
            .unwrap_or_default();
        while self
            .ticks
            .front()
            .is_some_and(|(t, _)| s.elapsed.saturating_sub(*t) > longest)
        {
            self.ticks.pop_front();
        }
        for c in self.conds {
            if s.elapsed.saturating_sub(started) < c.sustain {
                continue; // not a whole window yet
            }
            // Ticks ending within the last `sustain`, each covering the tick interval before it.
            let mut merged = crate::metrics::Stats::default();
            // (`for 0s`: the current tick alone.)
            for (t, st) in &self.ticks {
                if s.elapsed.saturating_sub(*t) < c.sustain || *t == s.elapsed {
                    merged.add(st);
                }
            }
            let as_slo = scenario::Objective {
                text: c.text.clone(),
                window: scenario::Window::Whole,
                trim: None,
                request: None,
                metric: c.metric,
                op: c.op,
                bound: c.bound,
            };
            // Judged as an SLO would be (value, enough samples); the abort fires when the
            // expression holds.
            let judged = slo::judge(&as_slo, &merged);
            let holds = judged.status != slo::Status::InsufficientData
                && judged.value.is_some_and(|v| c.op.holds(v, c.bound));
            if holds {
                self.fired = Some((c.text.clone(), s.elapsed.as_secs_f64()));
                self.shutdown.trigger();
                return;
            }
        }
    }

    fn finish(&mut self, s: &load::ProgressSnapshot) {
        self.inner.finish(s);
    }
}

/// Wait (at most 10 s) until the sandbox's load balancer holds every app node healthy: the
/// run's baseline starts on a whole stack.
async fn wait_healthy(control_url: &str) -> Result<(), String> {
    let d = SandboxDriver::new(control_url);
    let t = std::time::Instant::now();
    loop {
        let last = match d.call("GET", "/resources").await {
            Ok(v) => {
                let apps: Vec<&serde_json::Value> = v["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["role"] == "app")
                    .collect();
                let sick: Vec<&str> = apps
                    .iter()
                    .filter(|r| r["lb_healthy"] != true)
                    .filter_map(|r| r["id"].as_str())
                    .collect();
                if !apps.is_empty() && sick.is_empty() {
                    return Ok(());
                }
                format!(
                    "app nodes not healthy in the load balancer: {}",
                    sick.join(", ")
                )
            }
            Err(e) => e.to_string(),
        };
        if t.elapsed() > Duration::from_secs(10) {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a caught panic, with the faults reverted as far as possible: say so, and what is left.
fn report_panic(still: &[String], dir: &Path) {
    crate::cli::output::err(&format!(
        "internal error: the run panicked; {}",
        if still.is_empty() {
            "every applied fault was reverted".to_string()
        } else {
            format!(
                "STILL APPLIED: {} — undo with `chaos rollback {}`",
                still.join(", "),
                dir.display()
            )
        }
    ));
}

/// Runs a future, turning a panic inside it into an `Err` (so cleanup can still run).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(p) => std::task::Poll::Ready(Err(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Outcome, Sample, Stats};

    /// A tick of `n` responses, `bad` of them 5xx, each taking `ms`.
    fn tick(n: u64, bad: u64, ms: u64) -> Stats {
        let mut s = Stats::default();
        for i in 0..n {
            s.record(&Sample {
                request: 0,
                intended: Duration::ZERO,
                latency_us: ms * 1000,
                service_us: ms * 1000,
                lateness_us: 0,
                outcome: if i < bad {
                    Outcome::Http5xx
                } else {
                    Outcome::Ok
                },
                attempts: 1,
                exhausted: false,
                status: 0,
            });
        }
        s
    }

    fn snap(at_s: u64, live: Stats) -> load::ProgressSnapshot {
        load::ProgressSnapshot {
            elapsed: Duration::from_secs(at_s),
            total: Duration::from_secs(60),
            target_rps: 100.0,
            achieved_rps: 100.0,
            p99_us: None,
            error_rate: live.error_rate(),
            in_flight: 0,
            completed: live.requests(),
            live,
        }
    }

    fn condition(text: &str) -> scenario::AbortCondition {
        let (expr, sustain) = text.rsplit_once(" for ").unwrap();
        let (metric, op, bound) = scenario::values::slo_expr(expr).unwrap();
        scenario::AbortCondition {
            text: text.into(),
            metric,
            op,
            bound,
            sustain: scenario::values::duration(sustain).unwrap(),
        }
    }

    /// Feed one tick a second; the second at which the watch fired.
    fn fires_at(cond: &str, ticks: Vec<Stats>) -> Option<f64> {
        let conds = [condition(cond)];
        let mut quiet = load::engine::NoProgress;
        let mut w = AbortWatch::new(&conds, &mut quiet, Arc::new(Shutdown::new()));
        for (i, t) in ticks.into_iter().enumerate() {
            w.update(&snap(i as u64 + 1, t));
        }
        w.fired.map(|f| f.1)
    }

    #[test]
    fn abort_conditions_judge_a_sliding_window_of_ticks() {
        // Error rate over the last 2 s: 1 s of 100% errors after a good second is 50%, not
        // over 50%; a second bad second makes the window 100%.
        let ticks = || vec![tick(100, 0, 10), tick(100, 100, 10), tick(100, 100, 10)];
        assert_eq!(fires_at("errors > 50% for 2s", ticks()), Some(3.0));
        // Never before a whole window: a first bad second does not fire a 2 s condition.
        assert_eq!(
            fires_at("errors > 50% for 2s", vec![tick(100, 100, 10)]),
            None
        );
        // A short burst inside a longer window is diluted: 1 bad second in 5 is 20%.
        let mut five = vec![tick(100, 0, 10); 5];
        five[2] = tick(100, 100, 10);
        assert_eq!(fires_at("errors > 50% for 5s", five), None);
        // Any live metric: p95 over the window (half of its responses slow: p95 is slow at
        // once), and amplification.
        let slow = || vec![tick(100, 0, 10), tick(100, 0, 3000), tick(100, 0, 3000)];
        assert_eq!(fires_at("p95 > 2s for 2s", slow()), Some(2.0));
        assert_eq!(fires_at("p50 > 2s for 2s", slow()), Some(3.0));
        assert_eq!(fires_at("amplification > 1.5 for 2s", slow()), None);
        // `for 0s`: the current tick alone decides.
        assert_eq!(fires_at("errors > 50% for 0s", ticks()), Some(2.0));
        // Too few responses to judge a p99 (100 needed): no abort on 10 slow ones.
        let few = vec![tick(10, 0, 9000), tick(10, 0, 9000)];
        assert_eq!(fires_at("p99 > 5s for 2s", few), None);
    }
}
