//! [`Retriever`]: the passages of a corpus embedded once into an exact ragtune-index
//! [`FlatIndex`] (f32, on the run's device), searched with the questions' vectors.
//!
//! The index uses the inner-product metric: embedders return unit rows, so the inner product
//! is the cosine similarity, and unlike the cosine metric it accepts the all-zero vector a text
//! without letters or digits gets (which then scores 0 against everything). Passage `i` is stored
//! under id `i`, so hits map straight back to `passages[i]`, and ties go to the earlier passage.

use std::path::Path;

use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{FlatIndex, Metric};

use crate::embed::Embedder;
use crate::error::{EvalError, Result};
use crate::task::Passage;

/// Texts embedded per call while building, so a large corpus never holds more than one batch
/// of vectors on the host besides the index.
const BUILD_BATCH: usize = 1024;

#[derive(Clone, Debug)]
pub struct Retriever {
    index: FlatIndex,
    /// [`Embedder::name`] of the embedder that built the index: searching with another one
    /// would compare vectors from different spaces.
    embedder: String,
}

impl Retriever {
    /// Embed every passage with `embedder` and index the vectors on `device`.
    pub fn build(embedder: &dyn Embedder, passages: &[Passage], device: &Device) -> Result<Retriever> {
        let dim = embedder.dim();
        let mut index = FlatIndex::new(dim, Metric::InnerProduct, DType::F32, device)?;
        for (b, chunk) in passages.chunks(BUILD_BATCH).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
            let vectors = embedder.embed(&texts)?;
            let first = (b * BUILD_BATCH) as u64;
            let ids: Vec<u64> = (first..first + chunk.len() as u64).collect();
            index.add(&Tensor::from_slice(&vectors, &[chunk.len(), dim])?, &ids)?;
        }
        Ok(Retriever { index, embedder: embedder.name() })
    }

    /// The `k` passages most similar to each question, best first, as (passage index, cosine
    /// similarity); fewer than `k` only when the corpus is smaller. Errors on `k = 0` and on an
    /// embedder other than the one that built the index.
    pub fn search(
        &self,
        embedder: &dyn Embedder,
        questions: &[&str],
        k: usize,
    ) -> Result<Vec<Vec<(usize, f32)>>> {
        if embedder.name() != self.embedder || embedder.dim() != self.index.dim() {
            return Err(EvalError::config(format!(
                "the retriever was built with the embedder `{}` ({} dims) but is searched with `{}` ({} dims): \
                 search with the embedder that built it",
                self.embedder,
                self.index.dim(),
                embedder.name(),
                embedder.dim()
            )));
        }
        if questions.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = embedder.embed(questions)?;
        let queries = Tensor::from_slice(&vectors, &[questions.len(), self.index.dim()])?;
        let found = self.index.search(&queries, k, None)?;
        Ok(found
            .into_iter()
            .map(|hits| hits.ids.iter().zip(&hits.scores).map(|(&id, &s)| (id as usize, s)).collect())
            .collect())
    }

    /// Save the index to `path` (atomically, ragtune-index's checksummed format) and return the
    /// file's size in bytes: the artifact the RAG arms add to the base model.
    pub fn save(&self, path: &Path) -> Result<u64> {
        self.index.save(path)?;
        Ok(std::fs::metadata(path).map_err(|e| EvalError::io(path, e))?.len())
    }

    /// Number of indexed passages.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The name of the embedder that built the index.
    pub fn embedder_name(&self) -> &str {
        &self.embedder
    }

    pub fn index(&self) -> &FlatIndex {
        &self.index
    }
}
