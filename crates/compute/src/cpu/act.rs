//! Activations (family `act`, kernels/act.cu): SiLU and exact (erf) GELU, computed in f32.

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
