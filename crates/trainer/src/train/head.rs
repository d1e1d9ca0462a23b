//! The loss and its gradient through the language-model head, a block of rows at a time.
//!
//! The head's logits are the largest activation of a step: 512 rows of a 49k vocabulary are
//! 100 MB, and so is their gradient. Made whole, each is a fresh mapping the kernel faults in
//! and zeroes at every step, and neither fits a cache. In blocks of [`CHUNK_BYTES`] the buffers
//! are reused by the allocator, and the cross-entropy reads each block's logits while they are
//! still in the last-level cache. A frozen head (LoRA) needs only `dx = dlogits · W`, which is
//! per row, so blocks change nothing but rounding; a trained head (full fine-tuning) also needs
//! `dW = dlogitsᵀ · x` over every row and takes the whole batch at once.

use ragtune_compute::ops::{self, IGNORE_INDEX};
use ragtune_compute::{DType, Tensor};

use super::Net;
use crate::error::{Result, TrainError};

/// Logits per block: 16 MiB of f32 (85 rows of a 49k vocabulary; whole batches of a small one).
const CHUNK_BYTES: usize = 16 << 20;

/// What the head gives the backward pass.
pub(super) struct HeadGrad {
    /// Mean loss over the counted targets.
    pub loss: f32,
    pub count: usize,
    /// ∂loss/∂(normed rows) `[rows, hidden]`, f32.
    pub dxf: Tensor,
    /// ∂loss/∂head, when asked for (`full`).
    pub d_head: Option<Tensor>,
}

/// Rows of logits per block for a vocabulary of `vocab` (at least 16).
pub(super) fn chunk_rows(vocab: usize) -> usize {
    (CHUNK_BYTES / (vocab.max(1) * 4)).max(16)
}

fn finite(loss: f32) -> Result<f32> {
    if loss.is_finite() {
        return Ok(loss);
    }
    Err(TrainError::input(format!(
        "the loss is {loss}: the forward pass overflowed (check the model weights and the batch)"
    )))
}

impl Net<'_> {
    /// Loss and gradients of the head over normed rows `xf` `[rows, hidden]` with one target per
    /// row (`IGNORE_INDEX`: not counted); `full` also gives the head's own gradient.
    pub(super) fn head_backward(&self, xf: &Tensor, targets: &[i32], full: bool) -> Result<HeadGrad> {
        self.head_backward_in(xf, targets, full, chunk_rows(self.model.config.vocab_size))
    }

    /// [`Net::head_backward`] in blocks of `chunk` rows.
    fn head_backward_in(&self, xf: &Tensor, targets: &[i32], full: bool, chunk: usize) -> Result<HeadGrad> {
        let (model, dev) = (self.model, &self.model.device);
        let head_dt = model.lm_head.dtype();
        let rows = targets.len();
        if full || rows <= chunk {
            let logits = self.head(xf)?;
            let t = Tensor::from_slice(targets, &[rows])?.to_device(dev)?;
            let ce = ops::cross_entropy(&logits, &t, IGNORE_INDEX)?;
            drop(logits);
            let loss = finite(ce.loss)?;
            let dl = ops::cast(&ce.dlogits, head_dt)?;
            let (dxf, d_head) = ops::linear_backward(full.then_some(xf), &model.lm_head, &dl)?;
            return Ok(HeadGrad { loss, count: ce.count, dxf: ops::cast(&dxf, DType::F32)?, d_head });
        }
        let count = targets.iter().filter(|&&t| t != IGNORE_INDEX).count();
        let hidden = xf.last_dim();
        let mut dxf = Tensor::zeros(&[rows, hidden], DType::F32, dev)?;
        let mut total = 0f64;
        for r0 in (0..rows).step_by(chunk) {
            let r1 = (r0 + chunk).min(rows);
            let t = &targets[r0..r1];
            let counted = t.iter().filter(|&&t| t != IGNORE_INDEX).count();
            if counted == 0 {
                continue; // zero gradient: dxf's rows stay zero
            }
            let ids: Vec<i32> = (r0 as i32..r1 as i32).collect();
            let ids = Tensor::from_slice(&ids, &[r1 - r0])?.to_device(dev)?;
            let logits = self.head(&ops::embedding(xf, &ids)?)?;
            let ce = ops::cross_entropy(
                &logits,
                &Tensor::from_slice(t, &[r1 - r0])?.to_device(dev)?,
                IGNORE_INDEX,
            )?;
            drop(logits);
            total += f64::from(finite(ce.loss)?) * counted as f64;
            // The block's gradient is a mean over its own targets; the batch's is over all.
            let (d, _) = ops::linear_backward(None, &model.lm_head, &ops::cast(&ce.dlogits, head_dt)?)?;
            let d = ops::scale(&ops::cast(&d, DType::F32)?, counted as f32 / count as f32)?;
            ops::copy_into(&mut dxf, &d, r0 * hidden)?;
        }
        let loss = if count == 0 { 0.0 } else { (total / count as f64) as f32 };
        Ok(HeadGrad { loss, count, dxf, d_head: None })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ragtune_compute::ops::{AdamW, IGNORE_INDEX};
    use ragtune_compute::{DType, Device, Tensor};
    use ragtune_runtime::LlamaModel;

    use crate::{LoraAdapter, LoraConfig, LoraTrainer, Target};

    #[test]
    fn blocks_of_rows_give_the_whole_batch_loss_and_gradient() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model");
        let model = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
        let config = LoraConfig {
            r: 2,
            alpha: 4.0,
            use_rslora: false,
            dropout: 0.0,
            targets: Target::ALL.to_vec(),
            layers: None,
        };
        let adapter = LoraAdapter::init(config, &model.config, 1, &Device::Cpu).unwrap();
        let trainer = LoraTrainer::new(&model, adapter, AdamW::default()).unwrap();
        let net = trainer.net();
        let (rows, hidden, vocab) = (23, model.config.hidden_size, model.config.vocab_size as i32);
        let xf: Vec<f32> =
            (0..rows * hidden).map(|i| ((i * 7919 % 997) as f32 / 997.0 - 0.5) * 4.0).collect();
        let xf = Tensor::from_slice(&xf, &[rows, hidden]).unwrap();
        // Ignored targets, a block (rows 8..12 at 4 a block) with none counted, and a short tail.
        let targets: Vec<i32> = (0..rows as i32)
            .map(|i| if i % 5 == 1 || (8..12).contains(&i) { IGNORE_INDEX } else { (i * 37) % vocab })
            .collect();
        let whole = net.head_backward_in(&xf, &targets, false, rows).unwrap();
        let blocks = net.head_backward_in(&xf, &targets, false, 4).unwrap();
        assert_eq!((whole.count, blocks.count), (15, 15));
        assert!(
            (whole.loss - blocks.loss).abs() <= 1e-6 * whole.loss.abs(),
            "{} vs {}",
            whole.loss,
            blocks.loss
        );
        let (w, b) = (whole.dxf.to_vec_f32().unwrap(), blocks.dxf.to_vec_f32().unwrap());
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (i, (x, y)) in w.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * scale, "dxf[{i}]: {x} vs {y}");
        }
        assert!(b[8 * hidden..12 * hidden].iter().all(|&v| v == 0.0), "ignored rows get no gradient");
        assert!(whole.d_head.is_none() && blocks.d_head.is_none());
    }

    #[test]
    fn blocks_hold_about_16_mib_of_logits_and_at_least_16_rows() {
        assert_eq!(super::chunk_rows(49152), 85);
        assert_eq!(super::chunk_rows(1 << 30), 16);
        assert_eq!(super::chunk_rows(0), 4 << 20);
    }
}
