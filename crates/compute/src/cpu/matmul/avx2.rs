//! The AVX2 + FMA micro-kernel of [`super::blocked`]: one 6 × 16 tile of C from a packed 6-row
//! panel of A and a packed 16-column panel of B.
//!
//! Twelve 8-wide accumulators hold the tile; each step of k loads two vectors of B, broadcasts
//! six values of A and issues twelve FMAs. That leaves three of the sixteen ymm registers for the
//! operands, so nothing spills, and the two FMA pipes of a Zen or Skylake core stay fed (six
//! cycles of FMAs against eight loads per step).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows of C per micro-tile.
pub const MR: usize = 6;
/// Columns of C per micro-tile.
pub const NR: usize = 16;

/// `C[0..6][0..16] = alpha · Σ_p a[p][i] · b[p][j] (+ beta · C)`, with `a` packed as `kc` groups
/// of [`MR`] values and `b` as `kc` groups of [`NR`]. C is read only when `beta != 0`, so it may
/// be uninitialised otherwise.
///
/// # Safety
/// The CPU must have AVX2 and FMA. `a` must hold `kc · MR` values, `b` `kc · NR`; `c` must be
/// valid for the 6 rows of 16 values at row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY (whole body): the caller vouches for the CPU features and for every pointer range.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        // Warm the tile of C the stores will touch, while the loop runs.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast());
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 8).cast());
        }
        // One step of k at offset `$q` steps from the panels' current position.
        macro_rules! step {
            ($q:expr) => {
                let b0 = _mm256_loadu_ps(b.add($q * NR));
                let b1 = _mm256_loadu_ps(b.add($q * NR + 8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*a.add($q * MR + i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
            };
        }
        let mut left = kc;
        while left >= 4 {
            // A streams from L2: ask for the line 16 steps ahead (prefetches never fault).
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(16 * MR).cast());
            step!(0);
            step!(1);
            step!(2);
            step!(3);
            a = a.add(4 * MR);
            b = b.add(4 * NR);
            left -= 4;
        }
        for _ in 0..left {
            step!(0);
            a = a.add(MR);
            b = b.add(NR);
        }
        let va = _mm256_set1_ps(alpha);
        if beta == 0.0 {
            for (i, row) in acc.iter().enumerate() {
                let ci = c.add(i * ldc);
                _mm256_storeu_ps(ci, _mm256_mul_ps(va, row[0]));
                _mm256_storeu_ps(ci.add(8), _mm256_mul_ps(va, row[1]));
            }
        } else {
            let vb = _mm256_set1_ps(beta);
            for (i, row) in acc.iter().enumerate() {
                let ci = c.add(i * ldc);
                let c0 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci));
                let c1 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci.add(8)));
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, row[0], c0));
                _mm256_storeu_ps(ci.add(8), _mm256_fmadd_ps(va, row[1], c1));
            }
        }
    }
}
