//! The orchestration of one run, in DESIGN.md's order: load the scenario, check the target,
//! drive the load (recorder inside), evaluate SLOs, write the reports, decide the exit code.
//!
//! Faults: this build has no fault driver yet (the sandbox and aws drivers arrive with their
//! issues). A scenario with faults runs against a plain URL only with `--skip-faults`, and every
//! skipped fault is written into the reports as skipped — never silently dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::load::{self, engine::EngineError, Progress};
use crate::report::{self, FaultRecord, FaultStatus, RunReport, Verdict};
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
    /// How often the progress view updates.
    pub progress_every: Duration,
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
            progress_every: Duration::from_secs(1),
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
    check_time_scale(time_scale)?;
    let s = scenario::load(arg)?;
    Ok(if time_scale == 1.0 {
        s
    } else {
        s.time_scaled(time_scale)
    })
}

pub async fn run(
    opts: &RunOptions,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunOutcome, RunError> {
    let scenario = prepare(&opts.scenario, opts.time_scale)?;
    let Some(url) = opts.target_url.clone() else {
        return Err(RunError::Usage(
            "no target: the embedded sandbox (the default target) is not built yet; \
             pass --target-url http://HOST:PORT to run the load against a running service"
                .into(),
        ));
    };
    if !scenario.faults.is_empty() && !opts.skip_faults {
        let list: Vec<String> = scenario
            .faults
            .iter()
            .map(|f| format!("{} ({})", f.name, f.kind.name()))
            .collect();
        return Err(RunError::Usage(format!(
            "scenario `{}` injects {} fault(s): {}; a plain --target-url has no fault driver. \
             Pass --skip-faults to run the load alone (the faults are reported as skipped)",
            scenario.name,
            list.len(),
            list.join(", ")
        )));
    }
    load::engine::check_url(&url)?;
    // Create the run directory before any traffic: an unwritable --out fails fast.
    let dir = run_dir(opts, &scenario)?;

    let timeline = Timeline::of(&scenario);
    let segments = load::schedule::segments(&scenario.load.stages);
    let result = load::run(
        &scenario.load,
        &url,
        shutdown.clone(),
        progress,
        opts.progress_every,
    )
    .await?;

    let slo = slo::evaluate(&scenario.slo.objectives, &result.recording, &timeline);
    let interrupted = result.interrupted || shutdown.is_triggered();
    let verdict = if interrupted {
        Verdict::Interrupted
    } else if slo::all_pass(&slo) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let faults = scenario
        .faults
        .iter()
        .map(|f| FaultRecord {
            name: f.name.clone(),
            kind: f.kind.name().to_string(),
            status: FaultStatus::Skipped,
            note: "not injected: the target is a plain URL with no fault driver (--skip-faults)"
                .into(),
        })
        .collect();
    let rep = RunReport {
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
        verdict,
    };
    let summary = write_reports(&dir, &rep)?;
    Ok(RunOutcome {
        dir,
        report: rep,
        summary,
    })
}

fn run_dir(opts: &RunOptions, s: &Scenario) -> Result<PathBuf, RunError> {
    let werr = |path: &Path, source| RunError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => {
            let stamp: String = report::utc(std::time::SystemTime::now())
                .chars()
                .filter(|c| !matches!(c, '-' | ':'))
                .collect();
            let base = opts.reports_dir.join(format!("{}-{stamp}", s.name));
            let mut dir = base.clone();
            let mut n = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{}-{n}", base.display()));
                n += 1;
            }
            dir
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| werr(&dir, e))?;
    Ok(dir)
}

/// Write report.json and summary.md (and append the summary to `GITHUB_STEP_SUMMARY` when set).
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
