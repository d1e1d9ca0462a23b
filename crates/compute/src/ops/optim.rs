//! The optimizer: [`adamw_step`] and [`clip_grad_norm`].
//!
//! Design: AdamW updates its three f32 tensors (weights, first and second moments) in place, like
//! `copy_into` — through the copy-on-write storage of [`Tensor`], so a clone held elsewhere (a
//! checkpoint being written, say) keeps its values. On a GPU the update is one fused kernel
//! (`kernels/optim.cu`), in place on the device. Clipping's norm is summed where the gradients
//! live: on a GPU each gradient's sum of squares is one `g · gᵀ` GEMM (`[1, n] × [n, 1]`, a
//! reduction cuBLAS does at bandwidth), the partial sums are added on the device and only the
//! one total crosses to the host — not every gradient, every step.

use super::common_device;
use super::f32_operands::f32_data;
use super::matmul::MatmulSpec;
use super::require_dtype;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;

/// AdamW hyper-parameters, PyTorch's names and defaults (`torch.optim.AdamW`) except the
/// learning rate, which the caller sets per step (schedules).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay: `p *= 1 − lr · weight_decay` before the Adam step.
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// One AdamW update of `param` with gradient `grad`, moments `m` and `v` (all f32, one shape,
/// one device), learning rate `lr`, at 1-based `step` (the bias corrections use it). `param`,
/// `m` and `v` are updated in place (copy-on-write: see the module docs).
pub fn adamw_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    hp: &AdamW,
    lr: f32,
    step: u64,
) -> Result<()> {
    const OP: &str = "adamw_step";
    for (what, t) in [("grad", grad), ("m", &*m), ("v", &*v)] {
        if t.shape() != param.shape() {
            return Err(ComputeError::shape(
                OP,
                format!("{what} {:?} must have the shape of the parameter {:?}", t.shape(), param.shape()),
            ));
        }
    }
    if step == 0 {
        return Err(ComputeError::invalid(OP, "step counts from 1 (the first update is step 1)"));
    }
    let ok = |x: f32| x.is_finite();
    if !(ok(lr)
        && ok(hp.eps)
        && ok(hp.weight_decay)
        && (0.0..1.0).contains(&hp.beta1)
        && (0.0..1.0).contains(&hp.beta2))
    {
        return Err(ComputeError::invalid(
            OP,
            format!("lr {lr} and eps/weight_decay must be finite and betas in [0, 1): got {hp:?}"),
        ));
    }
    let device = common_device(OP, &[param, grad, m, v])?;
    // Bias corrections in f64, as PyTorch computes them on Python floats.
    let bc1 = 1.0 - f64::from(hp.beta1).powf(step as f64);
    let bc2 = 1.0 - f64::from(hp.beta2).powf(step as f64);
    let step_size = (f64::from(lr) / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    if let crate::device::Device::Gpu(backend) = &device {
        for (what, t) in [("param", &*param), ("grad", grad), ("m", &*m), ("v", &*v)] {
            require_dtype(OP, t, DType::F32, (what, "is"), "AdamW updates f32 master weights")?;
        }
        // Each of the three gets storage of its own first (copy-on-write), as on the host.
        let (pa, ma, va) = (param.device_addr_mut()?, m.device_addr_mut()?, v.device_addr_mut()?);
        let scalars = crate::gpu::optim::AdamwScalars {
            decay: 1.0 - lr * hp.weight_decay,
            beta1: hp.beta1,
            beta2: hp.beta2,
            eps: hp.eps,
            step_size,
            bc2_sqrt,
        };
        return crate::gpu::optim::adamw(
            backend,
            pa.unwrap_or(0),
            grad,
            ma.unwrap_or(0),
            va.unwrap_or(0),
            &scalars,
        );
    }
    let g = f32_data(OP, "grad", grad)?;
    let run = |p: &mut [f32], m: &mut [f32], v: &mut [f32]| {
        cpu::optim::adamw(p, &g, m, v, lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, step_size, bc2_sqrt)
    };
    // The CPU: every operand is on the host (common_device checked it).
    for (what, t) in [("param", &*param), ("m", &*m), ("v", &*v)] {
        f32_data(OP, what, t)?;
    }
    let (pb, mb, vb) = (param.host_bytes_mut(), m.host_bytes_mut(), v.host_bytes_mut());
    if let (Some(pb), Some(mb), Some(vb)) = (pb, mb, vb) {
        run(bytemuck::cast_slice_mut(pb), bytemuck::cast_slice_mut(mb), bytemuck::cast_slice_mut(vb));
    }
    Ok(())
}

fn host_sum_squares(grads: &[Tensor]) -> Result<f64> {
    let mut total = 0f64;
    for g in grads {
        total += cpu::optim::sum_squares(&f32_data("clip_grad_norm", "gradient", g)?);
    }
    Ok(total)
}

/// Σ g² over every gradient, computed on the gradients' device; one f32 comes back.
fn device_sum_squares(grads: &[Tensor]) -> Result<f64> {
    let dot = MatmulSpec { trans_b: true, ..MatmulSpec::default() };
    let mut total: Option<Tensor> = None;
    for g in grads.iter().filter(|g| g.numel() > 0) {
        let row = g.reshape(&[1, g.numel()])?;
        let sq = super::matmul_ex(&row, &row, dot)?;
        total = Some(match total {
            None => sq,
            Some(t) => super::add(&t, &sq)?,
        });
    }
    match total {
        None => Ok(0.0),
        Some(t) => Ok(f64::from(t.to_vec_f32()?[0])),
    }
}

/// Clip gradients by their global L2 norm, PyTorch's `clip_grad_norm_`: when the norm over all
/// `grads` exceeds `max_norm`, every gradient is scaled by `max_norm / (norm + 1e-6)`. Returns
/// the norm before clipping. A NaN or infinite norm is an error (the step must not be applied).
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f32) -> Result<f32> {
    const OP: &str = "clip_grad_norm";
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(ComputeError::invalid(OP, format!("max_norm must be finite and > 0, got {max_norm}")));
    }
    for g in grads.iter() {
        require_dtype(OP, g, DType::F32, ("gradient", "is"), "gradients are f32")?;
    }
    let on_device = grads.iter().any(|g| !g.is_host());
    let total = if on_device { device_sum_squares(grads)? } else { host_sum_squares(grads)? };
    let norm = total.sqrt() as f32;
    if !norm.is_finite() {
        return Err(ComputeError::invalid(
            OP,
            format!(
                "the gradient norm is {norm}: a NaN or infinity reached the gradients (lower the learning rate, check the data)"
            ),
        ));
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            *g = super::scale(g, coef)?;
        }
    }
    Ok(norm)
}
