//! The fault proxy is not the bottleneck (`cargo bench --bench proxy`): redis-server (Debian
//! package) on 127.0.0.1, and in the same session redis-benchmark against it directly and
//! through the built-in proxy (no fault applied, then with 1 ms of latency as a sanity check
//! that the path really goes through it). Prints requests/s of each and the ratio proxy ÷
//! direct; the target is ≥ 0.8.
//!
//! Needs `redis-server` and `redis-benchmark` (apt: redis-server, redis-tools); missing, it is
//! reported and skipped. Under `cargo test` (no `--bench` argument) it does nothing: timings
//! are never asserted in tests. Traffic goes to 127.0.0.1 only; every run is bounded by its
//! request count.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaos::proxy::{ProxyConfig, ProxyServer};

fn free() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// requests/s of `test` (set, get) by redis-benchmark against `port`, `n` requests.
fn bench(port: u16, test: &str, n: u32, clients: u32, pipeline: u32) -> f64 {
    let o = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            test,
            "--csv",
        ])
        .args([
            "-n",
            &n.to_string(),
            "-c",
            &clients.to_string(),
            "-P",
            &pipeline.to_string(),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    // "test","rps",...: the second line, second column.
    out.lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "redis-benchmark said: {out}{}",
                String::from_utf8_lossy(&o.stderr)
            )
        })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("proxy: skipped (run `cargo bench --bench proxy`)");
        return;
    }
    for tool in ["redis-server", "redis-benchmark"] {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("proxy: skipped ({tool} is not installed: apt-get install redis-server redis-tools)");
            return;
        }
    }
    let redis = free();
    let mut server = Command::new("redis-server")
        .args(["--port", &redis.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(redis).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listen = free();
    let proxy = rt
        .block_on(ProxyServer::start(
            vec![ProxyConfig {
                name: "cache".into(),
                listen,
                upstream: redis.to_string(),
                zone: None,
                role: Some("cache".into()),
                alternates: vec![],
            }],
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_secs(15),
        ))
        .unwrap();
    let n: u32 = std::env::var("PROXY_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!("redis-benchmark -n {n} -c 50, direct vs through the chaos proxy (requests/s):");
    for (test, pipeline) in [("set", 1), ("get", 1), ("get", 16)] {
        // Alternate the two, three times each: the machine's noise hits both alike.
        let (mut d, mut p) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            d.push(bench(redis.port(), test, n, 50, pipeline));
            p.push(bench(listen.port(), test, n, 50, pipeline));
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[1]
        };
        let (d, p) = (med(&mut d), med(&mut p));
        println!(
            "  {test:<4} -P {pipeline:<2} direct {d:>9.0}  proxy {p:>9.0}  proxy/direct {:.2}",
            p / d
        );
    }
    // The path goes through the proxy: 1 ms each way cuts a 50-client GET to ~25k/s at most.
    let url = format!(
        "{}/proxies/cache/faults/latency?by=bench&delay_ms=1",
        proxy.control_url
    );
    let status = rt.block_on(async {
        reqwest::Client::new()
            .put(&url)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success());
    let slow = bench(listen.port(), "get", n / 10, 50, 1);
    println!("  get through the proxy with +1 ms latency: {slow:.0} req/s");
    drop(proxy);
    let _ = server.kill();
    let _ = server.wait();
}
