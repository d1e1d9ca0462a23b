//! Launches of kernels/lora.cu: a block per row.

use std::sync::Arc;

use super::{output, ptr, row_threads};
use crate::backend::GpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::Tensor;

pub fn lora_shrink(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    a: &Tensor,
    ids: &Tensor,
    inp: usize,
    r: usize,
) -> Result<Tensor> {
    let rows = x.shape()[0];
    let (u, u_ptr) = output(backend, &[rows, r], DType::F32)?;
    if rows == 0 || r == 0 {
        return Ok(u);
    }
    backend
        .launch(&KernelCall {
            family: "lora",
            function: format!("lora_shrink_{}", x.dtype().kernel_suffix()),
            dims: LaunchDims::linear(rows as u32, row_threads(inp).min(256), 0),
            args: vec![ptr(x), ptr(a), ptr(ids), Arg::Ptr(u_ptr), Arg::I32(inp as i32), Arg::I32(r as i32)],
        })
        .map(|()| u)
}

#[allow(clippy::too_many_arguments)]
pub fn lora_expand(
    backend: &Arc<dyn GpuBackend>,
    y: u64,
    dtype: DType,
    u: &Tensor,
    b: &Tensor,
    ids: &Tensor,
    scales: &Tensor,
    out: usize,
    r: usize,
    rows: usize,
) -> Result<()> {
    if rows == 0 || out == 0 {
        return Ok(());
    }
    backend.launch(&KernelCall {
        family: "lora",
        function: format!("lora_expand_{}", dtype.kernel_suffix()),
        dims: LaunchDims::linear(rows as u32, row_threads(out).min(256), 0),
        args: vec![
            ptr(u),
            ptr(b),
            ptr(ids),
            ptr(scales),
            Arg::Ptr(y),
            Arg::I32(out as i32),
            Arg::I32(r as i32),
        ],
    })
}
