//! Launches of kernels/lora.cu: a block per row; the grouped (SGMV) tensor-core path for bf16 /
//! f16 batches of many rows; and the one-adapter (training) backward, whose reductions over rows
//! are cuBLAS GEMMs.

use std::sync::Arc;

use super::{args, output, ptr, row_threads};
use crate::backend::{GemmCall, GpuBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall, LaunchDims, blocks_for};
use crate::ops::LoraBackward;
use crate::tensor::Tensor;

pub fn lora_shrink(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    a: &Tensor,
    ids: &Tensor,
    inp: usize,
    r: usize,
) -> Result<Tensor> {
    let rows = x.shape()[0];
    let (u, u_ptr) = output(backend, &[rows, r], DType::F32)?;
    if rows == 0 || r == 0 {
        return Ok(u);
    }
    let adapters = a.shape()[0];
    if grouped(x.dtype(), rows, r) {
        let (work, tiles) = segments(backend, ids, rows, adapters)?;
        return backend
            .launch(&KernelCall {
                kernel: kernels::lora::LORA_SGMV_SHRINK.of(x.dtype())?,
                dims: LaunchDims::linear(tiles, SGMV_THREADS, SGMV_SHRINK_SMEM),
                args: args![x, a, &work, Arg::Ptr(u_ptr), rows, inp, r, adapters],
            })
            .map(|()| u);
    }
    backend
        .launch(&KernelCall {
            kernel: kernels::lora::LORA_SHRINK.of(x.dtype())?,
            dims: LaunchDims::linear(rows as u32, row_threads(inp).min(256), 0),
            args: args![x, a, ids, Arg::Ptr(u_ptr), inp, r, a.shape()[0]],
        })
        .map(|()| u)
}

#[allow(clippy::too_many_arguments)]
pub fn lora_expand(
    backend: &Arc<dyn GpuBackend>,
    y: u64,
    dtype: DType,
    u: &Tensor,
    b: &Tensor,
    ids: &Tensor,
    scales: &Tensor,
    out: usize,
    r: usize,
    rows: usize,
) -> Result<()> {
    if rows == 0 || out == 0 {
        return Ok(());
    }
    let adapters = b.shape()[0];
    if grouped(dtype, rows, r) {
        let (work, tiles) = segments(backend, ids, rows, adapters)?;
        return backend.launch(&KernelCall {
            kernel: kernels::lora::LORA_SGMV_EXPAND.of(dtype)?,
            dims: LaunchDims {
                grid: (tiles, out.div_ceil(SGMV_BN) as u32, 1),
                block: (SGMV_THREADS, 1, 1),
                shared_bytes: SGMV_EXPAND_SMEM,
            },
            args: args![u, b, &work, scales, Arg::Ptr(y), rows, out, r, adapters],
        });
    }
    backend.launch(&KernelCall {
        kernel: kernels::lora::LORA_EXPAND.of(dtype)?,
        dims: b_tile_dims(rows, out),
        args: args![u, b, ids, scales, Arg::Ptr(y), out, r, b.shape()[0]],
    })
}

/// Batches of at least this many rows take the grouped path (bf16 / f16, r ≤ [`SGMV_MAX_R`]):
/// below it a tile of 64 rows per adapter is mostly padding and the row kernels' one block per
/// row is as cheap.
pub const SGMV_MIN_ROWS: usize = 64;
/// The grouped kernels keep r (rounded up to 16) ranks of accumulators per lane in registers.
pub const SGMV_MAX_R: usize = 64;
/// Rows per tile (`RT_SGMV_BM`), output columns per expand block (`RT_SGMV_BN`), threads.
const SGMV_BM: usize = 64;
const SGMV_BN: usize = 64;
const SGMV_THREADS: u32 = 128;
/// Dynamic shared memory at the largest instantiation (RP = 64), kernels/lora.cu's formulas:
/// shrink 2 stages × (BM + RP) rows × (BK + 8) × 2 bytes; expand max(3 · BM · (RP + 8) · 2,
/// BM · (BN + 4) · 4) bytes.
const SGMV_SHRINK_SMEM: u32 = (2 * (64 + 64) * (64 + 8) * 2) as u32;
const SGMV_EXPAND_SMEM: u32 = {
    let operands = 3 * 64 * (64 + 8) * 2;
    let products = 64 * (64 + 4) * 4;
    (if operands > products { operands } else { products }) as u32
};

/// Whether a shrink / expand of `rows` rows at rank `r` takes the grouped tensor-core path.
fn grouped(dtype: DType, rows: usize, r: usize) -> bool {
    matches!(dtype, DType::BF16 | DType::F16) && rows >= SGMV_MIN_ROWS && (1..=SGMV_MAX_R).contains(&r)
}

/// The segment table of `ids` (kernels/lora.cu, `lora_segments_i32`): rows grouped by adapter
/// and the list of 64-row tiles, built on the device from the device ids (one block). Returns
/// the workspace and the tile count bound the grouped kernels launch over.
fn segments(
    backend: &Arc<dyn GpuBackend>,
    ids: &Tensor,
    rows: usize,
    adapters: usize,
) -> Result<(Tensor, u32)> {
    // One partial tile per bucket at most: the adapters' and the bucket of rows of none.
    let max_tiles = rows.div_ceil(SGMV_BM) + (adapters + 1).min(rows);
    let (work, work_ptr) = output(backend, &[2 * adapters + 3 + rows + 2 * max_tiles], DType::I32)?;
    backend.launch(&KernelCall {
        kernel: kernels::lora::LORA_SEGMENTS_I32,
        dims: LaunchDims::linear(1, 256, 0),
        args: args![ids, Arg::Ptr(work_ptr), rows, adapters, max_tiles],
    })?;
    Ok((work, max_tiles as u32))
}

/// A block per row over `cols` columns of B `[cols, r]`, with the staged 32 × 16 f32 tile of B
/// per warp (`32 · RT_LORA_TILE_J` floats) that the expand and du kernels read B through.
fn b_tile_dims(rows: usize, cols: usize) -> LaunchDims {
    let threads = row_threads(cols).min(256);
    LaunchDims::linear(rows as u32, threads, threads / 32 * (32 * 16 * 4))
}

/// Rows per chunk of the outer-product gradients: enough work per block to hide the loop's
/// start-up, enough chunks to fill a GPU for a few thousand rows.
const OUTER_CHUNK_ROWS: usize = 256;
/// The partial sums of all chunks stay under this many floats (64 MiB): more rows per chunk
/// beyond it.
const OUTER_PARTIAL_FLOATS: usize = 16 << 20;
/// Threads per block of the outer-product kernel (a thread per column).
const OUTER_THREADS: u32 = 128;

/// `du`, then `dx += mask ⊙ du A` in place at `dx`, then dA and dB through per-chunk partials
/// and an ordered reduction. Returns `(dA, dB)`, f32. The inputs are on the GPU (the op checked
/// them) and `scales` is their device copy.
pub fn lora_backward(
    backend: &Arc<dyn GpuBackend>,
    t: &LoraBackward,
    scales: &Tensor,
    dx: u64,
) -> Result<(Tensor, Tensor)> {
    let (rows, inp) = (t.x.shape()[0], t.x.shape()[1]);
    let (adapters, out, r) = (t.b.shape()[0], t.b.shape()[1], t.b.shape()[2]);
    let dtype = t.x.dtype();
    let (da, da_ptr) = output(backend, &[adapters, r, inp], DType::F32)?;
    let (db, db_ptr) = output(backend, &[adapters, out, r], DType::F32)?;
    let (_du, du_ptr) = output(backend, &[rows, r], DType::F32)?;
    let mask = t.mask.map_or(Arg::Ptr(0), ptr);
    if rows > 0 && r > 0 {
        backend.launch(&KernelCall {
            kernel: kernels::lora::LORA_BWD_DU.of(dtype)?,
            dims: b_tile_dims(rows, out),
            args: args![t.dy, t.b, t.ids, scales, Arg::Ptr(du_ptr), out, r, adapters],
        })?;
        if inp > 0 {
            backend.launch(&KernelCall {
                kernel: kernels::lora::LORA_BWD_DX.of(dtype)?,
                dims: LaunchDims::linear(rows as u32, row_threads(inp).min(256), 0),
                args: args![Arg::Ptr(du_ptr), t.a, t.ids, mask, Arg::Ptr(dx), inp, r, adapters],
            })?;
        }
    }
    // dB [out, r] = scale · Σ dyᵀ u; dA [r, in] = Σ duᵀ (x ⊙ mask).
    outer(
        backend,
        t.dy,
        Arg::Ptr(0),
        t.u.device_addr().unwrap_or(0),
        t.ids,
        ptr(scales),
        (out, r, adapters),
        false,
        db_ptr,
    )?;
    outer(backend, t.x, mask, du_ptr, t.ids, Arg::Ptr(0), (inp, r, adapters), true, da_ptr)?;
    Ok((da, db))
}

/// [`lora_backward`] when every row uses the one adapter and the operands are f32 (training):
/// `du = scale · dy B`, `dB = scale · dyᵀ u` and `dA = duᵀ (x ⊙ mask)` are three GEMMs (cuBLAS) —
/// dA and dB are reductions over thousands of rows, which the row kernels do through per-chunk
/// partials — and `dx += mask ⊙ du A` stays the row kernel, which reads the mask and adds in
/// place in one pass over dx. Returns `(dA, dB)`, `[1, r, in]` and `[1, out, r]`.
pub fn lora_backward_shared(
    backend: &Arc<dyn GpuBackend>,
    t: &LoraBackward,
    scale: f32,
    dx: u64,
) -> Result<(Tensor, Tensor)> {
    let (rows, inp) = (t.x.shape()[0], t.x.shape()[1]);
    let (out, r) = (t.b.shape()[1], t.b.shape()[2]);
    if [rows, inp, out, r].contains(&0) {
        // Nothing to multiply (an empty sum is a zero gradient): the row kernels handle the edges.
        let scales =
            Tensor::from_slice(&[scale], &[1])?.to_device(&crate::device::Device::Gpu(backend.clone()))?;
        return lora_backward(backend, t, &scales, dx);
    }
    let addr = |t: &Tensor| t.device_addr().unwrap_or(0);
    let (du, du_ptr) = output(backend, &[rows, r], DType::F32)?;
    let (da, da_ptr) = output(backend, &[1, r, inp], DType::F32)?;
    let (db, db_ptr) = output(backend, &[1, out, r], DType::F32)?;
    // du [rows, r] = scale · dy [rows, out] · B [out, r].
    backend.gemm(&f32_gemm((rows, r, out), (addr(t.dy), false), (addr(t.b), false), du_ptr, scale))?;
    backend.launch(&KernelCall {
        kernel: kernels::lora::LORA_BWD_DX.of(DType::F32)?,
        dims: LaunchDims::linear(rows as u32, row_threads(inp).min(256), 0),
        args: args![&du, t.a, t.ids, t.mask.map_or(Arg::Ptr(0), ptr), Arg::Ptr(dx), inp, r, 1usize],
    })?;
    // dB [out, r] = scale · dyᵀ [out, rows] · u [rows, r].
    backend.gemm(&f32_gemm((out, r, rows), (addr(t.dy), true), (addr(t.u), false), db_ptr, scale))?;
    // dA [r, in] = duᵀ [r, rows] · x' [rows, in], x' the rows the forward shrank.
    let shrunk = t.mask.map(|m| crate::ops::mul(t.x, m)).transpose()?;
    let xm = shrunk.as_ref().unwrap_or(t.x);
    backend.gemm(&f32_gemm((r, inp, rows), (du_ptr, true), (addr(xm), false), da_ptr, 1.0))?;
    Ok((da, db))
}

/// `c [m, n] = alpha · op(a) · op(b)` on f32 row-major operands, one matrix, `k` inner; a
/// transposed operand is stored the other way round (`a` as `[k, m]`, `b` as `[n, k]`).
fn f32_gemm(
    (m, n, k): (usize, usize, usize),
    (a, trans_a): (u64, bool),
    (b, trans_b): (u64, bool),
    c: u64,
    alpha: f32,
) -> GemmCall {
    GemmCall {
        batch: 1,
        m,
        n,
        k,
        a,
        b,
        c,
        trans_a,
        trans_b,
        stride_a: m * k,
        stride_b: k * n,
        stride_c: m * n,
        in_dtype: DType::F32,
        out_dtype: DType::F32,
        alpha,
        beta: 0.0,
    }
}

/// One outer-product gradient `[adapters, cols, r]` (or `[adapters, r, cols]` when `transposed`)
/// from `p` `[rows, cols]` and `q` f32 `[rows, r]`, written to `dst`.
#[allow(clippy::too_many_arguments)]
fn outer(
    backend: &Arc<dyn GpuBackend>,
    p: &Tensor,
    mask: Arg,
    q: u64,
    ids: &Tensor,
    scales: Arg,
    (cols, r, adapters): (usize, usize, usize),
    transposed: bool,
    dst: u64,
) -> Result<()> {
    let rows = p.shape()[0];
    let n = adapters * cols * r;
    if n == 0 {
        return Ok(());
    }
    let chunk_rows = OUTER_CHUNK_ROWS.max(rows.div_ceil((OUTER_PARTIAL_FLOATS / n).max(1)));
    let chunks = rows.div_ceil(chunk_rows).max(1);
    let (_partial, partial_ptr) = output(backend, &[chunks * n], DType::F32)?;
    backend.launch(&KernelCall {
        kernel: kernels::lora::LORA_BWD_OUTER.of(p.dtype())?,
        dims: LaunchDims {
            grid: (
                blocks_for(cols, OUTER_THREADS as usize),
                r.div_ceil(8) as u32,
                (chunks * adapters) as u32,
            ),
            block: (OUTER_THREADS, 1, 1),
            shared_bytes: 0,
        },
        args: args![
            p,
            mask,
            Arg::Ptr(q),
            ids,
            scales,
            Arg::Ptr(partial_ptr),
            rows,
            cols,
            r,
            adapters,
            chunk_rows,
            transposed
        ],
    })?;
    backend.launch(&KernelCall {
        kernel: kernels::lora::LORA_BWD_REDUCE_F32,
        dims: super::elementwise_dims(n),
        args: args![Arg::Ptr(partial_ptr), Arg::Ptr(dst), chunks, Arg::I64(n as i64)],
    })
}
