//! LoRA training of a Llama-family model: a forward that keeps each layer's activations, an
//! explicit backward that carries the gradient back through the frozen base and collects the
//! adapters' gradients, and an AdamW step on the adapters' f32 master weights.
//!
//! Shapes: the batch is `[B, T]` flattened to `N = B·T` rows; activations are `[N, features]`,
//! reshaped to `[B, T, heads, head_dim]` around rotary embedding and attention.

use ragtune_compute::ops::{self, AdamW, AttentionSpec, IGNORE_INDEX};
use ragtune_compute::{DType, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_runtime::linear::Linear;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dropout::{DropoutDraw, check_probability};
use crate::error::{Result, TrainError};
use crate::lora::{LoraAdapter, LoraModule, Target};

mod head;

/// A batch of `batch` sequences of `seq` tokens for next-token training.
///
/// Sequences are RIGHT-padded (pads after the real tokens, as `padding_side="right"`): causal
/// attention then never lets a real token see a pad, and positions are simply `0..seq`. A pad's
/// target must be the ignore index −100.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBatch {
    pub batch: usize,
    pub seq: usize,
    /// `[batch · seq]` token ids.
    pub ids: Vec<i32>,
    /// `[batch · seq]`: the id row t must predict, or −100 where no loss is taken.
    pub targets: Vec<i32>,
}

impl TrainBatch {
    /// From Hugging Face causal-LM inputs: `input_ids` and `labels` (`[batch][seq]`, −100 =
    /// ignored). As transformers does, position t predicts `labels[t + 1]`; the last position
    /// predicts nothing.
    pub fn from_labels(input_ids: &[Vec<i32>], labels: &[Vec<i32>]) -> Result<TrainBatch> {
        let batch = input_ids.len();
        let seq = input_ids.first().map_or(0, Vec::len);
        if batch == 0 || seq == 0 {
            return Err(TrainError::input("empty batch: input_ids needs at least one non-empty sequence"));
        }
        if labels.len() != batch {
            return Err(TrainError::input(format!(
                "{} label rows for {batch} sequences of input_ids",
                labels.len()
            )));
        }
        let mut ids = Vec::with_capacity(batch * seq);
        let mut targets = Vec::with_capacity(batch * seq);
        for (b, (row, lab)) in input_ids.iter().zip(labels).enumerate() {
            if row.len() != seq || lab.len() != seq {
                return Err(TrainError::input(format!(
                    "sequence {b} has {} ids and {} labels; every row must have {seq} (pad them)",
                    row.len(),
                    lab.len()
                )));
            }
            ids.extend_from_slice(row);
            targets.extend(lab[1..].iter().copied().chain([IGNORE_INDEX]));
        }
        Ok(TrainBatch { batch, seq, ids, targets })
    }

    fn rows(&self) -> usize {
        self.batch * self.seq
    }
}

/// The adapters' gradients of one step, in [`LoraAdapter::iter`] order: `(layer, target, dA, dB)`.
pub struct StepGrads {
    pub loss: f32,
    /// Tokens the loss was averaged over.
    pub count: usize,
    pub grads: Vec<(usize, Target, Tensor, Tensor)>,
}

impl StepGrads {
    /// Merge the gradients of several micro-batches into those of the whole: each part is
    /// weighted by its share of the counted tokens, so the result equals the gradient of the
    /// mean loss over all of them — what one large batch would give.
    pub fn accumulate(parts: Vec<StepGrads>) -> Result<StepGrads> {
        let total: usize = parts.iter().map(|p| p.count).sum();
        let mut parts = parts.into_iter();
        let first = parts.next().ok_or_else(|| TrainError::input("no micro-batch to accumulate"))?;
        let w = |p: &StepGrads| if total == 0 { 0.0 } else { p.count as f32 / total as f32 };
        let w0 = w(&first);
        let mut loss = f64::from(first.loss) * f64::from(w0);
        let mut grads = first
            .grads
            .into_iter()
            .map(|(l, t, a, b)| Ok((l, t, ops::scale(&a, w0)?, ops::scale(&b, w0)?)))
            .collect::<Result<Vec<_>>>()?;
        for p in parts {
            if p.grads.len() != grads.len() {
                return Err(TrainError::input("micro-batches of different adapters cannot be accumulated"));
            }
            let wp = w(&p);
            loss += f64::from(p.loss) * f64::from(wp);
            for (acc, (_, _, a, b)) in grads.iter_mut().zip(p.grads) {
                acc.2 = ops::add(&acc.2, &ops::scale(&a, wp)?)?;
                acc.3 = ops::add(&acc.3, &ops::scale(&b, wp)?)?;
            }
        }
        Ok(StepGrads { loss: loss as f32, count: total, grads })
    }

    /// Clip all gradients together by their global L2 norm (`ops::clip_grad_norm`); returns the
    /// norm before clipping. A NaN or infinite norm is an error, so no update is applied.
    pub fn clip(&mut self, max_norm: f32) -> Result<f32> {
        let mut flat: Vec<Tensor> =
            self.grads.iter().flat_map(|(_, _, a, b)| [a.clone(), b.clone()]).collect();
        let norm = ops::clip_grad_norm(&mut flat, max_norm)?;
        for (g, pair) in self.grads.iter_mut().zip(flat.chunks_exact(2)) {
            g.2 = pair[0].clone();
            g.3 = pair[1].clone();
        }
        Ok(norm)
    }
}

/// What one layer's backward needs from its forward.
struct LayerActs {
    x_in: Tensor,
    h1: Tensor,
    /// The low-rank activations `u = dropout(x) Aᵀ` of each adapted projection.
    u: [Option<Tensor>; 7],
    /// The LoRA dropout mask of each adapted projection's input (training with dropout).
    masks: [Option<Tensor>; 7],
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: Tensor,
    x_mid: Tensor,
    h2: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
}

/// A LoRA training session over a frozen base model: the adapter, its AdamW moments and the
/// step count.
pub struct LoraTrainer<'m> {
    pub model: &'m LlamaModel,
    pub adapter: LoraAdapter,
    pub optimizer: AdamW,
    /// Updates applied so far.
    pub step: u64,
    /// Seeds the LoRA dropout masks (with the step and the micro-batch; see [`crate::dropout`]).
    pub dropout_seed: u64,
    /// Micro-batches drawn since the last update: each gets its own dropout masks.
    draws: AtomicU64,
    /// `(mA, vA, mB, vB)` per module, in [`LoraAdapter::iter`] order.
    moments: Vec<[Tensor; 4]>,
    /// f32 copies of each layer's (input, post-attention) norm weights and of the final norm:
    /// the residual stream and every backward run in f32 whatever the base dtype.
    norms: Vec<[Tensor; 2]>,
    final_norm: Tensor,
}

impl<'m> LoraTrainer<'m> {
    /// Train `adapter` on `model`, whose weights stay frozen in their dtype (f32, bf16 or f16):
    /// with a 16-bit base, each base product casts its input to that dtype and its output back
    /// to f32, while the residual stream, the adapters, the norms and every gradient stay f32.
    pub fn new(model: &'m LlamaModel, adapter: LoraAdapter, optimizer: AdamW) -> Result<LoraTrainer<'m>> {
        check_probability(adapter.config.dropout)?;
        if model.has_adapter() {
            return Err(TrainError::input(
                "the base model has an adapter attached; train on a model without one (merge it first)",
            ));
        }
        // The backward pass multiplies by the dense weights; quantized blocks have none.
        if model
            .layers
            .iter()
            .any(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().any(|lin| lin.is_quantized()))
        {
            return Err(TrainError::input(
                "the base model keeps its weights quantized as stored (loaded with --dtype stored); LoRA training \
                 needs dense weights: load it with --dtype f32 or bf16",
            ));
        }
        if adapter.modules.len() != model.config.num_layers {
            return Err(TrainError::input(format!(
                "the adapter has {} layers but the model {}",
                adapter.modules.len(),
                model.config.num_layers
            )));
        }
        let moments = adapter
            .iter()
            .map(|(_, _, m)| {
                let z = |t: &Tensor| Tensor::zeros(t.shape(), DType::F32, &model.device);
                Ok([z(&m.a)?, z(&m.a)?, z(&m.b)?, z(&m.b)?])
            })
            .collect::<Result<_>>()?;
        let f32 = |t: &Tensor| ops::cast(t, DType::F32);
        let norms = model
            .layers
            .iter()
            .map(|l| Ok([f32(&l.input_norm)?, f32(&l.post_norm)?]))
            .collect::<Result<_>>()?;
        let final_norm = f32(&model.norm)?;
        Ok(LoraTrainer {
            model,
            adapter,
            optimizer,
            step: 0,
            dropout_seed: 0,
            draws: AtomicU64::new(0),
            moments,
            norms,
            final_norm,
        })
    }

    /// The AdamW moments `(mA, vA, mB, vB)` per module, in [`LoraAdapter::iter`] order (for
    /// checkpoints).
    pub fn moments(&self) -> &[[Tensor; 4]] {
        &self.moments
    }

    /// Continue from a checkpoint: its moments and step count replace the fresh ones.
    pub fn restore(&mut self, moments: Vec<[Tensor; 4]>, step: u64) -> Result<()> {
        let fits = moments.len() == self.moments.len()
            && moments
                .iter()
                .zip(&self.moments)
                .all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.shape() == y.shape()));
        if !fits {
            return Err(TrainError::input(
                "the checkpoint's optimizer state does not match the adapter's modules",
            ));
        }
        self.moments = moments;
        self.step = step;
        self.draws.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The network without dropout (evaluation, logits).
    fn net(&self) -> Net<'_> {
        self.training_net(None)
    }

    /// The network of a training forward; with LoRA dropout, `micro` picks the masks.
    fn training_net(&self, micro: Option<u64>) -> Net<'_> {
        let p = self.adapter.config.dropout;
        let dropout = micro.filter(|_| p > 0.0).map(|micro| DropoutDraw {
            p,
            seed: self.dropout_seed,
            step: self.step,
            micro,
        });
        Net {
            model: self.model,
            adapter: Some(&self.adapter),
            norms: &self.norms,
            final_norm: &self.final_norm,
            dropout,
        }
    }

    /// Logits `[N, vocab]` of the base model with the adapter (no activations kept).
    pub fn logits(&self, batch: &TrainBatch) -> Result<Tensor> {
        self.net().logits(batch)
    }

    /// The mean loss over the counted targets, without gradients.
    pub fn loss(&self, batch: &TrainBatch) -> Result<f32> {
        self.net().evaluate(std::slice::from_ref(batch))
    }

    /// The mean loss over every counted target of several batches (held-out evaluation): each
    /// batch weighs by its counted tokens, as if they were one batch. 0 when nothing is counted.
    pub fn evaluate(&self, batches: &[TrainBatch]) -> Result<f32> {
        self.net().evaluate(batches)
    }

    /// Loss and the adapters' gradients on `batch` (the mean cross-entropy over its counted
    /// targets, as transformers computes it). With LoRA dropout, each call before the next
    /// [`LoraTrainer::apply`] is the next micro-batch and draws new masks.
    pub fn loss_and_grads(&self, batch: &TrainBatch) -> Result<StepGrads> {
        let micro = self.draws.fetch_add(1, Ordering::Relaxed);
        self.loss_and_grads_at(batch, micro)
    }

    /// [`LoraTrainer::loss_and_grads`] as micro-batch `micro` of the current step: with LoRA
    /// dropout, the masks of (seed, step, micro).
    pub fn loss_and_grads_at(&self, batch: &TrainBatch, micro: u64) -> Result<StepGrads> {
        let mut back = self.training_net(Some(micro)).backward(batch, false)?;
        let grads = self
            .adapter
            .iter()
            .map(|(l, t, _)| {
                let (da, db) = back.lora[l][t.index()].take().ok_or_else(|| {
                    TrainError::input(format!("internal: no gradient for layer {l} {}", t.name()))
                })?;
                Ok((l, t, da, db))
            })
            .collect::<Result<_>>()?;
        Ok(StepGrads { loss: back.loss, count: back.count, grads })
    }

    /// The training loss of micro-batch `micro` of the current step without gradients: with
    /// LoRA dropout, under the same masks as [`LoraTrainer::loss_and_grads_at`].
    pub fn training_loss_at(&self, batch: &TrainBatch, micro: u64) -> Result<f32> {
        self.training_net(Some(micro)).evaluate(std::slice::from_ref(batch))
    }

    /// One AdamW update of every adapter weight with `grads` at learning rate `lr`.
    pub fn apply(&mut self, grads: &StepGrads, lr: f32) -> Result<()> {
        ragtune_compute::cpu::pool::in_pool(|| self.apply_here(grads, lr))
    }

    fn apply_here(&mut self, grads: &StepGrads, lr: f32) -> Result<()> {
        if grads.grads.len() != self.moments.len() {
            return Err(TrainError::input(format!(
                "{} gradients for an adapter of {} modules",
                grads.grads.len(),
                self.moments.len()
            )));
        }
        self.step += 1;
        self.draws.store(0, Ordering::Relaxed);
        let hp = self.optimizer;
        let step = self.step;
        let mut i = 0;
        for slots in self.adapter.modules.iter_mut() {
            for slot in slots.iter_mut().flatten() {
                let (_, _, da, db) = &grads.grads[i];
                let [ma, va, mb, vb] = &mut self.moments[i];
                ops::adamw_step(&mut slot.a, da, ma, va, &hp, lr, step)?;
                ops::adamw_step(&mut slot.b, db, mb, vb, &hp, lr, step)?;
                i += 1;
            }
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

/// The network a step runs: the base model, an optional adapter, f32 norm weights, and the
/// LoRA dropout of a training forward (`None`: no dropout).
pub(crate) struct Net<'a> {
    pub model: &'a LlamaModel,
    pub adapter: Option<&'a LoraAdapter>,
    pub norms: &'a [[Tensor; 2]],
    pub final_norm: &'a Tensor,
    pub dropout: Option<DropoutDraw>,
}

/// What the forward hands the backward: the residual stream after the last layer (before the
/// final norm and the head, which the caller applies to the rows it needs) and, when kept, each
/// layer's activations.
struct Forward {
    x_last: Tensor,
    saved: Vec<LayerActs>,
}

/// What the head saw of a batch: the picked row ids (`None`: every row), those residual rows,
/// their final norm, their f32 logits and targets.
struct HeadRows {
    picked: Option<Tensor>,
    x: Tensor,
    xf: Tensor,
    targets: Vec<i32>,
}

/// The rows of a batch whose target counts, when some do not (the prompt of a prompt → answer
/// example, padding) and at least one does; `None`: every row. The head and the loss only need
/// those rows — at 256-token prompts and 6-token answers the head's GEMMs shrink 40-fold — and
/// the rows without a target get exactly zero gradient from the loss either way.
fn labelled_rows(targets: &[i32]) -> Option<Vec<i32>> {
    let rows: Vec<i32> =
        (0..targets.len()).filter(|&i| targets[i] != IGNORE_INDEX).map(|i| i as i32).collect();
    (!rows.is_empty() && rows.len() < targets.len()).then_some(rows)
}

/// The result of [`Net::backward`].
pub(crate) struct Backward {
    pub loss: f32,
    pub count: usize,
    /// `lora[layer][target]`: `(dA, dB)` of each adapted projection.
    pub lora: Vec<[Option<(Tensor, Tensor)>; 7]>,
    pub full: Option<FullGrads>,
}

/// Gradients of every base weight (full fine-tuning), f32.
pub struct FullGrads {
    /// `[vocab, hidden]`; with tied embeddings it includes the head's gradient.
    pub embed: Tensor,
    pub layers: Vec<LayerGrads>,
    pub norm: Tensor,
    /// `[vocab, hidden]`, or `None` when the head is the (tied) embedding.
    pub lm_head: Option<Tensor>,
}

/// One layer's weight gradients; `proj` and `bias` in [`Target::ALL`] order.
pub struct LayerGrads {
    pub input_norm: Tensor,
    pub post_norm: Tensor,
    pub proj: [Tensor; 7],
    /// The bias gradient of each projection that has one (Qwen2's q, k, v), `[out]`.
    pub bias: [Option<Tensor>; 7],
}

impl Net<'_> {
    fn slot(&self, layer: usize, t: Target) -> Option<&LoraModule> {
        self.adapter.and_then(|a| a.modules[layer][t.index()].as_ref())
    }

    pub(crate) fn check_batch(&self, batch: &TrainBatch) -> Result<()> {
        let c = &self.model.config;
        let n = batch.rows();
        if batch.ids.len() != n || batch.targets.len() != n || n == 0 {
            return Err(TrainError::input(format!(
                "batch of {}×{} needs {n} ids and targets, got {} and {}",
                batch.batch,
                batch.seq,
                batch.ids.len(),
                batch.targets.len()
            )));
        }
        if batch.seq > c.max_position_embeddings {
            return Err(TrainError::input(format!(
                "sequences of {} tokens exceed the model's context of {}",
                batch.seq, c.max_position_embeddings
            )));
        }
        if let Some(i) = batch.ids.iter().position(|&t| t < 0 || t as usize >= c.vocab_size) {
            return Err(TrainError::input(format!(
                "token id {} at position {i} of the batch is outside the vocabulary of {}",
                batch.ids[i], c.vocab_size
            )));
        }
        Ok(())
    }

    pub(crate) fn logits(&self, batch: &TrainBatch) -> Result<Tensor> {
        self.check_batch(batch)?;
        let x_last = self.forward(batch, false)?.x_last;
        self.head(&self.final_norm_of(&x_last)?)
    }

    /// The final norm, the head and the targets on the rows of `batch` the loss counts
    /// ([`labelled_rows`], gathered from `x_last`), or on every row.
    fn head_rows(&self, batch: &TrainBatch, x_last: Tensor) -> Result<HeadRows> {
        let dev = &self.model.device;
        let (picked, x, targets) = match labelled_rows(&batch.targets) {
            Some(rows) => {
                let ids = Tensor::from_slice(&rows, &[rows.len()])?.to_device(dev)?;
                let t: Vec<i32> = rows.iter().map(|&i| batch.targets[i as usize]).collect();
                let x = ops::embedding(&x_last, &ids)?;
                (Some(ids), x, t)
            }
            None => (None, x_last, batch.targets.clone()),
        };
        let xf = self.final_norm_of(&x)?;
        Ok(HeadRows { picked, x, xf, targets })
    }

    /// The final norm of residual rows `[rows, hidden]`.
    fn final_norm_of(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, self.final_norm, self.model.config.rms_norm_eps)?)
    }

    /// f32 logits of normed rows `[rows, hidden]`, through the head in its own dtype.
    fn head(&self, xf: &Tensor) -> Result<Tensor> {
        let head = &self.model.lm_head;
        Ok(ops::cast(&ops::linear(&ops::cast(xf, head.dtype())?, head)?, DType::F32)?)
    }

    pub(crate) fn evaluate(&self, batches: &[TrainBatch]) -> Result<f32> {
        ragtune_compute::cpu::pool::in_pool(|| self.evaluate_here(batches))
    }

    fn evaluate_here(&self, batches: &[TrainBatch]) -> Result<f32> {
        let (mut total, mut count) = (0f64, 0usize);
        for batch in batches {
            self.check_batch(batch)?;
            let x_last = self.forward(batch, false)?.x_last;
            let head = self.head_rows(batch, x_last)?;
            let targets =
                Tensor::from_slice(&head.targets, &[head.targets.len()])?.to_device(&self.model.device)?;
            let ce = ops::cross_entropy(&self.head(&head.xf)?, &targets, IGNORE_INDEX)?;
            total += f64::from(ce.loss) * ce.count as f64;
            count += ce.count;
        }
        Ok(if count == 0 { 0.0 } else { (total / count as f64) as f32 })
    }

    /// The training forward up to the last layer's output and, when `keep`, what the backward
    /// needs.
    fn forward(&self, batch: &TrainBatch, keep: bool) -> Result<Forward> {
        let (model, c) = (self.model, &self.model.config);
        let dev = &model.device;
        let (b, s, n) = (batch.batch, batch.seq, batch.rows());
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let scale = self.adapter.map_or(1.0, |a| a.config.scale());
        let ids = Tensor::from_slice(&batch.ids, &[n])?.to_device(dev)?;
        let pos: Vec<i32> = (0..n).map(|i| (i % s) as i32).collect();
        let positions = Tensor::from_slice(&pos, &[b, s])?.to_device(dev)?;
        let spec = AttentionSpec::new(true, d);
        let mut x = ops::cast(&ops::embedding(&model.embed, &ids)?, DType::F32)?;
        let mut saved = Vec::new();
        for (l, layer) in model.layers.iter().enumerate() {
            let mut masks: [Option<Tensor>; 7] = Default::default();
            let mut proj = |t: Target, lin: &Linear, x: &Tensor| -> Result<(Tensor, Option<Tensor>)> {
                let module = self.slot(l, t);
                let mask = match (self.dropout, module) {
                    (Some(draw), Some(_)) => Some(draw.mask_tensor(l, t, n, x.last_dim(), dev)?),
                    _ => None,
                };
                let (y, u) = lora_forward(x, lin, module, scale, mask.as_ref())?;
                masks[t.index()] = mask;
                Ok((y, u))
            };
            let [input_norm, post_norm] = &self.norms[l];
            let h1 = ops::rms_norm(&x, input_norm, c.rms_norm_eps)?;
            let (q, uq) = proj(Target::Q, &layer.q, &h1)?;
            let (k, uk) = proj(Target::K, &layer.k, &h1)?;
            let (v, uv) = proj(Target::V, &layer.v, &h1)?;
            let q = ops::rope(&q.reshape(&[b, s, hq, d])?, &positions, &model.inv_freq)?;
            let k = ops::rope(&k.reshape(&[b, s, hkv, d])?, &positions, &model.inv_freq)?;
            let v = v.reshape(&[b, s, hkv, d])?;
            // The layer's sliding window (Mistral, Qwen2), as the runtime's forward applies it.
            let spec = spec.with_window(c.attention_window(l));
            let attn = ops::attention(&q, &k, &v, spec, None)?.reshape(&[n, hq * d])?;
            let (o, uo) = proj(Target::O, &layer.o, &attn)?;
            let x_mid = ops::add(&x, &o)?;
            let h2 = ops::rms_norm(&x_mid, post_norm, c.rms_norm_eps)?;
            let (gate, ug) = proj(Target::Gate, &layer.gate, &h2)?;
            let (up, uu) = proj(Target::Up, &layer.up, &h2)?;
            let act = ops::swiglu(&gate, &up)?;
            let (down, ud) = proj(Target::Down, &layer.down, &act)?;
            let x_out = ops::add(&x_mid, &down)?;
            if keep {
                saved.push(LayerActs {
                    x_in: x,
                    h1,
                    u: [uq, uk, uv, uo, ug, uu, ud],
                    masks,
                    q,
                    k,
                    v,
                    attn,
                    x_mid,
                    h2,
                    gate,
                    up,
                    act,
                });
            }
            x = x_out;
        }
        Ok(Forward { x_last: x, saved })
    }

    /// Loss and gradients: the adapters' always, every base weight's too when `full`.
    pub(crate) fn backward(&self, batch: &TrainBatch, full: bool) -> Result<Backward> {
        // The whole step on the CPU pool's workers, not one hand-off per op (cpu::pool).
        ragtune_compute::cpu::pool::in_pool(|| self.backward_here(batch, full))
    }

    fn backward_here(&self, batch: &TrainBatch, full: bool) -> Result<Backward> {
        self.check_batch(batch)?;
        let (model, c) = (self.model, &self.model.config);
        let dev = &model.device;
        let (b, s, n) = (batch.batch, batch.seq, batch.rows());
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let scale = self.adapter.map_or(1.0, |a| a.config.scale());
        let Forward { x_last, saved } = self.forward(batch, true)?;
        let HeadRows { picked, x, xf, targets } = self.head_rows(batch, x_last)?;
        let head::HeadGrad { loss, count, dxf, d_head } = self.head_backward(&xf, &targets, full)?;
        let (dx_head, d_norm) = ops::rms_norm_backward(&x, self.final_norm, &dxf, c.rms_norm_eps)?;
        // Rows without a target get a zero gradient from the loss.
        let mut dx = match &picked {
            Some(ids) => ops::embedding_backward(ids, &dx_head, n)?,
            None => dx_head,
        };
        let mut layer_grads: Vec<Option<LayerGrads>> = (0..c.num_layers).map(|_| None).collect();
        let pos: Vec<i32> = (0..n).map(|i| (i % s) as i32).collect();
        let positions = Tensor::from_slice(&pos, &[b, s])?.to_device(dev)?;
        let spec = AttentionSpec::new(true, d);
        // Gradients per (layer, target), gathered back into adapter order at the end.
        // Every row trains the one adapter: id 0 in the LoRA op's row → adapter map.
        let lora_ids = Tensor::zeros(&[n], DType::I32, dev)?;
        let mut lora: Vec<[Option<(Tensor, Tensor)>; 7]> =
            (0..c.num_layers).map(|_| Default::default()).collect();
        for (l, (layer, acts)) in model.layers.iter().zip(&saved).enumerate().rev() {
            let mut d_proj: [Option<Tensor>; 7] = Default::default();
            let mut d_bias: [Option<Tensor>; 7] = Default::default();
            let mut back = |t: Target, lin: &Linear, x: &Tensor, dy: &Tensor| -> Result<Tensor> {
                let (u, mask) = (acts.u[t.index()].as_ref(), acts.masks[t.index()].as_ref());
                let g = lora_backward(x, lin, self.slot(l, t), u, mask, (scale, &lora_ids), dy, full)?;
                lora[l][t.index()] = g.lora;
                d_proj[t.index()] = g.dw;
                d_bias[t.index()] = g.dbias;
                Ok(g.dx)
            };
            // MLP: x_out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = rms_norm(x_mid).
            let d_act = back(Target::Down, &layer.down, &acts.act, &dx)?;
            let (d_gate, d_up) = ops::swiglu_backward(&acts.gate, &acts.up, &d_act)?;
            let dh2 = ops::add(
                &back(Target::Gate, &layer.gate, &acts.h2, &d_gate)?,
                &back(Target::Up, &layer.up, &acts.h2, &d_up)?,
            )?;
            let [input_norm, post_norm] = &self.norms[l];
            let (dn, d_post) = ops::rms_norm_backward(&acts.x_mid, post_norm, &dh2, c.rms_norm_eps)?;
            let dx_mid = ops::add(&dx, &dn)?;
            // Attention: x_mid = x_in + o(attention(rope(q(h1)), rope(k(h1)), v(h1))).
            let d_attn = back(Target::O, &layer.o, &acts.attn, &dx_mid)?.reshape(&[b, s, hq, d])?;
            let spec = spec.with_window(c.attention_window(l));
            let (dq, dk, dv) = ops::attention_backward(&acts.q, &acts.k, &acts.v, &d_attn, spec, None)?;
            let dq = ops::rope_backward(&dq, &positions, &model.inv_freq)?.reshape(&[n, hq * d])?;
            let dk = ops::rope_backward(&dk, &positions, &model.inv_freq)?.reshape(&[n, hkv * d])?;
            let dv = dv.reshape(&[n, hkv * d])?;
            let dh1 = ops::add(
                &ops::add(
                    &back(Target::Q, &layer.q, &acts.h1, &dq)?,
                    &back(Target::K, &layer.k, &acts.h1, &dk)?,
                )?,
                &back(Target::V, &layer.v, &acts.h1, &dv)?,
            )?;
            let (dn, d_input) = ops::rms_norm_backward(&acts.x_in, input_norm, &dh1, c.rms_norm_eps)?;
            dx = ops::add(&dx_mid, &dn)?;
            if full {
                let proj = d_proj
                    .map(|g| g.ok_or_else(|| TrainError::input("internal: a projection lost its gradient")));
                let [q, k, v, o, g, u, dd] = proj;
                layer_grads[l] = Some(LayerGrads {
                    input_norm: d_input,
                    post_norm: d_post,
                    proj: [q?, k?, v?, o?, g?, u?, dd?],
                    bias: d_bias,
                });
            }
        }
        let full_grads = if full {
            let ids = Tensor::from_slice(&batch.ids, &[n])?.to_device(dev)?;
            let mut embed = ops::embedding_backward(&ids, &dx, c.vocab_size)?;
            let mut lm_head = d_head;
            if c.tie_word_embeddings {
                // One matrix serves as the embedding and the head: its gradient is the sum.
                if let Some(h) = lm_head.take() {
                    embed = ops::add(&embed, &h)?;
                }
            }
            let layers = layer_grads
                .into_iter()
                .map(|g| g.ok_or_else(|| TrainError::input("internal: a layer lost its gradients")))
                .collect::<Result<_>>()?;
            Some(FullGrads { embed, layers, norm: d_norm, lm_head })
        } else {
            None
        };
        Ok(Backward { loss, count, lora, full: full_grads })
    }
}

/// `y = x Wᵀ (+ bias) + scale · (x' Aᵀ) Bᵀ` with `x' = x ⊙ mask` under LoRA dropout (else x);
/// returns y and the saved `u = x' Aᵀ`. The rank-r product is scaled before the expand, the
/// order the runtime's forward with an attached adapter uses, so both round alike.
fn lora_forward(
    x: &Tensor,
    lin: &Linear,
    module: Option<&LoraModule>,
    scale: f32,
    mask: Option<&Tensor>,
) -> Result<(Tensor, Option<Tensor>)> {
    // The frozen base in its own dtype; everything around it in f32.
    let y = ops::cast(&lin.forward_base(&ops::cast(x, lin.weight.dtype())?)?, DType::F32)?;
    match module {
        None => Ok((y, None)),
        Some(m) => {
            let dropped = mask.map(|mask| ops::mul(x, mask)).transpose()?;
            let u = ops::linear(dropped.as_ref().unwrap_or(x), &m.a)?;
            Ok((ops::add(&y, &ops::linear(&ops::scale(&u, scale)?, &m.b)?)?, Some(u)))
        }
    }
}

/// Backward of [`lora_forward`]: `dx = dy W + mask ⊙ (scale · (dy B) A)`, `dB = scale · dyᵀ u`,
/// `dA = scale · (dy B)ᵀ x'`, and with `want_dw` the base weight's `dW = dyᵀ x` and, when the
/// projection has a bias, its `db = Σ_rows dy` (full mode). The adapter's part is one
/// `ops::lora_backward_shared`: it adds into the base's dx in place and takes the mask and the
/// scale inside; on a GPU its reductions over the batch's rows are GEMMs. `ids` is the batch's
/// row → adapter map (all zeros: one adapter).
#[allow(clippy::too_many_arguments)]
fn lora_backward(
    x: &Tensor,
    lin: &Linear,
    module: Option<&LoraModule>,
    u: Option<&Tensor>,
    mask: Option<&Tensor>,
    (scale, ids): (f32, &Tensor),
    dy: &Tensor,
    want_dw: bool,
) -> Result<LinearGrads> {
    let wdt = lin.weight.dtype();
    let xw = if want_dw { Some(ops::cast(x, wdt)?) } else { None };
    let (dx, dw) = ops::linear_backward(xw.as_ref(), &lin.weight, &ops::cast(dy, wdt)?)?;
    // The product's own tensor when it is f32 already, not a second handle on it: the adapter's
    // part adds into dx in place, which would copy a buffer that another handle still shares.
    let mut dx = if dx.dtype() == DType::F32 { dx } else { ops::cast(&dx, DType::F32)? };
    let dw = dw.map(|g| ops::cast(&g, DType::F32)).transpose()?;
    let dbias = match (&lin.bias, want_dw) {
        (Some(_), true) => Some(column_sums(dy)?),
        _ => None,
    };
    let (Some(m), Some(u)) = (module, u) else { return Ok(LinearGrads { dx, lora: None, dw, dbias }) };
    let (r, inp, out) = (m.a.shape()[0], m.a.shape()[1], m.b.shape()[0]);
    let (a, b) = (m.a.reshape(&[1, r, inp])?, m.b.reshape(&[1, out, r])?);
    let args = ops::LoraBackward { x, mask, dy, u, a: &a, b: &b, ids, scales: &[scale] };
    let (da, db) = ops::lora_backward_shared(&args, &mut dx)?;
    Ok(LinearGrads { dx, lora: Some((da.reshape(&[r, inp])?, db.reshape(&[out, r])?)), dw, dbias })
}

/// `Σ_rows dy` of `dy` `[N, out]` as `[out]`: a bias's gradient. A `[1, N] · [N, out]` product,
/// so it runs wherever `dy` lives.
fn column_sums(dy: &Tensor) -> Result<Tensor> {
    let out = dy.last_dim();
    let rows = dy.numel() / out.max(1);
    let ones = Tensor::from_slice(&vec![1f32; rows], &[1, rows])?.to_device(&dy.device())?;
    let dy = ops::cast(&dy.reshape(&[rows, out])?, DType::F32)?;
    Ok(ops::matmul(&ones, &dy)?.reshape(&[out])?)
}

/// The gradients of one projection.
struct LinearGrads {
    dx: Tensor,
    /// `(dA, dB)` of an adapter.
    lora: Option<(Tensor, Tensor)>,
    /// The base weight's `dW` (full mode).
    dw: Option<Tensor>,
    /// The base bias's `db` (full mode, projections with a bias).
    dbias: Option<Tensor>,
}
