//! Launches of kernels/rope.cu: one thread per output element.

use std::sync::Arc;

use super::{elementwise_dims, output, ptr};
use crate::backend::GpuBackend;
use crate::error::Result;
use crate::launch::{Arg, KernelCall};
use crate::tensor::Tensor;

pub fn rope(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    positions: &Tensor,
    inv_freq: &Tensor,
) -> Result<Tensor> {
    let n = x.numel();
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if n == 0 {
        return Ok(out);
    }
    let (heads, d) = (x.shape()[2], x.shape()[3]);
    backend.launch(&KernelCall {
        family: "rope",
        function: format!("rope_{}", x.dtype().kernel_suffix()),
        dims: elementwise_dims(n),
        args: vec![
            ptr(x),
            ptr(positions),
            ptr(inv_freq),
            Arg::Ptr(out_ptr),
            Arg::I32(heads as i32),
            Arg::I32(d as i32),
            Arg::I32(inv_freq.numel() as i32),
            Arg::I64(n as i64),
        ],
    })?;
    Ok(out)
}
