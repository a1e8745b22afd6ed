//! The command line: clap definitions, dispatch, and the mapping of results to exit codes
//! (DESIGN.md): 0 pass (or nothing to judge), 1 SLO breached or not judgeable, 2 bad input,
//! 3 aborted, 4 a fault could not be injected or reverted, 130 interrupted.

pub mod output;
pub mod plan;
pub mod progress;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::run::{self, RunOptions};
use crate::scenario;
use crate::shutdown::Shutdown;
use output::{err, error, out};

#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    version,
    about = "Chaos and load testing: traffic up to 4x peak, faults, SLO verdicts that gate CI"
)]
pub struct Cli {
    /// Structured logs on stderr: -v every driver call and the read-back's summary, -vv more
    /// detail. RUST_LOG (e.g. `chaos=debug`) overrides. Off by default.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario: drive its load, judge its SLOs, write report.json and summary.md.
    #[command(after_help = "Examples:
  chaos run az-outage                                   the shipped scenario on the embedded sandbox
  chaos run scenarios/examples/db-failover-async.toml --target sandbox-async
                                                        on a sandbox with async replication
  chaos run az-outage --time-scale 0.1                  the same shape in a tenth of the time
  chaos run my.toml --target-url https://staging.example.com --skip-faults
                                                        load and SLOs only, against a URL
  chaos run db-failover --out run-1 --summary none      a named run directory, nothing on stdout

Exit codes: 0 pass (or nothing to judge), 1 SLO breached or could not be judged, 2 bad input,
3 aborted by an abort condition, 4 a fault could not be injected or reverted, 130 interrupted.")]
    Run {
        /// A scenario file (TOML or JSON), or the name of a shipped scenario (see `chaos list`).
        scenario: String,
        /// The system under test: a target file, or a shipped target (sandbox, sandbox-async,
        /// url-example). Default: the embedded sandbox, started and stopped by the run.
        #[arg(long, value_name = "FILE|NAME", conflicts_with_all = ["target_url", "sandbox_url"])]
        target: Option<String>,
        /// Shorthand for a `url` target: load only, e.g. http://127.0.0.1:8080 (faults need
        /// --skip-faults).
        #[arg(long, value_name = "URL", conflicts_with = "sandbox_url")]
        target_url: Option<String>,
        /// Shorthand for a `sandbox` target already running (`chaos sandbox up` prints its
        /// control URL).
        #[arg(long, value_name = "URL")]
        sandbox_url: Option<String>,
        /// Run directory (default: a new reports/<scenario>-<UTC time>/). One that already
        /// holds a run is refused unless --force.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Empty the --out directory first when it holds an earlier run's files (refused if
        /// it holds other files, or a fault its journal or report shows still applied).
        #[arg(long, requires = "out")]
        force: bool,
        /// Multiply every duration in the scenario by F (rates stay): 0.1 runs 10x faster.
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        time_scale: f64,
        /// No live progress on stderr (the summary is still printed: see --summary; the
        /// verdict line always goes to stderr).
        #[arg(long)]
        quiet: bool,
        /// What goes to stdout at the end: the Markdown summary, report.json, or nothing.
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t = SummaryFormat::Md)]
        summary: SummaryFormat,
        /// Run the load alone, on any target: no fault is planned or injected; each is reported
        /// as skipped and the SLOs of its windows as not judged. Needed with a plain
        /// --target-url (it has no fault driver).
        #[arg(long)]
        skip_faults: bool,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Validate scenario and target files (or shipped names); change nothing. Checks every
    /// file given and prints every error in each; exit 2 if any is invalid. `${env:…}` values
    /// are not needed (an unset one is a warning: `run` will need it). A file with a top-level
    /// `kind` and no `[load]` is read as a target file.
    Check {
        #[arg(required = true)]
        scenarios: Vec<String>,
        /// Check the scenarios against this target (its zones), and the target file itself.
        #[arg(long, value_name = "FILE|NAME")]
        target: Option<String>,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Print the resolved timeline (stages, rates, faults, SLOs) of each scenario and the calls
    /// its faults would make; change nothing.
    Plan {
        #[arg(required = true)]
        scenarios: Vec<String>,
        /// The target to resolve the faults on (as `chaos run --target`); a sandbox to start
        /// is started in this process, throwaway, and stopped.
        #[arg(long, value_name = "FILE|NAME", conflicts_with = "target_url")]
        target: Option<String>,
        /// Shorthand for a `url` target (no fault driver).
        #[arg(long, value_name = "URL")]
        target_url: Option<String>,
        /// Plan as `chaos run --skip-faults` would run: no fault planned.
        #[arg(long)]
        skip_faults: bool,
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        time_scale: f64,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// List the shipped scenarios.
    List,
    /// Print the JSON Schema of the scenario format (for editors and linters).
    Schema {
        /// The schema of target files instead.
        #[arg(long)]
        target: bool,
    },
    /// Write a run's reports again from its report.json — with edited SLOs if --scenario is
    /// given (re-judged on the recorded histograms; nothing is re-run).
    Report {
        /// The run directory (holding report.json).
        run_dir: PathBuf,
        /// The scenario to judge against (default: the one the run used). Only its SLOs may
        /// differ from what ran.
        #[arg(long, value_name = "SCENARIO")]
        scenario: Option<String>,
        /// Where to write the reports (default: a new RUN_DIR/rejudged-<UTC time>/); never
        /// over the run's own report.json.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Compare two runs of one scenario: per window and metric, the change; exit 1 on a
    /// regression beyond the bound and the noise (a gate against last night's run).
    Compare {
        /// The baseline run: its directory or its report.json.
        baseline: PathBuf,
        /// The new run: its directory or its report.json.
        new: PathBuf,
        /// Largest tolerated worsening, relative ("10%").
        #[arg(long, value_name = "PCT", default_value = "10%")]
        max_regression: String,
        /// Confidence every noise test is held to ("99.9%"); higher flags less.
        #[arg(long, value_name = "PCT", default_value = "99.9%")]
        confidence: String,
        /// Compare runs of different scenarios (another name or load/faults) instead of
        /// refusing with exit 2.
        #[arg(long)]
        allow_different: bool,
    },
    /// Revert every fault a run's journal shows as still applied (after a crash or kill -9).
    Rollback {
        /// The run directory (holding journal.jsonl).
        run_dir: PathBuf,
    },
    /// Print a shell completion script: `chaos completions bash > /etc/bash_completion.d/chaos`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The embedded sandbox stack (load balancer, app nodes in zones a/b/c, database, cache).
    Sandbox {
        #[command(subcommand)]
        action: SandboxCmd,
    },
}

/// `chaos run --summary`: what the run prints on stdout when it ends.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryFormat {
    /// summary.md
    Md,
    /// report.json
    Json,
    /// nothing (the files are written all the same)
    None,
}

/// Values from the command line, applied to the scenario before it is validated.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ParamArgs {
    /// Override a value of the scenario, validated like the file: `load.peak_rps=400`,
    /// `faults.zone-a-down.at=30s`, `load.stages.1.for=5m` (array items by index or name).
    /// Repeatable; recorded in report.json.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Give `${env:NAME}` a value (before the process environment). Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SandboxCmd {
    /// Run the sandbox in the foreground: prints its URLs (first stdout line, JSON), serves until
    /// Ctrl-C or SIGTERM.
    Up {
        /// Append the sandbox's ground-truth events here (JSON lines).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// Also stop when standard input closes (how `chaos run` ties the sandbox to itself).
        #[arg(long)]
        exit_on_stdin_eof: bool,
        /// Scale the sandbox's own clocks (health-check interval, failover times) by F, as
        /// `chaos run --time-scale F` does to the scenario.
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        time_scale: f64,
        /// Settings as a scenario's `[sandbox]` table, in JSON (how `chaos run` passes them).
        #[arg(long, value_name = "JSON", conflicts_with = "target")]
        config: Option<String>,
        /// Settings from a sandbox target file (or a shipped one: sandbox-async).
        #[arg(long, value_name = "FILE|NAME")]
        target: Option<String>,
    },
}

/// Parse the process's arguments, run, and return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if let Err(e) = crate::logging::init(cli.verbose) {
        if !matches!(e, crate::logging::LogError::AlreadySet) {
            error(&e);
            return 2;
        }
    }
    dispatch(cli.command)
}

pub fn dispatch(cmd: Command) -> i32 {
    match cmd {
        Command::List => {
            for (name, text) in scenario::builtin::SCENARIOS {
                let desc = scenario::parse_str(&format!("scenarios/{name}.toml"), text)
                    .map(|s| s.description)
                    .unwrap_or_else(|_| "(invalid: run `chaos check` on it)".into());
                out(&format!("{name:<16} {desc}"));
            }
            0
        }
        Command::Sandbox {
            action:
                SandboxCmd::Up {
                    events,
                    exit_on_stdin_eof,
                    time_scale,
                    config,
                    target,
                },
        } => sandbox_up(events, exit_on_stdin_eof, time_scale, config, target),
        Command::Rollback { run_dir } => rollback(&run_dir),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "chaos", &mut script);
            out(String::from_utf8_lossy(&script).trim_end());
            0
        }
        Command::Report {
            run_dir,
            scenario,
            out: out_dir,
        } => report(&run_dir, scenario.as_deref(), out_dir),
        Command::Compare {
            baseline,
            new,
            max_regression,
            confidence,
            allow_different,
        } => {
            let pct = |flag: &str, v: &str, ok: &dyn Fn(f64) -> bool, eg: &str| {
                let p = v
                    .trim()
                    .strip_suffix('%')
                    .and_then(|x| x.trim().parse::<f64>().ok())
                    .filter(|x| x.is_finite() && ok(*x));
                if p.is_none() {
                    err(&format!(
                        "error: {flag} {v:?}: give a percentage, e.g. {eg}"
                    ));
                }
                p.map(|x| x / 100.0)
            };
            let (Some(max), Some(conf)) = (
                pct("--max-regression", &max_regression, &|x| x >= 0.0, "10%"),
                pct(
                    "--confidence",
                    &confidence,
                    &|x| x > 50.0 && x < 100.0,
                    "99.9% (above 50%, below 100%)",
                ),
            ) else {
                return 2;
            };
            let opts = crate::report::compare::Options {
                max_regression: max,
                confidence: conf,
                allow_different,
            };
            match crate::report::compare::compare(&baseline, &new, opts) {
                Ok(c) => {
                    out(&crate::report::compare::render(&c));
                    if c.regressions() > 0 {
                        1
                    } else {
                        0
                    }
                }
                Err(e) => {
                    error(&e);
                    2
                }
            }
        }
        Command::Schema { target } => {
            let schema = if target {
                crate::target::schema::json_schema()
            } else {
                scenario::schema::json_schema()
            };
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => {
                    out(&text);
                    0
                }
                Err(e) => {
                    error(&e);
                    2
                }
            }
        }
        Command::Check {
            scenarios,
            target,
            params,
        } => check(&scenarios, target.as_deref(), &params),
        Command::Plan {
            scenarios,
            target,
            target_url,
            skip_faults,
            time_scale,
            params,
        } => {
            let t = match run::target_of(target.as_deref(), target_url.as_deref(), None) {
                Ok(t) => t,
                Err(e) => {
                    error(&e);
                    return e.exit_code();
                }
            };
            warn_target(&t);
            let p = scenario::Params {
                zones: t.zones(),
                ..scenario::Params::names_only(&params.set, &params.env)
            };
            let Some(rt) = runtime(false) else {
                return 2;
            };
            let mut code = 0;
            let mut printed = false;
            for arg in &scenarios {
                let (c, shown) = rt.block_on(plan::plan_one(
                    arg,
                    &t,
                    time_scale,
                    skip_faults,
                    &p,
                    printed,
                ));
                code = code.max(c);
                printed |= shown;
            }
            code
        }
        Command::Run {
            scenario,
            target,
            target_url,
            sandbox_url,
            out: out_dir,
            force,
            time_scale,
            quiet,
            summary,
            skip_faults,
            params,
        } => {
            let opts = RunOptions {
                scenario,
                target,
                target_url,
                sandbox_url,
                out: out_dir,
                force,
                time_scale,
                skip_faults,
                set: params.set,
                env: params.env,
                ..RunOptions::default()
            };
            run_blocking(opts, quiet, summary)
        }
    }
}

/// A scenario's warnings, on stderr.
fn warn_all(s: &scenario::Scenario) {
    for w in &s.warnings {
        err(&scenario::Warning(w).to_string());
    }
}

/// A target's warnings, on stderr.
fn warn_target(t: &crate::target::TargetFile) {
    for w in &t.warnings {
        err(&scenario::Warning(w).to_string());
    }
}

/// `chaos check`: each argument is a scenario or a target file (by its content, or a shipped
/// name of either); scenarios are checked against `--target`'s zones when one is named.
fn check(args: &[String], target: Option<&str>, params: &ParamArgs) -> i32 {
    let mut code = 0;
    let mut zones = Some(scenario::Zones::sandbox());
    if let Some(t) = target {
        match crate::target::load(t) {
            Ok(t) => {
                warn_target(&t);
                zones = t.zones();
            }
            Err(e) => {
                error(&e);
                return 2;
            }
        }
    }
    let p = scenario::Params {
        zones,
        ..scenario::Params::names_only(&params.set, &params.env)
    };
    for arg in args {
        let is_target = if scenario::is_path(arg) {
            std::fs::read_to_string(arg).is_ok_and(|t| crate::target::looks_like_target(&t))
        } else {
            scenario::builtin::get(arg).is_none() && crate::target::builtin::get(arg).is_some()
        };
        if is_target {
            match crate::target::load(arg) {
                Ok(t) => {
                    warn_target(&t);
                    out(&format!("ok: {arg} (target, kind {})", t.kind_name()));
                }
                Err(e) => {
                    error(&e);
                    code = 2;
                }
            }
            continue;
        }
        match scenario::load_with(arg, &p) {
            Ok(s) => {
                warn_all(&s);
                out(&format!("ok: {arg} ({})", plan::counts(&s)));
            }
            Err(e) => {
                error(&e);
                code = 2;
            }
        }
    }
    code
}

/// `chaos report`: the run's reports again (re-judged with `--scenario`), into a directory of
/// their own — the run's evidence stays as it was written.
fn report(run_dir: &std::path::Path, scenario: Option<&str>, out_dir: Option<PathBuf>) -> i32 {
    let rep = match crate::report::reread::reread(run_dir, scenario) {
        Ok(r) => r,
        Err(e) => {
            error(&e);
            return 2;
        }
    };
    let dir = out_dir.unwrap_or_else(|| run::new_dir(run_dir, "rejudged"));
    // Never into the run's own directory (however it is spelled: `./run`, `run/`, a link).
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize())
    {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    if same(&dir, run_dir) {
        error(&format!(
            "--out {}: that is the run's own directory; its report.json is never overwritten",
            dir.display()
        ));
        return 2;
    }
    let written = run::OutDir::check_path(&dir, false, run::OutFor::Report)
        .and_then(run::OutDir::make)
        .and_then(|dir| Ok(crate::report::write::write_reports(&dir, &rep)?));
    match written {
        Ok(summary) => {
            out(&summary);
            verdict_line(&rep, &dir);
            rep.verdict.exit_code()
        }
        Err(e) => {
            error(&e);
            e.exit_code()
        }
    }
}

/// The verdict line, on stderr whatever stdout is: a CI log shows it even when stdout is
/// redirected or closed.
fn verdict_line(rep: &crate::report::RunReport, dir: &std::path::Path) {
    err(&format!(
        "{}: {} (exit {})\nreports: {}",
        rep.verdict.badge(),
        rep.reason(),
        rep.verdict.exit_code(),
        dir.display()
    ));
}

fn rollback(run_dir: &std::path::Path) -> i32 {
    let journal = run_dir.join("journal.jsonl");
    if !journal.exists() {
        err(&format!(
            "error: {} has no journal.jsonl: no fault was ever applied from it",
            run_dir.display()
        ));
        return 2;
    }
    let Some(rt) = runtime(false) else {
        return 2;
    };
    match rt.block_on(crate::fault::rollback(
        &journal,
        &crate::target::driver_for_undo,
    )) {
        Err(e) => {
            error(&e);
            2
        }
        Ok(done) if done.is_empty() => {
            out("nothing to roll back: every fault in the journal was reverted");
            0
        }
        Ok(done) => {
            let mut code = 0;
            for r in &done {
                match &r.result {
                    Ok(()) => out(&format!("reverted: {} ({})", r.fault, r.kind)),
                    Err(e) => {
                        err(&format!("STILL APPLIED: {} ({}): {e}", r.fault, r.kind));
                        code = 4;
                    }
                }
            }
            code
        }
    }
}

fn sandbox_up(
    events: Option<PathBuf>,
    exit_on_stdin_eof: bool,
    time_scale: f64,
    config: Option<String>,
    target: Option<String>,
) -> i32 {
    if let Err(e) = run::check_time_scale(time_scale) {
        error(&e);
        return 2;
    }
    let from_target = match target.as_deref().map(crate::target::load) {
        None => None,
        Some(Err(e)) => {
            error(&e);
            return 2;
        }
        Some(Ok(t)) => match t.sandbox_settings() {
            Some(s) => Some(s.clone()),
            None => {
                err(&format!(
                    "error: --target {}: a `sandbox up` needs a target of kind \"sandbox\" \
                     without control_url (its settings), not {}",
                    t.source,
                    t.shown()
                ));
                return 2;
            }
        },
    };
    let spec: crate::scenario::SandboxSpec = match config.as_deref().map(serde_json::from_str) {
        None => from_target.unwrap_or_default(),
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            err(&format!(
                "error: --config is not a sandbox settings object: {e}"
            ));
            return 2;
        }
    };
    let Some(rt) = runtime(true) else {
        return 2;
    };
    rt.block_on(async move {
        let cfg = crate::sandbox::SandboxConfig::default()
            .with_spec(&spec)
            .time_scaled(time_scale);
        let sb = match crate::sandbox::Sandbox::start(cfg, events.as_deref()).await {
            Ok(sb) => sb,
            Err(e) => {
                err(&format!("error: cannot start the sandbox: {e}"));
                return 2;
            }
        };
        out(&serde_json::json!({ "lb_url": sb.lb_url, "control_url": sb.control_url }).to_string());
        err(&format!(
            "sandbox up: load balancer {}, control API {} (Ctrl-C to stop)",
            sb.lb_url, sb.control_url
        ));
        let stop = Arc::new(Shutdown::new());
        spawn_quiet_signal_handlers(stop.clone());
        if exit_on_stdin_eof {
            let s = stop.clone();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                s.trigger();
            });
        }
        stop.wait().await;
        sb.stop();
        err("sandbox down");
        0
    })
}

/// Ctrl-C / SIGTERM just stop the sandbox (it holds no state worth a partial report).
fn spawn_quiet_signal_handlers(stop: Arc<Shutdown>) {
    let s = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            s.trigger();
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            if term.recv().await.is_some() {
                stop.trigger();
            }
        }
    });
}

/// A tokio runtime (multi-threaded or not), or the error printed and `None`.
fn runtime(multi: bool) -> Option<tokio::runtime::Runtime> {
    let mut b = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match b.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            err(&format!("error: cannot start the async runtime: {e}"));
            None
        }
    }
}

fn run_blocking(opts: RunOptions, quiet: bool, summary: SummaryFormat) -> i32 {
    let Some(rt) = runtime(true) else {
        return 2;
    };
    rt.block_on(async move {
        let shutdown = Arc::new(Shutdown::new());
        spawn_signal_handlers(shutdown.clone());
        let mut progress = progress::for_stderr(quiet);
        match run::run(&opts, shutdown, progress.as_mut()).await {
            Ok(o) => {
                match summary {
                    SummaryFormat::Md => out(&o.summary),
                    SummaryFormat::Json => match std::fs::read_to_string(o.dir.join("report.json"))
                    {
                        Ok(text) => out(&text),
                        Err(e) => error(&format!("cannot read the run's report.json: {e}")),
                    },
                    SummaryFormat::None => {}
                }
                verdict_line(&o.report, &o.dir);
                o.report.verdict.exit_code()
            }
            Err(e) => {
                error(&e);
                e.exit_code()
            }
        }
    })
}

/// Ctrl-C and SIGTERM trigger the run's shutdown: the load stops, in-flight requests finish,
/// partial reports are written, exit 130. A second Ctrl-C does not kill the process: cleanup
/// (rollback, once faults exist) must always run.
fn spawn_signal_handlers(shutdown: Arc<Shutdown>) {
    let s = shutdown.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            err("\ninterrupt: stopping the load and writing partial reports…");
            s.trigger();
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            while term.recv().await.is_some() {
                err("\nSIGTERM: stopping the load and writing partial reports…");
                shutdown.trigger();
            }
        }
    });
}
