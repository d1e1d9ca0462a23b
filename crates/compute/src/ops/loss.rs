//! `cross_entropy`: fused log-softmax + negative log-likelihood with an ignore index, returning
//! the loss and the gradient of the logits in one pass (the logits are the largest activation of
//! a language model; they are read once).

use super::common_device;
use super::f32_operands::f32_data;
use super::{host_output, require_dtype};
use crate::cpu;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;

/// The ignore index of PyTorch and Hugging Face labels: a target equal to it is not counted.
pub const IGNORE_INDEX: i32 = -100;

/// The result of [`cross_entropy`].
#[derive(Debug)]
pub struct CrossEntropy {
    /// Mean negative log-likelihood over the counted targets (0 when none is counted).
    pub loss: f32,
    /// How many targets were counted (not equal to the ignore index).
    pub count: usize,
    /// `∂loss/∂logits`, f32, the shape of the logits: `(softmax − onehot) / count` on counted
    /// rows, zeros on ignored ones.
    pub dlogits: Tensor,
}

/// Mean cross-entropy of `logits` `[.., vocab]` (f32) against `targets` i32 `[..]` (one per
/// row), skipping targets equal to `ignore_index` — PyTorch's
/// `cross_entropy(reduction="mean", ignore_index)`. Shifting for next-token prediction is the
/// caller's (targets of row t are the labels of t + 1). A counted target outside `0..vocab` is an
/// error naming its position. With no counted target the loss is 0 and `dlogits` is zero (not
/// PyTorch's NaN: an all-prompt batch should not poison a run). On a GPU one fused kernel
/// (`kernels/loss.cu`) writes the gradient on the device; the targets (to check and count them)
/// and the per-row losses go through the host.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore_index: i32) -> Result<CrossEntropy> {
    const OP: &str = "cross_entropy";
    require_dtype(OP, targets, DType::I32, ("targets", "are"), "they must be i32 token ids")?;
    if logits.rank() == 0
        || logits.rank() != targets.rank() + 1
        || logits.shape()[..targets.rank()] != *targets.shape()
    {
        return Err(ComputeError::shape(
            OP,
            format!(
                "logits {:?} must be [..targets {:?}, vocab]: one target per row",
                logits.shape(),
                targets.shape()
            ),
        ));
    }
    let vocab = logits.last_dim();
    let device = common_device(OP, &[logits, targets])?;
    let t = targets.to_vec::<i32>()?;
    if let Some(pos) = t.iter().position(|&x| x != ignore_index && (x < 0 || x as usize >= vocab)) {
        return Err(ComputeError::invalid(
            OP,
            format!(
                "targets[{pos}] (flat position) = {} lies outside the vocabulary 0..{vocab} and is not the \
                 ignore index {ignore_index}",
                t[pos]
            ),
        ));
    }
    let count = t.iter().filter(|&&x| x != ignore_index).count();
    require_dtype(
        OP,
        logits,
        DType::F32,
        ("logits", "are"),
        "the loss takes f32 logits (cast them with ops::cast)",
    )?;
    if vocab > i32::MAX as usize || t.len() > u32::MAX as usize {
        return Err(ComputeError::shape(
            OP,
            format!("logits {:?}: rows and vocabulary must fit in 31 bits", logits.shape()),
        ));
    }
    let scale = if count > 0 { 1.0 / count as f32 } else { 0.0 };
    if let crate::device::Device::Gpu(backend) = &device {
        let (dlogits, rows) = crate::gpu::loss::cross_entropy(backend, logits, targets, ignore_index, scale)?;
        // Per-row losses summed on the host in f64, as the CPU side sums them.
        let total: f64 = rows.to_vec::<f32>()?.iter().map(|&l| f64::from(l)).sum();
        let loss = if count > 0 { (total / count as f64) as f32 } else { 0.0 };
        return Ok(CrossEntropy { loss, count, dlogits });
    }
    let xs = f32_data(OP, "logits", logits)?;
    // The gradient is written straight into the output tensor: at a 49k vocabulary it is the
    // step's largest buffer, and a copy of it cost a fresh mapping and a pass over it.
    let mut total = 0f64;
    let dlogits = host_output::<f32>(logits.shape(), |dl| {
        total = cpu::loss::cross_entropy(&xs, &t, vocab, ignore_index, scale, dl)
    });
    let loss = if count > 0 { (total / count as f64) as f32 } else { 0.0 };
    Ok(CrossEntropy { loss, count, dlogits })
}
