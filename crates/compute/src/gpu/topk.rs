//! Launches of kernels/topk.cu.

use std::sync::Arc;

use crate::backend::GpuBackend;
use crate::device::Device;
use crate::error::Result;
use crate::ops::{self, TopkResult, TopkSpec};
use crate::tensor::Tensor;

#[allow(clippy::too_many_arguments)]
pub fn topk_similarity(
    backend: &Arc<dyn GpuBackend>,
    queries: &Tensor,
    base: &Tensor,
    _nq: usize,
    _n: usize,
    _d: usize,
    spec: TopkSpec,
    allow: Option<&Tensor>,
) -> Result<TopkResult> {
    let dev = Device::Gpu(backend.clone());
    let allow = allow.map(|a| a.to_host()).transpose()?;
    let r = ops::topk_similarity(&queries.to_host()?, &base.to_host()?, spec, allow.as_ref())?;
    Ok(TopkResult { rows: r.rows.to_device(&dev)?, scores: r.scores.to_device(&dev)? })
}
