//! The database client an app node holds: writes to the cluster endpoint (the current
//! writer's address, looked up at each call), reads from the writer or a reachable reader, each
//! call over TCP ([`crate::sandbox::wire`]) with a timeout.
//!
//! It only dials addresses the cluster publishes; it must never read or change the cluster's
//! state directly, so an app node sees the database exactly as a network client would.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Db, DbError};
use crate::sandbox::wire;

/// How long an app node waits on one database call (connect included).
pub(super) const DB_TIMEOUT: Duration = Duration::from_secs(5);

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
