//! `rms_norm` and `layer_norm` over the last dimension, and `rms_norm`'s backward (f32, for
//! training).

use super::f32_operands::{f32_data, f32_only, f32_output, same_shape};
use super::{common_device, common_float_dtype, host_output, with_float};
use crate::device::Device;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

fn check(op: &'static str, x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f32) -> Result<()> {
    if w.rank() != 1 || w.numel() != x.last_dim() || x.rank() == 0 {
        return Err(ComputeError::shape(
            op,
            format!(
                "weight {:?} must be [{}] to match the last dimension of x {:?}",
                w.shape(),
                x.last_dim(),
                x.shape()
            ),
        ));
    }
    if let Some(b) = b
        && b.shape() != w.shape()
    {
        return Err(ComputeError::shape(
            op,
            format!("bias {:?} must match weight {:?}", b.shape(), w.shape()),
        ));
    }
    if x.last_dim() > i32::MAX as usize || x.numel() / x.last_dim().max(1) > i32::MAX as usize {
        return Err(ComputeError::shape(
            op,
            format!("x {:?}: rows and the row length must each fit in 31 bits", x.shape()),
        ));
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(ComputeError::invalid(op, format!("eps must be finite and >= 0, got {eps}")));
    }
    Ok(())
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    const OP: &str = "rms_norm";
    check(OP, x, w, None, eps)?;
    let dt = common_float_dtype(OP, &[x, w])?;
    match common_device(OP, &[x, w])? {
        Device::Cpu => with_float!(dt, T => {
            let (xs, ws) = (x.as_slice::<T>()?, w.as_slice::<T>()?);
            Ok(host_output::<T>(x.shape(), |o| cpu::norm::rms_norm(xs, ws, eps, o)))
        }),
        Device::Gpu(b) => gpu::norm::rms_norm(&b, x, w, eps),
    }
}

/// LayerNorm over the last dimension: `(x − mean) / sqrt(var + eps) · w + b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    check(OP, x, w, b, eps)?;
    let mut all = vec![x, w];
    all.extend(b);
    let dt = common_float_dtype(OP, &all)?;
    match common_device(OP, &all)? {
        Device::Cpu => with_float!(dt, T => {
            let (xs, ws) = (x.as_slice::<T>()?, w.as_slice::<T>()?);
            let bs = b.map(|b| b.as_slice::<T>()).transpose()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::norm::layer_norm(xs, ws, bs, eps, o)))
        }),
        Device::Gpu(backend) => gpu::norm::layer_norm(&backend, x, w, b, eps),
    }
}

/// `layer_norm(x + r, w, b, eps)`: a residual connection and the LayerNorm after it in one pass
/// on the CPU (the same values as [`super::add`] then [`layer_norm`]); those two ops elsewhere.
pub fn add_layer_norm(x: &Tensor, r: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    const OP: &str = "add_layer_norm";
    if x.shape() != r.shape() {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?} and the residual {:?} must have the same shape", x.shape(), r.shape()),
        ));
    }
    check(OP, x, w, b, eps)?;
    let mut all = vec![x, r, w];
    all.extend(b);
    let dt = common_float_dtype(OP, &all)?;
    match common_device(OP, &all)? {
        Device::Cpu => with_float!(dt, T => {
            let (xs, rs, ws) = (x.as_slice::<T>()?, r.as_slice::<T>()?, w.as_slice::<T>()?);
            let bs = b.map(|b| b.as_slice::<T>()).transpose()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::norm::add_layer_norm(xs, rs, ws, bs, eps, o)))
        }),
        Device::Gpu(_) => layer_norm(&super::add(x, r)?, w, b, eps),
    }
}

/// Row-wise L2 normalisation over the last dimension: `x / max(‖x‖, 1e-12)` (unit vectors for
/// cosine similarity; an all-zero row stays zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "l2_normalize";
    let dt = common_float_dtype(OP, &[x])?;
    if x.rank() == 0 {
        return Err(ComputeError::shape(
            OP,
            "x is a scalar; it needs at least one dimension (rows of vectors)",
        ));
    }
    match common_device(OP, &[x])? {
        Device::Cpu => with_float!(dt, T => {
            let xs = x.as_slice::<T>()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::norm::l2_normalize(xs, x.last_dim(), o)))
        }),
        Device::Gpu(b) => gpu::norm::l2_normalize(&b, x),
    }
}

/// Gradients of `y = rms_norm(x, w, eps)` given `dy`: `(dx, dw)`, f32.
pub fn rms_norm_backward(x: &Tensor, w: &Tensor, dy: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    const OP: &str = "rms_norm_backward";
    same_shape(OP, ("x", x), ("dy", dy))?;
    if x.rank() == 0 || w.rank() != 1 || w.numel() != x.last_dim() {
        return Err(ComputeError::shape(
            OP,
            format!(
                "weight {:?} must be [{}] to match the last dimension of x {:?}",
                w.shape(),
                x.last_dim(),
                x.shape()
            ),
        ));
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(ComputeError::invalid(OP, format!("eps must be finite and >= 0, got {eps}")));
    }
    let device = common_device(OP, &[x, w, dy])?;
    if let Device::Gpu(backend) = &device {
        for (what, t) in [("x", x), ("w", w), ("dy", dy)] {
            f32_only(OP, what, t)?;
        }
        return crate::gpu::norm::rms_norm_backward(backend, x, w, dy, eps);
    }
    let (xs, ws, ds) = (f32_data(OP, "x", x)?, f32_data(OP, "w", w)?, f32_data(OP, "dy", dy)?);
    let mut dx = vec![0f32; xs.len()];
    let dw = cpu::norm::rms_norm_backward(&xs, &ws, &ds, eps, &mut dx);
    Ok((f32_output(&dx, x.shape(), &device)?, f32_output(&dw, w.shape(), &device)?))
}
