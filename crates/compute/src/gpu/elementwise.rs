//! Launches of kernels/elementwise.cu: grid-stride loops over the elements.

use std::sync::Arc;

use super::{elementwise_dims, output, ptr};
use crate::backend::GpuBackend;
use crate::cpu::elementwise::BinaryOp;
use crate::error::Result;
use crate::launch::{Arg, KernelCall};
use crate::tensor::Tensor;

pub fn binary(backend: &Arc<dyn GpuBackend>, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let n = a.numel();
    let (out, out_ptr) = output(backend, a.shape(), a.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "elementwise",
        function: format!("{}_{}", op.name(), a.dtype().kernel_suffix()),
        dims: elementwise_dims(n),
        args: vec![ptr(a), ptr(b), Arg::Ptr(out_ptr), Arg::I64(n as i64), Arg::I64(b.numel() as i64)],
    })?;
    Ok(out)
}

pub fn scale(backend: &Arc<dyn GpuBackend>, x: &Tensor, s: f32) -> Result<Tensor> {
    let n = x.numel();
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "elementwise",
        function: format!("scale_{}", x.dtype().kernel_suffix()),
        dims: elementwise_dims(n),
        args: vec![ptr(x), Arg::Ptr(out_ptr), Arg::I64(n as i64), Arg::F32(s)],
    })?;
    Ok(out)
}
