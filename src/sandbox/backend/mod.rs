//! The notes app's backends: the sandbox's own simulated database and cache, or real ones —
//! PostgreSQL (a multi-host URL; each (re)connection goes to the host that takes writes, so a
//! failover is followed on the next request) and Redis (direct, or the primary that Sentinel
//! names). An app node only sees [`DbBackend`] and [`CacheBackend`]; what they are is decided
//! where the node is built.
//!
//! A real backend never retries on its own: a request that meets a dead connection fails (the
//! client sees it), and the next request connects again. Every call is bounded by a timeout
//! (the database's 2 s, connecting 1 s per host of its URL, the cache's 200 ms); after a failed
//! connection attempt, calls fail at once for a moment instead of queueing to dial again. A
//! node's calls run concurrently on its one connection to each (pipelined), never one after
//! another behind a lock; only connecting is done once, for the calls that wait on it.

use std::time::Duration;

use serde_json::Value;

use super::cache::{CacheClient, CachePolicy};
use super::db::DbClient;

mod pg;
mod redis;

pub use pg::Pg;
pub use redis::Redis;

/// How long one call to the database may take, once connected.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to one host of the database URL may take, its handshake included: a
/// host that accepts but never answers (partitioned behind a proxy) costs this much before
/// the next host is tried, not the whole connection attempt.
pub const HOST_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one call to the cache may take (the sandbox's cache timeout): a cache that does
/// not answer costs a request this much, not the client's whole timeout.
pub const CACHE_TIMEOUT: Duration = Duration::from_millis(200);
/// After a failed connection to the cache, calls fail at once for this long before the next
/// attempt (a partitioned cache is not dialled by every request in turn).
pub const CACHE_RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// The same pause for the database: requests queued behind a connection attempt that failed
/// fail with it, instead of each dialling every host again.
pub const DB_RECONNECT_AFTER: Duration = Duration::from_millis(500);

pub enum DbBackend {
    Sim(DbClient),
    Pg(Box<Pg>),
}

pub enum CacheBackend {
    Sim(CacheClient),
    Redis(Redis, CachePolicy),
}

impl DbBackend {
    /// Store a note; its id once the database acknowledged it.
    pub async fn write(&self, text: &str) -> Result<u64, String> {
        match self {
            DbBackend::Sim(c) => c.write(text).await.map_err(|e| e.to_string()),
            DbBackend::Pg(p) => p.write(text).await,
        }
    }

    pub async fn read(&self, id: u64) -> Result<Option<String>, String> {
        match self {
            DbBackend::Sim(c) => c.read(id).await.map_err(|e| e.to_string()),
            DbBackend::Pg(p) => p.read(id).await,
        }
    }

    pub async fn recent(&self, n: usize) -> Result<Vec<(u64, String)>, String> {
        match self {
            DbBackend::Sim(c) => c.recent(n).await.map_err(|e| e.to_string()),
            DbBackend::Pg(p) => p.recent(n).await,
        }
    }
}

impl CacheBackend {
    pub fn policy(&self) -> CachePolicy {
        match self {
            CacheBackend::Sim(c) => c.policy(),
            CacheBackend::Redis(_, p) => *p,
        }
    }

    pub async fn put_session(&self, id: &str) -> Result<(), String> {
        match self {
            CacheBackend::Sim(c) => c.put_session(id).await.map_err(|e| e.to_string()),
            CacheBackend::Redis(r, _) => r.set(&format!("session:{id}"), "1").await,
        }
    }

    pub async fn has_session(&self, id: &str) -> Result<bool, String> {
        match self {
            CacheBackend::Sim(c) => c.has_session(id).await.map_err(|e| e.to_string()),
            CacheBackend::Redis(r, _) => Ok(r.get(&format!("session:{id}")).await?.is_some()),
        }
    }

    pub async fn get_recent(&self) -> Result<Option<Value>, String> {
        match self {
            CacheBackend::Sim(c) => c.get_recent().await.map_err(|e| e.to_string()),
            CacheBackend::Redis(r, _) => Ok(r
                .get("notes:recent")
                .await?
                .and_then(|s| serde_json::from_str(&s).ok())),
        }
    }

    pub async fn set_recent(&self, v: Value) -> Result<(), String> {
        match self {
            CacheBackend::Sim(c) => c.set_recent(v).await.map_err(|e| e.to_string()),
            CacheBackend::Redis(r, _) => r.set("notes:recent", &v.to_string()).await,
        }
    }

    /// Invalidate the read cache (after a write), best effort.
    pub async fn invalidate_recent(&self) {
        match self {
            CacheBackend::Sim(c) => c.invalidate_recent().await,
            CacheBackend::Redis(r, _) => {
                let _ = r.del("notes:recent").await;
            }
        }
    }
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}

/// One app node on real backends (`chaos app up`): the sandbox's notes app, served on
/// `listen` (loopback), storing notes in PostgreSQL and sessions in Redis.
pub struct AppConfig {
    pub id: String,
    pub zone: String,
    pub port: u16,
    pub database: String,
    pub cache: String,
    pub policy: CachePolicy,
    /// What its responses name in `x-app-version`.
    pub version: String,
}

/// Start the node; the notes table is created first (waiting up to `wait` for the database).
pub async fn start_app(
    cfg: &AppConfig,
    wait: Duration,
) -> Result<std::sync::Arc<super::node::Node>, String> {
    let pg = Pg::new(&cfg.database)?;
    let redis = Redis::new(&cfg.cache)?;
    let t = tokio::time::Instant::now();
    loop {
        match pg.migrate().await {
            Ok(()) => break,
            Err(e) if t.elapsed() >= wait => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let node = super::node::Node::new(
        cfg.id.clone(),
        cfg.zone.clone(),
        &cfg.version,
        super::node::NodeConfig {
            concurrency: 256,
            service_time: Duration::ZERO,
            service_jitter: Duration::ZERO,
        },
        std::sync::Arc::new(super::node::Backends {
            db: DbBackend::Pg(Box::new(pg)),
            cache: CacheBackend::Redis(redis, cfg.policy),
        }),
    );
    node.set_port(cfg.port);
    node.start()
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", cfg.port))?;
    Ok(node)
}
