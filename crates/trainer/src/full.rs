//! Full fine-tuning: every weight of an f32 Llama-family model trains (embedding, norms, the
//! seven projections of each layer, the final norm, and the head unless it is tied to the
//! embedding). The same forward and backward as LoRA ([`crate::train`]), asked for every
//! weight's gradient; AdamW updates the model's own tensors in place. This is how the small
//! built-in base model is pretrained.

use ragtune_compute::ops::{self, AdamW};
use ragtune_compute::{DType, Tensor};
use ragtune_runtime::LlamaModel;

use crate::error::{Result, TrainError};
use crate::train::{FullGrads, Net, TrainBatch};

/// Loss and every weight's gradient of one batch.
pub struct FullStepGrads {
    pub loss: f32,
    pub count: usize,
    pub grads: FullGrads,
}

impl FullStepGrads {
    /// Merge micro-batches, each weighted by its share of the counted tokens (as
    /// [`crate::StepGrads::accumulate`]).
    pub fn accumulate(parts: Vec<FullStepGrads>) -> Result<FullStepGrads> {
        let total: usize = parts.iter().map(|p| p.count).sum();
        let w = |p: &FullStepGrads| if total == 0 { 0.0 } else { p.count as f32 / total as f32 };
        let mut parts = parts.into_iter();
        let first = parts.next().ok_or_else(|| TrainError::input("no micro-batch to accumulate"))?;
        let w0 = w(&first);
        let mut loss = f64::from(first.loss) * f64::from(w0);
        let mut acc: Vec<Tensor> =
            flatten(&first.grads).into_iter().map(|g| ops::scale(g, w0)).collect::<Result<_, _>>()?;
        for p in parts {
            let wp = w(&p);
            loss += f64::from(p.loss) * f64::from(wp);
            for (a, g) in acc.iter_mut().zip(flatten(&p.grads)) {
                *a = ops::add(a, &ops::scale(g, wp)?)?;
            }
        }
        Ok(FullStepGrads { loss: loss as f32, count: total, grads: unflatten(acc, &first.grads)? })
    }

    /// Clip every gradient together by the global L2 norm; returns the norm before clipping.
    pub fn clip(&mut self, max_norm: f32) -> Result<f32> {
        let mut flat: Vec<Tensor> = flatten(&self.grads).into_iter().cloned().collect();
        let norm = ops::clip_grad_norm(&mut flat, max_norm)?;
        self.grads = unflatten(flat, &self.grads)?;
        Ok(norm)
    }
}

/// Gradients in [`flatten`] order back into the structure of `like`.
fn unflatten(flat: Vec<Tensor>, like: &FullGrads) -> Result<FullGrads> {
    if flat.len() != flatten(like).len() {
        return Err(TrainError::input("internal: gradient count changed"));
    }
    let mut it = flat.into_iter();
    let mut next = || it.next().expect("length checked");
    let embed = next();
    let layers = like
        .layers
        .iter()
        .map(|l| {
            let (input_norm, q, k, v, o, post_norm) = (next(), next(), next(), next(), next(), next());
            let (gate, up, down) = (next(), next(), next());
            let bias = l.bias.each_ref().map(|b| b.as_ref().map(|_| next()));
            crate::train::LayerGrads { input_norm, post_norm, proj: [q, k, v, o, gate, up, down], bias }
        })
        .collect();
    let norm = next();
    let lm_head = like.lm_head.as_ref().map(|_| next());
    Ok(FullGrads { embed, layers, norm, lm_head })
}

/// A full fine-tuning session: the model (owned: training changes it), AdamW moments per weight
/// and the step count.
pub struct FullTrainer {
    pub model: LlamaModel,
    pub optimizer: AdamW,
    pub step: u64,
    /// `(m, v)` per weight, in [`FullTrainer::weights_mut`] order.
    moments: Vec<[Tensor; 2]>,
}

impl FullTrainer {
    /// Train every weight of `model`, which must be f32 (its weights are the master weights).
    /// Linear biases (Qwen2's q/k/v) train too.
    pub fn new(mut model: LlamaModel, optimizer: AdamW) -> Result<FullTrainer> {
        if model
            .layers
            .iter()
            .any(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().any(|lin| lin.is_quantized()))
        {
            return Err(TrainError::input(
                "full fine-tuning trains the model's own weights, which it keeps quantized as stored (--dtype \
                 stored); load it with --dtype f32",
            ));
        }
        if model.dtype != DType::F32 {
            return Err(TrainError::input(format!(
                "full fine-tuning trains the model's own weights, which must be f32 (it is {}); load it with DType::F32",
                model.dtype
            )));
        }
        if model.has_adapter() {
            return Err(TrainError::input(
                "the model has an adapter attached; merge it before full fine-tuning",
            ));
        }
        let device = model.device.clone();
        let moments = weights_mut(&mut model)
            .into_iter()
            .map(|w| {
                let z = || Tensor::zeros(w.shape(), DType::F32, &device);
                Ok([z()?, z()?])
            })
            .collect::<Result<_>>()?;
        Ok(FullTrainer { model, optimizer, step: 0, moments })
    }

    /// How many weights train.
    pub fn num_params(&mut self) -> usize {
        weights_mut(&mut self.model).iter().map(|w| w.numel()).sum()
    }

    fn with_net<R>(&self, f: impl FnOnce(&Net<'_>) -> Result<R>) -> Result<R> {
        // The norms are f32 already: these are shared views, not copies.
        let norms: Vec<[Tensor; 2]> =
            self.model.layers.iter().map(|l| [l.input_norm.clone(), l.post_norm.clone()]).collect();
        f(&Net {
            model: &self.model,
            adapter: None,
            norms: &norms,
            final_norm: &self.model.norm,
            dropout: None,
        })
    }

    /// Logits `[N, vocab]` (no activations kept).
    pub fn logits(&self, batch: &TrainBatch) -> Result<Tensor> {
        self.with_net(|net| net.logits(batch))
    }

    /// The mean loss over the counted targets of `batches` (token-weighted), without gradients.
    pub fn evaluate(&self, batches: &[TrainBatch]) -> Result<f32> {
        self.with_net(|net| net.evaluate(batches))
    }

    /// Loss and every weight's gradient on `batch`.
    pub fn loss_and_grads(&self, batch: &TrainBatch) -> Result<FullStepGrads> {
        let back = self.with_net(|net| net.backward(batch, true))?;
        let grads = back
            .full
            .ok_or_else(|| TrainError::input("internal: the backward returned no weight gradients"))?;
        Ok(FullStepGrads { loss: back.loss, count: back.count, grads })
    }

    /// One AdamW update of every weight at learning rate `lr`.
    pub fn apply(&mut self, grads: &FullStepGrads, lr: f32) -> Result<()> {
        ragtune_compute::cpu::pool::in_pool(|| self.apply_here(grads, lr))
    }

    fn apply_here(&mut self, grads: &FullStepGrads, lr: f32) -> Result<()> {
        let g = flatten(&grads.grads);
        let tied = self.model.config.tie_word_embeddings;
        let weights = weights_mut(&mut self.model);
        if g.len() != weights.len() {
            return Err(TrainError::input(format!("{} gradients for {} weights", g.len(), weights.len())));
        }
        self.step += 1;
        for ((w, g), [m, v]) in weights.into_iter().zip(g).zip(self.moments.iter_mut()) {
            ops::adamw_step(w, g, m, v, &self.optimizer, lr, self.step)?;
        }
        if tied {
            // The update copied the shared embedding (copy-on-write); the head must see it.
            self.model.lm_head = self.model.embed.clone();
        }
        Ok(())
    }

    /// Loss and gradients on `batch`, then one update; returns the loss before the update.
    pub fn train_step(&mut self, batch: &TrainBatch, lr: f32) -> Result<f32> {
        let grads = self.loss_and_grads(batch)?;
        self.apply(&grads, lr)?;
        Ok(grads.loss)
    }
}

/// Every trainable weight: the embedding; per layer the input norm, q, k, v, o, the
/// post-attention norm, gate, up, down, then the biases of the projections that have them (in
/// that projection order); the final norm; the head unless tied.
pub fn weights_mut(model: &mut LlamaModel) -> Vec<&mut Tensor> {
    let tied = model.config.tie_word_embeddings;
    let mut out = vec![&mut model.embed];
    for l in model.layers.iter_mut() {
        let ragtune_runtime::llama::Layer { input_norm, post_norm, q, k, v, o, gate, up, down } = l;
        // Each projection's weight and bias, borrowed apart.
        let [q, k, v, o, gate, up, down] =
            [q, k, v, o, gate, up, down].map(|lin| (&mut lin.weight, lin.bias.as_mut()));
        out.extend([input_norm, q.0, k.0, v.0, o.0, post_norm, gate.0, up.0, down.0]);
        out.extend([q.1, k.1, v.1, o.1, gate.1, up.1, down.1].into_iter().flatten());
    }
    out.push(&mut model.norm);
    if !tied {
        out.push(&mut model.lm_head);
    }
    out
}

/// The gradients in [`weights_mut`] order.
pub fn flatten(g: &FullGrads) -> Vec<&Tensor> {
    let mut out = vec![&g.embed];
    for l in &g.layers {
        let [q, k, v, o, gate, up, down] = &l.proj;
        out.extend([&l.input_norm, q, k, v, o, &l.post_norm, gate, up, down]);
        out.extend(l.bias.iter().flatten());
    }
    out.push(&g.norm);
    out.extend(g.lm_head.as_ref());
    out
}
