//! Dtype conversion (family `cast`, kernels/cast.cu).
//!
//! Semantics, the same on CPU and GPU: to a float type, through f32 with rounding to nearest even
//! (so i32 → bf16 rounds twice, as CUDA's `__float2bfloat16((float)v)` does); to an integer type,
//! truncation toward zero, saturating at the type's range, NaN → 0 (Rust's `as`).

use half::{bf16, f16};
use rayon::prelude::*;

use super::ELEMS_PER_TASK;
use crate::dtype::DType;

#[inline]
fn read(bytes: &[u8], dtype: DType, i: usize) -> f64 {
    let s = dtype.size();
    let b = &bytes[i * s..i * s + s];
    match dtype {
        DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        DType::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
        DType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
        DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        DType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        DType::U8 => b[0] as f64,
    }
}

#[inline]
fn write(out: &mut [u8], dtype: DType, v: f64) {
    match dtype {
        DType::F32 => out.copy_from_slice(&(v as f32).to_le_bytes()),
        DType::BF16 => out.copy_from_slice(&bf16::from_f32(v as f32).to_le_bytes()),
        DType::F16 => out.copy_from_slice(&f16::from_f32(v as f32).to_le_bytes()),
        // `as` from f64 truncates, saturates and maps NaN to 0.
        DType::I32 => out.copy_from_slice(&(v as i32).to_le_bytes()),
        DType::U32 => out.copy_from_slice(&(v as u32).to_le_bytes()),
        DType::U8 => out[0] = v as u8,
    }
}

/// Convert `src` (elements of `from`) into `dst` (elements of `to`).
pub fn cast(src: &[u8], from: DType, dst: &mut [u8], to: DType) {
    let (si, so) = (from.size(), to.size());
    if from == to {
        dst.copy_from_slice(src);
        return;
    }
    if fast_float_cast(src, from, dst, to) {
        return;
    }
    dst.par_chunks_mut(ELEMS_PER_TASK * so).zip(src.par_chunks(ELEMS_PER_TASK * si)).for_each(|(d, s)| {
        for (i, o) in d.chunks_exact_mut(so).enumerate() {
            write(o, to, read(s, from, i));
        }
    });
}

/// Every element as f32.
pub fn bytes_to_f32(bytes: &[u8], dtype: DType) -> Vec<f32> {
    let n = bytes.len() / dtype.size();
    let mut out = vec![0f32; n];
    cast(bytes, dtype, bytemuck::cast_slice_mut(&mut out), DType::F32);
    out
}

/// f32 <-> bf16/f16 with `half`'s vectorised slice conversions (the casts weights and activations
/// go through); `false` when the pair is not one of these or the bytes are not aligned.
fn fast_float_cast(src: &[u8], from: DType, dst: &mut [u8], to: DType) -> bool {
    use half::slice::HalfFloatSliceExt;
    match (from, to) {
        (DType::F32, DType::BF16 | DType::F16) => par_convert::<f32, u16>(src, dst, |s, d| {
            if to == DType::BF16 {
                bytemuck::cast_slice_mut::<u16, bf16>(d).convert_from_f32_slice(s)
            } else {
                bytemuck::cast_slice_mut::<u16, f16>(d).convert_from_f32_slice(s)
            }
        }),
        (DType::BF16 | DType::F16, DType::F32) => par_convert::<u16, f32>(src, dst, |s, d| {
            if from == DType::BF16 {
                bytemuck::cast_slice::<u16, bf16>(s).convert_to_f32_slice(d)
            } else {
                bytemuck::cast_slice::<u16, f16>(s).convert_to_f32_slice(d)
            }
        }),
        _ => false,
    }
}

/// `convert` over matching chunks of `src` as `S` and `dst` as `D`, in parallel; `false` (and
/// nothing written) when either is not aligned for its type.
fn par_convert<S: bytemuck::Pod + Sync, D: bytemuck::Pod + Send>(
    src: &[u8],
    dst: &mut [u8],
    convert: impl Fn(&[S], &mut [D]) + Sync,
) -> bool {
    let n = ELEMS_PER_TASK;
    let (Ok(s), Ok(d)) = (bytemuck::try_cast_slice::<u8, S>(src), bytemuck::try_cast_slice_mut::<u8, D>(dst))
    else {
        return false;
    };
    d.par_chunks_mut(n).zip(s.par_chunks(n)).for_each(|(d, s)| convert(s, d));
    true
}
