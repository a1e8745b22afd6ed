//! The sandbox's database cluster: a writer in one zone, a reader in each other zone, reached by
//! app nodes through a cluster endpoint that follows failovers.
//!
//! Every instance is a TCP server on its own loopback port ([`super::wire`]); app nodes reach
//! them with a [`DbClient`], which dials the cluster endpoint (the current writer's address,
//! looked up at each call as a DNS name that follows failovers would be) for writes, and the
//! writer or else a reachable reader for reads. An unreachable instance (its zone is down, it
//! is the writer during a failover, or the cluster is being restored) has its port closed and its connections dropped; a write
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
//! cut off before its acknowledgement is not a lost write: its client saw it fail; one a later
//! restore brings back from an older snapshot is logged `db_writes_recovered`, so the truth
//! is the lost ids less the recovered ones). Losing the
//! writer's zone triggers a failover by itself, as Aurora does.
//!
//! Backups: every `snapshot_interval` the writer's data is copied aside (a snapshot); a
//! restore loses every instance's data at once, serves nothing for `restore_time`, then brings
//! the cluster back from the newest snapshot ([`restore`]).
//!
//! This file holds the cluster's state and each instance's server (what a request does on it);
//! the write path and replication are in [`replication`], failover and reachability in
//! [`failover`], snapshots and restores in [`restore`], the app nodes' client in [`client`].

mod client;
mod failover;
mod replication;
mod restore;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::events::{lock, Events};
use super::wire::{self, Endpoint, Reply};

pub use client::DbClient;

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
    /// How often the writer's data is snapshotted (`None`: never — a restore then brings
    /// the cluster back empty).
    pub snapshot_interval: Option<Duration>,
    /// How long a restore from a snapshot takes, every instance down meanwhile.
    pub restore_time: Duration,
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
    /// Writes acknowledged to their client and not lost since (what a failover or a restore
    /// can lose).
    acked: std::collections::BTreeSet<u64>,
    /// Acknowledged writes a failover or a restore lost (logged as `db_writes_lost`); a
    /// restore from a snapshot older than the loss may bring some back.
    lost: std::collections::BTreeSet<u64>,
    /// Which failover a promotion timer belongs to (one cut short by a restore must not
    /// promote during a later one).
    failover_gen: u64,
    /// Restores so far: a write, or a replication stream, begun before the latest restore is
    /// never acknowledged or applied after it.
    restores: u64,
    /// A restore is under way: every instance's data is gone and none serves.
    restoring: bool,
    /// The newest snapshot of the writer's data.
    snapshot: Option<restore::Snapshot>,
}

impl State {
    /// Whether instance `i` serves requests: reachable, and neither the writer failing over
    /// nor part of a cluster being restored.
    fn serving(&self, i: usize) -> bool {
        self.instances[i].reachable && !self.restoring && !(i == self.writer && self.failing_over)
    }
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
                lost: Default::default(),
                failover_gen: 0,
                restores: 0,
                restoring: false,
                snapshot: None,
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
        if let Some(every) = db.cfg.snapshot_interval {
            restore::spawn_snapshots(&db, every);
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

    /// Each instance's port is open exactly while it serves ([`State::serving`]).
    fn reconcile(&self, s: &State) {
        let eps = lock(&self.endpoints);
        for (i, ep) in eps.iter().enumerate().take(s.instances.len()) {
            ep.set_up(s.serving(i));
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
        if !s.serving(i) {
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
                // Written before a restore that wiped them: gone with the data.
                if req["gen"].as_u64() != Some(s.restores) {
                    return Reply::Err("from before the latest restore".into());
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

    fn read_instance(s: &State) -> Option<usize> {
        if s.restoring {
            return None;
        }
        if s.instances[s.writer].reachable && !s.failing_over {
            return Some(s.writer);
        }
        // A reader (the writer is down or failing over).
        s.instances
            .iter()
            .enumerate()
            .position(|(i, inst)| i != s.writer && inst.reachable)
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
                    "state": if s.restoring {
                        "restoring"
                    } else if inst.reachable {
                        "running"
                    } else {
                        "unreachable"
                    },
                    "failing_over": s.failing_over,
                    "restoring": s.restoring,
                    "snapshot_age_s": s.snapshot.as_ref().map(|n| n.taken.elapsed().as_secs_f64()),
                    "addr": eps.get(i).map(|e| e.addr().to_string()),
                })
            })
            .collect()
    }
}
