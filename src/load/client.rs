//! The target's client configuration, built in one place from the scenario's `[load.client]`:
//! the timeout, the TLS roots (the system's, as `rustls-platform-verifier` finds them, plus the
//! scenario's `ca_cert`), header names and values (secrets marked sensitive), and the
//! client/request header merge split into static headers (built once) and per-request ones
//! (templated, rendered per logical request).
//!
//! Two clients are built from it and must trust and send the same things: the load engine's
//! hyper transport ([`super::transport`], the hot path) and the after-run read-back of durable
//! writes (`crate::verify`, reqwest). It also builds the general client of control APIs (the
//! sandbox driver's). This module never opens a connection and never logs a header value.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

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

/// What every client of the target is built from (see the module doc). Its `Debug` shows
/// header names, never values.
#[derive(Clone)]
pub struct ClientConfig {
    /// Per attempt: connecting, sending and reading the whole response.
    pub timeout: Duration,
    /// `[load.client] headers`, sent with every request unless the request sets the same name.
    pub headers: Vec<Header>,
    /// The scenario's `ca_cert` certificates, read and checked once.
    extra_roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field(
                "headers",
                &self.headers.iter().map(|h| &h.name).collect::<Vec<_>>(),
            )
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

/// A request kind's headers as [`ClientConfig::request_headers`] splits them.
pub struct RequestHeaders {
    /// Headers without per-request parts, rendered once (secrets marked sensitive).
    pub fixed: Vec<(HeaderName, HeaderValue)>,
    /// Headers with per-request parts (`{{seq}}`, `{{uuid}}`, a captured `{{name}}`…).
    pub templated: Vec<(HeaderName, Header)>,
    /// Every header the scenario sets on this request (client's and request's, merged) that a
    /// read-back of its durable write sends: all but those describing the write's own body or
    /// connection (`content-type`, `content-length`, `host`).
    pub read_back: Vec<HeaderName>,
}

impl ClientConfig {
    /// The configuration of `[load.client]`. The CA file is read here, even for an http target:
    /// a broken file is an input error before any traffic.
    pub fn new(c: &Client) -> Result<ClientConfig, ClientError> {
        Ok(ClientConfig {
            timeout: c.timeout,
            headers: c.headers.clone(),
            extra_roots: c
                .ca_cert
                .as_deref()
                .map(read_ca)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// A configuration without headers or extra roots (control APIs).
    pub fn plain(timeout: Duration) -> ClientConfig {
        ClientConfig {
            timeout,
            headers: Vec::new(),
            extra_roots: Vec::new(),
        }
    }

    /// TLS for https targets: the platform's roots plus `ca_cert`; ALPN offers HTTP/1.1 only
    /// (neither client speaks HTTP/2). Built only for https URLs: loading the system's roots
    /// fails on a machine that has none, which must not stop a run against an http target.
    pub fn tls(&self) -> Result<rustls::ClientConfig, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let build = |e: rustls::Error| ClientError::Build(e.to_string());
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
            self.extra_roots.clone(),
            provider.clone(),
        )
        .map_err(build)?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(build)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// A general-purpose client (reqwest) for `base_url`'s origin, off the measured path: the
    /// read-back and control APIs. No proxy, no redirects (a 3xx is an answer, as in the load),
    /// the configured timeout per request. For an http URL no roots are loaded (see
    /// [`ClientConfig::tls`]): redirects are not followed, so nothing can lead it to https.
    pub fn reqwest(&self, base_url: &str) -> Result<reqwest::Client, ClientError> {
        self.reqwest_builder(base_url)?
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))
    }

    /// [`ClientConfig::reqwest`] before it is built, for a client that needs more (a journey
    /// user's cookie jar). No compression asked for: the bytes are measured as the server
    /// sends them.
    pub fn reqwest_builder(&self, base_url: &str) -> Result<reqwest::ClientBuilder, ClientError> {
        let tls = if base_url.starts_with("https://") {
            self.tls()?
        } else {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Build(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        Ok(reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .gzip(false)
            .timeout(self.timeout)
            .tls_backend_preconfigured(tls))
    }

    /// A request's headers merged with the client's (a request header replaces the client
    /// header of the same name) and split into what is built once and what is rendered per
    /// request. Literal values that are still invalid (validation checked them) are dropped,
    /// as a templated one that renders to invalid bytes is.
    pub fn request_headers(&self, request: &[Header]) -> Result<RequestHeaders, ClientError> {
        let mut out = RequestHeaders {
            fixed: Vec::new(),
            templated: Vec::new(),
            read_back: Vec::new(),
        };
        for h in merge(&self.headers, request) {
            let name = header_name(h)?;
            if read_back_sends(&name) {
                out.read_back.push(name.clone());
            }
            if h.value.is_literal() {
                // Literal parts only: nothing to render per request.
                let text: String = h
                    .value
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Lit(s) | Part::Secret(s) => s.as_str(),
                        _ => "",
                    })
                    .collect();
                if let Ok(v) = header_value(h, &text) {
                    out.fixed.push((name, v));
                }
            } else {
                out.templated.push((name, h.clone()));
            }
        }
        Ok(out)
    }
}

/// Read a PEM file of one or more CA certificates.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| ClientError::CaRead {
        path: shown.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::CaParse {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ClientError::CaParse {
            path: shown,
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// The headers an acknowledged durable write was sent with, as its read-back sends them again:
/// the write's own rendered values (a header templated per request, `{{token}}` captured at
/// login say, is read back with the value that write used, not a fresh one). Values holding a
/// secret stay marked sensitive; `Debug` shows names only, and the type has no `Serialize`: it
/// never reaches report.json, the journal or a log.
///
/// Shared (`Arc`): the writes of a request kind without templated headers all hold one map.
#[derive(Clone, Default)]
pub struct ReadBackHeaders(Arc<HeaderMap>);

impl ReadBackHeaders {
    /// The headers named in `names` out of `sent` (what went on the wire).
    pub fn pick(sent: &HeaderMap, names: &[HeaderName]) -> ReadBackHeaders {
        let mut m = HeaderMap::with_capacity(names.len());
        for n in names {
            if let Some(v) = sent.get(n) {
                m.insert(n.clone(), v.clone());
            }
        }
        ReadBackHeaders(Arc::new(m))
    }

    /// These headers, as they are.
    pub fn new(m: HeaderMap) -> ReadBackHeaders {
        ReadBackHeaders(Arc::new(m))
    }

    pub fn map(&self) -> &HeaderMap {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ReadBackHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Whether a durable write's read-back sends this header of its write again: all but those
/// describing the write's own body or connection (`content-type`, `content-length`, `host`).
pub fn read_back_sends(name: &HeaderName) -> bool {
    ![CONTENT_TYPE, CONTENT_LENGTH, HOST].contains(name)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Template;

    fn header(name: &str, parts: Vec<Part>) -> Header {
        Header {
            name: name.into(),
            value: Template { parts },
        }
    }

    #[test]
    fn request_headers_override_client_ones_and_split_fixed_from_templated() {
        let cfg = ClientConfig {
            headers: vec![
                header("Authorization", vec![Part::Lit("Bearer client".into())]),
                header("X-Team", vec![Part::Lit("sre".into())]),
            ],
            ..ClientConfig::plain(Duration::from_secs(1))
        };
        let h = cfg
            .request_headers(&[
                header(
                    "authorization",
                    vec![Part::Lit("Bearer ".into()), Part::Secret("s3cret".into())],
                ),
                header("X-Seq", vec![Part::Seq]),
                header("Content-Type", vec![Part::Lit("text/plain".into())]),
            ])
            .unwrap();
        let fixed: Vec<(String, &HeaderValue)> =
            h.fixed.iter().map(|(n, v)| (n.to_string(), v)).collect();
        assert_eq!(fixed.len(), 3, "{fixed:?}");
        assert_eq!(fixed[0].0, "x-team");
        assert_eq!(fixed[1].0, "authorization");
        assert_eq!(fixed[1].1, "Bearer s3cret");
        assert!(fixed[1].1.is_sensitive() && !fixed[0].1.is_sensitive());
        assert_eq!(h.templated.len(), 1);
        assert_eq!(h.templated[0].0, "x-seq");
        let rb: Vec<&str> = h.read_back.iter().map(HeaderName::as_str).collect();
        assert_eq!(rb, ["x-team", "authorization", "x-seq"]);
    }

    #[test]
    fn read_back_headers_keep_secrets_sensitive_and_never_show_values() {
        let mut sent = HeaderMap::new();
        let mut v = HeaderValue::from_static("Bearer s3cret");
        v.set_sensitive(true);
        sent.insert(http::header::AUTHORIZATION, v);
        sent.insert(HOST, HeaderValue::from_static("h"));
        sent.insert("x-plain", HeaderValue::from_static("visible-value"));
        let names = [
            http::header::AUTHORIZATION,
            HeaderName::from_static("x-plain"),
            HeaderName::from_static("x-absent"),
        ];
        let rb = ReadBackHeaders::pick(&sent, &names);
        assert_eq!(rb.map().len(), 2);
        assert!(rb.map()["authorization"].is_sensitive());
        let shown = format!("{rb:?}");
        assert!(
            shown.contains("authorization") && shown.contains("x-plain"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("visible-value"),
            "{shown}"
        );
    }
}
