//! The LoRA adapter the trainer trains: its targets, rank, scale and f32 master weights. The
//! types live in the runtime (`ragtune_runtime::adapter`), where inference loads, attaches and
//! merges adapters; they are re-exported here so training code names them as before.

pub use ragtune_runtime::adapter::{LoraAdapter, LoraConfig, LoraModule, attach_bank, detach};
/// The seven projections of a Llama layer LoRA can target: the runtime's
/// [`Projection`](ragtune_runtime::llama::Projection), whose names (`q_proj`,
/// `self_attn.q_proj`, ...) come from its one parameter-name table.
pub use ragtune_runtime::llama::Projection as Target;
