//! Launches of kernels/attention.cu.

use std::sync::Arc;

use crate::backend::GpuBackend;
use crate::cpu::attention::AttentionDims;
use crate::device::Device;
use crate::error::Result;
use crate::ops::{self, AttentionSpec};
use crate::tensor::Tensor;

pub fn attention(
    backend: &Arc<dyn GpuBackend>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    _dims: AttentionDims,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<Tensor> {
    // Through the host until the kernels land.
    let lens = key_lens.map(|l| l.to_host()).transpose()?;
    let out = ops::attention(&q.to_host()?, &k.to_host()?, &v.to_host()?, spec, lens.as_ref())?;
    out.to_device(&Device::Gpu(backend.clone()))
}
