//! A GGUF decoder at its stored precision (`--dtype stored`): the projections and the output
//! layer keep their quant blocks (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) as [`QMatrix`] weights that the
//! CPU multiplies with quantized activations (8 bits plus an 8-bit residual, or 8 bits alone
//! for `stored-q8`, as llama.cpp); everything else (norms, the embedding table that is
//! looked up by row, tensors of other block types) is dequantized to f32 as [`super::load_gguf`]
//! does. Activations are f32, so the model's dtype is f32. CPU only: a GPU runs dense weights.
//! An untied output layer is also kept densely (the model's `lm_head` field is a Tensor that
//! training code reads), which costs its f32 size in memory but not in decode traffic.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ragtune_compute::cpu::quant::{ActBits, QMatrix, QuantKind};
use ragtune_compute::{DType, Device, Tensor};

use super::model::{config_from_gguf, permuted_heads, unpermute_rows};
use super::quant::{GgmlType, dequantize};
use super::reader::{GgufFile, TensorInfo};
use crate::config::LlamaConfig;
use crate::error::{Result, RuntimeError};
use crate::linear::{Linear, QuantWeight};
use crate::llama::LlamaModel;
use crate::llama::names::{self, TensorName};
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

/// The block types kept quantized; the rest are dequantized.
fn quant_kind(kind: GgmlType) -> Option<QuantKind> {
    match kind {
        GgmlType::Q8_0 => Some(QuantKind::Q8_0),
        GgmlType::Q4_0 => Some(QuantKind::Q4_0),
        GgmlType::Q4_1 => Some(QuantKind::Q4_1),
        GgmlType::Q4_K => Some(QuantKind::Q4_K),
        GgmlType::Q6_K => Some(QuantKind::Q6_K),
        _ => None,
    }
}

/// The row order that undoes llama.cpp's Q/K permutation (see [`unpermute_rows`]): new row
/// `h·hd + i·hd/2 + j` is stored row `h·hd + 2j + i`.
pub fn unpermute_order(rows: usize, heads: usize) -> Vec<usize> {
    let head_dim = rows / heads.max(1);
    let half = head_dim / 2;
    let mut order = vec![0usize; rows];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                order[h * head_dim + i * half + j] = h * head_dim + 2 * j + i;
            }
        }
    }
    order
}

/// The decoder's tensors: quantized matrices (projections, the output layer, and the tied
/// embedding's copy for the output layer) and dense f32 tensors (everything the model reads
/// densely), both under Hugging Face names.
type Split = (HashMap<String, Tensor>, HashMap<String, QMatrix>);

fn split_tensors(file: &GgufFile, config: &LlamaConfig) -> Result<Split> {
    let (mut dense, mut quant) = (HashMap::new(), HashMap::new());
    let bad =
        |info: &TensorInfo, e: String| RuntimeError::tensor(&info.name, format!("{}: {e}", file.origin()));
    for info in &file.tensors {
        let Some(tensor) = TensorName::from_gguf(&info.name) else { continue };
        let shape = info.shape();
        let bytes = file.tensor_bytes(info)?;
        let is_matrix = shape.len() == 2;
        let projection = matches!(tensor, TensorName::Weight(..));
        let head = matches!(tensor, TensorName::LmHead | TensorName::Embed);
        if let (Some(kind), true) = (quant_kind(info.kind), is_matrix && (projection || head)) {
            let mut q = QMatrix::from_gguf(kind, shape[0], shape[1], bytes).map_err(|e| bad(info, e))?;
            if let Some(heads) = permuted_heads(tensor, config) {
                q = q.select_rows(&unpermute_order(shape[0], heads)).map_err(|e| bad(info, e))?;
            }
            quant.insert(tensor.hf(), q);
            // The embedding is looked up by row, and an untied head must exist densely for the
            // model's `lm_head` field: both are also kept as f32.
            if !head {
                continue;
            }
        }
        let mut data = dequantize(info.kind, bytes).map_err(|e| bad(info, e))?;
        if let Some(heads) = permuted_heads(tensor, config) {
            data = unpermute_rows(&data, heads, if shape.len() == 2 { shape[1] } else { 1 });
        }
        dense.insert(tensor.hf(), Tensor::from_slice(&data, &shape)?);
    }
    Ok((dense, quant))
}

/// Load a GGUF decoder keeping its quantized projections and output layer as stored (CPU only),
/// their input activations quantized as `acts` says.
pub fn load_gguf_stored(path: &Path, acts: ActBits, device: Device) -> Result<(LlamaModel, Tokenizer)> {
    if !matches!(device, Device::Cpu) {
        return Err(RuntimeError::Unsupported(format!(
            "--dtype stored keeps {}'s quant blocks and multiplies them on the CPU; on a GPU load it \
             with --dtype bf16 (or f32), or pass --device cpu",
            path.display()
        )));
    }
    let file = GgufFile::open(path)?;
    let config = config_from_gguf(&file)?;
    let tokenizer = super::tokenizer::tokenizer(&file)?;
    let (dense, mut quant) = split_tensors(&file, &config)?;
    let origin = path.display().to_string();
    let weights = Weights::from_tensors(dense, &origin, DType::F32, Device::Cpu);
    let tied = config.tie_word_embeddings;
    let mut model = LlamaModel::from_weights_with(config, &weights, &mut |prefix, out, inp, bias| {
        let name = format!("{prefix}.weight");
        let Some(q) = quant.remove(&name) else { return Linear::load(&weights, prefix, out, inp, bias) };
        if (q.rows, q.cols) != (out, inp) {
            return Err(RuntimeError::tensor(
                &name,
                format!("{origin}: has shape [{}, {}]; the config needs [{out}, {inp}]", q.rows, q.cols),
            ));
        }
        let bias = if bias { Some(weights.get(&format!("{prefix}.bias"), &[out])?) } else { None };
        Linear::quantized(QuantWeight { matrix: Arc::new(q), acts }, bias)
    })?;
    let head = quant.remove(if tied { names::EMBED } else { names::LM_HEAD });
    model.lm_head_quant = head.map(|q| QuantWeight { matrix: Arc::new(q), acts });
    Ok((model, tokenizer))
}
