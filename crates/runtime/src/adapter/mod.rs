//! LoRA adapters at inference: which projections an adapter targets, its rank and scale, and
//! its weights ([`LoraAdapter`]); PEFT folders in and out ([`peft`]); attaching one adapter to a
//! model, or several stacked into adapter banks, and detaching them ([`LoraAdapter::attach`],
//! [`attach_bank`], [`detach`]); merging an adapter into its base as a model folder
//! ([`merge`]). A targeted projection computes `y = x Wᵀ + scale · (x Aᵀ) Bᵀ` with A `[r, in]`
//! and B `[out, r]` (PEFT's layout), `scale = α / r`, or `α / √r` with rsLoRA. The trainer
//! trains these same adapters (f32 master weights).

mod attach;
pub mod merge;
pub mod peft;

use ragtune_compute::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::LlamaConfig;
use crate::error::{Result, RuntimeError};
use crate::llama::Projection as Target;
use crate::llama::names;

pub use attach::{attach_bank, detach};

/// Check a LoRA dropout probability: `0 ≤ p < 1` (p = 1 would drop every input and scale by ∞).
pub fn check_dropout(p: f32) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(RuntimeError::input(format!("lora_dropout must be in [0, 1), got {p}")))
    }
}

/// LoRA hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    /// rsLoRA: scale `α / √r` instead of `α / r`.
    pub use_rslora: bool,
    /// LoRA dropout on the adapters' inputs during training, `0 ≤ p < 1` (the trainer applies
    /// it); inference ignores it. Saved as `lora_dropout`.
    pub dropout: f32,
    pub targets: Vec<Target>,
    /// The layers that get adapters; `None` = every layer.
    pub layers: Option<Vec<usize>>,
}

impl LoraConfig {
    /// The factor on the low-rank path.
    pub fn scale(&self) -> f32 {
        if self.use_rslora { self.alpha / (self.r as f32).sqrt() } else { self.alpha / self.r as f32 }
    }

    /// Whether the hyper-parameters fit a model of `c`, with an error naming the one that does not.
    pub fn check(&self, c: &LlamaConfig) -> Result<()> {
        if self.r == 0 {
            return Err(RuntimeError::input("LoRA rank r must be at least 1"));
        }
        // A rank above the hidden size adds parameters but no expressiveness, and a user's r
        // sizes every A and B: refuse it before they are allocated.
        if self.r > c.hidden_size {
            return Err(RuntimeError::input(format!(
                "LoRA rank r = {} is above the model's hidden size {}: a rank that large cannot add anything \
                 (real adapters use 4 .. 256); lower r",
                self.r, c.hidden_size
            )));
        }
        check_dropout(self.dropout)?;
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(RuntimeError::input(format!(
                "lora_alpha must be finite and >= 0 (the LoRA scale is alpha / r), got {}",
                self.alpha
            )));
        }
        if self.targets.is_empty() {
            return Err(RuntimeError::input(format!(
                "no LoRA target: name at least one of {}",
                Target::ALL.map(Target::name).join(", ")
            )));
        }
        if let Some(&bad) = self.layers.iter().flatten().find(|&&l| l >= c.num_layers) {
            return Err(RuntimeError::input(format!(
                "layer {bad} is not in the model, which has {} layers (0..{})",
                c.num_layers, c.num_layers
            )));
        }
        Ok(())
    }
}

/// One adapted projection: A `[r, in]` and B `[out, r]`, f32 master weights.
#[derive(Clone, Debug)]
pub struct LoraModule {
    pub a: Tensor,
    pub b: Tensor,
}

/// An adapter for a whole model: per layer, an optional module per [`Target`].
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    /// `modules[layer][target.index()]`.
    pub modules: Vec<[Option<LoraModule>; 7]>,
}

impl LoraAdapter {
    /// A fresh adapter as PEFT initialises one: A Kaiming-uniform with a = √5 (uniform in
    /// ±1/√in), B zeros — so training starts from the base model's outputs. Seeded.
    pub fn init(config: LoraConfig, model: &LlamaConfig, seed: u64, device: &Device) -> Result<LoraAdapter> {
        config.check(model)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut modules: Vec<[Option<LoraModule>; 7]> =
            (0..model.num_layers).map(|_| Default::default()).collect();
        for (l, slots) in modules.iter_mut().enumerate() {
            if config.layers.as_ref().is_some_and(|ls| !ls.contains(&l)) {
                continue;
            }
            for &t in &config.targets {
                let (out, inp) = t.shape(model);
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..config.r * inp).map(|_| rng.random_range(-bound..bound)).collect();
                let a = Tensor::from_slice(&a, &[config.r, inp])?.to_device(device)?;
                let b = Tensor::zeros(&[out, config.r], ragtune_compute::DType::F32, device)?;
                slots[t.index()] = Some(LoraModule { a, b });
            }
        }
        Ok(LoraAdapter { config, modules })
    }

    /// Every module with its layer and target, in a fixed order (layer, then target).
    pub fn iter(&self) -> impl Iterator<Item = (usize, Target, &LoraModule)> {
        self.modules.iter().enumerate().flat_map(|(l, slots)| {
            Target::ALL.into_iter().filter_map(move |t| slots[t.index()].as_ref().map(|m| (l, t, m)))
        })
    }

    /// The PEFT key prefix of a module: `base_model.model.model.layers.{l}.{path}`.
    pub fn peft_prefix(layer: usize, target: Target) -> String {
        format!("base_model.model.{}", names::projection_module(layer, target))
    }

    /// How many trainable parameters the adapter holds.
    pub fn num_params(&self) -> usize {
        self.iter().map(|(_, _, m)| m.a.numel() + m.b.numel()).sum()
    }
}
