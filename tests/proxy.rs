//! The built-in TCP fault proxy on loopback, each fault's semantics against a real TCP
//! upstream (an echo server; benches/proxy.rs puts redis-server behind it): what a
//! client sees is asserted in counts and ranges (a reply or none, a reset, a refusal, at least
//! the added delay), never in tight timings of the harness. Every loop is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaos::proxy::{ProxyConfig, ProxyServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on loopback whose replies start with `tag`: (its address, its task).
async fn echo(tag: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let t = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut out = tag.as_bytes().to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, t)
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A proxy `p` in front of `upstream` (with `alternates`), its control API on any port.
async fn proxy(upstream: SocketAddr, alternates: Vec<String>) -> (ProxyServer, SocketAddr) {
    let listen = free_port();
    let s = ProxyServer::start(
        vec![ProxyConfig {
            name: "p".into(),
            listen,
            upstream: upstream.to_string(),
            zone: Some("a".into()),
            role: Some("cache".into()),
            alternates,
        }],
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    (s, listen)
}

async fn control(s: &ProxyServer, method: &str, path: &str) -> serde_json::Value {
    let c = reqwest::Client::new();
    let url = format!("{}{path}", s.control_url);
    let r = match method {
        "PUT" => c.put(&url),
        "DELETE" => c.delete(&url),
        "POST" => c.post(&url),
        _ => c.get(&url),
    }
    .send()
    .await
    .unwrap();
    let status = r.status();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

/// Send `msg` and read the reply, or `None` if none comes within `wait`.
async fn ask(
    s: &mut TcpStream,
    msg: &str,
    wait: Duration,
) -> Result<Option<String>, std::io::Error> {
    s.write_all(msg.as_bytes()).await?;
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Err(_) => Ok(None),
        Ok(Ok(0)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(Ok(n)) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
        Ok(Err(e)) => Err(e),
    }
}

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_passes_and_a_partition_blackholes_it_on_open_and_new_connections() {
    let (up, _e) = echo("A:").await;
    let (s, listen) = proxy(up, vec![]).await;
    let mut open = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut open, "hi", WAIT).await.unwrap().as_deref(),
        Some("A:hi")
    );
    let mut quiet = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut quiet, "q", WAIT).await.unwrap().as_deref(),
        Some("A:q")
    );
    control(&s, "PUT", "/proxies/p/faults/partition?by=t").await;
    // No reply on the open connection, none on a new one: the client times out.
    assert_eq!(
        ask(&mut open, "lost", Duration::from_millis(500))
            .await
            .unwrap(),
        None
    );
    let mut new = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut new, "lost", Duration::from_millis(500))
            .await
            .unwrap(),
        None
    );
    let d = control(&s, "GET", "/proxies").await;
    assert!(
        d["proxies"][0]["bytes"]["dropped"].as_u64().unwrap() >= 8,
        "{d}"
    );
    control(&s, "DELETE", "/proxies/p/faults/partition?by=t").await;
    // Healed: a connection that lost bytes is reset (its stream has a hole: never resumed as if
    // whole); one that sent nothing during the partition goes on; new ones pass.
    let e = ask(&mut open, "back", WAIT).await;
    assert!(
        matches!(&e, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset
            || e.kind() == std::io::ErrorKind::BrokenPipe
            || e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{e:?}"
    );
    assert_eq!(
        ask(&mut quiet, "still", WAIT).await.unwrap().as_deref(),
        Some("A:still")
    );
    let mut after = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut after, "x", WAIT).await.unwrap().as_deref(),
        Some("A:x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_resets_open_and_new_connections_and_down_refuses() {
    let (up, _e) = echo("A:").await;
    let (s, listen) = proxy(up, vec![]).await;
    let mut open = TcpStream::connect(listen).await.unwrap();
    assert!(ask(&mut open, "hi", WAIT).await.unwrap().is_some());
    control(&s, "PUT", "/proxies/p/faults/reset?by=t").await;
    let e = ask(&mut open, "x", WAIT).await;
    assert!(
        matches!(&e, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset
            || e.kind() == std::io::ErrorKind::BrokenPipe),
        "{e:?}"
    );
    // A new connection is accepted by the kernel, then reset at once (the reset may come
    // before the connect call returns).
    let e = match TcpStream::connect(listen).await {
        Err(e) => Err(e),
        Ok(mut new) => ask(&mut new, "x", WAIT).await,
    };
    assert!(
        matches!(&e, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset
            || e.kind() == std::io::ErrorKind::BrokenPipe),
        "{e:?}"
    );
    control(&s, "DELETE", "/proxies/p/faults/reset?by=t").await;
    control(&s, "PUT", "/proxies/p/faults/down?by=t").await;
    // The listener is closed: refused (bounded wait for the listener task to drop it).
    let t = Instant::now();
    let refused = loop {
        match TcpStream::connect(listen).await {
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionRefused,
            Ok(_) if t.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(_) => break false,
        }
    };
    assert!(refused, "still accepting while down");
    control(&s, "DELETE", "/proxies/p/faults/down?by=t").await;
    let t = Instant::now();
    let back = loop {
        if let Ok(mut c) = TcpStream::connect(listen).await {
            break ask(&mut c, "y", WAIT).await.unwrap();
        }
        assert!(t.elapsed() < WAIT, "never listening again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(back.as_deref(), Some("A:y"));
    let d = control(&s, "GET", "/proxies").await;
    assert!(
        d["proxies"][0]["connections"]["reset"].as_u64().unwrap() >= 2,
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_adds_at_least_its_delay_each_way_and_bandwidth_paces() {
    let (up, _e) = echo("A:").await;
    let (s, listen) = proxy(up, vec![]).await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    let t = Instant::now();
    ask(&mut c, "warm", WAIT).await.unwrap().unwrap();
    let direct = t.elapsed();
    control(
        &s,
        "PUT",
        "/proxies/p/faults/latency?by=t&delay_ms=150&jitter_ms=50&direction=both",
    )
    .await;
    for _ in 0..3 {
        let t = Instant::now();
        assert!(ask(&mut c, "slow", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some());
        let took = t.elapsed();
        // 150-200 ms each way: at least 300 ms, and well under 5 s.
        assert!(
            took >= Duration::from_millis(300),
            "{took:?} (direct {direct:?})"
        );
    }
    // One way only: at least its 150 ms.
    control(
        &s,
        "PUT",
        "/proxies/p/faults/latency?by=t&delay_ms=150&direction=down",
    )
    .await;
    let t = Instant::now();
    ask(&mut c, "down", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    control(&s, "DELETE", "/proxies/p/faults/latency?by=t").await;
    // 200 KB at 100 KB/s downstream: about 2 s, at least 1.5 s.
    control(
        &s,
        "PUT",
        "/proxies/p/faults/bandwidth?by=t&bytes_per_s=100000&direction=down",
    )
    .await;
    let payload = vec![b'x'; 200_000];
    let t = Instant::now();
    let (mut r, mut w) = c.split();
    let send = async {
        w.write_all(&payload).await.unwrap();
    };
    let recv = async {
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        // The echo prefixes each chunk it reads: at least the payload comes back.
        while got < payload.len() {
            let n = tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            got += n;
        }
    };
    tokio::join!(send, recv);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_upstream_moves_new_connections_only_and_only_to_an_alternate() {
    let (a, _ea) = echo("A:").await;
    let (b, _eb) = echo("B:").await;
    let (s, listen) = proxy(a, vec![b.to_string()]).await;
    let mut old = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut old, "1", WAIT).await.unwrap().as_deref(),
        Some("A:1")
    );
    control(
        &s,
        "PUT",
        &format!("/proxies/p/faults/switch-upstream?by=t&to={b}"),
    )
    .await;
    let mut new = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut new, "2", WAIT).await.unwrap().as_deref(),
        Some("B:2")
    );
    assert_eq!(
        ask(&mut old, "3", WAIT).await.unwrap().as_deref(),
        Some("A:3")
    );
    // Anywhere else is refused: the proxy connects only to what its configuration names.
    let r = reqwest::Client::new()
        .put(format!(
            "{}/proxies/p/faults/switch-upstream?by=u&to=127.0.0.1:1",
            s.control_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("alternate"));
    control(&s, "DELETE", "/proxies/p/faults/switch-upstream?by=t").await;
    let mut again = TcpStream::connect(listen).await.unwrap();
    assert_eq!(
        ask(&mut again, "4", WAIT).await.unwrap().as_deref(),
        Some("A:4")
    );
}

/// The lease: a fault nobody renews heals by itself (the run died without a rollback); one
/// that is renewed stays; two holders each hold until both let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_whose_lease_runs_out_heals_by_itself_and_renewal_keeps_it() {
    let (up, _e) = echo("A:").await;
    let (s, listen) = proxy(up, vec![]).await;
    control(
        &s,
        "PUT",
        "/proxies/p/faults/partition?by=run1&lease_ms=1000",
    )
    .await;
    control(&s, "PUT", "/proxies/p/faults/down?by=run2&lease_ms=1000").await;
    let held = |d: &serde_json::Value| -> Vec<String> {
        d["proxies"][0]["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{}:{}",
                    f["fault"].as_str().unwrap(),
                    f["by"].as_str().unwrap()
                )
            })
            .collect()
    };
    // run2 renews for 3 s; run1 does not.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = control(&s, "POST", "/renew?by=run2&lease_ms=3000").await;
        assert_eq!(r["renewed"], 1);
    }
    let d = control(&s, "GET", "/proxies").await;
    assert_eq!(held(&d), ["down:run2"], "{d}");
    let ev = control(&s, "GET", "/events").await;
    let expired: Vec<&serde_json::Value> = ev
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "lease_expired")
        .collect();
    assert_eq!(expired.len(), 1, "{ev}");
    assert_eq!(expired[0]["fault"], "partition");
    assert_eq!(expired[0]["by"], "run1");
    // Two holders of one fault: released by one, still held by the other.
    control(&s, "PUT", "/proxies/p/faults/down?by=run3&lease_ms=0").await;
    control(&s, "DELETE", "/proxies/p/faults/down?by=run2").await;
    let d = control(&s, "GET", "/proxies").await;
    assert_eq!(held(&d), ["down:run3"], "{d}");
    assert!(
        TcpStream::connect(listen).await.is_err(),
        "run3 still holds it down"
    );
    control(&s, "DELETE", "/proxies/p/faults/down?by=run3").await;
    let t = Instant::now();
    while TcpStream::connect(listen).await.is_err() {
        assert!(t.elapsed() < WAIT, "never listening again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
