//! The decoder forward pass over a batch of sequences of different lengths.
//!
//! New tokens are laid out left-padded in a `[batch, S]` block (S = the longest): attention's
//! causal mask aligns the last query with the last valid key, so a sequence's real tokens must
//! be its last rows. Only real rows are written to the KV cache (gathered with
//! `ops::embedding`, which is a row gather on any table), and padded rows are never read back,
//! so their values do not matter.

use ragtune_compute::{Tensor, ops};

use super::{KvCache, LlamaModel};
use crate::error::{Result, RuntimeError};

/// Which logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsWanted {
    /// `[batch, vocab]`: each sequence's last new token (generation).
    Last,
    /// `[batch, S, vocab]`, left-padded: new token `t` of sequence `b` is row `S − n_b + t`
    /// (scoring). See [`Batch::row`].
    All,
}

/// The shape of one forward call: how many new tokens each sequence got.
#[derive(Clone, Debug)]
pub struct Batch {
    pub new_lens: Vec<usize>,
    /// S: the longest new-token count.
    pub rows: usize,
}

impl Batch {
    /// Row of `[batch · S]` holding new token `t` of sequence `b`.
    pub fn row(&self, b: usize, t: usize) -> usize {
        b * self.rows + self.rows - self.new_lens[b] + t
    }
}

fn i32_tensor(model: &LlamaModel, values: &[i32], shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, shape)?.to_device(&model.device)?)
}

impl LlamaModel {
    /// Run `new_tokens[b]` through the model after what sequence `b` of `cache` already holds,
    /// append their keys and values to the cache, and return the logits asked for (f32 or the
    /// model's dtype, on the model's device) with the batch layout.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        new_tokens: &[&[u32]],
        want: LogitsWanted,
    ) -> Result<(Tensor, Batch)> {
        // The whole forward on the CPU pool's workers, not one hand-off per op (cpu::pool).
        ragtune_compute::cpu::pool::in_pool(|| self.forward_here(cache, new_tokens, want))
    }

    fn forward_here(
        &self,
        cache: &mut KvCache,
        new_tokens: &[&[u32]],
        want: LogitsWanted,
    ) -> Result<(Tensor, Batch)> {
        let c = &self.config;
        let batch = new_tokens.len();
        if batch != cache.batch() {
            return Err(RuntimeError::input(format!(
                "{batch} token lists for a KV cache of {} sequences",
                cache.batch()
            )));
        }
        let new_lens: Vec<usize> = new_tokens.iter().map(|t| t.len()).collect();
        let s = new_lens.iter().copied().max().unwrap_or(0);
        if s == 0 {
            return Err(RuntimeError::input("no tokens to run: every sequence's input is empty"));
        }
        for (b, toks) in new_tokens.iter().enumerate() {
            if let Some(&bad) = toks.iter().find(|&&t| t as usize >= c.vocab_size) {
                return Err(RuntimeError::input(format!(
                    "token id {bad} of sequence {b} is outside the vocabulary of {} tokens",
                    c.vocab_size
                )));
            }
            let total = cache.lens[b] + toks.len();
            if total > cache.capacity {
                return Err(RuntimeError::input(format!(
                    "sequence {b} would hold {total} tokens, more than its KV cache capacity of {} \
                     (the model's context is {} tokens)",
                    cache.capacity,
                    self.max_context()
                )));
            }
        }
        let layout = Batch { new_lens: new_lens.clone(), rows: s };

        // Left-padded ids and positions; padding uses id 0 and position 0.
        let mut ids = vec![0i32; batch * s];
        let mut positions = vec![0i32; batch * s];
        for (b, toks) in new_tokens.iter().enumerate() {
            for (t, &tok) in toks.iter().enumerate() {
                ids[layout.row(b, t)] = tok as i32;
                positions[layout.row(b, t)] = (cache.lens[b] + t) as i32;
            }
        }
        let ids = i32_tensor(self, &ids, &[batch, s])?;
        let positions = i32_tensor(self, &positions, &[batch, s])?;
        let key_lens: Vec<i32> = (0..batch).map(|b| (cache.lens[b] + new_lens[b]) as i32).collect();
        let key_lens = i32_tensor(self, &key_lens, &[batch])?;
        // Rows of each sequence's real tokens, for writing the cache; None when the whole block is
        // one unpadded sequence and needs no gather.
        let gathers: Vec<Option<Tensor>> = (0..batch)
            .map(|b| {
                if batch == 1 || new_lens[b] == 0 {
                    return Ok(None);
                }
                let rows: Vec<i32> = (0..new_lens[b]).map(|t| layout.row(b, t) as i32).collect();
                i32_tensor(self, &rows, &[rows.len()]).map(Some)
            })
            .collect::<Result<_>>()?;

        // Each row's adapter in the banks: the adapter of the sequence the row belongs to.
        let row_ids = match &cache.adapters {
            Some(ids) => {
                let rows: Vec<i32> = (0..batch * s).map(|r| ids[r / s]).collect();
                Some(i32_tensor(self, &rows, &[batch * s])?)
            }
            None => None,
        };
        let row_ids = row_ids.as_ref();
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let kv_dim = hkv * d;
        let spec = ops::AttentionSpec::new(true, d);
        let mut x = ops::embedding(&self.embed, &ids)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = ops::rms_norm(&x, &layer.input_norm, c.rms_norm_eps)?;
            let q = layer.q.forward_rows(&h, row_ids)?.reshape(&[batch, s, hq, d])?;
            let k = layer.k.forward_rows(&h, row_ids)?.reshape(&[batch, s, hkv, d])?;
            let v = layer.v.forward_rows(&h, row_ids)?.reshape(&[batch, s, hkv, d])?;
            let q = ops::rope(&q, &positions, &self.inv_freq)?;
            let k = ops::rope(&k, &positions, &self.inv_freq)?.reshape(&[batch * s, kv_dim])?;
            let v = v.reshape(&[batch * s, kv_dim])?;
            for (b, gather) in gathers.iter().enumerate() {
                match gather {
                    Some(rows) => {
                        let (kr, vr) = (ops::embedding(&k, rows)?, ops::embedding(&v, rows)?);
                        cache.append(l, b, &kr, &vr)?;
                    }
                    None if new_lens[b] > 0 => cache.append(l, b, &k, &v)?,
                    None => {}
                }
            }
            // A sliding window counts real token positions: the cache holds only real tokens,
            // and the last query row of each sequence aligns with its last key.
            let spec = spec.with_window(c.attention_window(l));
            let attn = ops::attention(&q, &cache.k[l], &cache.v[l], spec, Some(&key_lens))?;
            let attn = layer.o.forward_rows(&attn.reshape(&[batch, s, hq * d])?, row_ids)?;
            x = ops::add(&x, &attn)?;
            let h = ops::rms_norm(&x, &layer.post_norm, c.rms_norm_eps)?;
            let mlp = layer.down.forward_rows(
                &ops::swiglu(&layer.gate.forward_rows(&h, row_ids)?, &layer.up.forward_rows(&h, row_ids)?)?,
                row_ids,
            )?;
            x = ops::add(&x, &mlp)?;
        }
        for (len, n) in cache.lens.iter_mut().zip(&new_lens) {
            *len += n;
        }
        let x = ops::rms_norm(&x, &self.norm, c.rms_norm_eps)?;
        let logits = match want {
            LogitsWanted::All => self.head(&x)?,
            LogitsWanted::Last => {
                let last: Vec<i32> = (0..batch).map(|b| (b * s + s - 1) as i32).collect();
                let rows = ops::embedding(
                    &x.reshape(&[batch * s, c.hidden_size])?,
                    &i32_tensor(self, &last, &[batch])?,
                )?;
                self.head(&rows)?
            }
        };
        Ok((logits, layout))
    }
}
