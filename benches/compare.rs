//! The load-generator comparison (`cargo bench --bench compare`): nginx (Debian package) serves
//! a 1 KB file on 127.0.0.1; in the same session wrk (`-t2 -c64`), oha (`-c 64`) and chaos (64
//! connections, closed loop, recording everything) each run for the same time and their
//! requests/s are printed with the ratios. Then the open model's precision (a constant 5,000
//! req/s: achieved rate and p99 send lateness) and memory (10,000 requests in flight against a
//! slow server, peak RSS of a separate process).
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
        Some("memory-child") => return memory_child(&args[1]),
        // For profiling the hot path alone: `compare chaos-max URL SECS`.
        Some("chaos-max") => {
            let rps = run_chaos_max(&args[1], args[2].parse().unwrap());
            println!("chaos max: {rps:.0} req/s");
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
    let rows: Vec<(&str, Option<f64>)> = vec![
        ("wrk -t2 -c64", run_wrk(&url, d)),
        ("oha -c 64", run_oha(&url, d)),
        (
            "chaos (64 conns, closed loop)",
            Some(run_chaos_max(&url, d)),
        ),
    ];
    stop_nginx(nginx);

    println!("\n| tool | requests/s | chaos ÷ tool |\n|---|---:|---:|");
    let chaos = rows[2].1.unwrap_or(0.0);
    for (name, rps) in &rows {
        match rps {
            Some(r) => println!("| {name} | {r:.0} | {:.2}× |", chaos / r),
            None => println!("| {name} | not installed | — |"),
        }
    }

    // Open-model precision at a constant 5,000 req/s (nginx restarted for a clean state).
    let nginx = start_nginx(&dir, port).unwrap();
    let (achieved, late_p99, late_max, total) = run_chaos_constant(&url, 5_000.0, d);
    stop_nginx(nginx);
    println!(
        "\nopen model at 5000 req/s for {d} s: {total} requests, achieved {achieved:.1} req/s ({:+.2}% of schedule), send lateness p99 {late_p99} µs, max {late_max} µs",
        (achieved / 5000.0 - 1.0) * 100.0
    );

    // Memory with 10,000 requests in flight: a separate process, measured by its peak RSS.
    let slow_port = free_port();
    let me = std::env::current_exe().unwrap();
    let mut slow = Command::new(&me)
        .args(["slow-server", &slow_port.to_string()])
        .spawn()
        .unwrap();
    wait_port(slow_port);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "MAXRSS_KB=%M"])
        .arg(&me)
        .args(["memory-child", &format!("http://127.0.0.1:{slow_port}/")])
        .output();
    let _ = slow.kill();
    let _ = slow.wait();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            let rss = text
                .lines()
                .find_map(|l| l.strip_prefix("MAXRSS_KB="))
                .and_then(|v| v.trim().parse::<f64>().ok());
            let peak = text.lines().find(|l| l.starts_with("peak in flight"));
            println!(
                "\n10,000 in flight against a 2 s server: peak RSS {} MB ({})",
                rss.map_or("?".into(), |k| format!("{:.0}", k / 1024.0)),
                peak.unwrap_or("?")
            );
        }
        Err(e) => println!("\nmemory check skipped: /usr/bin/time unavailable ({e})"),
    }
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

fn run_oha(url: &str, d: u64) -> Option<f64> {
    let oha = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/oha"))
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("oha"));
    let o = Command::new(oha)
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

fn run_chaos_max(url: &str, d: u64) -> f64 {
    let l = bench_load(1.0, d as f64);
    let r = runtime().block_on(async {
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
    let r = runtime().block_on(async {
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

/// 5,000 req/s for 4 s against the 2 s server: 10,000 requests in flight at the peak.
fn memory_child(url: &str) {
    let l = bench_load(5_000.0, 4.0);
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
