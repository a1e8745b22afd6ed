//! The sandbox alone, started in-process on 127.0.0.1: load-balancer health checking and its
//! 502/503 semantics, zone outages, database failover through the API, cache partitions — each
//! checked through real HTTP requests and against the sandbox's own event log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chaos::sandbox::{Sandbox, SandboxConfig};

fn fast() -> SandboxConfig {
    let mut c = SandboxConfig::default();
    c.lb.interval = Duration::from_millis(100);
    // Checks every 100 ms, each given 500 ms (a loaded machine must not fail a live node).
    c.lb.check_timeout = Duration::from_millis(500);
    c.db.failover_time = Duration::from_millis(300);
    c
}

async fn call(method: &str, url: &str) -> (u16, String, Option<String>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .request(method.parse().unwrap(), url)
        .body("{\"text\": \"t\"}")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match r {
        Ok(r) => {
            let s = r.status().as_u16();
            let by = r
                .headers()
                .get("x-served-by")
                .map(|v| v.to_str().unwrap().to_string());
            (s, r.text().await.unwrap_or_default(), by)
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn events(sb: &Sandbox, kind: &str) -> Vec<serde_json::Value> {
    sb.stack()
        .events
        .all()
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_over_every_node_in_every_zone() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let mut seen = HashSet::new();
    for _ in 0..12 {
        let (s, _, by) = call("GET", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 200);
        seen.insert(by.unwrap());
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    sb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_gives_502s_until_health_checks_drop_it() {
    let mut cfg = fast();
    // Checks 1 s apart: the six requests below surely reach the LB before it notices.
    cfg.lb.interval = Duration::from_secs(1);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let (s, _, _) = call("POST", &format!("{}/nodes/app-a-1/kill", sb.control_url)).await;
    assert_eq!(s, 200);
    // Before the LB notices: requests routed to the dead node fail with 502, the rest succeed.
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(call("GET", &format!("{}/notes", sb.lb_url)).await.0);
    }
    assert!(codes.contains(&502), "{codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
    // After 2 failed checks (1 s apart) the node is out: only 200s.
    let t = Instant::now();
    while events(&sb, "lb_target_unhealthy").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "never marked unhealthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        let (s, _, by) = call("GET", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 200);
        assert_ne!(by.as_deref(), Some("app-a-1"));
    }
    let un = events(&sb, "lb_target_unhealthy");
    assert_eq!(un.len(), 1);
    assert_eq!(un[0]["node"], "app-a-1");
    // Started again: healthy after 2 good checks, and served again.
    call("POST", &format!("{}/nodes/app-a-1/start", sb.control_url)).await;
    let t = Instant::now();
    while events(&sb, "lb_target_healthy").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(6), "never healthy again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = HashSet::new();
    for _ in 0..12 {
        seen.insert(call("GET", &format!("{}/notes", sb.lb_url)).await.2);
    }
    assert!(seen.contains(&Some("app-a-1".to_string())));
    sb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_node_gives_503() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    for z in ["a", "b", "c"] {
        call("POST", &format!("{}/zones/{z}/down", sb.control_url)).await;
    }
    // Once the health checks have noticed (2 × 100 ms; polled, for a slow machine).
    let t = Instant::now();
    let (s, body) = loop {
        let (s, body, _) = call("GET", &format!("{}/notes", sb.lb_url)).await;
        if s == 503 || t.elapsed() > Duration::from_secs(5) {
            break (s, body);
        }
        assert_eq!(s, 502, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("no healthy target"), "{body}");
    assert_eq!(events(&sb, "zone_down").len(), 3);
    assert_eq!(events(&sb, "node_down").len(), 6);
    sb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_failover_refuses_writes_then_promotes_without_loss_in_sync_mode() {
    let mut cfg = fast();
    // Long enough for the write below to land inside it on a slow machine.
    cfg.db.failover_time = Duration::from_secs(2);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (s, body, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 201);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        ids.push(v["id"].as_u64().unwrap());
    }
    call("POST", &format!("{}/db/failover", sb.control_url)).await;
    let (s, _, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 503, "writes fail during the failover");
    let t = Instant::now();
    while events(&sb, "db_failover_end").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no promotion");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, _, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 201, "writes work after the promotion");
    for id in ids {
        let (s, _, _) = call("GET", &format!("{}/notes/{id}", sb.lb_url)).await;
        assert_eq!(s, 200, "note {id} survived");
    }
    let end = events(&sb, "db_failover_end");
    assert_eq!(end.len(), 1);
    assert_ne!(end[0]["old_writer"], end[0]["new_writer"]);
    assert!(events(&sb, "db_writes_lost").is_empty());
    sb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_partition_is_a_timeout_and_fail_open_still_serves() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    call("POST", &format!("{}/cache/partition", sb.control_url)).await;
    let t = Instant::now();
    let (s, _, _) = call("GET", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 200, "fail-open falls back to the database");
    assert!(
        t.elapsed() >= sb.stack().cfg.cache.timeout,
        "the partition costs the cache timeout"
    );
    call("POST", &format!("{}/cache/heal", sb.control_url)).await;
    assert_eq!(events(&sb, "cache_partitioned").len(), 1);
    assert_eq!(events(&sb, "cache_healed").len(), 1);
    sb.stop();
}

/// The addresses the control API lists for a resource kind.
async fn addrs(sb: &Sandbox, role: &str) -> Vec<(serde_json::Value, std::net::SocketAddr)> {
    let (_, body, _) = call("GET", &format!("{}/resources", sb.control_url)).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role"] == role)
        .map(|r| (r.clone(), r["addr"].as_str().unwrap().parse().unwrap()))
        .collect()
}

/// One request line to a backing service's port; `None` when nothing came back in `wait`.
async fn raw(
    addr: std::net::SocketAddr,
    line: &str,
    wait: Duration,
) -> std::io::Result<Option<String>> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("{line}\n").as_bytes()).await?;
    let mut r = tokio::io::BufReader::new(s);
    let mut out = String::new();
    match tokio::time::timeout(wait, r.read_line(&mut out)).await {
        Ok(res) => res.map(|_| Some(out)),
        Err(_) => Ok(None),
    }
}

/// The database and the cache are servers on their own ports, and the faults act on the wire:
/// the writer's zone down closes its port and the cluster endpoint moves to the promoted
/// reader; a partitioned cache accepts a request and never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_and_cache_faults_are_network_effects_on_their_own_ports() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let dbs = addrs(&sb, "db").await;
    assert_eq!(dbs.len(), 3);
    let (writer, waddr) = dbs
        .iter()
        .find(|(r, _)| r["db_role"] == "writer")
        .unwrap()
        .clone();
    let write = r#"{"op": "write", "text": "direct"}"#;
    let got = raw(waddr, write, Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert!(got.contains("\"ok\""), "{got}");
    // A reader refuses writes.
    let (_, raddr) = dbs.iter().find(|(r, _)| r["db_role"] == "reader").unwrap();
    let got = raw(*raddr, write, Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert!(got.contains("read-only"), "{got}");

    let zone = writer["zone"].as_str().unwrap();
    call("POST", &format!("{}/zones/{zone}/down", sb.control_url)).await;
    assert!(
        tokio::net::TcpStream::connect(waddr).await.is_err(),
        "the lost zone's database port is closed"
    );
    let t = Instant::now();
    loop {
        let now = addrs(&sb, "db").await;
        let w = now
            .iter()
            .find(|(r, _)| r["db_role"] == "writer" && r["failing_over"] == false);
        if let Some((r, a)) = w {
            assert_ne!(r["zone"], zone);
            let got = raw(*a, write, Duration::from_secs(2))
                .await
                .unwrap()
                .unwrap();
            assert!(
                got.contains("\"ok\""),
                "the promoted writer takes writes: {got}"
            );
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no promotion");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    call("POST", &format!("{}/zones/{zone}/up", sb.control_url)).await;

    let (_, caddr) = addrs(&sb, "cache").await[0];
    let get = r#"{"op": "get_recent"}"#;
    assert!(raw(caddr, get, Duration::from_secs(2))
        .await
        .unwrap()
        .is_some());
    call("POST", &format!("{}/cache/partition", sb.control_url)).await;
    assert_eq!(
        raw(caddr, get, Duration::from_millis(500)).await.unwrap(),
        None,
        "a partitioned cache never answers"
    );
    call("POST", &format!("{}/cache/heal", sb.control_url)).await;
    assert!(raw(caddr, get, Duration::from_secs(2))
        .await
        .unwrap()
        .is_some());
    sb.stop();
    // (Stopping aborts the servers' tasks; their ports close as the tasks are dropped.)
    let t = Instant::now();
    while tokio::net::TcpStream::connect(caddr).await.is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "stopped with the sandbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn node_state(sb: &Sandbox, id: &str) -> String {
    sb.stack().describe()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .unwrap()
}

/// Overlapping faults hold a resource together: it comes back only when the last one lets go,
/// and a rolling restart cancelled mid-way does not start a node another fault holds down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_faults_never_undo_each_other() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    call("POST", &ctl("/nodes/app-a-1/kill?by=fault:one")).await;
    call("POST", &ctl("/nodes/app-a-1/kill?by=fault:two")).await;
    call("POST", &ctl("/nodes/app-a-1/start?by=fault:one")).await;
    assert_eq!(
        node_state(&sb, "app-a-1"),
        "stopped",
        "fault two still holds it"
    );
    call("POST", &ctl("/nodes/app-a-1/start?by=fault:one")).await; // a repeated revert
    assert_eq!(node_state(&sb, "app-a-1"), "stopped");
    call("POST", &ctl("/nodes/app-a-1/start?by=fault:two")).await;
    assert_eq!(node_state(&sb, "app-a-1"), "running");
    assert_eq!(events(&sb, "node_down").len(), 1);
    assert_eq!(events(&sb, "node_up").len(), 1);

    call("POST", &ctl("/zones/c/down?by=fault:one")).await;
    call("POST", &ctl("/zones/c/down?by=fault:two")).await;
    call("POST", &ctl("/zones/c/up?by=fault:one")).await;
    assert_eq!(sb.stack().zones_down(), ["c"]);
    assert_eq!(node_state(&sb, "app-c-1"), "stopped");
    call("POST", &ctl("/zones/c/up?by=fault:two")).await;
    assert!(sb.stack().zones_down().is_empty());
    assert_eq!(node_state(&sb, "app-c-1"), "running");
    assert_eq!(events(&sb, "zone_down").len(), 1);

    // A node killed by a fault, then two rolling restarts (two deploys) over zones b and a.
    call("POST", &ctl("/nodes/app-b-2/kill?by=fault:kill")).await;
    call(
        "POST",
        &ctl("/rolling-restart?down_ms=20000&zone=b&by=fault:one"),
    )
    .await;
    call(
        "POST",
        &ctl("/rolling-restart?down_ms=20000&zone=a&by=fault:two"),
    )
    .await;
    until(&sb, "app-b-1", "stopped", "the first restart took it down").await;
    until(&sb, "app-a-1", "stopped", "the second restart took it down").await;
    // Cancelling the first releases only its own stop.
    call("POST", &ctl("/rolling-restart/cancel?by=fault:one")).await;
    assert_eq!(
        node_state(&sb, "app-b-1"),
        "running",
        "released by the cancel"
    );
    assert_eq!(
        node_state(&sb, "app-b-2"),
        "stopped",
        "still held by the kill fault"
    );
    assert_eq!(
        node_state(&sb, "app-a-1"),
        "stopped",
        "the other restart goes on"
    );
    call("POST", &ctl("/rolling-restart/cancel?by=fault:two")).await;
    assert_eq!(node_state(&sb, "app-a-1"), "running");
    call("POST", &ctl("/nodes/app-b-2/start?by=fault:kill")).await;
    assert_eq!(node_state(&sb, "app-b-2"), "running");
    let cancelled: Vec<_> = events(&sb, "rolling_restart_cancelled")
        .iter()
        .map(|e| e["by"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cancelled, ["fault:one", "fault:two"]);
    sb.stop();
}

/// Wait (up to 10 s) until a node is in `state`.
async fn until(sb: &Sandbox, id: &str, state: &str, why: &str) {
    let t = std::time::Instant::now();
    while node_state(sb, id) != state {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{why}: {id} never {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `stop` drains a node out of the load balancer before closing it (no request fails);
/// `kill` closes it under the traffic (see the 502 test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_drained_first_and_no_request_fails() {
    let mut cfg = fast();
    // Slow requests (150 ms each), so several are in flight on the node when it is stopped.
    cfg.node.service_time = Duration::from_millis(150);
    cfg.node.service_jitter = Duration::ZERO;
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let mut load = Vec::new();
    for _ in 0..8 {
        let lb = sb.lb_url.clone();
        load.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..8 {
                let (s, _, by) = call("GET", &format!("{lb}/notes")).await;
                got.push((s, by));
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    call("POST", &format!("{}/nodes/app-a-1/stop", sb.control_url)).await;
    assert_eq!(node_state(&sb, "app-a-1"), "stopped");
    let mut got = Vec::new();
    for l in load {
        got.extend(l.await.unwrap());
    }
    assert!(got.iter().all(|(s, _)| *s == 200), "{got:?}");
    let on_a1 = got
        .iter()
        .filter(|(_, by)| by.as_deref() == Some("app-a-1"))
        .count();
    assert!(on_a1 > 0, "the stopped node served before it was stopped");
    let down = events(&sb, "node_down");
    assert_eq!(down[0]["how"], "stop");
    sb.stop();
}

/// The `latency` fault's link delay, held by two faults: the larger applies until released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_latency_delays_every_database_call_while_held() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    let write = || async {
        let t = Instant::now();
        let (s, _, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 201);
        t.elapsed()
    };
    // Delays far apart (1 s, 400 ms), so a loaded machine's noise cannot blur them.
    assert!(write().await < Duration::from_millis(400));
    call("PUT", &ctl("/links/app-db?delay_ms=1000&by=fault:slow")).await;
    call(
        "PUT",
        &ctl("/links/app-db?delay_ms=400&by=fault:slower-not"),
    )
    .await;
    assert!(write().await >= Duration::from_millis(1000));
    call("DELETE", &ctl("/links/app-db?by=fault:slow")).await;
    let t = write().await;
    assert!(
        t >= Duration::from_millis(400) && t < Duration::from_millis(1000),
        "{t:?}"
    );
    call("DELETE", &ctl("/links/app-db?by=fault:slower-not")).await;
    assert!(write().await < Duration::from_millis(400));
    sb.stop();
}

/// Link latency is in the network, inside the caller's timeout: a cache link slower than the
/// cache timeout makes every cache call time out — fail-closed fails the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_slower_than_the_timeout_is_a_timeout() {
    let mut cfg = fast();
    cfg.cache.policy = chaos::sandbox::cache::CachePolicy::FailClosed;
    cfg.cache.timeout = Duration::from_millis(400);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    let notes = format!("{}/notes", sb.lb_url);
    assert_eq!(call("GET", &notes).await.0, 200);
    call("PUT", &ctl("/links/app-cache?delay_ms=100&by=fault:slow")).await;
    let t = Instant::now();
    assert_eq!(call("GET", &notes).await.0, 200, "within the timeout");
    assert!(t.elapsed() >= Duration::from_millis(100));
    call(
        "PUT",
        &ctl("/links/app-cache?delay_ms=1500&by=fault:slower"),
    )
    .await;
    let t = Instant::now();
    let (s, body, _) = call("GET", &notes).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("timed out"), "{body}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "the cache timeout, not the link delay: {took:?}"
    );
    call("DELETE", &ctl("/links/app-cache?by=fault:slower")).await;
    call("DELETE", &ctl("/links/app-cache?by=fault:slow")).await;
    assert_eq!(call("GET", &notes).await.0, 200);
    sb.stop();
}

/// A cache failover closes the cache's port for its failover time (fail-open keeps serving),
/// then the replica serves on the same endpoint, without the sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_failover_closes_its_port_then_the_replica_serves() {
    let mut cfg = fast();
    cfg.cache.failover_time = Duration::from_millis(400);
    // The session below must still be unreplicated at the failover, however slow the machine.
    cfg.cache.replication_lag = Duration::from_secs(10);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let (s, _, _) = call("POST", &format!("{}/login", sb.lb_url)).await;
    assert_eq!(s, 200);
    let (_, caddr) = addrs(&sb, "cache").await[0];
    call("POST", &format!("{}/cache/failover", sb.control_url)).await;
    assert!(
        tokio::net::TcpStream::connect(caddr).await.is_err(),
        "port closed"
    );
    let (s, _, _) = call("GET", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 200, "fail-open serves from the database");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let get = r#"{"op": "get_recent"}"#;
    let mut served = false;
    for _ in 0..100 {
        if let Ok(Some(_)) = raw(caddr, get, Duration::from_secs(2)).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the replica serves on the same port");
    let end = events(&sb, "cache_failover_end");
    assert_eq!(end.len(), 1);
    assert_eq!(end[0]["sessions_lost"], 1);
    sb.stop();
}

/// Fail-closed: a partitioned cache fails the request after the cache timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_fails_the_request_when_the_cache_is_partitioned() {
    let mut cfg = fast();
    cfg.cache.policy = chaos::sandbox::cache::CachePolicy::FailClosed;
    let sb = Sandbox::start(cfg, None).await.unwrap();
    assert_eq!(call("GET", &format!("{}/notes", sb.lb_url)).await.0, 200);
    call("POST", &format!("{}/cache/partition", sb.control_url)).await;
    let t = Instant::now();
    assert_eq!(call("GET", &format!("{}/notes", sb.lb_url)).await.0, 503);
    assert!(t.elapsed() >= sb.stack().cfg.cache.timeout);
    assert_eq!(call("POST", &format!("{}/login", sb.lb_url)).await.0, 503);
    call("POST", &format!("{}/cache/heal", sb.control_url)).await;
    assert_eq!(call("GET", &format!("{}/notes", sb.lb_url)).await.0, 200);
    sb.stop();
}

/// The health-check thresholds are exact: out after `unhealthy_after` failed checks, back after
/// `healthy_after` good ones — at most one interval early, by the sandbox's own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_thresholds_take_exactly_n_and_m_checks() {
    let mut cfg = fast();
    // 500 ms apart: wide enough that a loaded machine's jitter cannot pass for a check more
    // or less.
    cfg.lb.interval = Duration::from_millis(500);
    cfg.lb.check_timeout = Duration::from_millis(400);
    cfg.lb.unhealthy_after = 3;
    cfg.lb.healthy_after = 2;
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let at = |kind: &str| {
        let e = events(&sb, kind);
        e.last().map(|e| e["t_s"].as_f64().unwrap())
    };
    let wait_for = |kind: &'static str| {
        let sb = &sb;
        async move {
            let t = Instant::now();
            while events(sb, kind).is_empty() {
                assert!(t.elapsed() < Duration::from_secs(5), "no {kind}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    call("POST", &format!("{}/nodes/app-a-1/kill", sb.control_url)).await;
    wait_for("lb_target_unhealthy").await;
    let out = at("lb_target_unhealthy").unwrap() - at("node_down").unwrap();
    // 3 failed checks: the first at most one interval after the kill, then 2 more intervals
    // (2 checks would be 0.5..1.0 s, 4 checks 1.5..2.0 s).
    assert!((0.95..=1.6).contains(&out), "out after {out:.3} s");
    call("POST", &format!("{}/nodes/app-a-1/start", sb.control_url)).await;
    wait_for("lb_target_healthy").await;
    let back = at("lb_target_healthy").unwrap() - at("node_up").unwrap();
    // 2 good checks: 0.5..1.0 s (1 check would be 0..0.5 s, 3 checks 1.0..1.5 s).
    assert!((0.45..=1.3).contains(&back), "back after {back:.3} s");
    sb.stop();
}

/// A node that dies with a request in flight: the client gets a 502 from the load balancer
/// at once (it does not retry elsewhere, as an ALB doesn't).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dying_under_a_request_gives_a_502() {
    let mut cfg = fast();
    cfg.zones = vec!["a".into()];
    cfg.nodes_per_zone = 1;
    let sb = Sandbox::start(cfg, None).await.unwrap();
    // The write waits 2 s on the database link: it is in flight on app-a-1 when it dies.
    call(
        "PUT",
        &format!("{}/links/app-db?delay_ms=2000", sb.control_url),
    )
    .await;
    let lb = sb.lb_url.clone();
    let t = Instant::now();
    let write = tokio::spawn(async move { call("POST", &format!("{lb}/notes")).await.0 });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call("POST", &format!("{}/nodes/app-a-1/kill", sb.control_url)).await;
    assert_eq!(write.await.unwrap(), 502);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "not after the 2 s write"
    );
    sb.stop();
}

/// The cache's replica lags its primary: a failover loses exactly the sessions written within
/// the replication lag before it, and those users are logged out (401) while the others stay
/// logged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_failover_loses_exactly_the_unreplicated_sessions() {
    let mut cfg = fast();
    cfg.cache.failover_time = Duration::from_millis(100);
    // Long enough that the three "gone" logins, their checks and the failover call fit in it
    // on a loaded machine.
    cfg.cache.replication_lag = Duration::from_secs(3);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let login = || async {
        let (s, body, _) = call("POST", &format!("{}/login", sb.lb_url)).await;
        assert_eq!(s, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["session"].as_str().unwrap().to_string()
    };
    let with_cookie = |sid: String| {
        let url = format!("{}/notes", sb.lb_url);
        async move {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(url)
                .header("cookie", format!("session={sid}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let kept = vec![login().await, login().await];
    tokio::time::sleep(Duration::from_millis(3500)).await; // replicated
    let gone = vec![login().await, login().await, login().await];
    assert_eq!(with_cookie(gone[0].clone()).await, 200, "known before");
    assert_eq!(with_cookie("nobody".into()).await, 401, "unknown session");
    call("POST", &format!("{}/cache/failover", sb.control_url)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for sid in &kept {
        assert_eq!(
            with_cookie(sid.clone()).await,
            200,
            "{sid} replicated, kept"
        );
    }
    for sid in &gone {
        assert_eq!(
            with_cookie(sid.clone()).await,
            401,
            "{sid} not replicated, lost"
        );
    }
    let end = events(&sb, "cache_failover_end");
    assert_eq!(end[0]["sessions_lost"], 3);
    let mut ids: Vec<String> = gone.clone();
    ids.sort();
    assert_eq!(end[0]["ids"], serde_json::json!(ids));
    // Anonymous requests are served as before.
    assert_eq!(call("GET", &format!("{}/notes", sb.lb_url)).await.0, 200);
    sb.stop();
}

/// kill-nodes on the data tier: a killed reader's port closes and it comes back resynchronised;
/// a killed writer fails over; a killed cache refuses calls (fail-open keeps serving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_database_instances_and_the_cache() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    let dbs = addrs(&sb, "db").await;
    let addr_of = |id: &str| dbs.iter().find(|(r, _)| r["id"] == id).unwrap().1;
    // A reader (zone c; the writer is in b).
    call("POST", &ctl("/db/db-c/kill?by=fault:r")).await;
    assert!(tokio::net::TcpStream::connect(addr_of("db-c"))
        .await
        .is_err());
    let (s, body, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 201, "writes go on without a reader");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone();
    call("POST", &ctl("/db/db-c/start?by=fault:r")).await;
    let read = format!(r#"{{"op": "read", "id": {id}}}"#);
    let mut got = None;
    for _ in 0..50 {
        if let Ok(Some(l)) = raw(addr_of("db-c"), &read, Duration::from_secs(1)).await {
            got = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        got.unwrap().contains("\"ok\":\"t\""),
        "resynchronised on rejoining"
    );
    assert_eq!(events(&sb, "db_instance_down").len(), 1);
    // The writer: a failover, then writes work on the promoted reader.
    call("POST", &ctl("/db/db-b/kill?by=fault:w")).await;
    assert_eq!(events(&sb, "db_failover_start").len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(call("POST", &format!("{}/notes", sb.lb_url)).await.0, 201);
    call("POST", &ctl("/db/db-b/start?by=fault:w")).await;
    // The cache.
    let (_, caddr) = addrs(&sb, "cache").await[0];
    call("POST", &ctl("/cache/kill?by=fault:c")).await;
    assert!(tokio::net::TcpStream::connect(caddr).await.is_err());
    assert_eq!(call("GET", &format!("{}/notes", sb.lb_url)).await.0, 200);
    call("POST", &ctl("/cache/start?by=fault:c")).await;
    let mut up = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(caddr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "the cache is back");
    assert_eq!(call("POST", &ctl("/db/db-x/kill")).await.0, 404);
    sb.stop();
}

/// A repeated `start` of a node that is up and healthy (a retried revert, a rollback of a
/// revert that had in fact succeeded) leaves it in rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_start_does_not_drop_a_healthy_node() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    call(
        "POST",
        &format!("{}/nodes/app-a-1/start?by=fault:x", sb.control_url),
    )
    .await;
    assert!(sb.stack().lb.is_healthy("app-a-1"));
    assert!(events(&sb, "lb_target_registered").is_empty());
    sb.stop();
}

/// A rolling reboot of the database instances: readers one at a time, then the writer, whose
/// reboot fails the cluster over; with sync replication nothing is lost, and writes work after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_db_restart_reboots_readers_first_then_fails_the_writer_over() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, body, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 201);
        ids.push(serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone());
    }
    assert_eq!(
        call("POST", &ctl("/rolling-restart?role=cache")).await.0,
        400,
        "only app and db roll"
    );
    let (s, _, _) = call(
        "POST",
        &ctl("/rolling-restart?role=db&down_ms=200&by=fault:maint"),
    )
    .await;
    assert_eq!(s, 200);
    let t = Instant::now();
    while events(&sb, "rolling_restart_end").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The writer (zone b) last.
    let down: Vec<String> = events(&sb, "db_instance_down")
        .iter()
        .map(|e| e["instance"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(down.len(), 3, "{down:?}");
    assert_eq!(down[2], "db-b", "{down:?}");
    assert_eq!(events(&sb, "db_instance_up").len(), 3);
    let fo = events(&sb, "db_failover_end");
    assert_eq!(fo.len(), 1);
    assert_eq!(fo[0]["old_writer"], "db-b");
    assert!(events(&sb, "db_writes_lost").is_empty());
    assert_eq!(call("POST", &format!("{}/notes", sb.lb_url)).await.0, 201);
    for id in ids {
        let (s, _, _) = call("GET", &format!("{}/notes/{id}", sb.lb_url)).await;
        assert_eq!(s, 200, "note {id} kept");
    }
    sb.stop();
}

/// A rolling restart cancelled while its first node drains: the node was never stopped, and
/// it goes back into rotation (it is not left draining for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_cancelled_mid_drain_puts_the_node_back() {
    let mut cfg = fast();
    // 1.5 s requests: the drain of app-b-1 waits for the one it is serving.
    cfg.node.service_time = Duration::from_millis(1500);
    cfg.node.service_jitter = Duration::ZERO;
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    let mut load = Vec::new();
    for _ in 0..6 {
        let url = format!("{}/notes", sb.lb_url);
        load.push(tokio::spawn(async move { call("GET", &url).await.0 }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    call(
        "POST",
        &ctl("/rolling-restart?down_ms=20000&zone=b&by=fault:deploy"),
    )
    .await;
    let t = Instant::now();
    while events(&sb, "lb_target_draining").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "never draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    call("POST", &ctl("/rolling-restart/cancel?by=fault:deploy")).await;
    for l in load {
        assert_eq!(l.await.unwrap(), 200);
    }
    assert!(events(&sb, "node_down").is_empty(), "never stopped");
    let drained = events(&sb, "lb_target_draining")[0]["node"].clone();
    assert_eq!(events(&sb, "lb_target_registered")[0]["node"], drained);
    let id = drained.as_str().unwrap().to_string();
    let t = Instant::now();
    while !sb.stack().lb.is_healthy(&id) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{id} never back in rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sb.stop();
}
