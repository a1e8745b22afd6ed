//! The notes app's Redis backend: one address, or the primary the Sentinels name; one
//! multiplexed connection per node, every call bounded by the cache's timeout, with a pause
//! after a failed connection. Never retries a call.

use tokio::sync::Mutex;

use super::{bounded, CACHE_RECONNECT_AFTER, CACHE_TIMEOUT};

/// Where the Redis primary is: one address, or the one Sentinel names.
enum RedisAt {
    Direct(String),
    Sentinel {
        sentinels: Vec<String>,
        name: String,
    },
}

/// Redis, by `redis://HOST:PORT` or `redis-sentinel://HOST:PORT[,HOST:PORT…]/MASTER-NAME`.
pub struct Redis {
    at: RedisAt,
    conn: Mutex<RedisConn>,
}

/// The node's one multiplexed connection (cloned into each call, which run concurrently on
/// it), or when the last attempt to connect failed.
#[derive(Default)]
struct RedisConn {
    open: Option<redis::aio::MultiplexedConnection>,
    failed_at: Option<std::time::Instant>,
}

impl Redis {
    pub fn new(url: &str) -> Result<Redis, String> {
        let bad = |why: &str| {
            format!(
                "cache URL `{url}`: {why} (redis://HOST:PORT, or \
                 redis-sentinel://HOST:PORT,HOST:PORT/MASTER-NAME)"
            )
        };
        let at = if let Some(rest) = url.strip_prefix("redis-sentinel://") {
            let (hosts, name) = rest.split_once('/').ok_or_else(|| bad("no master name"))?;
            if name.is_empty() || hosts.is_empty() {
                return Err(bad("no sentinels or no master name"));
            }
            RedisAt::Sentinel {
                sentinels: hosts.split(',').map(|h| format!("redis://{h}")).collect(),
                name: name.to_string(),
            }
        } else if url.starts_with("redis://") {
            RedisAt::Direct(url.to_string())
        } else {
            return Err(bad("unknown scheme"));
        };
        Ok(Redis {
            at,
            conn: Mutex::new(RedisConn::default()),
        })
    }

    async fn connect(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let client = match &self.at {
            RedisAt::Direct(u) => redis::Client::open(u.as_str()).map_err(|e| e.to_string())?,
            RedisAt::Sentinel { sentinels, name } => {
                let mut s = redis::sentinel::Sentinel::build(sentinels.clone())
                    .map_err(|e| e.to_string())?;
                bounded(
                    "asking Sentinel for the primary",
                    CACHE_TIMEOUT,
                    s.async_master_for(name, None),
                )
                .await?
            }
        };
        bounded(
            "connecting to the cache",
            CACHE_TIMEOUT,
            client.get_multiplexed_tokio_connection(),
        )
        .await
    }

    async fn cmd<T: redis::FromRedisValue>(&self, c: redis::Cmd) -> Result<T, String> {
        let mut conn = {
            let mut slot = self.conn.lock().await;
            match &slot.open {
                Some(c) => c.clone(),
                None => {
                    if slot
                        .failed_at
                        .is_some_and(|t| t.elapsed() < CACHE_RECONNECT_AFTER)
                    {
                        return Err("the cache: not connected (reconnecting)".into());
                    }
                    match self.connect().await {
                        Ok(c) => {
                            slot.open = Some(c.clone());
                            slot.failed_at = None;
                            c
                        }
                        Err(e) => {
                            slot.failed_at = Some(std::time::Instant::now());
                            return Err(e);
                        }
                    }
                }
            }
        };
        let r = bounded("the cache", CACHE_TIMEOUT, c.query_async::<T>(&mut conn)).await;
        if r.is_err() {
            // The connection is dropped (a multiplexed one has no identity to compare: a
            // newer one another call made is dropped too, and made again).
            let mut slot = self.conn.lock().await;
            slot.open = None;
            slot.failed_at = Some(std::time::Instant::now());
        }
        r
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.cmd(redis::cmd("GET").arg(key).clone()).await
    }

    pub async fn set(&self, key: &str, v: &str) -> Result<(), String> {
        self.cmd(redis::cmd("SET").arg(key).arg(v).clone()).await
    }

    pub async fn del(&self, key: &str) -> Result<(), String> {
        self.cmd::<i64>(redis::cmd("DEL").arg(key).clone())
            .await
            .map(drop)
    }
}
