//! Replication inside the database cluster: how a write is stored on the writer and shipped
//! over the wire to the readers (`sync`: before the acknowledgement; `async`: `lag` later), and
//! how a reader that missed some catches up from the live writer.
//!
//! It owns the write path and the replication stream only. It must never promote, fail over or
//! change an instance's reachability (that is [`super::failover`]'s), and it must never let a
//! write reach a reader from anyone but the current, live writer: a failing writer's
//! unreplicated writes are exactly what a failover loses.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Db, Replication, State};
use crate::sandbox::events::lock;
use crate::sandbox::http;
use crate::sandbox::wire::Reply;

/// How long the writer waits on a reader for one replication call.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(2);

impl Db {
    /// A write reaching instance `i`: stored if it is the writer, replicated (sync: to every
    /// reader it believes reachable, over the wire, before the acknowledgement; async: shipped
    /// `lag` later), then acknowledged with its id.
    pub(super) async fn write(&self, i: usize, req: &Value) -> Reply {
        let Some(text) = req["text"].as_str() else {
            return Reply::Err("write needs a text".into());
        };
        let (id, readers, gen) = {
            let mut s = lock(&self.state);
            if !s.serving(i) {
                return Reply::Err("instance down".into());
            }
            if i != s.writer {
                return Reply::Err("read-only: this instance is not the writer".into());
            }
            let id = s.next_id;
            s.next_id += 1;
            s.instances[i].notes.insert(id, text.to_string());
            match self.cfg.replication {
                Replication::Sync => (id, self.reader_addrs(&s), s.restores),
                Replication::Async { lag } => {
                    s.pending.push((id, text.to_string(), Instant::now() + lag));
                    s.acked.insert(id);
                    return Reply::Ok(json!(id));
                }
            }
        };
        self.ship((i, gen), &readers, json!([[id, text]])).await;
        // Acknowledged only if this instance is still the writer, up: one that began failing
        // over meanwhile never answers (its connection is being dropped), nor one whose data
        // a restore wiped meanwhile (however short it was).
        let mut s = lock(&self.state);
        if i != s.writer || !s.serving(i) || s.restores != gen {
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
    /// rejoins. `gen` is the restore count when the entries were written: a reader refuses
    /// them once a restore came between.
    async fn ship(
        &self,
        (from, gen): (usize, u64),
        readers: &[(usize, std::net::SocketAddr)],
        entries: Value,
    ) {
        let req = json!({ "op": "replicate", "from": from, "gen": gen, "entries": entries });
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
        if s.writer != from || !s.serving(from) || s.restores != gen {
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
    pub(super) fn catch_up(s: &mut State, i: usize) {
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

    /// Async replication: ship the writes whose lag has passed to the readers.
    pub(super) async fn ship_due(&self, now: Instant) {
        let (from, readers, entries) = {
            let mut s = lock(&self.state);
            let due = s.pending.iter().take_while(|p| p.2 <= now).count();
            if due == 0 || s.failing_over || s.restoring {
                return;
            }
            let entries: Vec<Value> = s
                .pending
                .drain(..due)
                .map(|(id, text, _)| json!([id, text]))
                .collect();
            let from = (s.writer, s.restores);
            (from, self.reader_addrs(&s), Value::Array(entries))
        };
        self.ship(from, &readers, entries).await;
    }
}
