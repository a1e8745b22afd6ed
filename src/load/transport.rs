//! The load engine's HTTP/1.1 transport: the target parsed once per run, TCP (Nagle off) and
//! TLS connections, hyper's per-connection `http1` handshakes, and the keep-alive pool.
//!
//! Why not a general-purpose client: the engine sends tens of thousands of requests per second
//! to one origin, and a general client's per-request work (URL parsing and conversion, a pool
//! keyed by origin behind a mutex, connector clones, redirect and proxy machinery) cost more CPU
//! than the request itself (see README, "Performance"). Here a run's origin is fixed, so:
//! - [`Target`] is parsed from the base URL once; requests carry origin-form URIs (the path
//!   only) and a pre-built `Host` header;
//! - idle connections wait in a stack, newest on top: an attempt takes the most recently used
//!   one, or dials a new one when none is idle, and gives it back only after reading the whole
//!   response on it (a connection that failed, timed out or was closed by the server is
//!   dropped). Reusing the newest first lets the surplus of a burst (the connections requests
//!   opened while they waited out a failover) sit unused at the bottom and be closed once idle
//!   for [`IDLE_TIMEOUT`], so the open connections follow the load back down; the stack's lock
//!   is held for a push or a pop only (one worker sends up to 60,000 req/s, see `run`);
//! - connections are capped at `max_in_flight`: an attempt holds at most one, attempts are
//!   bounded by the engine's semaphore, and a returned connection is closed instead of pooled
//!   when more than the cap are open.
//!
//! No redirects are followed (a 3xx is a result to measure), no proxy is used, and nothing is
//! retried here except a request that a pooled connection refused *before sending a byte* (the
//! server had closed it while idle): that one goes on a fresh connection, as hyper's own pool
//! does. What happens to an attempt maps onto an [`Outcome`]: refused or failed connection
//! (TCP, TLS or HTTP handshake) = `connect_error`; a connection that fails after the request
//! was handed to it (closed before or during the response) = `reset`. The attempt's timeout is
//! the caller's and covers connecting, sending and reading the whole body.
//!
//! What it trusts (TLS roots) comes from [`super::client::ClientConfig`], the one place that
//! builds the target's client configuration; the read-back of durable writes builds from it too.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::{ClientConfig, ClientError};
use crate::metrics::Outcome;

/// The request body type on the wire.
pub type Body = Full<Bytes>;

/// Idle connections older than this are closed rather than reused (checked whenever a
/// connection is given back, oldest first).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a run's requests go, parsed once from the base URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub https: bool,
    /// Host name or IP address, without IPv6 brackets (for resolving and TLS server names).
    pub host: String,
    pub port: u16,
    /// The `Host` header: the host as written, plus the port unless it is the scheme's default.
    pub host_header: HeaderValue,
    /// The base URL's path without its trailing `/` (often empty); request paths follow it.
    pub base_path: String,
}

/// Why a base URL is not usable (the caller names the URL: [`super::EngineError::BadUrl`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("a base URL takes no query or fragment; put them in request paths")]
    QueryOrFragment,
    #[error("{0}")]
    Invalid(String),
    #[error("only http:// and https:// URLs are supported")]
    Scheme,
    #[error("it has no host")]
    NoHost,
    #[error("user info in the URL is not supported; send credentials in headers")]
    UserInfo,
    #[error("its host is not a valid Host header: {0}")]
    BadHost(String),
}

impl Target {
    /// A usable base URL: http or https, a host, no user info, query or fragment.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        if url.contains('#') || url.contains('?') {
            return Err(UrlError::QueryOrFragment);
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Invalid(e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(UrlError::Scheme),
        };
        let Some(auth) = uri.authority() else {
            return Err(UrlError::NoHost);
        };
        if auth.as_str().contains('@') {
            return Err(UrlError::UserInfo);
        }
        let host = auth.host();
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let default_port = if https { 443 } else { 80 };
        let port = auth.port_u16().unwrap_or(default_port);
        let host_header = if port == default_port {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        let host_header =
            HeaderValue::from_str(&host_header).map_err(|e| UrlError::BadHost(e.to_string()))?;
        Ok(Target {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            host_header,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// The origin-form URI of a rendered path (base path included; empty = `/`). Characters a URI
/// cannot hold (spaces, quotes, braces, non-ASCII…) are percent-encoded, as a URL parser would;
/// `None` when the result is still not a URI.
pub fn path_uri(path: String) -> Option<Uri> {
    if path.is_empty() {
        return Some(Uri::from_static("/"));
    }
    let needs = |b: u8| b <= b' ' || b >= 0x7f || b"\"<>`{}".contains(&b);
    let path = if path.bytes().any(needs) {
        let mut s = String::with_capacity(path.len() + 16);
        for b in path.bytes() {
            if needs(b) {
                s.push_str(&format!("%{b:02X}"));
            } else {
                s.push(char::from(b));
            }
        }
        s
    } else {
        path
    };
    if !path.starts_with('/') {
        return None;
    }
    Uri::from_maybe_shared(Bytes::from(path)).ok()
}

/// An idle keep-alive connection.
struct Idle {
    tx: SendRequest<Body>,
    since: Instant,
}

/// The transport of one run: one origin, one pool.
pub struct Transport {
    target: Target,
    /// The target's address when the host is an IP literal (no resolver call per connection).
    addr: Option<SocketAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Idle connections, the most recently used at the back.
    idle: std::sync::Mutex<std::collections::VecDeque<Idle>>,
    /// Connections whose driver task is alive.
    open: Arc<AtomicUsize>,
    cap: usize,
    /// [`IDLE_TIMEOUT`] (shorter in tests).
    idle_timeout: Duration,
    /// A response header whose value every [`Response`] carries (`responses_by`).
    tag: Option<http::HeaderName>,
}

/// A completed exchange: the status and, when asked for, the headers and (the start of) the
/// body.
pub struct Response {
    pub status: u16,
    /// The response headers, when the body was kept.
    pub headers: Option<http::HeaderMap>,
    /// The body's first bytes, up to the limit asked for (all of it for `usize::MAX`).
    pub body: Option<Vec<u8>>,
    /// The whole body's length as received, kept or not.
    pub body_len: u64,
    /// The value of the transport's tag header ([`Transport::with_tag`]), if it has one.
    pub tag: Option<http::HeaderValue>,
}

impl Transport {
    /// `cap`: the most connections kept open (the run's `max_in_flight`). TLS (for https
    /// targets) is `cfg`'s, the same the read-back trusts.
    pub fn new(target: Target, cfg: &ClientConfig, cap: usize) -> Result<Self, ClientError> {
        let tls = if target.https {
            let name = ServerName::try_from(target.host.clone()).map_err(|e| {
                ClientError::Build(format!("`{}` is not a TLS server name: {e}", target.host))
            })?;
            Some((TlsConnector::from(Arc::new(cfg.tls()?)), name))
        } else {
            None
        };
        let addr = target
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, target.port));
        Ok(Transport {
            target,
            addr,
            tls,
            idle: std::sync::Mutex::new(std::collections::VecDeque::new()),
            open: Arc::new(AtomicUsize::new(0)),
            cap: cap.max(1),
            idle_timeout: IDLE_TIMEOUT,
            tag: None,
        })
    }

    /// Every response carries the value of header `h` ([`Response::tag`]).
    pub fn with_tag(mut self, h: http::HeaderName) -> Self {
        self.tag = Some(h);
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connections open now (idle or in use).
    pub fn open_connections(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Send `req` (origin-form URI, `Host` header set) and read the whole response. `keep`
    /// decides from the status whether to keep the headers and how many bytes of the body
    /// (`None`: nothing, the body is only drained; `usize::MAX`: all of it): deciding after the
    /// status is what lets the engine keep failed responses as samples without copying any
    /// other body. Not bounded in time: the caller wraps it in its timeout.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        keep: impl FnOnce(u16) -> Option<usize>,
    ) -> Result<Response, Outcome> {
        loop {
            let (mut tx, reused) = match self.take().await {
                Some(tx) => (tx, true),
                None => (self.connect().await?, false),
            };
            let resp = match tx.try_send_request(req).await {
                Ok(r) => r,
                Err(mut e) => match e.take_message() {
                    // A pooled connection closed while idle: nothing was sent, use another.
                    Some(r) if reused => {
                        req = r;
                        continue;
                    }
                    _ => return Err(Outcome::Reset),
                },
            };
            let status = resp.status().as_u16();
            let limit = keep(status);
            let (parts, mut body) = resp.into_parts();
            let tag = self
                .tag
                .as_ref()
                .and_then(|h| parts.headers.get(h))
                .cloned();
            let headers = limit.map(|_| parts.headers);
            let mut kept = limit.map(|_| Vec::new());
            let mut body_len = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| Outcome::Reset)?;
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                    if let (Some(k), Some(limit)) = (&mut kept, limit) {
                        let room = limit.saturating_sub(k.len());
                        k.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
            self.put(tx);
            return Ok(Response {
                status,
                headers,
                body: kept,
                body_len,
                tag,
            });
        }
    }

    /// An idle connection ready for a request, if any.
    async fn take(&self) -> Option<SendRequest<Body>> {
        loop {
            let idle = self.idle_stack().pop_back()?;
            if idle.since.elapsed() > self.idle_timeout {
                continue;
            }
            let mut tx = idle.tx;
            // Immediate for a connection idle in the pool; a closed one answers an error.
            if tx.ready().await.is_ok() {
                return Some(tx);
            }
        }
    }

    fn idle_stack(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Give a connection back after a complete exchange, unless it is closed or over the cap.
    fn put(&self, tx: SendRequest<Body>) {
        if tx.is_closed() || self.open.load(Relaxed) > self.cap {
            return;
        }
        let now = Instant::now();
        let mut stale = Vec::new();
        {
            let mut idle = self.idle_stack();
            // The oldest idle connections (the bottom of the stack): closed once past the idle
            // timeout, outside the lock.
            while idle
                .front()
                .is_some_and(|i| now.duration_since(i.since) > self.idle_timeout)
            {
                stale.extend(idle.pop_front());
            }
            if idle.len() >= self.cap {
                return;
            }
            idle.push_back(Idle { tx, since: now });
        }
        drop(stale);
    }

    /// A new connection: TCP (Nagle off), TLS for https, then the HTTP/1 handshake; its driver
    /// runs as its own task until the connection closes.
    async fn connect(&self) -> Result<SendRequest<Body>, Outcome> {
        let tcp = self.dial().await.ok_or(Outcome::ConnectError)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.handshake(tcp).await,
            Some((tls, name)) => {
                let s = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|_| Outcome::ConnectError)?;
                self.handshake(s).await
            }
        }
    }

    /// TCP to the first of the target's addresses that accepts.
    async fn dial(&self) -> Option<TcpStream> {
        if let Some(a) = self.addr {
            return TcpStream::connect(a).await.ok();
        }
        let addrs = tokio::net::lookup_host((self.target.host.as_str(), self.target.port))
            .await
            .ok()?;
        for a in addrs {
            if let Ok(s) = TcpStream::connect(a).await {
                return Some(s);
            }
        }
        None
    }

    async fn handshake<S>(&self, io: S) -> Result<SendRequest<Body>, Outcome>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|_| Outcome::ConnectError)?;
        let open = self.open.clone();
        open.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let _ = conn.await;
            open.fetch_sub(1, Relaxed);
        });
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_once_with_host_header_and_base_path() {
        let t = Target::parse("http://127.0.0.1:8080/api/").unwrap();
        assert!(!t.https);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.base_path, "/api");
        let t = Target::parse("https://example.com").unwrap();
        assert!(t.https);
        assert_eq!((t.port, t.base_path.as_str()), (443, ""));
        assert_eq!(t.host_header, "example.com");
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(t.host_header, "[::1]:9000");
        for (bad, why) in [
            ("ftp://127.0.0.1:1", UrlError::Scheme),
            ("127.0.0.1:8080", UrlError::Scheme),
            ("http://h/?q=1", UrlError::QueryOrFragment),
            ("http://h/#f", UrlError::QueryOrFragment),
            ("http://u:p@h/", UrlError::UserInfo),
        ] {
            assert_eq!(Target::parse(bad).err(), Some(why), "{bad}");
        }
        for bad in ["not a url", ""] {
            assert!(
                matches!(Target::parse(bad), Err(UrlError::Invalid(_))),
                "{bad}"
            );
        }
    }

    /// A burst opens many connections; once the load is back down, the newest is reused and the
    /// surplus, idle past the timeout, is closed: the open connections follow the load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_surplus_of_a_burst_is_closed_once_idle_and_the_newest_is_reused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = accepted.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                seen.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    // One request per read (small GETs), each answered after 100 ms.
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(r).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let target = Target::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let mut t =
            Transport::new(target, &ClientConfig::plain(Duration::from_secs(5)), 100).unwrap();
        t.idle_timeout = Duration::from_millis(300);
        let t = Arc::new(t);
        let get = |t: Arc<Transport>| async move {
            let req = Request::get(path_uri("/".into()).unwrap())
                .header(http::header::HOST, t.target().host_header.clone())
                .body(Body::default())
                .unwrap();
            t.send(req, |_| None).await.map(|r| r.status)
        };
        // The burst: 10 at once, 10 connections.
        let burst: Vec<_> = (0..10).map(|_| tokio::spawn(get(t.clone()))).collect();
        for b in burst {
            assert_eq!(b.await.unwrap().ok(), Some(200));
        }
        assert_eq!(accepted.load(Relaxed), 10);
        // Back to one at a time, past the timeout: the newest connection serves them, the nine
        // others age at the bottom and are closed.
        for _ in 0..6 {
            assert_eq!(get(t.clone()).await.ok(), Some(200));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Relaxed), 10, "no new connection was needed");
        let t0 = std::time::Instant::now();
        while t.open_connections() > 1 && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(t.open_connections(), 1, "the surplus was closed");
        server.abort();
    }

    #[test]
    fn paths_become_origin_form_uris_encoding_what_a_uri_cannot_hold() {
        let u = path_uri("/notes?page=3".into()).unwrap();
        assert_eq!(u.path(), "/notes");
        assert_eq!(u.query(), Some("page=3"));
        assert_eq!(u.scheme(), None);
        let u = path_uri("/a b/{x}/é".into()).unwrap();
        assert_eq!(u.path(), "/a%20b/%7Bx%7D/%C3%A9");
        assert!(path_uri("no-slash".into()).is_none());
        assert_eq!(path_uri(String::new()).unwrap(), "/");
    }
}
