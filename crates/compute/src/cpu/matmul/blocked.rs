//! ragtune's own blocked SGEMM for CPUs with AVX2 + FMA, the layout of the classic Goto / BLIS
//! design: C is cut into column blocks of [`NC`], k into blocks of about [`KC`] and rows into
//! blocks of about [`MC`]; each block of B is packed once into 16-column panels (kept in L2/L3),
//! each block of A into 6-row panels (kept in L2), and the [`avx2::tile`] kernel sweeps the
//! 6 × 16 tiles with one B panel resident in L1.
//!
//! Why not the `gemm` crate here: at the medium shapes a language model's training step and an
//! embedder multiply (m ≈ 512, n and k 384–1536) its AVX2 path ran at 103–134 GFLOP/s on a 2-core
//! Zen 3 whose 1024³ product reached 177. Blocks sized to the problem (k split evenly, not
//! 256 + 256 + 64) and threads that each own a slab of C with no barrier between them are what
//! this file adds.
//!
//! Threads: the product is cut along its longer side of C into one slab per thread; each thread
//! packs what it reads, so the threads never wait on each other.
//!
//! Kernels ([`Kernel`]): on AVX2 the 6 × 16 [`avx2::tile`]; on AVX-512 the 6 × 32
//! [`avx512::zmm::tile`] over two B panels at a time, with blocks of k at most
//! [`avx512::KC_WIDE`] deep. Both read the same panels.
//!
//! A constant B (a layer's weight) may come packed already ([`super::packed::PackedB`]), and an
//! [`Epilogue`] may add a bias and apply GELU to each tile of C after its last block of k.

use std::cell::RefCell;

use rayon::prelude::*;

use super::avx2::{self, MR, NR};
use super::avx512;
use super::pack::{View, pack_a, pack_b};
use super::packed::{Epilogue, PackedRef};
use crate::cpu::act::Activation;

/// Depth of one packed block (values of k): a 16-column B panel of this depth is 16 KiB, half of
/// a 32 KiB L1.
pub const KC: usize = 256;
/// Rows of A packed at once: 144 × 256 f32 is 144 KiB, well inside a 512 KiB–2 MiB L2.
pub const MC: usize = 144;
/// Columns of B packed at once: 2048 × 256 f32 is 2 MiB per thread, inside a shared L3.
pub const NC: usize = 2048;

/// One product `C = alpha · op(A) · op(B) + beta · C` on raw operands. C has unit column stride.
#[derive(Clone, Copy)]
pub struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    /// 0 means C is not read (it may be uninitialised).
    pub beta: f32,
    pub a: View,
    /// Read only when `packed_b` is `None`.
    pub b: View,
    /// B packed once ([`super::packed::PackedB::as_ref`]), in place of packing `b` per call.
    pub packed_b: Option<PackedRef>,
    /// Applied to each tile of C after its last block of k ([`Epilogue::NONE`]: nothing).
    pub epilogue: Epilogue,
    pub c: *mut f32,
    pub ldc: usize,
}

// SAFETY: the threads given a `Problem` read A and B only and write disjoint slabs of C.
unsafe impl Send for Problem {}
unsafe impl Sync for Problem {}

/// Whether [`sgemm`] runs on this CPU.
pub fn available() -> bool {
    crate::cpu::gemv_simd::Isa::Avx2.available()
}

/// The micro-kernel a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// 6 × 16 tiles on AVX2 + FMA ([`avx2::tile`]).
    Avx2,
    /// 6 × 32 tiles on AVX-512 F ([`avx512::zmm`]).
    Avx512,
    /// The AVX-512 kernels' code on pairs of AVX2 registers ([`avx512::ymm_pairs`]): the wide
    /// walk checked on CPUs without AVX-512.
    #[cfg(test)]
    Avx512OnAvx2,
}

impl Kernel {
    /// The widest kernel this CPU runs, as [`crate::cpu::gemv_simd::Isa::detected`] (which
    /// `RAGTUNE_CPU_ISA=avx2` caps) says.
    pub fn for_this_cpu() -> Kernel {
        match crate::cpu::gemv_simd::Isa::detected() {
            crate::cpu::gemv_simd::Isa::Avx512 => Kernel::Avx512,
            _ => Kernel::Avx2,
        }
    }

    /// Columns of C per tile.
    pub fn cols(self) -> usize {
        match self {
            Kernel::Avx2 => NR,
            _ => avx512::NR_WIDE,
        }
    }

    /// The deepest block of k the kernel is given (its B panels' share of L1).
    pub fn kc_cap(self) -> usize {
        match self {
            Kernel::Avx2 => KC,
            _ => avx512::KC_WIDE,
        }
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Kernel::Avx512 => crate::cpu::gemv_simd::Isa::Avx512.available(),
            _ => available(),
        }
    }

    /// The kernels this CPU runs, the AVX-512 code on AVX2 registers among them.
    #[cfg(test)]
    pub(crate) fn testable() -> Vec<Kernel> {
        [Kernel::Avx2, Kernel::Avx512OnAvx2, Kernel::Avx512].into_iter().filter(|k| k.available()).collect()
    }
}

/// Run `p` on up to `threads` rayon tasks (1: on the calling thread), on this CPU's kernel.
///
/// # Safety
/// [`available`] must be true; A must hold m × k values and B k × n at their views' strides; C
/// must be valid for writes of m rows of n values at row stride `ldc`, and initialised if
/// `beta != 0`; k must be at least 1.
pub unsafe fn sgemm(p: &Problem, threads: usize) {
    // SAFETY: forwarded; the kernel is this CPU's.
    unsafe { sgemm_on(Kernel::for_this_cpu(), p, threads) }
}

/// [`sgemm`] on a given kernel.
///
/// # Safety
/// As [`sgemm`], and `kernel.available()` must be true.
pub unsafe fn sgemm_on(kernel: Kernel, p: &Problem, threads: usize) {
    assert!(p.k > 0, "blocked::sgemm: k is 0 (an empty sum is the caller's to handle)");
    if p.m == 0 || p.n == 0 {
        return;
    }
    // One slab per thread, cut along the longer side of C, whole tiles each.
    let unit = kernel.cols();
    let (row_parts, col_parts) = if p.n >= p.m {
        (1, threads.clamp(1, p.n.div_ceil(unit)))
    } else {
        (threads.clamp(1, p.m.div_ceil(MR)), 1)
    };
    let rows_each = p.m.div_ceil(row_parts).next_multiple_of(MR);
    let cols_each = p.n.div_ceil(col_parts).next_multiple_of(unit);
    let slab = |t: usize| {
        let (ri, ci) = (t / col_parts, t % col_parts);
        let rows = (ri * rows_each).min(p.m)..((ri + 1) * rows_each).min(p.m);
        let cols = (ci * cols_each).min(p.n)..((ci + 1) * cols_each).min(p.n);
        if !rows.is_empty() && !cols.is_empty() {
            // SAFETY: forwarded from the caller; the slabs of C are disjoint.
            unsafe { slab_product(kernel, p, rows, cols) }
        }
    };
    let parts = row_parts * col_parts;
    if parts == 1 {
        slab(0);
    } else {
        (0..parts).into_par_iter().for_each(slab);
    }
}

/// Packing buffers of one thread, 64-byte aligned so no vector load of a panel splits a line.
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const { RefCell::new(Buffers { a: Vec::new(), b: Vec::new() }) };
}

/// A 64-byte aligned run of `len` values inside `v` (grown as needed).
fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len + 16 {
        *v = vec![0.0; len + 16];
    }
    let skip = v.as_ptr().align_offset(64).min(16);
    &mut v[skip..skip + len]
}

/// Split `len` into the fewest blocks of at most `cap`, of nearly equal size rounded up to `unit`.
pub(crate) fn block(len: usize, cap: usize, unit: usize) -> usize {
    len.div_ceil(len.div_ceil(cap)).next_multiple_of(unit)
}

/// Rows × cols of C, single-threaded.
///
/// # Safety
/// As [`sgemm`], with `rows` and `cols` inside C.
unsafe fn slab_product(
    kernel: Kernel,
    p: &Problem,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    // A packed B fixes the k blocks, and needs no column blocks (nothing of it is packed here).
    let kc_max = p.packed_b.map_or_else(|| block(p.k, kernel.kc_cap(), 1), |q| q.kc);
    // B panels per tile: the wide kernels take two at a time.
    let step = kernel.cols() / NR;
    let mc_max = block(rows.len(), MC, MR);
    let nc_max = if p.packed_b.is_some() { cols.len() } else { block(cols.len(), NC, kernel.cols()) };
    BUFFERS.with_borrow_mut(|buf| {
        let ap = aligned(&mut buf.a, mc_max * kc_max);
        let bp = if p.packed_b.is_some() { &mut [][..] } else { aligned(&mut buf.b, nc_max * kc_max) };
        for j0 in cols.clone().step_by(nc_max) {
            let nc = nc_max.min(cols.end - j0);
            for p0 in (0..p.k).step_by(kc_max) {
                let kc = kc_max.min(p.k - p0);
                // Later k blocks add to what the first one wrote; the last one finishes the tiles.
                let beta = if p0 == 0 { p.beta } else { 1.0 };
                let last = p0 + kc == p.k;
                let bblock: &[f32] = match p.packed_b {
                    // SAFETY: slabs start on panel boundaries (whole tiles each), so the slab's
                    // panels of this k block are the packed operand's from panel j0 / NR on.
                    Some(q) => unsafe {
                        debug_assert_eq!(j0 % NR, 0);
                        let start = q.ptr.add(p0 * q.n_pad + (j0 / NR) * kc * NR);
                        std::slice::from_raw_parts(start, nc.div_ceil(NR) * NR * kc)
                    },
                    None => {
                        // SAFETY: the block is inside B (the caller's shapes); bp holds nc_max·kc_max.
                        unsafe { pack_b(bp, p.b, p0, kc, j0, nc) };
                        bp
                    }
                };
                for i0 in rows.clone().step_by(mc_max) {
                    let mc = mc_max.min(rows.end - i0);
                    // SAFETY: as for B.
                    unsafe { pack_a(ap, p.a, i0, mc, p0, kc) };
                    for s in (0..nc.div_ceil(NR)).step_by(step) {
                        let bs = &bblock[s * kc * NR..];
                        for r in 0..mc.div_ceil(MR) {
                            let ar = &ap[r * kc * MR..];
                            let (i, j) = (i0 + r * MR, j0 + s * NR);
                            let (h, w) = ((rows.end - i).min(MR), (cols.end - j).min(step * NR));
                            // SAFETY: the panels hold kc steps; tile (i, j) of h × w is inside C.
                            unsafe { tile(kernel, p, kc, ar, bs, i, j, h, w, beta) };
                            if last && !p.epilogue.is_none() {
                                // One 16-column part at a time (the epilogue's tile).
                                for jj in (j..j + w).step_by(NR) {
                                    // SAFETY: as for the tile; the bias holds n values (the caller's).
                                    unsafe { finish(kernel, p, i, jj, h, (j + w - jj).min(NR)) };
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The epilogue on the finished `h` × `w` tile of C at (i, j), while it is in L1, vectorised
/// for `kernel`'s instruction set: the same scalar arithmetic at either width (no FMA
/// contraction), so the same values as each other and as the GELU op.
///
/// # Safety
/// As [`tile`]; a non-null bias must hold the product's n values.
unsafe fn finish(kernel: Kernel, p: &Problem, i: usize, j: usize, h: usize, w: usize) {
    // SAFETY: forwarded; the kernel's instruction set is this CPU's (the caller's).
    unsafe {
        match kernel {
            Kernel::Avx512 => finish_avx512(p, i, j, h, w),
            _ => finish_avx2(p, i, j, h, w),
        }
    }
}

/// [`finish`] for one instruction set: the body is written once, and its closures take the
/// function's target features (a body shared through an inlined helper had left them without,
/// and the AVX2 epilogue at 7.6% of an embedding run's samples against 4.4%).
macro_rules! finish_for {
    ($name:ident, $features:literal) => {
        /// [`finish`] compiled for its instruction set.
        ///
        /// # Safety
        /// As [`finish`].
        #[target_feature(enable = $features)]
        unsafe fn $name(p: &Problem, i: usize, j: usize, h: usize, w: usize) {
            let Epilogue { bias, gelu } = p.epilogue;
            // SAFETY: columns j .. j + w are inside the bias's n values (the caller's).
            let bias = (!bias.is_null()).then(|| unsafe { std::slice::from_raw_parts(bias.add(j), w) });
            let add_bias = |row: &mut [f32]| {
                if let Some(b) = bias {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
            };
            // The same scalar GELU as the activation op, vectorised here by the target feature.
            #[inline(always)]
            fn apply_gelu(values: &mut [f32]) {
                values.iter_mut().for_each(|v| *v = Activation::Gelu.apply(*v));
            }
            // SAFETY: row i + ii of C holds columns j .. j + w (the caller's tile).
            let row = |ii: usize| unsafe { std::slice::from_raw_parts_mut(p.c.add((i + ii) * p.ldc + j), w) };
            if h == MR && w == NR {
                // A whole tile through one fixed-size array: the GELU's constants are loaded once
                // for its twelve vectors rather than once per 16-value row (perf: a third of the
                // time).
                let mut t = [0f32; MR * NR];
                for (ii, out) in t.chunks_exact_mut(NR).enumerate() {
                    out.copy_from_slice(row(ii));
                    add_bias(out);
                }
                if gelu {
                    apply_gelu(&mut t);
                }
                for (ii, out) in t.chunks_exact(NR).enumerate() {
                    row(ii).copy_from_slice(out);
                }
                return;
            }
            for ii in 0..h {
                let r = row(ii);
                add_bias(r);
                if gelu {
                    apply_gelu(r);
                }
            }
        }
    };
}

finish_for!(finish_avx2, "avx2,fma");
finish_for!(finish_avx512, "avx512f,avx512bw,avx512vl");

/// One tile of C at (i, j), `h` × `w` of it inside the matrix (`w` at most the kernel's columns).
///
/// # Safety
/// As [`slab_product`]; `ar` / `bs` hold `kc` steps of packed A / B, `bs` as many panels as `w`
/// columns span.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile(
    kernel: Kernel,
    p: &Problem,
    kc: usize,
    ar: &[f32],
    bs: &[f32],
    i: usize,
    j: usize,
    h: usize,
    w: usize,
    beta: f32,
) {
    // SAFETY (whole body): forwarded from the caller; the kernel's CPU features are checked by
    // `Kernel::available`, which the caller of `sgemm_on` vouched for.
    unsafe {
        let c = p.c.add(i * p.ldc + j);
        // A tile of one panel where only one is left: a wide kernel's second would not exist.
        let cols = if w <= NR { NR } else { kernel.cols() };
        let run = |c: *mut f32, ldc: usize, beta: f32| {
            let (a, b, alpha) = (ar.as_ptr(), bs.as_ptr(), p.alpha);
            match (kernel, cols == NR) {
                (Kernel::Avx2, _) => avx2::tile(kc, a, b, c, ldc, alpha, beta),
                (Kernel::Avx512, true) => avx512::zmm::tile::<1>(kc, a, b, c, ldc, alpha, beta),
                (Kernel::Avx512, false) => avx512::zmm::tile::<2>(kc, a, b, c, ldc, alpha, beta),
                #[cfg(test)]
                (Kernel::Avx512OnAvx2, true) => avx512::ymm_pairs::tile::<1>(kc, a, b, c, ldc, alpha, beta),
                #[cfg(test)]
                (Kernel::Avx512OnAvx2, false) => avx512::ymm_pairs::tile::<2>(kc, a, b, c, ldc, alpha, beta),
            }
        };
        if h == MR && w == cols {
            run(c, p.ldc, beta);
            return;
        }
        // An edge tile: the full tile into scratch, then only its h × w part into C.
        let mut t = [0f32; MR * avx512::NR_WIDE];
        run(t.as_mut_ptr(), cols, 0.0);
        for (ii, row) in t.chunks_exact(cols).take(h).enumerate() {
            let out = std::slice::from_raw_parts_mut(c.add(ii * p.ldc), w);
            if beta == 0.0 {
                out.copy_from_slice(&row[..w]);
            } else {
                out.iter_mut().zip(row).for_each(|(o, v)| *o = v + beta * *o);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// C = alpha·op(A)·op(B) + beta·C in f64, the reference.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        a_t: bool,
        b: &[f32],
        b_t: bool,
        alpha: f32,
        beta: f32,
        c: &[f32],
    ) -> Vec<f64> {
        let at = |i: usize, p: usize| if a_t { a[p * m + i] } else { a[i * k + p] } as f64;
        let bt = |p: usize, j: usize| if b_t { b[j * k + p] } else { b[p * n + j] } as f64;
        (0..m * n)
            .map(|x| {
                let (i, j) = (x / n, x % n);
                let s: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                alpha as f64 * s + if beta == 0.0 { 0.0 } else { beta as f64 * c[x] as f64 }
            })
            .collect()
    }

    /// Values in [-1, 1) from a seed (an LCG: reproducible, no crate).
    pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every layout, edge, block boundary and thread split against the f64 product, within the
    /// error bound of an f32 dot product of length k (√k ulps of its absolute sum, generously), on
    /// every kernel this CPU runs (the AVX-512 code at least on AVX2 registers).
    #[test]
    fn matches_the_f64_product() {
        if !available() {
            eprintln!("no AVX2 + FMA on this CPU: the kernel cannot run here");
            return;
        }
        for kernel in Kernel::testable() {
            matches_the_f64_product_on(kernel);
        }
    }

    fn matches_the_f64_product_on(kernel: Kernel) {
        let shapes = [
            (1, 1, 1),
            (5, 7, 3),
            (6, 16, 1),
            (7, 17, 300),
            (13, 40, 257),
            (64, 33, 513),
            (150, 20, 64),
            (289, 300, 70),
            (40, 2100, 9),
            (12, 64, 130),
            (6, 48, 5),
        ];
        for (si, &(m, n, k)) in shapes.iter().enumerate() {
            for (case, (a_t, b_t, alpha, beta, threads)) in [
                (false, false, 1.0, 0.0, 1),
                (true, false, 0.5, 1.0, 2),
                (false, true, -1.5, 0.25, 3),
                (true, true, 2.0, 0.0, 2),
            ]
            .into_iter()
            .enumerate()
            {
                let seed = (si * 4 + case) as u64;
                let (a, b) = (values(m * k, seed), values(k * n, seed + 100));
                let c0 = values(m * n, seed + 200);
                let want = reference(m, n, k, &a, a_t, &b, b_t, alpha, beta, &c0);
                // C inside a wider buffer (ldc > n) with sentinels that must survive.
                let ldc = n + 3;
                let mut c = vec![f32::NAN; m * ldc];
                for i in 0..m {
                    c[i * ldc..i * ldc + n].copy_from_slice(&c0[i * n..(i + 1) * n]);
                    c[i * ldc + n..(i + 1) * ldc].fill(7.0);
                }
                let view = |t: bool, rows: usize, cols: usize, x: &[f32]| View {
                    ptr: x.as_ptr(),
                    rs: if t { 1 } else { cols },
                    cs: if t { rows } else { 1 },
                };
                let prob = Problem {
                    m,
                    n,
                    k,
                    alpha,
                    beta,
                    a: view(a_t, m, k, &a),
                    b: view(b_t, k, n, &b),
                    packed_b: None,
                    epilogue: Epilogue::NONE,
                    c: c.as_mut_ptr(),
                    ldc,
                };
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                // SAFETY: available() checked; the operands hold the shapes the views describe.
                pool.install(|| unsafe { sgemm_on(kernel, &prob, threads) });
                for i in 0..m {
                    for j in 0..n {
                        let got = c[i * ldc + j] as f64;
                        let w = want[i * n + j];
                        let tol = 4e-7 * (k as f64).sqrt() * (k as f64) * alpha.abs() as f64 + 1e-6;
                        assert!(
                            (got - w).abs() <= tol,
                            "{kernel:?} {m}×{n}×{k} a_t {a_t} b_t {b_t} alpha {alpha} beta {beta} \
                             threads {threads}: \
                             C[{i}][{j}] = {got}, f64 says {w}"
                        );
                    }
                    assert!(
                        c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 7.0),
                        "{kernel:?} {m}×{n}×{k}: row {i} written past n"
                    );
                }
            }
        }
    }
}
