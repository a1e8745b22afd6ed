//! The closed model's cost (`cargo bench --bench journeys`), against the embedded sandbox on
//! 127.0.0.1 (started in this process, its service time 0 so it is not the bottleneck), each
//! measurement a separate process under `/usr/bin/time` (peak RSS, user + system CPU):
//!
//! - **requests per CPU-second**, 64 users without think time sending `GET /health`:
//!   chaos's journeys (goose users, each step recorded), a bare goose attack doing the same
//!   (the peer: what goose itself costs), and the open model in closed loop with 64
//!   connections (our own engine) — the ratios are printed;
//! - **memory per virtual user**: the shipped write-and-read journey (login, create, read back,
//!   a cookie jar each) with 1,000 users against 50, think time 1 s; the open model at the
//!   same request rate beside it.
//!
//! Under `cargo test` (no `--bench` argument) it does nothing: timings are never asserted in
//! tests. All traffic goes to 127.0.0.1 only, and every run is bounded in time.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chaos::clock::Clock;
use chaos::load::journeys::{self, Journeys};
use chaos::load::{engine::NoProgress, Mode};
use chaos::metrics::recorder::{self, Options};
use chaos::metrics::Outcome;
use chaos::sandbox::{Sandbox, SandboxConfig};
use chaos::shutdown::Shutdown;

fn secs() -> u64 {
    std::env::var("JOURNEYS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("journeys") => return child_journeys(&args[1], &args[2], args[3].parse().unwrap()),
        Some("goose") => return child_goose(&args[1], args[2].parse().unwrap()),
        Some("open") => return child_open(&args[1], &args[2], args[3].parse().unwrap()),
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("journeys: skipped (run `cargo bench --bench journeys`)");
        return;
    }
    let d = secs();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = SandboxConfig::default();
    cfg.node.service_time = Duration::ZERO;
    cfg.node.service_jitter = Duration::ZERO;
    cfg.node.concurrency = 256;
    let sb = rt.block_on(Sandbox::start(cfg, None)).unwrap();
    let url = sb.lb_url.clone();
    println!(
        "# the closed model's cost, {d} s each, sandbox on 127.0.0.1, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    println!("\n## requests per CPU-second, 64 users / connections, GET /health, no think time");
    let health = users_toml(64, d, 0, HEALTH);
    let ours = measure(&["journeys", &url, &health, "0"]);
    let goose = measure(&["goose", &url, &d.to_string()]);
    let open = measure(&["open", &url, "max", &d.to_string()]);
    for (name, m) in [
        ("chaos journeys (goose users)", &ours),
        ("bare goose", &goose),
        ("chaos open model, closed loop", &open),
    ] {
        println!(
            "{name:<32} {:>8} requests  {:>7.0} req/s  CPU {:>5.2} s  {:>7.0} req per CPU-s  peak RSS {:>4.0} MB",
            m.requests,
            m.requests as f64 / d as f64,
            m.cpu_s,
            m.per_cpu_s(),
            m.rss_mb
        );
    }
    println!(
        "ratios, req per CPU-s: journeys / bare goose {:.2}, journeys / open model {:.2}",
        ours.per_cpu_s() / goose.per_cpu_s(),
        ours.per_cpu_s() / open.per_cpu_s()
    );

    println!("\n## memory per virtual user: login -> create -> read back, think 1 s");
    let few = measure(&[
        "journeys",
        &url,
        &users_toml(50, d, 1000, WRITE_AND_READ),
        "0",
    ]);
    let many = measure(&[
        "journeys",
        &url,
        &users_toml(1000, d, 1000, WRITE_AND_READ),
        "0",
    ]);
    let rate = many.requests as f64 / d as f64;
    let open = measure(&["open", &url, &format!("{rate:.0}"), &d.to_string()]);
    println!(
        "50 users: peak RSS {:.1} MB ({} steps); 1,000 users: {:.1} MB ({} steps, {rate:.0} steps/s)",
        few.rss_mb, few.requests, many.rss_mb, many.requests
    );
    println!(
        "per user: {:.0} KB; the open model at {rate:.0} req/s: peak RSS {:.1} MB ({} requests)",
        (many.rss_mb - few.rss_mb) * 1024.0 / 950.0,
        open.rss_mb,
        open.requests
    );
    sb.stop();
}

const HEALTH: &str = r#"steps = [{ name = "health", path = "/health" }]"#;
const WRITE_AND_READ: &str = r#"steps = [
  { name = "login", method = "POST", path = "/login", json = { user = "u{{user}}" } },
  { name = "create", method = "POST", path = "/notes", json = { text = "{{uuid}}" }, capture = { id = "$.id" } },
  { name = "read", method = "GET", path = "/notes/{{id}}" },
]"#;

/// A `[users]` scenario: `users` at once for `secs`, think `think_ms`, one journey.
fn users_toml(users: usize, secs: u64, think_ms: u64, steps: &str) -> String {
    format!(
        "name = \"bench\"\n[users]\nplan = [{{ ramp = {users}, over = \"1s\" }}, {{ hold = {users}, for = \"{}s\" }}]\n\
         think = {{ min = \"{think_ms}ms\", max = \"{think_ms}ms\" }}\n[users.client]\ntimeout = \"5s\"\n\
         [[users.journeys]]\nname = \"j\"\n{steps}\n",
        secs.saturating_sub(1).max(1)
    )
}

struct Measured {
    requests: u64,
    cpu_s: f64,
    rss_mb: f64,
}

impl Measured {
    fn per_cpu_s(&self) -> f64 {
        self.requests as f64 / self.cpu_s.max(1e-9)
    }
}

/// This bench binary as a child `args`, under `/usr/bin/time`.
fn measure(args: &[&str]) -> Measured {
    let me = std::env::current_exe().unwrap();
    let o = Command::new("/usr/bin/time")
        .args(["-f", "MAXRSS_KB=%M USER_S=%U SYS_S=%S"])
        .arg(&me)
        .args(args)
        .output()
        .expect("/usr/bin/time (apt-get install time)");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    let field = |k: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in:\n{text}"))
    };
    Measured {
        requests: field("REQUESTS=") as u64,
        cpu_s: field("USER_S=") + field("SYS_S="),
        rss_mb: field("MAXRSS_KB=") / 1024.0,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Run a `[users]` scenario's journeys; print the steps sent (every outcome counted).
fn child_journeys(url: &str, toml: &str, _unused: u32) {
    let s = chaos::scenario::parse_str("bench.toml", toml).unwrap_or_else(|d| panic!("{d}"));
    let j = Journeys::new(s.users.as_ref().unwrap()).unwrap();
    let n = rt().block_on(async {
        let clock = Clock::start();
        let opts = Options {
            tick: Duration::from_secs(3600),
            settle: Duration::from_secs(5),
        };
        let (sink, steps) = recorder::spawn(j.step_names(), Duration::from_secs(1), clock, opts);
        let (jsink, its) = recorder::spawn(j.journey_names(), Duration::from_secs(1), clock, opts);
        let shutdown = Arc::new(Shutdown::new());
        journeys::run(&j, url, sink, jsink, clock, 0, shutdown)
            .await
            .unwrap();
        its.finish().await;
        let r = steps.finish().await;
        r.aggregate(0, usize::MAX, None)
    });
    eprintln!("ok {}", n.count(Outcome::Ok));
    println!("REQUESTS={}", n.requests());
}

/// A bare goose attack: 64 users, one transaction `GET /health`, for `secs`.
fn child_goose(url: &str, secs: u64) {
    use goose::prelude::*;
    static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    async fn health(user: &mut GooseUser) -> TransactionResult {
        let _ = user.get("/health").await?;
        SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    rt().block_on(async {
        let mut c = goose::config::GooseConfiguration::default();
        c.host = Some(url.to_string());
        c.no_telnet = true;
        c.no_print_metrics = true;
        c.no_error_summary = true;
        c.quiet = 1;
        c.no_metrics = true;
        GooseAttack::initialize_with_config(c)
            .unwrap()
            .set_default(
                GooseDefault::TestPlan,
                format!("64,1s;64,{}s;0,0s", secs.saturating_sub(1).max(1)).as_str(),
            )
            .unwrap()
            .register_scenario(scenario!("health").register_transaction(transaction!(health)))
            .execute()
            .await
            .unwrap();
    });
    println!(
        "REQUESTS={}",
        SENT.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// The open model: `rate` req/s of the write-and-read requests (`max`: closed loop, 64
/// connections, `GET /health`) for `secs`.
fn child_open(url: &str, rate: &str, secs: u64) {
    let (mode, text) = if rate == "max" {
        (
            Mode::Max { connections: 64 },
            format!(
                "name = \"b\"\n[load]\nstages = [{{ hold = \"1/s\", for = \"{secs}s\" }}]\n\
                 [[load.requests]]\nname = \"health\"\npath = \"/health\"\n"
            ),
        )
    } else {
        (
            Mode::Open,
            format!(
                "name = \"b\"\n[load]\nstages = [{{ ramp = \"{rate}/s\", over = \"1s\" }}, {{ hold = \"{rate}/s\", for = \"{}s\" }}]\n\
                 [[load.requests]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/login\"\njson = {{ user = \"u\" }}\n\
                 [[load.requests]]\nname = \"create\"\nmethod = \"POST\"\npath = \"/notes\"\njson = {{ text = \"{{{{uuid}}}}\" }}\n\
                 [[load.requests]]\nname = \"read\"\npath = \"/notes/1\"\n",
                secs.saturating_sub(1).max(1)
            ),
        )
    };
    let s = chaos::scenario::parse_str("bench.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    let r = rt().block_on(async {
        chaos::load::run_mode(
            &s.load,
            url,
            mode,
            Clock::start(),
            Arc::new(Shutdown::new()),
            &mut NoProgress,
            Duration::from_millis(250),
        )
        .await
        .unwrap()
    });
    println!(
        "REQUESTS={}",
        r.recording.aggregate(0, usize::MAX, None).requests()
    );
}
