//! The fault proxy is not the bottleneck (`cargo bench --bench proxy`): redis-server (Debian
//! package) on 127.0.0.1, and in the same session redis-benchmark against it directly and
//! through the built-in proxy (no fault applied, then with 1 ms of latency as a sanity check
//! that the path really goes through it), and through haproxy in TCP mode — the peer: a
//! production proxy on the same cores. Prints requests/s of each and the ratios proxy ÷
//! direct (the target is ≥ 0.8) and proxy ÷ haproxy.
//!
//! Needs `redis-server` and `redis-benchmark` (apt: redis-server, redis-tools); missing, it is
//! reported and skipped. haproxy (apt: haproxy) is optional: without it the peer's column is
//! left out. Under `cargo test` (no `--bench` argument) it does nothing: timings
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

/// A child process killed (and reaped) when dropped: a panic or an early return leaves no
/// haproxy behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// haproxy in TCP mode in front of `upstream` on a free loopback port (foreground, stopped
/// when dropped), if it is installed.
fn haproxy(upstream: SocketAddr) -> Option<(u16, Killed)> {
    if Command::new("haproxy").arg("-v").output().is_err() {
        println!("proxy: haproxy is not installed (apt-get install haproxy): no peer column");
        return None;
    }
    let at = free();
    let cfg = std::env::temp_dir().join(format!("chaos-bench-haproxy-{}.cfg", std::process::id()));
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 1s\n  \
             timeout client 60s\n  timeout server 60s\nlisten redis\n  bind {at}\n  \
             server r {upstream}\n"
        ),
    )
    .unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .ok()
        .map(Killed);
    let Some(child) = child else {
        let _ = std::fs::remove_file(&cfg);
        return None;
    };
    let t = Instant::now();
    let up = loop {
        if TcpStream::connect(at).is_ok() {
            break true;
        }
        if t.elapsed() > Duration::from_secs(10) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Read at its start: not needed once it listens.
    let _ = std::fs::remove_file(&cfg);
    if !up {
        println!("proxy: haproxy did not start: no peer column");
        return None;
    }
    Some((at.port(), child))
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
    let peer = haproxy(redis);
    let n: u32 = std::env::var("PROXY_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!(
        "redis-benchmark -n {n} -c 50, direct vs through the chaos proxy{} (requests/s):",
        if peer.is_some() {
            " and haproxy (mode tcp)"
        } else {
            ""
        }
    );
    for (test, pipeline) in [("set", 1), ("get", 1), ("get", 16)] {
        // Alternate them, three times each: the machine's noise hits all alike.
        let (mut d, mut p, mut h) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            d.push(bench(redis.port(), test, n, 50, pipeline));
            p.push(bench(listen.port(), test, n, 50, pipeline));
            if let Some((port, _)) = &peer {
                h.push(bench(*port, test, n, 50, pipeline));
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[1]
        };
        let (d, p) = (med(&mut d), med(&mut p));
        let vs_peer = if h.is_empty() {
            String::new()
        } else {
            let h = med(&mut h);
            format!(
                "  haproxy {h:>9.0}  haproxy/direct {:.2}  proxy/haproxy {:.2}",
                h / d,
                p / h
            )
        };
        println!(
            "  {test:<4} -P {pipeline:<2} direct {d:>9.0}  proxy {p:>9.0}  proxy/direct {:.2}{vs_peer}",
            p / d
        );
    }
    drop(peer);
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
