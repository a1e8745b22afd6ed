//! Outcomes by status code, `expect`, and failed-response samples (issue 9 §5), end to end: the
//! `chaos` binary against a real HTTP server on 127.0.0.1 that answers 200, 404, 401 and 429 with
//! bodies and headers, then `chaos report` reading the run back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

const SECRET: &str = "s3cr3t-Tok3n-4242";
const BUSY_BODY: usize = 2000;

type Hits = Arc<Mutex<BTreeMap<String, u64>>>;

/// A server that answers by path and counts what it answered (every attempt):
/// `/ok`, `/right` 200 `{"ok": true}`; `/wrong` 200 `{"ok": false}`; `/missing`, `/missing-too`
/// 404; `/auth` 401 with credential-looking headers and the request's Authorization echoed
/// back where the body's first 512 bytes end; `/busy` 429 with `retry-after` and a 2000-byte body.
async fn serve() -> (SocketAddr, Hits) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits: Hits = Arc::default();
    let h2 = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hits = h2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| answer(req, hits.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    hits: Hits,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let r = Response::builder().header("x-served-by", "node-a1");
    let r = match path.as_str() {
        "/ok" | "/right" => r.status(200).body(r#"{"ok": true}"#.to_string()),
        "/wrong" => r.status(200).body(r#"{"ok": false}"#.to_string()),
        "/missing" | "/missing-too" => r.status(404).body(r#"{"error": "no such note"}"#.into()),
        "/auth" => {
            // The echoed token starts 11 bytes before the 512-byte cut: it must be masked whole.
            let mut body = "x".repeat(500);
            body.push_str(&format!("got {auth}; that is not a valid token"));
            r.status(401)
                .header("www-authenticate", "Bearer realm=\"notes\"")
                .header("set-cookie", "session=abc123; HttpOnly")
                .header("x-api-key", "server-side-key")
                .header("x-echo-auth", auth.as_str())
                .body(body)
        }
        "/busy" => r
            .status(429)
            .header("retry-after", "1")
            .body("b".repeat(BUSY_BODY)),
        _ => r.status(500).body(String::new()),
    };
    Ok(r.unwrap().map(|b| Full::new(Bytes::from(b))))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chaos-outcomes-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn chaos(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chaos"))
            .args(&args)
            .env("CHAOS_OUTCOMES_TOKEN", SECRET)
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Seven requests, one per behaviour; retries on 429 and 404 (an expected 404 must not be
/// retried, an unexpected one must).
const SCENARIO: &str = r#"name = "outcomes"
[load]
stages = [{ hold = "200/s", for = "1.5s" }]
interval = "100ms"
[load.client]
timeout = "2s"
retry = { attempts = 2, backoff = "1ms", max_backoff = "2ms", on = ["429", 404] }
[[load.requests]]
name = "ok"
path = "/ok"
[[load.requests]]
name = "expected-404"
path = "/missing"
expect = { status = [200, 404] }
[[load.requests]]
name = "plain-404"
path = "/missing-too"
[[load.requests]]
name = "auth"
path = "/auth"
headers = { Authorization = "Bearer ${env:CHAOS_OUTCOMES_TOKEN}" }
[[load.requests]]
name = "busy"
path = "/busy"
[[load.requests]]
name = "wrong-body"
path = "/wrong"
expect = { status = 200, json = { path = "$.ok", equals = true } }
[[load.requests]]
name = "right-body"
path = "/right"
expect = { status = "2xx", body_contains = "\"ok\": true" }
[slo]
whole = ["p99 < 30s"]
"#;

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p.join("report.json")).unwrap()).unwrap()
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_expect_and_failure_samples_in_the_reports() {
    let (addr, hits) = serve().await;
    let dir = tmpdir("run");
    let scenario = dir.join("outcomes.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.join("run");
    let o = chaos(vec![
        "run".into(),
        scenario.display().to_string(),
        "--target-url".into(),
        format!("http://{addr}"),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = read(&out);
    common::schema::assert_matches_schema(&r);
    let hits = hits.lock().unwrap().clone();
    let req = |name: &str| &r["per_request"][name];
    let n = |name: &str| req(name)["requests"].as_u64().unwrap();
    assert_eq!(r["scheduled"], 300);

    // Every status counted apart, exactly: each request's count is what the server answered
    // (retried requests: the server saw two attempts, the report counts the final status once).
    let expect: [(&str, &str, &str, u64); 7] = [
        ("ok", "/ok", "200", 1),
        ("expected-404", "/missing", "404", 1),
        ("plain-404", "/missing-too", "404", 2),
        ("auth", "/auth", "401", 1),
        ("busy", "/busy", "429", 2),
        ("wrong-body", "/wrong", "200", 1),
        ("right-body", "/right", "200", 1),
    ];
    let mut total = BTreeMap::<String, u64>::new();
    for (name, path, status, attempts) in expect {
        let k = n(name);
        assert!(k > 10, "{name}: only {k} requests drawn");
        assert_eq!(hits[path], k * attempts, "{name}: server hits vs requests");
        assert_eq!(
            counts(&req(name)["status_counts"]),
            BTreeMap::from([(status.to_string(), k)]),
            "{name}"
        );
        assert_eq!(req(name)["attempts"].as_u64(), Some(k * attempts), "{name}");
        *total.entry(status.into()).or_default() += k;
    }
    assert_eq!(counts(&r["totals"]["status_counts"]), total);
    assert_eq!(total.len(), 4, "200, 401, 404 and 429 apart: {total:?}");
    // The series counts statuses per interval, adding up to the totals.
    let mut by_interval = BTreeMap::<String, u64>::new();
    for s in r["series"].as_array().unwrap() {
        for (k, v) in counts(&s["status_counts"]) {
            *by_interval.entry(k).or_default() += v;
        }
    }
    assert_eq!(by_interval, total);

    // `expect`: a listed 404 is ok (and not retried although 404 is in retry.on); the same
    // status without `expect` is a 4xx; a 200 failing its JSON check is `unexpected`, an error.
    let outcome = |name: &str, o: &str| req(name)["outcomes"][o].as_u64().unwrap();
    assert_eq!(outcome("expected-404", "ok"), n("expected-404"));
    assert_eq!(outcome("plain-404", "http_4xx"), n("plain-404"));
    assert_eq!(outcome("wrong-body", "unexpected"), n("wrong-body"));
    assert_eq!(outcome("wrong-body", "ok"), 0);
    assert_eq!(req("wrong-body")["error_rate"], 1.0);
    assert_eq!(outcome("right-body", "ok"), n("right-body"));
    assert_eq!(outcome("ok", "ok"), n("ok"));
    assert_eq!(r["totals"]["outcomes"]["unexpected"], n("wrong-body"));

    // Failure samples: the first 5 of each failing request, none of the others.
    let failures = r["failures"].as_array().unwrap();
    let of =
        |name: &str| -> Vec<&Value> { failures.iter().filter(|f| f["request"] == name).collect() };
    for name in ["ok", "expected-404", "right-body"] {
        assert!(of(name).is_empty(), "{name} never failed: {:?}", of(name));
    }
    for name in ["plain-404", "auth", "busy", "wrong-body"] {
        let f = of(name);
        assert_eq!(f.len(), 5, "{name}");
        let at: Vec<f64> = f.iter().map(|x| x["at_s"].as_f64().unwrap()).collect();
        assert!(
            at.windows(2).all(|w| w[0] <= w[1]),
            "{name} in time order: {at:?}"
        );
        assert_eq!(f[0]["headers"]["x-served-by"], "node-a1", "{name}");
    }
    let auth = of("auth")[0];
    assert_eq!(auth["status"], 401);
    assert_eq!(auth["outcome"], "http_4xx");
    assert_eq!(
        auth["headers"]["www-authenticate"],
        "Bearer realm=\"notes\""
    );
    assert_eq!(auth["headers"]["set-cookie"], "***");
    assert_eq!(auth["headers"]["x-api-key"], "***");
    assert_eq!(
        auth["headers"]["x-echo-auth"], "Bearer ***",
        "the secret value masked"
    );
    let body = auth["body"].as_str().unwrap();
    assert!(body.starts_with(&"x".repeat(500)), "{body}");
    assert!(
        body.ends_with("got Bearer ***"),
        "cut at 512 bytes, secret masked whole: {body}"
    );
    assert!(!body.contains("s3c"), "{body}");
    assert!(auth["body_bytes"].as_u64().unwrap() > 512);
    let busy = of("busy")[0];
    assert_eq!(busy["body"], "b".repeat(512), "the body's first 512 bytes");
    assert_eq!(busy["body_bytes"], BUSY_BODY as u64);
    assert_eq!(busy["headers"]["retry-after"], "1");
    assert_eq!(busy["attempts"], 2);
    let wrong = of("wrong-body")[0];
    assert_eq!(wrong["status"], 200);
    assert_eq!(wrong["outcome"], "unexpected");
    assert_eq!(wrong["reason"], "$.ok is false, expected true");
    assert_eq!(wrong["body"], r#"{"ok": false}"#);
    assert_eq!(of("plain-404")[0]["reason"], Value::Null);

    // summary.md: statuses per request, what each expects, the unexpected count, a sample.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Responses by status"), "{md}");
    assert!(
        md.contains(&format!("| auth | status < 400 | 401 ×{} |", n("auth"))),
        "{md}"
    );
    let w = n("wrong-body");
    assert!(
        md.contains(&format!(
            "| wrong-body | status 200 · `$.ok == true` | 200 ×{w} |"
        )),
        "{md}"
    );
    assert!(
        md.contains("| expected-404 | status 200, 404 | 404 ×"),
        "{md}"
    );
    assert!(
        md.contains("| right-body | status 2xx · body has `\"ok\": true` |"),
        "{md}"
    );
    // The requests table counts `unexpected` in its own column.
    assert!(md.contains("| 5xx | unexpected | timeout |"), "{md}");
    assert!(
        md.contains(&format!("| wrong-body | {w} | 0 | 0 | 0 | {w} | 0 |")),
        "{md}"
    );
    assert!(
        md.contains("| wrong-body | 0.")
            && md.contains("| 200 (unexpected) | $.ok is false, expected true |"),
        "{md}"
    );
    // The secret is in no file the run wrote.
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{} holds the secret",
            p.display()
        );
    }

    // `chaos report` rebuilds the same statuses and samples from report.json alone.
    let before = r.clone();
    let o = chaos(vec!["report".into(), out.display().to_string()]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let again = read(&out);
    common::schema::assert_matches_schema(&again);
    assert_eq!(again["failures"], before["failures"]);
    assert_eq!(
        again["totals"]["status_counts"],
        before["totals"]["status_counts"]
    );
    assert_eq!(again["per_request"], before["per_request"]);
    assert_eq!(again["series"], before["series"]);
    assert_eq!(again["histograms"], before["histograms"]);
    assert_eq!(std::fs::read_to_string(out.join("summary.md")).unwrap(), md);
}

/// A hurried user's `expect`: typos, impossible statuses, empty lists, bad paths — each
/// reported at its place with what would be accepted; a good one parses to the model.
#[test]
fn expect_is_validated_with_positions_and_suggestions() {
    let base = |expect: &str| {
        format!(
            "name = \"x\"\n[load]\nstages = [{{ hold = \"1/s\", for = \"1s\" }}]\n[[load.requests]]\nname = \"a\"\npath = \"/\"\nexpect = {expect}\n"
        )
    };
    let errors = |expect: &str| match chaos::scenario::parse_str("s.toml", &base(expect)) {
        Ok(_) => panic!("accepted: {expect}"),
        Err(d) => d.to_string(),
    };
    let e = errors("{ stauts = [200] }");
    assert!(e.contains("s.toml:7:12"), "{e}");
    assert!(e.contains("unknown key `stauts` in expect"), "{e}");
    assert!(e.contains("did you mean `status`?"), "{e}");
    let e = errors("{ status = [200, 700, \"4x\"] }");
    assert!(e.contains("s.toml:7:27"), "{e}");
    assert!(e.contains("700 is not an HTTP status"), "{e}");
    assert!(e.contains("\"4x\" is not an HTTP status"), "{e}");
    assert!(e.contains("classes (\"2xx\")"), "{e}");
    assert!(errors("{ status = [] }").contains("no response would ever be a success"));
    assert!(errors("{}").contains("expect is empty"));
    assert!(errors("{ body_contains = \"\" }").contains("body_contains is empty"));
    let e = errors("{ json = { path = \"ok\" } }");
    assert!(e.contains("invalid JSON path \"ok\""), "{e}");
    let e = errors("{ json = { equal = true, path = \"$.ok\" } }");
    assert!(e.contains("did you mean `equals`?"), "{e}");
    assert!(errors("{ json = { equals = 1 } }").contains("missing required key `path`"));

    let s = chaos::scenario::parse_str(
        "s.toml",
        &base("{ status = [\"2xx\", 404, \"404\"], body_contains = \"ok\", json = { path = \"$.a[0]\", equals = { n = 1.5 } } }"),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let e = s.load.requests[0].expect.as_ref().unwrap();
    assert_eq!(e.status.len(), 101, "200..=299 and 404, once each");
    assert!(e.status_ok(204) && e.status_ok(404) && !e.status_ok(302));
    assert_eq!(e.body_contains.as_deref(), Some("ok"));
    let j = e.json.as_ref().unwrap();
    assert_eq!(j.path.text, "$.a[0]");
    assert_eq!(j.equals, Some(serde_json::json!({ "n": 1.5 })));
    assert!(s.load.requests[0].expect.is_some());
    let plain = chaos::scenario::parse_str(
        "s.toml",
        &base("{ status = 201 }").replace("expect = { status = 201 }\n", ""),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert!(plain.load.requests[0].expect.is_none());
}
