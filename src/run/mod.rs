//! The orchestration of one run, in DESIGN.md's order: load the target and the scenario,
//! connect to the target ([`crate::target`]), build the run plan ([`plan::build`]), drive the
//! load and the fault timeline together, read back durable writes, judge the SLOs, write the
//! reports ([`crate::report::write`]). The parts live in their own modules; this file only
//! sequences them and owns what must hold across them: every applied fault is reverted (at its
//! time, at the end, on Ctrl-C/SIGTERM, on an abort, on a panic) before the run returns.
//!
//! Targets: with no `--target`, the embedded sandbox is started as a child process and stopped
//! at the end. A `url` target has no fault driver: a scenario with faults runs there only with
//! `--skip-faults`, and every skipped fault is written into the reports as skipped — never
//! silently dropped. Tests bring their own system and driver through [`run_connected`].

pub mod conductor;
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
    let r = execute(opts, scenario, &connected, plan, dir, shutdown, progress).await;
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

/// The run proper on a built plan: drive load and faults together, read back, judge.
async fn execute(
    opts: &RunOptions,
    scenario: Scenario,
    connected: &Connected,
    plan: RunPlan,
    dir: &Path,
    shutdown: Arc<Shutdown>,
    progress: &mut dyn Progress,
) -> Result<RunReport, RunError> {
    let url = connected.base_url.clone();
    let driver = connected
        .driver
        .as_deref()
        .filter(|_| !plan.faults.is_empty());
    // The conductor feed (--conductor): served by shard 0 from before the start (the others
    // measure their clock offset meanwhile) until every other shard has read the end of its
    // timeline; read by the others.
    let board = opts
        .conductor
        .as_ref()
        .filter(|_| opts.shard.is_some_and(|s| s.is_conductor()))
        .map(|_| Arc::new(fault::live::Board::new(&plan.faults)));
    let served = match (&opts.conductor, &board, opts.shard) {
        (Some(addr), Some(b), Some(s)) => match conductor::serve(addr, b.clone(), s.count).await {
            Ok(served) => Some(served),
            Err(e) => {
                // Nothing written yet: the run directory goes too (only if empty).
                let _ = std::fs::remove_dir(dir);
                return Err(RunError::Usage(e));
            }
        },
        _ => None,
    };
    let follower = match (&opts.conductor, opts.shard) {
        (Some(addr), Some(s)) if !s.is_conductor() => Some(conductor::follow(addr, s.index)),
        _ => None,
    };
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
    let mut watch = AbortWatch::new(&scenario.abort, progress, shutdown.clone());
    // Abort conditions are judged per tick: tick at least once per recorder interval.
    let tick = opts.progress_every.min(scenario.load.interval);
    // The engine is built (requests prepared, TLS set up, a CA file read) before the clock
    // starts: its setup is not counted as the first sends' lateness.
    let mut engine = load::engine::Engine::new(&scenario.load, &url, load::engine::Mode::Open)?;
    if let Some(sh) = opts.shard {
        engine = engine.with_shard(sh)?;
    }
    if let Some(u) = &scenario.users {
        engine = engine.with_users(u, &url)?;
    }
    // The run's one clock: the schedule's offsets, the fault timeline, the recorder and the
    // report's started_at all count from this epoch — with --start-at, that agreed instant.
    let (clock, mut shards) = match opts.start_at {
        None => (crate::clock::Clock::start(), Vec::new()),
        Some(at) => start_at(at, opts.shard, &shutdown).await?,
    };
    tracing::info!(target_url = %url, "run clock started: the first arrivals are due now");
    // The game-day desk: open from the clock's start to the timeline's end (dropped below).
    let hands = (opts.gameday && driver.is_some() && journal.is_some()).then(|| {
        Arc::new(fault::manual::Hands::new(
            plan.faults.iter().map(|p| p.fault.name.as_str()),
        ))
    });
    let desk = match &hands {
        Some(h) => Some(
            gameday::open(h.clone(), dir, clock)
                .await
                .map_err(|source| RunError::Write {
                    path: dir.join(gameday::FILE).display().to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    if let (Some(_), Some(opened)) = (&desk, &opts.desk_opened) {
        let _ = opened.set(dir.to_path_buf());
    }
    let load_fut = engine.run(clock, shutdown.clone(), &mut watch, tick);
    // A panic in the load path must not skip the reverts: it is caught here, the run is shut
    // down, the fault timeline reverts everything, and only then is the panic resumed.
    let sd = shutdown.clone();
    let load_fut = async move {
        let r = crate::shutdown::CatchUnwind(Box::pin(load_fut)).await;
        // A panic, or the load ending before its time for any reason (its scheduler died):
        // stop the fault timeline too, so no fault is injected into a run without traffic.
        if !matches!(&r, Ok(res) if !res.interrupted) {
            sd.trigger();
        }
        r
    };
    // A panic in the fault timeline (or a driver) is caught too: the run is shut down and
    // whatever the journal shows applied is reverted from it, as `chaos rollback` would.
    let faults_fut = async {
        let (Some(d), Some(j)) = (driver, &journal) else {
            return None;
        };
        let t = fault::run_timeline(
            &plan.faults,
            d,
            j,
            (clock.epoch(), timeline.total),
            &shutdown,
            hands.as_deref(),
            board.as_deref(),
        );
        let r = crate::shutdown::CatchUnwind(Box::pin(t)).await;
        if r.is_err() {
            shutdown.trigger();
        }
        Some(r)
    };
    let (result, timeline_result) = tokio::join!(load_fut, faults_fut);
    // The feed says "over" only once every fault is: after a panic in the timeline the
    // rollback below is still to come, so the followers are left to their silence limit.
    if let Some(s) = served
        .as_ref()
        .filter(|_| !matches!(timeline_result, Some(Err(_))))
    {
        s.linger().await;
    }
    drop(served);
    // Every fault is over: no more hands (notes typed after this are refused: the file is gone).
    drop(desk);
    let notes = hands.as_ref().map(|h| h.notes()).unwrap_or_default();
    let (outcomes, events) = match timeline_result {
        None => (None, Vec::new()),
        Some(Ok(t)) => (Some(t.outcomes), t.events),
        Some(Err(panic)) => {
            let still: Vec<String> = match &journal {
                None => Vec::new(),
                Some(j) => match fault::rollback(j.path(), &target::driver_for_undo).await {
                    Ok(done) => done
                        .into_iter()
                        .filter(|r| r.result.is_err())
                        .map(|r| r.fault)
                        .collect(),
                    Err(e) => vec![format!("(journal unreadable: {e})")],
                },
            };
            crate::cli::output::err(&panic_notice(&still, dir));
            std::panic::resume_unwind(panic);
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            let still: Vec<String> = outcomes
                .iter()
                .flatten()
                .filter(|o| o.status == fault::Status::RevertFailed)
                .map(|o| o.name.clone())
                .collect();
            crate::cli::output::err(&panic_notice(&still, dir));
            std::panic::resume_unwind(panic);
        }
    };
    let aborted = watch.fired.take();
    let users = result.users;
    if let Some(e) = users.as_ref().and_then(|u| u.error.clone()) {
        // Every fault is reverted by now (the timeline returned); the run is no run.
        return Err(RunError::Users(e));
    }

    // Stopped by Ctrl-C/SIGTERM (an abort condition also stops the load early, but the run ran
    // its course as the scenario asked: its acknowledged writes are still read back).
    let interrupted = aborted.is_none() && (result.interrupted || shutdown.is_triggered());
    // The data check, once the faults are reverted (run_timeline returns only then).
    let mut durable_writes = result.durable_writes;
    let mut durable_without_id = result.durable_without_id;
    let load_writes = durable_writes.len();
    if let Some(u) = users.as_ref() {
        durable_writes.extend(u.durable_writes.iter().cloned());
        durable_without_id += u.durable_without_id;
    }
    // A shard that is not the conductor has no fault timeline to wait for: before its read-back
    // it waits for the timeline's end, when the conductor reverts what is left (a revert still
    // running then shows in the merge, which compares this start with the conductor's last
    // revert). Ctrl-C meanwhile interrupts the run.
    // With the conductor's feed, it waits for the feed's end instead (its last times too).
    let (interrupted, feed_end) = match &follower {
        Some(f) if !interrupted => tokio::select! {
            over = f.wait_over(clock.at(timeline.total)) => (
                false,
                if over { conductor::FeedEnd::Over } else { conductor::FeedEnd::Lost },
            ),
            () = shutdown.wait() => (true, conductor::FeedEnd::Stopped),
        },
        _ => (interrupted, conductor::FeedEnd::Stopped),
    };
    if let (Some(f), Some(info)) = (&follower, shards.first_mut()) {
        if let Some((rtt, offset)) = f.seen().best {
            info.clock_offset_us = Some(offset);
            info.clock_rtt_us = Some(rtt);
        }
    }
    let interrupted = if !interrupted
        && follower.is_none()
        && !durable_writes.is_empty()
        && opts.shard.is_some_and(|s| !s.is_conductor())
    {
        tokio::select! {
            () = tokio::time::sleep_until(clock.at(timeline.total)) => false,
            () = shutdown.wait() => true,
        }
    } else {
        interrupted
    };
    let verification = if !interrupted && !durable_writes.is_empty() {
        if let Some(info) = shards.first_mut() {
            info.read_back_at_s = Some(clock.elapsed().as_secs_f64());
        }
        // The load's writes with [load.client], the journeys' with [users.client].
        let (load_w, users_w) = durable_writes.split_at(load_writes);
        let users_client = scenario.users.as_ref().map(|u| &u.client);
        let groups = [
            (&scenario.load.client, load_w),
            (users_client.unwrap_or(&scenario.load.client), users_w),
        ];
        Some(crate::verify::read_back_groups(&url, &groups).await)
    } else {
        None
    };
    let faults: Vec<FaultRecord> = match outcomes {
        Some(outcomes) => outcomes
            .into_iter()
            .zip(plan.faults.iter().map(|f| &f.plan))
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
                by_hand: o.by_hand,
            })
            .collect(),
        None if follower.is_some() && plan.skipped == Some(Skipped::Conductor) => {
            let f = follower.as_ref().map(|f| (f.addr.clone(), f.seen()));
            let (addr, seen) = f.unwrap_or_default();
            conductor::records(&scenario, &addr, &seen, feed_end)
        }
        None => scenario
            .faults
            .iter()
            .map(|f| FaultRecord {
                name: f.name.clone(),
                kind: f.kind.name().to_string(),
                status: FaultStatus::Skipped,
                note: match plan.skipped {
                    Some(Skipped::NoDriver) => format!(
                        "not injected: {} has no fault driver (--skip-faults)",
                        connected.shown
                    ),
                    Some(Skipped::Conductor) => format!(
                        "driven by shard {} (the conductor): its record holds the times, `chaos merge` judges on them",
                        shard::CONDUCTOR
                    ),
                    _ => "not injected: --skip-faults".into(),
                },
                injected_at_s: None,
                reverted_at_s: None,
                by_hand: Default::default(),
            })
            .collect(),
    };
    // The journal as written (fsynced records); what rollback would read.
    let journal = journal
        .as_ref()
        .and_then(|j| fault::journal::read(j.path()).ok())
        .unwrap_or_default();
    // The run's raw record, judged by the same function as `chaos report`'s: SLOs and recovery
    // on the faults as they really were applied (from each injection to its revert — a slow
    // inject call moves "during" with it — the scheduled times for a fault that never ran).
    let record = report::record::RunRecord {
        scenario: report::json::scenario_info(&scenario),
        target_url: url,
        time_scale: opts.time_scale,
        started_at: result.started_at,
        wall: result.wall,
        interrupted,
        scheduled: result.scheduled,
        aborted,
        recording: result.recording,
        faults,
        durable_writes,
        durable_without_id,
        verification,
        journal,
        events,
        notes,
        journeys: users.map(|u| report::JourneysRecord {
            counts: u.counts,
            recording: u.recording,
        }),
        shards,
    };
    Ok(report::judge::judge(scenario, record)?)
}

/// Wait for `--start-at` and start the run's clock there; for a shard, what its record says
/// about it (how late it really started). A start already past is refused ([`late_start`]).
async fn start_at(
    at: std::time::SystemTime,
    sh: Option<shard::Shard>,
    shutdown: &Shutdown,
) -> Result<(crate::clock::Clock, Vec<shard::ShardInfo>), RunError> {
    late_start(at)?;
    // Mapped to the monotonic clock once a second before the start, again: a wall clock
    // stepped meanwhile (NTP on a node just started) moves the start with it.
    let early = crate::clock::Clock::starting_at(at);
    let remap = early.epoch().checked_sub(std::time::Duration::from_secs(1));
    if let Some(t) = remap.filter(|t| *t > tokio::time::Instant::now()) {
        tokio::select! {
            () = tokio::time::sleep_until(t) => {}
            () = shutdown.wait() => return Err(RunError::Interrupted),
        }
    }
    let clock = crate::clock::Clock::starting_at(at);
    tokio::select! {
        () = tokio::time::sleep_until(clock.epoch()) => {}
        () = shutdown.wait() => return Err(RunError::Interrupted),
    }
    let late_us = clock.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
    let info = sh.map(|s| shard::ShardInfo {
        index: s.index,
        count: s.count,
        start_at: shard::show_start_at(at),
        late_us,
        conductor: shard::CONDUCTOR,
        read_back_at_s: None,
        clock_offset_us: None,
        clock_rtt_us: None,
    });
    Ok((clock, info.into_iter().collect()))
}

/// What a run says after a caught panic, with the faults reverted as far as possible.
fn panic_notice(still: &[String], dir: &Path) -> String {
    format!(
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
    )
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

    #[test]
    fn a_panic_notice_says_what_is_left_and_how_to_undo_it() {
        let dir = Path::new("reports/x");
        assert_eq!(
            panic_notice(&[], dir),
            "internal error: the run panicked; every applied fault was reverted"
        );
        assert_eq!(
            panic_notice(&["zone-a-down".into(), "kill".into()], dir),
            "internal error: the run panicked; STILL APPLIED: zone-a-down, kill — undo with \
             `chaos rollback reports/x`"
        );
    }
}
