//! Game-day hands on the fault timeline (`chaos run --gameday`): the team injects a fault of
//! the scenario before its time, or reverts one before its time, by hand, while the load runs;
//! and writes notes on the run's timeline.
//!
//! It owns each fault's phase as the timeline reports it and the two "now" signals a fault's
//! future waits on beside its schedule. It never calls a driver and never writes the journal:
//! a fault injected by hand goes through the same inject, confirm, revert and journal steps as
//! a scheduled one (the timeline's), so rollback, windows and reports treat both alike. A fault
//! is injected once per run: by hand or at its time, whichever comes first.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Notify};

/// Where a fault is in its life, as its timeline future says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not injected yet.
    Waiting,
    /// Its inject (and confirm) is under way.
    Injecting,
    /// Applied, waiting for its revert.
    Applied,
    /// Reverting.
    Reverting,
    /// Done: reverted, failed, or never reached.
    Over,
}

/// Which of a fault's steps a person asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ByHand {
    pub injected: bool,
    pub reverted: bool,
}

impl ByHand {
    pub fn is_none(&self) -> bool {
        !self.injected && !self.reverted
    }
}

/// One fault's hands.
pub struct Hand {
    pub(super) inject: Notify,
    pub(super) revert: Notify,
    phase: watch::Sender<Phase>,
    pub(super) by: Mutex<ByHand>,
}

impl Hand {
    pub(super) fn set(&self, p: Phase) {
        self.phase.send_replace(p);
    }

    pub(super) fn by_hand(&self) -> ByHand {
        *self.by.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A note typed during the run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Note {
    /// Seconds from the start of the run.
    pub at_s: f64,
    pub text: String,
}

/// Why a hand was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandError {
    #[error("no fault `{name}` in this run (its faults: {known})")]
    Unknown { name: String, known: String },
    #[error("fault `{0}` is already applied")]
    AlreadyApplied(String),
    #[error("fault `{0}` is being injected: revert it once it is applied")]
    Injecting(String),
    #[error("fault `{0}` is not applied (inject it first)")]
    NotApplied(String),
    #[error("fault `{0}` is over for this run (a fault is injected once per run)")]
    Over(String),
    #[error("fault `{name}`: {what}")]
    Failed { name: String, what: String },
}

/// Every fault's hands, and the notes.
pub struct Hands {
    faults: BTreeMap<String, Hand>,
    notes: Mutex<Vec<Note>>,
}

/// How long a hand waits for its fault to get where it asked (an inject's confirm on a cloud
/// API can take minutes).
const WAIT: Duration = Duration::from_secs(600);

impl Hands {
    pub fn new<'a>(faults: impl IntoIterator<Item = &'a str>) -> Hands {
        Hands {
            faults: faults
                .into_iter()
                .map(|n| {
                    let hand = Hand {
                        inject: Notify::new(),
                        revert: Notify::new(),
                        phase: watch::channel(Phase::Waiting).0,
                        by: Mutex::new(ByHand::default()),
                    };
                    (n.to_string(), hand)
                })
                .collect(),
            notes: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn hand(&self, name: &str) -> Option<&Hand> {
        self.faults.get(name)
    }

    fn get(&self, name: &str) -> Result<&Hand, HandError> {
        self.faults.get(name).ok_or_else(|| HandError::Unknown {
            name: name.to_string(),
            known: self.faults.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Every fault and its phase, in name order.
    pub fn phases(&self) -> Vec<(String, Phase)> {
        self.faults
            .iter()
            .map(|(n, h)| (n.clone(), *h.phase.borrow()))
            .collect()
    }

    /// Inject `name` now, and wait until it is applied (or its inject failed).
    pub async fn inject(&self, name: &str) -> Result<(), HandError> {
        let h = self.get(name)?;
        let mut rx = h.phase.subscribe();
        match *rx.borrow_and_update() {
            Phase::Waiting => {}
            Phase::Injecting | Phase::Applied | Phase::Reverting => {
                return Err(HandError::AlreadyApplied(name.into()))
            }
            Phase::Over => return Err(HandError::Over(name.into())),
        }
        h.by.lock().unwrap_or_else(|p| p.into_inner()).injected = true;
        h.inject.notify_one();
        let reached = tokio::time::timeout(
            WAIT,
            rx.wait_for(|p| matches!(p, Phase::Applied | Phase::Reverting | Phase::Over)),
        )
        .await;
        match reached.ok().and_then(Result::ok).map(|p| *p) {
            Some(Phase::Applied) => Ok(()),
            Some(_) => Err(HandError::Failed {
                name: name.into(),
                what: "its inject failed or was not confirmed, and it was reverted (see the run's output and journal)".into(),
            }),
            None => Err(HandError::Failed {
                name: name.into(),
                what: format!("not applied within {WAIT:?}"),
            }),
        }
    }

    /// Revert `name` now, and wait until it is reverted.
    pub async fn revert(&self, name: &str) -> Result<(), HandError> {
        let h = self.get(name)?;
        let mut rx = h.phase.subscribe();
        match *rx.borrow_and_update() {
            Phase::Applied => {}
            Phase::Waiting => return Err(HandError::NotApplied(name.into())),
            Phase::Injecting => return Err(HandError::Injecting(name.into())),
            Phase::Reverting | Phase::Over => return Err(HandError::Over(name.into())),
        }
        h.by.lock().unwrap_or_else(|p| p.into_inner()).reverted = true;
        h.revert.notify_one();
        let over = tokio::time::timeout(WAIT, rx.wait_for(|p| *p == Phase::Over))
            .await
            .map(|r| r.map(|_| ()));
        match over {
            Ok(Ok(())) => Ok(()),
            _ => Err(HandError::Failed {
                name: name.into(),
                what: format!("not reverted within {WAIT:?}"),
            }),
        }
    }

    /// Write a note at `at_s` on the run's timeline.
    pub fn note(&self, at_s: f64, text: &str) -> Note {
        let n = Note {
            at_s,
            text: text.to_string(),
        };
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(n.clone());
        n
    }

    /// The notes so far, in time order.
    pub fn notes(&self) -> Vec<Note> {
        let mut v = self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        v
    }
}
