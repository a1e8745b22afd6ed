//! The database cluster's tests: replication over the wire, failover, lost writes, and a
//! cluster that recovers from losing every instance. They talk to the instances' real ports on
//! loopback; they look inside the cluster (its state, its endpoints) only to check or force what
//! the wire cannot show (a port closed while the state still calls the reader reachable), never
//! to stand in for what a client would see.

use super::client::DB_TIMEOUT;
use super::*;

/// The tests' cluster: writer in zone a, 100 ms failovers and restores, no periodic snapshot.
fn config(rep: Replication) -> DbConfig {
    DbConfig {
        writer_zone: "a".into(),
        replication: rep,
        failover_time: Duration::from_millis(100),
        snapshot_interval: None,
        restore_time: Duration::from_millis(100),
    }
}

async fn db(rep: Replication) -> (Arc<Db>, DbClient) {
    db_with(config(rep)).await
}

async fn db_with(cfg: DbConfig) -> (Arc<Db>, DbClient) {
    let zones: Vec<String> = ["a", "b", "c"].iter().map(|z| z.to_string()).collect();
    let d = Db::start(cfg, &zones, Arc::new(Events::new(None).unwrap()))
        .await
        .unwrap();
    (d.clone(), DbClient::new(d))
}

#[tokio::test]
async fn sync_failover_loses_nothing_and_writes_fail_meanwhile() {
    let (d, c) = db(Replication::Sync).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(c.write(&format!("n{i}")).await.unwrap());
    }
    let old_writer = d.writer_addr();
    assert!(d.failover("test"));
    // The writer's port is closed during the failover: the write is refused on the wire.
    assert!(c.write("x").await.is_err());
    assert!(tokio::net::TcpStream::connect(old_writer).await.is_err());
    // Reads go to a reader meanwhile.
    assert_eq!(c.read(ids[0]).await.unwrap().as_deref(), Some("n0"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in &ids {
        assert!(c.read(*id).await.unwrap().is_some());
    }
    assert_ne!(d.writer_addr(), old_writer);
    assert!(c.write("after").await.is_ok());
    assert_eq!(c.recent(1).await.unwrap()[0].1, "after");
    let ev = d.events.all();
    assert!(ev.iter().all(|e| e["event"] != "db_writes_lost"));
}

#[tokio::test]
async fn a_write_sent_to_a_reader_is_refused_as_read_only() {
    let (d, _) = db(Replication::Sync).await;
    let reader = d.describe()[1]["addr"].as_str().unwrap().parse().unwrap();
    let wire = wire::Client::default();
    let r = wire
        .call(reader, &json!({ "op": "write", "text": "x" }), DB_TIMEOUT)
        .await;
    assert!(matches!(r, Err(wire::WireError::Remote(m)) if m.starts_with("read-only")));
}

/// Replication is a conversation between the instances' ports: a reader holds an async
/// write only after the lag, takes replicated writes only from the current writer, and a
/// sync write is on every reachable reader when it is acknowledged.
#[tokio::test]
async fn replication_goes_over_the_wire_from_the_current_writer_only() {
    let read = |addr: std::net::SocketAddr, id: u64| async move {
        wire::Client::default()
            .call(addr, &json!({ "op": "read", "id": id }), DB_TIMEOUT)
            .await
            .unwrap()
    };
    let addr = |d: &Db, i: usize| d.describe()[i]["addr"].as_str().unwrap().parse().unwrap();
    // Async (lag 300 ms): on the reader after the lag, not before.
    let (d, c) = db(Replication::Async {
        lag: Duration::from_millis(300),
    })
    .await;
    let id = c.write("late").await.unwrap();
    let reader = addr(&d, 1);
    assert_eq!(read(reader, id).await, Value::Null, "not yet replicated");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(reader, id).await, json!("late"));
    // A replicated write from an instance that is not the writer (index 2) is refused,
    // and so is one sent to the writer itself.
    let forged = json!({ "op": "replicate", "from": 2, "entries": [[999, "forged"]] });
    let r = d.repl.call(reader, &forged, DB_TIMEOUT).await;
    assert!(matches!(r, Err(wire::WireError::Remote(m)) if m.contains("current writer")));
    assert_eq!(read(reader, 999).await, Value::Null);
    let to_writer = json!({ "op": "replicate", "from": 0, "entries": [[998, "x"]] });
    assert!(d
        .repl
        .call(addr(&d, 0), &to_writer, DB_TIMEOUT)
        .await
        .is_err());
    // Sync: on both readers as soon as it is acknowledged.
    let (d, c) = db(Replication::Sync).await;
    let id = c.write("now").await.unwrap();
    for i in [1, 2] {
        assert_eq!(read(addr(&d, i), id).await, json!("now"), "reader {i}");
    }
}

/// A reader the state calls reachable but whose port does not answer (just back, not yet
/// rebound) misses a sync write on the wire — and catches up from the writer at once, so
/// a later promotion of it loses nothing acknowledged.
#[tokio::test]
async fn a_reader_that_missed_a_replicated_write_catches_up() {
    let (d, c) = db(Replication::Sync).await;
    let reader = lock(&d.endpoints)[1].clone();
    reader.set_up(false);
    reader.settled().await;
    let id = c.write("missed on the wire").await.unwrap();
    assert!(
        lock(&d.state).instances[1].notes.contains_key(&id),
        "caught up from the writer"
    );
    reader.set_up(true);
    // db-a (the writer) fails over; db-b or db-c is promoted, both hold the write.
    d.set_held("db-c", "test", true).unwrap(); // so db-b is the one promoted
    d.set_held("db-a", "test", true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.read(id).await.unwrap().as_deref(),
        Some("missed on the wire")
    );
    assert!(d
        .events
        .all()
        .iter()
        .all(|e| e["event"] != "db_writes_lost"));
}

#[tokio::test]
async fn async_failover_loses_exactly_the_unreplicated_writes() {
    let (d, c) = db(Replication::Async {
        lag: Duration::from_millis(400),
    })
    .await;
    // Written, then given time to replicate (lag 400 ms, applied every 20 ms).
    let mut kept = Vec::new();
    for i in 0..5 {
        kept.push(c.write(&format!("kept {i}")).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Acknowledged, then the writer fails (promotion after 100 ms, well inside the lag) before the readers have them.
    let mut gone = Vec::new();
    for i in 0..3 {
        gone.push(c.write(&format!("gone {i}")).await.unwrap());
    }
    assert!(d.failover("test"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &kept {
        assert!(c.read(*id).await.unwrap().is_some(), "replicated {id} kept");
    }
    for id in &gone {
        assert_eq!(c.read(*id).await.unwrap(), None, "unreplicated {id} lost");
    }
    let lost: Vec<_> = d
        .events
        .all()
        .into_iter()
        .filter(|e| e["event"] == "db_writes_lost")
        .collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0]["ids"], json!(gone));
}

/// Every instance lost, then one reader back: the cluster fails over to it (the failover
/// that found no reader to promote is not the last word).
#[tokio::test]
async fn a_reader_coming_back_after_a_total_loss_is_promoted() {
    let (d, c) = db(Replication::Sync).await;
    let id = c.write("before").await.unwrap();
    for name in ["db-a", "db-b", "db-c"] {
        d.set_held(name, "test", true).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the failover finds no reader
    assert!(c.write("x").await.is_err());
    d.set_held("db-c", "test", false).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.write("after").await.is_ok(), "db-c promoted");
    assert_eq!(c.read(id).await.unwrap().as_deref(), Some("before"));
    assert!(d
        .describe()
        .iter()
        .any(|i| i["db_role"] == "writer" && i["id"] == "db-c"));
}

#[tokio::test]
async fn losing_the_writer_zone_fails_over() {
    let (d, c) = db(Replication::Sync).await;
    d.set_zone("a", false);
    assert!(c.write("x").await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.write("y").await.is_ok());
    assert!(d
        .describe()
        .iter()
        .any(|i| i["db_role"] == "writer" && i["zone"] != "a"));
}

/// A restore during a failover ends that failover (logged as cancelled); its promotion timer,
/// still running, must not cut short a failover begun after the restore. An async write a
/// failover lost, held by an older snapshot, comes back with the restore and is logged so.
#[tokio::test]
async fn a_restore_ends_a_failover_and_may_bring_back_what_it_lost() {
    // A lag no write is shipped within: every async write is the writer's alone.
    let mut cfg = config(Replication::Async {
        lag: Duration::from_secs(60),
    });
    cfg.failover_time = Duration::from_millis(400);
    let (d, c) = db_with(cfg).await;
    let id = c.write("only on the writer").await.unwrap();
    assert!(d.snapshot());
    // The failover loses the unreplicated write.
    assert!(d.failover("test"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ev = |kind: &str| -> Vec<Value> {
        d.events
            .all()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    };
    assert_eq!(ev("db_writes_lost")[0]["ids"], json!([id]));
    // A failover, cut short by a restore at 100 ms in.
    assert!(d.failover("again"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(d.restore("test"));
    assert!(!d.failover("during the restore"), "nothing to fail over to");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ends = ev("db_failover_end");
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert_eq!(ends[1]["cancelled_by"], "db_restore");
    // The snapshot held the write the first failover lost: it is back, and said to be.
    assert_eq!(
        c.read(id).await.unwrap().as_deref(),
        Some("only on the writer")
    );
    assert_eq!(ev("db_writes_recovered")[0]["ids"], json!([id]));
    // A third failover, begun after the restore: the cut-short one's timer (due at 500 ms
    // after it began, 200 ms from now) must not promote it early.
    let writer = d.writer_addr();
    assert!(d.failover("after"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(d.is_failing_over(), "promoted by an old failover's timer");
    assert_eq!(d.writer_addr(), writer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!d.is_failing_over());
    assert_ne!(d.writer_addr(), writer);
}
