//! ragtune-trainer: LoRA fine-tuning of the Llama-family models of `ragtune-runtime`.
//!
//! No autograd: [`LoraTrainer::loss_and_grads`] runs a training forward that keeps what each
//! layer's backward needs, then an explicit backward through the head, the norms, the MLP,
//! attention and rotary embedding, producing gradients for the adapters only (the base is
//! frozen, in f32, bf16 or f16; the residual stream, adapters and gradients are f32).
//! Everything is written in `ragtune_compute::ops`, so the same code runs on a GPU, the backward
//! ops included (their kernels sit beside each family's forward in `kernels/`).
//!
//! - [`full`]: full fine-tuning, every weight trainable (pretraining a small model);
//! - [`lora`]: the adapter — targets, rank, scale (α/r or rsLoRA's α/√r), f32 master weights
//!   (the types live in `ragtune_runtime::adapter`, where inference loads and attaches them);
//! - [`dropout`]: LoRA dropout on the adapters' inputs, with masks seeded per step and module;
//! - [`peft`]: PEFT adapter folders in and out (`adapter_config.json` +
//!   `adapter_model.safetensors`), rejecting what is not supported with an error naming it
//!   (the runtime's reader and writer, re-exported);
//! - [`checkpoint`]: atomic, checksummed checkpoints that resume the same trajectory;
//! - [`data`]: JSONL examples (`{"text"}` or `{"prompt", "completion"}`), batching, seeded order;
//! - [`merge`]: an adapter merged into its base, written as a Hugging Face folder (the
//!   runtime's writer, re-exported);
//! - [`train`]: the batch layout, the training forward/backward, gradient accumulation,
//!   clipping and the AdamW step; [`schedule`]: warmup + cosine.

pub mod checkpoint;
pub mod data;
pub mod dropout;
pub mod error;
pub mod full;
pub mod lora;
pub mod merge;
pub mod peft;
pub mod schedule;
pub mod train;

pub use error::{Result, TrainError};
pub use full::FullTrainer;
pub use lora::{LoraAdapter, LoraConfig, LoraModule, Target};
pub use train::{FullGrads, LayerGrads, LoraTrainer, StepGrads, TrainBatch};
