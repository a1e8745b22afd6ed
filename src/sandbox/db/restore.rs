//! Backups and restores of the database cluster: a snapshot of the writer's data every
//! `snapshot_interval`, and a restore that loses every instance's data at once, serves nothing
//! for `restore_time`, then brings every instance back with the newest snapshot — what a team
//! does when the database is gone (an RDS restore from snapshot, a `pg_basebackup` put back).
//!
//! It owns the snapshot and the restore's state. The acknowledged writes the snapshot does not
//! hold are logged as `db_writes_lost` when the restore ends (the ground truth for the data
//! check and the RPO), with the snapshot's age at the loss in `db_restore_start`. It must never
//! hand out an id twice: ids keep counting from where they were (a read-back of a lost write
//! finds nothing, never a newer note under its id).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Db;
use crate::sandbox::events::lock;

/// A copy of the writer's data at one moment.
pub(super) struct Snapshot {
    pub(super) notes: BTreeMap<u64, String>,
    pub(super) taken: Instant,
}

/// Snapshot the writer every `every`, for as long as the cluster lives.
pub(super) fn spawn_snapshots(db: &Arc<Db>, every: Duration) {
    let weak = Arc::downgrade(db);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(db) = weak.upgrade() else { return };
            db.snapshot();
        }
    });
}

impl Db {
    /// Copy the writer's data aside as the newest snapshot — unless the writer is not serving
    /// (failing over, restoring, its zone down): that snapshot is skipped, as a backup job
    /// that cannot reach its database is, and the previous one stays the newest.
    pub fn snapshot(&self) -> bool {
        let mut s = lock(&self.state);
        let w = s.writer;
        if !s.serving(w) {
            let why = if s.restoring {
                "restoring"
            } else {
                "the writer is not serving"
            };
            drop(s);
            self.events
                .log("db_snapshot_skipped", json!({ "why": why }));
            return false;
        }
        let notes = s.instances[w].notes.clone();
        let newest = notes.keys().next_back().copied();
        let count = notes.len();
        s.snapshot = Some(Snapshot {
            notes,
            taken: Instant::now(),
        });
        drop(s);
        self.events.log(
            "db_snapshot",
            json!({ "notes": count, "newest_id": newest }),
        );
        true
    }

    /// Lose the whole database (every instance's data) and restore it from the newest
    /// snapshot: nothing serves for `restore_time`. Returns false if a restore is already
    /// under way.
    pub fn restore(self: &Arc<Self>, reason: &str) -> bool {
        {
            let mut s = lock(&self.state);
            if s.restoring {
                return false;
            }
            s.restoring = true;
            s.restores += 1;
            // A failover under way ends here: there is nothing left to promote.
            if s.failing_over {
                s.failing_over = false;
                self.events.log(
                    "db_failover_end",
                    json!({ "cancelled_by": "db_restore", "writer": s.instances[s.writer].name }),
                );
            }
            s.pending.clear();
            for inst in s.instances.iter_mut() {
                inst.notes.clear();
            }
            self.reconcile(&s);
            let age = s.snapshot.as_ref().map(|n| n.taken.elapsed().as_secs_f64());
            self.events.log(
                "db_restore_start",
                json!({
                    "reason": reason,
                    "snapshot_age_s": age,
                    "restore_time_s": self.cfg.restore_time.as_secs_f64(),
                }),
            );
        }
        let db = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(db.cfg.restore_time).await;
            db.restored();
        });
        true
    }

    /// The restore is done: every instance holds the snapshot's data and serves again (the
    /// writer where it was, or the first reachable instance if its zone is down meanwhile).
    fn restored(self: &Arc<Self>) {
        let mut s = lock(&self.state);
        let data = s
            .snapshot
            .as_ref()
            .map(|n| n.notes.clone())
            .unwrap_or_default();
        let lost: Vec<u64> = s
            .acked
            .iter()
            .filter(|id| !data.contains_key(id))
            .copied()
            .collect();
        // Lost once, logged once: a later restore or failover must not count them again.
        for id in &lost {
            s.acked.remove(id);
            s.lost.insert(*id);
        }
        // Writes an earlier failover lost that this (older) snapshot holds are back: acknowledged
        // again as far as the cluster knows.
        let back: Vec<u64> = s
            .lost
            .iter()
            .filter(|id| data.contains_key(id))
            .copied()
            .collect();
        for id in &back {
            s.lost.remove(id);
            s.acked.insert(*id);
        }
        for inst in s.instances.iter_mut() {
            inst.notes = data.clone();
            inst.stale = false;
        }
        if !s.instances[s.writer].reachable {
            if let Some(i) = s.instances.iter().position(|inst| inst.reachable) {
                s.writer = i;
            }
        }
        s.restoring = false;
        self.reconcile(&s);
        let writer = s.instances[s.writer].name.clone();
        let notes = data.len();
        drop(s);
        if !lost.is_empty() {
            self.events.log(
                "db_writes_lost",
                json!({ "count": lost.len(), "ids": lost }),
            );
        }
        if !back.is_empty() {
            self.events.log(
                "db_writes_recovered",
                json!({ "count": back.len(), "ids": back }),
            );
        }
        self.events.log(
            "db_restore_end",
            json!({ "writer": writer, "notes": notes }),
        );
    }
}
