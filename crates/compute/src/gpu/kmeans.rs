//! Launches of kernels/kmeans.cu.

use std::sync::Arc;

use crate::backend::GpuBackend;
use crate::device::Device;
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub fn kmeans_assign(
    backend: &Arc<dyn GpuBackend>,
    points: &Tensor,
    centroids: &Tensor,
    _n: usize,
    _c: usize,
    _d: usize,
) -> Result<(Tensor, Tensor)> {
    let dev = Device::Gpu(backend.clone());
    let (a, d) = ops::kmeans_assign(&points.to_host()?, &centroids.to_host()?)?;
    Ok((a.to_device(&dev)?, d.to_device(&dev)?))
}

pub fn kmeans_update(
    backend: &Arc<dyn GpuBackend>,
    points: &Tensor,
    assign: &Tensor,
    old: &Tensor,
    _n: usize,
    _c: usize,
    _d: usize,
) -> Result<(Tensor, Tensor)> {
    let dev = Device::Gpu(backend.clone());
    let (c, n) = ops::kmeans_update(&points.to_host()?, &assign.to_host()?, &old.to_host()?)?;
    Ok((c.to_device(&dev)?, n.to_device(&dev)?))
}
