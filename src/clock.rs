//! The run's one clock: a monotonic epoch and the wall-clock time read at that same moment (or,
//! for a shard, the agreed `--start-at` instant and where this machine's monotonic clock puts
//! it).
//!
//! Every part of a run measures time as an *offset* from this epoch: the open-model schedule
//! (intended send times), the fault timeline (when each fault is injected and reverted), the
//! recorder (which interval a sample belongs to, when it ticks) and the reports (which turn an
//! offset back into UTC with [`Clock::wall_at`]). One `Clock` is created per run and copied into
//! each of them, so "the fault at 20 s" and "the requests due at 20 s" are the same moment by
//! construction, not by two `Instant::now()` calls that happened to be close.
//!
//! The epoch is a `tokio::time::Instant`, so everything that waits on tokio's timer runs in
//! paused time in tests (`#[tokio::test(start_paused = true)]`) and is deterministic.
//!
//! The one exception is the open-model scheduler: it runs on a blocking OS thread and sleeps
//! with `std::thread::sleep`, because tokio's timer wheel has 1 ms granularity and every send
//! would leave up to 1 ms late (see `load::engine`). It, and the per-request timestamps on the
//! hot path, use [`Clock::std_epoch`]: the same epoch as a `std::time::Instant`. It is the tokio
//! epoch converted (`into_std`), not a second `Instant::now()`, so in real time the two are the
//! same instant exactly; reading `std::time::Instant::now()` on the hot path stays a plain vDSO
//! call (tokio's `Instant::now()` consults the runtime's test clock when `test-util` is on).
//! In paused time the std epoch is tokio's frozen instant, so std-clock code (the scheduler
//! thread) is not meant to run in paused-time tests.
//!
//! This module only reads clocks; it never sleeps, and it never decides *when* anything happens.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The run's epoch, monotonic and wall. `Copy`: hand it to every part of the run by value.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
    std_epoch: std::time::Instant,
    wall: SystemTime,
}

impl Clock {
    /// A clock whose epoch is now (tokio's now: paused in paused-time tests).
    pub fn start() -> Clock {
        let epoch = Instant::now();
        Clock {
            epoch,
            std_epoch: epoch.into_std(),
            // Read right after the monotonic epoch: the wall clock has no monotonic link, so
            // this is the closest "same moment" there is.
            wall: SystemTime::now(),
        }
    }

    /// A clock whose epoch is the wall-clock instant `wall` (a shard's `--start-at`), on the
    /// monotonic clock as this machine maps it now: in the future, the run waits for it
    /// (`sleep_until(clock.epoch())`); every shard's offsets then count from the same agreed
    /// instant, as far as their wall clocks agree (NTP).
    pub fn starting_at(wall: SystemTime) -> Clock {
        let now = Instant::now();
        let now_wall = SystemTime::now();
        let epoch = match wall.duration_since(now_wall) {
            Ok(ahead) => now + ahead,
            Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
        };
        Clock {
            epoch,
            std_epoch: epoch.into_std(),
            wall,
        }
    }

    /// The epoch (offset 0) on tokio's clock: what timers (`sleep_until`) and the fault
    /// timeline use.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The same epoch as a `std::time::Instant`, for code on an OS thread (the scheduler) and
    /// for hot-path timestamps (see the module doc).
    pub fn std_epoch(&self) -> std::time::Instant {
        self.std_epoch
    }

    /// The wall-clock time at the epoch (report.json's `started_at`).
    pub fn started_at(&self) -> SystemTime {
        self.wall
    }

    /// Time since the epoch (0 before it).
    pub fn elapsed(&self) -> Duration {
        self.offset(Instant::now())
    }

    /// The offset of `at` from the epoch (0 for an instant before it).
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// The instant at `offset` from the epoch (for `sleep_until`).
    pub fn at(&self, offset: Duration) -> Instant {
        self.epoch + offset
    }

    /// The wall-clock time at `offset` from the epoch (for reports: a fault's UTC time).
    pub fn wall_at(&self, offset: Duration) -> SystemTime {
        self.wall + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn offsets_follow_tokio_time_and_saturate_before_the_epoch() {
        let before = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        let c = Clock::start();
        assert_eq!(c.elapsed(), Duration::ZERO);
        tokio::time::advance(Duration::from_millis(2500)).await;
        assert_eq!(c.elapsed(), Duration::from_millis(2500));
        assert_eq!(c.offset(Instant::now()), Duration::from_millis(2500));
        assert_eq!(c.offset(before), Duration::ZERO, "before the epoch");
        assert_eq!(
            c.at(Duration::from_secs(3)),
            c.epoch() + Duration::from_secs(3)
        );
        assert_eq!(
            c.offset(c.at(Duration::from_millis(7))),
            Duration::from_millis(7)
        );
        // A timer set through the clock fires at its offset exactly.
        tokio::time::sleep_until(c.at(Duration::from_secs(4))).await;
        assert_eq!(c.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn the_std_epoch_is_the_same_instant() {
        let c = Clock::start();
        assert_eq!(c.std_epoch(), c.epoch().into_std());
        assert_eq!(
            Instant::from_std(c.std_epoch() + Duration::from_millis(3)),
            c.at(Duration::from_millis(3))
        );
    }

    #[test]
    fn wall_time_is_the_epoch_plus_the_offset() {
        // Outside a runtime tokio's clock is the real one.
        let c = Clock::start();
        let now = SystemTime::now();
        // Taken at the same moment as the epoch: not after the wall time read just now, and
        // not long before it.
        assert!(c.started_at() <= now);
        assert!(now.duration_since(c.started_at()).unwrap() < Duration::from_secs(5));
        assert_eq!(c.wall_at(Duration::ZERO), c.started_at());
        assert_eq!(
            c.wall_at(Duration::from_millis(1500))
                .duration_since(c.started_at())
                .ok(),
            Some(Duration::from_millis(1500))
        );
    }
}
