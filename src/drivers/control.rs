//! The general client of control APIs (the sandbox's, the fault proxy's): reqwest, built by
//! `load::client::ClientConfig`, 10 s per call, never the load engine's transport. Each call is
//! logged (method, path, duration, status) — `info` for calls that change something, `debug`
//! for reads — and its error says whether another try may help: unreachable, slow or a 5xx is
//! retryable, a request the API refuses (4xx) is not.

use std::time::Duration;

use serde_json::Value;

use crate::fault::DriverError;
use crate::load::client::ClientConfig;

/// How long one control call may take, the answer's body included.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ControlClient {
    /// What answers there, as errors name it (`sandbox`, `fault proxy`).
    what: &'static str,
    base: String,
    /// Why the client could not be built, if it could not, is what every call then fails with.
    client: Result<reqwest::Client, String>,
}

/// What went wrong, from an error's causes: reqwest's own message only names the URL, which
/// the call's error already shows ("connection refused" is in the causes).
fn chain(e: &dyn std::error::Error) -> String {
    let mut cause = e.source();
    if cause.is_none() {
        return e.to_string();
    }
    let mut parts = Vec::new();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}

impl ControlClient {
    pub fn new(what: &'static str, base_url: &str) -> ControlClient {
        ControlClient {
            what,
            base: base_url.trim_end_matches('/').to_string(),
            client: ClientConfig::plain(CONTROL_TIMEOUT)
                .reqwest(base_url)
                .map_err(|e| e.to_string()),
        }
    }

    /// One control call; the JSON answer, or an error naming the call. Logged (method, path,
    /// duration, status or error): `info` for calls that change something, `debug` for reads.
    pub async fn call(&self, method: &str, path: &str) -> Result<Value, DriverError> {
        let started = std::time::Instant::now();
        let r = self.exchange(method, path).await;
        let ms = started.elapsed().as_millis() as u64;
        let changes = method != "GET";
        match (&r, changes) {
            (Ok((status, _)), true) => tracing::info!(method, path, ms, status, "control call"),
            (Ok((status, _)), false) => tracing::debug!(method, path, ms, status, "control call"),
            (Err(e), true) => tracing::info!(method, path, ms, error = %e, "control call failed"),
            (Err(e), false) => tracing::debug!(method, path, ms, error = %e, "control call failed"),
        }
        r.map(|(_, v)| v)
    }

    /// [`ControlClient::call`] without the log: the status and the JSON answer.
    async fn exchange(&self, method: &str, path: &str) -> Result<(u16, Value), DriverError> {
        let shown = format!("{method} {}{path}", self.base);
        // The API briefly unreachable or slow is worth another try; a request it refuses
        // (4xx) or one we cannot even form is not.
        let fail = |why: String| DriverError::retryable(format!("{shown}: {why}"));
        let refused = |why: String| DriverError::Permanent(format!("{shown}: {why}"));
        let client = self
            .client
            .as_ref()
            .map_err(|e| refused(format!("no HTTP client: {e}")))?;
        let url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| refused(format!("bad URL: {e}")))?;
        let m =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| refused(e.to_string()))?;
        // The client's timeout (CONTROL_TIMEOUT) bounds the whole exchange, body included.
        let timed_out = || fail(format!("no answer within {} s", CONTROL_TIMEOUT.as_secs()));
        let resp = client.request(m, url).send().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else if e.is_builder() {
                refused(chain(&e))
            } else {
                fail(format!("{} unreachable ({})", self.what, chain(&e)))
            }
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                fail(chain(&e))
            }
        })?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let why = format!("{status}: {}", v["error"].as_str().unwrap_or(""));
            return Err(if status.is_client_error() {
                refused(why)
            } else {
                fail(why)
            });
        }
        Ok((status.as_u16(), v))
    }
}
