//! The live view's contract: what a moment of the run looks like ([`ProgressSnapshot`]) and who
//! receives it ([`Progress`]: the terminal view, the abort watch).
//!
//! Snapshots are made from the recorder's ticks (`metrics::recorder::Tick`) plus the engine's
//! in-flight gauge: what abort conditions judge is what the recorder recorded. A `Progress`
//! implementation only observes; it never sleeps or blocks the run (it is called from the loop
//! that reads the ticks).

use std::time::Duration;

use crate::metrics::Stats;

/// A moment of the run, for the live view.
#[derive(Debug, Clone, Default)]
pub struct ProgressSnapshot {
    /// When the tick was taken, as an offset from the run clock's epoch.
    pub elapsed: Duration,
    pub total: Duration,
    /// Scheduled rate now (req/s).
    pub target_rps: f64,
    /// Users the plan has running now (`[users]`; `None` without).
    pub users: Option<usize>,
    /// Responses per second over the last tick.
    pub achieved_rps: f64,
    /// p99 latency of the responses in the last tick (µs).
    pub p99_us: Option<u64>,
    pub error_rate: f64,
    pub in_flight: u64,
    pub completed: u64,
    /// Everything measured over the last tick (responses that completed in it): what abort
    /// conditions judge, over a sliding window of ticks.
    pub live: Stats,
}

pub trait Progress: Send {
    fn update(&mut self, s: &ProgressSnapshot);
    fn finish(&mut self, s: &ProgressSnapshot);
}

/// A progress sink that shows nothing (`--quiet`, tests).
pub struct NoProgress;
impl Progress for NoProgress {
    fn update(&mut self, _: &ProgressSnapshot) {}
    fn finish(&mut self, _: &ProgressSnapshot) {}
}
