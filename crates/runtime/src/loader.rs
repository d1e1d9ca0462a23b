//! One entry point for "a model at this path": a Hugging Face folder (`config.json`,
//! safetensors, `tokenizer.json`) or a `.gguf` file.

use std::path::Path;

use ragtune_compute::{DType, Device};

use crate::error::{Result, RuntimeError};
use crate::llama::LlamaModel;
use crate::tokenizer::Tokenizer;

/// A decoder and its tokenizer from a model folder or a GGUF file.
pub fn load_causal_lm(path: &Path, dtype: DType, device: Device) -> Result<(LlamaModel, Tokenizer)> {
    if path.is_file() {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            return crate::gguf::load_gguf(path, dtype, device);
        }
        return Err(RuntimeError::input(format!(
            "{} is a file but not a .gguf file; pass a GGUF file or a Hugging Face model folder",
            path.display()
        )));
    }
    if !path.is_dir() {
        return Err(RuntimeError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let model = LlamaModel::from_dir(path, dtype, device)?;
    let tokenizer = Tokenizer::from_file(&path.join("tokenizer.json"))?;
    Ok((model, tokenizer))
}
