//! The AVX-512 micro-kernel of [`super::blocked`] ([`zmm::tile`]): one 6 × 32 tile of C from a
//! packed 6-row panel of A and two adjacent packed 16-column panels of B, or a 6 × 16 tile from
//! one panel for a slab's odd last panel.
//!
//! The wide tile holds twelve 16-lane accumulators; each step of k loads two vectors of B (one
//! from each panel), broadcasts six values of A and issues twelve FMAs: six cycles of FMAs
//! against eight loads on a core with two 512-bit FMA pipes and two load ports, and twelve
//! independent chains, more than the four-cycle FMA latency needs. The panels are the AVX2
//! kernel's, so a packed weight serves both; the blocked loop walks them two at a time, and caps
//! the depth of a block at [`KC_WIDE`] so the two panels it keeps in L1 stay 16 KiB, as the AVX2
//! kernel's one panel does at its depth.
//!
//! The kernel is written once, over a 16-lane vector type, in `wide_tiles!`: [`zmm`] puts it
//! on AVX-512 registers, and, in tests, `ymm_pairs` on pairs of AVX2 registers. The pairs run on
//! any AVX2 CPU, so every test machine checks the wide kernel's indexing, edges and the blocked
//! loop's two-panel walk; only the six one-line vector functions of [`zmm`] need AVX-512 itself.

use super::avx2::{MR, NR};

/// Columns of C per wide tile: two B panels.
pub const NR_WIDE: usize = 2 * NR;

/// The deepest block of k the wide kernels are given: 2 panels × 16 columns × 128 steps × 4
/// bytes = 16 KiB of B in L1.
pub const KC_WIDE: usize = 128;

/// The wide kernel over the vector type and the functions `zero`, `load`, `splat`, `fma`, `mul`
/// and `store` of the module that invokes it, compiled for `$feature`.
macro_rules! wide_tiles {
    ($feature:literal) => {
        /// `C[0..6][0..16·P] = alpha · Σ_p a[p][i] · b[p][j] (+ beta · C)` over `P` (1 or 2)
        /// panels of B: `a` packed as `kc` groups of 6 values, `b` as `P` panels of `kc` groups
        /// of 16, one after the other. C is read only when `beta != 0`.
        ///
        /// # Safety
        /// The CPU must have the module's features; `a` must hold `kc · 6` values, `b` `P · kc ·
        /// 16`; `c` must be valid for 6 rows of `16 · P` values at row stride `ldc`.
        #[target_feature(enable = $feature)]
        pub unsafe fn tile<const P: usize>(
            kc: usize,
            a: *const f32,
            b: *const f32,
            c: *mut f32,
            ldc: usize,
            alpha: f32,
            beta: f32,
        ) {
            // SAFETY (whole body): the caller vouches for the features and every pointer range.
            unsafe {
                let mut acc = [[zero(); P]; MR];
                let mut a = a;
                let mut bp = [b; P];
                for (q, panel) in bp.iter_mut().enumerate() {
                    *panel = b.add(q * kc * NR);
                }
                for i in 0..MR {
                    for line in 0..P {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                            c.add(i * ldc + line * NR).cast(),
                        );
                    }
                }
                // One step of k, `$s` steps from the panels' current position.
                macro_rules! step {
                    ($s:expr) => {
                        let mut x = [zero(); P];
                        for (xq, panel) in x.iter_mut().zip(&bp) {
                            *xq = load(panel.add($s * NR));
                        }
                        for (i, row) in acc.iter_mut().enumerate() {
                            let ai = splat(a.add($s * MR + i));
                            for (r, &xq) in row.iter_mut().zip(&x) {
                                *r = fma(ai, xq, *r);
                            }
                        }
                    };
                }
                let mut left = kc;
                while left >= 4 {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        a.wrapping_add(16 * MR).cast(),
                    );
                    step!(0);
                    step!(1);
                    step!(2);
                    step!(3);
                    a = a.add(4 * MR);
                    for panel in bp.iter_mut() {
                        *panel = panel.add(4 * NR);
                    }
                    left -= 4;
                }
                for _ in 0..left {
                    step!(0);
                    a = a.add(MR);
                    for panel in bp.iter_mut() {
                        *panel = panel.add(NR);
                    }
                }
                let (va, vb) = (splat(&alpha), splat(&beta));
                for (i, row) in acc.iter().enumerate() {
                    for (q, &v) in row.iter().enumerate() {
                        let ci = c.add(i * ldc + q * NR);
                        store(ci, if beta == 0.0 { mul(va, v) } else { fma(va, v, mul(vb, load(ci))) });
                    }
                }
            }
        }
    };
}

/// The wide kernel on 512-bit registers.
#[cfg(target_arch = "x86_64")]
pub mod zmm {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    type V = __m512;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> V {
        _mm512_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: the kernel reads inside the ranges its caller vouched for.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(p: *const f32) -> V {
        // SAFETY: as for load.
        unsafe { _mm512_set1_ps(*p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm512_fmadd_ps(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mul(a: V, b: V) -> V {
        _mm512_mul_ps(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the kernel writes inside the ranges its caller vouched for.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    wide_tiles!("avx512f");
}

/// The wide kernel with each 16-lane vector as two AVX2 registers: the same code as [`zmm`]'s
/// on any AVX2 CPU, for tests (slower: the accumulators do not fit the registers).
#[cfg(all(test, target_arch = "x86_64"))]
pub mod ymm_pairs {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    type V = [__m256; 2];

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn zero() -> V {
        [_mm256_setzero_ps(); 2]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: as in zmm.
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn splat(p: *const f32) -> V {
        // SAFETY: as in zmm.
        unsafe { [_mm256_broadcast_ss(&*p); 2] }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma(a: V, b: V, c: V) -> V {
        [_mm256_fmadd_ps(a[0], b[0], c[0]), _mm256_fmadd_ps(a[1], b[1], c[1])]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mul(a: V, b: V) -> V {
        [_mm256_mul_ps(a[0], b[0]), _mm256_mul_ps(a[1], b[1])]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: as in zmm.
        unsafe {
            _mm256_storeu_ps(p, v[0]);
            _mm256_storeu_ps(p.add(8), v[1]);
        }
    }

    wide_tiles!("avx2,fma");
}
