//! Activations (family `act`, kernels/act.cu): SiLU, exact (erf) GELU and the fused SwiGLU gate
//! of Llama's MLP, computed in f32.

use rayon::prelude::*;

use super::ELEMS_PER_TASK;
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
            Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        }
    }
}

/// `out[i] = act(x[i])`.
pub fn activation<T: FloatElement>(act: Activation, x: &[T], out: &mut [T]) {
    out.par_chunks_mut(ELEMS_PER_TASK).zip(x.par_chunks(ELEMS_PER_TASK)).for_each(|(o, x)| {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = T::from_f32(act.apply(v.to_f32()));
        }
    });
}

/// `out[i] = silu(gate[i]) · up[i]`, fused so the MLP's hidden activation is read once.
pub fn swiglu<T: FloatElement>(gate: &[T], up: &[T], out: &mut [T]) {
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(gate.par_chunks(ELEMS_PER_TASK).zip(up.par_chunks(ELEMS_PER_TASK)))
        .for_each(|(o, (g, u))| {
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = T::from_f32(Activation::Silu.apply(g.to_f32()) * u.to_f32());
            }
        });
}
