//! The validation-failure spike detector: is a window's failure rate higher
//! than its own trailing baseline, by more than chance explains?
//!
//! The test is a one-sided exact binomial test: with `n` validations in the
//! window and the baseline rate `p0`, how likely are `k` or more failures?
//! It fires only when all of these hold:
//! - the window has at least `min_samples` validations (low volume pages nobody);
//! - the tail probability is below `alpha` (chance is an unlikely explanation);
//! - the window rate is at least `min_ratio` × the baseline rate and at least
//!   `min_increase` above it (a statistically real but tiny drift is not an
//!   incident at high volume);
//!
//! or, when a `ceiling` is set, the window rate exceeds it (with the same
//! minimum sample), whatever the baseline.
//!
//! The baseline is smoothed with a weak prior (`PRIOR_CALLS` calls at
//! `PRIOR_RATE`), so a series with no failures yet does not make every first
//! failure significant. Pure functions; no IO.

use serde::Serialize;

/// Pseudo-observations added to every baseline.
pub const PRIOR_CALLS: f64 = 50.0;
pub const PRIOR_RATE: f64 = 0.02;

/// Pass/fail counts of one series over one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub failed: u64,
}

impl Counts {
    pub fn rate(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.failed as f64 / self.total as f64
        }
    }
}

/// Detector parameters (from the rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeParams {
    pub min_samples: u64,
    pub alpha: f64,
    pub min_ratio: f64,
    pub min_increase: f64,
    pub ceiling: Option<f64>,
}

impl Default for SpikeParams {
    fn default() -> Self {
        Self {
            min_samples: 30,
            alpha: 1e-4,
            min_ratio: 2.0,
            min_increase: 0.03,
            ceiling: None,
        }
    }
}

/// What the detector concluded, with the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpikeVerdict {
    pub firing: bool,
    pub window_rate: f64,
    pub baseline_rate: f64,
    pub p_value: f64,
    pub window_total: u64,
    pub window_failed: u64,
    /// The ceiling was what fired.
    pub over_ceiling: bool,
}

pub fn spike(window: Counts, baseline: Counts, p: &SpikeParams) -> SpikeVerdict {
    let p0 =
        (baseline.failed as f64 + PRIOR_CALLS * PRIOR_RATE) / (baseline.total as f64 + PRIOR_CALLS);
    let rate = window.rate();
    let enough = window.total >= p.min_samples.max(1);
    let p_value = binomial_tail(window.total, window.failed, p0);
    let significant =
        enough && p_value < p.alpha && rate >= p0 * p.min_ratio && rate - p0 >= p.min_increase;
    let over_ceiling = enough && p.ceiling.is_some_and(|c| rate > c);
    SpikeVerdict {
        firing: significant || over_ceiling,
        window_rate: rate,
        baseline_rate: p0,
        p_value,
        window_total: window.total,
        window_failed: window.failed,
        over_ceiling: over_ceiling && !significant,
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p), computed in log space (exact, stable for
/// n in the millions because terms are summed from the mode outward).
pub fn binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let ln_pmf = |i: u64| ln_choose(n, i) + i as f64 * ln_p + (n - i) as f64 * ln_q;
    // Sum terms i = k..=n, starting at the largest; stop when they vanish.
    let start = k.max(((n as f64) * p).floor() as u64).min(n);
    let peak = ln_pmf(start);
    let mut sum = 0.0;
    let mut i = start;
    loop {
        let t = (ln_pmf(i) - peak).exp();
        sum += t;
        if t < 1e-17 * sum || i == n {
            break;
        }
        i += 1;
    }
    if start > k {
        let mut i = start - 1;
        loop {
            let t = (ln_pmf(i) - peak).exp();
            sum += t;
            if t < 1e-17 * sum || i == k {
                break;
            }
            i -= 1;
        }
    }
    (peak + sum.ln()).exp().min(1.0)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// Lanczos approximation of ln Γ(x) for x > 0 (|error| < 1e-13 here).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn binomial_tail_matches_exact_sums() {
        // Small n: compare with a direct sum of exact probabilities.
        for (n, p) in [(10u64, 0.3f64), (40, 0.02), (100, 0.5)] {
            for k in 0..=n {
                let exact: f64 = (k..=n)
                    .map(|i| {
                        let c: f64 = (0..i).map(|j| (n - j) as f64 / (j + 1) as f64).product();
                        c * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32)
                    })
                    .sum();
                let got = binomial_tail(n, k, p);
                assert!(
                    close(got, exact, 1e-9) || (exact < 1e-250 && got < 1e-250),
                    "n={n} k={k} p={p}: {got} vs {exact}"
                );
            }
        }
        // Large n stays finite and ordered.
        let a = binomial_tail(1_000_000, 21_000, 0.02);
        let b = binomial_tail(1_000_000, 22_000, 0.02);
        assert!(a > b && b > 0.0 && a < 1.0);
    }

    #[test]
    fn a_stable_rate_does_not_fire() {
        let v = spike(
            Counts {
                total: 1000,
                failed: 24,
            },
            Counts {
                total: 168_000,
                failed: 3_360,
            },
            &SpikeParams::default(),
        );
        assert!(!v.firing, "{v:?}");
    }

    #[test]
    fn a_jump_fires_with_the_numbers() {
        let v = spike(
            Counts {
                total: 1000,
                failed: 200,
            },
            Counts {
                total: 168_000,
                failed: 3_360,
            },
            &SpikeParams::default(),
        );
        assert!(v.firing && v.p_value < 1e-50, "{v:?}");
        assert!((v.window_rate - 0.2).abs() < 1e-12);
        assert!((v.baseline_rate - 0.02).abs() < 1e-3);
    }

    #[test]
    fn a_handful_of_calls_pages_nobody() {
        let v = spike(
            Counts {
                total: 8,
                failed: 6,
            },
            Counts {
                total: 5000,
                failed: 100,
            },
            &SpikeParams::default(),
        );
        assert!(!v.firing, "{v:?}");
    }

    #[test]
    fn tiny_but_significant_drift_at_huge_volume_does_not_fire() {
        let v = spike(
            Counts {
                total: 2_000_000,
                failed: 42_000,
            },
            Counts {
                total: 20_000_000,
                failed: 400_000,
            },
            &SpikeParams::default(),
        );
        assert!(v.p_value < 1e-4, "the drift is real");
        assert!(!v.firing, "but 2.0% -> 2.1% is not an incident");
    }

    #[test]
    fn a_ceiling_fires_without_a_baseline_shift() {
        let p = SpikeParams {
            ceiling: Some(0.10),
            ..Default::default()
        };
        let v = spike(
            Counts {
                total: 500,
                failed: 60,
            },
            Counts {
                total: 50_000,
                failed: 6_000,
            },
            &p,
        );
        assert!(v.firing && v.over_ceiling, "{v:?}");
    }

    #[test]
    fn no_history_uses_the_prior() {
        let v = spike(
            Counts {
                total: 40,
                failed: 1,
            },
            Counts::default(),
            &SpikeParams::default(),
        );
        assert!(
            !v.firing,
            "one failure in a new series is not a spike: {v:?}"
        );
        let v = spike(
            Counts {
                total: 40,
                failed: 12,
            },
            Counts::default(),
            &SpikeParams::default(),
        );
        assert!(v.firing, "{v:?}");
    }
}
