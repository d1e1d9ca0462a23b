//! Launches of the training kernels that live beside their forward: `swiglu_backward` in
//! kernels/act.cu, `rms_norm_backward` in kernels/norm.cu, `embedding_backward` in
//! kernels/embed.cu. All f32; the ops have checked shapes, dtypes and ids.

use std::sync::Arc;

use super::{elementwise_dims, output, ptr, row_threads};
use crate::backend::GpuBackend;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::Tensor;

/// `(dgate, dup)`.
pub fn swiglu_backward(
    backend: &Arc<dyn GpuBackend>,
    gate: &Tensor,
    up: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let n = gate.numel();
    let (dg, dg_ptr) = output(backend, gate.shape(), DType::F32)?;
    let (du, du_ptr) = output(backend, gate.shape(), DType::F32)?;
    if n == 0 {
        return Ok((dg, du));
    }
    backend.launch(&KernelCall {
        family: "act",
        function: "swiglu_backward_f32".to_string(),
        dims: elementwise_dims(n),
        args: vec![ptr(gate), ptr(up), ptr(dy), Arg::Ptr(dg_ptr), Arg::Ptr(du_ptr), Arg::I64(n as i64)],
    })?;
    Ok((dg, du))
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
        family: "norm",
        function: "rms_norm_backward_f32".to_string(),
        dims: LaunchDims::linear(rows as u32, row_threads(cols), 0),
        args: vec![ptr(x), ptr(w), ptr(dy), Arg::Ptr(dx_ptr), ptr(&dw), Arg::I32(cols as i32), Arg::F32(eps)],
    })?;
    Ok((dx, dw))
}

/// `[vocab, d]`: rows of `dy` scatter-added by id into a zeroed table.
pub fn embedding_backward(
    backend: &Arc<dyn GpuBackend>,
    ids: &Tensor,
    dy: &Tensor,
    vocab: usize,
) -> Result<Tensor> {
    let d = dy.last_dim();
    let n = ids.numel();
    let table = Tensor::zeros(&[vocab, d], DType::F32, &Device::Gpu(backend.clone()))?;
    if n == 0 || d == 0 {
        return Ok(table);
    }
    backend.launch(&KernelCall {
        family: "embed",
        function: "embedding_backward_f32".to_string(),
        dims: LaunchDims::linear(n.min(1 << 16) as u32, row_threads(d).min(256), 0),
        args: vec![ptr(ids), ptr(dy), ptr(&table), Arg::I32(n as i32), Arg::I32(d as i32)],
    })?;
    Ok(table)
}

/// `(dq, dk, dv)` of attention: a block per query row, atomics into zeroed buffers.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    backend: &Arc<dyn GpuBackend>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dout: &Tensor,
    dims: crate::cpu::attention::AttentionDims,
    spec: crate::ops::AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let device = Device::Gpu(backend.clone());
    let dq = Tensor::zeros(q.shape(), DType::F32, &device)?;
    let dk = Tensor::zeros(k.shape(), DType::F32, &device)?;
    let dv = Tensor::zeros(v.shape(), DType::F32, &device)?;
    let rows = dims.batch * dims.sq * dims.hq;
    if rows == 0 || dims.d == 0 || dims.skv == 0 {
        return Ok((dq, dk, dv));
    }
    backend.launch(&KernelCall {
        family: "attention",
        function: "attention_backward_f32".to_string(),
        dims: LaunchDims::linear(rows as u32, 128, 0),
        args: vec![
            ptr(q),
            ptr(k),
            ptr(v),
            ptr(dout),
            ptr(&dq),
            ptr(&dk),
            ptr(&dv),
            key_lens.map_or(Arg::Ptr(0), ptr),
            Arg::I32(dims.sq as i32),
            Arg::I32(dims.skv as i32),
            Arg::I32(dims.hq as i32),
            Arg::I32(dims.hkv as i32),
            Arg::I32(dims.d as i32),
            Arg::I32(i32::from(spec.causal)),
            Arg::F32(spec.scale),
            // 0: no window (the op checked a window is >= 1 and fits in 31 bits).
            Arg::I32(spec.window.map_or(0, |w| w as i32)),
        ],
    })?;
    Ok((dq, dk, dv))
}
