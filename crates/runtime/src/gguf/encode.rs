//! Quantizers for the block types ragtune reads: simple round-to-nearest encoders (not
//! llama.cpp's error-minimising search) that produce valid blocks. They let tests and tools
//! write GGUF files with known contents; the error bounds of each are documented per function.

use half::f16;

use super::quant::{GgmlType, QK_K};

fn put_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// The scale as the decoder will see it (after f16 rounding).
fn rounded(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

fn inv(d: f32) -> f32 {
    if d == 0.0 { 0.0 } else { 1.0 / d }
}

/// Q8_0: error ≤ d/2 with d = max|x| / 127 per block of 32.
fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = rounded(amax / 127.0);
    put_f16(out, d);
    out.extend(x.iter().map(|&v| ((v * inv(d)).round().clamp(-127.0, 127.0) as i8) as u8));
}

/// Q4_0: error ≤ d/2 with d = max|x| / 8 (the value of largest magnitude maps to −8).
fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let max = x.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    let d = rounded(max / -8.0);
    put_f16(out, d);
    let q = |v: f32| ((v * inv(d)).round() + 8.0).clamp(0.0, 15.0) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

/// Q4_1: error ≤ d/2 with d = (max − min) / 15.
fn q4_1(x: &[f32], out: &mut Vec<u8>) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (d, m) = (rounded((max - min) / 15.0), rounded(min));
    put_f16(out, d);
    put_f16(out, m);
    let q = |v: f32| ((v - m) * inv(d)).round().clamp(0.0, 15.0) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins under two f16 super-scales.
fn q4_k(x: &[f32], out: &mut Vec<u8>) {
    let mut sub_scale = [0f32; 8];
    let mut sub_min = [0f32; 8];
    for (s, chunk) in x.chunks_exact(32).enumerate() {
        let lo = chunk.iter().copied().fold(0f32, f32::min);
        let hi = chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        sub_scale[s] = (hi - lo) / 15.0;
        sub_min[s] = -lo;
    }
    let d = rounded(sub_scale.iter().fold(0f32, |a, &b| a.max(b)) / 63.0);
    let dmin = rounded(sub_min.iter().fold(0f32, |a, &b| a.max(b)) / 63.0);
    // Round scales up so the largest quant still fits in 4 bits.
    let sc: Vec<u8> = sub_scale.iter().map(|&s| (s * inv(d)).ceil().clamp(0.0, 63.0) as u8).collect();
    let mn: Vec<u8> = sub_min.iter().map(|&m| (m * inv(dmin)).round().clamp(0.0, 63.0) as u8).collect();
    let mut packed = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            packed[j] = sc[j] & 63;
            packed[j + 4] = mn[j] & 63;
        } else {
            packed[j + 4] = (sc[j] & 0xF) | ((mn[j] & 0xF) << 4);
            packed[j - 4] |= (sc[j] >> 4) << 6;
            packed[j] |= (mn[j] >> 4) << 6;
        }
    }
    put_f16(out, d);
    put_f16(out, dmin);
    out.extend_from_slice(&packed);
    let q = |e: usize| {
        let s = e / 32;
        let step = d * sc[s] as f32;
        ((x[e] + dmin * mn[s] as f32) * inv(step)).round().clamp(0.0, 15.0) as u8
    };
    for c in 0..4 {
        out.extend((0..32).map(|l| q(64 * c + l) | (q(64 * c + 32 + l) << 4)));
    }
}

/// Q6_K: 16 sub-blocks of 16 with i8 scales under one f16 super-scale; quants in −32..=31.
fn q6_k(x: &[f32], out: &mut Vec<u8>) {
    let mut sub = [0f32; 16];
    for (s, chunk) in x.chunks_exact(16).enumerate() {
        sub[s] = chunk.iter().fold(0f32, |m, v| m.max(v.abs())) / 31.0;
    }
    let d = rounded(sub.iter().fold(0f32, |a, &b| a.max(b)) / 127.0);
    let sc: Vec<i8> = sub.iter().map(|&s| (s * inv(d)).ceil().clamp(0.0, 127.0) as i8).collect();
    let q = |e: usize| -> u8 {
        let step = d * sc[e / 16] as f32;
        ((x[e] * inv(step)).round().clamp(-32.0, 31.0) as i32 + 32) as u8
    };
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for n in 0..2 {
        for l in 0..32 {
            let base = 128 * n + l;
            let (q1, q2, q3, q4) = (q(base), q(base + 32), q(base + 64), q(base + 96));
            ql[64 * n + l] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[64 * n + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&s| s as u8));
    put_f16(out, d);
}

/// Encode `x` as `kind`; `Err` when the length is not whole blocks or the type has no encoder.
pub fn quantize(kind: GgmlType, x: &[f32]) -> Result<Vec<u8>, String> {
    let (per, size) = kind.block();
    if !x.len().is_multiple_of(per) {
        return Err(format!("{} values are not whole {kind:?} blocks of {per}", x.len()));
    }
    let mut out = Vec::with_capacity(x.len() / per * size);
    let encode: fn(&[f32], &mut Vec<u8>) = match kind {
        GgmlType::F32 => |x, o| o.extend_from_slice(&x[0].to_le_bytes()),
        GgmlType::F16 => |x, o| put_f16(o, x[0]),
        GgmlType::BF16 => |x, o| o.extend_from_slice(&half::bf16::from_f32(x[0]).to_le_bytes()),
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q6_K => q6_k,
        other => return Err(format!("no encoder for {other:?}")),
    };
    for block in x.chunks_exact(per) {
        encode(block, &mut out);
    }
    debug_assert_eq!(QK_K % 32, 0);
    Ok(out)
}
