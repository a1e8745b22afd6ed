//! The orchestration of one run, in DESIGN.md's order: load the target and the scenario,
//! connect to the target ([`crate::target`]), build the run plan ([`plan::build`]), drive the
//! load and the fault timeline together, read back durable writes, judge the SLOs, write the
//! reports ([`crate::report::write`]). The parts live in their own modules; this file only
//! sequences them and owns what must hold across them: every applied fault is reverted (at its
//! time, at the end, on Ctrl-C/SIGTERM, on an abort, on a panic) before the run returns — the
//! run proper, where that is kept, is [`execute`].
//!
//! Targets: with no `--target`, the embedded sandbox is started as a child process and stopped
//! at the end. A `url` target has no fault driver: a scenario with faults runs there only with
//! `--skip-faults`, and every skipped fault is written into the reports as skipped — never
//! silently dropped. Tests bring their own system and driver through [`run_connected`].

pub mod conductor;
mod execute;
pub mod gameday;
mod outdir;
pub mod plan;
pub mod shard;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use outdir::{new_dir, OutDir, OutFor};
pub use plan::{build, BuildError, RunPlan, Skipped};

use crate::fault::{self, journal::Journal};
use crate::load::{self, engine::EngineError, Progress};
use crate::report::{self, FaultRecord, FaultStatus, RunReport};
use crate::scenario::{self, LoadError, Scenario};
use crate::shutdown::Shutdown;
use crate::slo::{abort::AbortWatch, Timeline};
use crate::target::{self, Connected, TargetError, TargetFile};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A scenario path or the name of a shipped scenario.
    pub scenario: String,
    /// `--target FILE|NAME`: a target file or the name of a shipped target.
    pub target: Option<String>,
    /// `--target-url URL`: shorthand for a `url` target.
    pub target_url: Option<String>,
    /// The run directory; default `<reports_dir>/<scenario>-<UTC time>/`.
    pub out: Option<PathBuf>,
    pub reports_dir: PathBuf,
    pub time_scale: f64,
    pub skip_faults: bool,
    /// `--force`: empty an `--out` directory that holds an earlier run's files.
    pub force: bool,
    /// `--sandbox-url URL`: shorthand for a `sandbox` target already running.
    pub sandbox_url: Option<String>,
    /// The program started as the sandbox child (`<exe> sandbox up`); default: this program.
    pub sandbox_exe: Option<PathBuf>,
    /// How often the progress view updates.
    pub progress_every: std::time::Duration,
    /// `--set key.path=value` overrides and `--env NAME=value` values for the scenario.
    pub set: Vec<String>,
    pub env: Vec<String>,
    /// `--yes`: no confirmation asked before faults on a cloud target.
    pub yes: bool,
    /// `--shard I/N`: this run is one shard of a run split over N machines (see [`shard`]).
    pub shard: Option<shard::Shard>,
    /// `--start-at`: the wall-clock instant the run's clock starts (every shard's, the same).
    pub start_at: Option<std::time::SystemTime>,
    /// `--conductor HOST:PORT`: where the conductor serves its fault times to the other shards
    /// (see [`conductor`]).
    pub conductor: Option<String>,
    /// `--gameday`: faults may also be injected and reverted by hand, notes written
    /// (`chaos inject|revert|note <run-dir>`, through [`gameday`]).
    pub gameday: bool,
    /// Set to the run directory once the game-day desk is open (what a console waits for).
    pub desk_opened: Option<Arc<std::sync::OnceLock<PathBuf>>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            scenario: String::new(),
            target: None,
            target_url: None,
            out: None,
            reports_dir: PathBuf::from("reports"),
            time_scale: 1.0,
            skip_faults: false,
            force: false,
            sandbox_url: None,
            sandbox_exe: None,
            progress_every: std::time::Duration::from_secs(1),
            set: Vec::new(),
            env: Vec::new(),
            yes: false,
            shard: None,
            start_at: None,
            conductor: None,
            gameday: false,
            desk_opened: None,
        }
    }
}

/// Why a run did not happen or could not finish. Each variant knows its exit code
/// (DESIGN.md): bad input is 2; `main` maps once, through [`RunError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scenario(#[from] LoadError),
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Bad flags or a scenario/target combination that cannot run.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The target could not be started or reached.
    #[error(transparent)]
    Connect(#[from] target::ConnectError),
    /// The faults could not be planned on the target.
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot write the run directory {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] report::write::WriteError),
    /// The run finished, but its reports could not be written.
    #[error("the run ended {badge}: {reason}; but its reports could not be written: {source}")]
    Unreported {
        #[source]
        source: report::write::WriteError,
        badge: String,
        reason: String,
        /// The verdict's exit code.
        code: i32,
    },
    /// The recording does not fit the scenario (an invariant of a live run; a bug if seen).
    #[error(transparent)]
    Judge(#[from] report::judge::JudgeError),
    /// goose refused to run the users (`[users]`); the load and the faults were stopped and
    /// reverted.
    #[error("{0}")]
    Users(String),
    /// Ctrl-C or SIGTERM before the run started (at the confirmation prompt): nothing ran.
    #[error("interrupted before the run started: nothing was run")]
    Interrupted,
}

impl RunError {
    /// DESIGN.md's exit codes. Everything that stops a run before it starts is bad input or
    /// a target that cannot be used as given: 2. A run that finished but could not write its
    /// reports keeps its verdict's code (1/3/4/130), except a pass: without its reports it is 2.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Unreported { code, .. } => {
                if *code == 0 {
                    2
                } else {
                    *code
                }
            }
            RunError::Scenario(_)
            | RunError::Target(_)
            | RunError::Usage(_)
            | RunError::Users(_)
            | RunError::Engine(_)
            | RunError::Connect(_)
            | RunError::Build(_)
            | RunError::Write { .. }
            | RunError::Report(_)
            | RunError::Judge(_) => 2,
            RunError::Interrupted => 130,
        }
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

/// Requests per second one runtime worker thread sends comfortably (measured 2026-12-07: 12 µs
/// of CPU per request at 20,000 req/s on one worker, and 137,000 req/s at most on one worker
/// against nginx — this leaves it half of that).
const RATE_PER_WORKER: f64 = 60_000.0;

/// The async runtime's worker threads a run of this scenario needs: one per
/// [`RATE_PER_WORKER`] of its planned peak (the open model's highest stage, plus the users'
/// steps at their shortest think time), at least one, at most `cores`. Fewer workers is
/// cheaper per request: at a constant rate most of a request's CPU went to waking and parking
/// a second worker (measured: 45 µs per request at 5,000 req/s on two workers, 26 µs on one).
pub fn workers_for(s: &Scenario, cores: usize) -> usize {
    let load = s.load.stages.iter().map(|st| st.rps).fold(0.0, f64::max);
    let users = s.users.as_ref().map_or(0.0, |u| {
        f64::from(u.max_users()) / u.think_min.as_secs_f64().max(0.1)
    });
    workers_for_rate(load + users, cores)
}

/// Worker threads for `rate` requests per second (see [`workers_for`]).
pub fn workers_for_rate(rate: f64, cores: usize) -> usize {
    ((rate / RATE_PER_WORKER).ceil() as usize).clamp(1, cores.max(1))
}

/// [`workers_for`] the scenario `opts` names, read as [`run`] will read it; the machine's
/// cores when it cannot be read (the run then says why).
pub fn planned_workers(opts: &RunOptions, cores: usize) -> usize {
    let Ok(t) = target_of(
        opts.target.as_deref(),
        opts.target_url.as_deref(),
        opts.sandbox_url.as_deref(),
    ) else {
        return cores;
    };
    let params = scenario::Params {
        zones: t.zones(),
        ..scenario::Params::run(&opts.set, &opts.env, false)
    };
    prepare_with(&opts.scenario, opts.time_scale, &params).map_or(cores, |s| workers_for(&s, cores))
}

/// `--shard` and `--start-at` go together: shards that do not start at one agreed instant do
/// not run in lock step.
pub fn check_shard(opts: &RunOptions) -> Result<(), RunError> {
    if opts.shard.is_some() && opts.start_at.is_none() {
        return Err(RunError::Usage(
            "--shard needs --start-at: every shard starts its clock at that one instant, e.g. --start-at $(date -u -d '+30 seconds' +%FT%TZ) computed once for all shards".into(),
        ));
    }
    if let Some(at) = opts.start_at {
        late_start(at)?;
    }
    if let Some(c) = &opts.conductor {
        if opts.shard.is_none() {
            return Err(RunError::Usage(
                "--conductor goes with --shard: it is where shard 0 serves its fault times to the other shards".into(),
            ));
        }
        conductor::parse(c).map_err(RunError::Usage)?;
    }
    Ok(())
}

/// A start already past by more than [`shard::MAX_LATE`] is refused: that shard would not run
/// in lock step with the others.
fn late_start(at: std::time::SystemTime) -> Result<(), RunError> {
    if at
        .duration_since(std::time::SystemTime::now())
        .is_ok_and(|d| d > shard::MAX_AHEAD)
    {
        return Err(RunError::Usage(format!(
            "--start-at {} is more than a day ahead: a typo? (the run would wait for it)",
            shard::show_start_at(at)
        )));
    }
    match std::time::SystemTime::now().duration_since(at) {
        Ok(past) if past > shard::MAX_LATE => Err(RunError::Usage(format!(
            "--start-at {} passed {:.1} s ago: a shard that starts late does not run in lock step with the others; compute a start far enough ahead for every shard to be ready",
            shard::show_start_at(at),
            past.as_secs_f64()
        ))),
        _ => Ok(()),
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

/// The target the flags name: `--target`, or a shorthand, or the embedded sandbox. At most one.
pub fn target_of(
    target: Option<&str>,
    target_url: Option<&str>,
    sandbox_url: Option<&str>,
) -> Result<TargetFile, RunError> {
    match (target, target_url, sandbox_url) {
        (None, None, None) => Ok(TargetFile::default_sandbox()),
        (Some(t), None, None) => Ok(target::load(t)?),
        (None, Some(u), None) => {
            load::engine::check_url(u)?;
            Ok(TargetFile::from_url(u))
        }
        (None, None, Some(u)) => {
            load::engine::check_url(u)?;
            Ok(TargetFile::from_sandbox_url(u))
        }
        _ => Err(RunError::Usage(
            "--target, --target-url and --sandbox-url exclude each other: name one target".into(),
        )),
    }
}

pub async fn run(
    opts: &RunOptions,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunOutcome, RunError> {
    let t = target_of(
        opts.target.as_deref(),
        opts.target_url.as_deref(),
        opts.sandbox_url.as_deref(),
    )?;
    let params = scenario::Params {
        zones: t.zones(),
        ..scenario::Params::run(&opts.set, &opts.env, false)
    };
    let scenario = prepare_with(&opts.scenario, opts.time_scale, &params)?;
    for w in t.warnings.iter().chain(&scenario.warnings) {
        crate::cli::output::err(&scenario::Warning(w).to_string());
    }
    let settings = target::connect::settings_for(&t, &scenario.sandbox)?;
    check_shard(opts)?;
    if opts.gameday
        && (opts.skip_faults
            || opts.shard.is_some_and(|s| !s.is_conductor())
            || scenario.faults.is_empty()
            || !t.has_driver())
    {
        return Err(RunError::Usage(format!(
            "--gameday hands the scenario's faults to people: it needs faults, and a target that can inject them ({} {}), and not --skip-faults nor a shard that does not drive the faults",
            t.shown(),
            if t.has_driver() { "can" } else { "cannot" }
        )));
    }
    if opts.shard.is_some() && t.writes_into_run_dir() {
        return Err(RunError::Usage(format!(
            "--shard on {}: each shard would start a sandbox of its own, and the conductor's faults would miss the others' traffic; run every shard against one shared target (--sandbox-url URL of a `chaos sandbox up`, or a target file)",
            t.shown()
        )));
    }
    // Faults on a target without a driver are refused before the run directory is touched
    // (an --out --force is not emptied for a run that cannot start). A shard that is not the
    // conductor drives none.
    let drives = opts.shard.is_none_or(|s| s.is_conductor());
    if drives && !t.has_driver() && !scenario.faults.is_empty() && !opts.skip_faults {
        return Err(plan::no_driver(&scenario, &t.shown()).into());
    }
    // The run directory is checked first (an --out holding another run is refused before
    // anything happens), emptied (--force) only once a sandbox named by control_url answers,
    // and created before any traffic: an unwritable --out fails fast. A sandbox this run
    // starts writes its events into it, so it is made first then.
    let out = OutDir::check(opts, &scenario)?;
    let mode = |dir: &Path| target::Mode::Run {
        exe: opts.sandbox_exe.clone(),
        events: dir.join("sandbox-events.jsonl"),
        time_scale: opts.time_scale,
    };
    let (dir, connected) = if t.writes_into_run_dir() {
        let dir = out.make()?;
        let c = target::connect(&t, &settings, &mode(&dir)).await?;
        (dir, c)
    } else {
        let c = target::connect(&t, &settings, &mode(&out.path)).await?;
        match out.make() {
            Ok(dir) => (dir, c),
            Err(e) => {
                c.close(None).await;
                return Err(e);
            }
        }
    };
    run_connected(opts, scenario, connected, &dir, shutdown, progress).await
}

/// A run on a target already connected — what [`run`] does once it has one, and how tests run
/// the harness on a system and driver of their own (a driver that fails, stalls or panics).
/// `dir` must exist. The connection is closed before this returns.
pub async fn run_connected(
    opts: &RunOptions,
    scenario: Scenario,
    connected: Connected,
    dir: &Path,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunOutcome, RunError> {
    let plan = match opts.shard {
        Some(s) if !s.is_conductor() => Ok(plan::driven_by_conductor(&scenario, &connected)),
        // A game day may move any fault by hand: each is planned as if it could be on at any
        // time of the run, so no two pick the same node (the plans keep the faults as written).
        _ if opts.gameday => {
            let mut anytime = scenario.clone();
            for f in &mut anytime.faults {
                f.at = std::time::Duration::ZERO;
                f.duration = None;
            }
            build(&anytime, &connected, opts.skip_faults)
                .await
                .map_err(|e| match e {
                    plan::BuildError::Plan(d) => plan::BuildError::Plan(fault::DriverError::Unsupported(format!(
                        "{d} (under --gameday every fault is planned as if it could be on at any time of the run: faults this target cannot hold at once cannot be handed out together)"
                    ))),
                    e => e,
                })
                .map(|mut p| {
                    for (planned, f) in p.faults.iter_mut().zip(&scenario.faults) {
                        planned.fault = f.clone();
                    }
                    p
                })
        }
        _ => build(&scenario, &connected, opts.skip_faults).await,
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            connected.close(Some(dir)).await;
            return Err(e.into());
        }
    };
    if let Some(account) = connected.confirm.clone() {
        if !opts.yes && !plan.faults.is_empty() {
            if let Err(e) = confirm(&plan, &account, &shutdown).await {
                connected.close(Some(dir)).await;
                return Err(e);
            }
        }
    }
    let r = execute::execute(opts, scenario, &connected, plan, dir, shutdown, progress).await;
    connected.close(Some(dir)).await;
    let rep = r?;
    // The run happened: if its reports cannot be written, its verdict (and any fault still
    // applied) is still said, and its exit code kept unless it was a pass.
    let summary =
        report::write::write_reports(dir, &rep).map_err(|source| RunError::Unreported {
            source,
            badge: rep.verdict.badge().to_string(),
            reason: rep.reason(),
            code: rep.verdict.exit_code(),
        })?;
    Ok(RunOutcome {
        dir: dir.to_path_buf(),
        report: rep,
        summary,
    })
}

/// Ask on a terminal before faults on a cloud account: the blast radius, then the account id
/// typed back. Without a terminal nothing can answer: refused (CI passes `--yes`).
/// Ctrl-C or SIGTERM at the prompt ends it at once (exit 130), with nothing run.
async fn confirm(plan: &RunPlan, account: &str, shutdown: &Shutdown) -> Result<(), RunError> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return Err(RunError::Usage(format!(
            "a run with faults on {} asks for confirmation, and nothing can answer here (stdin is not a terminal): pass --yes to run it (`chaos plan` shows what it would do)",
            plan.target
        )));
    }
    crate::cli::output::err(plan.render().trim_end());
    crate::cli::output::err(&format!(
        "\nThese faults will be injected on {}. Type the account id ({account}) to go on:",
        plan.target
    ));
    // On a plain thread, not tokio's blocking pool: a runtime waits for its blocking tasks
    // when it is dropped, and a read left behind on Ctrl-C would hold the exit until Enter.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = tx.send(std::io::stdin().read_line(&mut s).map(|_| s));
    });
    let line = tokio::select! {
        r = rx => r.ok().and_then(Result::ok).unwrap_or_default(),
        _ = shutdown.wait() => return Err(RunError::Interrupted),
    };
    if line.trim() != account {
        return Err(RunError::Usage(
            "not confirmed (the account id was not typed): nothing was run".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_gets_one_worker_per_60000_planned_requests_per_second() {
        let shipped = |name: &str| prepare(name, 1.0).unwrap();
        // az-outage peaks at 800 req/s; the journeys' 200 users at 500 ms think: 400 steps/s.
        assert_eq!(workers_for(&shipped("az-outage"), 8), 1);
        assert_eq!(workers_for(&shipped("journeys-redis-partition"), 8), 1);
        assert_eq!(workers_for_rate(60_000.0, 8), 1);
        assert_eq!(workers_for_rate(60_001.0, 8), 2);
        assert_eq!(
            workers_for_rate(200_000.0, 4),
            4,
            "never more than the cores"
        );
        assert_eq!(workers_for_rate(0.0, 0), 1, "always one");
    }
}
