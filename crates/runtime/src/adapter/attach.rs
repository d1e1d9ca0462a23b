//! Adapters on a model without merging: one adapter on its projections
//! ([`LoraAdapter::attach`]), several stacked into adapter banks for batches that mix them
//! ([`attach_bank`]), and [`detach`], which leaves the base model as it was loaded.

use ragtune_compute::{Tensor, ops};

use super::{LoraAdapter, LoraModule, Target};
use crate::error::{Result, RuntimeError};
use crate::linear::{AdapterBank, LoraDelta};
use crate::llama::LlamaModel;

impl LoraAdapter {
    /// Apply the adapter to `model` for inference without merging (`ragtune generate
    /// --adapter`): each targeted projection gets A and B cast to the model's dtype and moved to
    /// its device. Projections the adapter does not target are left as they are.
    pub fn attach(&self, model: &mut LlamaModel) -> Result<()> {
        if self.modules.len() != model.config.num_layers {
            return Err(RuntimeError::input(format!(
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
/// serve prompts that use different adapters ([`crate::generate_with_adapters`], with
/// adapter `i` of `adapters` chosen by id `i`). Ranks may differ: smaller ones are padded with
/// zeros. Projections no adapter targets get no bank.
pub fn attach_bank(adapters: &[&LoraAdapter], model: &mut LlamaModel) -> Result<()> {
    if adapters.is_empty() {
        return Err(RuntimeError::input("no adapter to attach"));
    }
    let c = model.config.clone();
    if let Some(a) = adapters.iter().find(|a| a.modules.len() != c.num_layers) {
        return Err(RuntimeError::input(format!(
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

/// Remove every adapter from `model`: attached ones and banks alike; the base weights were never
/// changed, so the model computes what it did before.
pub fn detach(model: &mut LlamaModel) {
    for layer in &mut model.layers {
        for t in Target::ALL {
            let lin = layer.projection_mut(t);
            lin.lora = None;
            lin.bank = None;
        }
    }
}
