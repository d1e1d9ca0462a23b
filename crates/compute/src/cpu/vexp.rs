//! exp on the vector unit, for the loops that are exp-bound: the softmax of attention (forward and
//! backward) and of the loss, and the sigmoid inside SiLU/SwiGLU. `f32::exp` is a libm call per
//! element that nothing vectorizes; in a LoRA step of the demo's 2.1M-parameter model those calls
//! were a large share of the time outside the GEMMs. Builds carry no `-C target-cpu`, so these
//! kernels are compiled for AVX-512 F and for AVX2 + FMA with `#[target_feature]` and chosen at
//! run time ([`Isa::detected`]); other CPUs run the scalar loop.
//!
//! The method is the classic one (Cephes' `expf`): n = round(x·log2 e), r = x − n·ln 2 in two
//! parts (so r is exact to f32), e^r by a degree-7 polynomial on |r| ≤ ln2/2, and 2^n built in
//! the exponent bits — as two factors 2^⌊n/2⌋·2^(n−⌊n/2⌋), so results down to the subnormal
//! range and up to `f32::MAX` come out right without a second range reduction. Accuracy: within
//! 2 ulp of the correctly rounded value over the normal range (tests check against f64 exp);
//! exp(x) is +∞ above ln(`f32::MAX`), 0 below −104 (where the true value rounds to 0), and NaN
//! stays NaN. Sums run in f32 lanes, so they differ from the scalar loop's order by rounding.

use super::gemv_simd::Isa;

/// `xs[i] = exp(xs[i] − m)` for every i; returns the sum of the updated `xs`. A softmax row's
/// numerator and denominator in one pass (m is the row's max, so every argument is ≤ 0).
pub fn exp_sub_sum(xs: &mut [f32], m: f32) -> f32 {
    exp_sub_sum_on(Isa::detected(), xs, m)
}

/// [`exp_sub_sum`] on a chosen instruction set (tests compare the paths); `isa` must be
/// [`Isa::available`].
pub fn exp_sub_sum_on(isa: Isa, xs: &mut [f32], m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(isa.available(), "{isa:?} is not available on this CPU");
        // SAFETY: the CPU has the features each kernel is compiled for (checked above).
        match isa {
            Isa::Avx512 => return unsafe { x86::exp_sub_sum_512(xs, m) },
            Isa::Avx2 => return unsafe { x86::exp_sub_sum_256(xs, m) },
            Isa::Scalar => {}
        }
    }
    let _ = isa;
    let mut sum = 0f32;
    for x in xs {
        *x = (*x - m).exp();
        sum += *x;
    }
    sum
}

/// `out[i] = σ(x[i]) = 1 / (1 + exp(−x[i]))`.
pub fn sigmoid(x: &[f32], out: &mut [f32]) {
    sigmoid_on(Isa::detected(), x, out)
}

/// [`sigmoid`] on a chosen instruction set; `isa` must be [`Isa::available`].
pub fn sigmoid_on(isa: Isa, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "sigmoid: input and output lengths differ");
    #[cfg(target_arch = "x86_64")]
    {
        assert!(isa.available(), "{isa:?} is not available on this CPU");
        // SAFETY: as in exp_sub_sum_on; the lengths are equal.
        match isa {
            Isa::Avx512 => return unsafe { x86::sigmoid_512(x, out) },
            Isa::Avx2 => return unsafe { x86::sigmoid_256(x, out) },
            Isa::Scalar => {}
        }
    }
    let _ = isa;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 1.0 / (1.0 + (-v).exp());
    }
}

/// Elements per stack buffer when a caller needs σ of a slice it reads in another type.
pub const BLOCK: usize = 256;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits so n·LN2_HI is exact for |n| ≤ 150.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // ln(f32::MAX): above it exp overflows; below LO the true value rounds to 0.
    const HI: f32 = 88.722_84;
    const LO: f32 = -104.0;
    // e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln2/2 (Cephes expf's coefficients).
    const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp256(x: __m256) -> __m256 {
        let xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LO)), _mm256_set1_ps(HI));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            xc,
            _mm256_set1_ps(LOG2E),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        // 2^n as 2^h · 2^(n−h), h = n >> 1: each factor's biased exponent stays in 1..=254.
        let ni = _mm256_cvtps_epi32(n);
        let h = _mm256_srai_epi32::<1>(ni);
        let bias = _mm256_set1_epi32(127);
        let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(h, bias)));
        let s2 =
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias)));
        let y = _mm256_mul_ps(_mm256_mul_ps(e, s1), s2);
        // Edges: +∞ above HI, 0 below LO (already, up to a subnormal: force it), NaN in → NaN out.
        let y = _mm256_blendv_ps(
            y,
            _mm256_set1_ps(f32::INFINITY),
            _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(HI)),
        );
        let y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(LO)));
        _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn exp512(x: __m512) -> __m512 {
        let xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(LO)), _mm512_set1_ps(HI));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            xc,
            _mm512_set1_ps(LOG2E),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let r2 = _mm512_mul_ps(r, r);
        let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
        let ni = _mm512_cvtps_epi32(n);
        let h = _mm512_srai_epi32::<1>(ni);
        let bias = _mm512_set1_epi32(127);
        let s1 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(h, bias)));
        let s2 =
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_sub_epi32(ni, h), bias)));
        let y = _mm512_mul_ps(_mm512_mul_ps(e, s1), s2);
        let y = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(HI)),
            y,
            _mm512_set1_ps(f32::INFINITY),
        );
        let y = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(LO)),
            y,
            _mm512_setzero_ps(),
        );
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub_sum_256(xs: &mut [f32], m: f32) -> f32 {
        let mv = _mm256_set1_ps(m);
        let mut acc = _mm256_setzero_ps();
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c holds 8 floats.
            let y = unsafe { exp256(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mv)) };
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), y) };
            acc = _mm256_add_ps(acc, y);
        }
        let tail = chunks.into_remainder();
        let mut tail_sum = 0f32;
        if !tail.is_empty() {
            // Through a buffer; only the tail's own lanes are kept and summed.
            let mut buf = [0f32; 8];
            buf[..tail.len()].copy_from_slice(tail);
            let y = unsafe { exp256(_mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), mv)) };
            unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), y) };
            tail.copy_from_slice(&buf[..tail.len()]);
            tail_sum = tail.iter().sum();
        }
        tail_sum + unsafe { hsum256(acc) }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sub_sum_512(xs: &mut [f32], m: f32) -> f32 {
        let mv = _mm512_set1_ps(m);
        let mut acc = _mm512_setzero_ps();
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: c holds 16 floats.
            let y = unsafe { exp512(_mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), mv)) };
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), y) };
            acc = _mm512_add_ps(acc, y);
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            // A masked load leaves the missing lanes 0; the mask keeps them out of the sum.
            let k: __mmask16 = (1u32 << tail.len()) as u16 - 1;
            let y = unsafe { exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, tail.as_ptr()), mv)) };
            unsafe { _mm512_mask_storeu_ps(tail.as_mut_ptr(), k, y) };
            acc = _mm512_mask_add_ps(acc, k, acc, y);
        }
        _mm512_reduce_add_ps(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sigmoid256(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = unsafe { exp256(_mm256_sub_ps(_mm256_setzero_ps(), x)) };
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sigmoid_256(x: &[f32], out: &mut [f32]) {
        let n = x.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 ≤ n ≤ len of both slices.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr().add(i), sigmoid256(_mm256_loadu_ps(x.as_ptr().add(i))))
            };
        }
        if n < x.len() {
            let mut buf = [0f32; 8];
            buf[..x.len() - n].copy_from_slice(&x[n..]);
            let y = unsafe { sigmoid256(_mm256_loadu_ps(buf.as_ptr())) };
            unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), y) };
            out[n..].copy_from_slice(&buf[..x.len() - n]);
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn sigmoid_512(x: &[f32], out: &mut [f32]) {
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < x.len() {
            let left = (x.len() - i).min(16);
            let k: __mmask16 = ((1u32 << left) - 1) as u16;
            // SAFETY: the mask covers only the `left` elements from i, inside both slices.
            let v = unsafe { _mm512_maskz_loadu_ps(k, x.as_ptr().add(i)) };
            let e = unsafe { exp512(_mm512_sub_ps(_mm512_setzero_ps(), v)) };
            let y = _mm512_div_ps(one, _mm512_add_ps(one, e));
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), k, y) };
            i += left;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()).collect()
    }

    /// ulps between a and the f64 value b rounded to f32 (both finite).
    fn ulps(a: f32, b: f64) -> f64 {
        let want = b as f32;
        let ulp =
            (f32::from_bits(want.to_bits() + 1) - want).abs().max(f32::MIN_POSITIVE * f32::EPSILON) as f64;
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64_over_the_normal_range() {
        // −87.3 ... 88.7 (normal results) on a fine grid, every lane position and the tails.
        let xs: Vec<f32> = (0..200_003).map(|i| -87.3 + i as f32 * (176.0 / 200_003.0)).collect();
        for isa in paths() {
            let mut ys = xs.clone();
            let sum = exp_sub_sum_on(isa, &mut ys, 0.0);
            let mut worst = 0f64;
            for (&x, &y) in xs.iter().zip(&ys) {
                worst = worst.max(ulps(y, (x as f64).exp()));
            }
            assert!(worst <= 2.0, "{isa:?}: worst {worst} ulp");
            // The sum overflows f32 near the top of the range, as it should.
            let want: f64 = xs.iter().map(|&x| (x as f64).exp()).sum();
            assert_eq!(sum, f32::INFINITY, "{isa:?}: sum {sum} vs {want}");
            let (mut low, want) =
                (xs[..150_000].to_vec(), xs[..150_000].iter().map(|&x| (x as f64).exp()).sum::<f64>());
            let sum = exp_sub_sum_on(isa, &mut low, 0.0);
            assert!(((sum as f64) - want).abs() <= 1e-5 * want, "{isa:?}: sum {sum} vs {want}");
        }
    }

    #[test]
    fn exp_edges_overflow_underflow_and_nan() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -104.5,
            -100.0,
            -88.0,
            0.0,
            -0.0,
            88.7,
            88.73,
            1e30,
            f32::INFINITY,
            f32::NAN,
            1.0,
            -1.0,
            20.0,
            -20.0,
            -95.0,
        ];
        for isa in paths() {
            // 17 elements: one full 16/8-lane block and a tail.
            let mut ys = xs.to_vec();
            exp_sub_sum_on(isa, &mut ys, 0.0);
            for (&x, &y) in xs.iter().zip(&ys) {
                let want = (x as f64).exp();
                if x.is_nan() {
                    assert!(y.is_nan(), "{isa:?}: exp(NaN) = {y}");
                } else if want > f32::MAX as f64 {
                    assert_eq!(y, f32::INFINITY, "{isa:?}: exp({x})");
                } else if want < f32::MIN_POSITIVE as f64 {
                    // Subnormal or zero: the absolute error is below the smallest normal.
                    assert!(
                        y >= 0.0 && (y as f64 - want).abs() < f32::MIN_POSITIVE as f64,
                        "{isa:?}: exp({x}) = {y}"
                    );
                } else {
                    assert!(ulps(y, want) <= 2.0, "{isa:?}: exp({x}) = {y}, want {want}");
                }
            }
        }
    }

    #[test]
    fn softmax_rows_of_every_length_sum_like_f64() {
        for isa in paths() {
            for len in 0..40 {
                let xs: Vec<f32> = (0..len).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7).collect();
                let m = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut ys = xs.clone();
                let sum = exp_sub_sum_on(isa, &mut ys, m);
                // The shifted argument is the f32 difference, as the callers compute it.
                let want: f64 = xs.iter().map(|&x| ((x - m) as f64).exp()).sum();
                assert!(
                    ((sum as f64) - want).abs() <= 1e-6 * want.max(1.0),
                    "{isa:?} len {len}: {sum} vs {want}"
                );
                for (&x, &y) in xs.iter().zip(&ys) {
                    assert!(ulps(y, ((x - m) as f64).exp()) <= 2.0, "{isa:?} len {len}");
                }
            }
        }
    }

    #[test]
    fn sigmoid_matches_f64() {
        let xs: Vec<f32> =
            (0..10_007).map(|i| -110.0 + i as f32 * 0.022).chain([f32::NAN, 1e30, -1e30]).collect();
        for isa in paths() {
            let mut ys = vec![0f32; xs.len()];
            sigmoid_on(isa, &xs, &mut ys);
            for (&x, &y) in xs.iter().zip(&ys) {
                if x.is_nan() {
                    assert!(y.is_nan(), "{isa:?}");
                    continue;
                }
                let want = 1.0 / (1.0 + (-(x as f64)).exp());
                // Relative to the value, or below the smallest normal where σ underflows.
                let tol = (4.0 * f32::EPSILON as f64 * want).max(f32::MIN_POSITIVE as f64);
                assert!((y as f64 - want).abs() <= tol, "{isa:?}: σ({x}) = {y}, want {want}");
            }
        }
    }
}
