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
    c.lb.check_timeout = Duration::from_millis(100);
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
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let (s, _, _) = call("POST", &format!("{}/nodes/app-a-1/kill", sb.control_url)).await;
    assert_eq!(s, 200);
    // Before the LB notices: requests routed to the dead node fail with 502, the rest succeed.
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(call("GET", &format!("{}/notes", sb.lb_url)).await.0);
    }
    assert!(codes.contains(&502), "{codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
    // After 2 failed checks (100 ms apart) the node is out: only 200s.
    let t = Instant::now();
    while events(&sb, "lb_target_unhealthy").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(3),
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
        assert!(t.elapsed() < Duration::from_secs(3), "never healthy again");
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, body, _) = call("GET", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(events(&sb, "zone_down").len(), 3);
    assert_eq!(events(&sb, "node_down").len(), 6);
    sb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_failover_refuses_writes_then_promotes_without_loss_in_sync_mode() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
