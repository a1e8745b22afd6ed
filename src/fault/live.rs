//! The conductor's live fault board (`chaos run --shard 0/N --conductor HOST:PORT`): each
//! fault's injection and revert times, and its fate once over, as the fault timeline publishes
//! them — what the conductor serves to the other shards (`run::conductor`), so every shard's
//! windows are the conductor's while the run lasts, not only in `chaos merge`.
//!
//! It only holds what the timeline publishes. It never calls a driver, never reads or writes
//! the journal, and nothing read from it can act on a fault.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Outcome, Planned, Status};

/// One fault as the conductor's timeline has it so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFault {
    pub name: String,
    pub kind: String,
    /// Seconds on the run's clock (every shard's clock starts at the agreed `--start-at`).
    pub injected_at_s: Option<f64>,
    pub reverted_at_s: Option<f64>,
    /// Its fate, once it is over for the run (none while waiting, applied or reverting).
    pub status: Option<Status>,
}

/// Every planned fault's live state, and whether the timeline is over.
#[derive(Debug, Default)]
pub struct Board {
    faults: Mutex<Vec<LiveFault>>,
    over: AtomicBool,
}

impl Board {
    /// A board listing `planned`, none of them injected yet.
    pub fn new(planned: &[Planned]) -> Board {
        Board {
            faults: Mutex::new(
                planned
                    .iter()
                    .map(|p| LiveFault {
                        name: p.fault.name.clone(),
                        kind: p.fault.kind.name().to_string(),
                        injected_at_s: None,
                        reverted_at_s: None,
                        status: None,
                    })
                    .collect(),
            ),
            over: AtomicBool::new(false),
        }
    }

    /// What the timeline knows of `o` now; `over`: its fate is final.
    pub(super) fn publish(&self, o: &Outcome, over: bool) {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = faults.iter_mut().find(|f| f.name == o.name) {
            f.injected_at_s = o.injected_at_s;
            f.reverted_at_s = o.reverted_at_s;
            f.status = over.then_some(o.status);
        }
    }

    /// The timeline has returned: every fault is over.
    pub fn close(&self) {
        self.over.store(true, Ordering::SeqCst);
    }

    /// Every fault, and whether the timeline is over.
    pub fn snapshot(&self) -> (Vec<LiveFault>, bool) {
        // `over` first: a board read as over holds every final publish.
        let over = self.over.load(Ordering::SeqCst);
        let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        (faults.clone(), over)
    }
}
