//! ragtune-runtime: the transformer runtime of ragtune.
//!
//! - [`config`]: `config.json` of Llama-family decoders (`llama`, `mistral`, `qwen2`) and BERT
//!   encoders; [`weights`]: safetensors (single or sharded, memory-mapped, zero-copy);
//!   [`gguf`]: GGUF files with dequantisation and the tokenizer from metadata;
//! - [`llama`]: the decoder's weights under one table of names ([`llama::names`]), its forward pass with a KV cache, written only in `ragtune_compute::ops`
//!   so the same code runs on the CPU and on a GPU; [`generate()`]: batched generation with
//!   sampling ([`sampling`]), stop tokens and streaming; [`score()`]: log-likelihood of a
//!   continuation; [`prefix`]: one prompt prefilled once, then its continuations scored and a
//!   greedy answer decoded from the same cache;
//! - [`adapter`]: LoRA adapters at inference — PEFT folders in and out, attached unmerged (one,
//!   or several in adapter banks for mixed batches), or merged into a model folder;
//! - [`bert`]: sentence embeddings (mean or CLS pooling, L2 normalisation);
//! - [`tokenizer`]: the `tokenizers` crate with padding and truncation switched off, each file
//!   checked first for what makes that crate panic.

pub mod adapter;
pub mod bert;
pub mod config;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod linear;
pub mod llama;
pub mod loader;
pub mod prefix;
pub mod prepared;
pub mod rope;
pub mod sampling;
pub mod score;
pub mod tokenizer;
mod tokenizer_json;
pub mod weights;

pub use bert::{BertEmbedder, BertModel, Pooling, PoolingMode};
pub use config::{BertConfig, LlamaConfig, LlamaFamily, ModelConfig};
pub use error::{Result, RuntimeError};
pub use generate::{FinishReason, GenerateOptions, Generated, generate, generate_with_adapters};
pub use llama::{KvCache, LlamaModel, LogitsWanted, Projection, TensorName};
pub use loader::load_causal_lm;
pub use prefix::Prefilled;
pub use rope::{RopeConfig, RopeScaling};
pub use sampling::{Sampler, SamplingParams};
pub use score::{Score, score};
pub use tokenizer::{StreamDecoder, Tokenizer};
pub use weights::Weights;
