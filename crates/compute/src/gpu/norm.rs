//! Launches of kernels/norm.cu: one block per row.

use std::sync::Arc;

use super::{output, ptr, row_threads};
use crate::backend::GpuBackend;
use crate::error::Result;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::Tensor;

pub fn rms_norm(backend: &Arc<dyn GpuBackend>, x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let cols = w.numel();
    let rows = x.numel() / cols.max(1);
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if rows == 0 || cols == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "norm",
        function: format!("rms_norm_{}", x.dtype().kernel_suffix()),
        dims: LaunchDims::linear(rows as u32, row_threads(cols), 0),
        args: vec![ptr(x), ptr(w), Arg::Ptr(out_ptr), Arg::I32(cols as i32), Arg::F32(eps)],
    })?;
    Ok(out)
}

pub fn layer_norm(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let cols = w.numel();
    let rows = x.numel() / cols.max(1);
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if rows == 0 || cols == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "norm",
        function: format!("layer_norm_{}", x.dtype().kernel_suffix()),
        dims: LaunchDims::linear(rows as u32, row_threads(cols), 0),
        args: vec![
            ptr(x),
            ptr(w),
            b.map_or(Arg::Ptr(0), ptr),
            Arg::Ptr(out_ptr),
            Arg::I32(cols as i32),
            Arg::F32(eps),
        ],
    })?;
    Ok(out)
}

pub fn l2_normalize(backend: &Arc<dyn GpuBackend>, x: &Tensor) -> Result<Tensor> {
    let cols = x.last_dim();
    let rows = x.numel() / cols.max(1);
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if rows == 0 || cols == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "norm",
        function: format!("l2_normalize_{}", x.dtype().kernel_suffix()),
        dims: LaunchDims::linear(rows as u32, row_threads(cols), 0),
        args: vec![ptr(x), Arg::Ptr(out_ptr), Arg::I32(cols as i32)],
    })?;
    Ok(out)
}
