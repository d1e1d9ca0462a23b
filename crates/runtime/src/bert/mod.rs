//! BERT-family sentence embedders (all-MiniLM-L6-v2, BGE, E5): the encoder forward pass and the
//! pooling that sentence-transformers configures.

mod model;
mod pooling;

pub use model::{BertEmbedder, BertModel};
pub use pooling::{Pooling, PoolingMode};
