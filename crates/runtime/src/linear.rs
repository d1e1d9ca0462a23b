//! A linear layer `y = x Wᵀ (+ b)` over `ops::linear` and `ops::add`, optionally with an
//! unmerged low-rank adapter (LoRA) on top: `+ scale · (x Aᵀ) Bᵀ`.

use ragtune_compute::{Tensor, ops};

use crate::error::{Result, RuntimeError};
use crate::weights::Weights;

/// A LoRA adapter applied without merging: A `[r, in]`, B `[out, r]` in the layer's dtype and on
/// its device. The trainer's PEFT loader builds these (`LoraAdapter::attach`).
#[derive(Clone, Debug)]
pub struct LoraDelta {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f32,
}

/// Several adapters of one projection stacked for batches that mix them (an adapter id per
/// row): A `[adapters, r, in]`, B `[adapters, out, r]` in the layer's dtype (a smaller rank is
/// padded with zeros, which adds nothing), one scale per adapter. Applied with
/// `ops::lora_shrink` / `ops::lora_expand` (kernels/lora.cu on a GPU).
#[derive(Clone, Debug)]
pub struct AdapterBank {
    pub a: Tensor,
    pub b: Tensor,
    pub scales: Vec<f32>,
}

pub struct Linear {
    /// `[out, in]`, as PyTorch stores it.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// An adapter added to the output (see [`Linear::set_lora`]).
    pub lora: Option<LoraDelta>,
    /// Adapters chosen per row by [`Linear::forward_rows`].
    pub bank: Option<AdapterBank>,
}

impl Linear {
    /// `{prefix}.weight` of shape `[out, in]` and, when `bias`, `{prefix}.bias` of shape `[out]`.
    pub fn load(w: &Weights, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = w.get(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias { Some(w.get(&format!("{prefix}.bias"), &[out])?) } else { None };
        Ok(Linear { weight, bias, lora: None, bank: None })
    }

    /// Attach (or with `None` remove) an adapter. A must be `[r, in]` and B `[out, r]` for this
    /// layer's `[out, in]` weight, in its dtype.
    pub fn set_lora(&mut self, lora: Option<LoraDelta>) -> Result<()> {
        if let Some(l) = &lora {
            let (out, inp) = (self.weight.shape()[0], self.weight.shape()[1]);
            let r = l.a.shape().first().copied().unwrap_or(0);
            if l.a.shape() != [r, inp] || l.b.shape() != [out, r] || r == 0 {
                return Err(RuntimeError::input(format!(
                    "LoRA A {:?} and B {:?} do not fit the weight {:?}: they must be [r, {inp}] and [{out}, r]",
                    l.a.shape(),
                    l.b.shape(),
                    self.weight.shape()
                )));
            }
            if l.a.dtype() != self.weight.dtype() || l.b.dtype() != self.weight.dtype() {
                return Err(RuntimeError::input(format!(
                    "LoRA A/B are {}/{} but the weight is {}: cast them first",
                    l.a.dtype(),
                    l.b.dtype(),
                    self.weight.dtype()
                )));
            }
        }
        self.lora = lora;
        Ok(())
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.forward_base(x)?;
        Ok(match &self.lora {
            // The same order as the trainer (scale the rank-r activations, then expand), so
            // inference with an adapter reproduces the training forward's rounding.
            Some(l) => ops::add(&y, &ops::linear(&ops::scale(&ops::linear(x, &l.a)?, l.scale)?, &l.b)?)?,
            None => y,
        })
    }

    /// [`Linear::forward`], plus each row's adapter from the bank: `row_ids` i32 `[rows]` (rows
    /// of `x` flattened; −1 = none). Without a bank or ids it is `forward`.
    pub fn forward_rows(&self, x: &Tensor, row_ids: Option<&Tensor>) -> Result<Tensor> {
        let y = self.forward(x)?;
        let (Some(bank), Some(ids)) = (&self.bank, row_ids) else { return Ok(y) };
        let (inp, out) = (x.last_dim(), y.last_dim());
        let rows = x.numel() / inp.max(1);
        let u = ops::lora_shrink(&x.reshape(&[rows, inp])?, &bank.a, ids)?;
        let mut flat = y.reshape(&[rows, out])?;
        ops::lora_expand(&mut flat, &u, &bank.b, ids, &bank.scales)?;
        Ok(flat.reshape(y.shape())?)
    }

    /// The frozen base alone: `x Wᵀ (+ b)`, ignoring an attached adapter.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::linear(x, &self.weight)?;
        Ok(match &self.bias {
            Some(b) => ops::add(&y, b)?,
            None => y,
        })
    }
}
