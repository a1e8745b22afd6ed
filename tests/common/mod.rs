//! Real HTTP/1.1 test servers on 127.0.0.1:0 (hyper), and builders for load models.
#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chaos::scenario::*;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub mod cli;
pub mod moto;
pub mod params;
pub mod sandbox;
pub mod schema;
pub mod stack;

/// What the server does with each request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 after a fixed delay.
    Delay(Duration),
    /// 503 for the first `n` requests, then 200.
    FailFirst(u64),
    /// For paths `/i/<seq>` with seq < k: 503 the first time that path is seen, then 200.
    FailOnceBelow(u64),
    /// Always 503.
    AlwaysFail,
    /// 200 at once, except that between `from` and `from + len` after the first request every
    /// response is held until the freeze ends.
    Freeze { from: Duration, len: Duration },
    /// A notes API: POST /notes -> 201 {"id": n}; GET /notes/{id} -> 200 if known else 404.
    Notes,
}

#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    pub count: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// Arrival times relative to the first request, and method + path.
    pub arrivals: Mutex<Vec<(Duration, String)>>,
    pub first: Mutex<Option<Instant>>,
    /// `Behavior::Notes`: each note's text (`$.text` of its JSON body), by id from 1.
    pub notes: Mutex<Vec<String>>,
    /// The headers of the last request, names lowercase, in the order received.
    pub last_headers: Mutex<Vec<(String, String)>>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub async fn serve(b: Behavior) -> TestServer {
    serve_with(b, None).await
}

/// [`serve`] over TLS with the given server configuration (see [`TestCa`]).
pub async fn serve_tls(b: Behavior, tls: Arc<rustls::ServerConfig>) -> TestServer {
    serve_with(b, Some(tokio_rustls::TlsAcceptor::from(tls))).await
}

async fn serve_with(b: Behavior, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            s2.connections.fetch_add(1, Ordering::SeqCst);
            let seen = s2.clone();
            let b = b.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, b.clone(), seen.clone()));
                let conn = http1::Builder::new();
                match tls {
                    None => {
                        let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            let _ = conn.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                }
            });
        }
    });
    TestServer { addr, seen }
}

/// A misbehaving raw TCP server: for every connection, read the request, write `reply` (a
/// status line and headers promising more body than follows, say, or nothing), then close.
/// Returns the port and the number of connections accepted.
pub async fn serve_raw(reply: &'static [u8]) -> (u16, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let a2 = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            a2.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(reply).await;
                let _ = s.flush().await;
                // Dropping the stream closes the connection.
            });
        }
    });
    (port, accepted)
}

/// A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost.
pub struct TestCa {
    /// The CA certificate, PEM (what a scenario's `ca_cert` points at).
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "chaos test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca, &ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
            .unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    b: Behavior,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let now = Instant::now();
    let start = *seen.first.lock().unwrap().get_or_insert(now);
    let n = seen.count.fetch_add(1, Ordering::SeqCst);
    let fl = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(fl, Ordering::SeqCst);
    let what = format!("{} {}", req.method(), req.uri().path());
    seen.arrivals
        .lock()
        .unwrap()
        .push((now.duration_since(start), what.clone()));
    *seen.last_headers.lock().unwrap() = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let resp = |code: u16, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let r = match b {
        Behavior::Delay(d) => {
            tokio::time::sleep(d).await;
            resp(200, "{}".into())
        }
        Behavior::FailFirst(k) => {
            if n < k {
                resp(503, "{}".into())
            } else {
                resp(200, "{}".into())
            }
        }
        Behavior::FailOnceBelow(k) => {
            let seq = path.strip_prefix("/i/").and_then(|x| x.parse::<u64>().ok());
            let first_time = {
                let arr = seen.arrivals.lock().unwrap();
                arr.iter().filter(|(_, w)| *w == what).count() == 1
            };
            if seq.is_some_and(|s| s < k) && first_time {
                resp(503, "{}".into())
            } else {
                resp(200, "{}".into())
            }
        }
        Behavior::AlwaysFail => resp(503, "{}".into()),
        Behavior::Freeze { from, len } => {
            let t = now.duration_since(start);
            if t >= from && t < from + len {
                tokio::time::sleep_until((start + from + len).into()).await;
            }
            resp(200, "{}".into())
        }
        Behavior::Notes => {
            if method == hyper::Method::POST && path == "/notes" {
                let text = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["text"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let mut notes = seen.notes.lock().unwrap();
                notes.push(text);
                let id = notes.len();
                resp(201, format!("{{\"id\": {id}}}"))
            } else if let Some(id) = path.strip_prefix("/notes/") {
                // As the notes app answers: the note's id and text.
                let text = id.parse::<usize>().ok().and_then(|id| {
                    let notes = seen.notes.lock().unwrap();
                    id.checked_sub(1).and_then(|i| notes.get(i).cloned())
                });
                match text {
                    Some(t) => resp(200, serde_json::json!({ "id": id, "text": t }).to_string()),
                    None => resp(404, "{}".into()),
                }
            } else {
                resp(200, "[]".into())
            }
        }
    };
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(r)
}

pub fn lit(s: &str) -> Template {
    Template::literal(s)
}

pub fn get(name: &str, path: &str) -> RequestSpec {
    RequestSpec {
        name: name.into(),
        weight: 1,
        method: "GET".into(),
        path: lit(path),
        headers: vec![],
        body: None,
        capture: vec![],
        durable: None,
        expect: None,
    }
}

pub fn retry(attempts: u32, on: RetryOn, budget: Option<f64>) -> RetryPolicy {
    RetryPolicy {
        attempts,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        jitter: Jitter::Full,
        on,
        budget,
        budget_window: Duration::from_secs(10),
    }
}

/// A constant-rate load of `rps` for `secs`.
pub fn hold_load(rps: f64, secs: f64, requests: Vec<RequestSpec>) -> Load {
    Load {
        responses_by: None,
        peak_rps: rps,
        stages: vec![Stage {
            kind: StageKind::Hold,
            rps,
            rate_text: format!("{rps}/s"),
            duration: Duration::from_secs_f64(secs),
        }],
        max_in_flight: 10_000,
        interval: Duration::from_millis(100),
        client: Client {
            timeout: Duration::from_secs(2),
            retry: retry(1, RetryOn::default(), None),
            headers: vec![],
            ca_cert: None,
        },
        requests,
    }
}

pub fn status_on(statuses: &[u16]) -> RetryOn {
    RetryOn {
        connect: true,
        timeout: false,
        reset: true,
        statuses: statuses.to_vec(),
    }
}

/// Run a load against `url` with no progress view and no external shutdown.
pub async fn drive(l: &Load, url: &str) -> chaos::load::LoadResult {
    chaos::load::run(
        l,
        url,
        chaos::clock::Clock::start(),
        Arc::new(chaos::shutdown::Shutdown::new()),
        &mut chaos::load::engine::NoProgress,
        Duration::from_millis(200),
    )
    .await
    .unwrap()
}
