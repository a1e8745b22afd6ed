//! The after-run read-back of durable writes (`chaos::verify::read_back`) against real HTTP
//! servers on 127.0.0.1:0, fed by the real load engine: each write is read back with the
//! headers it was acknowledged with (issue 10, section 6).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chaos::scenario::*;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const TOKEN: &str = "t0k3n-only-on-the-write";

/// A notes API that wants `Authorization: Bearer TOKEN` on every request (401 otherwise):
/// POST /notes -> 201 {"id": n}; GET /notes/{id} -> 200 if known, else 404. When a note was
/// created with an `x-write-tag` header, reading it back needs the same tag (403 otherwise).
/// A read answers `{"id", "text"}`: the text the note was written with, or — for ids from
/// `reused_from` on (0: none), as after a split brain — another note's.
#[derive(Default)]
struct Api {
    notes: Mutex<HashMap<u64, Option<String>>>,
    texts: Mutex<HashMap<u64, String>>,
    reused_from: AtomicU64,
    unauthorized: AtomicU64,
    wrong_tag: AtomicU64,
    reads: AtomicU64,
}

async fn serve_api() -> (String, Arc<Api>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let api = Arc::new(Api::default());
    let a = api.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let a = a.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, a.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, api)
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    api: Arc<Api>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = |code: u16, body: String| {
        Ok(Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        api.unauthorized.fetch_add(1, Ordering::SeqCst);
        return resp(401, r#"{"error": "unauthorized"}"#.into());
    }
    let tag = header("x-write-tag");
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == Method::POST && path == "/notes" {
        let mut notes = api.notes.lock().unwrap();
        let id = notes.len() as u64 + 1;
        notes.insert(id, tag);
        let text = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_string))
            .unwrap_or_default();
        api.texts.lock().unwrap().insert(id, text);
        return resp(201, format!(r#"{{"id": {id}}}"#));
    }
    if let Some(id) = path.strip_prefix("/notes/") {
        api.reads.fetch_add(1, Ordering::SeqCst);
        let known = id
            .parse::<u64>()
            .ok()
            .and_then(|id| api.notes.lock().unwrap().get(&id).cloned());
        return match known {
            None => resp(404, "{}".into()),
            Some(Some(want)) if tag.as_deref() != Some(want.as_str()) => {
                api.wrong_tag.fetch_add(1, Ordering::SeqCst);
                resp(403, r#"{"error": "wrong tag"}"#.into())
            }
            Some(_) => {
                let n: u64 = id.parse().unwrap_or(0);
                let from = api.reused_from.load(Ordering::SeqCst);
                let text = if from > 0 && n >= from {
                    "someone else's note".to_string()
                } else {
                    api.texts
                        .lock()
                        .unwrap()
                        .get(&n)
                        .cloned()
                        .unwrap_or_default()
                };
                resp(
                    200,
                    serde_json::json!({ "id": n, "text": text }).to_string(),
                )
            }
        };
    }
    resp(404, "{}".into())
}

fn header(name: &str, parts: Vec<Part>) -> Header {
    Header {
        name: name.into(),
        value: Template { parts },
    }
}

/// `POST /notes`, durable (read back at `GET /notes/{id}`), with these request headers.
fn create(headers: Vec<Header>) -> RequestSpec {
    let mut r = get("create", "/notes");
    r.method = "POST".into();
    r.body = Some(Body::Json(JsonTemplate::Object(vec![(
        "text".into(),
        JsonTemplate::String(lit("a note")),
    )])));
    r.headers = headers;
    r.durable = Some(Durable {
        id: JsonPath {
            text: "$.id".into(),
            steps: vec![PathStep::Key("id".into())],
        },
        read_method: "GET".into(),
        read_path: "/notes/{id}".into(),
        same: None,
    });
    r
}

/// The token as the scenario holds a `${env:TOKEN}` value: a secret part.
fn bearer() -> Header {
    header(
        "Authorization",
        vec![Part::Lit("Bearer ".into()), Part::Secret(TOKEN.into())],
    )
}

/// The write request alone carries the token (nothing in `[load.client] headers`): every
/// acknowledged write is read back with it, none lost or unverified; and the token never
/// reaches what report.json serializes, nor any Debug output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_set_only_on_the_write_request_reads_every_write_back() {
    let (url, api) = serve_api().await;
    let l = hold_load(50.0, 1.0, vec![create(vec![bearer()])]);
    assert!(l.client.headers.is_empty());
    let r = drive(&l, &url).await;
    assert_eq!(r.durable_writes.len(), 50, "every write acknowledged");
    assert_eq!(api.unauthorized.load(Ordering::SeqCst), 0);

    let v = chaos::verify::read_back(&url, &l.client, &r.durable_writes)
        .await
        .unwrap();
    let unverified: Vec<_> = v.unverified.iter().map(|u| &u.reason).collect();
    assert_eq!(
        (v.checked, v.found, v.lost.len(), unverified.len()),
        (50, 50, 0, 0),
        "{unverified:?}"
    );
    assert_eq!(
        api.unauthorized.load(Ordering::SeqCst),
        0,
        "no read-back lacked the token"
    );
    assert_eq!(api.reads.load(Ordering::SeqCst), 50);

    // What report.json's `durable.writes` is made of, and any Debug print of it.
    let json = serde_json::to_string(&r.durable_writes).unwrap();
    assert!(json.contains("/notes/1") && !json.contains(TOKEN), "{json}");
    assert!(!json.to_lowercase().contains("authorization"), "{json}");
    let debug = format!("{:?}", r.durable_writes);
    assert!(!debug.contains(TOKEN), "{debug}");
}

/// A header templated per request is read back with the value rendered for that write (the
/// server wants each note's own tag), and a client-wide header still goes with every read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_header_reads_back_with_the_writes_own_value() {
    let (url, api) = serve_api().await;
    let tag = header("X-Write-Tag", vec![Part::Lit("w-".into()), Part::Uuid]);
    let mut l = hold_load(40.0, 1.0, vec![create(vec![tag])]);
    l.client.headers = vec![bearer()];
    let r = drive(&l, &url).await;
    assert_eq!(r.durable_writes.len(), 40);
    let v = chaos::verify::read_back(&url, &l.client, &r.durable_writes)
        .await
        .unwrap();
    assert_eq!((v.found, v.lost.len(), v.unverified.len()), (40, 0, 0));
    assert_eq!(api.wrong_tag.load(Ordering::SeqCst), 0);
    assert_eq!(api.unauthorized.load(Ordering::SeqCst), 0);
}

/// Without the token the read-back cannot tell: every write is unverified (401 is not 404),
/// never lost, and never found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_back_the_server_refuses_is_unverified_not_lost() {
    let (url, _api) = serve_api().await;
    let l = hold_load(10.0, 0.5, vec![create(vec![bearer()])]);
    let mut r = drive(&l, &url).await;
    assert_eq!(r.durable_writes.len(), 5);
    for w in &mut r.durable_writes {
        w.headers = Default::default();
    }
    let v = chaos::verify::read_back(&url, &l.client, &r.durable_writes)
        .await
        .unwrap();
    assert_eq!((v.found, v.lost.len(), v.unverified.len()), (0, 0, 5));
    assert!(
        v.unverified[0].reason.contains("HTTP 401"),
        "{:?}",
        v.unverified
    );
}

/// Over https the read-back trusts what the load trusts: the scenario's `ca_cert`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_read_back_trusts_the_scenarios_ca() {
    let ca = TestCa::new();
    let srv = serve_tls(Behavior::Notes, ca.server.clone()).await;
    let dir = std::env::temp_dir().join(format!("chaos-readback-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, &ca.ca_pem).unwrap();
    let url = format!("https://localhost:{}", srv.addr.port());
    let mut l = hold_load(20.0, 0.5, vec![create(vec![])]);
    l.client.ca_cert = Some(pem);
    let r = drive(&l, &url).await;
    assert_eq!(r.durable_writes.len(), 10);
    let v = chaos::verify::read_back(&url, &l.client, &r.durable_writes)
        .await
        .unwrap();
    assert_eq!((v.found, v.lost.len(), v.unverified.len()), (10, 0, 0));

    // Without the CA the handshake fails: unverified, never lost.
    l.client.ca_cert = None;
    let v = chaos::verify::read_back(&url, &l.client, &r.durable_writes[..2])
        .await
        .unwrap();
    assert_eq!((v.found, v.lost.len(), v.unverified.len()), (0, 0, 2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `durable.same = "$.text"`, an id that answers with another note's text (ids handed
/// out again after a split brain) is a lost write, and says why; without it, the same answers
/// count as found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_answers_with_another_value_is_lost_when_durable_same_is_set() {
    let (url, api) = serve_api().await;
    let mut w = create(vec![bearer()]);
    w.durable.as_mut().unwrap().same = Some(JsonPath {
        text: "$.text".into(),
        steps: vec![PathStep::Key("text".into())],
    });
    let l = hold_load(20.0, 1.0, vec![w]);
    let r = drive(&l, &url).await;
    assert_eq!(r.durable_writes.len(), 20);
    // The write's value is kept for its read-back, never serialized with it.
    let json = serde_json::to_string(&r.durable_writes).unwrap();
    assert!(!json.contains("a note"), "{json}");
    api.reused_from.store(11, Ordering::SeqCst);
    let v = chaos::verify::read_back(&url, &l.client, &r.durable_writes)
        .await
        .unwrap();
    let mut lost: Vec<u64> = v.lost.iter().map(|l| l.id.parse().unwrap()).collect();
    lost.sort_unstable();
    assert_eq!((v.found, v.unverified.len()), (10, 0));
    assert_eq!(lost, (11..=20).collect::<Vec<u64>>());
    for l in &v.lost {
        assert_eq!(
            l.reason.as_deref(),
            Some("another value at $.text under its id")
        );
    }
    // Without `same`, an id that answers is found, whatever it holds.
    let plain: Vec<_> = r
        .durable_writes
        .iter()
        .cloned()
        .map(|mut w| {
            w.same = None;
            w
        })
        .collect();
    let v = chaos::verify::read_back(&url, &l.client, &plain)
        .await
        .unwrap();
    assert_eq!((v.found, v.lost.len()), (20, 0));
}

/// A target that takes connections and never answers: each attempt waits out the client's
/// timeout. The read-back gives up on it after a bounded number of attempts in a row (not
/// every write's five), so 2,000 writes are reported unverified — most of them skipped without
/// a request — instead of holding the run for 2,000 × 5 timeouts / 32 in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_is_given_up_on_after_bounded_attempts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            h.lock().unwrap().push(stream);
        }
    });
    let mut client = hold_load(1.0, 1.0, vec![]).client;
    client.timeout = std::time::Duration::from_millis(100);
    let writes: Vec<chaos::load::engine::DurableWrite> = (0..2000)
        .map(|i| chaos::load::engine::DurableWrite {
            request: "create".into(),
            id: i.to_string(),
            read_method: "GET".into(),
            read_path: format!("/notes/{i}"),
            headers: Default::default(),
            same: None,
            sent_ms: None,
            acked_ms: None,
        })
        .collect();
    let v = chaos::verify::read_back(&url, &client, &writes)
        .await
        .unwrap();
    assert_eq!((v.checked, v.found, v.lost.len()), (2000, 0, 0));
    assert_eq!(v.unverified.len(), 2000);
    let skipped = v
        .unverified
        .iter()
        .filter(|u| u.reason.contains("stopped answering"))
        .count();
    assert!(skipped >= 1500, "only {skipped} skipped");
}
