//! The HTTP client under test: built from the scenario's `[load.client]`, and the mapping of
//! whatever happens to an attempt onto an [`Outcome`].

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use crate::metrics::Outcome;
use crate::scenario::{Client, Header, Part};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA certificate {path}: {source}")]
    CaRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA certificate {path} is not a PEM certificate: {reason}")]
    CaParse { path: String, reason: String },
    #[error("header `{name}` is not a valid HTTP header ({reason})")]
    BadHeader { name: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Build the shared client: keep-alive connection reuse (one pool for the whole run), no
/// redirects followed (a 3xx is a result to measure), no automatic retries beyond the
/// scenario's own policy, Nagle off.
pub fn build(c: &Client, max_in_flight: usize) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(max_in_flight)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(c.timeout)
        .http1_only()
        .no_proxy()
        .user_agent(concat!("chaos/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &c.ca_cert {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClientError::CaRead {
            path: shown.clone(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ClientError::CaParse {
            path: shown,
            reason: e.to_string(),
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| ClientError::Build(e.to_string()))
}

/// Static headers (templates without per-request parts) rendered once. Templated header values
/// are rendered per request by the engine.
pub fn header_name(h: &Header) -> Result<HeaderName, ClientError> {
    HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| ClientError::BadHeader {
        name: h.name.clone(),
        reason: e.to_string(),
    })
}

/// A header value from already-rendered text. Values holding secrets are marked sensitive so
/// they never appear in reqwest's Debug output either.
pub fn header_value(h: &Header, rendered: &str) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(rendered).map_err(|e| ClientError::BadHeader {
        name: h.name.clone(),
        reason: e.to_string(),
    })?;
    if h.value.parts.iter().any(|p| matches!(p, Part::Secret(_))) {
        v.set_sensitive(true);
    }
    Ok(v)
}

/// Headers merged: the client's, then the request's (a request header replaces the client
/// header of the same name).
pub fn merge<'a>(client: &'a [Header], request: &'a [Header]) -> Vec<&'a Header> {
    let mut out: Vec<&Header> = client
        .iter()
        .filter(|c| !request.iter().any(|r| r.name.eq_ignore_ascii_case(&c.name)))
        .collect();
    out.extend(request.iter());
    out
}

/// Classify a transport error.
pub fn classify(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::ConnectError
    } else {
        // The request was sent (or being sent) and the connection failed under it: refused
        // mid-write, closed before the response, truncated body.
        Outcome::Reset
    }
}
