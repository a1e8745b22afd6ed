//! The command line: clap definitions ([`args`]), dispatch, and the mapping of results to exit
//! codes (DESIGN.md): 0 pass (or nothing to judge), 1 SLO breached or not judgeable, 2 bad
//! input, 3 aborted, 4 a fault could not be injected, confirmed or reverted, 130 interrupted.
//! The command handlers are in [`commands`]; only this module and [`output`] print.

mod args;
mod commands;
mod console;
pub mod output;
pub mod plan;
pub mod progress;
mod signals;

pub use args::{Cli, Command, ParamArgs, ProxyCmd, SandboxCmd, SummaryFormat, TargetArgs};

use clap::Parser;

use crate::run::{self, RunOptions};
use crate::scenario;
use commands::*;
use output::{error, out};

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
                    lease,
                },
        } => sandbox_up(
            events,
            exit_on_stdin_eof,
            time_scale,
            config,
            target,
            &lease,
        ),
        Command::Proxy {
            action: ProxyCmd::Up { target },
        } => proxy_up(&target),
        Command::App { action } => app_up(action),
        Command::Rollback {
            run_dir,
            sweep,
            target,
        } => match (run_dir, sweep, target) {
            (_, true, Some(t)) => commands::sweep(&t),
            (Some(d), _, None) => rollback(&d),
            (Some(_), _, Some(_)) => {
                output::err("error: --target goes with --sweep only (a run directory's journal names its target)");
                2
            }
            (None, _, _) => 2,
        },
        Command::Inject { run_dir, fault } => {
            gameday(&run_dir, &format!("/faults/{fault}/inject"), None)
        }
        Command::Revert { run_dir, fault } => {
            gameday(&run_dir, &format!("/faults/{fault}/revert"), None)
        }
        Command::Note { run_dir, text } => gameday(&run_dir, "/notes", Some(text)),
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
        Command::Merge {
            shards,
            out: out_dir,
            force,
        } => merge(&shards, out_dir, force),
        Command::Compare {
            baseline,
            new,
            max_regression,
            confidence,
            allow_different,
        } => compare(
            &baseline,
            &new,
            &max_regression,
            &confidence,
            allow_different,
        ),
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
            skip_faults,
            time_scale,
            params,
        } => {
            let t = match run::target_of(
                target.target.as_deref(),
                target.target_url.as_deref(),
                target.sandbox_url.as_deref(),
            ) {
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
            target:
                args::TargetArgs {
                    target,
                    target_url,
                    sandbox_url,
                },
            out: out_dir,
            force,
            time_scale,
            quiet,
            summary,
            skip_faults,
            yes,
            shard,
            start_at,
            conductor,
            gameday,
            console,
            params,
        } => {
            let opts = RunOptions {
                yes,
                shard,
                start_at,
                conductor,
                gameday,
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
            // The console: on a terminal unless --quiet, or asked for.
            let console = gameday
                && (console || (std::io::IsTerminal::is_terminal(&std::io::stdin()) && !quiet));
            run_blocking(opts, quiet, summary, console)
        }
    }
}
