//! The reference GEMM the emulated device runs for `GpuBackend::gemm` (cuBLAS has no CPU form).
//!
//! A plain triple loop accumulating in f64: slow, obviously correct, and the yardstick GPU GEMMs
//! are compared against. Semantics follow cuBLAS as the CUDA backend calls it: row-major
//! operands, optional transposes, strided batches (stride 0 broadcasts), and `beta == 0` means C
//! is not read (so NaN garbage in a fresh output buffer does not leak into the result).

use half::{bf16, f16};
use ragtune_compute::backend::GemmCall;
use ragtune_compute::{ComputeError, DType};

const OP: &str = "gemm";

/// Bytes of each operand the call touches: (A, B, C), from each operand's start address.
pub(crate) fn extents(call: &GemmCall) -> Result<(usize, usize, usize), ComputeError> {
    for (what, dt) in [("in_dtype", call.in_dtype), ("out_dtype", call.out_dtype)] {
        if !dt.is_float() {
            return Err(ComputeError::DType {
                op: OP,
                detail: format!("{what} is {dt}; the GEMM takes f32, bf16 or f16"),
            });
        }
    }
    let span = |stride: usize, rows: usize, cols: usize, size: usize| -> Option<usize> {
        if call.batch == 0 || rows == 0 || cols == 0 {
            return Some(0);
        }
        (call.batch - 1).checked_mul(stride)?.checked_add(rows.checked_mul(cols)?)?.checked_mul(size)
    };
    let overflow = || ComputeError::Shape { op: OP, detail: format!("sizes overflow: {call:?}") };
    let a = span(call.stride_a, call.m, call.k, call.in_dtype.size()).ok_or_else(overflow)?;
    let b = span(call.stride_b, call.k, call.n, call.in_dtype.size()).ok_or_else(overflow)?;
    let c = span(call.stride_c, call.m, call.n, call.out_dtype.size()).ok_or_else(overflow)?;
    Ok((a, b, c))
}

fn read(dtype: DType, base: u64, index: usize) -> f64 {
    // SAFETY: callers check the whole extent lies in memory they own (see `reference_gemm`).
    unsafe {
        match dtype {
            DType::F32 => (base as *const f32).add(index).read_unaligned() as f64,
            DType::BF16 => bf16::from_bits((base as *const u16).add(index).read_unaligned()).to_f64(),
            _ => f16::from_bits((base as *const u16).add(index).read_unaligned()).to_f64(),
        }
    }
}

fn write(dtype: DType, base: u64, index: usize, v: f64) {
    // cuBLAS produces an f32 result and converts it: round to f32 first, then to the storage type.
    let v = v as f32;
    // SAFETY: as in `read`.
    unsafe {
        match dtype {
            DType::F32 => (base as *mut f32).add(index).write_unaligned(v),
            DType::BF16 => (base as *mut u16).add(index).write_unaligned(bf16::from_f32(v).to_bits()),
            _ => (base as *mut u16).add(index).write_unaligned(f16::from_f32(v).to_bits()),
        }
    }
}

/// `C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]` on host memory, as [`GemmCall`] documents.
///
/// # Safety
/// `call.a`, `call.b` and `call.c` must be host addresses of memory valid for the extents the
/// call implies (`batch-1` strides plus one matrix each), C writable and not overlapping A or B.
pub unsafe fn reference_gemm(call: &GemmCall) -> Result<(), ComputeError> {
    extents(call)?;
    let (m, n, k) = (call.m, call.n, call.k);
    let (alpha, beta) = (call.alpha as f64, call.beta as f64);
    for batch in 0..call.batch {
        let a0 = batch * call.stride_a;
        let b0 = batch * call.stride_b;
        let c0 = batch * call.stride_c;
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    let ai = if call.trans_a { p * m + i } else { i * k + p };
                    let bi = if call.trans_b { j * k + p } else { p * n + j };
                    acc += read(call.in_dtype, call.a, a0 + ai) * read(call.in_dtype, call.b, b0 + bi);
                }
                let ci = c0 + i * n + j;
                let mut v = alpha * acc;
                if beta != 0.0 {
                    v += beta * read(call.out_dtype, call.c, ci);
                }
                write(call.out_dtype, call.c, ci, v);
            }
        }
    }
    Ok(())
}
