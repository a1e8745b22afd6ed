//! Client retry behaviour under test: exponential backoff with jitter, and a retry budget.
//!
//! The budget follows Finagle's and gRPC's idea: retries may be at most `budget × requests`
//! over a sliding window, so a struggling service is not buried under retries. The window is a
//! ring of one-second (or window/10) buckets of atomic counters: every logical request deposits
//! into its bucket, every retry asks first. No lock is taken; a bucket being recycled by two
//! threads at once can lose a count or two at the boundary, which biases the budget by far less
//! than one bucket's traffic — acceptable for a client-behaviour model, and documented here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rand::Rng;

use crate::metrics::Outcome;
use crate::scenario::{Jitter, RetryPolicy};

/// Whether an attempt that ended so is retried under `policy`. An expected status is a
/// success, never retried; a response `expect` rejects is retried like any other when its
/// status is in `retry.on`.
pub fn retryable(policy: &RetryPolicy, outcome: Outcome, status: u16) -> bool {
    match outcome {
        Outcome::Ok | Outcome::NotSent => false,
        Outcome::Http4xx | Outcome::Http5xx | Outcome::Unexpected => {
            policy.on.statuses.contains(&status)
        }
        Outcome::Timeout => policy.on.timeout,
        Outcome::ConnectError => policy.on.connect,
        Outcome::Reset => policy.on.reset,
    }
}

/// Delay before retry number `retry` (1 = the first retry).
pub fn backoff(policy: &RetryPolicy, retry: u32, rng: &mut impl Rng) -> Duration {
    let exp = 2f64.powi(retry.saturating_sub(1).min(30) as i32);
    let base = policy
        .backoff
        .mul_f64(exp)
        .min(policy.max_backoff)
        .as_secs_f64();
    let secs = match policy.jitter {
        Jitter::None => base,
        Jitter::Full => rng.random_range(0.0..=base),
        Jitter::Equal => base / 2.0 + rng.random_range(0.0..=base / 2.0),
    };
    Duration::from_secs_f64(secs)
}

const BUCKETS: usize = 10;

struct Bucket {
    epoch: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// A sliding-window retry budget shared by all requests of a run.
pub struct RetryBudget {
    ratio: Option<f64>,
    bucket_ms: u64,
    buckets: [Bucket; BUCKETS],
}

impl RetryBudget {
    /// `ratio = None` means unlimited.
    pub fn new(ratio: Option<f64>, window: Duration) -> RetryBudget {
        RetryBudget {
            ratio,
            bucket_ms: (window.as_millis() as u64 / BUCKETS as u64).max(1),
            buckets: std::array::from_fn(|_| Bucket {
                epoch: AtomicU64::new(u64::MAX),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        }
    }

    fn bucket(&self, now: Duration) -> &Bucket {
        let epoch = now.as_millis() as u64 / self.bucket_ms;
        let b = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let seen = b.epoch.load(Relaxed);
        if seen != epoch
            && b.epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            b.requests.store(0, Relaxed);
            b.retries.store(0, Relaxed);
        }
        b
    }

    /// Count a new logical request at `now` (time since the run started).
    pub fn deposit(&self, now: Duration) {
        if self.ratio.is_some() {
            self.bucket(now).requests.fetch_add(1, Relaxed);
        }
    }

    /// May one more retry be made at `now`? If yes, it is counted.
    pub fn try_withdraw(&self, now: Duration) -> bool {
        let Some(ratio) = self.ratio else {
            return true;
        };
        let epoch = now.as_millis() as u64 / self.bucket_ms;
        let (mut reqs, mut retries) = (0u64, 0u64);
        for b in &self.buckets {
            let e = b.epoch.load(Relaxed);
            if e != u64::MAX && e <= epoch && epoch - e < BUCKETS as u64 {
                reqs += b.requests.load(Relaxed);
                retries += b.retries.load(Relaxed);
            }
        }
        if (retries + 1) as f64 <= ratio * reqs as f64 {
            self.bucket(now).retries.fetch_add(1, Relaxed);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::RetryOn;
    use rand::SeedableRng;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            jitter,
            on: RetryOn::default(),
            budget: None,
            budget_window: Duration::from_secs(10),
        }
    }

    #[test]
    fn exponential_capped_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let p = policy(Jitter::None);
        let d: Vec<_> = (1..=5)
            .map(|k| backoff(&p, k, &mut rng).as_millis())
            .collect();
        assert_eq!(d, vec![50, 100, 200, 300, 300]);
        let p = policy(Jitter::Full);
        for k in 1..=5 {
            let cap = backoff(&policy(Jitter::None), k, &mut rng);
            let x = backoff(&p, k, &mut rng);
            assert!(x <= cap);
        }
        let p = policy(Jitter::Equal);
        for k in 1..=5 {
            let cap = backoff(&policy(Jitter::None), k, &mut rng);
            let x = backoff(&p, k, &mut rng);
            assert!(x >= cap / 2 && x <= cap, "{x:?} vs {cap:?}");
        }
    }

    #[test]
    fn budget_allows_ratio_of_requests_within_the_window() {
        let b = RetryBudget::new(Some(0.2), Duration::from_secs(10));
        let t = Duration::from_secs(3);
        for _ in 0..100 {
            b.deposit(t);
        }
        let granted = (0..50).filter(|_| b.try_withdraw(t)).count();
        assert_eq!(granted, 20);
        // Eleven seconds later the window has slid past those requests.
        let later = Duration::from_secs(14);
        b.deposit(later);
        assert!(!b.try_withdraw(later));
        for _ in 0..10 {
            b.deposit(later);
        }
        assert!(b.try_withdraw(later));
    }

    #[test]
    fn no_budget_is_unlimited() {
        let b = RetryBudget::new(None, Duration::from_secs(10));
        assert!((0..1000).all(|_| b.try_withdraw(Duration::ZERO)));
    }
}
