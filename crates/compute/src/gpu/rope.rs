//! Launches of kernels/rope.cu: one thread per output element.

use std::sync::Arc;

use super::{args, per_element};
use crate::backend::GpuBackend;
use crate::error::Result;
use crate::kernels;
use crate::launch::Arg;
use crate::tensor::Tensor;

pub fn rope(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    positions: &Tensor,
    inv_freq: &Tensor,
) -> Result<Tensor> {
    let (n, heads, d) = (x.numel(), x.shape()[2], x.shape()[3]);
    per_element(backend, (x.shape(), x.dtype()), kernels::rope::ROPE.of(x.dtype())?, |out| {
        args![x, positions, inv_freq, out, heads, d, inv_freq.numel(), Arg::I64(n as i64)]
    })
}
