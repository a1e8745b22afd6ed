//! The game day's console: commands typed on the terminal that runs `chaos run --gameday`
//! (or piped in with `--console`), one per line — a fault's number and Enter injects it, or
//! reverts it once applied; `n TEXT` writes a note; Enter alone lists the faults and their
//! phases. Each goes to the run's game-day desk exactly as `chaos inject|revert|note` from
//! another terminal does ([`crate::run::gameday::ask`]), so both are journaled, windowed and
//! reported alike; the answers are written on stderr.
//!
//! It owns the thread that reads stdin (a plain thread, never a runtime's blocking task: a read
//! still waiting when the run ends must not hold the process up) and never reads anything
//! but the desk's answers.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::output;
use crate::run::gameday;

/// Read commands from stdin for the run whose desk `desk` names once it is open. Runs until
/// stdin ends or the runtime stops.
pub fn spawn(desk: Arc<OnceLock<PathBuf>>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = std::thread::Builder::new()
        .name("gameday-console".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = reader {
        output::err(&format!(
            "game day: no console ({e}); use chaos inject|revert|note"
        ));
        return;
    }
    tokio::spawn(async move {
        let dir = loop {
            if let Some(d) = desk.get() {
                break d.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        output::err(&listing(&dir).await);
        while let Some(line) = rx.recv().await {
            output::err(&command(&dir, line.trim()).await);
        }
    });
}

const HELP: &str =
    "a fault's number and Enter injects it (reverts it once applied); `n TEXT` writes a note";

/// The faults with their numbers and phases, and how to act on them.
async fn listing(dir: &std::path::Path) -> String {
    match gameday::ask(dir, "GET", "/faults", None).await {
        Ok(v) => {
            let faults: Vec<String> = v["faults"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, f)| {
                    format!(
                        "{} {} ({})",
                        i + 1,
                        f["name"].as_str().unwrap_or("?"),
                        f["phase"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!("game day: {} — {HELP}", faults.join(", "))
        }
        Err(e) => format!("game day: {e}"),
    }
}

/// One typed command, answered in one line.
pub async fn command(dir: &std::path::Path, line: &str) -> String {
    if line.is_empty() || line == "?" {
        return listing(dir).await;
    }
    if let Some(text) = line
        .strip_prefix("n ")
        .or_else(|| line.strip_prefix("note "))
    {
        return match gameday::ask(dir, "POST", "/notes", Some(text.trim().to_string())).await {
            Ok(v) => format!(
                "game day: noted at {:.1}s",
                v["at_s"].as_f64().unwrap_or(0.0)
            ),
            Err(e) => format!("game day: error: {e}"),
        };
    }
    let Ok(k) = line.parse::<usize>() else {
        return format!("game day: `{line}`? {HELP}; Enter alone lists the faults");
    };
    let faults = match gameday::ask(dir, "GET", "/faults", None).await {
        Ok(v) => v["faults"].as_array().cloned().unwrap_or_default(),
        Err(e) => return format!("game day: error: {e}"),
    };
    let Some(f) = k.checked_sub(1).and_then(|i| faults.get(i)) else {
        return format!("game day: no fault {k} (1 to {})", faults.len());
    };
    let name = f["name"].as_str().unwrap_or_default();
    let verb = match f["phase"].as_str() {
        Some("waiting") => "inject",
        Some("applied") => "revert",
        Some(p) => return format!("game day: {name} is {p}: nothing to do by hand now"),
        None => return format!("game day: {name}: no phase"),
    };
    match gameday::ask(dir, "POST", &format!("/faults/{name}/{verb}"), None).await {
        Ok(v) => format!(
            "game day: {name} {verb}ed at {:.1}s{}",
            v["at_s"].as_f64().unwrap_or(0.0),
            match v["by"].as_str() {
                Some("schedule") => " (by its schedule, which came first)",
                Some("stopping") => " (as the run was stopping)",
                _ => "",
            }
        ),
        Err(e) => format!("game day: error: {e}"),
    }
}
