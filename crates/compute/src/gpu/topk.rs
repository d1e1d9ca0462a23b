//! Launches of kernels/topk.cu: the op's path choice (fused / streaming / radix), the IVF
//! search (`topk_ivf`) and the scratch buffers between the kernels. The kernel file's header describes the three paths.

use std::sync::Arc;

use super::{IntoArg, args, output};
use crate::backend::{DeviceMemory, GemmCall, GpuBackend};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall, LaunchDims, blocks_for};
use crate::ops::{self, Similarity, TopkResult, TopkSpec};
use crate::tensor::Tensor;

/// The largest k the shared-memory paths keep per query (a 2k-entry buffer per query).
pub const FUSED_MAX_K: usize = 128;
/// Queries per fused block (four tensor-core m16 tiles): the base is read once per this many.
const FUSED_QUERIES: usize = 64;
/// Base rows per fused tile.
const FUSED_ROWS: usize = 64;
/// Threads per fused block (8 warps).
const FUSED_THREADS: u32 = 256;
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

/// Sum of squares of each row of the 2-D tensor `x` (f32 `[rows]`), by `row_sqnorm_*` of
/// kernels/norm.cu.
pub(crate) fn row_sqnorms(backend: &Arc<dyn GpuBackend>, x: &Tensor) -> Result<Arc<dyn DeviceMemory>> {
    let (rows, cols) = (x.shape()[0], x.shape()[1]);
    let mem = backend.alloc(rows.max(1) * 4)?;
    if rows > 0 {
        backend.launch(&KernelCall {
            kernel: kernels::norm::ROW_SQNORM.of(x.dtype())?,
            dims: LaunchDims::linear(blocks_for(rows, 8), 256, 0),
            args: args![x, &mem, rows, cols],
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
    let (result, out, kk) = outputs(backend, nq, n, spec)?;
    if result.rows.numel() == 0 {
        return Ok(result);
    }
    if d == 0 {
        // Zero-length vectors: every score is 0. Not worth a kernel variant; the host does it.
        let allow = allow.map(|a| a.to_host()).transpose()?;
        let r = ops::topk_similarity(&queries.to_host()?, &base.to_host()?, spec, allow.as_ref())?;
        return uploaded(backend, r);
    }
    let s = Search {
        backend,
        queries,
        base,
        qn: row_sqnorms(backend, queries)?,
        allow: allow.into_arg(),
        out,
        nq,
        n,
        d,
        kk,
        l2: spec.similarity == Similarity::L2,
    };
    if kk > FUSED_MAX_K {
        radix(&s)?;
    } else if nq <= STREAM_MAX_QUERIES {
        stream(&s)?;
    } else if fused_shared_bytes(base.dtype(), kcap(kk)) <= backend.max_shared_bytes_per_block() {
        fused(&s)?;
    } else {
        // The 64-query block's candidate buffers outgrow this GPU's shared memory (k = 128 needs
        // ~161 KB; sm_86/sm_89 GPUs allow 99 KiB a block): scores from a GEMM, then select.
        radix(&s)?;
    }
    Ok(result)
}

/// The `[nq, kk]` result tensors of a search over `n` rows, their device addresses, and
/// `kk = min(k, n)`.
fn outputs(
    backend: &Arc<dyn GpuBackend>,
    nq: usize,
    n: usize,
    spec: TopkSpec,
) -> Result<(TopkResult, Outputs, usize)> {
    let kk = spec.k.min(n);
    let (rows, rows_ptr) = output(backend, &[nq, kk], DType::I32)?;
    let (scores, scores_ptr) = output(backend, &[nq, kk], DType::F32)?;
    Ok((TopkResult { rows, scores }, Outputs { rows: rows_ptr, scores: scores_ptr }, kk))
}

/// A host result (of the host fallbacks) on the device.
fn uploaded(backend: &Arc<dyn GpuBackend>, r: TopkResult) -> Result<TopkResult> {
    let dev = Device::Gpu(backend.clone());
    Ok(TopkResult { rows: r.rows.to_device(&dev)?, scores: r.scores.to_device(&dev)? })
}

/// Where the final rows and scores go (device addresses).
#[derive(Clone, Copy)]
struct Outputs {
    rows: u64,
    scores: u64,
}

/// One search's operands and sizes, as every path takes them: `nq` queries against `n` base
/// rows of `d` elements, `kk` results each, `qn` the queries' squared norms.
struct Search<'a> {
    backend: &'a Arc<dyn GpuBackend>,
    queries: &'a Tensor,
    base: &'a Tensor,
    qn: Arc<dyn DeviceMemory>,
    allow: Arg,
    out: Outputs,
    nq: usize,
    n: usize,
    d: usize,
    kk: usize,
    l2: bool,
}

/// Per-(query, slice) candidates (`k` per slice, `splits` slices) → the final `[nq, kk]` results.
fn merge(s: &Search, cand: &Arc<dyn DeviceMemory>, splits: usize, k: usize) -> Result<()> {
    s.backend.launch(&KernelCall {
        kernel: kernels::topk::TOPK_MERGE,
        dims: LaunchDims::linear(s.nq as u32, 32, (2 * k * 8) as u32),
        args: args![cand, Arg::Ptr(s.out.rows), Arg::Ptr(s.out.scores), splits, k, s.kk, s.l2],
    })
}

/// Split `n` rows into at most `want` slices of whole `unit`-row chunks, at least
/// `min_units` chunks each: `(slices, rows per slice)`.
fn slices(n: usize, unit: usize, want: usize, min_units: usize) -> (usize, usize) {
    let units = n.div_ceil(unit);
    let per = units.div_ceil(want.max(1)).max(min_units).min(units.max(1));
    (units.div_ceil(per).max(1), per * unit)
}

/// Dynamic shared memory of a fused block, as kernels/topk.cu's `TkFused` lays it out: the
/// query and base chunks (`[64][32 + pad]` each), the `[64][sld]` f32 score tile, 64 16-byte
/// states and 64 candidate buffers of `2k` u64. At k = 128: 165,376 bytes (f32) and 160,768
/// (bf16/f16), under sm_80's 166,912-byte per-block maximum (the launch opts in above 48 KiB); a
/// device with less takes the radix path for such k.
fn fused_shared_bytes(dtype: DType, k: usize) -> usize {
    let (ld, esize, sld) = if dtype == DType::F32 { (33, 4, FUSED_ROWS) } else { (40, 2, FUSED_ROWS + 8) };
    2 * FUSED_QUERIES * ld * esize + FUSED_QUERIES * sld * 4 + FUSED_QUERIES * 16 + FUSED_QUERIES * 2 * k * 8
}

/// Many queries: blocks of 64 queries × a slice of the base, scores from tensor-core tiles.
fn fused(s: &Search) -> Result<()> {
    let k = kcap(s.kk);
    let qtiles = s.nq.div_ceil(FUSED_QUERIES);
    let (splits, rows_per_split) = slices(s.n, FUSED_ROWS, TARGET_BLOCKS.div_ceil(qtiles), 8);
    let bn = if s.l2 { row_sqnorms(s.backend, s.base)? } else { s.backend.alloc(4)? };
    let cand = s.backend.alloc(s.nq * splits * k * 8)?;
    s.backend.launch(&KernelCall {
        kernel: kernels::topk::TOPK_FUSED.of(s.base.dtype())?,
        dims: LaunchDims {
            grid: (qtiles as u32, splits as u32, 1),
            block: (FUSED_THREADS, 1, 1),
            shared_bytes: fused_shared_bytes(s.base.dtype(), k) as u32,
        },
        args: args![s.queries, s.base, &s.qn, &bn, s.allow, &cand, s.nq, s.n, s.d, k, s.l2, rows_per_split],
    })?;
    merge(s, &cand, splits, k)
}

/// A few queries: each block streams a slice of the base once for all of them.
fn stream(s: &Search) -> Result<()> {
    let k = kcap(s.kk);
    let (splits, rows_per_split) = slices(s.n, STREAM_ROWS, 2 * TARGET_BLOCKS, 2);
    let cand = s.backend.alloc(s.nq * splits * k * 8)?;
    s.backend.launch(&KernelCall {
        kernel: kernels::topk::TOPK_STREAM.of(s.base.dtype())?,
        dims: LaunchDims::linear(splits as u32, 256, (s.nq * 2 * k * 8) as u32),
        args: args![s.queries, s.base, &s.qn, s.allow, &cand, s.nq, s.n, s.d, k, s.l2, rows_per_split],
    })?;
    merge(s, &cand, splits, k)
}

/// Large k: a GEMM writes the scores of a batch of queries once, then keys in place, then one
/// radix-select block per query.
fn radix(s: &Search) -> Result<()> {
    let Search { backend, queries, base, allow, out, nq, n, d, kk, l2, .. } = *s;
    let cap = kk.next_power_of_two();
    let batch = (RADIX_SCORE_BYTES / (n * 4)).clamp(1, nq);
    let bn = if l2 { row_sqnorms(backend, base)? } else { backend.alloc(4)? };
    let dots = backend.alloc(batch * n * 4)?;
    let scratch = backend.alloc(batch * cap * 8)?;
    let (q0, b0, qn0) = (queries.device_addr().unwrap_or(0), base.device_addr().unwrap_or(0), s.qn.addr());
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
            kernel: kernels::topk::TOPK_RADIX_KEYS,
            dims: super::elementwise_dims(m * n),
            args: args![&dots, Arg::Ptr(qn0 + start as u64 * 4), &bn, allow, m, n, l2],
        })?;
        backend.launch(&KernelCall {
            kernel: kernels::topk::TOPK_RADIX_SELECT,
            dims: LaunchDims::linear(m as u32, 256, 0),
            args: args![
                &dots,
                &scratch,
                Arg::Ptr(out.rows + (start * kk * 4) as u64),
                Arg::Ptr(out.scores + (start * kk * 4) as u64),
                n,
                kk,
                cap,
                l2
            ],
        })?;
    }
    Ok(())
}

/// Dynamic shared memory of an IVF block, as kernels/topk.cu's `topk_ivf` lays it out: the
/// 2K-candidate buffer, a 16-byte state, 256 chunk scores (f32), then the query in f32.
fn ivf_shared_bytes(k: usize, d: usize) -> usize {
    2 * k * 8 + 16 + STREAM_ROWS * 4 + d * 4
}

/// A block may use 48 KiB of shared memory without the opt-in; the IVF block stays under it.
const IVF_MAX_DYNAMIC_SHARED: usize = 48 << 10;

/// `topk_ivf` on the device: one `topk_ivf_*` block per (query, probe), then `topk_merge` over
/// each query's `nprobe` partial lists. `[queries, base, list_offsets, probes]` are the op's
/// checked operands, `[nq, n, d, nlist, nprobe]` their sizes.
pub fn topk_ivf(
    backend: &Arc<dyn GpuBackend>,
    [queries, base, offsets, probes]: [&Tensor; 4],
    [nq, n, d, nlist, nprobe]: [usize; 5],
    spec: TopkSpec,
    allow: Option<&Tensor>,
) -> Result<TopkResult> {
    if nprobe > 65_535 {
        return Err(crate::ComputeError::shape(
            "topk_ivf",
            format!("probes {:?}: at most 65,535 lists per query (a grid dimension)", probes.shape()),
        ));
    }
    let (result, out, kk) = outputs(backend, nq, n, spec)?;
    if result.rows.numel() == 0 {
        return Ok(result);
    }
    let k = kcap(kk);
    if d == 0 || ivf_shared_bytes(k, d) > IVF_MAX_DYNAMIC_SHARED {
        // Zero-length vectors (every score 0), or a k or dim whose buffers outgrow a block's
        // shared memory (k beyond ~2,000, d beyond ~11,000): rare enough for the host to do it.
        let allow = allow.map(|a| a.to_host()).transpose()?;
        let r = ops::topk_ivf(
            &queries.to_host()?,
            &base.to_host()?,
            &offsets.to_host()?,
            &probes.to_host()?,
            spec,
            allow.as_ref(),
        )?;
        return uploaded(backend, r);
    }
    let qn = row_sqnorms(backend, queries)?;
    let cand = backend.alloc(nq * nprobe * k * 8)?;
    backend.launch(&KernelCall {
        kernel: kernels::topk::TOPK_IVF.of(base.dtype())?,
        dims: LaunchDims {
            grid: (nq as u32, nprobe as u32, 1),
            block: (256, 1, 1),
            shared_bytes: ivf_shared_bytes(k, d) as u32,
        },
        args: args![
            queries,
            base,
            &qn,
            offsets,
            probes,
            allow.into_arg(),
            &cand,
            n,
            nlist,
            d,
            nprobe,
            k,
            spec.similarity == Similarity::L2
        ],
    })?;
    backend.launch(&KernelCall {
        kernel: kernels::topk::TOPK_MERGE,
        dims: LaunchDims::linear(nq as u32, 32, (2 * k * 8) as u32),
        args: args![
            &cand,
            Arg::Ptr(out.rows),
            Arg::Ptr(out.scores),
            nprobe,
            k,
            kk,
            spec.similarity == Similarity::L2
        ],
    })?;
    Ok(result)
}
