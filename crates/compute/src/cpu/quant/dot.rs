//! Weight rows · one activation row, for each repacked layout: integer products summed per
//! block of 32, each block's sum scaled in f32. Three instruction sets, picked at run time from
//! the running CPU (never from build flags): AVX512-VNNI (`vpdpbusd`, u8 × i8 → i32 in one
//! instruction), AVX2 (`vpmaddubsw` then `vpmaddwd`), and a scalar loop that the SIMD paths are
//! tested against.
//!
//! Both SIMD paths take unsigned × signed bytes: `Nib` quants are already 0..=15; `I8` quants
//! are made unsigned with the sign trick (|w| · (x·sign w)), exact because activations stay in
//! −127..=127 and |w| ≤ 128. No i16 saturation is possible: 2·128·127 < 32767. With fine
//! activations (`acts::ActBits::Fine`) a block's sum is `256·Σw·q + Σw·lo`, at most
//! 32·128·127·257 < 2³¹, so it stays exact in i32.
//!
//! The integer block sums are exact on every path; the paths differ only in how the f32 sums
//! of scaled blocks are rounded (SIMD keeps 8 partial sums per block, one per 4 weights, in two
//! accumulators), so they agree within the f32 summation bound stated in the tests.

use std::sync::OnceLock;

use super::QK;
use super::acts::QRow;
use super::blocks::{Layout, QMatrix};

/// The instruction set a dot product runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512Vnni,
}

impl Isa {
    /// The fastest path this CPU runs, detected once.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| *Isa::available().last().unwrap_or(&Isa::Scalar))
    }

    /// Every path this CPU can run, slowest first (tests compare them all).
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2);
                if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                    out.push(Isa::Avx512Vnni);
                }
            }
        }
        out
    }
}

/// `out[i] = Σ_j W[first + i][j] · x_j` for activation row `a` on `isa` (one of
/// [`Isa::available`]). Panics when `a` does not fit `w`'s rows (callers size them).
pub fn dot_rows(isa: Isa, w: &QMatrix, first: usize, a: QRow, out: &mut [f32]) {
    let nb = w.blocks_per_row();
    assert!(
        a.d.len() == nb
            && a.s.len() == nb
            && a.q.len() == nb * QK
            && (a.lo.is_empty() || a.lo.len() == nb * QK)
            && first + out.len() <= w.rows,
        "quant dot: an activation row of {} blocks for rows {first}..{} of a {} × {} matrix",
        a.d.len(),
        first + out.len(),
        w.rows,
        w.cols
    );
    match isa {
        Isa::Scalar => scalar(w, first, a, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` comes from `Isa::available`, so the CPU has the features; the row
        // lengths were checked above and `QMatrix::row` sizes the weight rows.
        Isa::Avx2 => unsafe { x86::avx2(w, first, a, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512Vnni => unsafe { x86::vnni(w, first, a, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar(w, first, a, out),
    }
}

/// The reference: exact i32 block sums, f32 scaling and summation in block order.
fn scalar(w: &QMatrix, first: usize, a: QRow, out: &mut [f32]) {
    let layout = w.layout();
    let fine = !a.lo.is_empty();
    // With the residual, a block's integer sum counts in steps of d/256 (an exact scaling).
    let unit = if fine { 1.0 / 256.0 } else { 1.0 };
    // 256·Σw·q + Σw·lo over the weights `range` of block b, with w_j from `wv`.
    let block_sum = |b: usize, range: std::ops::Range<usize>, wv: &dyn Fn(usize) -> i32| -> i32 {
        let hi: i32 = range.clone().map(|j| wv(j) * a.q[QK * b + j] as i32).sum();
        if !fine {
            return hi;
        }
        256 * hi + range.map(|j| wv(j) * a.lo[QK * b + j] as i32).sum::<i32>()
    };
    for (i, y) in out.iter_mut().enumerate() {
        let (wd, wm, wq) = w.row(first + i);
        let (mut acc, mut offsets) = (0f32, 0f32);
        for (b, &ad) in a.d.iter().enumerate() {
            let ad = ad * unit;
            match layout {
                Layout::Nib => {
                    let q = &wq[16 * b..16 * b + 16];
                    let wv = |j: usize| if j < 16 { (q[j] & 0xF) as i32 } else { (q[j - 16] >> 4) as i32 };
                    acc += wd[b] * ad * block_sum(b, 0..QK, &wv) as f32;
                    offsets += wm[b] * a.s[b];
                }
                Layout::I8 => {
                    let wv = |j: usize| wq[QK * b + j] as i8 as i32;
                    acc += wd[b] * ad * block_sum(b, 0..QK, &wv) as f32;
                }
                Layout::I8Half => {
                    let wv = |j: usize| wq[QK * b + j] as i8 as i32;
                    for h in 0..2 {
                        acc += wd[2 * b + h] * ad * block_sum(b, 16 * h..16 * h + 16, &wv) as f32;
                    }
                }
            }
        }
        *y = acc + offsets;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Layout, QK, QMatrix, QRow};

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// 32 bytes at block `b` of a byte row.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load32<T>(v: &[T], b: usize) -> __m256i {
        // SAFETY (caller): the row holds at least 32·(b + 1) bytes.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast::<u8>().add(QK * b) as *const __m256i) }
    }

    /// The 32 nibbles of `Nib` block `b` as bytes in weight order.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(q: &[u8], b: usize) -> __m256i {
        // SAFETY (caller): the row holds 16·(b + 1) bytes.
        let raw = unsafe { _mm_loadu_si128(q.as_ptr().add(16 * b) as *const __m128i) };
        let mask = _mm_set1_epi8(0xF);
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), _mm_and_si128(raw, mask))
    }

    /// Σ m·s over the blocks of a `Nib` row (8 at a time).
    #[target_feature(enable = "avx2,fma")]
    fn offsets(m: &[f32], s: &[f32]) -> f32 {
        let n = m.len().min(s.len());
        let mut acc = _mm256_setzero_ps();
        let mut b = 0;
        while b + 8 <= n {
            // SAFETY: b + 8 <= n ≤ both lengths.
            unsafe {
                acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(m.as_ptr().add(b)),
                    _mm256_loadu_ps(s.as_ptr().add(b)),
                    acc,
                );
            }
            b += 8;
        }
        let tail: f32 = (b..n).map(|b| m[b] * s[b]).sum();
        hsum(acc) + tail
    }

    #[target_feature(enable = "avx2,fma")]
    fn prod_avx2(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    fn prod_vnni(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    const NIB: u8 = 0;
    const I8: u8 = 1;
    const HALF: u8 = 2;

    /// The row loop, with `$prod` the u8 × i8 → 8 × i32 block product. `$row` is monomorphic
    /// in the layout and the activation kind, so its block loop has no branches; blocks go in
    /// pairs into two accumulators, so consecutive blocks' FMAs do not wait on each other.
    macro_rules! rows_kernel {
        ($name:ident, $row:ident, $features:literal, $prod:ident) => {
            /// One weight row (scales `wd`, quants `wq`) · `a`, without the `Nib` offsets.
            ///
            /// # Safety
            /// The CPU has the named features; `wd`, `wq` and `a` hold `a.d.len()` blocks.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $row<const LAYOUT: u8, const FINE: bool>(
                wd: &[f32],
                wm: &[f32],
                wq: &[u8],
                a: &QRow,
            ) -> f32 {
                let unit = if FINE { 1.0 / 256.0 } else { 1.0 };
                let nb = a.d.len();
                // SAFETY: every index below is a block < nb of rows that hold nb blocks.
                let block = |b: usize, acc: __m256| unsafe {
                    let x = load32(a.q, b);
                    let t = if LAYOUT == NIB {
                        let u = nibbles(wq, b);
                        let mut t = $prod(u, x);
                        if FINE {
                            t = _mm256_add_epi32(_mm256_slli_epi32(t, 8), $prod(u, load32(a.lo, b)));
                        }
                        t
                    } else {
                        let q = load32(wq, b);
                        let u = _mm256_sign_epi8(q, q);
                        let mut t = $prod(u, _mm256_sign_epi8(x, q));
                        if FINE {
                            let lo = _mm256_sign_epi8(load32(a.lo, b), q);
                            t = _mm256_add_epi32(_mm256_slli_epi32(t, 8), $prod(u, lo));
                        }
                        t
                    };
                    let ad = *a.d.get_unchecked(b) * unit;
                    let scale = if LAYOUT == HALF {
                        _mm256_set_m128(
                            _mm_set1_ps(*wd.get_unchecked(2 * b + 1) * ad),
                            _mm_set1_ps(*wd.get_unchecked(2 * b) * ad),
                        )
                    } else {
                        _mm256_set1_ps(*wd.get_unchecked(b) * ad)
                    };
                    _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(t), acc)
                };
                let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let mut b = 0;
                // Quant bytes per block; the stream is prefetched ~1 KB ahead (into the next row
                // near a row's end, which the same task reads next): decode reads weights from
                // DRAM once per token, and the hardware prefetcher alone left the kernel waiting.
                let qb = if LAYOUT == NIB { QK / 2 } else { QK };
                while b + 2 <= nb {
                    _mm_prefetch::<_MM_HINT_T0>(wq.as_ptr().wrapping_add(qb * b + 1024).cast());
                    _mm_prefetch::<_MM_HINT_T0>(wd.as_ptr().wrapping_add(b + 64).cast());
                    if LAYOUT == NIB {
                        _mm_prefetch::<_MM_HINT_T0>(wm.as_ptr().wrapping_add(b + 64).cast());
                    }
                    acc0 = block(b, acc0);
                    acc1 = block(b + 1, acc1);
                    b += 2;
                }
                if b < nb {
                    acc0 = block(b, acc0);
                }
                hsum(_mm256_add_ps(acc0, acc1))
            }

            /// # Safety
            /// The CPU has the named features; `dot_rows` checked the lengths.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(w: &QMatrix, first: usize, a: QRow, out: &mut [f32]) {
                let layout = w.layout();
                let fine = !a.lo.is_empty();
                for (i, y) in out.iter_mut().enumerate() {
                    let (wd, wm, wq) = w.row(first + i);
                    // SAFETY: `QMatrix::row` gives rows of `a.d.len()` blocks (checked by dot_rows).
                    *y = unsafe {
                        match (layout, fine) {
                            (Layout::Nib, false) => $row::<NIB, false>(wd, wm, wq, &a) + offsets(wm, a.s),
                            (Layout::Nib, true) => $row::<NIB, true>(wd, wm, wq, &a) + offsets(wm, a.s),
                            (Layout::I8, false) => $row::<I8, false>(wd, wm, wq, &a),
                            (Layout::I8, true) => $row::<I8, true>(wd, wm, wq, &a),
                            (Layout::I8Half, false) => $row::<HALF, false>(wd, wm, wq, &a),
                            (Layout::I8Half, true) => $row::<HALF, true>(wd, wm, wq, &a),
                        }
                    };
                }
            }
        };
    }

    rows_kernel!(avx2, row_avx2, "avx2,fma", prod_avx2);
    rows_kernel!(vnni, row_vnni, "avx2,fma,avx512vnni,avx512vl", prod_vnni);
}
