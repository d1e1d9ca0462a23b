//! Launches of kernels/topk.cu: the op's path choice (fused / streaming / radix) and the
//! scratch buffers between the kernels. The kernel file's header describes the three paths.

use std::sync::Arc;

use super::{output, ptr};
use crate::backend::{DeviceMemory, GemmCall, GpuBackend};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::launch::{Arg, KernelCall, LaunchDims, blocks_for};
use crate::ops::{self, Similarity, TopkResult, TopkSpec};
use crate::tensor::Tensor;

/// The largest k the shared-memory paths keep per query (a 2k-entry buffer per query).
pub const FUSED_MAX_K: usize = 128;
/// Queries per fused block (the tensor-core MMA's M).
const FUSED_QUERIES: usize = 16;
/// Base rows per fused tile.
const FUSED_ROWS: usize = 64;
/// Up to this many queries take the streaming path, which reads the base once for all of them.
pub const STREAM_MAX_QUERIES: usize = 8;
/// Rows per streaming chunk (8 warps × 32 rows).
const STREAM_ROWS: usize = 256;
/// Enough blocks to fill a large GPU twice over (132 SMs on an H100).
const TARGET_BLOCKS: usize = 264;
/// The radix path holds the f32 scores of a batch of queries: at most this many bytes at once.
const RADIX_SCORE_BYTES: usize = 256 << 20;

/// `max(32, next power of two ≥ kk)`: the per-query buffer size of the shared-memory paths.
fn kcap(kk: usize) -> usize {
    kk.next_power_of_two().max(32)
}

fn addr(mem: &Arc<dyn DeviceMemory>) -> Arg {
    Arg::Ptr(mem.addr())
}

/// Sum of squares of each row of the 2-D tensor `x` (f32 `[rows]`), by `row_sqnorm_*` of
/// kernels/norm.cu.
pub(crate) fn row_sqnorms(backend: &Arc<dyn GpuBackend>, x: &Tensor) -> Result<Arc<dyn DeviceMemory>> {
    let (rows, cols) = (x.shape()[0], x.shape()[1]);
    let mem = backend.alloc(rows.max(1) * 4)?;
    if rows > 0 {
        backend.launch(&KernelCall {
            family: "norm",
            function: format!("row_sqnorm_{}", x.dtype().kernel_suffix()),
            dims: LaunchDims::linear(blocks_for(rows, 8), 256, 0),
            args: vec![ptr(x), addr(&mem), Arg::I32(rows as i32), Arg::I32(cols as i32)],
        })?;
    }
    Ok(mem)
}

#[allow(clippy::too_many_arguments)]
pub fn topk_similarity(
    backend: &Arc<dyn GpuBackend>,
    queries: &Tensor,
    base: &Tensor,
    nq: usize,
    n: usize,
    d: usize,
    spec: TopkSpec,
    allow: Option<&Tensor>,
) -> Result<TopkResult> {
    let kk = spec.k.min(n);
    let (rows, rows_ptr) = output(backend, &[nq, kk], DType::I32)?;
    let (scores, scores_ptr) = output(backend, &[nq, kk], DType::F32)?;
    if nq == 0 || kk == 0 {
        return Ok(TopkResult { rows, scores });
    }
    if d == 0 {
        // Zero-length vectors: every score is 0. Not worth a kernel variant; the host does it.
        let dev = Device::Gpu(backend.clone());
        let allow = allow.map(|a| a.to_host()).transpose()?;
        let r = ops::topk_similarity(&queries.to_host()?, &base.to_host()?, spec, allow.as_ref())?;
        return Ok(TopkResult { rows: r.rows.to_device(&dev)?, scores: r.scores.to_device(&dev)? });
    }
    let l2 = spec.similarity == Similarity::L2;
    let allow_arg = allow.map_or(Arg::Ptr(0), ptr);
    let out = Outputs { rows: Arg::Ptr(rows_ptr), scores: Arg::Ptr(scores_ptr) };
    let qn = row_sqnorms(backend, queries)?;
    if kk > FUSED_MAX_K {
        radix(backend, queries, base, &qn, allow_arg, out, nq, n, d, kk, l2)?;
    } else if nq <= STREAM_MAX_QUERIES {
        stream(backend, queries, base, &qn, allow_arg, out, nq, n, d, kk, l2)?;
    } else {
        fused(backend, queries, base, &qn, allow_arg, out, nq, n, d, kk, l2)?;
    }
    Ok(TopkResult { rows, scores })
}

/// Where the final rows and scores go.
#[derive(Clone, Copy)]
struct Outputs {
    rows: Arg,
    scores: Arg,
}

/// Per-(query, slice) candidates → the final `[nq, kk]` results.
#[allow(clippy::too_many_arguments)]
fn merge(
    backend: &Arc<dyn GpuBackend>,
    cand: &Arc<dyn DeviceMemory>,
    out: Outputs,
    nq: usize,
    splits: usize,
    k: usize,
    kk: usize,
    l2: bool,
) -> Result<()> {
    backend.launch(&KernelCall {
        family: "topk",
        function: "topk_merge".into(),
        dims: LaunchDims::linear(nq as u32, 32, (2 * k * 8) as u32),
        args: vec![
            addr(cand),
            out.rows,
            out.scores,
            Arg::I32(splits as i32),
            Arg::I32(k as i32),
            Arg::I32(kk as i32),
            Arg::I32(l2 as i32),
        ],
    })
}

/// Split `n` rows into at most `want` slices of whole `unit`-row chunks, at least
/// `min_units` chunks each: `(slices, rows per slice)`.
fn slices(n: usize, unit: usize, want: usize, min_units: usize) -> (usize, usize) {
    let units = n.div_ceil(unit);
    let per = units.div_ceil(want.max(1)).max(min_units).min(units.max(1));
    (units.div_ceil(per).max(1), per * unit)
}

#[allow(clippy::too_many_arguments)]
fn fused(
    backend: &Arc<dyn GpuBackend>,
    queries: &Tensor,
    base: &Tensor,
    qn: &Arc<dyn DeviceMemory>,
    allow: Arg,
    out: Outputs,
    nq: usize,
    n: usize,
    d: usize,
    kk: usize,
    l2: bool,
) -> Result<()> {
    let k = kcap(kk);
    let qtiles = nq.div_ceil(FUSED_QUERIES);
    let (splits, rows_per_split) = slices(n, FUSED_ROWS, TARGET_BLOCKS.div_ceil(qtiles), 8);
    let bn = if l2 { row_sqnorms(backend, base)? } else { backend.alloc(4)? };
    let cand = backend.alloc(nq * splits * k * 8)?;
    backend.launch(&KernelCall {
        family: "topk",
        function: format!("topk_fused_{}", base.dtype().kernel_suffix()),
        dims: LaunchDims {
            grid: (qtiles as u32, splits as u32, 1),
            block: (128, 1, 1),
            shared_bytes: (FUSED_QUERIES * 2 * k * 8) as u32,
        },
        args: vec![
            ptr(queries),
            ptr(base),
            addr(qn),
            addr(&bn),
            allow,
            addr(&cand),
            Arg::I32(nq as i32),
            Arg::I32(n as i32),
            Arg::I32(d as i32),
            Arg::I32(k as i32),
            Arg::I32(l2 as i32),
            Arg::I32(rows_per_split as i32),
        ],
    })?;
    merge(backend, &cand, out, nq, splits, k, kk, l2)
}

#[allow(clippy::too_many_arguments)]
fn stream(
    backend: &Arc<dyn GpuBackend>,
    queries: &Tensor,
    base: &Tensor,
    qn: &Arc<dyn DeviceMemory>,
    allow: Arg,
    out: Outputs,
    nq: usize,
    n: usize,
    d: usize,
    kk: usize,
    l2: bool,
) -> Result<()> {
    let k = kcap(kk);
    let (splits, rows_per_split) = slices(n, STREAM_ROWS, 2 * TARGET_BLOCKS, 2);
    let cand = backend.alloc(nq * splits * k * 8)?;
    backend.launch(&KernelCall {
        family: "topk",
        function: format!("topk_stream_{}", base.dtype().kernel_suffix()),
        dims: LaunchDims::linear(splits as u32, 256, (nq * 2 * k * 8) as u32),
        args: vec![
            ptr(queries),
            ptr(base),
            addr(qn),
            allow,
            addr(&cand),
            Arg::I32(nq as i32),
            Arg::I32(n as i32),
            Arg::I32(d as i32),
            Arg::I32(k as i32),
            Arg::I32(l2 as i32),
            Arg::I32(rows_per_split as i32),
        ],
    })?;
    merge(backend, &cand, out, nq, splits, k, kk, l2)
}

/// Large k: a GEMM writes the scores of a batch of queries once, then keys in place, then one
/// radix-select block per query.
#[allow(clippy::too_many_arguments)]
fn radix(
    backend: &Arc<dyn GpuBackend>,
    queries: &Tensor,
    base: &Tensor,
    qn: &Arc<dyn DeviceMemory>,
    allow: Arg,
    out: Outputs,
    nq: usize,
    n: usize,
    d: usize,
    kk: usize,
    l2: bool,
) -> Result<()> {
    let cap = kk.next_power_of_two();
    let batch = (RADIX_SCORE_BYTES / (n * 4)).clamp(1, nq);
    let bn = if l2 { row_sqnorms(backend, base)? } else { backend.alloc(4)? };
    let dots = backend.alloc(batch * n * 4)?;
    let scratch = backend.alloc(batch * cap * 8)?;
    let (Arg::Ptr(rows0), Arg::Ptr(scores0)) = (out.rows, out.scores) else {
        unreachable!("outputs are pointers")
    };
    let (Arg::Ptr(q0), Arg::Ptr(b0), Arg::Ptr(qn0)) = (ptr(queries), ptr(base), addr(qn)) else {
        unreachable!("operands are pointers")
    };
    let esize = base.dtype().size() as u64;
    for start in (0..nq).step_by(batch) {
        let m = batch.min(nq - start);
        backend.gemm(&GemmCall {
            batch: 1,
            m,
            n,
            k: d,
            a: q0 + (start * d) as u64 * esize,
            b: b0,
            c: dots.addr(),
            trans_a: false,
            trans_b: true,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
            in_dtype: base.dtype(),
            out_dtype: DType::F32,
            alpha: 1.0,
            beta: 0.0,
        })?;
        backend.launch(&KernelCall {
            family: "topk",
            function: "topk_radix_keys".into(),
            dims: super::elementwise_dims(m * n),
            args: vec![
                addr(&dots),
                Arg::Ptr(qn0 + start as u64 * 4),
                addr(&bn),
                allow,
                Arg::I32(m as i32),
                Arg::I32(n as i32),
                Arg::I32(l2 as i32),
            ],
        })?;
        backend.launch(&KernelCall {
            family: "topk",
            function: "topk_radix_select".into(),
            dims: LaunchDims::linear(m as u32, 256, 0),
            args: vec![
                addr(&dots),
                addr(&scratch),
                Arg::Ptr(rows0 + (start * kk * 4) as u64),
                Arg::Ptr(scores0 + (start * kk * 4) as u64),
                Arg::I32(n as i32),
                Arg::I32(kk as i32),
                Arg::I32(cap as i32),
                Arg::I32(l2 as i32),
            ],
        })?;
    }
    Ok(())
}
