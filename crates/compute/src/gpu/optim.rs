//! Launches of kernels/optim.cu.

use std::sync::Arc;

use super::{args, elementwise_dims};
use crate::backend::GpuBackend;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall};
use crate::tensor::Tensor;

/// The per-step scalars of an AdamW update, computed once on the host.
pub struct AdamwScalars {
    pub decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub step_size: f32,
    pub bc2_sqrt: f32,
}

/// AdamW in place on f32 device tensors of one shape (the op has checked them and made each of
/// `p`, `m`, `v` its own storage).
pub fn adamw(
    backend: &Arc<dyn GpuBackend>,
    p: u64,
    g: &Tensor,
    m: u64,
    v: u64,
    s: &AdamwScalars,
) -> Result<()> {
    let n = g.numel();
    if n == 0 {
        return Ok(());
    }
    backend.launch(&KernelCall {
        kernel: kernels::optim::ADAMW_F32,
        dims: elementwise_dims(n),
        args: args![
            Arg::Ptr(p),
            g,
            Arg::Ptr(m),
            Arg::Ptr(v),
            Arg::I64(n as i64),
            s.decay,
            s.beta1,
            s.beta2,
            s.eps,
            s.step_size,
            s.bc2_sqrt
        ],
    })
}
