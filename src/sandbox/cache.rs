//! The sandbox's cache (sessions and the read cache of `GET /notes`): a primary with a replica.
//!
//! Partitioned, every call from an app node waits the node's cache timeout and fails — a real
//! wait, so it shows in latency — and the node then falls back to the database (`fail-open`) or
//! fails the request (`fail-closed`). A failover makes the cache unavailable for
//! `failover_time`, then the replica takes over without the sessions it had not received
//! (replication is asynchronous, as ElastiCache's is): they are logged as lost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::events::{lock, Events};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long an app node waits on the cache before giving up.
    pub timeout: Duration,
    pub policy: CachePolicy,
    pub failover_time: Duration,
    /// How long the read cache keeps `GET /notes`.
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("cache timed out")]
    Timeout,
    #[error("cache unavailable (failover)")]
    Unavailable,
}

pub struct Cache {
    pub cfg: CacheConfig,
    partitioned: AtomicBool,
    failing_over: AtomicBool,
    sessions: Mutex<HashSet<String>>,
    recent: Mutex<Option<(Instant, serde_json::Value)>>,
    events: Arc<Events>,
}

impl Cache {
    pub fn new(cfg: CacheConfig, events: Arc<Events>) -> Arc<Cache> {
        Arc::new(Cache {
            cfg,
            partitioned: AtomicBool::new(false),
            failing_over: AtomicBool::new(false),
            sessions: Mutex::new(HashSet::new()),
            recent: Mutex::new(None),
            events,
        })
    }

    /// The network part of every call: a partition is a timeout, a failover an error.
    async fn reach(&self) -> Result<(), CacheError> {
        if self.partitioned.load(Ordering::SeqCst) {
            tokio::time::sleep(self.cfg.timeout).await;
            return Err(CacheError::Timeout);
        }
        if self.failing_over.load(Ordering::SeqCst) {
            return Err(CacheError::Unavailable);
        }
        Ok(())
    }

    pub async fn put_session(&self, id: &str) -> Result<(), CacheError> {
        self.reach().await?;
        lock(&self.sessions).insert(id.to_string());
        Ok(())
    }

    pub async fn has_session(&self, id: &str) -> Result<bool, CacheError> {
        self.reach().await?;
        Ok(lock(&self.sessions).contains(id))
    }

    pub async fn get_recent(&self) -> Result<Option<serde_json::Value>, CacheError> {
        self.reach().await?;
        let r = lock(&self.recent);
        Ok(r.as_ref()
            .filter(|(at, _)| at.elapsed() < self.cfg.ttl)
            .map(|(_, v)| v.clone()))
    }

    pub async fn set_recent(&self, v: serde_json::Value) -> Result<(), CacheError> {
        self.reach().await?;
        *lock(&self.recent) = Some((Instant::now(), v));
        Ok(())
    }

    /// Invalidate the read cache (after a write), best effort.
    pub async fn invalidate_recent(&self) {
        if self.reach().await.is_ok() {
            *lock(&self.recent) = None;
        }
    }

    pub fn set_partitioned(&self, on: bool) {
        if self.partitioned.swap(on, Ordering::SeqCst) != on {
            self.events.log(
                if on {
                    "cache_partitioned"
                } else {
                    "cache_healed"
                },
                json!({}),
            );
        }
    }

    /// Promote the replica after `failover_time`; sessions are lost (async replication).
    pub fn failover(self: &Arc<Self>) -> bool {
        if self.failing_over.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.events.log(
            "cache_failover_start",
            json!({ "failover_time_s": self.cfg.failover_time.as_secs_f64() }),
        );
        let c = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(c.cfg.failover_time).await;
            let lost = std::mem::take(&mut *lock(&c.sessions)).len();
            *lock(&c.recent) = None;
            c.failing_over.store(false, Ordering::SeqCst);
            c.events
                .log("cache_failover_end", json!({ "sessions_lost": lost }));
        });
        true
    }

    pub fn describe(&self) -> Vec<serde_json::Value> {
        let state = if self.partitioned.load(Ordering::SeqCst) {
            "partitioned"
        } else if self.failing_over.load(Ordering::SeqCst) {
            "failing_over"
        } else {
            "running"
        };
        vec![json!({ "id": "cache", "role": "cache", "zone": null, "state": state })]
    }
}
