//! The wire between app nodes and their backing services (database instances, cache): each
//! service instance is a TCP server on its own 127.0.0.1 port, speaking one JSON object per
//! line each way — request `{"op": ...}`, reply `{"ok": value}` or `{"err": "message"}`.
//!
//! It is not PostgreSQL's or Redis's protocol: nothing outside the sandbox talks to these
//! servers (the harness observes the stack only through the load balancer). What matters is
//! that every failure an app node sees is a network effect, as it would be in AWS:
//! - an instance that is down ([`Endpoint::set_up`] false) has its port closed and its open
//!   connections dropped: connects are refused, requests in flight fail;
//! - a partitioned service receives requests and never answers ([`Reply::Drop`]): the caller
//!   waits its own timeout;
//! - a caller resolves the address to dial at call time (a cluster endpoint whose DNS follows a
//!   failover), and keeps idle connections per address in a small pool ([`Client`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::events::lock;
use super::http;

/// Longest request or reply line accepted (a note is at most 1 KiB; `recent` 20 of them).
const MAX_LINE: usize = 256 * 1024;
/// Idle connections a client keeps per process (all addresses together).
const MAX_IDLE: usize = 64;

/// What a server does with one request.
pub enum Reply {
    Ok(Value),
    Err(String),
    /// Read the request and never answer (a partition): the connection is kept, unanswered,
    /// until the caller gives up and closes it.
    Drop,
}

pub type Handler = Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// One service instance's server: a fixed loopback port that can be taken down (closed, its
/// connections dropped) and brought back up on the same port.
pub struct Endpoint {
    port: Mutex<u16>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Servers taken down whose teardown (listener and connections dropped) may not have
    /// finished yet: [`Endpoint::settled`] waits for it.
    closing: Mutex<Vec<JoinHandle<()>>>,
    /// Taken-down servers whose teardown no one has seen finish yet (in `closing`, or being
    /// awaited by a concurrent [`Endpoint::settled`]).
    closing_n: std::sync::atomic::AtomicUsize,
    handler: Handler,
}

impl Endpoint {
    /// Bind a new port (chosen by the OS) and start serving.
    pub async fn start(handler: Handler) -> std::io::Result<Arc<Endpoint>> {
        let listener = http::bind(0).await?;
        let port = listener.local_addr()?.port();
        let ep = Arc::new(Endpoint {
            port: Mutex::new(port),
            task: Mutex::new(None),
            closing: Mutex::new(Vec::new()),
            closing_n: Default::default(),
            handler,
        });
        let h = ep.handler.clone();
        *lock(&ep.task) = Some(tokio::spawn(serve(listener, h)));
        Ok(ep)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], *lock(&self.port)))
    }

    pub fn is_up(&self) -> bool {
        lock(&self.task).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Down: the port is closed at once and every open connection dropped. Up: the server is
    /// started again on the same port (binding is retried for a moment in the background while
    /// the old socket is torn down).
    pub fn set_up(&self, up: bool) {
        let mut task = lock(&self.task);
        if !up {
            if let Some(t) = task.take() {
                t.abort();
                self.closing_n.fetch_add(1, Ordering::SeqCst);
                lock(&self.closing).push(t);
            }
            return;
        }
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let port = *lock(&self.port);
        let h = self.handler.clone();
        // Rebinding is retried until it works (or the instance is taken down again): an
        // instance marked up must end up serving.
        *task = Some(tokio::spawn(async move {
            loop {
                if let Ok(l) = http::bind(port).await {
                    serve(l, h).await;
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }));
    }
}

impl Endpoint {
    /// Wait until every server taken down has really closed its port: aborting a task only
    /// asks for it to be dropped, on whichever worker runs it next. A control call that takes
    /// an instance down answers after this, so its caller finds the port closed.
    ///
    /// Two concurrent callers both wait: one awaits the task, the other until it is seen done.
    pub async fn settled(&self) {
        /// Counts a teardown as seen when dropped (awaited, or the wait abandoned).
        struct Seen<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Seen<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        loop {
            let next = lock(&self.closing).pop();
            match next {
                Some(t) => {
                    let _seen = Seen(&self.closing_n);
                    let _ = t.await;
                }
                None if self.closing_n.load(Ordering::SeqCst) == 0 => return,
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}

/// Serve each connection's requests in order until this future is dropped (which drops the
/// listener and every connection with it).
async fn serve(listener: TcpListener, handler: Handler) {
    http::accept_loop(listener, move |stream| connection(stream, handler.clone())).await
}

async fn connection(stream: TcpStream, handler: Handler) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut r).take(MAX_LINE as u64).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') => return, // over MAX_LINE, or cut short
            Ok(_) => {}
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => handler(req).await,
            Err(e) => Reply::Err(format!("bad request: {e}")),
        };
        let out = match reply {
            Reply::Ok(v) => json!({ "ok": v }),
            Reply::Err(e) => json!({ "err": e }),
            Reply::Drop => {
                // Swallow everything until the caller hangs up.
                let mut sink = [0u8; 4096];
                while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        };
        let mut bytes = out.to_string().into_bytes();
        bytes.push(b'\n');
        if w.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Could not connect (port closed: the instance is down).
    #[error("connection refused")]
    Refused,
    /// The connection broke under the request (the instance went down mid-request).
    #[error("connection lost")]
    Lost,
    #[error("timed out")]
    Timeout,
    /// The server answered with an error.
    #[error("{0}")]
    Remote(String),
}

type Conn = (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
);

/// The delay the network adds to a request on its way (sampled per request): the `latency`
/// fault on a link.
pub type Delay = Arc<dyn Fn() -> Duration + Send + Sync>;

/// A caller's side: one request at a time per connection, idle connections pooled by address.
#[derive(Default)]
pub struct Client {
    idle: Mutex<Vec<(SocketAddr, Conn)>>,
    delay: Option<Delay>,
}

impl Client {
    /// A client whose requests cross a link that delays them by `delay()` on the way — inside
    /// the call's timeout, as a slow network is: a delay past the timeout is a timeout.
    pub fn delayed(delay: Delay) -> Client {
        Client {
            idle: Mutex::default(),
            delay: Some(delay),
        }
    }

    /// Send `req` to `addr` and wait at most `timeout` (connect included) for the reply.
    ///
    /// A request is never sent twice: a connection lost under it gives [`WireError::Lost`]
    /// (the server may or may not have executed it — as with any database client).
    pub async fn call(
        &self,
        addr: SocketAddr,
        req: &Value,
        timeout: Duration,
    ) -> Result<Value, WireError> {
        let mut line = req.to_string().into_bytes();
        line.push(b'\n');
        let delay = self.delay.as_ref().map_or(Duration::ZERO, |d| d());
        let on_the_way = async {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.exchange(addr, &line).await
        };
        match tokio::time::timeout(timeout, on_the_way).await {
            Ok(r) => r,
            Err(_) => Err(WireError::Timeout),
        }
    }

    async fn exchange(&self, addr: SocketAddr, line: &[u8]) -> Result<Value, WireError> {
        let pooled = {
            let mut idle = lock(&self.idle);
            idle.iter()
                .rposition(|(a, _)| *a == addr)
                .map(|i| idle.swap_remove(i).1)
        };
        // A pooled connection the server closed while it was idle (the instance went down,
        // maybe came back) shows EOF or an error at once: drop it and dial afresh. One still
        // open is used; if it breaks under the request, that is a lost request, never resent.
        if let Some(mut c) = pooled.filter(|c| {
            let mut probe = [0u8; 1];
            matches!(c.0.get_ref().try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }) {
            return match Self::round_trip(&mut c, line).await? {
                Some(v) => self.finish(addr, c, v),
                None => Err(WireError::Lost),
            };
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|_| WireError::Refused)?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut c = (BufReader::new(r), w);
        match Self::round_trip(&mut c, line).await? {
            Some(v) => self.finish(addr, c, v),
            None => Err(WireError::Lost),
        }
    }

    /// `Ok(None)`: the connection was closed before any byte of a reply came back.
    async fn round_trip(c: &mut Conn, line: &[u8]) -> Result<Option<Value>, WireError> {
        if c.1.write_all(line).await.is_err() {
            return Ok(None);
        }
        let mut buf = String::new();
        match (&mut c.0).take(MAX_LINE as u64).read_line(&mut buf).await {
            Ok(0) => Ok(None),
            Ok(_) if buf.ends_with('\n') => serde_json::from_str(&buf)
                .map(Some)
                .map_err(|e| WireError::Remote(format!("bad reply: {e}"))),
            Ok(_) | Err(_) => Err(WireError::Lost),
        }
    }

    fn finish(&self, addr: SocketAddr, c: Conn, reply: Value) -> Result<Value, WireError> {
        {
            let mut idle = lock(&self.idle);
            if idle.len() < MAX_IDLE {
                idle.push((addr, c));
            }
        }
        match reply {
            Value::Object(mut m) => {
                if let Some(v) = m.remove("ok") {
                    Ok(v)
                } else {
                    Err(WireError::Remote(
                        m.remove("err")
                            .and_then(|e| e.as_str().map(str::to_string))
                            .unwrap_or_else(|| "malformed reply".into()),
                    ))
                }
            }
            _ => Err(WireError::Remote("malformed reply".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(drop: Arc<std::sync::atomic::AtomicBool>) -> Handler {
        Arc::new(move |req: Value| {
            let drop = drop.clone();
            Box::pin(async move {
                if drop.load(std::sync::atomic::Ordering::SeqCst) {
                    Reply::Drop
                } else if req["op"] == "fail" {
                    Reply::Err("asked to fail".into())
                } else {
                    Reply::Ok(req)
                }
            })
        })
    }

    /// Two callers waiting for the same teardown both return only once the port is closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_settles_both_wait_for_the_port_to_close() {
        for _ in 0..20 {
            let ep = Endpoint::start(echo(Default::default())).await.unwrap();
            let addr = ep.addr();
            ep.set_up(false);
            let check = || async {
                ep.settled().await;
                TcpStream::connect(addr).await.is_err()
            };
            let (a, b) = tokio::join!(check(), check());
            assert!(a && b, "a settled call answered before the port closed");
        }
    }

    #[tokio::test]
    async fn up_down_partition_over_real_sockets() {
        let drop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ep = Endpoint::start(echo(drop.clone())).await.unwrap();
        let c = Client::default();
        let t = Duration::from_millis(300);
        let req = json!({ "op": "echo", "n": 1 });
        assert_eq!(c.call(ep.addr(), &req, t).await, Ok(req.clone()));
        assert_eq!(
            c.call(ep.addr(), &json!({ "op": "fail" }), t).await,
            Err(WireError::Remote("asked to fail".into()))
        );
        // Down: the pooled connection is dead and the port refuses.
        ep.set_up(false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.call(ep.addr(), &req, t).await, Err(WireError::Refused));
        assert!(TcpStream::connect(ep.addr()).await.is_err());
        // Up again on the same port.
        let port = ep.addr().port();
        ep.set_up(true);
        let mut ok = false;
        for _ in 0..50 {
            if c.call(ep.addr(), &req, t).await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok);
        assert_eq!(ep.addr().port(), port);
        // Partitioned: the request is taken and never answered; the caller times out.
        drop.store(true, std::sync::atomic::Ordering::SeqCst);
        let t0 = std::time::Instant::now();
        assert_eq!(c.call(ep.addr(), &req, t).await, Err(WireError::Timeout));
        assert!(t0.elapsed() >= t);
        drop.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(c.call(ep.addr(), &req, t).await, Ok(req));
    }
}
