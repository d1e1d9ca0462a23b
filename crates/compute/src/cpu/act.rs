//! Activations (family `act`, kernels/act.cu): SiLU, exact (erf) GELU and the fused SwiGLU gate
//! of Llama's MLP, computed in f32, and the gate's backward.

use rayon::prelude::*;

use super::ELEMS_PER_TASK;
use super::gemv_simd::Isa;
use super::vexp::{BLOCK, sigmoid};
use crate::dtype::FloatElement;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// x · σ(x), as Llama's MLP uses.
    Silu,
    /// 0.5 · x · (1 + erf(x / √2)), BERT's GELU.
    Gelu,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
        }
    }

    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Gelu => gelu(x),
        }
    }
}

/// erf in f32 without branches or calls, so the activation loops vectorize (libm's `erff` is a
/// scalar call per element: a sixth of BERT's CPU time went there). Eigen's rational
/// approximation on x clamped to [-4, 4] (erf(±4) is ±1 in f32); absolute error ≤ 5e-7 (a few
/// f32 ulps of 1). Plain
/// multiply-adds: `mul_add` without a target feature would be a libm call.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_473_9e-2;
    x * p / q
}

/// `out[i] = act(x[i])`.
pub fn activation<T: FloatElement>(act: Activation, x: &[T], out: &mut [T]) {
    out.par_chunks_mut(ELEMS_PER_TASK).zip(x.par_chunks(ELEMS_PER_TASK)).for_each(|(o, x)| match act {
        // σ on the vector unit (cpu/vexp.rs); GELU of f32 at the CPU's vector width (gelu_f32).
        Activation::Silu => silu_times(x, None, o),
        Activation::Gelu if T::DTYPE == crate::DType::F32 => {
            gelu_f32(bytemuck::cast_slice(x), bytemuck::cast_slice_mut(o))
        }
        Activation::Gelu => {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = T::from_f32(gelu(v.to_f32()));
            }
        }
    });
}

/// 0.5 · x · (1 + erf(x / √2)): plain arithmetic, so a loop of it vectorizes.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU of f32 values at the CPU's vector width. The loop is the same Rust for every width: a
/// build for baseline x86-64 would vectorize it for SSE2 alone (4 lanes; perf put a twelfth of
/// MiniLM's embedding time on a 2-core Zen 4 in it), so it is compiled again inside functions
/// that enable AVX2 or AVX-512, chosen at run time ([`Isa::detected`]).
fn gelu_f32(x: &[f32], out: &mut [f32]) {
    gelu_f32_on(Isa::detected(), x, out)
}

/// GELU of f32 values on a chosen instruction set; `isa` must be [`Isa::available`].
pub fn gelu_f32_on(isa: Isa, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "gelu: input and output lengths differ");
    #[inline(always)]
    fn each(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = gelu(v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide(x: &[f32], out: &mut [f32]) {
            each(x, out)
        }
        #[target_feature(enable = "avx2,fma")]
        fn narrow(x: &[f32], out: &mut [f32]) {
            each(x, out)
        }
        assert!(isa.available(), "{isa:?} is not available on this CPU");
        // SAFETY: the CPU has the features each function is compiled for (checked above).
        match isa {
            Isa::Avx512 => return unsafe { wide(x, out) },
            Isa::Avx2 => return unsafe { narrow(x, out) },
            Isa::Scalar => {}
        }
    }
    let _ = isa;
    each(x, out)
}

/// `out[i] = silu(gate[i]) · up[i]`, fused so the MLP's hidden activation is read once.
pub fn swiglu<T: FloatElement>(gate: &[T], up: &[T], out: &mut [T]) {
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(gate.par_chunks(ELEMS_PER_TASK).zip(up.par_chunks(ELEMS_PER_TASK)))
        .for_each(|(o, (g, u))| silu_times(g, Some(u), o));
}

/// `out[i] = silu(x[i]) · up[i]` (or `silu(x[i])`), a block at a time: x widened to f32, σ of
/// the block on the vector unit, then the products.
fn silu_times<T: FloatElement>(x: &[T], up: Option<&[T]>, out: &mut [T]) {
    let (mut xf, mut sig) = ([0f32; BLOCK], [0f32; BLOCK]);
    for b0 in (0..out.len()).step_by(BLOCK) {
        let n = (out.len() - b0).min(BLOCK);
        xf[..n].iter_mut().zip(&x[b0..b0 + n]).for_each(|(f, v)| *f = v.to_f32());
        sigmoid(&xf[..n], &mut sig[..n]);
        let o = &mut out[b0..b0 + n];
        match up {
            Some(u) => {
                for i in 0..n {
                    o[i] = T::from_f32(xf[i] * sig[i] * u[b0 + i].to_f32());
                }
            }
            None => {
                for i in 0..n {
                    o[i] = T::from_f32(xf[i] * sig[i]);
                }
            }
        }
    }
}

/// Gradients of `silu(gate) · up`: `dgate = dy · up · σ(g)(1 + g(1 − σ(g)))`, `dup = dy · silu(g)`.
pub fn swiglu_backward(gate: &[f32], up: &[f32], dy: &[f32], dgate: &mut [f32], dup: &mut [f32]) {
    dgate.par_chunks_mut(ELEMS_PER_TASK).zip(dup.par_chunks_mut(ELEMS_PER_TASK)).enumerate().for_each(
        |(c, (dg, du))| {
            let at = c * ELEMS_PER_TASK;
            // σ(g) a block at a time on the vector unit, then the products (which vectorize).
            let mut sig = [0f32; BLOCK];
            for b0 in (0..dg.len()).step_by(BLOCK) {
                let n = (dg.len() - b0).min(BLOCK);
                let (g, u, d) =
                    (&gate[at + b0..at + b0 + n], &up[at + b0..at + b0 + n], &dy[at + b0..at + b0 + n]);
                sigmoid(g, &mut sig[..n]);
                for i in 0..n {
                    let s = sig[i];
                    dg[b0 + i] = d[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                    du[b0 + i] = d[i] * g[i] * s;
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-4 * 6.0;
            let want = libm::erf(x as f64);
            worst = worst.max((super::erf(x) as f64 - want).abs());
        }
        assert!(worst < 1e-6, "erf: max abs error {worst:e}");
        assert!((super::erf(f32::INFINITY) - 1.0).abs() <= 1e-6);
        assert!((super::erf(f32::NEG_INFINITY) + 1.0).abs() <= 1e-6);
        assert!(super::erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_matches_f64_on_every_vector_width_and_they_agree_bit_for_bit() {
        use super::{Isa, gelu_f32_on};
        // Odd lengths exercise the vector loops' tails.
        let x: Vec<f32> =
            (0..4099).map(|i| (i as f32 - 2049.0) * 3.7e-3).chain([f32::NAN, 1e30, -1e30]).collect();
        let mut scalar = vec![0f32; x.len()];
        gelu_f32_on(Isa::Scalar, &x, &mut scalar);
        for (&v, &g) in x.iter().zip(&scalar).take(4099) {
            let want = 0.5 * v as f64 * (1.0 + libm::erf(v as f64 / std::f64::consts::SQRT_2));
            // erf's absolute error (≤ 5e-7) times 0.5·|x|, plus f32 rounding of the result.
            let tol = 2.5e-7 * (v.abs() as f64) + 1e-6 * want.abs() + 1e-9;
            assert!((g as f64 - want).abs() <= tol, "gelu({v}) = {g}, want {want}");
        }
        assert!(scalar[4099].is_nan());
        // erf saturates at ±4 to within its error: gelu(1e30) ≈ 1e30, gelu(−1e30) ≈ 0 next to 1e30.
        assert!((scalar[4100] / 1e30 - 1.0).abs() < 1e-6 && scalar[4101].abs() < 1e-7 * 1e30);
        for isa in [Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()) {
            let mut out = vec![0f32; x.len()];
            gelu_f32_on(isa, &x, &mut out);
            let same = out.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?} differs from the scalar loop");
        }
    }
}
