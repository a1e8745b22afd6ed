//! The sandbox alone, started in-process on 127.0.0.1, its app tier: load-balancer health
//! checking and its 502/503 semantics, nodes killed, stopped (drained first) and restarted,
//! overlapping faults on one node, rolling restarts — each checked through real HTTP requests
//! and against the sandbox's own event log. The data tier is in tests/sandbox_data.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chaos::sandbox::Sandbox;
use common::sandbox::*;

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

/// Waits until the sandbox has logged `n` events of `kind`.
async fn wait_events(sb: &Sandbox, kind: &str, n: usize) {
    let t = Instant::now();
    while events(sb, kind).len() < n {
        assert!(t.elapsed() < Duration::from_secs(10), "never {n} {kind}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` requests one after another through the load balancer: which nodes served them.
async fn served(sb: &Sandbox, n: usize) -> Vec<String> {
    let mut by = Vec::new();
    for _ in 0..n {
        let (s, _, node) = call("GET", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 200);
        by.push(node.unwrap());
    }
    by
}

/// `n` requests one after another through the load balancer: how many green nodes served.
async fn served_by_green(sb: &Sandbox, n: usize) -> usize {
    let by = served(sb, n).await;
    by.iter().filter(|b| b.starts_with("green-")).count()
}

/// A cutover deploys green (health-checked first), gives it exactly its weight's share of the
/// requests step by step, and a rollback puts every request back on blue at once; the
/// listener belongs to one cutover at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_moves_requests_by_weight_and_a_rollback_puts_them_back_on_blue() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    assert_eq!(
        served_by_green(&sb, 30).await,
        0,
        "green is not deployed yet"
    );
    // The next step an hour away: the shares below are checked at 25% whatever the machine's
    // pace.
    let (s, _, _) = call(
        "POST",
        &ctl("/cutover?steps=25,100&every_ms=3600000&by=fault:bg"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body, _) = call("POST", &ctl("/cutover?steps=100&by=fault:other")).await;
    assert_eq!(s, 409, "{body}");
    wait_events(&sb, "lb_weights", 1).await;
    let deployed = &events(&sb, "green_deployed")[0];
    assert_eq!(
        deployed["healthy"].as_array().unwrap().len(),
        6,
        "{deployed}"
    );
    // Spread evenly: exactly a quarter of any 60 consecutive requests (nothing else is sent),
    // and round robin within each group: every node of both serves.
    let by = served(&sb, 60).await;
    assert_eq!(by.iter().filter(|b| b.starts_with("green-")).count(), 15);
    let nodes: HashSet<&String> = by.iter().collect();
    assert_eq!(nodes.len(), 12, "every blue and green node: {nodes:?}");
    // The 100% step, as a second cutover after a rollback (the same holder).
    call("POST", &ctl("/cutover/rollback?by=fault:bg")).await;
    assert_eq!(served_by_green(&sb, 12).await, 0);
    call("POST", &ctl("/cutover?steps=100&by=fault:bg")).await;
    wait_events(&sb, "lb_weights", 3).await;
    assert_eq!(served_by_green(&sb, 40).await, 40, "every request on green");
    wait_events(&sb, "cutover_end", 1).await;
    let drained: Vec<_> = events(&sb, "lb_group_drained")
        .into_iter()
        .map(|e| e["group"].clone())
        .collect();
    assert_eq!(
        drained,
        ["green", "blue"],
        "green at the rollback, blue at 100%"
    );
    // Blue is still running (hot) though it takes no request.
    assert_eq!(node_state(&sb, "app-a-1"), "running");
    let (s, _, _) = call("POST", &ctl("/cutover/rollback?by=fault:other")).await;
    assert_eq!(s, 200);
    assert_eq!(
        served_by_green(&sb, 20).await,
        20,
        "not the other's to roll back"
    );
    call("POST", &ctl("/cutover/rollback?by=fault:bg")).await;
    assert_eq!(
        served_by_green(&sb, 40).await,
        0,
        "every request back on blue"
    );
    let w: Vec<u64> = events(&sb, "lb_weights")
        .iter()
        .map(|e| e["green"].as_u64().unwrap())
        .collect();
    assert_eq!(w, [25, 0, 100, 0]);
    // The resources list the deployed green nodes in their group.
    let res = sb.stack().describe();
    let green = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["group"] == "green")
        .count();
    assert_eq!(green, 6, "{res}");
    assert_eq!(res["lb_weights"]["blue"], 100);
    sb.stop();
}

/// Without draining, the requests in flight to blue when it loses its last share are cut
/// (502) — exactly as many as the sandbox logs; with draining, none is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_without_draining_cuts_blues_requests_in_flight() {
    for drain in [false, true] {
        let mut cfg = fast();
        cfg.node.service_time = Duration::from_millis(1500);
        cfg.node.service_jitter = Duration::ZERO;
        let sb = Sandbox::start(cfg, None).await.unwrap();
        // Green deployed and healthy first (at 0%), so the cut comes at a known moment.
        let ctl = |p: &str| format!("{}{p}", sb.control_url);
        call(
            "POST",
            &ctl("/cutover?steps=1,100&every_ms=60000&by=fault:bg"),
        )
        .await;
        wait_events(&sb, "lb_weights", 1).await;
        call("POST", &ctl("/cutover/rollback?by=fault:bg")).await;
        let mut load = Vec::new();
        for _ in 0..8 {
            let url = format!("{}/notes", sb.lb_url);
            load.push(tokio::spawn(async move { call("GET", &url).await }));
        }
        // Every one of them in flight on blue before the cutover (a loaded machine is slow to
        // send them).
        let t = Instant::now();
        while sb.stack().lb.in_flight(chaos::sandbox::lb::Group::Blue) < 8 {
            assert!(t.elapsed() < Duration::from_secs(10), "never 8 in flight");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        call(
            "POST",
            &ctl(&format!("/cutover?steps=100&drain={drain}&by=fault:bg2")),
        )
        .await;
        let mut statuses = Vec::new();
        for l in load {
            statuses.push(l.await.unwrap().0);
        }
        let bad = statuses.iter().filter(|s| **s == 502).count();
        if drain {
            assert_eq!(bad, 0, "{statuses:?}");
            wait_events(&sb, "lb_group_drained", 2).await;
        } else {
            wait_events(&sb, "lb_group_cut", 1).await;
            let cut = &events(&sb, "lb_group_cut")[0];
            assert_eq!(cut["group"], "blue");
            assert_eq!(cut["in_flight"], 8, "{cut}");
            assert_eq!(cut["cut"], 8, "{cut}");
            assert_eq!(bad, 8, "{statuses:?}");
        }
        sb.stop();
    }
}

/// A cutover is a lease like every fault's hold: a harness that dies without rolling back
/// gets its cutover rolled back by the sandbox when the lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_whose_lease_runs_out_is_rolled_back() {
    let sb = Sandbox::start(fast(), None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    call("POST", &ctl("/cutover?steps=100&lease_ms=3000&by=fault:bg")).await;
    wait_events(&sb, "lb_weights", 1).await;
    assert_eq!(served_by_green(&sb, 10).await, 10);
    let t = Instant::now();
    while events(&sb, "lease_expired").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the lease never ran out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events(&sb, "cutover_rollback")[0]["by"], "fault:bg");
    assert_eq!(served_by_green(&sb, 10).await, 0);
    sb.stop();
}
