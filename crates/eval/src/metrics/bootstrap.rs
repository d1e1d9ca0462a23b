//! Bootstrap 95% intervals: of a mean, of a paired difference (two arms on the same questions),
//! and of a difference between two independent groups of questions.
//!
//! Percentile bootstrap: draw `resamples` samples of the same size with replacement, take each
//! one's mean, and report the 2.5th and 97.5th percentiles of those means (linear interpolation
//! between order statistics, numpy's default). The reported `mean` is the sample's own mean, not
//! the mean of the resamples. Draws come from ChaCha8 seeded with `seed`, so the same inputs and
//! seed give the same interval on every machine.
//!
//! Empty input is an error ([`MetricsError::Empty`]) rather than `None`: every caller already
//! knows whether it has values, and a silent `None` would hide a bug that dropped them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::MetricsError;
use crate::report::Interval;

const LOWER: f64 = 0.025;
const UPPER: f64 = 0.975;

/// The mean of `values` with its percentile-bootstrap 95% interval.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Result<Interval, MetricsError> {
    check("bootstrap_mean", values, resamples)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples).map(|_| resampled_mean(values, &mut rng)).collect();
    Ok(interval(mean(values), means, values.len()))
}

/// The mean of `a[i] − b[i]` with its 95% interval, resampling question indices jointly: the
/// same questions are drawn for both sides, so what the questions share (their difficulty)
/// cancels and the interval is that of the difference, not of two independent means.
pub fn paired_difference(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
) -> Result<Interval, MetricsError> {
    if a.len() != b.len() {
        return Err(MetricsError::LengthMismatch {
            what: "paired_difference".into(),
            left: a.len(),
            right: b.len(),
        });
    }
    check("paired_difference (first side)", a, resamples)?;
    check("paired_difference (second side)", b, resamples)?;
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    bootstrap_mean(&diffs, resamples, seed)
}

/// `mean(a) − mean(b)` for two groups of different questions (seen vs held-out phrasings, rare
/// vs popular entities), with its 95% interval: each resample draws `a.len()` values from `a`
/// and `b.len()` from `b` independently (a stratified bootstrap; nothing pairs the groups).
/// `n` of the result is `a.len() + b.len()`.
pub fn group_difference(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<Interval, MetricsError> {
    check("group_difference (first group)", a, resamples)?;
    check("group_difference (second group)", b, resamples)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let diffs: Vec<f64> =
        (0..resamples).map(|_| resampled_mean(a, &mut rng) - resampled_mean(b, &mut rng)).collect();
    Ok(interval(mean(a) - mean(b), diffs, a.len() + b.len()))
}

pub(super) fn check(what: &str, values: &[f64], resamples: usize) -> Result<(), MetricsError> {
    if values.is_empty() {
        return Err(MetricsError::Empty { what: what.into() });
    }
    if resamples == 0 {
        return Err(MetricsError::ZeroResamples { what: what.into() });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricsError::NonFinite { what: what.into(), index, value });
    }
    Ok(())
}

/// Summed in index order, like [`mean`], so a constant sample's resamples equal its mean to
/// the bit and its interval collapses onto it.
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn resampled_mean(values: &[f64], rng: &mut ChaCha8Rng) -> f64 {
    let n = values.len();
    let sum: f64 = (0..n).map(|_| values[rng.random_range(0..n)]).sum();
    sum / n as f64
}

pub(super) fn interval(mean: f64, mut resampled: Vec<f64>, n: usize) -> Interval {
    resampled.sort_by(f64::total_cmp);
    Interval { mean, lo: percentile(&resampled, LOWER), hi: percentile(&resampled, UPPER), n }
}

/// Linear interpolation between the order statistics around position `q·(len − 1)`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let below = pos.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let frac = pos - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ones` ones followed by zeros, `n` in all.
    fn bernoulli(ones: usize, n: usize) -> Vec<f64> {
        (0..n).map(|i| if i < ones { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn a_constant_sample_collapses_the_interval_onto_it() {
        for c in [0.0, 1.0, 0.1, 0.7345] {
            let iv = bootstrap_mean(&[c; 37], 500, 3).unwrap();
            assert_eq!((iv.lo, iv.hi), (iv.mean, iv.mean), "c = {c}");
            assert!((iv.mean - c).abs() < 1e-12);
            assert_eq!(iv.n, 37);
        }
    }

    #[test]
    fn two_values_give_the_hand_computed_percentiles() {
        // Resample means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the
        // 2.5th percentile is 0 and the 97.5th is 1 (each end holds far more than 2.5 %).
        let iv = bootstrap_mean(&[0.0, 1.0], 2000, 11).unwrap();
        assert_eq!((iv.mean, iv.lo, iv.hi), (0.5, 0.0, 1.0));
    }

    #[test]
    fn a_bernoulli_sample_has_the_normal_approximation_width() {
        // p̂ = 60/200 = 0.3; normal approximation: 0.3 ± 1.96·√(0.3·0.7/200) = 0.3 ± 0.0635.
        // The bootstrap's own variance is exactly p̂(1−p̂)/n, so the bounds differ from it only by
        // (a) discreteness: means are multiples of 1/200 = 0.005; (b) Monte Carlo error of a
        // 2.5 % quantile from 4000 resamples: √(0.025·0.975/4000)/φ(1.96)·σ ≈ 0.0014, three of
        // which are 0.004; (c) skewness, ≈ 0.001 here. 0.005 + 0.004 + 0.001 = 0.01.
        let values = bernoulli(60, 200);
        let iv = bootstrap_mean(&values, 4000, 42).unwrap();
        let half = 1.96 * (0.3f64 * 0.7 / 200.0).sqrt();
        assert!((iv.mean - 0.3).abs() < 1e-12);
        assert!(iv.lo < iv.mean && iv.mean < iv.hi, "{iv:?}");
        assert!((iv.lo - (0.3 - half)).abs() <= 0.01, "lo {} vs {}", iv.lo, 0.3 - half);
        assert!((iv.hi - (0.3 + half)).abs() <= 0.01, "hi {} vs {}", iv.hi, 0.3 + half);
    }

    #[test]
    fn the_seed_fixes_the_interval() {
        let values: Vec<f64> = (0..150).map(|i| ((i * i) % 17) as f64 / 7.0).collect();
        let a = bootstrap_mean(&values, 1000, 9).unwrap();
        assert_eq!(a, bootstrap_mean(&values, 1000, 9).unwrap());
        let others: Vec<Interval> = (10..14).map(|s| bootstrap_mean(&values, 1000, s).unwrap()).collect();
        assert!(
            others.iter().any(|o| (o.lo, o.hi) != (a.lo, a.hi)),
            "other seeds should draw other resamples"
        );
    }

    #[test]
    fn paired_difference_cancels_what_the_questions_share() {
        let a: Vec<f64> = (0..120).map(|i| ((i * 7919) % 100) as f64 / 100.0).collect();
        let same = paired_difference(&a, &a, 1000, 1).unwrap();
        assert_eq!((same.mean, same.lo, same.hi, same.n), (0.0, 0.0, 0.0, 120));
        // b = a − 0.25 question by question: the paired difference is exactly 0.25 every time,
        // while two independent means of the same numbers would be uncertain.
        let b: Vec<f64> = a.iter().map(|x| x - 0.25).collect();
        let paired = paired_difference(&a, &b, 1000, 1).unwrap();
        assert!((paired.lo - 0.25).abs() < 1e-12 && (paired.hi - 0.25).abs() < 1e-12, "{paired:?}");
        let unpaired = group_difference(&a, &b, 1000, 1).unwrap();
        assert!((unpaired.mean - 0.25).abs() < 1e-12);
        assert!(unpaired.hi - unpaired.lo > 0.05, "{unpaired:?}");
    }

    #[test]
    fn group_difference_has_the_two_sample_normal_width() {
        // 0.6 of 150 vs 0.4 of 100: 0.2 ± 1.96·√(0.24/150 + 0.24/100) = 0.2 ± 0.124. Tolerance
        // as in the one-sample test, with the coarser 1/100 grid: 0.015.
        let (a, b) = (bernoulli(90, 150), bernoulli(40, 100));
        let iv = group_difference(&a, &b, 4000, 5).unwrap();
        let half = 1.96 * (0.24f64 / 150.0 + 0.24 / 100.0).sqrt();
        assert!((iv.mean - 0.2).abs() < 1e-12);
        assert_eq!(iv.n, 250);
        assert!((iv.lo - (0.2 - half)).abs() <= 0.015, "{iv:?}");
        assert!((iv.hi - (0.2 + half)).abs() <= 0.015, "{iv:?}");
    }

    #[test]
    fn bad_input_is_an_error_that_names_it() {
        assert!(matches!(bootstrap_mean(&[], 100, 0), Err(MetricsError::Empty { .. })));
        assert!(matches!(bootstrap_mean(&[1.0], 0, 0), Err(MetricsError::ZeroResamples { .. })));
        let err = bootstrap_mean(&[1.0, f64::NAN], 10, 0).unwrap_err();
        assert!(matches!(err, MetricsError::NonFinite { index: 1, .. }), "{err}");
        let err = paired_difference(&[1.0, 0.0], &[1.0], 10, 0).unwrap_err();
        assert_eq!(err, MetricsError::LengthMismatch { what: "paired_difference".into(), left: 2, right: 1 });
        assert!(err.to_string().contains("2 values on one side but 1 on the other"), "{err}");
        assert!(matches!(group_difference(&[1.0], &[], 10, 0), Err(MetricsError::Empty { .. })));
    }
}
