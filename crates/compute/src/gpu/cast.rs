//! Launches of kernels/cast.cu: one kernel per (from, to) pair.

use std::sync::Arc;

use super::{elementwise_dims, output, ptr};
use crate::backend::GpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::launch::{Arg, KernelCall};
use crate::tensor::Tensor;

pub fn cast(backend: &Arc<dyn GpuBackend>, x: &Tensor, to: DType) -> Result<Tensor> {
    let n = x.numel();
    let (out, out_ptr) = output(backend, x.shape(), to)?;
    if n == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "cast",
        function: format!("cast_{}_{}", x.dtype().kernel_suffix(), to.kernel_suffix()),
        dims: elementwise_dims(n),
        args: vec![ptr(x), Arg::Ptr(out_ptr), Arg::I64(n as i64)],
    })?;
    Ok(out)
}
