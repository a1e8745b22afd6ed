//! The clap definitions of every command and flag: what `--help` shows. No behaviour here:
//! [`super::dispatch`] turns a parsed [`Command`] into a call of the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        #[command(flatten)]
        target: TargetArgs,
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
        /// Do not ask before faults on a cloud target (an aws target asks on a terminal for
        /// its account id, and refuses without --yes when nothing can answer: CI passes it).
        #[arg(long)]
        yes: bool,
        /// Run shard I of N of one run split over N machines: this shard sends every Nth
        /// arrival of the schedule and its share of the users; shard 0 (the conductor) drives
        /// the faults. Needs --start-at; join the shards' run directories with `chaos merge`.
        #[arg(long, value_name = "I/N", value_parser = crate::run::shard::Shard::parse, requires = "start_at")]
        shard: Option<crate::run::shard::Shard>,
        /// Start the run's clock at this UTC instant (2026-12-07T06:30:00Z), the same for every
        /// shard; a start more than 1 s past is refused.
        #[arg(long, value_name = "RFC3339", value_parser = crate::run::shard::parse_start_at)]
        start_at: Option<std::time::SystemTime>,
        /// With --shard, the same on every shard: shard 0 serves its fault times here, and the
        /// others record them as they happen (so every shard's windows are the conductor's),
        /// measure their clock's offset to it, and wait for its faults to end before their
        /// read-back. An IP address is listened on as given; a name (a Kubernetes service) on
        /// every interface at its port.
        #[arg(long, value_name = "HOST:PORT", value_parser = crate::run::conductor::parse, requires = "shard")]
        conductor: Option<String>,
        /// Game day: besides their schedule, the scenario's faults may be injected and
        /// reverted by hand from another terminal (`chaos inject|revert <run-dir> <fault>`),
        /// and notes written on the run's timeline (`chaos note <run-dir> TEXT`).
        /// On a terminal it also reads commands typed there: a fault's number and Enter
        /// injects it (reverts it once applied), `n TEXT` writes a note.
        #[arg(long)]
        gameday: bool,
        /// With --gameday: read those commands from stdin even when it is not a terminal (a
        /// script drives the game day through a pipe).
        #[arg(long, requires = "gameday")]
        console: bool,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Game day: inject a fault of a `chaos run --gameday` in progress now (once per run).
    /// Answers once it is applied and confirmed.
    Inject {
        /// The run's directory (its --out).
        run_dir: PathBuf,
        /// The fault's name in the scenario.
        fault: String,
    },
    /// Game day: revert a fault of a `chaos run --gameday` in progress now.
    Revert { run_dir: PathBuf, fault: String },
    /// Game day: write a note on the timeline of a `chaos run --gameday` in progress (it
    /// shows in every report).
    Note {
        run_dir: PathBuf,
        /// The note (UTF-8, at most 4 KiB).
        text: String,
    },
    /// Join the shards of one sharded run (`chaos run --shard I/N`) into one run: histograms
    /// merged interval by interval (exact percentiles), the conductor's faults, then judged
    /// and reported as a single run. A missing or unfinished shard fails the merge (exit 1).
    Merge {
        /// Every shard's run directory (or its report.json).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Where to write the merged run's reports (default: `merged` next to the first shard).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Empty the --out directory first when it holds an earlier run's files.
        #[arg(long, requires = "out")]
        force: bool,
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
        #[command(flatten)]
        target: TargetArgs,
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
        #[arg(required_unless_present = "sweep")]
        run_dir: Option<PathBuf>,
        /// With --target: find what any chaos run left on the target by the tags the driver
        /// writes (deny-all network ACLs, stopped instances, an auto scaling group's subnets)
        /// and undo it — for when the run directory is gone.
        #[arg(long, requires = "target", conflicts_with = "run_dir")]
        sweep: bool,
        /// The target to sweep (an aws target file).
        #[arg(long, value_name = "FILE|NAME")]
        target: Option<String>,
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
    /// The built-in TCP fault proxy of a `local` target (between the parts of a stack you run).
    Proxy {
        #[command(subcommand)]
        action: ProxyCmd,
    },
    /// The sandbox's notes app as one node on real backends (PostgreSQL, Redis): the app tier
    /// of a local stack.
    App {
        #[command(subcommand)]
        action: AppCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Serve the notes app on a loopback port until Ctrl-C or SIGTERM; prints its URL (first
    /// stdout line, JSON).
    Up {
        /// The loopback port to serve on.
        #[arg(long)]
        port: u16,
        /// PostgreSQL, e.g. postgres://postgres@127.0.0.1:15410,127.0.0.1:15420/postgres?target_session_attrs=read-write
        #[arg(long, value_name = "URL")]
        database: String,
        /// Redis: redis://HOST:PORT, or redis-sentinel://HOST:PORT,HOST:PORT/MASTER-NAME.
        #[arg(long, value_name = "URL")]
        cache: String,
        /// When the cache cannot be reached: let requests through (fail-open) or fail them.
        #[arg(long, value_enum, default_value_t = AppCachePolicy::FailOpen)]
        cache_policy: AppCachePolicy,
        /// The node's name (the x-served-by header).
        #[arg(long, default_value = "app")]
        id: String,
        #[arg(long, default_value = "a")]
        zone: String,
        /// The version its responses name (the x-app-version header): a blue/green cutover
        /// moves traffic between groups of nodes running different ones.
        #[arg(long, default_value = "v1", value_parser = app_version)]
        app_version: String,
        /// Write this process's id here once it serves (removed when it stops).
        #[arg(long, value_name = "FILE")]
        pidfile: Option<PathBuf>,
    },
}

/// A version fit for a response header: printable ASCII, no spaces, at most 64 bytes.
fn app_version(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_string())
    } else {
        Err("1 to 64 printable ASCII characters without spaces, e.g. v2".into())
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppCachePolicy {
    FailOpen,
    FailClosed,
}

#[derive(Subcommand, Debug)]
pub enum ProxyCmd {
    /// Run the target's proxies in the foreground: each listens on its address and forwards to
    /// its upstream; faults come through the control API at `proxy_control`. Prints the control
    /// URL (first stdout line, JSON), serves until Ctrl-C or SIGTERM.
    Up {
        /// A target file of kind "local" (its [proxies.NAME] tables).
        target: String,
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

/// Which system a run (or a plan) is for: at most one of these; none is the embedded sandbox.
/// (`chaos plan` starts a sandbox to resolve faults on in its own process, throwaway, and only
/// reads from one already running.)
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// The system under test: a target file, or a shipped target (sandbox, sandbox-async,
    /// url-example). Default: the embedded sandbox, started and stopped by the run.
    #[arg(long, value_name = "FILE|NAME", conflicts_with_all = ["target_url", "sandbox_url"])]
    pub target: Option<String>,
    /// Shorthand for a `url` target: load only, e.g. http://127.0.0.1:8080 (faults need
    /// --skip-faults).
    #[arg(long, value_name = "URL", conflicts_with = "sandbox_url")]
    pub target_url: Option<String>,
    /// Shorthand for a `sandbox` target already running (`chaos sandbox up` prints its
    /// control URL).
    #[arg(long, value_name = "URL")]
    pub sandbox_url: Option<String>,
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
        /// How long a fault's hold lasts unless the run renews it: a run killed without a
        /// rollback leaves the sandbox whole this long after (1s to 10m).
        #[arg(long, value_name = "DURATION", default_value = "15s")]
        lease: String,
    },
}
