//! A Llama-family decoder from a GGUF file: hyper-parameters from `{arch}.*` metadata (rope
//! frequency factors from the `rope_freqs.weight` tensor), tensors dequantized to f32, renamed
//! to Hugging Face names through [`TensorName`], Q/K rows un-permuted, then handed to
//! [`LlamaModel::from_weights`] like a safetensors checkpoint.

use std::collections::HashMap;
use std::path::Path;

use ragtune_compute::{DType, Device, Tensor};

use super::quant::dequantize;
use super::reader::{GgufFile, GgufValue};
use crate::config::{LlamaConfig, LlamaFamily};
use crate::error::{Result, RuntimeError};
use crate::llama::LlamaModel;
use crate::llama::names::{self, Projection, TensorName};
use crate::rope::{RopeConfig, RopeScaling};
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

fn field_err(file: &GgufFile, key: &str, detail: &str) -> RuntimeError {
    RuntimeError::Config {
        path: file.origin().to_string(),
        field: key.to_string(),
        detail: detail.to_string(),
    }
}

fn req_u(file: &GgufFile, key: &str) -> Result<usize> {
    opt_u(file, key)?.ok_or_else(|| field_err(file, key, "is required"))
}

fn opt_u(file: &GgufFile, key: &str) -> Result<Option<usize>> {
    file.get(key)
        .map(|v| v.as_u64().map(|n| n as usize).ok_or_else(|| field_err(file, key, "must be an integer")))
        .transpose()
}

fn opt_f(file: &GgufFile, key: &str) -> Result<Option<f64>> {
    file.get(key).map(|v| v.as_f64().ok_or_else(|| field_err(file, key, "must be a number"))).transpose()
}

/// `rope_freqs.weight`: llama.cpp's per-frequency rope divisors (how its converter stores Llama
/// 3.1's llama3 scaling), one per rotated pair, each finite and > 0.
fn rope_freqs(file: &GgufFile, head_dim: usize) -> Result<Option<Vec<f32>>> {
    const NAME: &str = "rope_freqs.weight";
    let Some(info) = file.tensor(NAME) else { return Ok(None) };
    let bad = |detail: String| RuntimeError::tensor(NAME, format!("{}: {detail}", file.origin()));
    if info.numel() != (head_dim / 2) as u64 || info.dims.len() != 1 {
        return Err(bad(format!(
            "has shape {:?}; it must be 1-D with head_dim / 2 = {} factors",
            info.shape(),
            head_dim / 2
        )));
    }
    let factors = dequantize(info.kind, file.tensor_bytes(info)?).map_err(bad)?;
    if let Some(i) = factors.iter().position(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(bad(format!("factor {i} is {}; factors must be finite and > 0", factors[i])));
    }
    Ok(Some(factors))
}

/// The decoder hyper-parameters a GGUF file describes.
pub fn config_from_gguf(file: &GgufFile) -> Result<LlamaConfig> {
    let arch = file.get("general.architecture").and_then(GgufValue::as_str).unwrap_or("missing");
    let family = match arch {
        "llama" => LlamaFamily::Llama,
        "qwen2" => LlamaFamily::Qwen2,
        other => {
            return Err(field_err(
                file,
                "general.architecture",
                &format!(
                    "`{other}` is not supported; ragtune runs llama (also Mistral, SmolLM) and qwen2 GGUF files"
                ),
            ));
        }
    };
    let k = |name: &str| format!("{arch}.{name}");
    let hidden_size = req_u(file, &k("embedding_length"))?;
    let num_heads = req_u(file, &k("attention.head_count"))?;
    let num_kv_heads = opt_u(file, &k("attention.head_count_kv"))?.unwrap_or(num_heads);
    if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(field_err(
            file,
            &k("attention.head_count_kv"),
            "must be > 0 and divide attention.head_count",
        ));
    }
    let head_dim = match opt_u(file, &k("attention.key_length"))? {
        Some(d) => d,
        None => hidden_size / num_heads,
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(field_err(file, &k("attention.key_length"), "the head size must be even and > 0"));
    }
    let scaling = match file.get(&k("rope.scaling.type")).and_then(GgufValue::as_str) {
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear {
            factor: opt_f(file, &k("rope.scaling.factor"))?.ok_or_else(|| {
                field_err(file, &k("rope.scaling.factor"), "is required for linear scaling")
            })?,
        },
        Some(other) => {
            return Err(field_err(
                file,
                &k("rope.scaling.type"),
                &format!("`{other}` is not supported; ragtune implements none and linear for GGUF"),
            ));
        }
    };
    let scaling = match rope_freqs(file, head_dim)? {
        None => scaling,
        // llama.cpp divides by both: linear scaling folds into the per-frequency factors.
        Some(factors) => match scaling {
            RopeScaling::Linear { factor } => {
                RopeScaling::Factors(factors.iter().map(|&r| r * factor as f32).collect())
            }
            _ => RopeScaling::Factors(factors),
        },
    };
    let vocab_size = match file.tensor(names::GGUF_EMBED) {
        Some(t) if t.dims.len() == 2 => t.dims[1] as usize,
        _ => {
            return Err(RuntimeError::tensor(
                names::GGUF_EMBED,
                format!("missing or not 2-D in {}", file.origin()),
            ));
        }
    };
    let eos: Vec<u32> = opt_u(file, "tokenizer.ggml.eos_token_id")?.map(|e| e as u32).into_iter().collect();
    let theta = opt_f(file, &k("rope.freq_base"))?.unwrap_or(10000.0);
    let num_layers = req_u(file, &k("block_count"))?;
    if num_layers == 0 || num_layers > crate::config::MAX_LAYERS {
        return Err(field_err(
            file,
            &k("block_count"),
            &format!("{num_layers}: a model has between 1 and {} layers", crate::config::MAX_LAYERS),
        ));
    }
    let eps_key = k("attention.layer_norm_rms_epsilon");
    let eps = opt_f(file, &eps_key)?.unwrap_or(1e-5);
    if !((eps as f32).is_finite() && (0.0..1.0).contains(&(eps as f32))) {
        return Err(field_err(file, &eps_key, &format!("{eps}: an epsilon must be >= 0 and < 1")));
    }
    Ok(LlamaConfig {
        family,
        vocab_size,
        hidden_size,
        intermediate_size: req_u(file, &k("feed_forward_length"))?,
        num_layers,
        num_heads,
        num_kv_heads,
        head_dim,
        max_position_embeddings: req_u(file, &k("context_length"))?,
        rms_norm_eps: eps as f32,
        rope: RopeConfig { theta, scaling, rotary_dim: head_dim },
        tie_word_embeddings: file.tensor(names::GGUF_LM_HEAD).is_none(),
        qkv_bias: file.tensor(&TensorName::Bias(0, Projection::Q).gguf()).is_some(),
        o_bias: file.tensor(&TensorName::Bias(0, Projection::O).gguf()).is_some(),
        mlp_bias: file.tensor(&TensorName::Bias(0, Projection::Up).gguf()).is_some(),
        bos_token_id: opt_u(file, "tokenizer.ggml.bos_token_id")?.map(|b| b as u32),
        eos_token_ids: eos,
        torch_dtype: None,
        sliding_window: None,
        full_attention_layers: Vec::new(),
    })
}

/// The heads whose rows llama.cpp permuted in tensor `name` of a `config` file: Q and K (weight
/// and bias) for the llama architecture only; qwen2 files keep Hugging Face's layout.
pub(super) fn permuted_heads(name: TensorName, config: &LlamaConfig) -> Option<usize> {
    if config.family != LlamaFamily::Llama {
        return None;
    }
    match name.projection()? {
        Projection::Q => Some(config.num_heads),
        Projection::K => Some(config.num_kv_heads),
        _ => None,
    }
}

/// Undo llama.cpp's rotary permutation of Q/K rows: within each head the converter stores the
/// row of (half `i`, index `j`) at `2j + i`; Hugging Face's `rotate_half` layout has it at
/// `i · head_dim/2 + j`. Works for weights `[heads·head_dim, in]` and biases (`cols = 1`).
pub fn unpermute_rows(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = data.len() / cols.max(1);
    let head_dim = rows / heads.max(1);
    let half = head_dim / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                let src = h * head_dim + 2 * j + i;
                let dst = h * head_dim + i * half + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Every decoder tensor of `file`, dequantized to f32 host tensors under Hugging Face names.
pub fn hf_tensors(file: &GgufFile, config: &LlamaConfig) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for info in &file.tensors {
        let Some(name) = TensorName::from_gguf(&info.name) else { continue };
        let bytes = file.tensor_bytes(info)?;
        let mut data = dequantize(info.kind, bytes)
            .map_err(|e| RuntimeError::tensor(&info.name, format!("{}: {e}", file.origin())))?;
        let shape = info.shape();
        let cols = if shape.len() == 2 { shape[1] } else { 1 };
        if let Some(heads) = permuted_heads(name, config) {
            data = unpermute_rows(&data, heads, cols);
        }
        out.insert(name.hf(), Tensor::from_slice(&data, &shape)?);
    }
    Ok(out)
}

/// Load a GGUF decoder and its tokenizer, weights converted to `dtype` on `device`.
pub fn load_gguf(path: &Path, dtype: DType, device: Device) -> Result<(LlamaModel, Tokenizer)> {
    let file = GgufFile::open(path)?;
    let config = config_from_gguf(&file)?;
    let tokenizer = super::tokenizer::tokenizer(&file)?;
    let tensors = hf_tensors(&file, &config)?;
    let weights = Weights::from_tensors(tensors, &path.display().to_string(), dtype, device);
    Ok((LlamaModel::from_weights(config, &weights)?, tokenizer))
}
