//! The control-plane watch beside the fault timeline: the driver's [`Driver::observe`] polled
//! at its own rate from one interval before the first fault (from the run's start in a game
//! day) to the end of the run (one poll
//! after the last revert), each poll diffed against the last good one into [`ControlEvent`]s.
//! Reads only; it never delays a fault, and a failing read is one event, not an error.

use std::time::Duration;

use tokio::time::Instant;

use super::{ControlEvent, Driver, Planned, Snapshot};
use crate::shutdown::Shutdown;

/// At most this many control-plane events are kept (a flapping resource must not grow the
/// report without bound); one more says that later changes were dropped.
pub const MAX_EVENTS: usize = 1000;
/// A poll that takes longer than this counts as failed (the next one tries again); it also
/// bounds how long the last poll, after the last revert, can hold up the end of the run.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Poll the driver's control plane from one interval before the first fault (or before `from`,
/// when a fault may come earlier) until every fault is done and the run is over (or shut
/// down), with one poll started after the last revert finished; diff each poll against the
/// last good one. Reads only, at the driver's rate.
pub(super) async fn watch(
    planned: &[Planned],
    driver: &dyn Driver,
    (start, from, end): (Instant, Option<Duration>, Duration),
    shutdown: &Shutdown,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<ControlEvent> {
    let mut events = Vec::new();
    // The first fault's time, or `from` when a fault may come earlier (a game day's hands).
    let Some(first) = planned.iter().map(|p| p.fault.at).min() else {
        return events;
    };
    let first = from.map_or(first, |f| f.min(first));
    if driver.observe(planned).is_none() {
        return events;
    }
    let every = driver.observe_every().max(Duration::from_millis(10));
    // The baseline is read one interval before the first inject (a fault at 0 s races it).
    tokio::select! {
        _ = tokio::time::sleep_until(start + first.saturating_sub(every)) => {}
        _ = shutdown.wait() => return events,
    }
    let mut w = Watched::default();
    w.poll(driver, planned, start, &mut events).await;
    loop {
        let finished = *done.borrow();
        let next = Instant::now() + every;
        let next = if finished {
            next.min(start + end)
        } else {
            next
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = done.wait_for(|d| *d), if !finished => {}
        }
        // Only a poll that started after the last revert finished may be the last one: one
        // in flight meanwhile may have read the state before the revert.
        let done_before = *done.borrow();
        w.poll(driver, planned, start, &mut events).await;
        if done_before && (shutdown.is_triggered() || Instant::now() >= start + end) {
            return events;
        }
    }
}

/// The watch's memory between polls: the last snapshot read, and whether reads are failing.
#[derive(Default)]
struct Watched {
    last: Option<Snapshot>,
    failing: bool,
}

impl Watched {
    async fn poll(
        &mut self,
        driver: &dyn Driver,
        planned: &[Planned],
        start: Instant,
        events: &mut Vec<ControlEvent>,
    ) {
        let Some(read) = driver.observe(planned) else {
            return;
        };
        let got = match tokio::time::timeout(POLL_TIMEOUT, read).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer in {POLL_TIMEOUT:?}")),
        };
        let at_s = start.elapsed().as_secs_f64();
        match got {
            Ok(now) => {
                if self.failing {
                    self.failing = false;
                    push(
                        events,
                        event(at_s, "control plane", Some("unreadable"), Some("read")),
                    );
                }
                if let Some(before) = &self.last {
                    for e in diff(before, &now, at_s) {
                        push(events, e);
                    }
                }
                self.last = Some(now);
            }
            Err(e) => {
                tracing::warn!("reading the control plane: {e}");
                if !self.failing {
                    self.failing = true;
                    let to = format!("unreadable: {e}");
                    push(
                        events,
                        event(at_s, "control plane", Some("read"), Some(&to)),
                    );
                }
            }
        }
    }
}

pub(super) fn event(at_s: f64, what: &str, from: Option<&str>, to: Option<&str>) -> ControlEvent {
    ControlEvent {
        at_s,
        what: what.into(),
        from: from.map(Into::into),
        to: to.map(Into::into),
    }
}

pub(super) fn push(events: &mut Vec<ControlEvent>, e: ControlEvent) {
    match events.len() {
        n if n < MAX_EVENTS => events.push(e),
        MAX_EVENTS => {
            let dropped = format!("later changes not recorded ({MAX_EVENTS} kept)");
            events.push(event(e.at_s, "control plane events", None, Some(&dropped)));
        }
        _ => {}
    }
}

/// What changed from one snapshot to the next, in key order: a value changed, a key appeared
/// (`from` null) or went (`to` null).
pub fn diff(before: &Snapshot, after: &Snapshot, at_s: f64) -> Vec<ControlEvent> {
    let mut out = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            Some(was) if was == v => {}
            was => out.push(event(at_s, k, was.map(String::as_str), Some(v))),
        }
    }
    for (k, was) in before {
        if !after.contains_key(k) {
            out.push(event(at_s, k, Some(was), None));
        }
    }
    out.sort_by(|a, b| a.what.cmp(&b.what));
    out
}
