//! Launches of kernels/act.cu.

use std::sync::Arc;

use super::{elementwise_dims, output, ptr};
use crate::backend::GpuBackend;
use crate::cpu::act::Activation;
use crate::error::Result;
use crate::launch::{Arg, KernelCall};
use crate::tensor::Tensor;

pub fn activation(backend: &Arc<dyn GpuBackend>, act: Activation, x: &Tensor) -> Result<Tensor> {
    let n = x.numel();
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "act",
        function: format!("{}_{}", act.name(), x.dtype().kernel_suffix()),
        dims: elementwise_dims(n),
        args: vec![ptr(x), Arg::Ptr(out_ptr), Arg::I64(n as i64)],
    })?;
    Ok(out)
}

pub fn swiglu(backend: &Arc<dyn GpuBackend>, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let n = gate.numel();
    let (out, out_ptr) = output(backend, gate.shape(), gate.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "act",
        function: format!("swiglu_{}", gate.dtype().kernel_suffix()),
        dims: elementwise_dims(n),
        args: vec![ptr(gate), ptr(up), Arg::Ptr(out_ptr), Arg::I64(n as i64)],
    })?;
    Ok(out)
}
