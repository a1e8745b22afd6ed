//! The command line: clap definitions, dispatch, and the mapping of results to exit codes
//! (DESIGN.md): 0 pass, 1 SLO breached, 2 bad input, 130 interrupted.

pub mod output;
pub mod plan;
pub mod progress;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::run::{self, RunOptions};
use crate::scenario;
use crate::shutdown::Shutdown;
use output::{err, out};

#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    version,
    about = "Chaos and load testing: traffic up to 4x peak, faults, SLO verdicts that gate CI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario: drive its load, judge its SLOs, write report.json and summary.md.
    Run {
        /// A scenario file (TOML or JSON), or the name of a shipped scenario (see `chaos list`).
        scenario: String,
        /// Base URL of the system under test, e.g. http://127.0.0.1:8080. Without it (and
        /// without --sandbox-url) the embedded sandbox is started and the faults run on it.
        #[arg(long, value_name = "URL")]
        target_url: Option<String>,
        /// Control URL of a sandbox already running (`chaos sandbox up` prints it).
        #[arg(long, value_name = "URL")]
        sandbox_url: Option<String>,
        /// Run directory (default: reports/<scenario>-<UTC time>/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Multiply every duration in the scenario by F (rates stay): 0.1 runs 10x faster.
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        time_scale: f64,
        /// No live progress on stderr.
        #[arg(long)]
        quiet: bool,
        /// Run the load even though the target cannot inject the scenario's faults; they are
        /// reported as skipped.
        #[arg(long)]
        skip_faults: bool,
    },
    /// Validate scenario files (or shipped names); change nothing. Checks every file given and
    /// prints every error in each; exit 2 if any is invalid.
    Check {
        #[arg(required = true)]
        scenarios: Vec<String>,
    },
    /// Print the resolved timeline (stages, rates, faults, SLOs); change nothing.
    Plan {
        scenario: String,
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        time_scale: f64,
    },
    /// List the shipped scenarios.
    List,
    /// Print the JSON Schema of the scenario format (for editors and linters).
    Schema,
    /// Write a run's reports again from its report.json — with edited SLOs if --scenario is
    /// given (re-judged on the recorded histograms; nothing is re-run).
    Report {
        run_dir: PathBuf,
        /// The scenario to judge against (default: the one the run used).
        #[arg(long, value_name = "SCENARIO")]
        scenario: Option<String>,
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
    /// The embedded sandbox stack (load balancer, app nodes in zones a/b/c, database, cache).
    Sandbox {
        #[command(subcommand)]
        action: SandboxCmd,
    },
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
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
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
                },
        } => sandbox_up(events, exit_on_stdin_eof, time_scale, config),
        Command::Rollback { run_dir } => rollback(&run_dir),
        Command::Report { run_dir, scenario } => {
            match crate::report::reread::reread(&run_dir, scenario.as_deref()) {
                Ok(rep) => match run::write_reports(&run_dir, &rep) {
                    Ok(summary) => {
                        out(&summary);
                        err(&format!(
                            "{}: {} (exit {})\nreports: {}",
                            rep.verdict.badge(),
                            rep.reason(),
                            rep.verdict.exit_code(),
                            run_dir.display()
                        ));
                        rep.verdict.exit_code()
                    }
                    Err(e) => {
                        err(&format!("error: {e}"));
                        2
                    }
                },
                Err(e) => {
                    err(&format!("error: {e}"));
                    2
                }
            }
        }
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
                    err(&format!("error: {e}"));
                    2
                }
            }
        }
        Command::Schema => {
            let schema = scenario::schema::json_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => {
                    out(&text);
                    0
                }
                Err(e) => {
                    err(&format!("error: {e}"));
                    2
                }
            }
        }
        Command::Check { scenarios } => {
            let mut code = 0;
            for arg in &scenarios {
                match scenario::load(arg) {
                    Ok(s) => out(&format!(
                        "ok: {arg} ({}: {} stages, {} requests, {} faults, {} SLOs)",
                        s.name,
                        s.load.stages.len(),
                        s.load.requests.len(),
                        s.faults.len(),
                        s.slo.objectives.len()
                    )),
                    Err(e) => {
                        err(&e.to_string());
                        code = 2;
                    }
                }
            }
            code
        }
        Command::Plan {
            scenario,
            time_scale,
        } => match run::prepare(&scenario, time_scale) {
            Ok(s) => {
                out(&plan::render(&s));
                let faults = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| rt.block_on(plan::sandbox_fault_plans(&s)));
                match faults {
                    Ok(text) => {
                        out(&text);
                        0
                    }
                    Err(e) => {
                        err(&format!("error: {e}"));
                        2
                    }
                }
            }
            Err(e) => {
                err(&e.to_string());
                e.exit_code()
            }
        },
        Command::Run {
            scenario,
            target_url,
            sandbox_url,
            out: out_dir,
            time_scale,
            quiet,
            skip_faults,
        } => {
            let opts = RunOptions {
                scenario,
                target_url,
                sandbox_url,
                out: out_dir,
                time_scale,
                skip_faults,
                ..RunOptions::default()
            };
            run_blocking(opts, quiet)
        }
    }
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
    let driver_for = |u: &crate::fault::Undo| -> Option<Box<dyn crate::fault::Driver>> {
        match u["driver"].as_str() {
            Some("sandbox") => crate::drivers::sandbox::SandboxDriver::from_undo(u)
                .map(|d| Box::new(d) as Box<dyn crate::fault::Driver>),
            _ => None,
        }
    };
    match rt.block_on(crate::fault::rollback(&journal, &driver_for)) {
        Err(e) => {
            err(&format!("error: {e}"));
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
) -> i32 {
    if let Err(e) = run::check_time_scale(time_scale) {
        err(&format!("error: {e}"));
        return 2;
    }
    let spec: crate::scenario::SandboxSpec = match config.as_deref().map(serde_json::from_str) {
        None => Default::default(),
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

fn run_blocking(opts: RunOptions, quiet: bool) -> i32 {
    let Some(rt) = runtime(true) else {
        return 2;
    };
    rt.block_on(async move {
        let shutdown = Arc::new(Shutdown::new());
        spawn_signal_handlers(shutdown.clone());
        let mut progress = progress::for_stderr(quiet);
        match run::run(&opts, shutdown, progress.as_mut()).await {
            Ok(o) => {
                if !quiet {
                    out(&o.summary);
                }
                let code = o.report.verdict.exit_code();
                err(&format!(
                    "{}: {} (exit {code})\nreports: {}",
                    o.report.verdict.badge(),
                    o.report.reason(),
                    o.dir.display()
                ));
                code
            }
            Err(e) => {
                err(&format!("error: {e}"));
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
