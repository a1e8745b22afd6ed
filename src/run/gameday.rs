//! The game-day desk (`chaos run --gameday`): a small HTTP endpoint the run serves on
//! 127.0.0.1 while it lasts, through which `chaos inject|revert|note <run-dir> …` (another
//! terminal) hands faults of the scenario to the timeline and writes notes on it.
//!
//! It owns the endpoint and `<run-dir>/gameday.json` (its URL and a random token, readable by
//! the run's user only; removed once the fault timeline is over — before the read-back and the
//! reports — so a hand finds no run after that; left behind only by a run killed outright,
//! which `chaos inject` then cannot reach, and `--force` may clear). Every
//! call carries the token (`Authorization: Bearer …`): another user of the machine cannot act
//! on the run. It never touches a driver: a hand goes to [`Hands`], and the fault timeline does
//! the work. Notes are appended to `<run-dir>/notes.jsonl` (fsynced) as they come, and go into
//! the run record at its end.
//!
//! ```text
//! GET  /faults                 every fault of the run and its phase
//! POST /faults/{name}/inject   inject it now; answers once it is applied (or failed)
//! POST /faults/{name}/revert   revert it now; answers once it is reverted
//! POST /notes                  the body (UTF-8 text, at most 4 KiB) as a note, now
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::clock::Clock;
use crate::fault::manual::{HandError, Hands};
use crate::sandbox::http::{self, Body};

/// The desk's file in the run directory.
pub const FILE: &str = "gameday.json";
/// Where the notes are appended as they come.
pub const NOTES: &str = "notes.jsonl";
const MAX_NOTE: usize = 4096;

/// The desk while it is open; closing it (drop) stops the endpoint and removes its file.
pub struct Desk {
    task: tokio::task::JoinHandle<()>,
    file: PathBuf,
    pub url: String,
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Open the desk for `hands` of the run in `dir`, whose clock is `clock`.
pub async fn open(hands: Arc<Hands>, dir: &Path, clock: Clock) -> std::io::Result<Desk> {
    let listener = http::bind(0).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let token: String = {
        use rand::Rng as _;
        let mut r = rand::rng();
        (0..32)
            .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    };
    let file = dir.join(FILE);
    write_private(&file, &json!({ "url": url, "token": token }).to_string())?;
    let notes = dir.join(NOTES);
    let token = Arc::new(token);
    let task = tokio::spawn(http::serve(listener, move |req| {
        let (hands, token, notes) = (hands.clone(), token.clone(), notes.clone());
        async move { handle(req, &hands, &token, &notes, clock).await }
    }));
    tracing::info!(%url, "game-day desk open: chaos inject|revert|note <run-dir>");
    Ok(Desk { task, file, url })
}

/// Written with mode 0600 (the token in it is the key to the run's faults), whole or not at
/// all: into a temporary file renamed over it (a reader never sees half of it).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Equal, in a time that does not depend on where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn handle(
    req: Request<Incoming>,
    hands: &Hands,
    token: &str,
    notes: &Path,
    clock: Clock,
) -> Response<Body> {
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same_token(t, token));
    if !authorized {
        return http::error(
            StatusCode::UNAUTHORIZED,
            "no or wrong token: use `chaos inject|revert|note <run-dir>` (it reads gameday.json)",
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let at = || clock.elapsed().as_secs_f64();
    match (method, segs.as_slice()) {
        (Method::GET, ["faults"]) => {
            let faults: Vec<_> = hands
                .phases()
                .into_iter()
                .map(|(name, phase)| json!({ "name": name, "phase": phase }))
                .collect();
            http::json(StatusCode::OK, &json!({ "faults": faults, "at_s": at() }))
        }
        (Method::POST, ["faults", name, verb @ ("inject" | "revert")]) => {
            let r = if *verb == "inject" {
                hands.inject(name).await
            } else {
                hands.revert(name).await
            };
            match r {
                Ok(by) => http::json(
                    StatusCode::OK,
                    &json!({
                        "ok": true,
                        "fault": name,
                        "done": verb,
                        "by": by.name(),
                        "at_s": at(),
                    }),
                ),
                Err(e @ HandError::Unknown { .. }) => {
                    http::error(StatusCode::NOT_FOUND, &e.to_string())
                }
                Err(e @ HandError::Failed { .. }) => {
                    http::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
                }
                Err(e) => http::error(StatusCode::CONFLICT, &e.to_string()),
            }
        }
        (Method::POST, ["notes"]) => {
            let Ok(body) = http::read_body(req, MAX_NOTE).await else {
                return http::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a note is at most {MAX_NOTE} bytes"),
                );
            };
            let text = match std::str::from_utf8(&body).map(str::trim) {
                Ok(t) if !t.is_empty() => t.to_string(),
                Ok(_) => return http::error(StatusCode::BAD_REQUEST, "an empty note"),
                Err(_) => return http::error(StatusCode::BAD_REQUEST, "a note is UTF-8 text"),
            };
            let note = hands.note(at(), &text);
            if let Err(e) = append(notes, &note) {
                tracing::warn!("cannot append the note to {}: {e}", notes.display());
            }
            http::json(StatusCode::OK, &json!({ "ok": true, "at_s": note.at_s }))
        }
        _ => http::error(
            StatusCode::NOT_FOUND,
            "GET /faults, POST /faults/{name}/inject|revert, POST /notes",
        ),
    }
}

fn append(path: &Path, note: &crate::fault::manual::Note) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let line = serde_json::to_string(note).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")?;
    f.sync_all()
}

/// What `chaos inject|revert|note` sends, and what the run answered.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{dir} is no game-day run in progress (no {FILE} there: was it started with `chaos run --gameday`, and is it still running?)")]
    NoDesk { dir: String },
    #[error("{0}")]
    Refused(String),
    #[error("the run did not answer at {url} (has it ended?): {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Failed(String),
}

impl DeskError {
    /// 2 for what was asked wrongly (no such run or fault, a fault not in that phase), 4 for
    /// a fault that could not be injected or reverted.
    pub fn exit_code(&self) -> i32 {
        match self {
            DeskError::Failed(_) => 4,
            _ => 2,
        }
    }
}

/// Ask the run in `dir`: `("POST", "/faults/x/inject", None)`, or a note as the body.
pub async fn ask(
    dir: &Path,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<serde_json::Value, DeskError> {
    let no_desk = || DeskError::NoDesk {
        dir: dir.display().to_string(),
    };
    let text = std::fs::read_to_string(dir.join(FILE)).map_err(|_| no_desk())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| no_desk())?;
    let (Some(url), Some(token)) = (v["url"].as_str(), v["token"].as_str()) else {
        return Err(no_desk());
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| DeskError::Failed(e.to_string()))?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| DeskError::Failed(e.to_string()))?;
    let mut req = client
        .request(method, format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req.send().await.map_err(|e| DeskError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    let msg = v["error"].as_str().unwrap_or("(no message)").to_string();
    match status.as_u16() {
        200 => Ok(v),
        500 => Err(DeskError::Failed(msg)),
        _ => Err(DeskError::Refused(msg)),
    }
}
