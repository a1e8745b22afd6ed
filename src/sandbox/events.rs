//! The sandbox's ground truth: every event it undergoes (node down/up, load-balancer health
//! changes, zone down/up, failover start/end, writes lost with their ids, cache partitions), with
//! its time, appended to `sandbox-events.jsonl` as it happens.
//!
//! Tests compare what the harness measured with this record; the harness itself never reads it
//! during a run (it must see faults through its own requests only).

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

pub struct Events {
    start: Instant,
    file: Mutex<Option<std::fs::File>>,
    log: Mutex<Vec<Value>>,
}

impl Events {
    /// Events kept in memory, and appended to `path` if given (created or truncated).
    pub fn new(path: Option<&Path>) -> std::io::Result<Events> {
        let file = match path {
            Some(p) => Some(std::fs::File::create(p)?),
            None => None,
        };
        Ok(Events {
            start: Instant::now(),
            file: Mutex::new(file),
            log: Mutex::new(Vec::new()),
        })
    }

    /// Record one event: `kind` plus fields (an object).
    pub fn log(&self, kind: &str, fields: Value) {
        let mut ev = json!({
            "t_s": (self.start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "at": crate::report::utc(SystemTime::now()),
            "event": kind,
        });
        if let (Some(obj), Value::Object(extra)) = (ev.as_object_mut(), fields) {
            obj.extend(extra);
        }
        if let Some(f) = lock(&self.file).as_mut() {
            // Best effort: the sandbox keeps running even if its log disk is full.
            let _ = writeln!(f, "{ev}");
        }
        lock(&self.log).push(ev);
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<Value> {
        lock(&self.log).clone()
    }

    /// The events from the `n`th on (0-based): what a driver polling for its fault's record
    /// needs, without the whole log each time.
    pub fn since(&self, n: usize) -> Vec<Value> {
        lock(&self.log).iter().skip(n).cloned().collect()
    }

    /// How many events there are so far.
    pub fn count(&self) -> usize {
        lock(&self.log).len()
    }
}

/// Poisoning cannot leave these structures inconsistent (each update is one push or write).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
