//! Launches of kernels/kmeans.cu: the assignment (norms first, by kernels/norm.cu, then the fused
//! distance + argmin) and the update (zero, atomic sums, divide).

use std::sync::Arc;

use super::topk::row_sqnorms;
use super::{args, elementwise_dims, output};
use crate::backend::GpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall, LaunchDims, blocks_for};
use crate::tensor::Tensor;

/// Points per assignment block (kernels/kmeans.cu `KM_TILE`).
const ASSIGN_POINTS: usize = 64;

pub fn kmeans_assign(
    backend: &Arc<dyn GpuBackend>,
    points: &Tensor,
    centroids: &Tensor,
    n: usize,
    c: usize,
    d: usize,
) -> Result<(Tensor, Tensor)> {
    let (assign, assign_ptr) = output(backend, &[n], DType::I32)?;
    let (dist, dist_ptr) = output(backend, &[n], DType::F32)?;
    if n == 0 {
        return Ok((assign, dist));
    }
    let pn = row_sqnorms(backend, points)?;
    let cn = row_sqnorms(backend, centroids)?;
    backend.launch(&KernelCall {
        kernel: kernels::kmeans::KMEANS_ASSIGN.of(points.dtype())?,
        dims: LaunchDims::linear(blocks_for(n, ASSIGN_POINTS), 256, 0),
        args: args![
            points,
            centroids,
            Arg::Ptr(pn.addr()),
            Arg::Ptr(cn.addr()),
            Arg::Ptr(assign_ptr),
            Arg::Ptr(dist_ptr),
            n,
            c,
            d
        ],
    })?;
    Ok((assign, dist))
}

pub fn kmeans_update(
    backend: &Arc<dyn GpuBackend>,
    points: &Tensor,
    assign: &Tensor,
    old: &Tensor,
    n: usize,
    c: usize,
    d: usize,
) -> Result<(Tensor, Tensor)> {
    let (sums, sums_ptr) = output(backend, &[c, d], DType::F32)?;
    let (counts, counts_ptr) = output(backend, &[c], DType::I32)?;
    if c == 0 {
        return Ok((sums, counts));
    }
    let dims = elementwise_dims((c * d).max(c));
    backend.launch(&KernelCall {
        kernel: kernels::kmeans::KMEANS_UPDATE_ZERO,
        dims,
        args: args![Arg::Ptr(sums_ptr), Arg::Ptr(counts_ptr), c, d],
    })?;
    if n > 0 {
        backend.launch(&KernelCall {
            kernel: kernels::kmeans::KMEANS_UPDATE_SUM.of(points.dtype())?,
            dims: elementwise_dims(n * d.max(1)),
            args: args![points, assign, Arg::Ptr(sums_ptr), Arg::Ptr(counts_ptr), n, c, d],
        })?;
    }
    if d > 0 {
        backend.launch(&KernelCall {
            kernel: kernels::kmeans::KMEANS_UPDATE_FINISH.of(old.dtype())?,
            dims,
            args: args![old, Arg::Ptr(sums_ptr), Arg::Ptr(counts_ptr), c, d],
        })?;
    }
    Ok((sums, counts))
}
