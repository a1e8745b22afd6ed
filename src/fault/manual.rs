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

/// What the timeline has done with one fault so far (a watch keeps only the latest value, so
/// outcomes are kept in it once known, whatever the phase moves on to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    phase: Phase,
    /// A person asked for its injection / revert (at most once each).
    inject_asked: bool,
    revert_asked: bool,
    /// Which steps were taken by hand (the hand won over the schedule).
    by: ByHand,
    /// Whether its inject took effect (applied and confirmed), once known.
    applied: Option<bool>,
    /// Whether its revert succeeded, once tried.
    reverted: Option<bool>,
    /// Reverted because the run was stopping (Ctrl-C, an abort, the end of the load).
    stopping: bool,
}

/// One fault's hands.
pub struct Hand {
    pub(super) inject: Notify,
    pub(super) revert: Notify,
    progress: watch::Sender<Progress>,
}

impl Hand {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(f);
    }

    /// The timeline begins the inject; `by_hand`: a hand, not the schedule, started it.
    pub(super) fn injecting(&self, by_hand: bool) {
        self.update(|p| {
            p.phase = Phase::Injecting;
            p.by.injected = by_hand;
        });
    }

    /// The inject took effect (applied and confirmed) or not.
    pub(super) fn applied(&self, ok: bool) {
        self.update(|p| {
            p.applied = Some(ok);
            if ok {
                p.phase = Phase::Applied;
            }
        });
    }

    /// The timeline begins the revert; `by_hand`: a hand started it; `stopping`: the run is
    /// stopping.
    pub(super) fn reverting(&self, by_hand: bool, stopping: bool) {
        self.update(|p| {
            p.phase = Phase::Reverting;
            p.by.reverted = by_hand;
            p.stopping = stopping;
        });
    }

    /// The revert ended (`Some(ok)`), or there was none to make.
    pub(super) fn reverted(&self, ok: Option<bool>) {
        self.update(|p| p.reverted = ok);
    }

    /// The fault is done for this run.
    pub(super) fn over(&self) {
        self.update(|p| p.phase = Phase::Over);
    }
}

/// Who took the step a hand asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Hand,
    /// Its schedule came first.
    Schedule,
    /// The run was stopping (Ctrl-C, an abort, the end of the load).
    Stopping,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Hand => "hand",
            By::Schedule => "schedule",
            By::Stopping => "stopping",
        }
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
    #[error("fault `{0}` is already being {1} by hand")]
    Asked(String, &'static str),
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
                        progress: watch::channel(Progress {
                            phase: Phase::Waiting,
                            inject_asked: false,
                            revert_asked: false,
                            by: ByHand::default(),
                            applied: None,
                            reverted: None,
                            stopping: false,
                        })
                        .0,
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
            .map(|(n, h)| (n.clone(), h.progress.borrow().phase))
            .collect()
    }

    /// Inject `name` now, and wait until its inject took effect: by this hand, or by its
    /// schedule if that came first (injected all the same).
    pub async fn inject(&self, name: &str) -> Result<By, HandError> {
        let h = self.get(name)?;
        // Asked at most once, and only while it waits: checked and marked in one step.
        let mut refused = None;
        h.progress.send_if_modified(|p| {
            refused = match p.phase {
                Phase::Waiting if !p.inject_asked => None,
                Phase::Waiting => Some(HandError::Asked(name.into(), "injected")),
                Phase::Injecting | Phase::Applied | Phase::Reverting => {
                    Some(HandError::AlreadyApplied(name.into()))
                }
                Phase::Over => Some(HandError::Over(name.into())),
            };
            p.inject_asked |= refused.is_none();
            refused.is_none()
        });
        if let Some(e) = refused {
            return Err(e);
        }
        h.inject.notify_one();
        let mut rx = h.progress.subscribe();
        let done = tokio::time::timeout(
            WAIT,
            rx.wait_for(|p| p.applied.is_some() || p.phase == Phase::Over),
        )
        .await
        .map(|r| r.map(|p| *p));
        match done {
            Ok(Ok(p)) if p.applied == Some(true) => Ok(if p.by.injected {
                By::Hand
            } else {
                By::Schedule
            }),
            Ok(Ok(p)) if p.applied == Some(false) => Err(HandError::Failed {
                name: name.into(),
                what: match p.reverted {
                    Some(true) => "its inject failed or its effect never showed, and it was reverted (see the run's output and journal)",
                    Some(false) => "its inject failed or its effect never showed, and its revert failed too: it may still be applied (`chaos rollback <run-dir>` retries it)",
                    None => "its inject failed before anything was applied (see the run's output)",
                }
                .into(),
            }),
            Ok(Ok(_)) => Err(HandError::Over(name.into())),
            _ => Err(HandError::Failed {
                name: name.into(),
                what: format!("not applied within {WAIT:?}"),
            }),
        }
    }

    /// Revert `name` now, and wait until it is reverted: by this hand, or by what came first
    /// (its schedule, the run stopping).
    pub async fn revert(&self, name: &str) -> Result<By, HandError> {
        let h = self.get(name)?;
        let mut refused = None;
        h.progress.send_if_modified(|p| {
            refused = match p.phase {
                Phase::Applied if !p.revert_asked => None,
                Phase::Applied => Some(HandError::Asked(name.into(), "reverted")),
                Phase::Waiting => Some(HandError::NotApplied(name.into())),
                Phase::Injecting if p.applied == Some(false) => Some(HandError::Over(name.into())),
                Phase::Injecting => Some(HandError::Injecting(name.into())),
                Phase::Reverting | Phase::Over => Some(HandError::Over(name.into())),
            };
            p.revert_asked |= refused.is_none();
            refused.is_none()
        });
        if let Some(e) = refused {
            return Err(e);
        }
        h.revert.notify_one();
        let mut rx = h.progress.subscribe();
        let done = tokio::time::timeout(
            WAIT,
            rx.wait_for(|p| p.reverted.is_some() || p.phase == Phase::Over),
        )
        .await
        .map(|r| r.map(|p| *p));
        match done {
            Ok(Ok(p)) if p.reverted == Some(true) => Ok(if p.by.reverted {
                By::Hand
            } else if p.stopping {
                By::Stopping
            } else {
                By::Schedule
            }),
            Ok(Ok(p)) if p.reverted == Some(false) => Err(HandError::Failed {
                name: name.into(),
                what: "its revert failed: it is still applied (the run will say so; `chaos rollback <run-dir>` retries it)".into(),
            }),
            Ok(Ok(_)) => Err(HandError::Over(name.into())),
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
