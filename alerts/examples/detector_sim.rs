//! Simulates the validation-failure spike detector on synthetic traffic and
//! prints the figures reported in docs/ALERTS.md: false alarms per week at a
//! stable rate, and time to detect a jump, at 100 and 1,000 calls per hour.
//!
//! The model matches the evaluator: a 60-minute sliding window evaluated
//! every minute, a 7-day baseline of whole hours, default parameters.
//! Run: `cargo run --release -p alerts --example detector_sim`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use alerts::detect::{Counts, SpikeParams, spike};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BASE: f64 = 0.02;
const WINDOW_MIN: usize = 60;
const BASELINE_MIN: usize = 7 * 24 * 60;

/// Failures and calls per minute, Poisson-ish arrivals with a fixed rate.
fn minute(rng: &mut StdRng, calls_per_hour: f64, rate: f64) -> Counts {
    let mean = calls_per_hour / 60.0;
    // Bernoulli thinning of a Poisson count (Knuth for small means).
    let l = (-mean).exp();
    let (mut k, mut p) = (0u64, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            break;
        }
        k += 1;
    }
    let failed = (0..k).filter(|_| rng.random_bool(rate)).count() as u64;
    Counts { total: k, failed }
}

fn sum(xs: &[Counts]) -> Counts {
    xs.iter().fold(Counts::default(), |a, c| Counts {
        total: a.total + c.total,
        failed: a.failed + c.failed,
    })
}

/// Runs `minutes` of traffic after a 7-day warm-up at the base rate, the rate
/// changing to `after` at minute 0; returns the minutes at which a new alert
/// started firing.
fn run(seed: u64, calls_per_hour: f64, after: f64, minutes: usize) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut series: Vec<Counts> = (0..BASELINE_MIN + WINDOW_MIN)
        .map(|_| minute(&mut rng, calls_per_hour, BASE))
        .collect();
    let params = SpikeParams::default();
    let mut firing = false;
    let mut starts = Vec::new();
    for m in 0..minutes {
        series.push(minute(&mut rng, calls_per_hour, after));
        let n = series.len();
        let window = sum(&series[n - WINDOW_MIN..]);
        // Baseline: whole hours before the window's hour.
        let window_start = n - WINDOW_MIN;
        let baseline_end = window_start - window_start % 60;
        let baseline = sum(&series[baseline_end.saturating_sub(BASELINE_MIN)..baseline_end]);
        let v = spike(window, baseline, &params);
        if v.firing && !firing {
            starts.push(m);
        }
        firing = v.firing;
    }
    starts
}

fn percentile(xs: &mut [usize], p: f64) -> usize {
    xs.sort_unstable();
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!("| calls/hour | weeks simulated at a stable 2 % | false alarms | per week |");
    println!("|---|---|---|---|");
    for cph in [100.0, 1000.0] {
        let weeks = 20;
        let alarms: usize = (0..weeks)
            .map(|s| run(1000 + s, cph, BASE, 7 * 24 * 60).len())
            .sum();
        println!(
            "| {cph:.0} | {weeks} | {alarms} | {:.2} |",
            alarms as f64 / weeks as f64
        );
    }
    println!();
    println!("| calls/hour | jump | runs | detected | median minutes to detect | p90 |");
    println!("|---|---|---|---|---|---|");
    for cph in [100.0, 1000.0] {
        for after in [0.10, 0.20] {
            let runs = 40;
            let mut times: Vec<usize> = (0..runs)
                .filter_map(|s| run(5000 + s, cph, after, 6 * 60).first().copied())
                .collect();
            let detected = times.len();
            let (med, p90) = if times.is_empty() {
                ("-".to_string(), "-".to_string())
            } else {
                (
                    percentile(&mut times, 0.5).to_string(),
                    percentile(&mut times, 0.9).to_string(),
                )
            };
            println!(
                "| {cph:.0} | 2 % → {:.0} % | {runs} | {detected} | {med} | {p90} |",
                after * 100.0
            );
        }
    }
}
