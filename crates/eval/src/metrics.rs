//! The experiment's metrics: how one answer is scored ([`answer`]: SQuAD-style normalisation,
//! exact match, token F1, retrieval recall@k), how a set of scores becomes a mean with a
//! bootstrap 95% interval ([`bootstrap`]), and how per-question outcomes become an arm's
//! [`Scores`](crate::report::Scores) and breakdowns ([`scores`]). Classification adds macro-F1
//! and the confusion matrix ([`labels`]); house-format outputs are checked by [`house`].
//!
//! Every interval is a percentile bootstrap (2.5th and 97.5th percentiles of the resampled
//! means) drawn from a ChaCha8 generator seeded by the caller, so a run is reproduced exactly
//! by its seed. Questions about the same source passage are resampled together ([`cluster`]);
//! arm-vs-arm comparisons add the exact McNemar test and the minimum detectable effect
//! ([`paired`]).

pub mod answer;
pub mod bootstrap;
pub mod cluster;
pub mod house;
pub mod labels;
pub mod paired;
pub mod scores;

pub use answer::{exact_match, normalize_answer, recall_at_k, token_f1};
pub use bootstrap::{bootstrap_mean, group_difference, paired_difference};
pub use cluster::{
    ClusterKeys, cluster_count, cluster_group_difference, cluster_key, cluster_mean,
    cluster_paired_difference, design_effect, seeded_cluster_mean,
};
pub use labels::{ClassReport, LabelScore, class_report};
pub use paired::{PairedTest, mcnemar_exact, min_detectable_effect, paired_test};
pub use scores::{breakdown, clustered_breakdown, clustered_scores_of, popularity_label, scores_of};

/// Why an interval could not be computed. Each message names the argument and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// No values: a mean (and its interval) needs at least one question.
    #[error("{what}: no values to average; an interval needs at least one question (drop the empty group)")]
    Empty { what: String },
    /// `resamples = 0`.
    #[error(
        "{what}: the number of bootstrap resamples must be at least 1 (got 0); 1000 or more gives stable 95% intervals"
    )]
    ZeroResamples { what: String },
    /// NaN or ±inf among the values.
    #[error(
        "{what}: value {index} is {value}; scores must be finite numbers (check how that question was scored)"
    )]
    NonFinite { what: String, index: usize, value: f64 },
    /// Two sides of a paired comparison (or outcomes and their labels) of different lengths.
    #[error(
        "{what}: {left} values on one side but {right} on the other; pass exactly one value per question on each side"
    )]
    LengthMismatch { what: String, left: usize, right: usize },
}
