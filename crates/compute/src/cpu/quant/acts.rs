//! Activations quantized for the integer dot products: each row of `x` `[m, k]` in blocks of
//! 32, `d = max|x| / 127`, `q = round(x / d)` in −127..=127 (never −128, so the kernels' sign
//! tricks cannot overflow) — llama.cpp's 8-bit activations.
//!
//! [`ActBits::Fine`] adds a second byte per value: the residual `x − d·q` quantized with step
//! `d/256` (`lo` in −127..=127), so `x ≈ d·(q + lo/256)` to within `d/256` instead of `d/2`.
//! The kernels take one more integer product per block with the same weight bytes and combine
//! the two exactly in i32 (`256·Σw·q + Σw·lo`), so the weights are still read once. On
//! SmolLM2-135M the 8-bit activations alone flip greedy tokens within the first 16 on recorded
//! prompts (their logits move by ~0.2); the fine ones keep them.
//!
//! Each block also keeps `s = d·Σ(q + lo/256)`, which the `Nib` layout's offset term needs.

use super::QK;

/// `v` rounded to the nearest integer (ties to even) for |v| < 2²²: adding and subtracting
/// 1.5·2²³ leaves no fraction bits. A plain add/sub pair vectorizes; `f32::round` is a libm
/// call on a baseline x86-64 build.
#[inline]
fn round(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// How finely activations are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActBits {
    /// 8 bits per value (llama.cpp's Q8 activations).
    I8,
    /// 8 bits plus an 8-bit residual at 1/256 of the step (about 15 bits).
    Fine,
}

/// `[m, k]` activations as i8 blocks of 32 with one f32 scale and one f32 offset sum per block.
#[derive(Clone, Debug)]
pub struct QActs {
    pub rows: usize,
    pub cols: usize,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
    pub q: Vec<i8>,
    /// The residual quants (step d/256), empty for [`ActBits::I8`].
    pub lo: Vec<i8>,
}

/// One row of [`QActs`].
#[derive(Clone, Copy)]
pub struct QRow<'a> {
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub q: &'a [i8],
    /// Empty, or the residual quants of the row.
    pub lo: &'a [i8],
}

impl QActs {
    /// Quantize `x` (`rows · cols` values, `cols` a multiple of 32).
    pub fn quantize(x: &[f32], rows: usize, cols: usize, bits: ActBits) -> QActs {
        assert!(cols.is_multiple_of(QK) && x.len() == rows * cols, "QActs: {rows} × {cols} from {}", x.len());
        let blocks = rows * cols / QK;
        let fine = bits == ActBits::Fine;
        let mut out = QActs {
            rows,
            cols,
            d: Vec::with_capacity(blocks),
            s: Vec::with_capacity(blocks),
            q: vec![0i8; rows * cols],
            lo: vec![0i8; if fine { rows * cols } else { 0 }],
        };
        for (b, x) in x.chunks_exact(QK).enumerate() {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let q = &mut out.q[QK * b..QK * b + QK];
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(x) {
                // x·(1/d) can land a hair above 127 for the largest value; clamp keeps it i8.
                *q = round(v * inv).clamp(-127.0, 127.0) as i8;
                sum += *q as i32;
            }
            let mut total = sum as f32;
            if fine {
                let mut lo_sum = 0i32;
                let lo = &mut out.lo[QK * b..QK * b + QK];
                for ((lo, &q), &v) in lo.iter_mut().zip(&out.q[QK * b..QK * b + QK]).zip(x) {
                    // |x − d·q| ≤ d/2 (plus rounding), so the residual is within ±128 steps.
                    *lo = round((v - d * q as f32) * inv * 256.0).clamp(-127.0, 127.0) as i8;
                    lo_sum += *lo as i32;
                }
                total = (256 * sum + lo_sum) as f32 / 256.0;
            }
            out.d.push(d);
            out.s.push(d * total);
        }
        out
    }

    pub fn row(&self, r: usize) -> QRow<'_> {
        let nb = self.cols / QK;
        let span = r * self.cols..(r + 1) * self.cols;
        QRow {
            d: &self.d[r * nb..(r + 1) * nb],
            s: &self.s[r * nb..(r + 1) * nb],
            q: &self.q[span.clone()],
            lo: if self.lo.is_empty() { &self.lo[..0] } else { &self.lo[span] },
        }
    }

    /// Value `i` of the quantized row-major activations, as the kernels see it.
    pub fn value(&self, i: usize) -> f64 {
        let d = self.d[i / QK] as f64;
        let lo = self.lo.get(i).map_or(0.0, |&l| l as f64 / 256.0);
        d * (self.q[i] as f64 + lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value is within d/2 (8 bits) or d/256 (fine) of its quantized value, plus the f32
    /// rounding of x/d; the largest one maps to ±127.
    #[test]
    fn rounding_error_is_half_a_step_or_a_256th() {
        let x: Vec<f32> = (0..96).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013).collect();
        for (bits, step) in [(ActBits::I8, 0.5), (ActBits::Fine, 1.0 / 256.0)] {
            let a = QActs::quantize(&x, 1, 96, bits);
            let mut worst = 0f64;
            for (b, xs) in x.chunks_exact(32).enumerate() {
                let d = a.d[b] as f64;
                let q = &a.q[32 * b..32 * b + 32];
                assert_eq!(q.iter().map(|v| v.unsigned_abs()).max(), Some(127));
                for (j, v) in xs.iter().enumerate() {
                    let err = (*v as f64 - a.value(32 * b + j)).abs();
                    assert!(err <= d * (step + 256.0 * f32::EPSILON as f64), "{bits:?} {v}: {err} vs d {d}");
                    worst = worst.max(err / d);
                }
                let sum: f64 = (0..32).map(|j| a.value(32 * b + j)).sum::<f64>() / d;
                assert!((a.s[b] as f64 - d * sum).abs() <= 2.0 * f32::EPSILON as f64 * (d * sum).abs());
            }
            // The fine residual is real: its error is far below 8 bits'.
            assert!(worst > step / 8.0, "{bits:?}: worst {worst}");
        }
        let zero = QActs::quantize(&[0.0; 32], 1, 32, ActBits::Fine);
        assert!(zero.q.iter().chain(&zero.lo).all(|&q| q == 0) && zero.d[0] == 0.0);
    }
}
