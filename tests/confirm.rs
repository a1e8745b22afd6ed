//! The sandbox driver's `confirm` step against a real sandbox on loopback: before the inject
//! it says the fault does not show (so it can fail), after the inject it shows — for every
//! fault kind — and after the revert a state fault no longer shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chaos::drivers::sandbox::SandboxDriver;
use chaos::fault::{Driver as _, DriverError};
use chaos::sandbox::{Sandbox, SandboxConfig};

fn fault(kind: &str) -> chaos::scenario::Fault {
    let text = format!(
        "name = \"c\"\n[load]\nstages = [{{ hold = \"1/s\", for = \"60s\" }}]\n\
         [[load.requests]]\nname = \"r\"\npath = \"/\"\n\
         [[faults]]\nname = \"f\"\nat = \"1s\"\nfor = \"10s\"\n{kind}\n"
    );
    let s = chaos::scenario::parse_str("confirm.toml", &text).unwrap_or_else(|d| panic!("{d}"));
    s.faults[0].clone()
}

/// Ask `confirm` until it says yes (at most 5 s), as the timeline does.
async fn shows(d: &SandboxDriver, p: &chaos::fault::FaultPlan, undo: &chaos::fault::Undo) -> bool {
    let t = std::time::Instant::now();
    loop {
        match d.confirm(p, undo).await {
            Ok(()) => return true,
            Err(DriverError::Retryable { .. }) if t.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_is_confirmed_only_once_it_shows() {
    let mut cfg = SandboxConfig::default();
    cfg.db.failover_time = Duration::from_millis(300);
    cfg.cache.failover_time = Duration::from_millis(300);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let d = SandboxDriver::new(&sb.control_url);
    for (kind, state_fault) in [
        ("kind = \"kill-nodes\"\nzone = \"a\"", true),
        ("kind = \"kill-nodes\"\nrole = \"db\"\nzone = \"c\"", true),
        ("kind = \"kill-nodes\"\nrole = \"cache\"", true),
        ("kind = \"az-outage\"\nzone = \"b\"", true),
        ("kind = \"cache-partition\"", true),
        ("kind = \"db-failover\"", false),
        ("kind = \"cache-failover\"", false),
        (
            "kind = \"latency\"\nlink = \"app-db\"\ndelay = \"20ms\"",
            false,
        ),
        (
            "kind = \"restart-nodes\"\nzone = \"c\"\ndown_for = \"100ms\"",
            false,
        ),
    ] {
        let f = fault(kind);
        let p = d.plan(&f).await.unwrap();
        // Not injected yet: nothing to see. (For the ones that run their course, the undo data
        // of the inject marks where the sandbox's record stood: before, an empty undo.)
        let before = d.undo_for(&p);
        let mut before = before;
        before["events_before"] = serde_json::json!(u64::MAX);
        assert!(
            matches!(
                d.confirm(&p, &before).await,
                Err(DriverError::Retryable { .. })
            ),
            "{kind}: confirmed before any inject"
        );
        let undo = d.inject(&p).await.unwrap();
        assert!(
            shows(&d, &p, &undo).await,
            "{kind}: never confirmed after the inject"
        );
        d.revert(&undo).await.unwrap();
        if state_fault {
            assert!(
                d.confirm(&p, &undo).await.is_err(),
                "{kind}: still shows after the revert"
            );
        }
        // Let failovers and restarts finish before the next kind.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    sb.stop();
}

/// Another fault's record never confirms this one: a failover from before the inject (the
/// undo data's `events_before`), a latency change made by another holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_and_other_faults_records_do_not_confirm_this_one() {
    let mut cfg = SandboxConfig::default();
    cfg.db.failover_time = Duration::from_millis(200);
    let sb = Sandbox::start(cfg, None).await.unwrap();
    let d = SandboxDriver::new(&sb.control_url);
    // A failover, over before this fault is injected.
    let earlier = d.plan(&fault("kind = \"db-failover\"")).await.unwrap();
    let u = d.inject(&earlier).await.unwrap();
    assert!(shows(&d, &earlier, &u).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let p = d.plan(&fault("kind = \"db-failover\"")).await.unwrap();
    let mut undo = d.undo_for(&p);
    let n = d
        .call("GET", "/events")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    undo["events_before"] = serde_json::json!(n);
    assert!(
        matches!(
            d.confirm(&p, &undo).await,
            Err(DriverError::Retryable { .. })
        ),
        "the earlier failover confirmed this one"
    );
    // Link latency set by another fault (its holder is not this fault).
    let text = "name = \"c\"\n[load]\nstages = [{ hold = \"1/s\", for = \"60s\" }]\n\
                [[load.requests]]\nname = \"r\"\npath = \"/\"\n\
                [[faults]]\nname = \"other\"\nat = \"1s\"\nfor = \"10s\"\nkind = \"latency\"\nlink = \"app-db\"\ndelay = \"5ms\"\n\
                [[faults]]\nname = \"mine\"\nat = \"20s\"\nfor = \"10s\"\nkind = \"latency\"\nlink = \"app-db\"\ndelay = \"5ms\"\n";
    let s = chaos::scenario::parse_str("confirm.toml", text).unwrap_or_else(|d| panic!("{d}"));
    let other = d.plan(&s.faults[0]).await.unwrap();
    let mine = d.plan(&s.faults[1]).await.unwrap();
    let mut from_start = d.undo_for(&mine);
    from_start["events_before"] = serde_json::json!(0);
    let u = d.inject(&other).await.unwrap();
    assert!(shows(&d, &other, &u).await);
    assert!(
        matches!(
            d.confirm(&mine, &from_start).await,
            Err(DriverError::Retryable { .. })
        ),
        "another holder's latency confirmed this fault"
    );
    d.revert(&u).await.unwrap();
    sb.stop();
}

/// The event log in pieces: `GET /events/count`, then `GET /events?since=N` returns only what
/// came after (what `confirm` polls, instead of the whole log each time); a bad `since` is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_is_read_from_where_the_inject_left_it() {
    let sb = Sandbox::start(SandboxConfig::default(), None)
        .await
        .unwrap();
    let d = SandboxDriver::new(&sb.control_url);
    let all = d.call("GET", "/events").await.unwrap();
    let n = d.call("GET", "/events/count").await.unwrap()["count"]
        .as_u64()
        .unwrap();
    assert_eq!(n as usize, all.as_array().unwrap().len());
    d.call("POST", "/zones/c/down?by=fault:t").await.unwrap();
    let new = d.call("GET", &format!("/events?since={n}")).await.unwrap();
    let new = new.as_array().unwrap();
    assert!(!new.is_empty());
    assert!(new.iter().any(|e| e["event"] == "zone_down"), "{new:?}");
    // `since` is the tail of the whole log from the Nth event (more may have come since).
    let total = d.call("GET", "/events").await.unwrap();
    let total = total.as_array().unwrap();
    assert_eq!(&total[n as usize..n as usize + new.len()], new.as_slice());
    assert!(matches!(
        d.call("GET", "/events?since=x").await,
        Err(DriverError::Permanent(_))
    ));
    sb.stop();
}

/// The sandbox's control-plane view (what the run's control-plane events are diffed from):
/// the zone, its nodes and its db instance as the sandbox reports them, before and during an
/// outage; and an outage with parts left out, which the sandbox cannot do, refused at plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_control_plane_shows_an_outage_and_refuses_a_partial_one() {
    let sb = Sandbox::start(SandboxConfig::default(), None)
        .await
        .unwrap();
    let d = SandboxDriver::new(&sb.control_url);
    let f = fault("kind = \"az-outage\"\nzone = \"b\"");
    let p = d.plan(&f).await.unwrap();
    let planned = [chaos::fault::Planned {
        fault: f.clone(),
        plan: p.clone(),
    }];
    let read = || async { d.observe(&planned).unwrap().await.unwrap() };
    let before = read().await;
    assert_eq!(before["sandbox zone b"], "up");
    let node_b = before
        .keys()
        .find(|k| k.starts_with("sandbox node") && k.ends_with("(zone b)"))
        .cloned()
        .unwrap_or_else(|| panic!("{before:?}"));
    assert_eq!(before[&node_b], "running, in the load balancer");
    let undo = d.inject(&p).await.unwrap();
    assert!(shows(&d, &p, &undo).await);
    let during = read().await;
    let changed: Vec<String> = chaos::fault::diff(&before, &during, 1.0)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        changed.contains(&"sandbox zone b: up → down".to_string()),
        "{changed:?}"
    );
    assert!(
        changed
            .iter()
            .any(|c| c.starts_with(&node_b) && c.contains("→ stopped")),
        "{changed:?}"
    );
    d.revert(&undo).await.unwrap();
    let partial = fault("kind = \"az-outage\"\nzone = \"b\"\nparts = [\"network\", \"db\"]");
    match d.plan(&partial).await {
        Err(DriverError::Unsupported(m)) => {
            assert!(m.contains("instances, asg, cache"), "{m}");
            assert!(m.contains("kind = \"aws\""), "{m}");
        }
        other => panic!("{other:?}"),
    }
    sb.stop();
}
