//! The two steps of Lloyd's k-means: assign each point to its nearest centroid, then move each
//! centroid to the mean of its points. Used to train IVF coarse quantisers.

use super::topk::{check_pair, host_tensor};
use super::{common_device, common_float_dtype, with_float};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

/// k-means assignment: the nearest centroid (squared L2) of each point, ties to the smaller
/// index. `points` `[n, d]` and `centroids` `[c, d]` share a float dtype; returns the indices
/// (i32 `[n]`) and the squared distances (f32 `[n]`, `max(‖p‖² + ‖c‖² − 2 p·c, 0)`).
pub fn kmeans_assign(points: &Tensor, centroids: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "kmeans_assign";
    let (n, c, d) = check_pair(OP, "points", points, "centroids", centroids)?;
    if c == 0 {
        return Err(ComputeError::shape(
            OP,
            format!("centroids {:?} is empty: k-means needs at least one centroid", centroids.shape()),
        ));
    }
    let dt = common_float_dtype(OP, &[points, centroids])?;
    match common_device(OP, &[points, centroids])? {
        Device::Cpu => with_float!(dt, T => {
            let (ps, cs) = (points.as_slice::<T>()?, centroids.as_slice::<T>()?);
            let mut dist = vec![0f32; n];
            let assign = host_tensor::<i32>(&[n], |a| cpu::kmeans::kmeans_assign(ps, cs, n, c, d, a, &mut dist));
            Ok((assign, Tensor::from_slice(&dist, &[n])?))
        }),
        Device::Gpu(backend) => gpu::kmeans::kmeans_assign(&backend, points, centroids, n, c, d),
    }
}

/// k-means update: the mean of the points assigned to each cluster (f32 `[c, d]`) and the
/// number of points per cluster (i32 `[c]`). A cluster with no points keeps its old centroid.
/// `assign` is i32 `[n]` (as [`kmeans_assign`] returns it); entries outside `0..c`, such as −1
/// for a point left out, are skipped. `points` may be any float dtype, `old_centroids` `[c, d]`
/// any float dtype.
pub fn kmeans_update(points: &Tensor, assign: &Tensor, old_centroids: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "kmeans_update";
    let (n, c, d) = check_pair(OP, "points", points, "old_centroids", old_centroids)?;
    if assign.dtype() != DType::I32 || assign.rank() != 1 || assign.numel() != n {
        return Err(ComputeError::shape(
            OP,
            format!(
                "assign {:?} of {} must be i32 [{n}]: one cluster index per row of points {:?}",
                assign.shape(),
                assign.dtype(),
                points.shape()
            ),
        ));
    }
    common_float_dtype(OP, &[points])?;
    let (pdt, cdt) = (points.dtype(), common_float_dtype(OP, &[old_centroids])?);
    match common_device(OP, &[points, assign, old_centroids])? {
        Device::Cpu => with_float!(pdt, T => with_float!(cdt, O => {
            let (ps, cs) = (points.as_slice::<T>()?, old_centroids.as_slice::<O>()?);
            let a = assign.as_slice::<i32>()?;
            let mut counts = vec![0i32; c];
            let centroids = host_tensor::<f32>(&[c, d], |o| {
                cpu::kmeans::kmeans_update(ps, a, cs, c, d, o, &mut counts)
            });
            Ok((centroids, Tensor::from_slice(&counts, &[c])?))
        })),
        Device::Gpu(backend) => gpu::kmeans::kmeans_update(&backend, points, assign, old_centroids, n, c, d),
    }
}
