//! GGML tensor types and their dequantisation to f32. Block layouts follow llama.cpp's
//! `ggml-common.h` / `ggml-quants.c`:
//!
//! | type | block | bytes | layout |
//! |---|---|---|---|
//! | Q4_0 | 32 | 18 | f16 d; 16 × u8 (low nibbles = x[0..16], high = x[16..32]); x = (q − 8)·d |
//! | Q4_1 | 32 | 20 | f16 d, f16 m; 16 × u8 as Q4_0; x = q·d + m |
//! | Q8_0 | 32 | 34 | f16 d; 32 × i8; x = q·d |
//! | Q5_0 | 32 | 22 | f16 d; u32 qh (bit j = 5th bit of `x[j]`); 16 × u8 as Q4_0; x = (q − 16)·d |
//! | Q5_1 | 32 | 24 | f16 d, f16 m; u32 qh; 16 × u8 as Q4_0; x = q·d + m |
//! | Q2_K | 256 | 84 | 16 × u8 (scale low nibble, min high) per 16; 64 × u8 of 2-bit q; f16 d, f16 dmin; x = d·sc·q − dmin·m |
//! | Q3_K | 256 | 110 | 32 × u8 hmask; 64 × u8 of 2-bit q; 12 bytes of 6-bit scales per 16; f16 d; x = d·(sc − 32)·(q − 4·!h) |
//! | Q4_K | 256 | 144 | f16 d, f16 dmin; 12 bytes of 6-bit (scale, min) for 8 sub-blocks of 32; 128 × u8; x = d·sc·q − dmin·m |
//! | Q5_K | 256 | 176 | as Q4_K, then 32 × u8 qh (bit s = 5th bit of sub-block s) before the 128 × u8 |
//! | Q6_K | 256 | 210 | 128 × u8 low nibbles, 64 × u8 high 2-bit pairs, 16 × i8 scales, f16 d; x = d·sc·(q − 32) |
//!
//! Products are rounded in the order llama.cpp and gguf-py round them (`(d·sc)·q − dmin·m`, no
//! fused multiply-add), so the values are bit-identical to theirs.

use half::{bf16, f16};

/// A GGML tensor type. Types whose size is known but whose dequantisation ragtune lacks still
/// parse (so metadata can be read); loading such a tensor is an error naming the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
}

pub const QK_K: usize = 256;

impl GgmlType {
    pub const SUPPORTED: &'static str =
        "ragtune dequantizes F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K";

    pub fn from_code(code: u32) -> Option<GgmlType> {
        use GgmlType::*;
        Some(match code {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            30 => BF16,
            _ => return None,
        })
    }

    pub fn code(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            BF16 => 30,
        }
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | BF16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2_K => (QK_K, 84),
            Q3_K => (QK_K, 110),
            Q4_K => (QK_K, 144),
            Q5_K => (QK_K, 176),
            Q6_K => (QK_K, 210),
            Q8_K => (QK_K, 292),
        }
    }

    /// Bytes that `numel` elements take, or why they cannot be stored (not whole blocks).
    pub fn bytes_for(self, numel: u64) -> Result<u64, String> {
        let (per, bytes) = self.block();
        if !numel.is_multiple_of(per as u64) {
            return Err(format!("{numel} elements of {self:?} are not whole blocks of {per}"));
        }
        (numel / per as u64).checked_mul(bytes as u64).ok_or_else(|| format!("{numel} elements overflow"))
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The (scale, min) pair `j` of a Q4_K block's 12 packed bytes (llama.cpp's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        y[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..16 {
        y[j] = (b[4 + j] & 0xF) as f32 * d + m;
        y[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
    }
}

fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = b[2 + j] as i8 as f32 * d;
    }
}

/// The 5-bit quants of a Q5_0/Q5_1 block: nibbles from `qs` as Q4_0, fifth bits from `qh`.
fn q5_quants(qh: &[u8], qs: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let bit = |j: usize| (((qh >> j) & 1) as u8) << 4;
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0xF) | bit(j);
        q[j + 16] = (qs[j] >> 4) | bit(j + 16);
    }
    q
}

fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, q) in y.iter_mut().zip(q5_quants(&b[2..6], &b[6..22])) {
        *y = (q as i32 - 16) as f32 * d;
    }
}

fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (y, q) in y.iter_mut().zip(q5_quants(&b[4..8], &b[8..24])) {
        *y = q as f32 * d + m;
    }
}

fn q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    // Element 128·n + 32·j + l is bits 2j..2j+2 of qs[32·n + l]; sub-blocks of 16 in order.
    for (e, y) in y.iter_mut().enumerate() {
        let (n, j, l) = (e / 128, e % 128 / 32, e % 32);
        let sc = scales[e / 16];
        let q = (qs[32 * n + l] >> (2 * j)) & 3;
        *y = d * (sc & 0xF) as f32 * q as f32 - dmin * (sc >> 4) as f32;
    }
}

fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    // 16 six-bit scales: low 4 bits from bytes 0..8 (low then high nibbles), high 2 bits from
    // bytes 8..12 (2 bits per scale, four scales per byte position).
    let scale = |k: usize| {
        let low = if k < 8 { packed[k] & 0xF } else { packed[k - 8] >> 4 };
        let high = (packed[8 + k % 4] >> (2 * (k / 4))) & 3;
        (low | (high << 4)) as i32 - 32
    };
    for (e, y) in y.iter_mut().enumerate() {
        let (n, j, l) = (e / 128, e % 128 / 32, e % 32);
        let low = ((qs[32 * n + l] >> (2 * j)) & 3) as i32;
        // The high bit *set* means no offset; clear means −4.
        let high = (hmask[l] >> (e / 32)) & 1;
        let q = low - if high == 0 { 4 } else { 0 };
        *y = d * scale(e / 16) as f32 * q as f32;
    }
}

fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * c..32 * c + 32];
        for l in 0..32 {
            y[64 * c + l] = d1 * (q[l] & 0xF) as f32 - m1;
            y[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (e, y) in y.iter_mut().enumerate() {
        // Sub-block s of 32: the low (s even) or high nibble of qs[32·(s/2) + l], bit s of qh[l].
        let (s, l) = (e / 32, e % 32);
        let (sc, m) = scale_min_k4(s, scales);
        let q = ((qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0xF) | (((qh[l] >> s) & 1) << 4);
        *y = d * sc as f32 * q as f32 - dmin * m as f32;
    }
}

fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

/// Dequantize `bytes` (whole blocks of `kind`) into f32; `Err` names the type when ragtune
/// cannot decode it.
pub fn dequantize(kind: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let (per, size) = kind.block();
    if !bytes.len().is_multiple_of(size) {
        return Err(format!("{} bytes are not whole {kind:?} blocks of {size} bytes", bytes.len()));
    }
    let blocks = bytes.len() / size;
    let mut out = vec![0f32; blocks * per];
    let decode: fn(&[u8], &mut [f32]) = match kind {
        GgmlType::F32 => |b, y| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => |b, y| y[0] = f16_at(b, 0),
        GgmlType::BF16 => |b, y| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q2_K => q2_k,
        GgmlType::Q3_K => q3_k,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q5_K => q5_k,
        GgmlType::Q6_K => q6_k,
        other => return Err(format!("tensor type {other:?} is not supported; {}", GgmlType::SUPPORTED)),
    };
    for (b, y) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(per)) {
        decode(b, y);
    }
    Ok(out)
}
