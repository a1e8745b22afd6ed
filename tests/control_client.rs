//! The sandbox driver's control calls (`SandboxDriver::call`, reqwest) against real HTTP
//! servers on 127.0.0.1:0: how each way a call can end is classified for the retry logic.
#![allow(clippy::unwrap_used)]

mod common;

use chaos::drivers::sandbox::SandboxDriver;
use chaos::fault::DriverError;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_4xx_5xx_refused_and_malformed_calls_are_classified() {
    let notes = serve(Behavior::Notes).await;
    let d = SandboxDriver::new(&format!("{}/", notes.url()));
    // A 2xx: its JSON answer.
    assert_eq!(
        d.call("GET", "/notes").await.unwrap(),
        serde_json::json!([])
    );
    let created = d.call("POST", "/notes").await.unwrap();
    assert_eq!(created["id"], 1);
    // A 4xx is refused for good, and the error names the call.
    match d.call("GET", "/notes/999").await {
        Err(DriverError::Permanent(m)) => {
            assert!(m.contains("GET http://") && m.contains("/notes/999"), "{m}");
            assert!(m.contains("404"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // A method that is not one cannot be sent at all.
    assert!(matches!(
        d.call("NOT A METHOD", "/notes").await,
        Err(DriverError::Permanent(_))
    ));

    // A 5xx is worth another try.
    let failing = serve(Behavior::AlwaysFail).await;
    let d = SandboxDriver::new(&failing.url());
    match d.call("POST", "/zones/a/down").await {
        Err(DriverError::Retryable { message, after }) => {
            assert!(message.contains("503"), "{message}");
            assert_eq!(after, None);
        }
        other => panic!("{other:?}"),
    }

    // Nothing listening: unreachable, worth another try.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = SandboxDriver::new(&format!("http://127.0.0.1:{port}"));
    match d.call("GET", "/resources").await {
        Err(DriverError::Retryable { message, .. }) => {
            assert!(message.contains("unreachable"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // A URL that is not one: permanent.
    let d = SandboxDriver::new("not a url");
    match d.call("GET", "/resources").await {
        Err(DriverError::Permanent(m)) => assert!(m.contains("bad URL"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A control API that accepts the connection and never answers: after the call's 10 s, a
/// retryable "no answer" (the sandbox may be busy), not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_api_that_never_answers_times_out_after_10_s_and_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let d = SandboxDriver::new(&format!("http://{addr}"));
    let t = std::time::Instant::now();
    let r = d.call("GET", "/resources").await;
    let took = t.elapsed();
    match r {
        Err(DriverError::Retryable { message, .. }) => {
            assert!(message.contains("no answer within 10 s"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(took >= std::time::Duration::from_secs(10), "{took:?}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}
