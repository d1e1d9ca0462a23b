//! The Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM): weights, the KV cache and the
//! forward pass. Everything runs through `ragtune_compute::ops`, so one code path serves the CPU
//! and a GPU. [`names`] is the one table of its parameter names.

mod cache;
mod forward;
mod model;
pub mod names;

pub use cache::KvCache;
pub use forward::{Batch, LogitsWanted};
pub use model::{Layer, LlamaModel};
pub use names::{LayerNorm, Projection, TensorName};
