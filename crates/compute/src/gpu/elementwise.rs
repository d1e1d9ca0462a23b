//! Launches of kernels/elementwise.cu: grid-stride loops over the elements.

use std::sync::Arc;

use super::{args, per_element};
use crate::backend::GpuBackend;
use crate::cpu::elementwise::BinaryOp;
use crate::error::Result;
use crate::kernels;
use crate::launch::Arg;
use crate::tensor::Tensor;

pub fn binary(backend: &Arc<dyn GpuBackend>, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let kernel = match op {
        BinaryOp::Add => kernels::elementwise::ADD,
        BinaryOp::Mul => kernels::elementwise::MUL,
    };
    let (n, bn) = (Arg::I64(a.numel() as i64), Arg::I64(b.numel() as i64));
    per_element(backend, (a.shape(), a.dtype()), kernel.of(a.dtype())?, |out| args![a, b, out, n, bn])
}

pub fn scale(backend: &Arc<dyn GpuBackend>, x: &Tensor, s: f32) -> Result<Tensor> {
    let n = Arg::I64(x.numel() as i64);
    per_element(backend, (x.shape(), x.dtype()), kernels::elementwise::SCALE.of(x.dtype())?, |out| {
        args![x, out, n, s]
    })
}
