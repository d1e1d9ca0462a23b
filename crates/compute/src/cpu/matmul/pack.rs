//! Packing for [`super::blocked`]: a block of A copied into 6-row panels and a block of B into
//! 16-column panels, each laid out in the order the micro-kernel reads it (one step of k after
//! another), padded with zeros past the matrix edge so every tile is full size.
//!
//! A's rows and B's columns are both "lanes" of a panel, so one routine packs both. Each operand
//! may be row-major, transposed, or strided both ways; the two unit-stride layouts get loops
//! whose reads run along memory, the rest an element-by-element gather.

use super::avx2::{MR, NR};

/// A read-only matrix view: element (r, c) at `ptr + r·rs + c·cs`.
#[derive(Clone, Copy)]
pub struct View {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// Rows `i0 .. i0 + mc` × columns `p0 .. p0 + kc` of `a` into `dst`: panel `r` (rows
/// `i0 + r·MR ..`) at `r · kc · MR`, value (i, p) of a panel at `p · MR + i`.
///
/// # Safety
/// The block must lie inside `a`; `dst` must hold `mc.div_ceil(MR) · MR · kc` values.
pub unsafe fn pack_a(dst: &mut [f32], a: View, i0: usize, mc: usize, p0: usize, kc: usize) {
    // SAFETY: forwarded from the caller; A's rows are the lanes.
    unsafe { pack::<MR>(dst, a.ptr, (a.rs, a.cs), i0, mc, p0, kc) }
}

/// Rows `p0 .. p0 + kc` × columns `j0 .. j0 + nc` of `b` into `dst`: panel `s` (columns
/// `j0 + s·NR ..`) at `s · kc · NR`, value (p, j) of a panel at `p · NR + j`.
///
/// # Safety
/// The block must lie inside `b`; `dst` must hold `nc.div_ceil(NR) · NR · kc` values.
pub unsafe fn pack_b(dst: &mut [f32], b: View, p0: usize, kc: usize, j0: usize, nc: usize) {
    // SAFETY: forwarded from the caller; B's columns are the lanes.
    unsafe { pack::<NR>(dst, b.ptr, (b.cs, b.rs), j0, nc, p0, kc) }
}

/// Both packings: lanes `l0 .. l0 + len` × steps `d0 .. d0 + depth` of a matrix whose (lane l,
/// step d) is at `ptr + l·ls + d·ds`, into panels of `W` lanes — panel `r` at `r · depth · W`,
/// (lane i, step p) of it at `p · W + i`, lanes past `len` zero.
///
/// # Safety
/// The block must lie inside the matrix; `dst` must hold `len.div_ceil(W) · W · depth` values.
unsafe fn pack<const W: usize>(
    dst: &mut [f32],
    ptr: *const f32,
    (ls, ds): (usize, usize),
    l0: usize,
    len: usize,
    d0: usize,
    depth: usize,
) {
    debug_assert!(dst.len() >= len.div_ceil(W) * W * depth);
    for (r, panel) in dst.chunks_exact_mut(depth * W).take(len.div_ceil(W)).enumerate() {
        let lanes = (len - r * W).min(W);
        let first = l0 + r * W;
        // SAFETY (every branch): lanes first .. first + lanes and steps d0 .. d0 + depth are
        // inside the matrix (the caller's block).
        unsafe {
            let at = |i: usize, p: usize| ptr.add((first + i) * ls + (d0 + p) * ds);
            if ls == 1 {
                // The panel's lanes at each step are contiguous (a full panel copies a fixed
                // size, which compiles to vector moves rather than a memcpy call per step).
                for (p, out) in panel.chunks_exact_mut(W).enumerate() {
                    if lanes == W {
                        out.copy_from_slice(&*at(0, p).cast::<[f32; W]>());
                    } else {
                        out[..lanes].copy_from_slice(std::slice::from_raw_parts(at(0, p), lanes));
                        out[lanes..].fill(0.0);
                    }
                }
            } else if ds == 1 && lanes == W {
                // Each lane is a contiguous run of steps, a full panel: 8 × 8 transposes.
                let starts: [*const f32; W] = std::array::from_fn(|i| at(i, 0));
                let done = simd::transpose_into(&starts, depth, panel);
                for p in done..depth {
                    for (i, lane) in starts.iter().enumerate() {
                        panel[p * W + i] = *lane.add(p);
                    }
                }
            } else if ds == 1 {
                for i in 0..W {
                    if i < lanes {
                        for (p, &v) in std::slice::from_raw_parts(at(i, 0), depth).iter().enumerate() {
                            panel[p * W + i] = v;
                        }
                    } else {
                        (0..depth).for_each(|p| panel[p * W + i] = 0.0);
                    }
                }
            } else {
                for p in 0..depth {
                    for i in 0..W {
                        panel[p * W + i] = if i < lanes { *at(i, p) } else { 0.0 };
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

    /// Lanes of `depth` values into a panel (`panel[p·W + i] = lanes[i][p]`) for the two panel
    /// widths with a register path; returns how many steps it wrote (the rest are the caller's).
    ///
    /// # Safety
    /// Each lane pointer must be valid for `depth` reads; the CPU must have AVX2.
    pub unsafe fn transpose_into<const W: usize>(
        lanes: &[*const f32; W],
        depth: usize,
        panel: &mut [f32],
    ) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe {
            match W {
                MR => rows6_to_panel(lanes, depth, panel),
                NR => cols16_to_panel(lanes, depth, panel),
                _ => 0,
            }
        }
    }

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
    unsafe fn rows6_to_panel(rows: &[*const f32], kc: usize, panel: &mut [f32]) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { rows6_avx2(rows, kc, panel) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows6_avx2(rows: &[*const f32], kc: usize, panel: &mut [f32]) -> usize {
        assert_eq!(rows.len(), MR);
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
    unsafe fn cols16_to_panel(cols: &[*const f32], kc: usize, panel: &mut [f32]) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { cols16_avx2(cols, kc, panel) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn cols16_avx2(cols: &[*const f32], kc: usize, panel: &mut [f32]) -> usize {
        assert_eq!(cols.len(), NR);
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
    unsafe fn rows6_to_panel(_: &[*const f32], _: usize, _: &mut [f32]) -> usize {
        0
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn cols16_to_panel(_: &[*const f32], _: usize, _: &mut [f32]) -> usize {
        0
    }
}
