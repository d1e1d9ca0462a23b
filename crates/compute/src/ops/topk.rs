//! `topk_similarity`: exact nearest-neighbour search — similarity of every query with every base
//! row fused with the selection of each query's k best, with an optional row filter.

use super::{common_device, common_float_dtype, with_float};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{ComputeError, Result};
use crate::host::HostBuffer;
use crate::tensor::{Storage, Tensor};
use crate::{cpu, gpu};

/// How a query and a base row are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Similarity {
    /// Inner product: larger is better (cosine on L2-normalised vectors).
    Dot,
    /// Squared Euclidean distance: smaller is better.
    L2,
}

/// What [`topk_similarity`] selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopkSpec {
    /// Results per query (at least 1; fewer come back when the base has fewer rows).
    pub k: usize,
    pub similarity: Similarity,
}

/// The result of [`topk_similarity`] and [`topk_ivf`], on the operands' device.
#[derive(Clone, Debug)]
pub struct TopkResult {
    /// i32 `[nq, kk]`: base row indices, best first; −1 where fewer than kk rows are allowed.
    pub rows: Tensor,
    /// f32 `[nq, kk]`: the dot products or squared distances; −∞ (Dot) / +∞ (L2) as padding.
    pub scores: Tensor,
}

/// A host tensor of `shape`/`T` filled by `f` (any element type, unlike `host_output`).
pub(crate) fn host_tensor<T: Element>(shape: &[usize], f: impl FnOnce(&mut [T])) -> Tensor {
    let n: usize = shape.iter().product();
    let buf = HostBuffer::build(n * T::DTYPE.size(), |bytes| f(bytemuck::cast_slice_mut(bytes)));
    Tensor::from_parts(Storage::Host(buf), shape.to_vec(), T::DTYPE)
}

/// The checked geometry of a search: `(nq, n, d)`.
pub(crate) fn check_pair(
    op: &'static str,
    qname: &str,
    queries: &Tensor,
    bname: &str,
    base: &Tensor,
) -> Result<(usize, usize, usize)> {
    if queries.rank() != 2 || base.rank() != 2 || queries.shape()[1] != base.shape()[1] {
        return Err(ComputeError::shape(
            op,
            format!(
                "{qname} {:?} and {bname} {:?} must be 2-D [rows, dim] with the same dim (reshape a single \
                 vector to [1, dim])",
                queries.shape(),
                base.shape()
            ),
        ));
    }
    let (nq, n, d) = (queries.shape()[0], base.shape()[0], base.shape()[1]);
    if n > i32::MAX as usize || nq > i32::MAX as usize || d > i32::MAX as usize {
        return Err(ComputeError::shape(
            op,
            format!("{bname} {:?}: row counts and dim must fit in 32 bits", base.shape()),
        ));
    }
    Ok((nq, n, d))
}

/// For each query row, the k best base rows, best first; ties broken by the smaller row index.
///
/// `queries` `[nq, d]` and `base` `[n, d]` share a float dtype (f32/bf16/f16); scores
/// accumulate in f32. The result is `[nq, kk]` with `kk = min(k, n)`. `allow` is an optional
/// u32 bitmap of ⌈n/32⌉ words (bit `r % 32` of word `r / 32` set = row `r` may be returned),
/// applied inside the search; when it leaves fewer than kk rows the tail is padded with row −1
/// and score −∞ (Dot) / +∞ (L2). k = 0 is an error; n = 0 or nq = 0 gives empty results.
/// L2 scores are `max(‖q‖² + ‖b‖² − 2 q·b, 0)`, so exact duplicates score 0.
pub fn topk_similarity(
    queries: &Tensor,
    base: &Tensor,
    spec: TopkSpec,
    allow: Option<&Tensor>,
) -> Result<TopkResult> {
    const OP: &str = "topk_similarity";
    let ([nq, n, d], dt) = check_search(OP, queries, base, spec, allow)?;
    let mut all = vec![queries, base];
    all.extend(allow);
    let device = common_device(OP, &all)?;
    let kk = spec.k.min(n);
    match device {
        Device::Cpu => with_float!(dt, T => {
            let (qs, bs) = (queries.as_slice::<T>()?, base.as_slice::<T>()?);
            let mask = allow.map(|a| a.as_slice::<u32>()).transpose()?;
            // kk, not spec.k: a k beyond the base size must not size the selectors.
            let results = cpu::topk::search(qs, bs, [nq, n, d], kk, spec.similarity, mask);
            let mut scores = vec![0f32; nq * kk];
            let rows = host_tensor::<i32>(&[nq, kk], |r| {
                cpu::topk::write_results(&results, kk, spec.similarity, r, &mut scores)
            });
            Ok(TopkResult { rows, scores: Tensor::from_slice(&scores, &[nq, kk])? })
        }),
        Device::Gpu(backend) => gpu::topk::topk_similarity(&backend, queries, base, nq, n, d, spec, allow),
    }
}

/// The checks both searches share — the pair's geometry, k ≥ 1, one float dtype, the allow
/// bitmap (u32 `[⌈n/32⌉]`) — giving `([nq, n, d], dtype)`.
fn check_search(
    op: &'static str,
    queries: &Tensor,
    base: &Tensor,
    spec: TopkSpec,
    allow: Option<&Tensor>,
) -> Result<([usize; 3], DType)> {
    let (nq, n, d) = check_pair(op, "queries", queries, "base", base)?;
    if spec.k == 0 {
        return Err(ComputeError::invalid(op, "k = 0 asks for no results; use k >= 1"));
    }
    let dt = common_float_dtype(op, &[queries, base])?;
    let words = n.div_ceil(32);
    if let Some(a) = allow
        && (a.dtype() != DType::U32 || a.numel() != words || a.rank() != 1)
    {
        return Err(ComputeError::shape(
            op,
            format!(
                "the allow bitmap {:?} of {} must be u32 [{words}] (one bit per row of base {:?})",
                a.shape(),
                a.dtype(),
                base.shape()
            ),
        ));
    }
    Ok(([nq, n, d], dt))
}

/// [`topk_similarity`] over an inverted file: each query searches only the lists it probes.
///
/// `base` `[n, d]` holds the lists one after another: list `l` is rows
/// `list_offsets[l]..list_offsets[l + 1]` (i32 `[nlist + 1]`, non-decreasing from 0 to n).
/// `probes` (i32 `[nq, nprobe]`, nprobe ≥ 1) names the lists of each query; entries outside
/// `0..nlist` (the −1 padding of a [`topk_similarity`] over centroids) probe nothing, and a list
/// named twice by one query is searched twice (its rows can come back twice). Everything else is
/// [`topk_similarity`]'s contract, with rows numbered in `base`: `[nq, kk]` results with
/// `kk = min(k, n)`, best first, ties by the smaller row, padded with row −1 and the worst score
/// where the probed (and allowed) rows number fewer than kk; `allow` is a bitmap over the rows
/// of `base`. The CPU checks the offsets; on a GPU (where they are device memory) the kernel
/// clamps them to `0..n`, so bad offsets give wrong results but never read out of bounds.
pub fn topk_ivf(
    queries: &Tensor,
    base: &Tensor,
    list_offsets: &Tensor,
    probes: &Tensor,
    spec: TopkSpec,
    allow: Option<&Tensor>,
) -> Result<TopkResult> {
    const OP: &str = "topk_ivf";
    let ([nq, n, d], dt) = check_search(OP, queries, base, spec, allow)?;
    if list_offsets.dtype() != DType::I32 || list_offsets.rank() != 1 || list_offsets.numel() == 0 {
        return Err(ComputeError::shape(
            OP,
            format!(
                "list_offsets {:?} of {} must be i32 [nlist + 1] (where each list starts in base, then n)",
                list_offsets.shape(),
                list_offsets.dtype()
            ),
        ));
    }
    let nlist = list_offsets.numel() - 1;
    if probes.dtype() != DType::I32 || probes.rank() != 2 || probes.shape()[0] != nq || probes.shape()[1] == 0
    {
        return Err(ComputeError::shape(
            OP,
            format!(
                "probes {:?} of {} must be i32 [nq = {nq}, nprobe >= 1] (the lists each query searches)",
                probes.shape(),
                probes.dtype()
            ),
        ));
    }
    let nprobe = probes.shape()[1];
    let mut all = vec![queries, base, list_offsets, probes];
    all.extend(allow);
    let device = common_device(OP, &all)?;
    let kk = spec.k.min(n);
    match device {
        Device::Cpu => with_float!(dt, T => {
            let offsets = list_offsets.as_slice::<i32>()?;
            let bad = offsets.first() != Some(&0)
                || offsets.last().map(|&o| o as i64) != Some(n as i64)
                || offsets.windows(2).any(|w| w[0] > w[1]);
            if bad {
                return Err(ComputeError::invalid(
                    OP,
                    format!("list_offsets must rise from 0 to the {n} rows of base {:?}", base.shape()),
                ));
            }
            let offsets: Vec<usize> = offsets.iter().map(|&o| o as usize).collect();
            let (qs, bs) = (queries.as_slice::<T>()?, base.as_slice::<T>()?);
            let mask = allow.map(|a| a.as_slice::<u32>()).transpose()?;
            let probes = probes.as_slice::<i32>()?;
            let results =
                cpu::topk::search_ivf(qs, bs, [nq, n, d], &offsets, probes, kk, spec.similarity, mask);
            let mut scores = vec![0f32; nq * kk];
            let rows = host_tensor::<i32>(&[nq, kk], |r| {
                cpu::topk::write_results(&results, kk, spec.similarity, r, &mut scores)
            });
            Ok(TopkResult { rows, scores: Tensor::from_slice(&scores, &[nq, kk])? })
        }),
        Device::Gpu(backend) => gpu::topk::topk_ivf(
            &backend,
            [queries, base, list_offsets, probes],
            [nq, n, d, nlist, nprobe],
            spec,
            allow,
        ),
    }
}
