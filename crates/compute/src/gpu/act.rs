//! Launches of kernels/act.cu: the activations, the SwiGLU gate and its backward.

use std::sync::Arc;

use super::{args, elementwise_dims, output, per_element};
use crate::backend::GpuBackend;
use crate::cpu::act::Activation;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall};
use crate::tensor::Tensor;

pub fn activation(backend: &Arc<dyn GpuBackend>, act: Activation, x: &Tensor) -> Result<Tensor> {
    let kernel = match act {
        Activation::Silu => kernels::act::SILU,
        Activation::Gelu => kernels::act::GELU,
    };
    let n = Arg::I64(x.numel() as i64);
    per_element(backend, (x.shape(), x.dtype()), kernel.of(x.dtype())?, |out| args![x, out, n])
}

pub fn swiglu(backend: &Arc<dyn GpuBackend>, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let n = Arg::I64(gate.numel() as i64);
    per_element(backend, (gate.shape(), gate.dtype()), kernels::act::SWIGLU.of(gate.dtype())?, |out| {
        args![gate, up, out, n]
    })
}

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
        kernel: kernels::act::SWIGLU_BACKWARD_F32,
        dims: elementwise_dims(n),
        args: args![gate, up, dy, Arg::Ptr(dg_ptr), Arg::Ptr(du_ptr), Arg::I64(n as i64)],
    })?;
    Ok((dg, du))
}
