//! The load-generator comparison (`cargo bench --bench compare`): nginx (Debian package) serves
//! a 1 KB file on 127.0.0.1, and in the same session:
//! - **CPU per request at a constant rate** (the headline: far less sensitive to a VM's CPU
//!   steal than requests/s): chaos (the open model, recording everything) and oha (`-q RATE
//!   --latency-correction`) each as its own process under `/usr/bin/time`, at 5,000 and 20,000
//!   req/s; user + system CPU seconds over requests sent, and chaos's achieved rate and p99
//!   send lateness;
//! - **maximum rate**: wrk (`-t2 -c64`), oha (`-c 64`) and chaos (64 connections, closed loop),
//!   `COMPARE_RUNS` rounds (default 5) with the order rotated each round, the median of each;
//! - **memory**: 10,000 requests in flight against a slow server, peak RSS of a separate
//!   process.
//!
//! Needs `nginx` and `wrk` (apt) and `oha` (`cargo install --locked oha`); a missing peer is
//! reported and skipped. Under `cargo test` (no `--bench` argument) it does nothing: timings are
//! never asserted in tests. All traffic goes to 127.0.0.1 only, every run is bounded in time.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos::load::{self, engine::NoProgress, Mode};
use chaos::metrics::Outcome;
use chaos::scenario::*;
use chaos::shutdown::Shutdown;

fn secs() -> u64 {
    std::env::var("COMPARE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("slow-server") => return slow_server(args[1].parse().unwrap()),
        Some("memory-child") => {
            return memory_child(
                &args[1],
                args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5_000.0),
            )
        }
        // For profiling the hot path alone: `compare chaos-max URL SECS`.
        Some("chaos-max") => {
            let rps = run_chaos_max(&args[1], args[2].parse().unwrap());
            println!("chaos max: {rps:.0} req/s");
            return;
        }
        // One constant-rate run as its own process (for its CPU time): `compare chaos-constant
        // URL RATE SECS`.
        Some("chaos-constant") => {
            let (achieved, p99, max, total) =
                run_chaos_constant(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap());
            println!(
                "REQUESTS={total}\nACHIEVED={achieved:.1}\nLATE_P99_US={p99}\nLATE_MAX_US={max}"
            );
            return;
        }
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("compare: skipped (run `cargo bench --bench compare`)");
        return;
    }
    let d = secs();
    println!(
        "# load generator comparison, {d} s each, 127.0.0.1, {} cores",
        cores()
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("chaos-compare-{}", std::process::id()));
    let nginx = match start_nginx(&dir, port) {
        Ok(c) => c,
        Err(e) => {
            println!("nginx unavailable ({e}); install it: apt-get install nginx-light");
            return;
        }
    };
    let url = format!("http://127.0.0.1:{port}/1k.bin");
    let me = std::env::current_exe().unwrap();

    // CPU per request at a constant rate, chaos and oha alternately.
    println!("\n| rate | tool | requests | CPU s | µs CPU / request | chaos ÷ oha | chaos achieved | chaos p99 send lateness |\n|---:|---|---:|---:|---:|---:|---:|---:|");
    for rate in [5_000u64, 20_000] {
        let chaos = timed(Command::new(&me).args([
            "chaos-constant",
            &url,
            &rate.to_string(),
            &d.to_string(),
        ]));
        let oha = timed(Command::new(oha_exe()).args([
            "-q",
            &rate.to_string(),
            "--latency-correction",
            "-c",
            "64",
            "-z",
            &format!("{d}s"),
            "--no-tui",
            &url,
        ]));
        let chaos_req = chaos.as_ref().and_then(|t| t.field("REQUESTS"));
        let oha_req = oha.as_ref().and_then(|t| {
            t.out
                .lines()
                .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|r| r * d as f64)
        });
        let per =
            |t: &Option<Timed>, n: Option<f64>| t.as_ref().zip(n).map(|(t, n)| t.cpu_s * 1e6 / n);
        let (cp, op) = (per(&chaos, chaos_req), per(&oha, oha_req));
        let ratio = cp
            .zip(op)
            .map_or("—".into(), |(c, o)| format!("{:.2}×", c / o));
        let (ach, late) = chaos.as_ref().map_or(("—".into(), "—".into()), |t| {
            (
                t.field("ACHIEVED").map_or("?".into(), |a| {
                    format!("{:+.2}%", (a / rate as f64 - 1.0) * 100.0)
                }),
                t.field("LATE_P99_US")
                    .map_or("?".into(), |l| format!("{:.2} ms", l / 1000.0)),
            )
        });
        let show = |t: &Option<Timed>,
                    n: Option<f64>,
                    p: Option<f64>,
                    name: &str,
                    extra: (&str, &str, &str)| match (t, n, p) {
            (Some(t), Some(n), Some(p)) => println!(
                "| {rate} | {name} | {n:.0} | {:.2} | {p:.1} | {} | {} | {} |",
                t.cpu_s, extra.0, extra.1, extra.2
            ),
            _ => println!("| {rate} | {name} | not run | — | — | — | — | — |"),
        };
        show(&chaos, chaos_req, cp, "chaos", (&ratio, &ach, &late));
        show(&oha, oha_req, op, "oha", ("", "", ""));
    }

    // Maximum rate: rounds with the order rotated, the median of each tool.
    let runs: usize = std::env::var("COMPARE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut got: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..runs {
        for k in 0..3 {
            let tool = (round + k) % 3;
            let r = match tool {
                0 => run_wrk(&url, d),
                1 => run_oha(&url, d),
                _ => Some(run_chaos_max(&url, d)),
            };
            if let Some(r) = r {
                got[tool].push(r);
            }
        }
    }
    stop_nginx(nginx);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let names = ["wrk -t2 -c64", "oha -c 64", "chaos (64 conns, closed loop)"];
    let meds: Vec<Option<f64>> = got.iter_mut().map(median).collect();
    let chaos = meds[2].unwrap_or(0.0);
    println!("\nmaximum rate, median of {runs} rounds (order rotated):\n\n| tool | requests/s (median) | every round | chaos ÷ tool |\n|---|---:|---|---:|");
    for (i, name) in names.iter().enumerate() {
        let all: Vec<String> = got[i].iter().map(|r| format!("{r:.0}")).collect();
        match meds[i] {
            Some(r) => println!(
                "| {name} | {r:.0} | {} | {:.2}× |",
                all.join(", "),
                chaos / r
            ),
            None => println!("| {name} | not installed | — | — |"),
        }
    }

    // Memory with 10,000 requests in flight: a separate process, measured by its peak RSS.
    let slow_port = free_port();
    let mut slow = Command::new(&me)
        .args(["slow-server", &slow_port.to_string()])
        .spawn()
        .unwrap();
    wait_port(slow_port);
    // 10,000 in flight (the target), then 5,000 and 15,000 for the cost of one more: each
    // in-flight request is a connection, and this machine allows 20,000 open files per process
    // (hard limit), so 50,000 cannot be reached here; bytes per request are the slope.
    let mut points = Vec::new();
    for rate in [5_000.0f64, 2_500.0, 7_500.0] {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "MAXRSS_KB=%M"])
            .arg(&me)
            .args([
                "memory-child",
                &format!("http://127.0.0.1:{slow_port}/"),
                &rate.to_string(),
            ])
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                let rss = text
                    .lines()
                    .find_map(|l| l.strip_prefix("MAXRSS_KB="))
                    .and_then(|v| v.trim().parse::<f64>().ok());
                let peak = text
                    .lines()
                    .find_map(|l| l.strip_prefix("peak in flight "))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|v| v.parse::<f64>().ok());
                println!(
                    "\n{} in flight against a 2 s server: peak RSS {} MB",
                    peak.map_or("?".into(), |p| format!("{p:.0}")),
                    rss.map_or("?".into(), |k| format!("{:.0}", k / 1024.0)),
                );
                if let (Some(r), Some(p)) = (rss, peak) {
                    points.push((p, r * 1024.0));
                }
            }
            Err(e) => println!("\nmemory check skipped: /usr/bin/time unavailable ({e})"),
        }
    }
    if let [_, (p1, r1), (p2, r2)] = points.as_slice() {
        println!(
            "bytes per request in flight (between {p1:.0} and {p2:.0}): {:.0}",
            (r2 - r1) / (p2 - p1)
        );
    }
    let _ = slow.kill();
    let _ = slow.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_nginx(dir: &Path, port: u16) -> Result<Child, String> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no nginx binary")?;
    std::fs::create_dir_all(dir.join("www")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("www/1k.bin"), vec![b'x'; 1024]).map_err(|e| e.to_string())?;
    let conf = format!(
        "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; keepalive_requests 1000000;\n\
           client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
           uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
           server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n",
        d = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::File::create(&conf_path)
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .map_err(|e| e.to_string())?;
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_port(port);
    Ok(child)
}

/// SIGTERM, not SIGKILL: nginx's master then stops its workers (a killed master leaves them
/// serving, holding the port and this process's pipes).
fn stop_nginx(mut nginx: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &nginx.id().to_string()])
        .status();
    let _ = nginx.wait();
}

fn run_wrk(url: &str, d: u64) -> Option<f64> {
    let o = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{d}s"), url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A process's output and the CPU it spent (user + system, from `/usr/bin/time`).
struct Timed {
    out: String,
    cpu_s: f64,
}

impl Timed {
    /// A `NAME=value` line of its output.
    fn field(&self, name: &str) -> Option<f64> {
        self.out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Run `cmd` to its end under `/usr/bin/time`; `None` if either cannot run.
fn timed(cmd: &mut Command) -> Option<Timed> {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let o = Command::new("/usr/bin/time")
        .args(["-f", "CPU_USER=%U\nCPU_SYS=%S"])
        .arg(prog)
        .args(args)
        .output()
        .ok()?;
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    let t = Timed { out, cpu_s: 0.0 };
    let cpu = t.field("CPU_USER")? + t.field("CPU_SYS")?;
    o.status.success().then_some(Timed { cpu_s: cpu, ..t })
}

/// oha: `OHA` if set, else cargo's bin directory, else the PATH.
fn oha_exe() -> PathBuf {
    std::env::var_os("OHA")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var("HOME")
                .map(|h| PathBuf::from(h).join(".cargo/bin/oha"))
                .ok()
                .filter(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("oha"))
}

fn run_oha(url: &str, d: u64) -> Option<f64> {
    let o = Command::new(oha_exe())
        .args(["-c", "64", "-z", &format!("{d}s"), "--no-tui", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

fn bench_load(rps: f64, secs: f64) -> Load {
    Load {
        responses_by: None,
        peak_rps: rps,
        stages: vec![Stage {
            kind: StageKind::Hold,
            rps,
            rate_text: format!("{rps}/s"),
            duration: Duration::from_secs_f64(secs),
        }],
        max_in_flight: 20_000,
        interval: Duration::from_secs(1),
        client: Client {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                attempts: 1,
                backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                jitter: Jitter::Full,
                on: RetryOn::default(),
                budget: None,
                budget_window: Duration::from_secs(10),
            },
            headers: vec![],
            ca_cert: None,
        },
        requests: vec![RequestSpec {
            name: "get".into(),
            weight: 1,
            method: "GET".into(),
            path: Template::literal(""),
            headers: vec![],
            body: None,
            capture: vec![],
            durable: None,
            expect: None,
        }],
    }
}

fn runtime() -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("COMPARE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b.worker_threads(n);
    }
    b.enable_all().build().unwrap()
}

/// A runtime with `workers` worker threads, unless COMPARE_WORKERS says otherwise.
fn runtime_of(workers: usize) -> tokio::runtime::Runtime {
    let workers = std::env::var("COMPARE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(workers);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn run_chaos_max(url: &str, d: u64) -> f64 {
    let l = bench_load(1.0, d as f64);
    // One worker, as `chaos run` builds its runtime up to 60,000 planned req/s (a second
    // worker here costs more in wake-ups than it adds; COMPARE_WORKERS overrides).
    let r = runtime_of(1).block_on(async {
        load::run_mode(
            &l,
            url,
            Mode::Max { connections: 64 },
            chaos::clock::Clock::start(),
            Arc::new(Shutdown::new()),
            &mut NoProgress,
            Duration::from_secs(1),
        )
        .await
        .unwrap()
    });
    let all = r.recording.aggregate(0, usize::MAX, None);
    let ok = all.count(Outcome::Ok);
    if ok != all.requests() {
        eprintln!(
            "chaos: {} of {} requests failed",
            all.requests() - ok,
            all.requests()
        );
    }
    ok as f64 / r.wall.as_secs_f64()
}

fn run_chaos_constant(url: &str, rps: f64, d: u64) -> (f64, u64, u64, u64) {
    let l = bench_load(rps, d as f64);
    // The runtime `chaos run` builds for this rate (COMPARE_WORKERS overrides).
    let r = runtime_of(chaos::run::workers_for_rate(rps, cores())).block_on(async {
        load::run(
            &l,
            url,
            chaos::clock::Clock::start(),
            Arc::new(Shutdown::new()),
            &mut NoProgress,
            Duration::from_secs(1),
        )
        .await
        .unwrap()
    });
    let all = r.recording.aggregate(0, usize::MAX, None);
    // Achieved: requests that actually left, per second of schedule.
    let achieved = all.sent() as f64 / d as f64;
    (
        achieved,
        all.lateness.value_at_quantile(0.99),
        all.lateness.max(),
        all.requests(),
    )
}

/// A server that answers every request after 2 s (for the in-flight memory check).
fn slow_server(port: u16) {
    runtime().block_on(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok(Ok((mut s, _))) = tokio::time::timeout(Duration::from_secs(1), l.accept()).await
            else {
                continue;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 2048];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(r).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// `rate` req/s for 4 s against the 2 s server: 2 × rate requests in flight at the peak.
fn memory_child(url: &str, rate: f64) {
    let l = bench_load(rate, 4.0);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    struct Peak(Arc<std::sync::atomic::AtomicU64>);
    impl load::Progress for Peak {
        fn update(&mut self, s: &load::ProgressSnapshot) {
            self.0
                .fetch_max(s.in_flight, std::sync::atomic::Ordering::Relaxed);
        }
        fn finish(&mut self, _: &load::ProgressSnapshot) {}
    }
    let mut p = Peak(peak.clone());
    let r = runtime().block_on(async {
        load::run(
            &l,
            url,
            chaos::clock::Clock::start(),
            Arc::new(Shutdown::new()),
            &mut p,
            Duration::from_millis(250),
        )
        .await
        .unwrap()
    });
    let all = r.recording.aggregate(0, usize::MAX, None);
    println!(
        "peak in flight {} of {} requests, {} ok",
        peak.load(std::sync::atomic::Ordering::Relaxed),
        all.requests(),
        all.count(Outcome::Ok)
    );
}
