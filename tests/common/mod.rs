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
    pub count: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// Arrival times relative to the first request, and method + path.
    pub arrivals: Mutex<Vec<(Duration, String)>>,
    pub first: Mutex<Option<Instant>>,
    pub notes: Mutex<Vec<u64>>,
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = s2.clone();
            let b = b.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, b.clone(), seen.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestServer { addr, seen }
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
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let _body = req.into_body().collect().await;
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
                let mut notes = seen.notes.lock().unwrap();
                let id = notes.len() as u64 + 1;
                notes.push(id);
                resp(201, format!("{{\"id\": {id}}}"))
            } else if let Some(id) = path.strip_prefix("/notes/") {
                let known = id
                    .parse::<u64>()
                    .is_ok_and(|id| seen.notes.lock().unwrap().contains(&id));
                if known {
                    resp(200, format!("{{\"id\": {id}}}"))
                } else {
                    resp(404, "{}".into())
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
