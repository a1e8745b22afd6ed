//! The sandbox's cache (sessions and the read cache of `GET /notes`): a primary with a replica,
//! served on its own loopback port ([`super::wire`]) behind one primary endpoint, as
//! ElastiCache's is. App nodes reach it with a [`CacheClient`] whose calls time out after the
//! node's cache timeout.
//!
//! Partitioned, the server takes requests and never answers: every call waits the timeout and
//! fails — a real wait on a real socket, so it shows in latency — and the node then falls back
//! to the database (`fail-open`) or fails the request (`fail-closed`). A failover closes the
//! port for `failover_time` (calls are refused), then the replica takes over on the same
//! endpoint. Replication is asynchronous, as ElastiCache's is: a session reaches the replica
//! `replication_lag` after it was written, and the sessions the replica had not received when
//! it was promoted are lost — logged with their ids (`cache_failover_end`). A request that
//! carries a lost session's cookie is then refused (401), as a real app would log its user out.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::events::{lock, Events};
use super::wire::{self, Endpoint, Reply, WireError};

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
    /// How long a session takes to reach the replica.
    pub replication_lag: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("cache timed out")]
    Timeout,
    #[error("cache unavailable")]
    Unavailable,
}

pub struct Cache {
    pub cfg: CacheConfig,
    endpoint: Mutex<Option<Arc<Endpoint>>>,
    partition_holds: Mutex<std::collections::BTreeSet<String>>,
    /// Who holds the cache node down (kill-nodes faults on the cache role).
    down_holds: Mutex<std::collections::BTreeSet<String>>,
    partitioned: AtomicBool,
    failing_over: AtomicBool,
    sessions: Mutex<HashSet<String>>,
    /// The replica's copy, and what is on its way to it (due time, session).
    replica: Mutex<HashSet<String>>,
    in_flight: Mutex<std::collections::VecDeque<(Instant, String)>>,
    recent: Mutex<Option<(Instant, serde_json::Value)>>,
    events: Arc<Events>,
}

impl Cache {
    /// Start the cache's server on a port chosen by the OS.
    pub async fn start(cfg: CacheConfig, events: Arc<Events>) -> std::io::Result<Arc<Cache>> {
        let cache = Arc::new(Cache {
            cfg,
            endpoint: Mutex::new(None),
            partition_holds: Mutex::new(Default::default()),
            down_holds: Mutex::new(Default::default()),
            partitioned: AtomicBool::new(false),
            failing_over: AtomicBool::new(false),
            sessions: Mutex::new(HashSet::new()),
            replica: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(Default::default()),
            recent: Mutex::new(None),
            events,
        });
        // Replication to the replica, applied as it comes due.
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            while let Some(c) = weak.upgrade() {
                c.replicate_due(Instant::now());
                drop(c);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let weak = Arc::downgrade(&cache);
        let handler: wire::Handler = Arc::new(move |req: Value| {
            let cache = weak.upgrade();
            Box::pin(async move {
                match cache {
                    Some(c) => c.serve(&req),
                    None => Reply::Err("shutting down".into()),
                }
            })
        });
        *lock(&cache.endpoint) = Some(Endpoint::start(handler).await?);
        Ok(cache)
    }

    /// Wait until a cache node taken down has closed its port.
    pub async fn settled(&self) {
        let ep = lock(&self.endpoint).clone();
        if let Some(ep) = ep {
            ep.settled().await;
        }
    }

    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        lock(&self.endpoint).as_ref().map(|e| e.addr())
    }

    /// Serve exactly while no one holds the cache down and it is not failing over: decided
    /// and applied under one lock, from the current state, so concurrent changes (a failover
    /// ending while a hold is released) always leave the last word to the truth.
    fn apply_up(&self) {
        let ep = lock(&self.endpoint);
        let up = lock(&self.down_holds).is_empty() && !self.failing_over.load(Ordering::SeqCst);
        if let Some(e) = ep.as_ref() {
            e.set_up(up);
        }
    }

    /// `holder` takes the cache node down (port closed, connections dropped: calls are
    /// refused) or lets it go. Returns whether its state changed.
    pub fn set_held(&self, holder: &str, held: bool) -> bool {
        let (was, now) = {
            let mut h = lock(&self.down_holds);
            let was = h.is_empty();
            if held {
                h.insert(holder.to_string());
            } else {
                h.remove(holder);
            }
            (was, h.is_empty())
        };
        self.apply_up();
        if was != now {
            self.events.log(
                if now { "cache_up" } else { "cache_down" },
                json!({ "by": holder }),
            );
        }
        was != now
    }

    /// Stop the server (the sandbox is shutting down).
    pub fn stop(&self) {
        lock(&self.down_holds).insert("shutdown".into());
        self.apply_up();
    }

    fn serve(&self, req: &Value) -> Reply {
        if self.partitioned.load(Ordering::SeqCst) {
            return Reply::Drop;
        }
        if self.failing_over.load(Ordering::SeqCst) {
            return Reply::Err("failing over".into());
        }
        let key = req["key"].as_str().unwrap_or_default();
        match req["op"].as_str() {
            Some("put_session") => {
                lock(&self.sessions).insert(key.to_string());
                lock(&self.in_flight)
                    .push_back((Instant::now() + self.cfg.replication_lag, key.to_string()));
                Reply::Ok(Value::Null)
            }
            Some("has_session") => Reply::Ok(json!(lock(&self.sessions).contains(key))),
            Some("get_recent") => {
                let r = lock(&self.recent);
                Reply::Ok(
                    r.as_ref()
                        .filter(|(at, _)| at.elapsed() < self.cfg.ttl)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(Value::Null),
                )
            }
            Some("set_recent") => {
                *lock(&self.recent) = Some((Instant::now(), req["value"].clone()));
                Reply::Ok(Value::Null)
            }
            Some("invalidate_recent") => {
                *lock(&self.recent) = None;
                Reply::Ok(Value::Null)
            }
            _ => Reply::Err(
                "unknown op (accepted: put_session, has_session, get_recent, set_recent, \
                 invalidate_recent)"
                    .into(),
            ),
        }
    }

    /// `holder` partitions the cache off (or heals its partition); it stays partitioned while
    /// anyone holds it.
    pub fn set_partitioned(&self, holder: &str, on: bool) {
        let on = {
            let mut h = lock(&self.partition_holds);
            if on {
                h.insert(holder.to_string());
            } else {
                h.remove(holder);
            }
            !h.is_empty()
        };
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

    fn replicate_due(&self, now: Instant) {
        // A primary that is failing over replicates nothing more.
        if self.failing_over.load(Ordering::SeqCst) {
            return;
        }
        let mut q = lock(&self.in_flight);
        let mut replica = lock(&self.replica);
        while q.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, s)) = q.pop_front() {
                replica.insert(s);
            }
        }
    }

    /// Promote the replica after `failover_time`: the sessions it had not received are lost.
    pub fn failover(self: &Arc<Self>) -> bool {
        if self.failing_over.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.events.log(
            "cache_failover_start",
            json!({ "failover_time_s": self.cfg.failover_time.as_secs_f64() }),
        );
        self.apply_up();
        let c = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(c.cfg.failover_time).await;
            let lost: Vec<String> = {
                // The replica becomes the primary; a new replica is seeded from it.
                lock(&c.in_flight).clear();
                let replica = lock(&c.replica).clone();
                let mut primary = lock(&c.sessions);
                let mut lost: Vec<String> = primary.difference(&replica).cloned().collect();
                lost.sort();
                *primary = replica;
                lost
            };
            *lock(&c.recent) = None;
            c.failing_over.store(false, Ordering::SeqCst);
            c.apply_up();
            c.events.log(
                "cache_failover_end",
                json!({ "sessions_lost": lost.len(), "ids": lost.iter().take(1000).collect::<Vec<_>>() }),
            );
        });
        true
    }

    pub fn describe(&self) -> Vec<serde_json::Value> {
        let state = if !lock(&self.down_holds).is_empty() {
            "stopped"
        } else if self.partitioned.load(Ordering::SeqCst) {
            "partitioned"
        } else if self.failing_over.load(Ordering::SeqCst) {
            "failing_over"
        } else {
            "running"
        };
        vec![json!({
            "id": "cache", "role": "cache", "zone": null, "state": state,
            "addr": self.addr().map(|a| a.to_string()),
        })]
    }
}

/// An app node's cache client: every call over TCP, timing out after the cache timeout.
pub struct CacheClient {
    pub cache: Arc<Cache>,
    wire: wire::Client,
}

impl CacheClient {
    pub fn new(cache: Arc<Cache>) -> CacheClient {
        CacheClient {
            cache,
            wire: wire::Client::default(),
        }
    }

    /// Calls cross a link with this delay (the `latency` fault on app→cache).
    pub fn over(mut self, delay: wire::Delay) -> CacheClient {
        self.wire = wire::Client::delayed(delay);
        self
    }

    pub fn policy(&self) -> CachePolicy {
        self.cache.cfg.policy
    }

    async fn call(&self, req: Value) -> Result<Value, CacheError> {
        let Some(addr) = self.cache.addr() else {
            return Err(CacheError::Unavailable);
        };
        match self.wire.call(addr, &req, self.cache.cfg.timeout).await {
            Ok(v) => Ok(v),
            Err(WireError::Timeout) => Err(CacheError::Timeout),
            Err(_) => Err(CacheError::Unavailable),
        }
    }

    pub async fn put_session(&self, id: &str) -> Result<(), CacheError> {
        self.call(json!({ "op": "put_session", "key": id }))
            .await
            .map(drop)
    }

    pub async fn has_session(&self, id: &str) -> Result<bool, CacheError> {
        let v = self.call(json!({ "op": "has_session", "key": id })).await?;
        Ok(v == Value::Bool(true))
    }

    pub async fn get_recent(&self) -> Result<Option<Value>, CacheError> {
        let v = self.call(json!({ "op": "get_recent" })).await?;
        Ok((!v.is_null()).then_some(v))
    }

    pub async fn set_recent(&self, v: Value) -> Result<(), CacheError> {
        self.call(json!({ "op": "set_recent", "value": v }))
            .await
            .map(drop)
    }

    /// Invalidate the read cache (after a write), best effort.
    pub async fn invalidate_recent(&self) {
        let _ = self.call(json!({ "op": "invalidate_recent" })).await;
    }
}
