//! The two products of a decode step's attention ([`super::decode`]): few query rows per kv
//! head, keys walked in storage order with every kv head of a key handled before the next key,
//! so a cache row (`hkv · d` values) is read once, front to back.
//!
//! The scores of f32 keys come eight keys at a time, each query row against the eight; 16-bit
//! keys go through the decode path's own few-row dot products ([`row_dots`]: one key head read
//! once as stored, the dot with each query row of its group from it). `P V` adds each value
//! head, weighted, to the accumulator rows of its group.

use crate::cpu::gemv_simd::{Isa, Stored, row_dots};
use crate::dtype::FloatElement;

/// The most query rows per kv head ([`row_dots`] serves up to 8).
pub const MAX_ROWS: usize = 8;

/// Whether `rows` query rows per kv head run here on this CPU (the vector kernels are needed).
pub fn serves(rows: usize) -> bool {
    (1..=MAX_ROWS).contains(&rows) && Isa::detected() != Isa::Scalar
}

/// The sizes of one tile: `heads` kv heads of `rows` query rows each, `n` keys of `d` values,
/// key `j`'s head `h` at `j · stride + h · d` of K and V; scores and weights are
/// `[heads · rows, ld]` (row `h · rows + r`, column j).
#[derive(Clone, Copy, Debug)]
pub struct Tile {
    pub heads: usize,
    pub rows: usize,
    pub n: usize,
    pub d: usize,
    pub stride: usize,
    pub ld: usize,
}

impl Tile {
    fn check(&self, queries: usize, keys: usize, scores: usize) {
        let Tile { heads, rows, n, d, stride, ld } = *self;
        assert!(serves(rows) && n <= ld && heads * d <= stride, "few_rows: bad tile {self:?}");
        assert!(queries >= heads * rows * d && scores >= heads * rows * ld, "few_rows: short rows");
        assert!(n == 0 || keys >= (n - 1) * stride + heads * d, "few_rows: short keys or values");
    }
}

/// `s[(h·rows + r)·ld + j] = q_{h,r} · k_{j,h}`: q is `[heads, rows, d]` f32, K `[n, stride]`
/// in its stored dtype.
pub fn scores<T: FloatElement>(t: Tile, s: &mut [f32], q: &[f32], k: &[T]) {
    t.check(q.len(), k.len(), s.len());
    let Tile { heads, rows, n, d, stride, ld } = t;
    let stored = Stored::of::<T>();
    #[cfg(target_arch = "x86_64")]
    if stored == Stored::F32 {
        // SAFETY: `serves` (in check) says AVX2 + FMA is available; T is f32; check bounded
        // every row and key the tile reads.
        unsafe { scores_f32_avx2(t, s, q, bytemuck::cast_slice(k)) };
        return;
    }
    let isa = Isa::detected();
    let mut col = [0f32; MAX_ROWS];
    for j in 0..n {
        for h in 0..heads {
            let key = &k[j * stride + h * d..j * stride + (h + 1) * d];
            // SAFETY: `serves` (in check) says the ISA is available and 1 ≤ rows ≤ 8; the head's
            // rows hold rows · d f32 and `key` d elements of T.
            unsafe { row_dots(isa, stored, &q[h * rows * d..], rows, d, key.as_ptr().cast(), &mut col) };
            for (r, &x) in col[..rows].iter().enumerate() {
                s[(h * rows + r) * ld + j] = x;
            }
        }
    }
}

/// [`scores`] for f32 keys: eight keys at a time, each query row against the eight with one
/// accumulator per key, the eight sums reduced together into one vector stored as the row's
/// eight scores. One call per key ([`row_dots`]) spent more on its entry and its reduction
/// than on a 64-wide dot product, and four keys at a time waited on the FMA latency.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_f32_avx2(t: Tile, s: &mut [f32], q: &[f32], k: &[f32]) {
    use std::arch::x86_64::*;
    let Tile { heads, rows, n, d, stride, ld } = t;
    let body = d / 8 * 8;
    let mut j = 0;
    while j < n {
        let keys = (n - j).min(8);
        for h in 0..heads {
            // A short last block repeats its last key in the unused lanes (their sums are
            // dropped). Plain pointers: slices built in a closure here were not inlined.
            let mut kp = [k.as_ptr(); 8];
            for (c, key) in kp.iter_mut().enumerate() {
                // SAFETY: key j + c < n has its d values at this offset (Tile::check).
                *key = unsafe { key.add((j + c.min(keys - 1)) * stride + h * d) };
            }
            for r in 0..rows {
                let row = h * rows + r;
                let qr = &q[row * d..(row + 1) * d];
                let mut acc = [_mm256_setzero_ps(); 8];
                let mut p = 0;
                while p < body {
                    // SAFETY: p + 8 ≤ d for the query row and each key row of d values.
                    unsafe {
                        let x = _mm256_loadu_ps(qr.as_ptr().add(p));
                        for (a, key) in acc.iter_mut().zip(&kp) {
                            *a = _mm256_fmadd_ps(x, _mm256_loadu_ps(key.add(p)), *a);
                        }
                    }
                    p += 8;
                }
                // Pairwise adds leave [a0..a3 | a0..a3] partial sums (low, high lanes) and the
                // same for a4..a7; the 128-bit halves are then regrouped and added.
                let lo = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
                let hi = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
                let sums = _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(lo, hi),
                    _mm256_permute2f128_ps::<0x31>(lo, hi),
                );
                let mut out = [0f32; 8];
                // SAFETY: `out` holds eight f32.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sums) };
                for (c, &key) in kp.iter().enumerate().take(keys) {
                    // SAFETY: the key's d values (see above).
                    let key = unsafe { std::slice::from_raw_parts(key, d) };
                    let tail: f32 = qr[body..].iter().zip(&key[body..]).map(|(a, b)| a * b).sum();
                    s[row * ld + j + c] = out[c] + tail;
                }
            }
        }
        j += keys;
    }
}

/// `acc_{h,r} += Σ_j p[(h·rows + r)·ld + j] · v_{j,h}`: acc is `[heads, rows, d]`, V `[n,
/// stride]` f32.
pub fn accumulate(t: Tile, acc: &mut [f32], p: &[f32], v: &[f32]) {
    t.check(acc.len(), v.len(), p.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `serves` (in check) says AVX2 + FMA (or wider) is available; check bounded every
    // row, weight and value the tile reads.
    unsafe {
        accumulate_avx2(t, acc, p, v)
    }
    #[cfg(not(target_arch = "x86_64"))]
    for j in 0..t.n {
        for row in 0..t.heads * t.rows {
            let (h, w) = (row / t.rows, p[row * t.ld + j]);
            let value = &v[j * t.stride + h * t.d..j * t.stride + (h + 1) * t.d];
            for (o, &x) in acc[row * t.d..(row + 1) * t.d].iter_mut().zip(value) {
                *o += w * x;
            }
        }
    }
}

/// [`accumulate`] with each row's output held in registers over the tile's keys: 64 columns (8
/// vectors) at a time, then 32, 16, 8, then the last few one by one. An output row kept in
/// memory made each key wait on the store of the previous one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(t: Tile, acc: &mut [f32], p: &[f32], v: &[f32]) {
    let Tile { heads, rows, n, d, stride, ld } = t;
    for row in 0..heads * rows {
        let h = row / rows;
        let w = &p[row * ld..row * ld + n];
        let out = &mut acc[row * d..(row + 1) * d];
        let mut c = 0;
        // SAFETY (each sweep): c + 8·W ≤ d, so every load of V (key j, head h, columns c..)
        // and of `out` stays in the row; check bounded the keys.
        unsafe {
            while d - c >= 64 {
                sweep::<8>(out, c, w, v, stride, h * d);
                c += 64;
            }
            if d - c >= 32 {
                sweep::<4>(out, c, w, v, stride, h * d);
                c += 32;
            }
            if d - c >= 16 {
                sweep::<2>(out, c, w, v, stride, h * d);
                c += 16;
            }
            if d - c >= 8 {
                sweep::<1>(out, c, w, v, stride, h * d);
                c += 8;
            }
        }
        for (i, o) in out.iter_mut().enumerate().skip(c) {
            *o += w.iter().enumerate().map(|(j, &x)| x * v[j * stride + h * d + i]).sum::<f32>();
        }
    }
}

/// `out[c .. c + 8·W] += Σ_j w[j] · v[j·stride + at + c ..]`, the W vectors in registers.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep<const W: usize>(out: &mut [f32], c: usize, w: &[f32], v: &[f32], stride: usize, at: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller keeps c + 8·W within the row and every key's value in `v`.
    unsafe {
        let o = out.as_mut_ptr().add(c);
        let mut a: [__m256; W] = std::array::from_fn(|x| _mm256_loadu_ps(o.add(8 * x)));
        for (j, &x) in w.iter().enumerate() {
            let wj = _mm256_set1_ps(x);
            let src = v.as_ptr().add(j * stride + at + c);
            for (y, acc) in a.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(wj, _mm256_loadu_ps(src.add(8 * y)), *acc);
            }
        }
        for (x, acc) in a.iter().enumerate() {
            _mm256_storeu_ps(o.add(8 * x), *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn both_products_match_f64() {
        if !serves(1) {
            eprintln!("no AVX2 here: the few-row path is not used, nothing to check");
            return;
        }
        // d at and off every width the kernels split it into (64, 32, 16, 8, the rest); key
        // counts off the 8-key blocks; cache rows wider than the heads read.
        let tiles = [
            (1, 1, 5, 64, 64, 8),
            (3, 3, 64, 64, 192, 64),
            (2, 8, 37, 100, 230, 40),
            (1, 2, 1, 7, 9, 3),
            (2, 1, 13, 88, 200, 16),
            (1, 3, 9, 20, 20, 9),
        ];
        for (heads, rows, n, d, stride, ld) in tiles {
            let t = Tile { heads, rows, n, d, stride, ld };
            let q = seeded(heads * rows * d, 1);
            let k = seeded((n - 1) * stride + heads * d, 2);
            let mut s = vec![f32::NAN; heads * rows * ld];
            scores(t, &mut s, &q, &k);
            let p = seeded(heads * rows * ld, 3);
            let v = seeded((n - 1) * stride + heads * d, 4);
            let start = seeded(heads * rows * d, 5);
            let mut acc = start.clone();
            accumulate(t, &mut acc, &p, &v);
            for h in 0..heads {
                for r in 0..rows {
                    let row = h * rows + r;
                    for j in 0..n {
                        let want: f64 =
                            (0..d).map(|i| q[row * d + i] as f64 * k[j * stride + h * d + i] as f64).sum();
                        assert!((s[row * ld + j] as f64 - want).abs() < 1e-5, "score {row},{j} of {t:?}");
                    }
                    for i in 0..d {
                        let want: f64 = start[row * d + i] as f64
                            + (0..n)
                                .map(|j| p[row * ld + j] as f64 * v[j * stride + h * d + i] as f64)
                                .sum::<f64>();
                        assert!((acc[row * d + i] as f64 - want).abs() < 1e-5, "acc {row},{i} of {t:?}");
                    }
                }
            }
        }
    }
}
