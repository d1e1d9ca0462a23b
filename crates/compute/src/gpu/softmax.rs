//! Launches of kernels/softmax.cu: one block per row.

use std::sync::Arc;

use super::{output, ptr, row_threads};
use crate::backend::GpuBackend;
use crate::error::Result;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::Tensor;

pub fn softmax(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    rows: usize,
    scale: f32,
    causal: bool,
) -> Result<Tensor> {
    let cols = x.last_dim();
    let total_rows = x.numel() / cols.max(1);
    let (out, out_ptr) = output(backend, x.shape(), x.dtype())?;
    if total_rows == 0 || cols == 0 {
        return Ok(out);
    }
    backend.launch(&KernelCall {
        family: "softmax",
        function: format!("softmax_{}", x.dtype().kernel_suffix()),
        dims: LaunchDims::linear(total_rows as u32, row_threads(cols), 0),
        args: vec![
            ptr(x),
            Arg::Ptr(out_ptr),
            Arg::I32(rows as i32),
            Arg::I32(cols as i32),
            Arg::F32(scale),
            Arg::I32(causal as i32),
        ],
    })?;
    Ok(out)
}
