//! Launches of kernels/rope.cu.

use std::sync::Arc;

use crate::backend::GpuBackend;
use crate::device::Device;
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub fn rope(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    positions: &Tensor,
    inv_freq: &Tensor,
) -> Result<Tensor> {
    // Through the host until the kernel lands.
    let out = ops::rope(&x.to_host()?, &positions.to_host()?, &inv_freq.to_host()?)?;
    out.to_device(&Device::Gpu(backend.clone()))
}
