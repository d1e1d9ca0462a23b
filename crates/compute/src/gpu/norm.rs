//! Launches of kernels/norm.cu: one block per row, forward and RMSNorm's backward.

use std::sync::Arc;

use super::{args, output, per_row, row_threads};
use crate::backend::GpuBackend;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::Tensor;

pub fn rms_norm(backend: &Arc<dyn GpuBackend>, x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let cols = w.numel();
    per_row(backend, x, kernels::norm::RMS_NORM.of(x.dtype())?, cols, |out| args![x, w, out, cols, eps])
}

pub fn layer_norm(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let cols = w.numel();
    per_row(backend, x, kernels::norm::LAYER_NORM.of(x.dtype())?, cols, |out| args![x, w, b, out, cols, eps])
}

pub fn l2_normalize(backend: &Arc<dyn GpuBackend>, x: &Tensor) -> Result<Tensor> {
    let cols = x.last_dim();
    per_row(backend, x, kernels::norm::L2_NORMALIZE.of(x.dtype())?, cols, |out| args![x, out, cols])
}

/// `(dx, dw)`: one block per row; dw accumulates with atomics into a zeroed buffer.
pub fn rms_norm_backward(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    let cols = w.numel();
    let rows = x.numel() / cols.max(1);
    let (dx, dx_ptr) = output(backend, x.shape(), DType::F32)?;
    let dw = Tensor::zeros(w.shape(), DType::F32, &Device::Gpu(backend.clone()))?;
    if rows == 0 || cols == 0 {
        return Ok((dx, dw));
    }
    backend.launch(&KernelCall {
        kernel: kernels::norm::RMS_NORM_BACKWARD_F32,
        dims: LaunchDims::linear(rows as u32, row_threads(cols), 0),
        args: args![x, w, dy, Arg::Ptr(dx_ptr), &dw, cols, eps],
    })?;
    Ok((dx, dw))
}
