//! One entry point for "a model at this path": a Hugging Face folder (`config.json`,
//! safetensors, `tokenizer.json`) or a `.gguf` file, in a chosen dtype or at the precision its
//! weights are stored in ([`Precision::Stored`]: a GGUF file's quant blocks kept and multiplied
//! on the CPU with 8-bit activations; a safetensors folder in its own dtype).

use std::path::Path;

use ragtune_compute::cpu::quant::ActBits;
use ragtune_compute::{DType, Device};

use crate::config::ModelConfig;
use crate::error::{Result, RuntimeError};
use crate::llama::LlamaModel;
use crate::tokenizer::Tokenizer;

/// The precision weights are loaded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Converted to this float dtype (the exact, default path).
    Dtype(DType),
    /// As the file stores them: a GGUF file's Q8_0 / Q4_0 / Q4_1 / Q4_K / Q6_K projections stay
    /// quantized (CPU only) and meet activations quantized to 8 bits plus an 8-bit residual
    /// (`stored`); a safetensors folder loads in its `torch_dtype` (f32 when absent).
    Stored,
    /// [`Precision::Stored`] with llama.cpp's plain 8-bit activations (`stored-q8`): less work
    /// per block, but greedy tokens drift from the f32 path sooner.
    StoredQ8,
}

impl Precision {
    /// `stored`, or a float dtype name (`f32`, `bf16`, `f16`); `None` otherwise.
    pub fn parse(spec: &str) -> Option<Precision> {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("stored") {
            return Some(Precision::Stored);
        }
        if spec.eq_ignore_ascii_case("stored-q8") {
            return Some(Precision::StoredQ8);
        }
        DType::parse(spec).filter(|d| d.is_float()).map(Precision::Dtype)
    }
}

fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A decoder and its tokenizer from a model folder or a GGUF file.
pub fn load_causal_lm(path: &Path, dtype: DType, device: Device) -> Result<(LlamaModel, Tokenizer)> {
    load_causal_lm_as(path, Precision::Dtype(dtype), device)
}

/// [`load_causal_lm`] at a [`Precision`].
pub fn load_causal_lm_as(
    path: &Path,
    precision: Precision,
    device: Device,
) -> Result<(LlamaModel, Tokenizer)> {
    if path.is_file() {
        if is_gguf(path) {
            return match precision {
                Precision::Dtype(dtype) => crate::gguf::load_gguf(path, dtype, device),
                Precision::Stored => crate::gguf::load_gguf_stored(path, ActBits::Fine, device),
                Precision::StoredQ8 => crate::gguf::load_gguf_stored(path, ActBits::I8, device),
            };
        }
        return Err(RuntimeError::input(format!(
            "{} is a file but not a .gguf file; pass a GGUF file or a Hugging Face model folder",
            path.display()
        )));
    }
    if !path.is_dir() {
        return Err(RuntimeError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let dtype = match precision {
        Precision::Dtype(dtype) => dtype,
        Precision::Stored | Precision::StoredQ8 => stored_dtype(path)?,
    };
    let model = LlamaModel::from_dir(path, dtype, device)?;
    let tokenizer = Tokenizer::from_file(&path.join("tokenizer.json"))?;
    Ok((model, tokenizer))
}

/// The dtype a safetensors folder's config says its weights are saved in (f32 when it is
/// silent); a dtype ragtune cannot run is refused with the fix.
fn stored_dtype(dir: &Path) -> Result<DType> {
    let config_path = dir.join("config.json");
    let saved = match ModelConfig::from_file(&config_path)? {
        ModelConfig::Llama(c) => c.torch_dtype,
        ModelConfig::Bert(_) => None,
    };
    let Some(name) = saved else { return Ok(DType::F32) };
    DType::parse(&name).filter(|d| d.is_float()).ok_or_else(|| RuntimeError::Config {
        path: config_path.display().to_string(),
        field: "torch_dtype".into(),
        detail: format!(
            "`{name}` is not a dtype ragtune runs; pass --dtype f32, bf16 or f16 instead of stored"
        ),
    })
}
