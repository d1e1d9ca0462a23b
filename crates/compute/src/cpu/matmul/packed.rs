//! [`PackedB`]: a constant B operand of [`super::blocked`] packed once, and [`Epilogue`]: what
//! the product does to each finished tile of C before leaving it.
//!
//! Why: a linear layer multiplies by the same weight at every call, yet the blocked SGEMM packed
//! it into 16-column panels at every call, once per thread when the threads split C by rows. At
//! the shapes MiniLM and a SmolLM2-135M training step multiply (384–1536 wide, a few hundred
//! rows per thread) that packing was 3–4% of all samples (perf, 2-core Zen 3), and the bias was
//! one more pass writing the output before the product, the GELU one more reading and writing
//! it. A `PackedB` holds the weight in the panel layout the micro-kernel reads, so a product
//! with it packs only A; the epilogue adds the bias and applies GELU to a tile while it is in L1.
//!
//! The layout: k is cut into blocks of `kc` values (the split a product packing B itself would
//! choose on this CPU's kernel: [`super::blocked::Kernel::kc_cap`]), and block `p0 .. p0 + kc`
//! starts at `p0 · n_pad` (`n_pad` = n rounded up to 16 columns) and holds the panels of all n
//! columns in order: panel `s` (columns `16·s ..`) at `s · kc · 16`, as [`super::pack::pack_b`]
//! writes them, zeros past n. Any slab of C whose columns start on a panel boundary finds its
//! panels at a fixed offset; the AVX-512 kernel reads two adjacent panels at once.

use rayon::prelude::*;

use super::avx2::NR;
use super::blocked::{self, Kernel};
use super::pack::{View, pack_b};

/// B `[k, n]` in the blocked SGEMM's panel layout (module docs), 64-byte aligned.
pub struct PackedB {
    k: usize,
    n: usize,
    kc: usize,
    data: Vec<f32>,
    /// Where the aligned run starts in `data`.
    off: usize,
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedB {{ k: {}, n: {}, kc: {} }}", self.k, self.n, self.kc)
    }
}

/// A packed operand as the blocked product reads it: block `p0` at `ptr + p0 · n_pad`.
#[derive(Clone, Copy)]
pub struct PackedRef {
    pub ptr: *const f32,
    pub n_pad: usize,
    pub kc: usize,
}

/// What happens to a tile of C once its last block of k is summed: `C = act(C + bias)`.
#[derive(Clone, Copy)]
pub struct Epilogue {
    /// n values added to every row of C; null for none.
    pub bias: *const f32,
    /// Exact (erf) GELU after the bias.
    pub gelu: bool,
}

impl Epilogue {
    pub const NONE: Epilogue = Epilogue { bias: std::ptr::null(), gelu: false };

    pub fn is_none(&self) -> bool {
        self.bias.is_null() && !self.gelu
    }
}

impl PackedB {
    /// B = Wᵀ for a weight W `[n, k]` stored row-major (a PyTorch `Linear` weight `[out, in]`):
    /// the product `x · Wᵀ` of a linear layer.
    pub fn from_weight(w: &[f32], n: usize, k: usize) -> PackedB {
        assert!(n > 0 && k > 0, "PackedB: a {n} × {k} weight is empty");
        assert_eq!(w.len(), n * k, "PackedB: the weight holds {} values, not {n} × {k}", w.len());
        // B(p, j) = W[j][p]: stepping p moves 1, stepping j moves k.
        PackedB::pack(View { ptr: w.as_ptr(), rs: 1, cs: k }, k, n, Kernel::for_this_cpu())
    }

    /// B `[k, n]` stored row-major.
    pub fn from_matrix(b: &[f32], k: usize, n: usize) -> PackedB {
        assert!(n > 0 && k > 0, "PackedB: a {k} × {n} matrix is empty");
        assert_eq!(b.len(), k * n, "PackedB: the matrix holds {} values, not {k} × {n}", b.len());
        PackedB::pack(View { ptr: b.as_ptr(), rs: n, cs: 1 }, k, n, Kernel::for_this_cpu())
    }

    /// In blocks of k as deep as `kernel` takes them.
    fn pack(b: View, k: usize, n: usize, kernel: Kernel) -> PackedB {
        let kc = blocked::block(k, kernel.kc_cap(), 1);
        let n_pad = n.next_multiple_of(NR);
        let mut data = vec![0f32; k * n_pad + 16];
        let off = data.as_ptr().align_offset(64).min(16);
        // `View` holds a raw pointer: hand the tasks its address and strides.
        let (addr, rs, cs) = (b.ptr as usize, b.rs, b.cs);
        data[off..off + k * n_pad].par_chunks_mut(kc * n_pad).enumerate().for_each(|(blk, dst)| {
            let p0 = blk * kc;
            let view = View { ptr: addr as *const f32, rs, cs };
            // SAFETY: rows p0 .. p0 + dst.len() / n_pad of the k × n view lie inside the operand
            // the constructors checked; dst holds n_pad values per step of k.
            unsafe { pack_b(dst, view, p0, dst.len() / n_pad, 0, n) };
        });
        PackedB { k, n, kc, data, off }
    }

    /// Values of k (rows of B).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B (of C).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes held.
    pub fn size_bytes(&self) -> usize {
        self.data.len() * 4
    }

    /// The packed values (module docs' layout).
    pub fn as_slice(&self) -> &[f32] {
        &self.data[self.off..self.off + self.k * self.n.next_multiple_of(NR)]
    }

    pub fn as_ref(&self) -> PackedRef {
        PackedRef { ptr: self.data[self.off..].as_ptr(), n_pad: self.n.next_multiple_of(NR), kc: self.kc }
    }
}

/// Whether products run on the blocked SGEMM, so that a [`PackedB`] can be used: on a CPU with
/// AVX2 + FMA or AVX-512, unless `RAGTUNE_SGEMM=gemm-crate`.
pub fn in_use() -> bool {
    super::own_kernel()
}

/// `c (m × n) = act(a (m × k, row-major) · B + bias)` on the blocked SGEMM's `kernel` (callers
/// pass [`Kernel::for_this_cpu`]) with `b` packed once, on up to `threads` rayon tasks. `c` need
/// not be initialised: every value is written, none read.
///
/// # Safety
/// `kernel.available()` must be true; `c` must be valid for writes of m·n values; `bias`, when
/// given, must hold n values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product_into(
    kernel: Kernel,
    a: &[f32],
    m: usize,
    b: &PackedB,
    bias: Option<&[f32]>,
    gelu: bool,
    c: *mut f32,
    threads: usize,
) {
    let (k, n) = (b.k, b.n);
    assert_eq!(a.len(), m * k, "packed product: a holds {} values, not {m} × {k}", a.len());
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "packed product: the bias holds {} values, not {n}", bias.len());
    }
    let prob = blocked::Problem {
        m,
        n,
        k,
        alpha: 1.0,
        beta: 0.0,
        a: View { ptr: a.as_ptr(), rs: k, cs: 1 },
        b: View { ptr: std::ptr::null(), rs: 0, cs: 0 },
        packed_b: Some(b.as_ref()),
        epilogue: Epilogue { bias: bias.map_or(std::ptr::null(), <[f32]>::as_ptr), gelu },
        c,
        ldc: n,
    };
    // SAFETY: forwarded from the caller; A holds m × k (asserted), the packed B k × n.
    unsafe { blocked::sgemm_on(kernel, &prob, threads) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::act::Activation;
    use crate::cpu::matmul::blocked::tests::values;
    use crate::{Tensor, ops};

    /// `act(x Wᵀ + b)` in f64 for W `[n, k]`.
    fn reference(
        x: &[f32],
        m: usize,
        w: &[f32],
        n: usize,
        k: usize,
        b: Option<&[f32]>,
        gelu: bool,
    ) -> Vec<f64> {
        (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                let dot: f64 = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum();
                let v = dot + b.map_or(0.0, |b| b[j] as f64);
                if gelu { 0.5 * v * (1.0 + erf64(v / std::f64::consts::SQRT_2)) } else { v }
            })
            .collect()
    }

    /// erf to ~1e-15 (Abramowitz–Stegun 7.1.26 is too coarse here): the series, then the
    /// continued fraction of erfc for |x| > 3.
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let r = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for n in (1..60).rev() {
                f = n as f64 / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        r.copysign(x)
    }

    /// Every edge (rows and columns off the tile grid, k over several blocks, one k) and thread
    /// split, with and without bias and GELU, against f64; the fused GELU equals the GELU op on
    /// the same product bit for bit; both packings of one B hold the same values.
    #[test]
    fn the_packed_product_matches_f64_and_the_unfused_ops() {
        if !in_use() {
            eprintln!("the blocked SGEMM does not run on this CPU: nothing to check");
            return;
        }
        let shapes =
            [(9, 16, 1), (13, 40, 300), (64, 33, 513), (150, 20, 64), (7, 384, 1536), (100, 1000, 260)];
        for (kernel, (case, &(m, n, k))) in
            Kernel::testable().into_iter().flat_map(|kern| shapes.iter().enumerate().map(move |s| (kern, s)))
        {
            let seed = case as u64 * 10;
            let (x, w, b) = (values(m * k, seed), values(n * k, seed + 1), values(n, seed + 2));
            let packed = PackedB::pack(View { ptr: w.as_ptr(), rs: 1, cs: k }, k, n, kernel);
            let wt: Vec<f32> = (0..k * n).map(|e| w[(e % n) * k + e / n]).collect();
            let other = PackedB::pack(View { ptr: wt.as_ptr(), rs: n, cs: 1 }, k, n, kernel);
            assert_eq!(packed.as_slice(), other.as_slice(), "{m}×{n}×{k}: the two packings differ");
            if kernel == Kernel::for_this_cpu() {
                let public = (PackedB::from_weight(&w, n, k), PackedB::from_matrix(&wt, k, n));
                assert_eq!(public.0.as_slice(), packed.as_slice(), "{m}×{n}×{k}: from_weight");
                assert_eq!(public.1.as_slice(), packed.as_slice(), "{m}×{n}×{k}: from_matrix");
            }
            // Σ|x·w| per output, for each value's error bound.
            let sum_abs: Vec<f64> = (0..m * n)
                .map(|e| (0..k).map(|p| (x[(e / n) * k + p] * w[(e % n) * k + p]).abs() as f64).sum())
                .collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                for (bias, gelu) in [(None, false), (Some(&b[..]), false), (Some(&b[..]), true), (None, true)]
                {
                    let mut c = vec![f32::NAN; m * n];
                    // SAFETY: in_use() checked; c holds m × n; the bias n.
                    pool.install(|| unsafe {
                        product_into(kernel, &x, m, &packed, bias, gelu, c.as_mut_ptr(), threads)
                    });
                    let want = reference(&x, m, &w, n, k, bias, gelu);
                    for (e, (&got, &want)) in c.iter().zip(&want).enumerate() {
                        // An f32 dot product of length k: a few ulps of its absolute sum per step.
                        let tol = 2e-7 * (k as f64).sqrt() * (sum_abs[e] + 1.0);
                        assert!(
                            (got as f64 - want).abs() <= tol,
                            "{kernel:?} {m}×{n}×{k} threads {threads} bias {} gelu {gelu}: \
                             C[{}][{}] = {got}, f64 says {want}",
                            bias.is_some(),
                            e / n,
                            e % n
                        );
                    }
                    if gelu {
                        let mut plain = vec![0f32; m * n];
                        // SAFETY: as above.
                        pool.install(|| unsafe {
                            product_into(kernel, &x, m, &packed, bias, false, plain.as_mut_ptr(), threads)
                        });
                        let unfused: Vec<f32> = plain.iter().map(|&v| Activation::Gelu.apply(v)).collect();
                        assert!(
                            c.iter().zip(&unfused).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{m}×{n}×{k}: the fused GELU differs from GELU of the same product"
                        );
                    }
                }
            }
        }
    }

    /// The op: shapes kept, bias and GELU as `linear` + `add` + `gelu` compute them (to f32
    /// rounding), and bad operands refused with their shapes named.
    #[test]
    fn the_op_agrees_with_linear_add_gelu_and_names_bad_operands() {
        if !in_use() {
            eprintln!("the blocked SGEMM does not run on this CPU: nothing to check");
            return;
        }
        let (out, inp) = (48, 200);
        let w = Tensor::from_slice(&values(out * inp, 1), &[out, inp]).unwrap();
        let b = Tensor::from_slice(&values(out, 2), &[out]).unwrap();
        let x = Tensor::from_slice(&values(2 * 30 * inp, 3), &[2, 30, inp]).unwrap();
        let packed = PackedB::from_weight(w.as_slice::<f32>().unwrap(), out, inp);
        let got = ops::linear_packed(&x, &packed, Some(&b), true).unwrap();
        assert_eq!(got.shape(), [2, 30, out]);
        let want = ops::gelu(&ops::add(&ops::linear(&x, &w).unwrap(), &b).unwrap()).unwrap();
        let (g, wv) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
        let worst = g.iter().zip(&wv).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "linear_packed differs from linear + add + gelu by {worst}");

        let empty = Tensor::from_slice::<f32>(&[], &[0, inp]).unwrap();
        assert_eq!(ops::linear_packed(&empty, &packed, None, false).unwrap().shape(), [0, out]);
        let narrow = Tensor::from_slice(&values(3 * 100, 4), &[3, 100]).unwrap();
        let e = ops::linear_packed(&narrow, &packed, None, false).unwrap_err().to_string();
        assert!(e.contains("[3, 100]") && e.contains("[48, 200]"), "{e}");
        let half = ops::cast(&x, crate::DType::BF16).unwrap();
        let e = ops::linear_packed(&half, &packed, None, false).unwrap_err().to_string();
        assert!(e.contains("bf16") && e.contains("f32"), "{e}");
        let short = Tensor::from_slice(&values(47, 5), &[47]).unwrap();
        let e = ops::linear_packed(&x, &packed, Some(&short), false).unwrap_err().to_string();
        assert!(e.contains("[47]") && e.contains("[48]"), "{e}");
    }
}
