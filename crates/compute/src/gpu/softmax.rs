//! Launches of kernels/softmax.cu: one block per row.

use std::sync::Arc;

use super::{args, per_row};
use crate::backend::GpuBackend;
use crate::error::Result;
use crate::kernels;
use crate::tensor::Tensor;

pub fn softmax(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    rows: usize,
    scale: f32,
    causal: bool,
) -> Result<Tensor> {
    let cols = x.last_dim();
    per_row(backend, x, kernels::softmax::SOFTMAX.of(x.dtype())?, cols, |out| {
        args![x, out, rows, cols, scale, causal]
    })
}
