//! Classification metrics: the confusion matrix, per-label precision / recall / F1, macro-F1
//! (the unweighted mean of the per-label F1, so a rare label counts as much as a common one)
//! and macro-F1's percentile-bootstrap 95% interval.
//!
//! Conventions (those of scikit-learn's `f1_score(average="macro")` with `zero_division=0`):
//! a label's precision is 0 when it was never predicted, its recall 0 when it never occurs,
//! and F1 = 2·P·R / (P + R) is 0 when both are 0. The macro average runs over the labels that
//! occur or are predicted ([`super::scores::label_pairs`] drops a declared label absent from
//! both, as scikit-learn does); a label that vanishes from a bootstrap resample still counts
//! there (as 0), so the interval is wide where the data is thin, as it should be.
//! Questions are resampled independently: labelled texts have no source passage to cluster by.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::MetricsError;
use super::bootstrap::interval;
use crate::report::Interval;

/// One label's scores over the test items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Test items whose gold label this is.
    pub support: usize,
}

/// An arm's classification results: `confusion[gold][predicted]` counts over `labels` (in the
/// task's order), the per-label scores and macro-F1 with its interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub labels: Vec<String>,
    pub confusion: Vec<Vec<usize>>,
    pub per_label: Vec<LabelScore>,
    pub macro_f1: Interval,
}

/// `confusion[g][p]`: items of gold label `g` predicted as `p`; pairs are label indices.
pub fn confusion(pairs: &[(usize, usize)], labels: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; labels]; labels];
    for &(g, p) in pairs {
        if g < labels && p < labels {
            m[g][p] += 1;
        }
    }
    m
}

/// Per-label precision, recall, F1 and support from a confusion matrix.
pub fn per_label(confusion: &[Vec<usize>], labels: &[String]) -> Vec<LabelScore> {
    let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    (0..labels.len())
        .map(|l| {
            let tp = confusion[l][l];
            let support: usize = confusion[l].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[l]).sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 =
                if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            LabelScore { label: labels[l].clone(), precision, recall, f1, support }
        })
        .collect()
}

/// The unweighted mean of the per-label F1 over `labels` label indices.
pub fn macro_f1(pairs: &[(usize, usize)], labels: usize) -> f64 {
    if labels == 0 {
        return 0.0;
    }
    let names: Vec<String> = (0..labels).map(|l| l.to_string()).collect();
    per_label(&confusion(pairs, labels), &names).iter().map(|s| s.f1).sum::<f64>() / labels as f64
}

/// Macro-F1 of `pairs` (gold, predicted) with its 95% percentile-bootstrap interval over
/// `resamples` resamples of the items, seeded by `seed`.
pub fn bootstrap_macro_f1(
    pairs: &[(usize, usize)],
    labels: usize,
    resamples: usize,
    seed: u64,
) -> Result<Interval, MetricsError> {
    if pairs.is_empty() {
        return Err(MetricsError::Empty { what: "macro-F1".into() });
    }
    if resamples == 0 {
        return Err(MetricsError::ZeroResamples { what: "macro-F1".into() });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = pairs.len();
    let mut drawn = Vec::with_capacity(n);
    let resampled: Vec<f64> = (0..resamples)
        .map(|_| {
            drawn.clear();
            drawn.extend((0..n).map(|_| pairs[rng.random_range(0..n)]));
            macro_f1(&drawn, labels)
        })
        .collect();
    Ok(interval(macro_f1(pairs, labels), resampled, n))
}

/// The whole [`ClassReport`] of `pairs` over `labels`.
pub fn class_report(
    pairs: &[(usize, usize)],
    labels: &[String],
    resamples: usize,
    seed: u64,
) -> Result<ClassReport, MetricsError> {
    let confusion = confusion(pairs, labels.len());
    Ok(ClassReport {
        labels: labels.to_vec(),
        per_label: per_label(&confusion, labels),
        confusion,
        macro_f1: bootstrap_macro_f1(pairs, labels.len(), resamples, seed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_matches_a_hand_computation() {
        // gold:      a a a b b c
        // predicted: a a b b c c
        // a: tp 2, predicted 2, support 3 → P 1, R 2/3, F1 0.8
        // b: tp 1, predicted 2, support 2 → P 1/2, R 1/2, F1 0.5
        // c: tp 1, predicted 2, support 1 → P 1/2, R 1, F1 2/3
        // macro = (0.8 + 0.5 + 2/3) / 3 = 0.655555…
        let pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2)];
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let scores = per_label(&confusion(&pairs, 3), &labels);
        let f1: Vec<f64> = scores.iter().map(|s| s.f1).collect();
        for (got, want) in f1.iter().zip([0.8, 0.5, 2.0 / 3.0]) {
            assert!((got - want).abs() < 1e-12, "{f1:?}");
        }
        assert_eq!(scores.iter().map(|s| s.support).collect::<Vec<_>>(), [3, 2, 1]);
        assert!((macro_f1(&pairs, 3) - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(confusion(&pairs, 3), vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
    }

    #[test]
    fn a_label_never_seen_nor_predicted_counts_as_zero() {
        // Perfect on a and b, but the task declares three labels: macro-F1 = (1 + 1 + 0) / 3.
        let pairs = [(0, 0), (1, 1)];
        assert!((macro_f1(&pairs, 3) - 2.0 / 3.0).abs() < 1e-12);
        assert!((macro_f1(&pairs, 2) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn always_predicting_the_majority_label_scores_its_share() {
        // 4 of a, 2 of b; always "a": a has P 4/6, R 1, F1 0.8; b has F1 0; macro 0.4.
        let pairs = [(0, 0), (0, 0), (0, 0), (0, 0), (1, 0), (1, 0)];
        assert!((macro_f1(&pairs, 2) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn the_interval_brackets_the_estimate_and_collapses_when_perfect() {
        let perfect: Vec<(usize, usize)> = (0..30).map(|i| (i % 3, i % 3)).collect();
        let iv = bootstrap_macro_f1(&perfect, 3, 300, 1).unwrap();
        assert_eq!((iv.mean, iv.hi, iv.n), (1.0, 1.0, 30));
        // A resample may miss a label entirely (it then scores 0), so lo can sit below 1 — but
        // with 10 items per label that is rare enough for the 2.5th percentile to stay at 1.
        assert_eq!(iv.lo, 1.0);
        let mixed: Vec<(usize, usize)> =
            (0..60).map(|i| (i % 3, if i % 4 == 0 { (i + 1) % 3 } else { i % 3 })).collect();
        let iv = bootstrap_macro_f1(&mixed, 3, 500, 2).unwrap();
        assert!(iv.lo < iv.mean && iv.mean < iv.hi, "{iv:?}");
        assert!(bootstrap_macro_f1(&[], 3, 10, 0).is_err());
        assert!(bootstrap_macro_f1(&mixed, 3, 0, 0).is_err());
    }
}
