//! HTTP plumbing shared by the sandbox's servers (load balancer, app nodes, control API) and the
//! fault proxy's control API: one accept loop whose connections die with it, and response
//! helpers.
//!
//! Aborting the task that runs [`serve`] drops its listener (the port closes: new connections
//! are refused) and its `JoinSet` of connections (open connections are closed under their
//! requests) — which is exactly what killing a node must do.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Bind 127.0.0.1:`port` (0 = any) with SO_REUSEADDR, retrying for a moment while a previous
/// listener on the same port is still being torn down (a node restarting on its old port).
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    bind_addr(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// [`bind`] on any address (IPv4 or IPv6).
pub async fn bind_addr(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        let s = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        match s.bind(addr).and_then(|()| s.listen(1024)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

/// Serve HTTP/1.1 keep-alive connections with `handler` until this future is dropped.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    accept_loop(listener, move |stream| {
        let h = handler.clone();
        async move {
            let svc = service_fn(move |req| {
                let h = h.clone();
                async move { Ok::<_, Infallible>(h(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    })
    .await
}

/// Accept connections and run `conn` on each (as its own task) until this future is dropped,
/// which drops the listener (the port closes) and every connection task with it.
pub async fn accept_loop<F, Fut>(listener: TcpListener, conn: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(conn(stream));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// The value of `k` in a query string (`a=1&b=2`), as written (not percent-decoded).
pub fn query_param(query: &str, k: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(key, _)| *key == k)
        .map(|(_, v)| v.to_string())
}

/// Whether `by` can name a holder of a fault: 1 to 128 letters, digits and `- _ . :`.
pub fn is_holder(by: &str) -> bool {
    !by.is_empty()
        && by.len() <= 128
        && by
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

pub fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// A request body, at most `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ()> {
    http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ())
}

/// Await every future (they are few: one per node or per reader), concurrently.
pub async fn join_all<F: Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = fs.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
