//! The LoRA adapter: which projections it targets, its rank and scale, and its f32 master
//! weights. A targeted projection computes `y = x Wᵀ + scale · (x Aᵀ) Bᵀ` with A `[r, in]` and
//! B `[out, r]` (PEFT's layout), `scale = α / r`, or `α / √r` with rsLoRA.

use ragtune_compute::ops;
use ragtune_compute::{Device, Tensor};
use ragtune_runtime::linear::{AdapterBank, LoraDelta};
use ragtune_runtime::llama::names;
use ragtune_runtime::{LlamaConfig, LlamaModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, TrainError};

/// The seven projections of a Llama layer LoRA can target: the runtime's
/// [`Projection`](ragtune_runtime::llama::Projection), whose names (`q_proj`,
/// `self_attn.q_proj`, ...) come from its one parameter-name table.
pub use ragtune_runtime::llama::Projection as Target;

/// LoRA hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    /// rsLoRA: scale `α / √r` instead of `α / r`.
    pub use_rslora: bool,
    /// LoRA dropout on the adapters' inputs during training, `0 ≤ p < 1` (see
    /// [`crate::dropout`]); inference ignores it. Saved as `lora_dropout`.
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

    fn check(&self, c: &LlamaConfig) -> Result<()> {
        if self.r == 0 {
            return Err(TrainError::input("LoRA rank r must be at least 1"));
        }
        // A rank above the hidden size adds parameters but no expressiveness, and a user's r
        // sizes every A and B: refuse it before they are allocated.
        if self.r > c.hidden_size {
            return Err(TrainError::input(format!(
                "LoRA rank r = {} is above the model's hidden size {}: a rank that large cannot add anything \
                 (real adapters use 4 .. 256); lower r",
                self.r, c.hidden_size
            )));
        }
        crate::dropout::check_probability(self.dropout)?;
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(TrainError::input(format!(
                "lora_alpha must be finite and >= 0 (the LoRA scale is alpha / r), got {}",
                self.alpha
            )));
        }
        if self.targets.is_empty() {
            return Err(TrainError::input(
                "no LoRA target: name at least one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
            ));
        }
        if let Some(&bad) = self.layers.iter().flatten().find(|&&l| l >= c.num_layers) {
            return Err(TrainError::input(format!(
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

    /// Apply the adapter to `model` for inference without merging (`ragtune generate
    /// --adapter`): each targeted projection gets A and B cast to the model's dtype and moved to
    /// its device. Projections the adapter does not target are left as they are.
    pub fn attach(&self, model: &mut LlamaModel) -> Result<()> {
        if self.modules.len() != model.config.num_layers {
            return Err(TrainError::input(format!(
                "the adapter has {} layers but the model {}",
                self.modules.len(),
                model.config.num_layers
            )));
        }
        let (dtype, device, scale) = (model.dtype, model.device.clone(), self.config.scale());
        for (l, t, m) in self.iter() {
            let prep = |x: &Tensor| -> Result<Tensor> { Ok(ops::cast(&x.to_device(&device)?, dtype)?) };
            let delta = LoraDelta { a: prep(&m.a)?, b: prep(&m.b)?, scale };
            model.layers[l].projection_mut(t).set_lora(Some(delta))?;
        }
        Ok(())
    }
}

/// Stack several adapters into the model's adapter banks (`Linear::bank`), so one batch can
/// serve prompts that use different adapters (`ragtune_runtime::generate_with_adapters`, with
/// adapter `i` of `adapters` chosen by id `i`). Ranks may differ: smaller ones are padded with
/// zeros. Projections no adapter targets get no bank.
pub fn attach_bank(adapters: &[&LoraAdapter], model: &mut LlamaModel) -> Result<()> {
    if adapters.is_empty() {
        return Err(TrainError::input("no adapter to attach"));
    }
    let c = model.config.clone();
    if let Some(a) = adapters.iter().find(|a| a.modules.len() != c.num_layers) {
        return Err(TrainError::input(format!(
            "an adapter has {} layers but the model {}",
            a.modules.len(),
            c.num_layers
        )));
    }
    let (dtype, device) = (model.dtype, model.device.clone());
    let n = adapters.len();
    let scales: Vec<f32> = adapters.iter().map(|a| a.config.scale()).collect();
    for l in 0..c.num_layers {
        for t in Target::ALL {
            let mods: Vec<Option<&LoraModule>> =
                adapters.iter().map(|a| a.modules[l][t.index()].as_ref()).collect();
            let r = mods.iter().flatten().map(|m| m.a.shape()[0]).max().unwrap_or(0);
            if r == 0 {
                continue;
            }
            let (out, inp) = t.shape(&c);
            let (mut a, mut b) = (vec![0f32; n * r * inp], vec![0f32; n * out * r]);
            for (i, m) in mods.iter().enumerate() {
                let Some(m) = m else { continue };
                let (av, bv) = (m.a.to_vec::<f32>()?, m.b.to_vec::<f32>()?);
                let rm = m.a.shape()[0];
                a[i * r * inp..(i * r + rm) * inp].copy_from_slice(&av);
                for o in 0..out {
                    b[(i * out + o) * r..(i * out + o) * r + rm].copy_from_slice(&bv[o * rm..(o + 1) * rm]);
                }
            }
            let put = |v: &[f32], shape: &[usize]| -> Result<Tensor> {
                Ok(ops::cast(&Tensor::from_slice(v, shape)?, dtype)?.to_device(&device)?)
            };
            let bank =
                AdapterBank { a: put(&a, &[n, r, inp])?, b: put(&b, &[n, out, r])?, scales: scales.clone() };
            model.layers[l].projection_mut(t).bank = Some(bank);
        }
    }
    Ok(())
}
