//! The sandbox's database cluster: a writer in one zone, a reader in each other zone, reached by
//! app nodes through a cluster endpoint that follows failovers.
//!
//! Replication is `sync` (a write is acknowledged once the writer and every reachable reader
//! hold it) or `async` (readers apply it after `lag`). A failover makes the writer unreachable;
//! for `failover_time` every write fails; then the most up-to-date reachable reader is promoted.
//! With `async`, writes acknowledged by the old writer but not yet applied on the promoted reader
//! are gone — logged as `db_writes_lost` with their ids, the ground truth the data check (issue 4)
//! is tested against. Losing the writer's zone triggers a failover by itself, as Aurora does.
//!
//! This is an in-process model reached by function calls, not a TCP server: what the harness
//! observes of it is only through the app nodes' HTTP answers (201 after an acknowledged write,
//! 503 when the cluster refuses).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::events::{lock, Events};

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
    Unavailable(&'static str),
}

struct Instance {
    name: String,
    zone: String,
    reachable: bool,
    notes: BTreeMap<u64, String>,
}

struct State {
    instances: Vec<Instance>,
    writer: usize,
    failing_over: bool,
    next_id: u64,
    /// Async replication: (id, text, apply-at), in id order.
    pending: Vec<(u64, String, Instant)>,
}

pub struct Db {
    cfg: DbConfig,
    state: Mutex<State>,
    events: Arc<Events>,
}

impl Db {
    /// One instance per zone; the writer in `cfg.writer_zone` (or the first zone).
    pub fn new(cfg: DbConfig, zones: &[String], events: Arc<Events>) -> Arc<Db> {
        let instances: Vec<Instance> = zones
            .iter()
            .map(|z| Instance {
                name: format!("db-{z}"),
                zone: z.clone(),
                reachable: true,
                notes: BTreeMap::new(),
            })
            .collect();
        let writer = instances
            .iter()
            .position(|i| i.zone == cfg.writer_zone)
            .unwrap_or(0);
        let db = Arc::new(Db {
            cfg,
            state: Mutex::new(State {
                instances,
                writer,
                failing_over: false,
                next_id: 1,
                pending: Vec::new(),
            }),
            events,
        });
        if let Replication::Async { lag } = db.cfg.replication {
            let weak = Arc::downgrade(&db);
            tokio::spawn(async move {
                let tick = (lag / 4).clamp(Duration::from_millis(1), Duration::from_millis(20));
                while let Some(db) = weak.upgrade() {
                    db.apply_due(Instant::now());
                    drop(db);
                    tokio::time::sleep(tick).await;
                }
            });
        }
        db
    }

    /// Write a note through the cluster endpoint; the id once acknowledged.
    pub fn write(&self, text: &str) -> Result<u64, DbError> {
        let mut s = lock(&self.state);
        if s.failing_over {
            return Err(DbError::Unavailable("failover in progress"));
        }
        let w = s.writer;
        if !s.instances[w].reachable {
            return Err(DbError::Unavailable("writer unreachable"));
        }
        let id = s.next_id;
        s.next_id += 1;
        s.instances[w].notes.insert(id, text.to_string());
        match self.cfg.replication {
            Replication::Sync => {
                for (i, inst) in s.instances.iter_mut().enumerate() {
                    if i != w && inst.reachable {
                        inst.notes.insert(id, text.to_string());
                    }
                }
            }
            Replication::Async { lag } => {
                s.pending.push((id, text.to_string(), Instant::now() + lag));
            }
        }
        Ok(id)
    }

    /// Read one note: from the writer, or from a reader when the writer is out.
    pub fn read(&self, id: u64) -> Result<Option<String>, DbError> {
        let s = lock(&self.state);
        let inst = Self::read_instance(&s).ok_or(DbError::Unavailable("no instance reachable"))?;
        Ok(inst.notes.get(&id).cloned())
    }

    /// The `n` most recent notes (by id), from the same instance choice as [`Db::read`].
    pub fn recent(&self, n: usize) -> Result<Vec<(u64, String)>, DbError> {
        let s = lock(&self.state);
        let inst = Self::read_instance(&s).ok_or(DbError::Unavailable("no instance reachable"))?;
        Ok(inst
            .notes
            .iter()
            .rev()
            .take(n)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn read_instance(s: &State) -> Option<&Instance> {
        let w = &s.instances[s.writer];
        if w.reachable && !s.failing_over {
            return Some(w);
        }
        s.instances.iter().find(|i| i.reachable)
    }

    fn apply_due(&self, now: Instant) {
        let mut s = lock(&self.state);
        let due = s.pending.iter().take_while(|p| p.2 <= now).count();
        if due == 0 {
            return;
        }
        let applied: Vec<(u64, String, Instant)> = s.pending.drain(..due).collect();
        let w = s.writer;
        for (i, inst) in s.instances.iter_mut().enumerate() {
            if i != w && inst.reachable {
                for (id, text, _) in &applied {
                    inst.notes.insert(*id, text.clone());
                }
            }
        }
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
        let candidate = s
            .instances
            .iter()
            .enumerate()
            .filter(|(i, inst)| *i != old && inst.reachable)
            .max_by_key(|(_, inst)| inst.notes.keys().next_back().copied().unwrap_or(0))
            .map(|(i, _)| i);
        let new = candidate.unwrap_or(old);
        // Acknowledged writes the new writer never received are lost.
        let lost: Vec<u64> = s.instances[old]
            .notes
            .keys()
            .filter(|id| !s.instances[new].notes.contains_key(id))
            .copied()
            .collect();
        s.pending.retain(|p| !lost.contains(&p.0));
        s.writer = new;
        s.failing_over = false;
        // Every other instance resynchronises from the new writer (the old writer's extra
        // writes vanish with it).
        let data = s.instances[new].notes.clone();
        for (i, inst) in s.instances.iter_mut().enumerate() {
            if i != new && inst.reachable {
                inst.notes = data.clone();
            }
        }
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
        let lost_writer = {
            let mut s = lock(&self.state);
            let w = s.writer;
            let mut lost_writer = false;
            let data = s.instances[w].notes.clone();
            for (i, inst) in s.instances.iter_mut().enumerate() {
                if inst.zone == zone && inst.reachable != reachable {
                    inst.reachable = reachable;
                    if reachable && i != w {
                        inst.notes = data.clone(); // rejoins as a reader, resynchronised
                    }
                    if !reachable && i == w {
                        lost_writer = true;
                    }
                }
            }
            lost_writer
        };
        if lost_writer {
            self.failover(&format!("writer's zone {zone} unreachable"));
        }
    }

    /// (name, zone, role) of every instance, for the control API's resource list.
    pub fn describe(&self) -> Vec<serde_json::Value> {
        let s = lock(&self.state);
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
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(rep: Replication) -> Arc<Db> {
        let zones: Vec<String> = ["a", "b", "c"].iter().map(|z| z.to_string()).collect();
        Db::new(
            DbConfig {
                writer_zone: "a".into(),
                replication: rep,
                failover_time: Duration::from_millis(100),
            },
            &zones,
            Arc::new(Events::new(None).unwrap()),
        )
    }

    #[tokio::test]
    async fn sync_failover_loses_nothing_and_writes_fail_meanwhile() {
        let d = db(Replication::Sync);
        let ids: Vec<u64> = (0..10)
            .map(|i| d.write(&format!("n{i}")).unwrap())
            .collect();
        assert!(d.failover("test"));
        assert!(d.write("x").is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        for id in ids {
            assert!(d.read(id).unwrap().is_some());
        }
        assert!(d.write("after").is_ok());
        let ev = d.events.all();
        assert!(ev.iter().all(|e| e["event"] != "db_writes_lost"));
    }

    #[tokio::test]
    async fn async_failover_loses_exactly_the_unreplicated_writes() {
        let d = db(Replication::Async {
            lag: Duration::from_secs(60),
        });
        let old = d.write("replicated?").unwrap();
        // Nothing has been applied on readers (lag 60 s): the failover loses it.
        assert!(d.failover("test"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(d.read(old).unwrap(), None);
        let lost: Vec<_> = d
            .events
            .all()
            .into_iter()
            .filter(|e| e["event"] == "db_writes_lost")
            .collect();
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0]["ids"], json!([old]));
    }

    #[tokio::test]
    async fn losing_the_writer_zone_fails_over() {
        let d = db(Replication::Sync);
        d.set_zone("a", false);
        assert!(d.write("x").is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(d.write("y").is_ok());
        assert!(d
            .describe()
            .iter()
            .any(|i| i["db_role"] == "writer" && i["zone"] != "a"));
    }
}
