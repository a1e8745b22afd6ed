//! The statistics behind `chaos compare`'s noise floor: a normal quantile, the one-sided
//! two-proportion and Poisson-rate z statistics, distribution-free confidence intervals of a
//! quantile read off an HDR histogram by order statistics, and the exceedance test for a
//! maximum. Pure functions of counts and histograms: no I/O, no clock.

use hdrhistogram::Histogram;

/// Φ⁻¹(p), the standard normal quantile, for 0 < p < 1 (Acklam's rational approximation,
/// relative error below 1.2e-9: far finer than any confidence a user types).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        let q = (-2.0 * q.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else if p < LOW {
        tail(p)
    } else if p > 1.0 - LOW {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The one-sided two-proportion z statistic for "the new proportion `x2/n2` is higher than the
/// baseline's `x1/n1`", with the pooled variance. 0 when either run has no requests or the
/// pooled proportion is 0 or 1 (no spread: nothing can be told apart).
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 0.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let var = pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f);
    if var <= 0.0 {
        return 0.0;
    }
    (x2 as f64 / n2f - x1 as f64 / n1f) / var.sqrt()
}

/// The one-sided z statistic for "the new rate of events per request `x2/n2` is higher than
/// `x1/n1`", events counted as Poisson (retries per request: amplification − 1).
pub fn poisson_rate_z(x1: f64, n1: u64, x2: f64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 0.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2).max(0.0) / (n1f + n2f);
    let var = pooled * (1.0 / n1f + 1.0 / n2f);
    if var <= 0.0 {
        return 0.0;
    }
    (x2 / n2f - x1 / n1f) / var.sqrt()
}

/// A confidence interval of a quantile; `None` ends are unbounded (too few samples to bound
/// that side at the confidence asked).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl Interval {
    /// The interval moved with its point: `[lo, hi] * to / from` (an interval measured around
    /// `from` applied to a value reported as `to`).
    pub fn rescaled(self, from: f64, to: f64) -> Interval {
        if from <= 0.0 || (from - to).abs() <= f64::EPSILON * from.abs() {
            return self;
        }
        let k = to / from;
        Interval {
            lo: self.lo.map(|v| v * k),
            hi: self.hi.map(|v| v * k),
        }
    }
}

/// The ranks (1-based order statistics) of a distribution-free interval of the `q` quantile of
/// `n` samples: the number of samples at or below the true quantile is Binomial(n, q), so with
/// the normal approximation the interval runs from rank ⌊nq − z·√(nq(1−q))⌋ to
/// ⌈nq + z·√(nq(1−q))⌉ + 1. An end outside 1..=n is unbounded.
pub fn quantile_ranks(n: u64, q: f64, z: f64) -> (Option<u64>, Option<u64>) {
    let nf = n as f64;
    let centre = nf * q;
    let half = z * (nf * q * (1.0 - q)).sqrt();
    let lo = (centre - half).floor();
    let hi = (centre + half).ceil() + 1.0;
    let lo = (lo >= 1.0).then_some(lo as u64);
    let hi = (hi <= nf).then_some(hi as u64);
    (lo, hi)
}

/// The `k`-th smallest recorded value (1-based), as [`Histogram::value_at_quantile`] reports
/// values: the highest value equivalent to its bucket.
pub fn value_at_rank(h: &Histogram<u64>, k: u64) -> Option<u64> {
    let mut seen = 0u64;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        if seen >= k {
            return Some(h.highest_equivalent(v.value_iterated_to()));
        }
    }
    None
}

/// The two-sided interval of the `q` quantile of the samples in `h`, at normal quantile `z`.
pub fn quantile_interval(h: &Histogram<u64>, q: f64, z: f64) -> Interval {
    let (lo, hi) = quantile_ranks(h.len(), q, z);
    Interval {
        lo: lo.and_then(|k| value_at_rank(h, k)).map(|v| v as f64),
        hi: hi.and_then(|k| value_at_rank(h, k)).map(|v| v as f64),
    }
}

/// When only a quantile's value and its sample count are known: the interval it would have if
/// the tail were exponential. The tail fraction `t = 1 − q` is estimated to ±z·√(q·t/n), that
/// is ±z·√(q/(n·t)) relative to itself; an exponential tail's quantile is `ln(1/t)·μ`, so it
/// moves by that relative amount divided by `ln(1/t)`.
pub fn quantile_interval_from_count(value: f64, n: u64, q: f64, z: f64) -> Interval {
    let t = 1.0 - q;
    if n == 0 || t <= 0.0 || !value.is_finite() {
        return Interval { lo: None, hi: None };
    }
    let rel = z * (q / (n as f64 * t)).sqrt() / (1.0 / t).ln();
    Interval {
        lo: (rel < 1.0).then_some(value * (1.0 - rel)),
        // The same count of tail samples that bounds one side bounds the other.
        hi: (rel < 1.0).then_some(value * (1.0 + rel)),
    }
}

/// Samples above `value` (beyond its bucket) in `h`.
pub fn count_above(h: &Histogram<u64>, value: f64) -> u64 {
    if value < 0.0 {
        return h.len();
    }
    h.len() - h.count_between(0, value as u64)
}

/// The fewest new samples that must lie above every one of `n1` baseline samples before "the
/// new run's maximum is higher" holds at confidence `c`: for two runs of one distribution the
/// chance that the `k` largest of all `n1 + n2` samples all come from the new run is
/// C(n2, k) / C(n1 + n2, k). `None` when no k ≤ n2 gets below `1 − c`.
pub fn exceedances_needed(n1: u64, n2: u64, c: f64) -> Option<u64> {
    let mut p = 1.0;
    for k in 1..=n2.min(10_000) {
        p *= (n2 - k + 1) as f64 / (n1 + n2 - k + 1) as f64;
        if p <= 1.0 - c {
            return Some(k);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::metrics::hist::new_hist();
        for v in values {
            crate::metrics::hist::record(&mut h, v);
        }
        h
    }

    #[test]
    fn normal_quantiles_match_the_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_6),
            (0.95, 1.644_853_6),
            (0.975, 1.959_964_0),
            (0.99, 2.326_347_9),
            (0.995, 2.575_829_3),
            (0.999, 3.090_232_3),
            (0.01, -2.326_347_9),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-6,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    #[test]
    fn two_proportions() {
        // 28 and 42 errors of 2,600: well inside the noise.
        assert!(two_proportion_z(28, 2600, 42, 2600) < 2.0);
        // 2% -> 10% of 2,000: far outside it.
        assert!(two_proportion_z(40, 2000, 200, 2000) > 10.0);
        // Better is negative; nothing to tell apart is 0.
        assert!(two_proportion_z(42, 2600, 28, 2600) < 0.0);
        assert_eq!(two_proportion_z(0, 100, 0, 100), 0.0);
        assert_eq!(two_proportion_z(0, 0, 5, 100), 0.0);
    }

    #[test]
    fn quantile_intervals_narrow_with_the_sample_count() {
        let z = normal_quantile(0.9995);
        // Uniform 1..=n ms: the p99's interval is a band of ranks around 0.99·n.
        let few = hist((1..=150).map(|v| v * 1000));
        let many = hist((1..=15_000).map(|v| v * 10));
        let (f, m) = (
            quantile_interval(&few, 0.99, z),
            quantile_interval(&many, 0.99, z),
        );
        // 150 samples: too few to bound the p99 from above at 99.9%.
        assert_eq!(f.hi, None, "{f:?}");
        assert!(f.lo.is_some());
        let (lo, hi) = (m.lo.unwrap(), m.hi.unwrap());
        assert!(lo < 148_500.0 && hi > 148_500.0, "{m:?}");
        // ±3.29·√(15000·0.99·0.01) ≈ ±40 ranks of 10 µs each.
        assert!(hi - lo < 1_000.0 && hi - lo > 600.0, "{m:?}");
        assert_eq!(quantile_ranks(10, 0.5, 1.0), (Some(3), Some(8)));
        assert_eq!(quantile_ranks(3, 0.99, 3.0), (Some(2), None));
    }

    #[test]
    fn ranks_read_off_the_histogram() {
        let h = hist([5, 1, 3, 3, 9]);
        let got: Vec<Option<u64>> = (1..=6).map(|k| value_at_rank(&h, k)).collect();
        assert_eq!(got, [Some(1), Some(3), Some(3), Some(5), Some(9), None]);
        assert_eq!(count_above(&h, 3.0), 2);
        assert_eq!(count_above(&h, 9.0), 0);
    }

    #[test]
    fn a_maximum_needs_several_samples_above_the_old_one() {
        // Equal runs: the top k all from the new run has chance ~2^-k, so 7 at 99%.
        assert_eq!(exceedances_needed(10_000, 10_000, 0.99), Some(7));
        assert_eq!(exceedances_needed(10_000, 10_000, 0.999), Some(10));
        // A new run with few samples against a large baseline needs fewer.
        assert_eq!(exceedances_needed(10_000, 100, 0.99), Some(1));
        // Three samples cannot show anything at 99.9%.
        assert_eq!(exceedances_needed(3, 3, 0.999), None);
    }

    #[test]
    fn a_value_with_its_count_gets_an_exponential_tail_interval() {
        let z = normal_quantile(0.9995);
        let wide = quantile_interval_from_count(100.0, 200, 0.99, z);
        let narrow = quantile_interval_from_count(100.0, 200_000, 0.99, z);
        assert!(wide.hi.unwrap() - wide.lo.unwrap() > narrow.hi.unwrap() - narrow.lo.unwrap());
        assert_eq!(quantile_interval_from_count(100.0, 20, 0.99, z).lo, None);
        let i = Interval {
            lo: Some(9.0),
            hi: Some(11.0),
        };
        assert_eq!(
            i.rescaled(10.0, 30.0),
            Interval {
                lo: Some(27.0),
                hi: Some(33.0)
            }
        );
    }
}
