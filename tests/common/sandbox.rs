//! The sandbox started in-process for tests: a fast configuration (health checks every
//! 100 ms, a 300 ms failover), requests through its load balancer and control API, raw lines to
//! its backing services' ports, its event log, and waiting on a node's state.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use chaos::sandbox::{Sandbox, SandboxConfig};

pub fn fast() -> SandboxConfig {
    let mut c = SandboxConfig::default();
    c.lb.interval = Duration::from_millis(100);
    // Checks every 100 ms, each given 500 ms (a loaded machine must not fail a live node).
    c.lb.check_timeout = Duration::from_millis(500);
    c.db.failover_time = Duration::from_millis(300);
    c
}

pub async fn call(method: &str, url: &str) -> (u16, String, Option<String>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .request(method.parse().unwrap(), url)
        .body("{\"text\": \"t\"}")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match r {
        Ok(r) => {
            let s = r.status().as_u16();
            let by = r
                .headers()
                .get("x-served-by")
                .map(|v| v.to_str().unwrap().to_string());
            (s, r.text().await.unwrap_or_default(), by)
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

pub fn events(sb: &Sandbox, kind: &str) -> Vec<serde_json::Value> {
    sb.stack()
        .events
        .all()
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Wait (at most 10 s) until the sandbox logs an event of `kind`; fail with `why` otherwise.
pub async fn wait_event(sb: &Sandbox, kind: &str, why: &str) {
    let t = std::time::Instant::now();
    while events(sb, kind).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "{why}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The addresses the control API lists for a resource kind.
pub async fn addrs(sb: &Sandbox, role: &str) -> Vec<(serde_json::Value, std::net::SocketAddr)> {
    let (_, body, _) = call("GET", &format!("{}/resources", sb.control_url)).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role"] == role)
        .map(|r| (r.clone(), r["addr"].as_str().unwrap().parse().unwrap()))
        .collect()
}

/// One request line to a backing service's port; `None` when nothing came back in `wait`.
pub async fn raw(
    addr: std::net::SocketAddr,
    line: &str,
    wait: Duration,
) -> std::io::Result<Option<String>> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("{line}\n").as_bytes()).await?;
    let mut r = tokio::io::BufReader::new(s);
    let mut out = String::new();
    match tokio::time::timeout(wait, r.read_line(&mut out)).await {
        Ok(res) => res.map(|_| Some(out)),
        Err(_) => Ok(None),
    }
}

pub fn node_state(sb: &Sandbox, id: &str) -> String {
    sb.stack().describe()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .unwrap()
}

/// Wait (up to 10 s) until a node is in `state`.
pub async fn until(sb: &Sandbox, id: &str, state: &str, why: &str) {
    let t = std::time::Instant::now();
    while node_state(sb, id) != state {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{why}: {id} never {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
