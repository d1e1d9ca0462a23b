//! LoRA dropout as peft applies it: on the INPUT of the low-rank branch only,
//! `y = x Wᵀ + scale · (dropout(x) Aᵀ) Bᵀ`, during training only, inverted (kept values are
//! multiplied by `1 / (1 − p)`, so the expectation is unchanged and inference needs nothing).
//!
//! Each adapted projection draws its own mask, as each peft LoRA layer owns its `nn.Dropout`
//! (q, k and v see the same input but different masks). A mask is a pure function of the run's
//! seed, the update step, the micro-batch within the step, the layer and the projection: a run
//! is reproducible, the backward reuses the forward's mask, and a resumed run — which restores
//! the step — draws the very masks the uninterrupted run would have, with no RNG state saved.

use ragtune_compute::{Device, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::lora::Target;

/// Check a dropout probability: `0 ≤ p < 1` (the runtime's check, which `LoraConfig` uses too).
pub fn check_probability(p: f32) -> Result<()> {
    Ok(ragtune_runtime::adapter::check_dropout(p)?)
}

/// The dropout of one training forward: the probability and what seeds its masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutDraw {
    pub p: f32,
    pub seed: u64,
    /// Updates applied before this forward.
    pub step: u64,
    /// Which micro-batch of the step (gradient accumulation draws a new mask for each).
    pub micro: u64,
}

/// SplitMix64's finaliser: spreads each input bit over the whole word.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl DropoutDraw {
    /// The mask of `target` in `layer` for an input of `rows × cols`, row-major: each value is
    /// 0 (dropped, probability p) or `1 / (1 − p)`.
    pub fn mask(&self, layer: usize, target: Target, rows: usize, cols: usize) -> Vec<f32> {
        let key = [self.step, self.micro, layer as u64, target.index() as u64]
            .into_iter()
            .fold(mix(self.seed), |h, v| mix(h ^ v));
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        // Dropped when a uniform 32-bit draw falls below p · 2³².
        let threshold = (f64::from(self.p) * 4_294_967_296.0) as u64;
        let keep = 1.0 / (1.0 - self.p);
        (0..rows * cols).map(|_| if u64::from(rng.next_u32()) < threshold { 0.0 } else { keep }).collect()
    }

    /// [`DropoutDraw::mask`] as a `[rows, cols]` f32 tensor on `device`.
    pub(crate) fn mask_tensor(
        &self,
        layer: usize,
        target: Target,
        rows: usize,
        cols: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let mask = self.mask(layer, target, rows, cols);
        Ok(Tensor::from_slice(&mask, &[rows, cols])?.to_device(device)?)
    }
}
