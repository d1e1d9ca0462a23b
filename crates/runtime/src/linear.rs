//! A linear layer `y = x Wᵀ (+ b)` over `ops::linear` and `ops::add`, optionally with an
//! unmerged low-rank adapter (LoRA) on top: `+ scale · (x Aᵀ) Bᵀ`.
//!
//! The weight is dense (a [`Tensor`] in the model's dtype) or, for a GGUF file loaded at its
//! stored precision (`--dtype stored`), a quantized [`QMatrix`] ([`QuantWeight`]) multiplied on
//! the CPU with quantized activations (`ragtune_compute::cpu::quant`: 8 bits plus an 8-bit
//! residual, or 8 bits alone for `stored-q8`). A quantized layer takes and returns f32
//! activations; an adapter on it still adds its f32 delta. Training cannot go through quantized weights:
//! [`Linear::dense_weight`] says so by name.

use std::sync::Arc;

use ragtune_compute::cpu::quant::{ActBits, QMatrix, qmatmul};
use ragtune_compute::{DType, Device, Tensor, ops};

use crate::error::{Result, RuntimeError};
use crate::prepared::{Prepared, PreparedWeight};
use crate::weights::Weights;

/// A LoRA adapter applied without merging: A `[r, in]`, B `[out, r]` in the layer's dtype and on
/// its device. [`crate::adapter::LoraAdapter::attach`] builds these.
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

/// A quantized weight and how finely its input activations are quantized (8 bits as llama.cpp,
/// or 8 bits plus an 8-bit residual; see `ragtune_compute::cpu::quant::acts`).
#[derive(Clone, Debug)]
pub struct QuantWeight {
    pub matrix: Arc<QMatrix>,
    pub acts: ActBits,
}

impl QuantWeight {
    /// `x Wᵀ`: x must be f32 on the CPU with `[.., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let q = &self.matrix;
        if x.rank() == 0 || x.last_dim() != q.cols || x.dtype() != DType::F32 || !x.is_host() {
            return Err(RuntimeError::input(format!(
                "a quantized {:?} layer [{}, {}] takes f32 activations [.., {}] on the CPU, not {} {:?}{}",
                q.kind,
                q.rows,
                q.cols,
                q.cols,
                x.dtype(),
                x.shape(),
                if x.is_host() { "" } else { " on a GPU" }
            )));
        }
        let rows = x.numel() / q.cols;
        let y = qmatmul(x.as_slice::<f32>()?, rows, q, self.acts);
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = q.rows;
        Ok(Tensor::from_slice(&y, &shape)?)
    }
}

pub struct Linear {
    /// `[out, in]`, as PyTorch stores it; for a quantized layer an empty f32 `[out, 0]`
    /// placeholder (the weight is [`Linear::quant`]).
    pub weight: Tensor,
    /// The quantized weight `[out, in]`, when the layer keeps a GGUF file's blocks as stored.
    pub quant: Option<QuantWeight>,
    pub bias: Option<Tensor>,
    /// An adapter added to the output (see [`Linear::set_lora`]).
    pub lora: Option<LoraDelta>,
    /// Adapters chosen per row by [`Linear::forward_rows`].
    pub bank: Option<AdapterBank>,
    /// The weight laid out for products of many rows on the CPU (see [`crate::prepared`]).
    pub(crate) prepared: PreparedWeight,
}

impl Linear {
    /// `{prefix}.weight` of shape `[out, in]` and, when `bias`, `{prefix}.bias` of shape `[out]`.
    pub fn load(w: &Weights, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = w.get(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias { Some(w.get(&format!("{prefix}.bias"), &[out])?) } else { None };
        Ok(Linear::dense(weight, bias))
    }

    /// A layer over a dense weight `[out, in]` and an optional bias `[out]`, without adapters.
    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias, quant: None, lora: None, bank: None, prepared: Default::default() }
    }

    /// A layer over a quantized weight (CPU, f32 activations); `bias` f32 `[out]` when given.
    pub fn quantized(q: QuantWeight, bias: Option<Tensor>) -> Result<Linear> {
        if let Some(b) = &bias
            && (b.shape() != [q.matrix.rows] || b.dtype() != DType::F32 || !b.is_host())
        {
            return Err(RuntimeError::input(format!(
                "the bias of a quantized layer must be f32 [{}] on the CPU, not {} {:?}",
                q.matrix.rows,
                b.dtype(),
                b.shape()
            )));
        }
        let weight = Tensor::zeros(&[q.matrix.rows, 0], DType::F32, &Device::Cpu)?;
        Ok(Linear { quant: Some(q), ..Linear::dense(weight, bias) })
    }

    /// `(out, in)` of the weight, dense or quantized.
    pub fn shape(&self) -> (usize, usize) {
        match &self.quant {
            Some(q) => (q.matrix.rows, q.matrix.cols),
            None => (self.weight.shape()[0], self.weight.shape()[1]),
        }
    }

    /// Whether the weight is kept quantized.
    pub fn is_quantized(&self) -> bool {
        self.quant.is_some()
    }

    /// Bytes of weight and bias a forward pass reads.
    pub fn weight_bytes(&self) -> usize {
        self.quant.as_ref().map_or(self.weight.size_bytes(), |q| q.matrix.size_bytes())
            + self.bias.as_ref().map_or(0, Tensor::size_bytes)
    }

    /// The dense weight, for code that differentiates through it or rewrites it (training,
    /// merging); a quantized layer is refused by name with the fix.
    pub fn dense_weight(&self) -> Result<&Tensor> {
        match &self.quant {
            Some(q) => Err(RuntimeError::Unsupported(format!(
                "this layer keeps its {:?} weight quantized as stored (loaded with --dtype stored), \
                 which inference alone can use; load the model with --dtype f32 (or bf16) to train or merge",
                q.matrix.kind
            ))),
            None => Ok(&self.weight),
        }
    }

    /// Attach (or with `None` remove) an adapter. A must be `[r, in]` and B `[out, r]` for this
    /// layer's `[out, in]` weight, in its dtype.
    pub fn set_lora(&mut self, lora: Option<LoraDelta>) -> Result<()> {
        if let Some(l) = &lora {
            let (out, inp) = self.shape();
            let r = l.a.shape().first().copied().unwrap_or(0);
            if l.a.shape() != [r, inp] || l.b.shape() != [out, r] || r == 0 {
                return Err(RuntimeError::input(format!(
                    "LoRA A {:?} and B {:?} do not fit the weight {:?}: they must be [r, {inp}] and [{out}, r]",
                    l.a.shape(),
                    l.b.shape(),
                    [out, inp]
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
        let shape = y.shape().to_vec();
        let mut flat = y.reshape(&[rows, out])?;
        // y and flat share one buffer: with y gone, the in-place expand writes it without a copy.
        drop(y);
        ops::lora_expand(&mut flat, &u, &bank.b, ids, &bank.scales)?;
        Ok(flat.reshape(&shape)?)
    }

    /// `gelu(forward(x))`, with the bias and GELU applied inside the product where the weight is
    /// prepared for the CPU's own SGEMM ([`crate::prepared`]) and no adapter is attached.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        if self.lora.is_none()
            && self.quant.is_none()
            && let Some(y) = self.prepared_product(x, true)?
        {
            return Ok(y);
        }
        Ok(ops::gelu(&self.forward(x)?)?)
    }

    /// The frozen base alone: `x Wᵀ (+ b)`, ignoring an attached adapter.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.quant {
            Some(q) => q.forward(x)?,
            None => match self.prepared_product(x, false)? {
                // The bias is already in it.
                Some(y) => return Ok(y),
                None => ops::linear(x, &self.weight)?,
            },
        };
        Ok(match &self.bias {
            Some(b) => ops::add(&y, b)?,
            None => y,
        })
    }

    /// `x · Wᵀ (+ b)`, then GELU when `gelu`, through the prepared weight ([`crate::prepared`]):
    /// the same product in the layout the CPU's product is fast at, with the bias (and GELU)
    /// applied to each tile as the packed product finishes it ([`ops::linear_packed`]), or written
    /// into the output before the product accumulates onto it ([`ops::matmul_bias`]). Applies when
    /// `x` and the bias are f32 on the host with the weight's widths and the weight is prepared;
    /// `None` otherwise.
    fn prepared_product(&self, x: &Tensor, gelu: bool) -> Result<Option<Tensor>> {
        let inp = x.last_dim();
        if x.rank() == 0
            || x.dtype() != DType::F32
            || !x.is_host()
            || self.weight.shape().get(1) != Some(&inp)
            || self.bias.as_ref().is_some_and(|b| b.dtype() != DType::F32 || !b.is_host())
        {
            return Ok(None);
        }
        let rows = x.numel() / inp.max(1);
        let Some(prepared) = self.prepared.get(&self.weight, rows)? else { return Ok(None) };
        let y = match prepared {
            Prepared::Packed(w) => ops::linear_packed(x, &w, self.bias.as_ref(), gelu)?,
            Prepared::Transposed(t) => {
                let mut shape = x.shape().to_vec();
                *shape.last_mut().expect("rank >= 1") = t.shape()[1];
                let x = x.reshape(&[rows, inp])?;
                let y = match &self.bias {
                    Some(b) => ops::matmul_bias(&x, &t, b)?,
                    None => ops::matmul(&x, &t)?,
                }
                .reshape(&shape)?;
                if gelu { ops::gelu(&y)? } else { y }
            }
        };
        Ok(Some(y))
    }
}
