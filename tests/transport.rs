//! The engine's HTTP transport against real and misbehaving servers on 127.0.0.1: how failures
//! map onto outcomes, keep-alive reuse, what goes on the wire, and https with an extra CA.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chaos::load::{self, engine::NoProgress, LoadResult};
use chaos::metrics::Outcome;
use chaos::scenario::*;
use chaos::shutdown::Shutdown;
use common::*;

fn outcomes(r: &LoadResult) -> Vec<(Outcome, u64)> {
    let all = r.recording.aggregate(0, usize::MAX, None);
    Outcome::ALL
        .iter()
        .map(|o| (*o, all.count(*o)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_response_or_before_it_is_a_reset() {
    // Headers promise 100 bytes of body; 7 arrive, then the server closes.
    let (port, _) = serve_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial").await;
    let l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    let r = drive(&l, &format!("http://127.0.0.1:{port}")).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Reset, 10)]);

    // The server reads the request and closes without a byte of response.
    let (port, _) = serve_raw(b"").await;
    let mut l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    l.client.retry = retry(2, status_on(&[]), None);
    let r = drive(&l, &format!("http://127.0.0.1:{port}")).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Reset, 10)]);
    // `reset` is retried when the policy says so.
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert_eq!(all.total_attempts(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    let r = drive(&l, &format!("http://127.0.0.1:{port}")).await;
    assert_eq!(outcomes(&r), vec![(Outcome::ConnectError, 10)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_reused() {
    let srv = serve(Behavior::Delay(Duration::ZERO)).await;
    let l = hold_load(200.0, 1.0, vec![get("a", "/")]);
    let r = drive(&l, &srv.url()).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Ok, 200)]);
    let conns = srv.seen.connections.load(Ordering::SeqCst);
    // One request every 5 ms against an instant server: a handful of connections (the bound
    // leaves room for a loaded CI machine; without reuse it would be 200).
    assert!(conns <= 100, "{conns} connections for 200 requests");

    // The closed loop never holds more connections than it has workers.
    let srv = serve(Behavior::Delay(Duration::from_millis(1))).await;
    let r = load::run_mode(
        &hold_load(1.0, 0.5, vec![get("a", "/")]),
        &srv.url(),
        load::Mode::Max { connections: 3 },
        chaos::clock::Clock::start(),
        Arc::new(Shutdown::new()),
        &mut NoProgress,
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    let all = r.recording.aggregate(0, usize::MAX, None);
    assert!(all.requests() > 30, "{}", all.requests());
    assert_eq!(all.count(Outcome::Ok), all.requests());
    let conns = srv.seen.connections.load(Ordering::SeqCst);
    assert!(conns <= 3, "{conns} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closes_after_its_response_is_not_reused() {
    let (port, accepted) =
        serve_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
    let l = hold_load(50.0, 1.0, vec![get("a", "/")]);
    let r = drive(&l, &format!("http://127.0.0.1:{port}")).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Ok, 50)]);
    assert_eq!(accepted.load(Ordering::SeqCst), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_host_user_agent_and_json_content_type_go_on_the_wire() {
    let srv = serve(Behavior::Delay(Duration::ZERO)).await;
    let mut req = get("a", "/x");
    req.method = "POST".into();
    req.path = Template {
        parts: vec![Part::Lit("/x/".into()), Part::Seq],
    };
    req.body = Some(Body::Json(JsonTemplate::Object(vec![(
        "n".into(),
        JsonTemplate::Number(1.into()),
    )])));
    req.headers = vec![
        Header {
            name: "X-B".into(),
            value: lit("request"),
        },
        Header {
            name: "X-Seq".into(),
            value: Template {
                parts: vec![Part::Seq],
            },
        },
    ];
    let mut l = hold_load(10.0, 0.1, vec![req]);
    l.client.headers = vec![
        Header {
            name: "X-A".into(),
            value: lit("client"),
        },
        Header {
            name: "x-b".into(),
            value: lit("client"),
        },
    ];
    // A base URL with a path: request paths follow it.
    let r = drive(&l, &format!("{}/api/", srv.url())).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Ok, 1)]);
    let h = srv.seen.last_headers.lock().unwrap().clone();
    let get = |n: &str| {
        h.iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("host"), vec![srv.addr.to_string()]);
    assert_eq!(
        get("user-agent"),
        vec![concat!("chaos/", env!("CARGO_PKG_VERSION"))]
    );
    assert_eq!(get("content-type"), vec!["application/json"]);
    assert_eq!(get("content-length"), vec!["7"]);
    assert_eq!(get("x-a"), vec!["client"]);
    assert_eq!(get("x-b"), vec!["request"], "the request's header wins");
    assert_eq!(get("x-seq"), vec!["0"]);
    let arrivals = srv.seen.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals[0].1, "POST /api/x/0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_works_with_an_extra_ca_and_fails_to_connect_without_it() {
    let ca = TestCa::new();
    let srv = serve_tls(Behavior::Delay(Duration::ZERO), ca.server.clone()).await;
    let dir = std::env::temp_dir().join(format!("chaos-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, &ca.ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{}", srv.addr.port());

    let mut l = hold_load(50.0, 1.0, vec![get("a", "/")]);
    l.client.ca_cert = Some(pem.clone());
    let r = drive(&l, &url).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Ok, 50)]);
    let conns = srv.seen.connections.load(Ordering::SeqCst);
    assert!(conns < 50, "TLS connections are kept alive too ({conns})");

    // By host name too (the certificate names localhost).
    let r = drive(&l, &format!("https://localhost:{}", srv.addr.port())).await;
    assert_eq!(outcomes(&r), vec![(Outcome::Ok, 50)]);

    // The system's roots alone do not trust the test CA: the TLS handshake fails.
    let l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    let r = drive(&l, &url).await;
    assert_eq!(outcomes(&r), vec![(Outcome::ConnectError, 10)]);

    // A CA file that is not PEM is an input error before any traffic.
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut l = hold_load(20.0, 0.5, vec![get("a", "/")]);
    l.client.ca_cert = Some(bad);
    let e = load::run(
        &l,
        &url,
        chaos::clock::Clock::start(),
        Arc::new(Shutdown::new()),
        &mut NoProgress,
        Duration::from_millis(200),
    )
    .await
    .err()
    .unwrap();
    assert!(e.to_string().contains("not a PEM certificate"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
