//! Launches of kernels/loss.cu: one block per row of logits.

use std::sync::Arc;

use super::{args, output, row_threads};
use crate::backend::GpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::Tensor;

/// `(dlogits, row_loss)`: the gradient of the logits (their shape, f32) and each row's loss
/// (f32 `[rows]`, 0 for an ignored target), both on the device.
pub fn cross_entropy(
    backend: &Arc<dyn GpuBackend>,
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i32,
    grad_scale: f32,
) -> Result<(Tensor, Tensor)> {
    let vocab = logits.last_dim();
    let rows = targets.numel();
    let (dl, dl_ptr) = output(backend, logits.shape(), DType::F32)?;
    let (loss, loss_ptr) = output(backend, &[rows], DType::F32)?;
    if rows == 0 || vocab == 0 {
        return Ok((dl, loss));
    }
    backend.launch(&KernelCall {
        kernel: kernels::loss::CROSS_ENTROPY_F32,
        dims: LaunchDims::linear(rows as u32, row_threads(vocab), 0),
        args: args![
            logits,
            targets,
            Arg::Ptr(dl_ptr),
            Arg::Ptr(loss_ptr),
            vocab,
            Arg::I32(ignore_index),
            grad_scale
        ],
    })?;
    Ok((dl, loss))
}
