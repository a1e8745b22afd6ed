//! The open model's arrival schedule: when each request is *meant* to be sent.
//!
//! The rate curve is piecewise linear (ramps and holds). The n-th request (0-based) is due at
//! the time t where the cumulative expected count N(t) = ∫₀ᵗ rate equals n. Within a stage whose
//! rate goes linearly from r0 to r1 over T, N(t) = r0·t + (r1−r0)·t²/(2T), solved for t in the
//! cancellation-free form t = 2m / (r0 + √(r0² + 2m(r1−r0)/T)). This is pure arithmetic: no
//! clock, no I/O, so it is unit-tested exactly and benchmarked on its own. The engine turns these
//! offsets into sends, and latency is measured from them (coordinated omission corrected).

use std::time::Duration;

use crate::scenario::{Stage, StageKind};

/// One stage resolved to start/end rates and times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start: Duration,
    pub duration: Duration,
    pub from_rps: f64,
    pub to_rps: f64,
}

impl Segment {
    /// Expected number of arrivals in the whole segment.
    pub fn expected(&self) -> f64 {
        (self.from_rps + self.to_rps) / 2.0 * self.duration.as_secs_f64()
    }

    /// The scheduled rate at offset `t` from the run's start (clamped to the segment).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let d = self.duration.as_secs_f64();
        if d == 0.0 {
            return self.to_rps;
        }
        let x = (t.saturating_sub(self.start).as_secs_f64() / d).clamp(0.0, 1.0);
        self.from_rps + (self.to_rps - self.from_rps) * x
    }
}

/// Resolve stages into segments (a ramp starts from the previous stage's rate, 0 at first).
pub fn segments(stages: &[Stage]) -> Vec<Segment> {
    let mut out = Vec::with_capacity(stages.len());
    let (mut t, mut prev) = (Duration::ZERO, 0.0);
    for s in stages {
        let from = match s.kind {
            StageKind::Ramp => prev,
            StageKind::Hold => s.rps,
        };
        out.push(Segment {
            start: t,
            duration: s.duration,
            from_rps: from,
            to_rps: s.rps,
        });
        t += s.duration;
        prev = s.rps;
    }
    out
}

/// The scheduled rate at offset `t` (0 after the end).
pub fn rate_at(segs: &[Segment], t: Duration) -> f64 {
    segs.iter()
        .find(|s| t >= s.start && t < s.start + s.duration)
        .map_or(0.0, |s| s.rate_at(t))
}

/// Total expected arrivals over the whole schedule (the count the schedule will produce,
/// rounded up).
pub fn expected_total(segs: &[Segment]) -> f64 {
    segs.iter().map(Segment::expected).sum()
}

/// Iterator over intended send offsets, in order.
#[derive(Debug, Clone)]
pub struct Schedule {
    segs: Vec<Segment>,
    /// Current segment.
    k: usize,
    /// Expected arrivals before segment k.
    before: f64,
    /// Index of the next request.
    n: u64,
}

impl Schedule {
    pub fn new(stages: &[Stage]) -> Schedule {
        Schedule::from_segments(segments(stages))
    }

    pub fn from_segments(segs: Vec<Segment>) -> Schedule {
        Schedule {
            segs,
            k: 0,
            before: 0.0,
            n: 0,
        }
    }

    /// Offset within `seg` at which `m` arrivals are expected (∞ if never).
    fn solve(seg: &Segment, m: f64) -> f64 {
        if m <= 0.0 {
            return 0.0;
        }
        let t_len = seg.duration.as_secs_f64();
        let r0 = seg.from_rps;
        let slope = if t_len > 0.0 {
            (seg.to_rps - r0) / t_len
        } else {
            0.0
        };
        let disc = (r0 * r0 + 2.0 * m * slope).max(0.0);
        let denom = r0 + disc.sqrt();
        if denom <= 0.0 {
            f64::INFINITY
        } else {
            2.0 * m / denom
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let seg = *self.segs.get(self.k)?;
            let total = seg.expected();
            let m = (self.n as f64 - self.before).max(0.0);
            if m < total {
                let t = Self::solve(&seg, m);
                if t.is_finite() && t < seg.duration.as_secs_f64() {
                    self.n += 1;
                    return Some(seg.start + Duration::from_secs_f64(t));
                }
            }
            self.before += total;
            self.k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(kind: StageKind, rps: f64, secs: f64) -> Stage {
        Stage {
            kind,
            rps,
            rate_text: String::new(),
            duration: Duration::from_secs_f64(secs),
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced_and_exact() {
        let v: Vec<_> = Schedule::new(&[stage(StageKind::Hold, 100.0, 2.0)]).collect();
        assert_eq!(v.len(), 200);
        assert_eq!(v[0], Duration::ZERO);
        assert_eq!(v[1], Duration::from_millis(10));
        assert_eq!(v[199], Duration::from_millis(1990));
    }

    #[test]
    fn ramp_from_zero_has_the_area_under_the_curve() {
        // 0 -> 100 rps over 10 s: 500 requests, denser at the end.
        let v: Vec<_> = Schedule::new(&[stage(StageKind::Ramp, 100.0, 10.0)]).collect();
        assert_eq!(v.len(), 500);
        let first_half = v.iter().filter(|t| t.as_secs_f64() < 5.0).count();
        assert_eq!(
            first_half, 125,
            "quarter of the area lies in the first half"
        );
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn stages_chain_and_ramps_start_from_the_previous_rate() {
        let stages = [
            stage(StageKind::Hold, 10.0, 1.0),
            stage(StageKind::Ramp, 30.0, 1.0), // 10 -> 30: 20 expected
            stage(StageKind::Hold, 0.0, 5.0),  // nothing
            stage(StageKind::Hold, 4.0, 1.0),
        ];
        let v: Vec<_> = Schedule::new(&stages).collect();
        assert_eq!(v.len(), 10 + 20 + 4);
        assert!(v[10] >= Duration::from_secs(1) && v[10] < Duration::from_secs(2));
        assert!(v[30] >= Duration::from_secs(7));
        let segs = segments(&stages);
        assert_eq!(rate_at(&segs, Duration::from_millis(1500)), 20.0);
        assert_eq!(expected_total(&segs), 34.0);
    }

    #[test]
    fn ramp_down_terminates() {
        let stages = [
            stage(StageKind::Hold, 50.0, 1.0),
            stage(StageKind::Ramp, 0.0, 2.0),
        ];
        let v: Vec<_> = Schedule::new(&stages).collect();
        assert_eq!(v.len(), 50 + 50);
        assert!(v.last().is_some_and(|t| *t < Duration::from_secs(3)));
    }

    #[test]
    fn ramp_offsets_solve_the_cumulative_count_exactly() {
        // 0 -> 100 rps over 10 s: N(t) = 5t², so the n-th arrival is at √(n/5) s.
        let v: Vec<_> = Schedule::new(&[stage(StageKind::Ramp, 100.0, 10.0)]).collect();
        for (n, secs) in [(0, 0.0), (5, 1.0), (20, 2.0), (125, 5.0), (320, 8.0)] {
            let got = v[n].as_secs_f64();
            assert!(
                (got - secs).abs() < 1e-9,
                "arrival {n} at {got}s, want {secs}s"
            );
        }
        // A hold after the ramp starts on its stage's start and is evenly spaced from there.
        let stages = [
            stage(StageKind::Ramp, 100.0, 10.0),
            stage(StageKind::Hold, 50.0, 1.0),
        ];
        let v: Vec<_> = Schedule::new(&stages).collect();
        assert_eq!(v.len(), 550);
        assert_eq!(v[500], Duration::from_secs(10));
        assert_eq!(v[501], Duration::from_millis(10_020));
        assert_eq!(v[549], Duration::from_millis(10_980));
    }
}
