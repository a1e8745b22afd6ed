//! The command handlers behind [`super::dispatch`]: each calls the library, prints through
//! [`super::output`], and returns the command's exit code. Signal handling for `run` and
//! `sandbox up` lives here too (Ctrl-C reaches the run's shutdown; rollback always runs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::output::{err, error, out};
use super::plan;
use super::progress;
use super::{ParamArgs, SummaryFormat};
use crate::run::{self, RunOptions};
use crate::scenario;
use crate::shutdown::Shutdown;

/// `chaos compare`: the percentages checked, then the comparison; exit 1 on a regression.
pub(super) fn compare(
    baseline: &std::path::Path,
    new: &std::path::Path,
    max_regression: &str,
    confidence: &str,
    allow_different: bool,
) -> i32 {
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
        pct("--max-regression", max_regression, &|x| x >= 0.0, "10%"),
        pct(
            "--confidence",
            confidence,
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
    match crate::report::compare::compare(baseline, new, opts) {
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

/// A scenario's warnings, on stderr.
pub(super) fn warn_all(s: &scenario::Scenario) {
    for w in &s.warnings {
        err(&scenario::Warning(w).to_string());
    }
}

/// A target's warnings, on stderr.
pub(super) fn warn_target(t: &crate::target::TargetFile) {
    for w in &t.warnings {
        err(&scenario::Warning(w).to_string());
    }
}

/// `chaos check`: each argument is a scenario or a target file (by its content, or a shipped
/// name of either); scenarios are checked against `--target`'s zones when one is named.
pub(super) fn check(args: &[String], target: Option<&str>, params: &ParamArgs) -> i32 {
    let mut code = 0;
    let mut zones = Some(scenario::Zones::sandbox());
    let mut on = None;
    if let Some(t) = target {
        match crate::target::load(t) {
            Ok(t) => {
                warn_target(&t);
                zones = t.zones();
                on = Some(t);
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
                // What `run` would refuse on this target (valid as a file all the same).
                if let Some(t) = on.as_ref().filter(|t| !t.has_driver()) {
                    if !s.faults.is_empty() {
                        err(&format!(
                            "warning: {arg}: {} has no fault driver: `chaos run` there needs \
                             --skip-faults (its faults are then reported as skipped)",
                            t.shown()
                        ));
                    }
                }
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

/// `chaos merge`: the shards judged as one run, its reports written like a run's (never into a
/// shard's own directory).
pub(super) fn merge(shards: &[PathBuf], out_dir: Option<PathBuf>, force: bool) -> i32 {
    let m = match crate::report::merge::merge(shards) {
        Ok(m) => m,
        Err(e) => {
            error(&e);
            return e.exit_code();
        }
    };
    let rep = match crate::report::judge::judge(m.scenario, m.record) {
        Ok(r) => r,
        Err(e) => {
            error(&e);
            return 2;
        }
    };
    let dir = out_dir.unwrap_or_else(|| crate::report::merge::default_out(shards));
    if let Some(s) = shards.iter().find(|s| same_dir(&dir, s)) {
        error(&format!(
            "--out {}: that is a shard's own directory ({}); its evidence is never overwritten",
            dir.display(),
            s.display()
        ));
        return 2;
    }
    write_judged(&dir, force, &rep)
}

/// Whether two paths name one directory (however spelled: `./run`, `run/`, a link).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `chaos report`: the run's reports again (re-judged with `--scenario`), into a directory of
/// their own — the run's evidence stays as it was written.
pub(super) fn report(
    run_dir: &std::path::Path,
    scenario: Option<&str>,
    out_dir: Option<PathBuf>,
) -> i32 {
    let rep = match crate::report::reread::reread(run_dir, scenario) {
        Ok(r) => r,
        Err(e) => {
            error(&e);
            return 2;
        }
    };
    let dir = out_dir.unwrap_or_else(|| run::new_dir(run_dir, "rejudged"));
    // Never into the run's own directory (however it is spelled: `./run`, `run/`, a link).
    if same_dir(&dir, run_dir) {
        error(&format!(
            "--out {}: that is the run's own directory; its report.json is never overwritten",
            dir.display()
        ));
        return 2;
    }
    write_judged(&dir, false, &rep)
}

/// A judged run's reports into `dir` (a new directory, or emptied with `force`): the summary
/// on stdout, the verdict line on stderr, the verdict's exit code (or the write's).
fn write_judged(dir: &std::path::Path, force: bool, rep: &crate::report::RunReport) -> i32 {
    let written = run::OutDir::check_path(dir, force, run::OutFor::Report)
        .and_then(run::OutDir::make)
        .and_then(|dir| Ok(crate::report::write::write_reports(&dir, rep)?));
    match written {
        Ok(summary) => {
            out(&summary);
            verdict_line(rep, dir);
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

/// `chaos inject|revert|note <run-dir> …`: one call to the game-day desk of the run in
/// progress there; its answer on stdout, exit 0, or why not (2: not such a run, fault or phase;
/// 4: the fault could not be injected or reverted).
pub(super) fn gameday(run_dir: &std::path::Path, path: &str, note: Option<String>) -> i32 {
    let Some(rt) = runtime(false) else {
        return 2;
    };
    match rt.block_on(crate::run::gameday::ask(run_dir, "POST", path, note)) {
        Ok(v) => {
            let at = v["at_s"].as_f64().unwrap_or(0.0);
            match (v["fault"].as_str(), v["done"].as_str(), v["by"].as_str()) {
                (Some(f), Some(done), Some("schedule")) => out(&format!(
                    "{f}: {done}ed at {at:.1}s into the run, by its schedule (it came first)"
                )),
                (Some(f), Some(done), Some("stopping")) => out(&format!(
                    "{f}: {done}ed at {at:.1}s into the run, as the run was stopping"
                )),
                (Some(f), Some(done), _) => out(&format!("{f}: {done}ed at {at:.1}s into the run")),
                _ => out(&format!("noted at {at:.1}s into the run")),
            }
            0
        }
        Err(e) => {
            err(&format!("error: {e}"));
            e.exit_code()
        }
    }
}

pub(super) fn rollback(run_dir: &std::path::Path) -> i32 {
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

/// `chaos rollback --target FILE --sweep`: undo what chaos runs left on a target, found by
/// the tags its driver writes (exit 4 if something could not be undone).
pub(super) fn sweep(target: &str) -> i32 {
    let t = match crate::target::load(target) {
        Ok(t) => t,
        Err(e) => {
            error(&e);
            return 2;
        }
    };
    #[cfg(feature = "aws")]
    if let crate::target::Kind::Aws(a) = &t.kind {
        let Some(rt) = runtime(false) else {
            return 2;
        };
        return match rt.block_on(crate::drivers::aws::sweep::sweep(a)) {
            Ok(done) if done.is_empty() => {
                out(&format!("nothing left by chaos on {}", t.shown()));
                0
            }
            Ok(done) => {
                for l in &done {
                    out(l);
                }
                0
            }
            Err(crate::drivers::aws::sweep::SweepError::Connect(e)) => {
                err(&format!("error: {}: {e}", t.source));
                2
            }
            Err(e) => {
                err(&format!("error: the sweep stopped: {e}"));
                4
            }
        };
    }
    err(&format!(
        "error: --sweep finds leftovers by the tags the aws driver writes; {} is a `{}` target \
         (roll a sandbox run back from its run directory: chaos rollback RUN_DIR)",
        t.source,
        t.kind_name()
    ));
    2
}

pub(super) fn sandbox_up(
    events: Option<PathBuf>,
    exit_on_stdin_eof: bool,
    time_scale: f64,
    config: Option<String>,
    target: Option<String>,
    lease: &str,
) -> i32 {
    if let Err(e) = run::check_time_scale(time_scale) {
        error(&e);
        return 2;
    }
    use crate::target::local::{LEASE_MAX, LEASE_MIN};
    let lease = match crate::scenario::values::duration(lease) {
        Ok(d) if (LEASE_MIN..=LEASE_MAX).contains(&d) => d,
        _ => {
            err(&format!(
                "error: --lease {lease}: give a duration from 1s to 10m, e.g. \"15s\" or \"2m\""
            ));
            return 2;
        }
    };
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
        sb.stack().leases.set_default(lease);
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

/// `chaos proxy up FILE`: the local target's fault proxy, in the foreground until Ctrl-C or
/// SIGTERM. Stopping it heals every fault it holds (its listeners and connections close).
pub(super) fn proxy_up(target: &str) -> i32 {
    let t = match crate::target::load(target) {
        Ok(t) => t,
        Err(e) => {
            error(&e);
            return 2;
        }
    };
    let crate::target::Kind::Local(l) = &t.kind else {
        err(&format!(
            "error: {}: `chaos proxy up` needs a target of kind \"local\" (its [proxies.NAME] \
             tables), not {}",
            t.source,
            t.shown()
        ));
        return 2;
    };
    if l.proxies.is_empty() {
        err(&format!(
            "error: {}: declares no proxies ([proxies.NAME] with listen and upstream)",
            t.source
        ));
        return 2;
    }
    let Some(rt) = runtime(true) else {
        return 2;
    };
    let l = (**l).clone();
    // The validator requires proxy_control with proxies.
    let Some(control) = l.proxy_control else {
        err(&format!("error: {}: no proxy_control", t.source));
        return 2;
    };
    rt.block_on(async move {
        let s = match crate::proxy::ProxyServer::start(l.proxies.clone(), control, l.lease).await {
            Ok(s) => s,
            Err(e) => {
                err(&format!("error: cannot start the fault proxy: {e}"));
                return 2;
            }
        };
        out(&serde_json::json!({ "control_url": s.control_url }).to_string());
        for p in &l.proxies {
            err(&format!(
                "proxy {}: {} -> {}{}",
                p.name,
                p.listen,
                p.upstream,
                p.zone
                    .as_ref()
                    .map(|z| format!(" (zone {z})"))
                    .unwrap_or_default()
            ));
        }
        err(&format!(
            "fault proxy up: control API {}, faults lease {:?} (Ctrl-C to stop)",
            s.control_url, l.lease
        ));
        let stop = Arc::new(Shutdown::new());
        spawn_quiet_signal_handlers(stop.clone());
        stop.wait().await;
        drop(s);
        err("fault proxy down");
        0
    })
}

/// `chaos app up`: one notes-app node on PostgreSQL and Redis, until Ctrl-C or SIGTERM.
pub fn app_up(cmd: super::args::AppCmd) -> i32 {
    let super::args::AppCmd::Up {
        port,
        database,
        cache,
        cache_policy,
        id,
        zone,
        app_version,
        pidfile,
    } = cmd;
    let Some(rt) = runtime(true) else {
        return 2;
    };
    let cfg = crate::sandbox::backend::AppConfig {
        id,
        zone,
        port,
        database,
        cache,
        version: app_version,
        policy: match cache_policy {
            super::args::AppCachePolicy::FailOpen => crate::sandbox::cache::CachePolicy::FailOpen,
            super::args::AppCachePolicy::FailClosed => {
                crate::sandbox::cache::CachePolicy::FailClosed
            }
        },
    };
    rt.block_on(async move {
        let node = match crate::sandbox::backend::start_app(&cfg, Duration::from_secs(30)).await {
            Ok(n) => n,
            Err(e) => {
                err(&format!("error: {e}"));
                return 2;
            }
        };
        if let Some(p) = &pidfile {
            if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
                err(&format!("error: pidfile {}: {e}", p.display()));
                return 2;
            }
        }
        let url = format!("http://{}", node.addr());
        out(&serde_json::json!({ "url": url }).to_string());
        err(&format!("app {} (zone {}) up at {url}", cfg.id, cfg.zone));
        let stop = Arc::new(Shutdown::new());
        spawn_quiet_signal_handlers(stop.clone());
        stop.wait().await;
        node.stop_now();
        if let Some(p) = &pidfile {
            let _ = std::fs::remove_file(p);
        }
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
pub(super) fn runtime(multi: bool) -> Option<tokio::runtime::Runtime> {
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

/// `console`: read game-day commands from stdin ([`super::console`]).
pub(super) fn run_blocking(
    mut opts: RunOptions,
    quiet: bool,
    summary: SummaryFormat,
    console: bool,
) -> i32 {
    // As many workers as the planned rate needs (one, up to 60,000 req/s): fewer workers
    // wake and park less per request.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = run::planned_workers(&opts, cores);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            err(&format!("error: cannot start the async runtime: {e}"));
            return 2;
        }
    };
    rt.block_on(async move {
        let shutdown = Arc::new(Shutdown::new());
        super::signals::install_run_handlers(shutdown.clone());
        let mut progress = progress::for_stderr(quiet);
        if console {
            let desk = Arc::new(std::sync::OnceLock::new());
            opts.desk_opened = Some(desk.clone());
            super::console::spawn(desk);
        }
        let to_stderr = super::signals::StdoutToStderr::new();
        let r = run::run(&opts, shutdown, progress.as_mut()).await;
        drop(to_stderr);
        match r {
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
