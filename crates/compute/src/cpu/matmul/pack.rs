//! Packing for [`super::blocked`]: a block of A copied into 6-row panels and a block of B into
//! 16-column panels, each laid out in the order the micro-kernel reads it (one step of k after
//! another), padded with zeros past the matrix edge so every tile is full size.
//!
//! Each operand may be row-major, transposed, or strided both ways; the two unit-stride layouts
//! get loops whose reads run along memory, the rest an element-by-element gather.

use super::avx2::{MR, NR};

/// A read-only matrix view: element (r, c) at `ptr + r·rs + c·cs`.
#[derive(Clone, Copy)]
pub struct View {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// # Safety
    /// (r, c) must lie inside the matrix the view was made from.
    #[inline(always)]
    unsafe fn at(self, r: usize, c: usize) -> f32 {
        // SAFETY: forwarded from the caller.
        unsafe { *self.ptr.add(r * self.rs + c * self.cs) }
    }
}

/// Rows `i0 .. i0 + mc` × columns `p0 .. p0 + kc` of `a` into `dst`: panel `r` (rows
/// `i0 + r·MR ..`) at `r · kc · MR`, value (i, p) of a panel at `p · MR + i`.
///
/// # Safety
/// The block must lie inside `a`; `dst` must hold `mc.div_ceil(MR) · MR · kc` values.
pub unsafe fn pack_a(dst: &mut [f32], a: View, i0: usize, mc: usize, p0: usize, kc: usize) {
    debug_assert!(dst.len() >= mc.div_ceil(MR) * MR * kc);
    for (r, panel) in dst.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let rows = (mc - r * MR).min(MR);
        let top = i0 + r * MR;
        // SAFETY (all three branches): rows top .. top + rows and columns p0 .. p0 + kc are
        // inside `a` (the caller's block).
        unsafe {
            if a.rs == 1 && rows == MR {
                // Column-major A: the panel's six values at each p are contiguous.
                for (p, out) in panel.chunks_exact_mut(MR).enumerate() {
                    let src = &*a.ptr.add((p0 + p) * a.cs + top).cast::<[f32; MR]>();
                    out.copy_from_slice(src);
                }
            } else if a.cs == 1 && rows == MR {
                // Row-major A, a full panel: 8 × 8 transposes.
                let rows: [*const f32; MR] = std::array::from_fn(|i| a.ptr.add((top + i) * a.rs + p0));
                let done = simd::rows6_to_panel(&rows, kc, panel);
                for p in done..kc {
                    for (i, row) in rows.iter().enumerate() {
                        panel[p * MR + i] = *row.add(p);
                    }
                }
            } else if a.cs == 1 {
                for i in 0..MR {
                    if i < rows {
                        let src = std::slice::from_raw_parts(a.ptr.add((top + i) * a.rs + p0), kc);
                        for (p, &v) in src.iter().enumerate() {
                            panel[p * MR + i] = v;
                        }
                    } else {
                        (0..kc).for_each(|p| panel[p * MR + i] = 0.0);
                    }
                }
            } else {
                for p in 0..kc {
                    for i in 0..MR {
                        panel[p * MR + i] = if i < rows { a.at(top + i, p0 + p) } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Rows `p0 .. p0 + kc` × columns `j0 .. j0 + nc` of `b` into `dst`: panel `s` (columns
/// `j0 + s·NR ..`) at `s · kc · NR`, value (p, j) of a panel at `p · NR + j`.
///
/// # Safety
/// The block must lie inside `b`; `dst` must hold `nc.div_ceil(NR) · NR · kc` values.
pub unsafe fn pack_b(dst: &mut [f32], b: View, p0: usize, kc: usize, j0: usize, nc: usize) {
    debug_assert!(dst.len() >= nc.div_ceil(NR) * NR * kc);
    for (s, panel) in dst.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
        let cols = (nc - s * NR).min(NR);
        let left = j0 + s * NR;
        // SAFETY (all three branches): rows p0 .. p0 + kc and columns left .. left + cols are
        // inside `b` (the caller's block).
        unsafe {
            if b.cs == 1 && cols == NR {
                // Row-major B: each step of k is a contiguous run of the panel's columns.
                for (p, out) in panel.chunks_exact_mut(NR).enumerate() {
                    out.copy_from_slice(&*b.ptr.add((p0 + p) * b.rs + left).cast::<[f32; NR]>());
                }
            } else if b.rs == 1 && cols == NR {
                // Bᵀ stored row-major, a full panel: two 8 × 8 transposes per 8 steps of k.
                let cols: [*const f32; NR] = std::array::from_fn(|j| b.ptr.add((left + j) * b.cs + p0));
                let done = simd::cols16_to_panel(&cols, kc, panel);
                for p in done..kc {
                    for (j, col) in cols.iter().enumerate() {
                        panel[p * NR + j] = *col.add(p);
                    }
                }
            } else if b.cs == 1 {
                for (p, out) in panel.chunks_exact_mut(NR).enumerate() {
                    let src = std::slice::from_raw_parts(b.ptr.add((p0 + p) * b.rs + left), cols);
                    out[..cols].copy_from_slice(src);
                    out[cols..].fill(0.0);
                }
            } else if b.rs == 1 {
                // Bᵀ stored row-major (a weight [out, in]): each column is a contiguous run of k.
                for j in 0..NR {
                    if j < cols {
                        let src = std::slice::from_raw_parts(b.ptr.add((left + j) * b.cs + p0), kc);
                        for (p, &v) in src.iter().enumerate() {
                            panel[p * NR + j] = v;
                        }
                    } else {
                        (0..kc).for_each(|p| panel[p * NR + j] = 0.0);
                    }
                }
            } else {
                for p in 0..kc {
                    for j in 0..NR {
                        panel[p * NR + j] = if j < cols { b.at(p0 + p, left + j) } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// The transposing copies, 8 × 8 blocks at a time in AVX registers.
mod simd {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// An 8 × 8 transpose: `r[i][q]` in, `out[q][i]` back.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// Six rows of `kc` values into an A panel (`panel[p·6 + i] = rows[i][p]`), 8 steps of k at
    /// a time; returns how many steps it wrote (the rest are the caller's).
    ///
    /// # Safety
    /// Each row pointer must be valid for `kc` reads; the CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn rows6_to_panel(rows: &[*const f32; MR], kc: usize, panel: &mut [f32]) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { rows6_avx2(rows, kc, panel) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows6_avx2(rows: &[*const f32; MR], kc: usize, panel: &mut [f32]) -> usize {
        // Each step's six values are stored as eight (the last two zeros from the padding rows),
        // and the next store overwrites those two; the last block of 8 steps is left to the
        // caller when its overhang would fall outside the panel.
        let blocks = (kc * MR).saturating_sub(2) / (8 * MR);
        let out = panel.as_mut_ptr();
        for blk in 0..blocks {
            let p = blk * 8;
            // SAFETY: p + 8 ≤ kc for every block, so the loads are inside the rows; the stores
            // end at (p + 7)·6 + 8 ≤ kc·6, inside the panel (checked by `blocks`).
            unsafe {
                let z = _mm256_setzero_ps();
                let r = [
                    _mm256_loadu_ps(rows[0].add(p)),
                    _mm256_loadu_ps(rows[1].add(p)),
                    _mm256_loadu_ps(rows[2].add(p)),
                    _mm256_loadu_ps(rows[3].add(p)),
                    _mm256_loadu_ps(rows[4].add(p)),
                    _mm256_loadu_ps(rows[5].add(p)),
                    z,
                    z,
                ];
                for (q, v) in transpose8(r).into_iter().enumerate() {
                    _mm256_storeu_ps(out.add((p + q) * MR), v);
                }
            }
        }
        blocks * 8
    }

    /// Sixteen columns of `kc` values into a B panel (`panel[p·16 + j] = cols[j][p]`), 8 steps
    /// of k at a time; returns how many steps it wrote (the rest are the caller's).
    ///
    /// # Safety
    /// Each column pointer must be valid for `kc` reads; the CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn cols16_to_panel(cols: &[*const f32; NR], kc: usize, panel: &mut [f32]) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { cols16_avx2(cols, kc, panel) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn cols16_avx2(cols: &[*const f32; NR], kc: usize, panel: &mut [f32]) -> usize {
        let blocks = kc / 8;
        assert!(panel.len() >= blocks * 8 * NR);
        let out = panel.as_mut_ptr();
        for blk in 0..blocks {
            let p = blk * 8;
            for half in 0..2 {
                // SAFETY: p + 8 ≤ kc; the stores are inside the panel (asserted).
                unsafe {
                    let r: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(cols[half * 8 + j].add(p)));
                    for (q, v) in transpose8(r).into_iter().enumerate() {
                        _mm256_storeu_ps(out.add((p + q) * NR + half * 8), v);
                    }
                }
            }
        }
        blocks * 8
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn rows6_to_panel(_: &[*const f32; MR], _: usize, _: &mut [f32]) -> usize {
        0
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn cols16_to_panel(_: &[*const f32; NR], _: usize, _: &mut [f32]) -> usize {
        0
    }
}
