//! An app node: a real HTTP server on its own loopback port serving the notes API, with a
//! bounded capacity (at most `concurrency` requests served at once, each taking a service time
//! drawn around `service_time`), so more load than the nodes can take really queues.
//!
//! API (like the Notejam seed application's): `POST /login` (session in the cache, cookie set),
//! `POST /notes` (201 with the id only after the database acknowledged the write),
//! `GET /notes/{id}`, `GET /notes` (recent notes, cache-aside), `GET /health` (outside the
//! capacity limit, like a typical health endpoint). A request with a `session` cookie is
//! checked against the cache: unknown (lost in a cache failover) → 401.
//!
//! A node is down while anything holds it down (each fault that killed or stopped it, by name,
//! so overlapping faults never undo each other) or its zone is down; either way its port is
//! closed and its open connections are dropped ([`super::http::serve`]). Coming back rebinds
//! the same port.
//!
//! Every response names its node (`x-served-by`) and the version it runs (`x-app-version`:
//! blue nodes run `v1`, green nodes `v2`). A green node is created held down as
//! [`NOT_DEPLOYED`] and serves once a cutover deploys it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng as _;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::backend::{CacheBackend, DbBackend};
use super::cache::CachePolicy;
use super::events::lock;
use super::http::{self, Body};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub concurrency: usize,
    pub service_time: Duration,
    /// Uniform extra service time in 0..jitter.
    pub service_jitter: Duration,
}

/// What a node's handlers share with the rest of the stack: the sandbox's own database and
/// cache, or real ones ([`super::backend`]).
pub struct Backends {
    pub db: DbBackend,
    pub cache: CacheBackend,
}

/// The hold a green node is created with: it serves nothing until a cutover deploys it.
pub const NOT_DEPLOYED: &str = "not deployed";

#[derive(Default)]
struct Down {
    /// Who holds the node down (fault names; "control" for a bare API call).
    holds: BTreeSet<String>,
    zone: bool,
}

impl Down {
    fn is_down(&self) -> bool {
        !self.holds.is_empty() || self.zone
    }
}

pub struct Node {
    pub id: String,
    pub zone: String,
    port: Mutex<u16>,
    task: Mutex<Option<JoinHandle<()>>>,
    down: Mutex<Down>,
    app: Arc<App>,
}

struct App {
    id: String,
    version: hyper::header::HeaderValue,
    cfg: NodeConfig,
    sem: Semaphore,
    seq: AtomicU64,
    backends: Arc<Backends>,
}

impl Node {
    /// A node running `version` (named in every response's `x-app-version`).
    pub fn new(
        id: String,
        zone: String,
        version: &str,
        cfg: NodeConfig,
        backends: Arc<Backends>,
    ) -> Arc<Node> {
        Arc::new(Node {
            app: Arc::new(App {
                id: id.clone(),
                version: hyper::header::HeaderValue::from_str(version)
                    .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("unknown")),
                sem: Semaphore::new(cfg.concurrency.max(1)),
                cfg,
                seq: AtomicU64::new(0),
                backends,
            }),
            id,
            zone,
            port: Mutex::new(0),
            task: Mutex::new(None),
            down: Mutex::new(Down::default()),
        })
    }

    /// Serve on this loopback port from the next start (0: any free port).
    pub fn set_port(&self, port: u16) {
        *lock(&self.port) = port;
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], *lock(&self.port)))
    }

    pub fn is_running(&self) -> bool {
        lock(&self.task).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// `holder` holds the node down (or lets it go). Returns whether the node's state changed:
    /// it comes back only when no one holds it and its zone is up.
    pub async fn set_held(&self, holder: &str, held: bool) -> std::io::Result<bool> {
        let changed = {
            let mut d = lock(&self.down);
            let was = d.is_down();
            if held {
                d.holds.insert(holder.to_string());
            } else {
                d.holds.remove(holder);
            }
            was != d.is_down()
        };
        self.apply().await?;
        Ok(changed)
    }

    /// Whether it has been deployed (a green node before its first cutover has not).
    pub fn is_deployed(&self) -> bool {
        !lock(&self.down).holds.contains(NOT_DEPLOYED)
    }

    /// Who holds it down now.
    pub fn holders(&self) -> Vec<String> {
        lock(&self.down).holds.iter().cloned().collect()
    }

    /// Its zone went down (or came back).
    pub async fn set_zone_down(&self, down: bool) -> std::io::Result<bool> {
        let changed = {
            let mut d = lock(&self.down);
            let was = d.is_down();
            d.zone = down;
            was != d.is_down()
        };
        self.apply().await?;
        Ok(changed)
    }

    /// Make the server's state match `down`: stop it, or (re)start it on its port.
    async fn apply(&self) -> std::io::Result<()> {
        let want_up = !lock(&self.down).is_down();
        if !want_up {
            let t = lock(&self.task).take();
            if let Some(t) = t {
                // Wait for the teardown: the port is closed when this returns.
                t.abort();
                let _ = t.await;
            }
            return Ok(());
        }
        if self.is_running() {
            return Ok(());
        }
        let port = *lock(&self.port);
        let listener = http::bind(port).await?;
        *lock(&self.port) = listener.local_addr()?.port();
        let app = self.app.clone();
        let task = tokio::spawn(http::serve(listener, move |req| {
            let app = app.clone();
            async move { handle(app, req).await }
        }));
        *lock(&self.task) = Some(task);
        Ok(())
    }

    /// Stop the server for good (the sandbox is shutting down).
    pub fn stop_now(&self) {
        lock(&self.down).holds.insert("shutdown".into());
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }

    pub async fn start(&self) -> std::io::Result<()> {
        self.apply().await
    }
}

/// The `session` cookie's value, if the request has one.
fn session_cookie(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("session="))
        .map(str::to_string)
        .next()
}

/// Every response names the node that served it (`x-served-by`), as many stacks do: tests and
/// operators can see the balancing; and the version it runs (`x-app-version`).
async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let mut r = route(&app, req).await;
    if let Ok(v) = app.id.parse() {
        r.headers_mut().insert("x-served-by", v);
    }
    r.headers_mut().insert("x-app-version", app.version.clone());
    r
}

async fn route(app: &App, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/health" {
        return http::full(StatusCode::OK, "text/plain", "ok");
    }
    // Capacity: wait for one of `concurrency` slots (the wait is queueing the client sees),
    // then take the service time — the node's own work. Waits on the database and the cache
    // come after and do not hold a slot (an async app server), so a slow dependency adds
    // latency without collapsing the node's throughput.
    {
        let Ok(_slot) = app.sem.acquire().await else {
            return http::error(StatusCode::SERVICE_UNAVAILABLE, "node shutting down");
        };
        let extra = if app.cfg.service_jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..app.cfg.service_jitter)
        };
        tokio::time::sleep(app.cfg.service_time + extra).await;
    }
    let b = &app.backends;
    let policy = b.cache.policy();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // A request carrying a session cookie is checked against the cache (anonymous requests are
    // served as they are): a session the cache does not know — lost in a cache failover — is
    // logged out (401); a cache it cannot reach lets it through (fail-open) or fails it
    // (fail-closed).
    if segs.as_slice() != ["login"] {
        if let Some(sid) = session_cookie(&req) {
            match (b.cache.has_session(&sid).await, policy) {
                (Ok(true), _) | (Err(_), CachePolicy::FailOpen) => {}
                (Ok(false), _) => {
                    return http::error(StatusCode::UNAUTHORIZED, "unknown session: log in again")
                }
                (Err(e), CachePolicy::FailClosed) => {
                    return http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
                }
            }
        }
    }
    match (method, segs.as_slice()) {
        (Method::POST, ["login"]) => {
            let sid = format!("{}-{}", app.id, app.seq.fetch_add(1, Ordering::Relaxed));
            match (b.cache.put_session(&sid).await, policy) {
                (Err(e), CachePolicy::FailClosed) => {
                    http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
                }
                _ => {
                    let mut r = http::json(StatusCode::OK, &json!({ "session": sid }));
                    if let Ok(v) = format!("session={sid}; Path=/; HttpOnly").parse() {
                        r.headers_mut().insert(hyper::header::SET_COOKIE, v);
                    }
                    r
                }
            }
        }
        (Method::POST, ["notes"]) => {
            let Ok(body) = http::read_body(req, 64 * 1024).await else {
                return http::error(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
            };
            // `{"text": "..."}` stores the text; any other body is stored as sent (1 KiB max).
            let text = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let text: String = text.chars().take(1024).collect();
            match b.db.write(&text).await {
                Ok(id) => {
                    b.cache.invalidate_recent().await;
                    http::json(StatusCode::CREATED, &json!({ "id": id }))
                }
                Err(e) => http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        }
        (Method::GET, ["notes"]) => match b.cache.get_recent().await {
            Ok(Some(v)) => http::json(StatusCode::OK, &v),
            Err(e) if policy == CachePolicy::FailClosed => {
                http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
            }
            cached => match b.db.recent(20).await {
                Ok(notes) => {
                    let v = json!(notes
                        .iter()
                        .map(|(id, t)| json!({ "id": id, "text": t }))
                        .collect::<Vec<_>>());
                    if cached.is_ok() {
                        let _ = b.cache.set_recent(v.clone()).await;
                    }
                    http::json(StatusCode::OK, &v)
                }
                Err(e) => http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
        },
        (Method::GET, ["notes", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return http::error(StatusCode::NOT_FOUND, "no such note");
            };
            match b.db.read(id).await {
                Ok(Some(text)) => http::json(StatusCode::OK, &json!({ "id": id, "text": text })),
                Ok(None) => http::error(StatusCode::NOT_FOUND, "no such note"),
                Err(e) => http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        }
        _ => http::error(StatusCode::NOT_FOUND, "no such route"),
    }
}
