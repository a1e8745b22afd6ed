//! A run's requests prepared once (method, URI, headers and bodies without per-request parts
//! built ahead) and rendered per logical request: the part of the hot path before the wire.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, HOST, USER_AGENT};
use http::{Method, Uri};

use super::client::{self, ClientConfig, ReadBackHeaders};
use super::engine::EngineError;
use super::template::{self, Captures, Missing};
use super::transport::{self, Target};
use crate::scenario::{Body, Capture, Durable, Expect, Header, JsonTemplate, Load, Template};

/// A request kind, prepared once per run: everything without per-request parts is built here,
/// so the hot path only renders templates and clones ready-made values.
pub(super) struct Prepared {
    pub(super) method: Method,
    pub(super) path: Template,
    /// The request URI (origin form, base path included) when the path has no per-request
    /// parts.
    pub(super) uri: Option<Uri>,
    /// `Host`, `user-agent`, `accept`, every header without per-request parts, and
    /// `content-type: application/json` for a JSON body unless a header sets it.
    pub(super) headers: HeaderMap,
    /// Headers with per-request parts, rendered for each logical request.
    pub(super) templated: Vec<(HeaderName, Header)>,
    pub(super) body: Option<Body>,
    /// The body, rendered once, when it has no per-request parts.
    pub(super) literal_body: Option<Bytes>,
    pub(super) captures: Vec<Capture>,
    pub(super) durable: Option<Durable>,
    /// For a durable write: the headers its read-back sends again, taken from what the
    /// acknowledged write was sent with (see [`client::ReadBackHeaders`]).
    pub(super) read_back: Vec<HeaderName>,
    /// Those headers as sent when no header is templated (then every write shares them).
    pub(super) read_back_fixed: ReadBackHeaders,
    pub(super) expect: Option<Expect>,
    /// Keep every response's whole body: a capture, a durable write or a body check reads it.
    pub(super) keep_body: bool,
    pub(super) name: String,
}

/// A logical request's rendered form, reused by its retries (same bytes on every attempt).
pub(super) struct Rendered {
    pub(super) uri: Uri,
    /// `None`: the prepared headers as they are (no templated header).
    pub(super) headers: Option<HeaderMap>,
    pub(super) body: Bytes,
}

pub(super) fn prepare(
    load: &Load,
    cfg: &ClientConfig,
    target: &Target,
) -> Result<Vec<Prepared>, EngineError> {
    let none = Captures::new([]);
    let mut rng = rand::rng();
    load.requests
        .iter()
        .map(|r| {
            let method = Method::from_bytes(r.method.as_bytes())
                .map_err(|_| EngineError::BadMethod(r.method.clone()))?;
            let mut headers = HeaderMap::new();
            headers.insert(HOST, target.host_header.clone());
            headers.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("chaos/", env!("CARGO_PKG_VERSION"))),
            );
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
            let split = cfg.request_headers(&r.headers)?;
            for (name, v) in split.fixed {
                headers.insert(name, v);
            }
            let templated = split.templated;
            let json = matches!(r.body, Some(Body::Json(_)));
            if json && templated.iter().all(|(n, _)| n != CONTENT_TYPE) {
                headers
                    .entry(CONTENT_TYPE)
                    .or_insert(HeaderValue::from_static("application/json"));
            }
            let uri = if r.path.is_literal() {
                let mut p = target.base_path.clone();
                template::render(&r.path, 0, &mut rng, &none, &mut p)
                    .ok()
                    .and_then(|_| transport::path_uri(p))
            } else {
                None
            };
            let literal_body = match &r.body {
                Some(Body::Text(t)) if t.is_literal() => {
                    let mut s = String::new();
                    template::render(t, 0, &mut rng, &none, &mut s)
                        .ok()
                        .map(|_| Bytes::from(s))
                }
                Some(Body::Json(j)) if json_is_literal(j) => {
                    template::render_json(j, 0, &mut rng, &none)
                        .ok()
                        .map(Bytes::from)
                }
                _ => None,
            };
            let read_back = if r.durable.is_some() {
                split.read_back
            } else {
                Vec::new()
            };
            // Without templated headers every write of this kind is sent the same headers: one
            // read-back set, shared by all of them.
            let read_back_fixed = ReadBackHeaders::pick(&headers, &read_back);
            Ok(Prepared {
                method,
                path: r.path.clone(),
                uri,
                headers,
                templated,
                body: r.body.clone(),
                literal_body,
                captures: r.capture.clone(),
                durable: r.durable.clone(),
                read_back,
                read_back_fixed,
                expect: r.expect.clone(),
                keep_body: !r.capture.is_empty()
                    || r.durable.is_some()
                    || r.expect.as_ref().is_some_and(Expect::reads_body),
                name: r.name.clone(),
            })
        })
        .collect()
}

/// A JSON body template with no per-request parts.
fn json_is_literal(j: &JsonTemplate) -> bool {
    match j {
        JsonTemplate::String(t) => t.is_literal(),
        JsonTemplate::Array(a) => a.iter().all(json_is_literal),
        JsonTemplate::Object(o) => o.iter().all(|(_, v)| json_is_literal(v)),
        JsonTemplate::Null | JsonTemplate::Bool(_) | JsonTemplate::Number(_) => true,
    }
}

/// Render logical request `seq` of `req` (paths follow `base`, the target's base path).
pub(super) fn render(
    req: &Prepared,
    seq: u64,
    base: &str,
    caps: &Captures,
) -> Result<Rendered, Missing> {
    let mut rng = rand::rng();
    let uri = match &req.uri {
        Some(u) => u.clone(),
        None => {
            let mut path = String::with_capacity(base.len() + 32);
            path.push_str(base);
            template::render(&req.path, seq, &mut rng, caps, &mut path)?;
            // A captured value can make a path no URI can hold: not sent, like a missing
            // capture.
            transport::path_uri(path.clone()).ok_or(Missing(path))?
        }
    };
    let headers = if req.templated.is_empty() {
        None
    } else {
        let mut headers = req.headers.clone();
        for (name, h) in &req.templated {
            let mut v = String::new();
            template::render(&h.value, seq, &mut rng, caps, &mut v)?;
            // Header values were checked by validation; one that renders to invalid bytes (a
            // captured value with a newline, say) is dropped rather than failing the request.
            if let Ok(v) = client::header_value(h, &v) {
                headers.insert(name.clone(), v);
            }
        }
        if matches!(req.body, Some(Body::Json(_))) && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Some(headers)
    };
    let body = match (&req.literal_body, &req.body) {
        (Some(b), _) => b.clone(),
        (None, None) => Bytes::new(),
        (None, Some(Body::Json(j))) => Bytes::from(template::render_json(j, seq, &mut rng, caps)?),
        (None, Some(Body::Text(t))) => {
            let mut s = String::new();
            template::render(t, seq, &mut rng, caps, &mut s)?;
            Bytes::from(s)
        }
    };
    Ok(Rendered { uri, headers, body })
}
