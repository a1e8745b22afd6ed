//! Process-wide signal handling and logging for `chaos run`: what turns Ctrl-C and SIGTERM into
//! the run's [`Shutdown`] (the load stops, every applied fault is reverted, partial reports
//! are written, exit 130).
//!
//! It owns the process's SIGINT handler through `ctrlc`, installed before anything else runs.
//! goose (the users' journeys, `load::journeys`) calls `ctrlc::set_handler` when its attack
//! starts, which would replace tokio's handler and exit the process on a second Ctrl-C: with
//! ours installed first, goose's call fails (ctrlc takes one handler per process) and goose
//! goes on without one. For the same reason a `log` logger is set here first: goose would
//! otherwise set itself as the logger, printing to stdout. SIGTERM stays with tokio (goose does
//! not touch it). This module must never exit the process: cleanup always runs.
//!
//! goose also prints one line on stdout that no setting turns off ("N users launched.", when
//! its test plan's first step has all its users): [`StdoutToStderr`] sends the run's stdout
//! to stderr while it runs, so `chaos run --summary json` still writes only JSON there.

use std::sync::Arc;

use crate::shutdown::Shutdown;

use super::output::err;

/// Ctrl-C and SIGTERM trigger `shutdown`. A second Ctrl-C does not kill the process: cleanup
/// (rollback, once faults exist) must always run. Call inside the runtime.
pub(super) fn install_run_handlers(shutdown: Arc<Shutdown>) {
    quiet_log();
    let s = shutdown.clone();
    let ours = ctrlc::set_handler(move || {
        err("\ninterrupt: stopping the load and writing partial reports…");
        s.trigger();
    });
    if ours.is_err() {
        // A handler is already set in this process (not in `chaos run`): tokio's then.
        let s = shutdown.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                err("\ninterrupt: stopping the load and writing partial reports…");
                s.trigger();
            }
        });
    }
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

/// The `log` records of our dependencies (goose's): errors only, to stderr, marked.
struct Quiet;

impl log::Log for Quiet {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Error
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            err(&format!("{}: {}", r.target(), r.args()));
        }
    }

    fn flush(&self) {}
}

static QUIET: Quiet = Quiet;

/// Set [`Quiet`] as the process's logger (once; a second call changes nothing).
fn quiet_log() {
    if log::set_logger(&QUIET).is_ok() {
        log::set_max_level(log::LevelFilter::Error);
    }
}

/// While alive, the process's stdout (fd 1) is its stderr; dropped, stdout is back. Only the
/// CLI uses it, around a run, which writes to stdout only after it ended.
pub(super) struct StdoutToStderr(Option<std::os::fd::OwnedFd>);

impl StdoutToStderr {
    pub(super) fn new() -> StdoutToStderr {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // Close-on-exec: a process the run starts (a node's start command, a daemon) must not
        // inherit the real stdout, or whoever reads it never sees it end.
        let saved = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 0).ok();
        if saved.is_some() && rustix::stdio::dup2_stdout(rustix::stdio::stderr()).is_err() {
            return StdoutToStderr(None);
        }
        StdoutToStderr(saved)
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        if let Some(fd) = self.0.take() {
            let _ = rustix::stdio::dup2_stdout(&fd);
        }
    }
}
