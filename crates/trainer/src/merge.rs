//! An adapter merged into its base, and a fully fine-tuned model, written as a Hugging Face
//! folder: the runtime's writers (`ragtune_runtime::adapter::merge`), re-exported for the
//! trainer's callers.

pub use ragtune_runtime::adapter::merge::{merge_to_folder, save_model_folder};
