//! [`KvCache`]: keys and values of every layer for a batch of sequences, `[batch, capacity,
//! kv_heads, head_dim]` per layer, filled in place with `ops::copy_into`. Each sequence has its
//! own length; attention masks the rest through `key_lens`. With a sliding window the cache still
//! keeps every token (attention skips the keys behind the window); a rolling cache would save
//! memory but not work.

use ragtune_compute::{Tensor, ops};

use super::LlamaModel;
use crate::error::{Result, RuntimeError};

pub struct KvCache {
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    pub(crate) lens: Vec<usize>,
    pub(crate) capacity: usize,
    /// Each sequence's adapter in the model's adapter banks (−1 = none); `None` = no banks used.
    pub(crate) adapters: Option<Vec<i32>>,
}

impl KvCache {
    /// An empty cache for `batch` sequences of at most `capacity` tokens each (at most the
    /// model's context).
    pub fn new(model: &LlamaModel, batch: usize, capacity: usize) -> Result<KvCache> {
        let c = &model.config;
        if capacity > model.max_context() {
            return Err(RuntimeError::input(format!(
                "a KV cache of {capacity} tokens exceeds the model's context of {} tokens \
                 (max_position_embeddings)",
                model.max_context(),
            )));
        }
        let shape = [batch, capacity, c.num_kv_heads, c.head_dim];
        // batch and capacity come from the request: the cache's size must be computed, not wrapped.
        shape
            .iter()
            .try_fold(model.dtype.size(), |a, &b| a.checked_mul(b))
            .and_then(|b| b.checked_mul(2 * c.num_layers))
            .ok_or_else(|| {
                RuntimeError::input(format!(
                    "a KV cache for {batch} sequences of {capacity} tokens is too large to address: \
                     ask for fewer or shorter sequences"
                ))
            })?;
        let mut k = Vec::with_capacity(c.num_layers);
        let mut v = Vec::with_capacity(c.num_layers);
        for _ in 0..c.num_layers {
            k.push(Tensor::zeros(&shape, model.dtype, &model.device)?);
            v.push(Tensor::zeros(&shape, model.dtype, &model.device)?);
        }
        Ok(KvCache { k, v, lens: vec![0; batch], capacity, adapters: None })
    }

    /// Choose each sequence's adapter from the model's adapter banks (`Linear::bank`; −1 =
    /// none), or `None` for no adapter from the banks.
    pub fn set_adapters(&mut self, adapters: Option<Vec<i32>>) -> Result<()> {
        if let Some(a) = &adapters
            && a.len() != self.lens.len()
        {
            return Err(RuntimeError::input(format!(
                "{} adapter ids for a cache of {} sequences: give one per sequence",
                a.len(),
                self.lens.len()
            )));
        }
        self.adapters = adapters;
        Ok(())
    }

    pub fn batch(&self) -> usize {
        self.lens.len()
    }

    /// Tokens held for each sequence.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forget every sequence (the memory is kept and overwritten).
    pub fn clear(&mut self) {
        self.lens.iter_mut().for_each(|l| *l = 0);
    }

    /// A cache of `n` sequences, each a copy of this one-sequence cache (with its adapter):
    /// a prompt prefilled once, then branched — e.g. to score several continuations of it.
    pub fn repeat(&self, n: usize) -> Result<KvCache> {
        if self.batch() != 1 {
            return Err(RuntimeError::input(format!(
                "KvCache::repeat branches a cache of one sequence; this one holds {}",
                self.batch()
            )));
        }
        let branch = |layers: &[Tensor]| -> Result<Vec<Tensor>> {
            layers
                .iter()
                .map(|t| {
                    let mut shape = t.shape().to_vec();
                    shape[0] = n;
                    let mut out = Tensor::zeros(&shape, t.dtype(), &t.device())?;
                    for b in 0..n {
                        ops::copy_into(&mut out, t, b * t.numel())?;
                    }
                    Ok(out)
                })
                .collect()
        };
        Ok(KvCache {
            k: branch(&self.k)?,
            v: branch(&self.v)?,
            lens: vec![self.lens[0]; n],
            capacity: self.capacity,
            adapters: self.adapters.as_ref().map(|a| vec![a[0]; n]),
        })
    }

    /// Store `k_rows`/`v_rows` (`[n, kv_heads · head_dim]`) of sequence `seq` at its end.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        seq: usize,
        k_rows: &Tensor,
        v_rows: &Tensor,
    ) -> Result<()> {
        let row = k_rows.shape()[1];
        let offset = (seq * self.capacity + self.lens[seq]) * row;
        ops::copy_into(&mut self.k[layer], k_rows, offset)?;
        ops::copy_into(&mut self.v[layer], v_rows, offset)?;
        Ok(())
    }
}
