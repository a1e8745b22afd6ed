//! Abort conditions at run time (`[abort] when = ["errors > 50% for 30s"]`): judged at every
//! tick of the live view over a sliding window, as an SLO would be judged; the first that holds
//! triggers the run's shutdown (faults reverted, exit 3). Never reads the clock itself: the
//! ticks carry their time, so the tests feed ticks.

use std::sync::Arc;
use std::time::Duration;

use crate::load::{self, Progress};
use crate::scenario;
use crate::shutdown::Shutdown;
use crate::slo;

/// Watches the live view for `[abort]` conditions and stops the run when one holds for its
/// whole `for` stretch; passes every update on to the real progress view.
/// Abort conditions, judged at every progress tick over a sliding window: `errors > 50% for
/// 10s` fires when the responses of the last 10 s (a whole window of them: not before 10 s of
/// run) have an error rate over 50%, with enough of them to judge it (as an SLO would need).
pub struct AbortWatch<'a> {
    conds: &'a [scenario::AbortCondition],
    inner: &'a mut dyn Progress,
    shutdown: Arc<Shutdown>,
    /// The last ticks, (elapsed at the tick, its statistics), as long as the longest window.
    ticks: std::collections::VecDeque<(Duration, crate::metrics::Stats)>,
    first_tick: Option<Duration>,
    pub fired: Option<(String, f64)>,
}

impl<'a> AbortWatch<'a> {
    pub fn new(
        conds: &'a [scenario::AbortCondition],
        inner: &'a mut dyn Progress,
        shutdown: Arc<Shutdown>,
    ) -> Self {
        AbortWatch {
            ticks: std::collections::VecDeque::new(),
            first_tick: None,
            conds,
            inner,
            shutdown,
            fired: None,
        }
    }
}

impl Progress for AbortWatch<'_> {
    fn update(&mut self, s: &load::ProgressSnapshot) {
        self.inner.update(s);
        if self.fired.is_some() || self.conds.is_empty() {
            return;
        }
        // A tick covers the time since the one before it: the first starts at 0.
        let started = *self.first_tick.get_or_insert(Duration::ZERO);
        self.ticks.push_back((s.elapsed, s.live.clone()));
        let longest = self
            .conds
            .iter()
            .map(|c| c.sustain)
            .max()
            .unwrap_or_default();
        while self
            .ticks
            .front()
            .is_some_and(|(t, _)| s.elapsed.saturating_sub(*t) > longest)
        {
            self.ticks.pop_front();
        }
        for c in self.conds {
            if s.elapsed.saturating_sub(started) < c.sustain {
                continue; // not a whole window yet
            }
            // Ticks ending within the last `sustain`, each covering the tick interval before it.
            let mut merged = crate::metrics::Stats::default();
            // (`for 0s`: the current tick alone.)
            for (t, st) in &self.ticks {
                if s.elapsed.saturating_sub(*t) < c.sustain || *t == s.elapsed {
                    merged.add(st);
                }
            }
            let as_slo = scenario::Objective {
                text: c.text.clone(),
                window: scenario::Window::Whole,
                trim: None,
                request: None,
                metric: c.metric,
                op: c.op,
                bound: c.bound,
            };
            // Judged as an SLO would be (value, enough samples); the abort fires when the
            // expression holds.
            let judged = slo::judge(&as_slo, &merged);
            let holds = judged.status != slo::Status::InsufficientData
                && judged.value.is_some_and(|v| c.op.holds(v, c.bound));
            if holds {
                self.fired = Some((c.text.clone(), s.elapsed.as_secs_f64()));
                self.shutdown.trigger();
                return;
            }
        }
    }

    fn finish(&mut self, s: &load::ProgressSnapshot) {
        self.inner.finish(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Stats;
    use crate::metrics::{Outcome, Sample};

    /// A tick of `n` responses, `bad` of them 5xx, each taking `ms`.
    fn tick(n: u64, bad: u64, ms: u64) -> Stats {
        let mut s = Stats::default();
        for i in 0..n {
            s.record(&Sample {
                request: 0,
                intended: Duration::ZERO,
                latency_us: ms * 1000,
                service_us: ms * 1000,
                lateness_us: 0,
                outcome: if i < bad {
                    Outcome::Http5xx
                } else {
                    Outcome::Ok
                },
                attempts: 1,
                exhausted: false,
                status: 0,
                tag: 0,
            });
        }
        s
    }

    fn snap(at_s: u64, live: Stats) -> load::ProgressSnapshot {
        load::ProgressSnapshot {
            elapsed: Duration::from_secs(at_s),
            total: Duration::from_secs(60),
            target_rps: 100.0,
            users: None,
            achieved_rps: 100.0,
            p99_us: None,
            error_rate: live.error_rate(),
            in_flight: 0,
            completed: live.requests(),
            live,
        }
    }

    fn condition(text: &str) -> scenario::AbortCondition {
        let (expr, sustain) = text.rsplit_once(" for ").unwrap();
        let (metric, op, bound) = scenario::values::slo_expr(expr).unwrap();
        scenario::AbortCondition {
            text: text.into(),
            metric,
            op,
            bound,
            sustain: scenario::values::duration(sustain).unwrap(),
        }
    }

    /// Feed one tick a second; the second at which the watch fired.
    fn fires_at(cond: &str, ticks: Vec<Stats>) -> Option<f64> {
        let conds = [condition(cond)];
        let mut quiet = load::engine::NoProgress;
        let mut w = AbortWatch::new(&conds, &mut quiet, Arc::new(Shutdown::new()));
        for (i, t) in ticks.into_iter().enumerate() {
            w.update(&snap(i as u64 + 1, t));
        }
        w.fired.map(|f| f.1)
    }

    #[test]
    fn abort_conditions_judge_a_sliding_window_of_ticks() {
        // Error rate over the last 2 s: 1 s of 100% errors after a good second is 50%, not
        // over 50%; a second bad second makes the window 100%.
        let ticks = || vec![tick(100, 0, 10), tick(100, 100, 10), tick(100, 100, 10)];
        assert_eq!(fires_at("errors > 50% for 2s", ticks()), Some(3.0));
        // Never before a whole window: a first bad second does not fire a 2 s condition.
        assert_eq!(
            fires_at("errors > 50% for 2s", vec![tick(100, 100, 10)]),
            None
        );
        // A short burst inside a longer window is diluted: 1 bad second in 5 is 20%.
        let mut five = vec![tick(100, 0, 10); 5];
        five[2] = tick(100, 100, 10);
        assert_eq!(fires_at("errors > 50% for 5s", five), None);
        // Any live metric: p95 over the window (half of its responses slow: p95 is slow at
        // once), and amplification.
        let slow = || vec![tick(100, 0, 10), tick(100, 0, 3000), tick(100, 0, 3000)];
        assert_eq!(fires_at("p95 > 2s for 2s", slow()), Some(2.0));
        assert_eq!(fires_at("p50 > 2s for 2s", slow()), Some(3.0));
        assert_eq!(fires_at("amplification > 1.5 for 2s", slow()), None);
        // `for 0s`: the current tick alone decides.
        assert_eq!(fires_at("errors > 50% for 0s", ticks()), Some(2.0));
        // Too few responses to judge a p99 (100 needed): no abort on 10 slow ones.
        let few = vec![tick(10, 0, 9000), tick(10, 0, 9000)];
        assert_eq!(fires_at("p99 > 5s for 2s", few), None);
    }
}
