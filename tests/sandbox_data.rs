//! The sandbox alone, started in-process on 127.0.0.1, its data tier: database failover
//! through the API, zone outages and killed instances, rolling database reboots, cache
//! partitions and failovers, link latency — each checked through real HTTP requests, raw calls
//! to the services' own ports, and the sandbox's own event log. The app tier is in
//! tests/sandbox.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use chaos::sandbox::Sandbox;
use common::sandbox::*;

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
    wait_event(&sb, "db_failover_end", "no promotion").await;
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
    wait_event(&sb, "rolling_restart_end", "never finished").await;
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

/// A restore drill on the sandbox: what was written before the newest snapshot comes back,
/// what was acknowledged after it is lost (and logged as lost, by id), nothing is served while
/// the restore runs, and ids are never handed out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_restore_brings_back_the_newest_snapshot_and_loses_what_came_after() {
    let mut cfg = fast();
    // No periodic snapshot: the test takes its own, at a known point.
    cfg.db.snapshot_interval = None;
    cfg.db.restore_time = Duration::from_millis(800);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let ctl = |p: &str| format!("{}{p}", sb.control_url);
    let write = || async {
        let (s, body, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 201, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(write().await);
    }
    assert_eq!(call("POST", &ctl("/db/snapshot")).await.0, 200);
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(write().await);
    }
    let (s, body, _) = call("POST", &ctl("/db/restore")).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"changed\":true"), "{body}");
    // A second restore while one runs changes nothing.
    assert!(call("POST", &ctl("/db/restore"))
        .await
        .1
        .contains("\"changed\":false"));
    // Nothing is served meanwhile: writes and reads fail, every instance's port is closed.
    let (s, _, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
    assert_eq!(s, 503, "writes fail during the restore");
    let (s, _, _) = call("GET", &format!("{}/notes/{}", sb.lb_url, kept[0])).await;
    assert_eq!(s, 503, "reads fail during the restore");
    for (r, addr) in addrs(&sb, "db").await {
        assert_eq!(r["state"], "restoring");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{} still open",
            r["id"]
        );
    }
    wait_event(&sb, "db_restore_end", "the restore never ended").await;
    for id in &kept {
        let (s, _, _) = call("GET", &format!("{}/notes/{id}", sb.lb_url)).await;
        assert_eq!(s, 200, "note {id}, written before the snapshot, is back");
    }
    for id in &after {
        let (s, _, _) = call("GET", &format!("{}/notes/{id}", sb.lb_url)).await;
        assert_eq!(
            s, 404,
            "note {id}, acknowledged after the snapshot, is gone"
        );
    }
    let lost = events(&sb, "db_writes_lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    let ids: Vec<u64> = lost[0]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids, after);
    let start = events(&sb, "db_restore_start");
    assert!(start[0]["snapshot_age_s"].as_f64().unwrap() > 0.0);
    // Writes work again, under ids never used before.
    let next = write().await;
    assert!(next > *after.last().unwrap(), "id {next} handed out again");
}

/// With no snapshot at all, a restore brings the cluster back empty: every acknowledged write
/// is lost — what a backup job that never ran costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_restore_without_a_snapshot_loses_every_write() {
    let mut cfg = fast();
    cfg.db.snapshot_interval = None;
    cfg.db.restore_time = Duration::from_millis(300);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, body, _) = call("POST", &format!("{}/notes", sb.lb_url)).await;
        assert_eq!(s, 201);
        ids.push(serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone());
    }
    call("POST", &format!("{}/db/restore", sb.control_url)).await;
    wait_event(&sb, "db_restore_end", "the restore never ended").await;
    assert!(events(&sb, "db_restore_start")[0]["snapshot_age_s"].is_null());
    let lost = events(&sb, "db_writes_lost");
    assert_eq!(lost[0]["ids"], serde_json::Value::Array(ids));
}
