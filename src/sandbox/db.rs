//! The sandbox's database cluster: a writer in one zone, a reader in each other zone, reached by
//! app nodes through a cluster endpoint that follows failovers.
//!
//! Every instance is a TCP server on its own loopback port ([`super::wire`]); app nodes reach
//! them with a [`DbClient`], which dials the cluster endpoint (the current writer's address,
//! looked up at each call as a DNS name that follows failovers would be) for writes, and the
//! writer or else a reachable reader for reads. An unreachable instance (its zone is down, or it
//! is the writer during a failover) has its port closed and its connections dropped; a write
//! that reaches an instance that is no longer the writer is refused as read-only.
//!
//! Replication goes over the wire too: the writer sends each write to the readers' ports
//! (`{"op": "replicate", ...}`). `sync`: the write is acknowledged once every reader the
//! writer believed reachable has answered (a reader that could not be reached misses it and
//! resynchronises when it rejoins). `async`: the write is acknowledged at once and shipped to
//! the readers `lag` later. A reader accepts a replicated write only from the current writer,
//! never from one that is failing over. A failover makes the writer unreachable; for
//! `failover_time` every write fails; then the most up-to-date reachable reader is promoted.
//! Writes acknowledged by the old writer but not on the promoted reader are gone — logged as
//! `db_writes_lost` with their ids, the ground truth the data check is tested against (a write
//! cut off before its acknowledgement is not a lost write: its client saw it fail). Losing the
//! writer's zone triggers a failover by itself, as Aurora does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::events::{lock, Events};
use super::http;
use super::wire::{self, Endpoint, Reply};

/// How long an app node waits on one database call (connect included).
const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the writer waits on a reader for one replication call.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Replication {
    Sync,
    Async { lag: Duration },
}

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub writer_zone: String,
    pub replication: Replication,
    pub failover_time: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

struct Instance {
    name: String,
    zone: String,
    /// Derived: its zone is up and no fault holds it down.
    reachable: bool,
    zone_down: bool,
    /// Who holds this instance down (kill-nodes faults, by name).
    held: std::collections::BTreeSet<String>,
    notes: BTreeMap<u64, String>,
    /// Missed a resynchronisation (it was away at a promotion, or came back with no live
    /// writer to copy): its data may hold writes the cluster has since lost. Promoted only if
    /// no up-to-date reader is reachable.
    stale: bool,
}

struct State {
    instances: Vec<Instance>,
    writer: usize,
    failing_over: bool,
    next_id: u64,
    /// Async replication: (id, text, send-at), in id order.
    pending: Vec<(u64, String, Instant)>,
    /// Writes acknowledged to their client (what a failover can lose).
    acked: std::collections::BTreeSet<u64>,
}

pub struct Db {
    cfg: DbConfig,
    state: Mutex<State>,
    events: Arc<Events>,
    /// Instance i's server.
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    /// The writer's side of replication.
    repl: wire::Client,
}

impl Db {
    /// One instance per zone, each serving on its own port; the writer in `cfg.writer_zone`
    /// (or the first zone).
    pub async fn start(
        cfg: DbConfig,
        zones: &[String],
        events: Arc<Events>,
    ) -> std::io::Result<Arc<Db>> {
        let instances: Vec<Instance> = zones
            .iter()
            .map(|z| Instance {
                name: format!("db-{z}"),
                zone: z.clone(),
                reachable: true,
                zone_down: false,
                held: Default::default(),
                notes: BTreeMap::new(),
                stale: false,
            })
            .collect();
        let writer = instances
            .iter()
            .position(|i| i.zone == cfg.writer_zone)
            .unwrap_or(0);
        let n = instances.len();
        let db = Arc::new(Db {
            cfg,
            state: Mutex::new(State {
                instances,
                writer,
                failing_over: false,
                next_id: 1,
                pending: Vec::new(),
                acked: Default::default(),
            }),
            events,
            endpoints: Mutex::new(Vec::new()),
            repl: wire::Client::default(),
        });
        for i in 0..n {
            let weak = Arc::downgrade(&db);
            let handler: wire::Handler = Arc::new(move |req: Value| {
                let db = weak.upgrade();
                Box::pin(async move {
                    match db {
                        Some(db) => db.serve(i, &req).await,
                        None => Reply::Err("shutting down".into()),
                    }
                })
            });
            let ep = Endpoint::start(handler).await?;
            lock(&db.endpoints).push(ep);
        }
        if let Replication::Async { lag } = db.cfg.replication {
            let weak = Arc::downgrade(&db);
            tokio::spawn(async move {
                let tick = (lag / 4).clamp(Duration::from_millis(1), Duration::from_millis(20));
                while let Some(db) = weak.upgrade() {
                    db.ship_due(Instant::now()).await;
                    drop(db);
                    tokio::time::sleep(tick).await;
                }
            });
        }
        Ok(db)
    }

    /// Wait until every instance taken down has closed its port.
    pub async fn settled(&self) {
        let eps: Vec<_> = lock(&self.endpoints).clone();
        for ep in eps {
            ep.settled().await;
        }
    }

    /// Stop every instance's server (the sandbox is shutting down).
    pub fn stop(&self) {
        for ep in lock(&self.endpoints).iter() {
            ep.set_up(false);
        }
    }

    /// Each instance serves exactly while it is reachable — and, for the writer, not failing
    /// over.
    fn reconcile(&self, s: &State) {
        let eps = lock(&self.endpoints);
        for (i, inst) in s.instances.iter().enumerate() {
            if let Some(ep) = eps.get(i) {
                ep.set_up(inst.reachable && !(i == s.writer && s.failing_over));
            }
        }
    }

    pub fn is_failing_over(&self) -> bool {
        lock(&self.state).failing_over
    }

    /// Instance names (in `zone`, or all) in the order a maintenance reboot takes them:
    /// the readers, then the writer.
    pub fn restart_order(&self, zone: Option<&str>) -> Vec<String> {
        let s = lock(&self.state);
        let mut order: Vec<(bool, String)> = s
            .instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| zone.is_none_or(|z| inst.zone == z))
            .map(|(i, inst)| (i == s.writer, inst.name.clone()))
            .collect();
        order.sort_by_key(|(writer, _)| *writer);
        order.into_iter().map(|(_, name)| name).collect()
    }

    /// The cluster endpoint: the current writer's address, whether or not it answers.
    pub fn writer_addr(&self) -> std::net::SocketAddr {
        let w = lock(&self.state).writer;
        lock(&self.endpoints)[w].addr()
    }

    /// Where a read goes: the writer, or a reachable reader while the writer is out.
    pub fn read_addr(&self) -> Option<std::net::SocketAddr> {
        let s = lock(&self.state);
        let i = Self::read_instance(&s)?;
        Some(lock(&self.endpoints)[i].addr())
    }

    /// One request to instance `i`, on its server.
    async fn serve(&self, i: usize, req: &Value) -> Reply {
        if req["op"] == "write" {
            return self.write(i, req).await;
        }
        let mut s = lock(&self.state);
        // A request that slipped in while the server was being taken down.
        if !s.instances[i].reachable || (i == s.writer && s.failing_over) {
            return Reply::Err("instance down".into());
        }
        match req["op"].as_str() {
            Some("replicate") => {
                // Only from the current writer, while it is up: a failing writer's stream has
                // stopped, whatever was in flight.
                let from = req["from"].as_u64().map(|f| f as usize);
                if i == s.writer {
                    return Reply::Err("the writer takes no replicated writes".into());
                }
                if from != Some(s.writer) || s.failing_over {
                    return Reply::Err("not from the current writer".into());
                }
                let entries = req["entries"].as_array().cloned().unwrap_or_default();
                for e in &entries {
                    if let (Some(id), Some(text)) = (e[0].as_u64(), e[1].as_str()) {
                        s.instances[i].notes.insert(id, text.to_string());
                    }
                }
                Reply::Ok(json!(entries.len()))
            }
            Some("read") => {
                let Some(id) = req["id"].as_u64() else {
                    return Reply::Err("read needs an id".into());
                };
                Reply::Ok(json!(s.instances[i].notes.get(&id)))
            }
            Some("recent") => {
                let n = req["n"].as_u64().unwrap_or(20) as usize;
                let notes: Vec<Value> = s.instances[i]
                    .notes
                    .iter()
                    .rev()
                    .take(n)
                    .map(|(k, v)| json!([k, v]))
                    .collect();
                Reply::Ok(Value::Array(notes))
            }
            _ => Reply::Err("unknown op (accepted: write, read, recent, replicate)".into()),
        }
    }

    /// A write reaching instance `i`: stored if it is the writer, replicated (sync: to every
    /// reader it believes reachable, over the wire, before the acknowledgement; async: shipped
    /// `lag` later), then acknowledged with its id.
    async fn write(&self, i: usize, req: &Value) -> Reply {
        let Some(text) = req["text"].as_str() else {
            return Reply::Err("write needs a text".into());
        };
        let (id, readers) = {
            let mut s = lock(&self.state);
            if !s.instances[i].reachable || (i == s.writer && s.failing_over) {
                return Reply::Err("instance down".into());
            }
            if i != s.writer {
                return Reply::Err("read-only: this instance is not the writer".into());
            }
            let id = s.next_id;
            s.next_id += 1;
            s.instances[i].notes.insert(id, text.to_string());
            match self.cfg.replication {
                Replication::Sync => (id, self.reader_addrs(&s)),
                Replication::Async { lag } => {
                    s.pending.push((id, text.to_string(), Instant::now() + lag));
                    s.acked.insert(id);
                    return Reply::Ok(json!(id));
                }
            }
        };
        self.ship(i, &readers, json!([[id, text]])).await;
        // Acknowledged only if this instance is still the writer, up: one that began failing
        // over meanwhile never answers (its connection is being dropped).
        let mut s = lock(&self.state);
        if i != s.writer || s.failing_over || !s.instances[i].reachable {
            return Reply::Err("instance down".into());
        }
        s.acked.insert(id);
        Reply::Ok(json!(id))
    }

    /// (index, address) of the readers the writer believes reachable.
    fn reader_addrs(&self, s: &State) -> Vec<(usize, std::net::SocketAddr)> {
        let eps = lock(&self.endpoints);
        s.instances
            .iter()
            .enumerate()
            .filter(|(i, inst)| *i != s.writer && inst.reachable)
            .filter_map(|(i, _)| eps.get(i).map(|e| (i, e.addr())))
            .collect()
    }

    /// Send `entries` (`[[id, text], ...]`) from writer `from` to each reader, concurrently,
    /// and wait for every answer. A reader that did not take them — its port not yet open
    /// again after it came back, say — and is still reachable catches up from the writer
    /// (as a replica replays the log it missed); one that is gone resynchronises when it
    /// rejoins.
    async fn ship(&self, from: usize, readers: &[(usize, std::net::SocketAddr)], entries: Value) {
        let req = json!({ "op": "replicate", "from": from, "entries": entries });
        let req = &req;
        let missed = Mutex::new(Vec::new());
        let missed_ref = &missed;
        http::join_all(readers.iter().map(|(i, a)| async move {
            if self.repl.call(*a, req, REPLICATION_TIMEOUT).await.is_err() {
                lock(missed_ref).push(*i);
            }
        }))
        .await;
        let missed = missed.into_inner().unwrap_or_else(|e| e.into_inner());
        if missed.is_empty() {
            return;
        }
        let mut s = lock(&self.state);
        if s.writer != from || s.failing_over || !s.instances[from].reachable {
            return; // The writer is gone: nothing to catch up from.
        }
        for i in missed {
            if s.instances[i].reachable {
                Self::catch_up(&mut s, i);
            }
        }
    }

    /// Instance `i` takes the live writer's data as replicated so far (not the async writes
    /// still within their lag) and is up to date again.
    fn catch_up(s: &mut State, i: usize) {
        let pending: std::collections::BTreeSet<u64> = s.pending.iter().map(|p| p.0).collect();
        let data: BTreeMap<u64, String> = s.instances[s.writer]
            .notes
            .iter()
            .filter(|(id, _)| !pending.contains(id))
            .map(|(id, t)| (*id, t.clone()))
            .collect();
        let inst = &mut s.instances[i];
        inst.notes = data;
        inst.stale = false;
    }

    fn read_instance(s: &State) -> Option<usize> {
        if s.instances[s.writer].reachable && !s.failing_over {
            return Some(s.writer);
        }
        // A reader (the writer is down or failing over).
        s.instances
            .iter()
            .enumerate()
            .position(|(i, inst)| i != s.writer && inst.reachable)
    }

    /// Async replication: ship the writes whose lag has passed to the readers.
    async fn ship_due(&self, now: Instant) {
        let (from, readers, entries) = {
            let mut s = lock(&self.state);
            let due = s.pending.iter().take_while(|p| p.2 <= now).count();
            if due == 0 || s.failing_over {
                return;
            }
            let entries: Vec<Value> = s
                .pending
                .drain(..due)
                .map(|(id, text, _)| json!([id, text]))
                .collect();
            (s.writer, self.reader_addrs(&s), Value::Array(entries))
        };
        self.ship(from, &readers, entries).await;
    }

    /// Start a failover (no-op while one runs): writes fail for `failover_time`, then a reader
    /// is promoted. Returns false if one was already running.
    pub fn failover(self: &Arc<Self>, reason: &str) -> bool {
        {
            let mut s = lock(&self.state);
            if s.failing_over {
                return false;
            }
            s.failing_over = true;
            self.reconcile(&s);
            let old = s.instances[s.writer].name.clone();
            self.events.log(
                "db_failover_start",
                json!({ "writer": old, "reason": reason, "failover_time_s": self.cfg.failover_time.as_secs_f64() }),
            );
        }
        let db = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(db.cfg.failover_time).await;
            db.promote();
        });
        true
    }

    fn promote(&self) {
        let mut s = lock(&self.state);
        let old = s.writer;
        // The most up-to-date reachable reader (highest id held); the old writer only if no
        // reader is reachable at all.
        // An up-to-date reader first; a stale one only if no other is reachable.
        let candidate = s
            .instances
            .iter()
            .enumerate()
            .filter(|(i, inst)| *i != old && inst.reachable)
            .max_by_key(|(_, inst)| {
                (
                    !inst.stale,
                    inst.notes.keys().next_back().copied().unwrap_or(0),
                )
            })
            .map(|(i, _)| i);
        let new = candidate.unwrap_or(old);
        // Acknowledged writes the new writer never received are lost (one cut off before its
        // acknowledgement failed at its client, and vanishes with the old writer).
        let lost: Vec<u64> = s.instances[old]
            .notes
            .keys()
            .filter(|id| s.acked.contains(id) && !s.instances[new].notes.contains_key(id))
            .copied()
            .collect();
        // The old writer's replication stream ends with it.
        s.pending.clear();
        s.writer = new;
        s.failing_over = false;
        // Every other instance resynchronises from the new writer (the old writer's extra
        // writes vanish with it).
        let data = s.instances[new].notes.clone();
        for (i, inst) in s.instances.iter_mut().enumerate() {
            if i == new {
                inst.stale = false;
            } else if inst.reachable {
                inst.notes = data.clone();
                inst.stale = false;
            } else {
                // Away (the old writer among them): it must resynchronise before it counts.
                inst.stale = true;
            }
        }
        self.reconcile(&s);
        let (old_name, new_name) = (s.instances[old].name.clone(), s.instances[new].name.clone());
        drop(s);
        if !lost.is_empty() {
            self.events.log(
                "db_writes_lost",
                json!({ "count": lost.len(), "ids": lost }),
            );
        }
        self.events.log(
            "db_failover_end",
            json!({ "old_writer": old_name, "new_writer": new_name }),
        );
    }

    /// A zone's instance becomes (un)reachable. Losing the writer starts a failover.
    pub fn set_zone(self: &Arc<Self>, zone: &str, reachable: bool) {
        self.change(&format!("writer's zone {zone} unreachable"), |inst| {
            if inst.zone == zone {
                inst.zone_down = !reachable;
            }
        });
    }

    /// `holder` takes the instance `name` down (a killed instance) or lets it go; it is back
    /// once no one holds it and its zone is up. `None` if there is no such instance, else
    /// whether its state changed. Losing the writer starts a failover.
    pub fn set_held(self: &Arc<Self>, name: &str, holder: &str, held: bool) -> Option<bool> {
        if !lock(&self.state).instances.iter().any(|i| i.name == name) {
            return None;
        }
        let changed = self.change(&format!("writer {name} killed"), |inst| {
            if inst.name == name {
                if held {
                    inst.held.insert(holder.to_string());
                } else {
                    inst.held.remove(holder);
                }
            }
        });
        if changed {
            self.events.log(
                if held {
                    "db_instance_down"
                } else {
                    "db_instance_up"
                },
                json!({ "instance": name, "by": holder }),
            );
        }
        Some(changed)
    }

    /// Apply `f` to every instance, then make reachability follow: an instance that comes back
    /// rejoins as a reader, resynchronised from the writer; losing the writer starts a failover
    /// (`why`). Returns whether any instance changed state.
    fn change(self: &Arc<Self>, why: &str, f: impl Fn(&mut Instance)) -> bool {
        let (need_failover, changed) = {
            let mut s = lock(&self.state);
            s.instances.iter_mut().for_each(&f);
            let w = s.writer;
            let up = |i: &Instance| !i.zone_down && i.held.is_empty();
            let mut changed = false;
            let mut back = Vec::new();
            for (i, inst) in s.instances.iter_mut().enumerate() {
                let now = up(inst);
                if now != inst.reachable {
                    changed = true;
                    inst.reachable = now;
                    if now && i != w {
                        back.push(i);
                    }
                }
            }
            // A returning reader resynchronises from the writer — only from a live one that is
            // not failing over (a dead writer's unreplicated writes must not come back through
            // it); with none, it stays stale until the next promotion resynchronises it.
            let live = s.instances[w].reachable && !s.failing_over;
            for i in back {
                if live {
                    Self::catch_up(&mut s, i);
                } else {
                    s.instances[i].stale = true;
                }
            }
            self.reconcile(&s);
            // The writer is out and no failover is running (it just went, or an earlier
            // failover found no reader to promote and one may be back now): fail over.
            (!s.instances[w].reachable && !s.failing_over, changed)
        };
        if need_failover {
            self.failover(why);
        }
        changed
    }

    /// (name, zone, role) of every instance, for the control API's resource list.
    pub fn describe(&self) -> Vec<serde_json::Value> {
        let s = lock(&self.state);
        let eps = lock(&self.endpoints);
        s.instances
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                json!({
                    "id": inst.name,
                    "role": "db",
                    "zone": inst.zone,
                    "db_role": if i == s.writer { "writer" } else { "reader" },
                    "state": if inst.reachable { "running" } else { "unreachable" },
                    "failing_over": s.failing_over,
                    "addr": eps.get(i).map(|e| e.addr().to_string()),
                })
            })
            .collect()
    }
}

/// An app node's database client: writes to the cluster endpoint, reads from the writer or a
/// reader, each call over TCP with a timeout.
pub struct DbClient {
    db: Arc<Db>,
    wire: wire::Client,
}

impl DbClient {
    pub fn new(db: Arc<Db>) -> DbClient {
        DbClient {
            db,
            wire: wire::Client::default(),
        }
    }

    /// Calls cross a link with this delay (the `latency` fault on app→db).
    pub fn over(mut self, delay: wire::Delay) -> DbClient {
        self.wire = wire::Client::delayed(delay);
        self
    }

    async fn call(&self, addr: std::net::SocketAddr, req: Value) -> Result<Value, DbError> {
        self.wire
            .call(addr, &req, DB_TIMEOUT)
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Write a note; the id once the cluster acknowledged it.
    pub async fn write(&self, text: &str) -> Result<u64, DbError> {
        let v = self
            .call(
                self.db.writer_addr(),
                json!({ "op": "write", "text": text }),
            )
            .await?;
        v.as_u64()
            .ok_or_else(|| DbError::Unavailable("malformed reply".into()))
    }

    pub async fn read(&self, id: u64) -> Result<Option<String>, DbError> {
        let addr = self.read_addr()?;
        let v = self.call(addr, json!({ "op": "read", "id": id })).await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// The `n` most recent notes (by id).
    pub async fn recent(&self, n: usize) -> Result<Vec<(u64, String)>, DbError> {
        let addr = self.read_addr()?;
        let v = self.call(addr, json!({ "op": "recent", "n": n })).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_u64()?, p[1].as_str()?.to_string())))
            .collect())
    }

    fn read_addr(&self) -> Result<std::net::SocketAddr, DbError> {
        self.db
            .read_addr()
            .ok_or_else(|| DbError::Unavailable("no instance reachable".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db(rep: Replication) -> (Arc<Db>, DbClient) {
        let zones: Vec<String> = ["a", "b", "c"].iter().map(|z| z.to_string()).collect();
        let d = Db::start(
            DbConfig {
                writer_zone: "a".into(),
                replication: rep,
                failover_time: Duration::from_millis(100),
            },
            &zones,
            Arc::new(Events::new(None).unwrap()),
        )
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
}
