//! [`BertEmbedder`] (ragtune-runtime's encoder with its tokenizer) as an [`Embedder`]: a
//! BERT-family sentence-transformers folder (all-MiniLM-L6-v2, BGE, E5). Pooling (mean or CLS)
//! comes from the folder's `modules.json`; rows are always L2-normalized here, even for a folder
//! without a Normalize module, because retrieval scores by inner product and needs unit vectors.

use ragtune_runtime::BertEmbedder;

use super::{Embedder, normalize_rows};
use crate::error::Result;

impl Embedder for BertEmbedder {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        let mut rows = BertEmbedder::embed(self, texts, self.batch_size)?.concat();
        normalize_rows(&mut rows, Embedder::dim(self));
        Ok(rows)
    }
}
