//! `silu`, `gelu` (exact, erf-based) and the fused `swiglu` gate, and the gate's backward
//! (f32, for training).

use super::f32_operands::{f32_data, f32_only, f32_output, same_shape};
use super::{common_device, common_float_dtype, host_output, with_float};
use crate::cpu::act::Activation;
use crate::device::Device;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

fn activation(act: Activation, op: &'static str, x: &Tensor) -> Result<Tensor> {
    let dt = common_float_dtype(op, &[x])?;
    match x.device() {
        Device::Cpu => with_float!(dt, T => {
            let xs = x.as_slice::<T>()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::act::activation(act, xs, o)))
        }),
        Device::Gpu(b) => gpu::act::activation(&b, act, x),
    }
}

/// `x · σ(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    activation(Activation::Silu, "silu", x)
}

/// `0.5 · x · (1 + erf(x / √2))`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    activation(Activation::Gelu, "gelu", x)
}

/// `silu(gate) · up`, fused (Llama's MLP: `down(silu(gate(x)) · up(x))`), computed in f32.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    const OP: &str = "swiglu";
    if gate.shape() != up.shape() {
        return Err(ComputeError::shape(
            OP,
            format!("gate {:?} and up {:?} must have the same shape", gate.shape(), up.shape()),
        ));
    }
    let dt = common_float_dtype(OP, &[gate, up])?;
    match common_device(OP, &[gate, up])? {
        Device::Cpu => with_float!(dt, T => {
            let (g, u) = (gate.as_slice::<T>()?, up.as_slice::<T>()?);
            Ok(host_output::<T>(gate.shape(), |o| cpu::act::swiglu(g, u, o)))
        }),
        Device::Gpu(b) => gpu::act::swiglu(&b, gate, up),
    }
}

/// Gradients `(dgate, dup)` of `swiglu(gate, up)` given `dy`; f32.
pub fn swiglu_backward(gate: &Tensor, up: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "swiglu_backward";
    same_shape(OP, ("gate", gate), ("up", up))?;
    same_shape(OP, ("gate", gate), ("dy", dy))?;
    let device = common_device(OP, &[gate, up, dy])?;
    if let Device::Gpu(backend) = &device {
        for (what, t) in [("gate", gate), ("up", up), ("dy", dy)] {
            f32_only(OP, what, t)?;
        }
        return crate::gpu::act::swiglu_backward(backend, gate, up, dy);
    }
    let (g, u, d) = (f32_data(OP, "gate", gate)?, f32_data(OP, "up", up)?, f32_data(OP, "dy", dy)?);
    let (mut dg, mut du) = (vec![0f32; g.len()], vec![0f32; g.len()]);
    cpu::act::swiglu_backward(&g, &u, &d, &mut dg, &mut du);
    Ok((f32_output(&dg, gate.shape(), &device)?, f32_output(&du, up.shape(), &device)?))
}
