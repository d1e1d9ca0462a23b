//! Launches of kernels/optim.cu.

use std::sync::Arc;

use super::{elementwise_dims, ptr};
use crate::backend::GpuBackend;
use crate::error::Result;
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
        family: "optim",
        function: "adamw_f32".to_string(),
        dims: elementwise_dims(n),
        args: vec![
            Arg::Ptr(p),
            ptr(g),
            Arg::Ptr(m),
            Arg::Ptr(v),
            Arg::I64(n as i64),
            Arg::F32(s.decay),
            Arg::F32(s.beta1),
            Arg::F32(s.beta2),
            Arg::F32(s.eps),
            Arg::F32(s.step_size),
            Arg::F32(s.bc2_sqrt),
        ],
    })
}
