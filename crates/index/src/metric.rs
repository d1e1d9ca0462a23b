//! [`Metric`]: how an index scores a query against a stored vector, and which score is better.
//!
//! Inner product and cosine are "larger is better"; squared L2 distance is "smaller is better".
//! Cosine is inner product on unit vectors: vectors are normalized when added and queries when
//! searched, so the stored vectors already carry the metric and a search is a plain dot product.

use std::cmp::Ordering;
use std::fmt;

use ragtune_compute::ops::Similarity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `q · x`, larger is better.
    InnerProduct,
    /// `q · x / (‖q‖ ‖x‖)`, larger is better; stored vectors are unit length.
    Cosine,
    /// `‖q − x‖²` (squared, as FAISS reports it), smaller is better.
    L2,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::InnerProduct, Metric::Cosine, Metric::L2];

    /// `ip`, `cosine` or `l2` (also `inner_product`, `dot`, `cos`, `euclidean`).
    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "ip" | "inner_product" | "dot" => Metric::InnerProduct,
            "cosine" | "cos" => Metric::Cosine,
            "l2" | "euclidean" | "sql2" => Metric::L2,
            _ => return None,
        })
    }

    /// The short name the CLI and `info` use.
    pub fn name(self) -> &'static str {
        match self {
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
        }
    }

    /// Whether vectors and queries are normalized to unit length.
    pub fn normalizes(self) -> bool {
        self == Metric::Cosine
    }

    /// The similarity the search op computes for this metric.
    pub(crate) fn similarity(self) -> Similarity {
        match self {
            Metric::InnerProduct | Metric::Cosine => Similarity::Dot,
            Metric::L2 => Similarity::L2,
        }
    }

    /// The score a missing result is padded with: the worst possible one.
    pub fn worst_score(self) -> f32 {
        match self {
            Metric::InnerProduct | Metric::Cosine => f32::NEG_INFINITY,
            Metric::L2 => f32::INFINITY,
        }
    }

    /// Orders two (score, id) results best first: by score, then by the smaller id.
    pub(crate) fn rank(self, a: (f32, u64), b: (f32, u64)) -> Ordering {
        let by_score = match self {
            Metric::InnerProduct | Metric::Cosine => b.0.total_cmp(&a.0),
            Metric::L2 => a.0.total_cmp(&b.0),
        };
        by_score.then(a.1.cmp(&b.1))
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Metric::InnerProduct => 0,
            Metric::Cosine => 1,
            Metric::L2 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.code() == code)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
