//! Failover and reachability of the database cluster's instances: zone down/up, an instance
//! held down by a fault, the failover that makes the writer unreachable for `failover_time`
//! and then promotes the most up-to-date reachable reader, logging the acknowledged writes the
//! promotion lost (`db_writes_lost`).
//!
//! It owns the writer's identity and every instance's reachability (a restore, in
//! [`super::restore`], also ends a failover under way and may move the writer off a zone that
//! is down). It must never invent or
//! drop data of its own: a promoted reader keeps what it holds, the others resynchronise from
//! it, and a loss is only ever what the old writer acknowledged and the new one never got.

use std::sync::Arc;

use serde_json::json;

use super::{Db, Instance};
use crate::sandbox::events::lock;

impl Db {
    /// Start a failover (no-op while one runs): writes fail for `failover_time`, then a reader
    /// is promoted. Returns false if one was already running.
    pub fn failover(self: &Arc<Self>, reason: &str) -> bool {
        let gen;
        {
            let mut s = lock(&self.state);
            // Under a restore there is no data left to promote: the restore brings it back.
            if s.failing_over || s.restoring {
                return false;
            }
            s.failing_over = true;
            s.failover_gen += 1;
            gen = s.failover_gen;
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
            db.promote(gen);
        });
        true
    }

    /// Promote a reader: the end of failover `gen` (none if a restore ended it meanwhile).
    fn promote(&self, gen: u64) {
        let mut s = lock(&self.state);
        if !s.failing_over || s.restoring || s.failover_gen != gen {
            return;
        }
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
        // Lost once, logged once: a later restore or failover must not count them again.
        for id in &lost {
            s.acked.remove(id);
            s.lost.insert(*id);
        }
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
            (
                !s.instances[w].reachable && !s.failing_over && !s.restoring,
                changed,
            )
        };
        if need_failover {
            self.failover(why);
        }
        changed
    }
}
