//! A linear layer `y = x Wᵀ (+ b)` over `ops::linear` and `ops::add`.

use ragtune_compute::{Tensor, ops};

use crate::error::Result;
use crate::weights::Weights;

pub struct Linear {
    /// `[out, in]`, as PyTorch stores it.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `{prefix}.weight` of shape `[out, in]` and, when `bias`, `{prefix}.bias` of shape `[out]`.
    pub fn load(w: &Weights, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = w.get(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias { Some(w.get(&format!("{prefix}.bias"), &[out])?) } else { None };
        Ok(Linear { weight, bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::linear(x, &self.weight)?;
        Ok(match &self.bias {
            Some(b) => ops::add(&y, b)?,
            None => y,
        })
    }
}
