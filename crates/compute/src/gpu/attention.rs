//! Launches of kernels/attention.cu: the prefill kernel for many queries, the split-KV decode
//! pair (split + combine) for a few. A head dim below 128 without a specialised kernel is
//! zero-padded on the device to the next one (exact: zero dims add nothing to q·k, and the
//! extra output dims are dropped); above 128 is an error that says so. The backward launches
//! `attention_backward_dq_f32` (dq and each query row's softmax statistics) and then
//! `attention_backward_dkv_f32` (dk and dv per key row): each kernel owns its outputs, so no
//! atomics and no zeroed buffers.

use std::sync::Arc;

use super::{args, output, ptr};
use crate::backend::GpuBackend;
use crate::cpu::attention::AttentionDims;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::kernels::{self, Kernel};
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::ops::{self, AttentionSpec, MatmulSpec};
use crate::tensor::Tensor;

/// Head dims the kernels are stamped out for.
pub const HEAD_DIMS: [usize; 5] = [32, 64, 80, 96, 128];
/// Up to this many query positions take the split-KV decode path.
pub const DECODE_MAX_QUERIES: usize = 4;
/// Rows (query position × head) per block: prefill's tensor-core and scalar tiles, decode's chunk.
const PREFILL_ROWS_MMA: usize = 64;
const SCALAR_ROWS: usize = 16;
/// Keys per shared-memory tile of the tensor-core prefill (`RT_ATTN_BK`).
const PREFILL_KEYS_MMA: usize = 64;
/// Dynamic shared memory of the tensor-core prefill (`rt_attn_mma_smem_bytes` in
/// kernels/attention.cu): K and V tiles, two stages each, rows padded by 8 elements (16 bytes)
/// so that ldmatrix and the cp.async copies are bank-conflict free. 69,632 bytes at d = 128
/// (over 48 KiB: the backend opts the kernel in).
fn mma_shared_bytes(d: usize) -> u32 {
    (4 * PREFILL_KEYS_MMA * (d + 8) * 2) as u32
}
/// A decode split covers at least this many keys (a multiple of the 32-key tile), so the combine
/// step stays small next to the split work.
const MIN_KEYS_PER_SPLIT: usize = 64;
/// Decode aims for at least this many blocks in flight (a few waves of an H100's 132 SMs).
const DECODE_TARGET_BLOCKS: usize = 512;

pub fn attention(
    backend: &Arc<dyn GpuBackend>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dims: AttentionDims,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<Tensor> {
    let AttentionDims { batch, sq, skv, hq, hkv, d } = dims;
    if !HEAD_DIMS.contains(&d) {
        return padded_head_dim(backend, [q, k, v], dims, spec, key_lens);
    }
    let (out, out_ptr) = output(backend, q.shape(), q.dtype())?;
    if batch == 0 || sq == 0 || hq == 0 {
        return Ok(out);
    }
    let lens = key_lens.map_or(Arg::Ptr(0), ptr);
    let (scale, causal) = (Arg::F32(spec.scale), Arg::I32(spec.causal as i32));
    // 0: no window (the op checked a window is >= 1 and fits in 31 bits).
    let window = Arg::I32(spec.window.map_or(0, |w| w as i32));
    let shape = [sq, skv, hq, hkv].map(|x| Arg::I32(x as i32));
    if sq > DECODE_MAX_QUERIES {
        let (rows, shared_bytes) =
            if q.dtype() == DType::F32 { (SCALAR_ROWS, 0) } else { (PREFILL_ROWS_MMA, mma_shared_bytes(d)) };
        let mut args = vec![ptr(q), ptr(k), ptr(v), lens, Arg::Ptr(out_ptr)];
        args.extend(shape);
        args.extend([scale, causal, window]);
        return backend
            .launch(&KernelCall {
                kernel: kernels::attention::ATTENTION_PREFILL.of(d, q.dtype())?,
                dims: LaunchDims {
                    grid: (sq.div_ceil(rows) as u32, hq as u32, batch as u32),
                    block: (128, 1, 1),
                    shared_bytes,
                },
                args,
            })
            .map(|()| out);
    }
    // Decode: keys split across blocks, partials combined per row. A block's rows see at most
    // `span` keys (with a window: the window plus the other query positions' offsets), starting
    // at the first key its first row sees; the splits cover that span, not the whole cache.
    let span = spec.window.map_or(skv, |w| (w + sq - 1).min(skv));
    let chunks = (hq / hkv * sq).div_ceil(SCALAR_ROWS);
    let blocks = batch * hkv * chunks;
    let want_splits = DECODE_TARGET_BLOCKS.div_ceil(blocks).max(1);
    let per_split = span.div_ceil(want_splits).max(MIN_KEYS_PER_SPLIT).next_multiple_of(32);
    let splits = span.div_ceil(per_split).max(1);
    let rows = batch * sq * hq;
    let part = backend.alloc(rows * splits * (d + 2) * 4)?;
    let (pmax, psum) = (part.addr(), part.addr() + (rows * splits * 4) as u64);
    let pacc = psum + (rows * splits * 4) as u64;
    let mut args = vec![ptr(q), ptr(k), ptr(v), lens, Arg::Ptr(pmax), Arg::Ptr(psum), Arg::Ptr(pacc)];
    args.extend(shape);
    args.extend([scale, causal, window, Arg::I32(per_split as i32), Arg::I32(chunks as i32)]);
    backend.launch(&KernelCall {
        kernel: kernels::attention::ATTENTION_DECODE_SPLIT.of(d, q.dtype())?,
        dims: LaunchDims {
            grid: (splits as u32, (hkv * chunks) as u32, batch as u32),
            block: (128, 1, 1),
            shared_bytes: 0,
        },
        args,
    })?;
    backend.launch(&KernelCall {
        kernel: kernels::attention::ATTENTION_DECODE_COMBINE.of(d, q.dtype())?,
        dims: LaunchDims::linear(rows as u32, 128, 0),
        args: args![Arg::Ptr(pmax), Arg::Ptr(psum), Arg::Ptr(pacc), Arg::Ptr(out_ptr), splits],
    })?;
    // `part` must outlive the launches: on a GPU the stream orders its free after them.
    drop(part);
    Ok(out)
}

/// Attention for a head dim without a kernel: pad q, k and v with zero dims up to the next
/// stamped-out head dim, run that kernel, and keep the first `d` output dims. The padding and
/// the un-padding are GEMMs with `[I | 0]` — exact in every dtype (products with 1 and 0, f32
/// accumulation) — so everything stays on the device.
fn padded_head_dim(
    backend: &Arc<dyn GpuBackend>,
    [q, k, v]: [&Tensor; 3],
    dims: AttentionDims,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<Tensor> {
    let d = dims.d;
    let Some(&padded) = HEAD_DIMS.iter().find(|&&h| h > d) else {
        return Err(ComputeError::invalid(
            "attention",
            format!(
                "head_dim {d}: the GPU attention kernels are built for head dims up to {} ({HEAD_DIMS:?}); run \
                 this model with --device cpu",
                HEAD_DIMS[HEAD_DIMS.len() - 1]
            ),
        ));
    };
    let device = Device::Gpu(backend.clone());
    let mut eye = vec![0f32; d * padded];
    for i in 0..d {
        eye[i * padded + i] = 1.0;
    }
    let eye = ops::cast(&Tensor::from_slice(&eye, &[d, padded])?, q.dtype())?.to_device(&device)?;
    let pad = |t: &Tensor| -> Result<Tensor> {
        let s = t.shape();
        let rows = s[0] * s[1] * s[2];
        ops::matmul(&t.reshape(&[rows, d])?, &eye)?.reshape(&[s[0], s[1], s[2], padded])
    };
    let out = ops::attention(&pad(q)?, &pad(k)?, &pad(v)?, spec, key_lens)?;
    let rows = dims.batch * dims.sq * dims.hq;
    let unpad = MatmulSpec { trans_b: true, ..MatmulSpec::default() };
    ops::matmul_ex(&out.reshape(&[rows, padded])?, &eye, unpad)?.reshape(q.shape())
}

/// Warps per block of the backward kernels (`RT_ATTN_BWD_WARPS` in kernels/attention.cu).
const BACKWARD_WARPS: usize = 4;

/// `(dq, dk, dv)` of attention: a block per query row for dq, then a block per key row for dk
/// and dv, which reads the query rows' log-sum-exp and `D = Σ p (dO·v)` the first one saved.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    backend: &Arc<dyn GpuBackend>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dout: &Tensor,
    dims: AttentionDims,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let rows = dims.batch * dims.sq * dims.hq;
    let key_rows = dims.batch * dims.skv * dims.hkv;
    if rows == 0 || key_rows == 0 || dims.d == 0 {
        let device = Device::Gpu(backend.clone());
        return Ok((
            Tensor::zeros(q.shape(), DType::F32, &device)?,
            Tensor::zeros(k.shape(), DType::F32, &device)?,
            Tensor::zeros(v.shape(), DType::F32, &device)?,
        ));
    }
    let (dq, dq_ptr) = output(backend, q.shape(), DType::F32)?;
    let (dk, dk_ptr) = output(backend, k.shape(), DType::F32)?;
    let (dv, dv_ptr) = output(backend, v.shape(), DType::F32)?;
    let (stats, stats_ptr) = output(backend, &[rows, 2], DType::F32)?;
    let threads = (BACKWARD_WARPS * 32) as u32;
    // Shared memory: an accumulator row per warp (two in the second kernel) and the block's own
    // two rows.
    let row_bytes = dims.d * std::mem::size_of::<f32>();
    // 0: no window (the op checked a window is >= 1 and fits in 31 bits).
    let window = spec.window.map_or(0, |w| w as i32);
    // Both kernels take (q, k, v, dout, their outputs, key_lens, the shape, the mask).
    let launch = |kernel: Kernel, blocks: usize, shared_rows: usize, outputs: Vec<Arg>| {
        let mut all = args![q, k, v, dout];
        all.extend(outputs);
        all.extend(args![
            key_lens,
            dims.sq,
            dims.skv,
            dims.hq,
            dims.hkv,
            dims.d,
            spec.causal,
            spec.scale,
            window
        ]);
        let shared = (shared_rows * row_bytes) as u32;
        backend.launch(&KernelCall {
            kernel,
            dims: LaunchDims::linear(blocks as u32, threads, shared),
            args: all,
        })
    };
    launch(
        kernels::attention::ATTENTION_BACKWARD_DQ_F32,
        rows,
        BACKWARD_WARPS + 2,
        args![Arg::Ptr(dq_ptr), Arg::Ptr(stats_ptr)],
    )?;
    launch(
        kernels::attention::ATTENTION_BACKWARD_DKV_F32,
        key_rows,
        2 * BACKWARD_WARPS + 2,
        args![&stats, Arg::Ptr(dk_ptr), Arg::Ptr(dv_ptr)],
    )?;
    Ok((dq, dk, dv))
}
