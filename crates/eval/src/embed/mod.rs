//! Text embedders for retrieval: text in, one L2-normalized vector per text out.
//!
//! - [`HashedEmbedder`]: the default. Needs no weights: hashed word unigrams and bigrams and
//!   character 3–5-grams of each word, TF-IDF weighted with the IDF fitted on the corpus. It
//!   finds a passage by the rare words and names it shares with the question, including
//!   inflected or misspelt forms (through the character n-grams), which is what retrieval over
//!   a corpus of facts about named entities mostly needs.
//! - [`BertEmbedder`]: any BERT-family sentence-transformers folder (all-MiniLM-L6-v2, BGE,
//!   E5): ragtune-runtime's type, an [`Embedder`] here (`bert.rs`), rows normalized.
//!
//! Rows are unit length, so the inner product of two vectors is their cosine similarity; the
//! [`crate::retrieve::Retriever`] relies on that.

mod bert;
mod hashed;

pub use hashed::{HashedConfig, HashedEmbedder};
pub use ragtune_runtime::BertEmbedder;

use crate::error::Result;

/// Anything that turns texts into unit vectors of a fixed width.
pub trait Embedder: Send + Sync {
    /// A short description for reports and for checking that an index is searched with the
    /// embedder that built it (`hashed-16384`, `bert:all-MiniLM-L6-v2`).
    fn name(&self) -> String;
    /// The width of every vector.
    fn dim(&self) -> usize;
    /// Row-major `[texts.len(), dim]` vectors; each row has L2 norm 1, or is all zeros for a text
    /// with nothing to embed (the hashed embedder on a text without letters or digits, or made
    /// only of words found in every corpus text).
    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>>;
}

/// Scale each `dim`-wide row of `rows` to unit L2 norm (all-zero rows stay zero). The norm is
/// summed in f64 so long sparse rows normalize to 1 within f32 rounding.
pub(crate) fn normalize_rows(rows: &mut [f32], dim: usize) {
    for row in rows.chunks_exact_mut(dim.max(1)) {
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}
