//! [`BertEmbedder`]: a BERT-family sentence-transformers folder (all-MiniLM-L6-v2, BGE, E5) as
//! an [`Embedder`], through ragtune-runtime's encoder. Pooling (mean or CLS) comes from the
//! folder's `modules.json`; rows are always L2-normalized here, even for a folder without a
//! Normalize module, because retrieval scores by inner product and needs unit vectors.

use std::path::Path;

use ragtune_compute::{DType, Device};
use ragtune_runtime::BertEmbedder as RuntimeBert;

use super::{Embedder, normalize_rows};
use crate::error::Result;

/// Texts per forward pass: large enough to keep a GPU busy, small enough that a batch of
/// 512-token texts stays within a few hundred MB of activations.
const DEFAULT_BATCH: usize = 32;

pub struct BertEmbedder {
    inner: RuntimeBert,
    name: String,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl BertEmbedder {
    /// Load the folder `dir` in f32 onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<BertEmbedder> {
        BertEmbedder::load_as(dir, DType::F32, device)
    }

    /// Load the folder `dir` with weights in `dtype` (f32, bf16, f16) onto `device`.
    pub fn load_as(dir: &Path, dtype: DType, device: &Device) -> Result<BertEmbedder> {
        let inner = RuntimeBert::from_dir(dir, dtype, device.clone())?;
        let folder =
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        Ok(BertEmbedder { inner, name: format!("bert:{folder}"), batch_size: DEFAULT_BATCH })
    }

    /// The runtime's embedder (model, tokenizer, pooling).
    pub fn runtime(&self) -> &RuntimeBert {
        &self.inner
    }
}

impl Embedder for BertEmbedder {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn dim(&self) -> usize {
        self.inner.model.dim()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        let mut rows = self.inner.embed(texts, self.batch_size)?.concat();
        normalize_rows(&mut rows, self.dim());
        Ok(rows)
    }
}
