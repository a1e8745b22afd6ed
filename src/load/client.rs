//! The scenario's `[load.client]` turned into what goes on the wire: header names and values
//! (secrets marked sensitive), the client/request header merge, and the errors of building the
//! client. The connections themselves are [`super::transport`]'s.

use http::header::{HeaderName, HeaderValue};

use crate::scenario::{Header, Part};

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

/// A header's name as sent (validation already checked it; this converts it).
pub fn header_name(h: &Header) -> Result<HeaderName, ClientError> {
    HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| ClientError::BadHeader {
        name: h.name.clone(),
        reason: e.to_string(),
    })
}

/// A header value from already-rendered text. Values holding secrets are marked sensitive so
/// they never appear in any Debug output either.
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
