//! [`BertModel`]: embeddings (word + position + token type, LayerNorm), post-norm encoder
//! layers with bidirectional attention (padding masked through `key_lens`) and GELU, and the
//! pooled, optionally L2-normalised sentence vector. [`BertEmbedder`] adds the tokenizer.

use std::path::Path;

use ragtune_compute::{DType, Device, Tensor, ops};

use super::{Pooling, PoolingMode};
use crate::config::{BertConfig, ModelConfig};
use crate::error::{Result, RuntimeError};
use crate::linear::Linear;
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn load(w: &Weights, prefix: &str, n: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[n])?,
            bias: w.get(&format!("{prefix}.bias"), &[n])?,
        })
    }
    fn forward(&self, x: &Tensor, eps: f32) -> Result<Tensor> {
        Ok(ops::layer_norm(x, &self.weight, Some(&self.bias), eps)?)
    }
    /// The norm of `x + residual`, in one pass on the CPU.
    fn forward_add(&self, x: &Tensor, residual: &Tensor, eps: f32) -> Result<Tensor> {
        Ok(ops::add_layer_norm(x, residual, &self.weight, Some(&self.bias), eps)?)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

pub struct BertModel {
    pub config: BertConfig,
    pub pooling: Pooling,
    pub dtype: DType,
    pub device: Device,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

fn i32_tensor(device: &Device, values: &[i32], shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, shape)?.to_device(device)?)
}

impl BertModel {
    /// Load a Hugging Face / sentence-transformers folder in `dtype` onto `device`.
    pub fn from_dir(dir: &Path, dtype: DType, device: Device) -> Result<BertModel> {
        let (_, config) = ModelConfig::from_dir_as(
            dir,
            |c| match c {
                ModelConfig::Bert(c) => Some(c),
                ModelConfig::Llama(_) => None,
            },
            "describes a decoder; sentence embeddings need a BERT-family encoder",
        )?;
        let weights = Weights::open_dir(dir, dtype, device)?;
        BertModel::from_weights(config, Pooling::from_dir(dir)?, &weights)
    }

    pub fn from_weights(config: BertConfig, pooling: Pooling, w: &Weights) -> Result<BertModel> {
        // BertForMaskedLM and friends prefix the encoder's names with `bert.`.
        let p = if w.contains("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        let c = &config;
        let h = c.hidden_size;
        let lin = |name: &str, out, inp| Linear::load(w, &format!("{p}{name}"), out, inp, true);
        let mut layers = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let q = format!("encoder.layer.{l}");
            layers.push(Layer {
                query: lin(&format!("{q}.attention.self.query"), h, h)?,
                key: lin(&format!("{q}.attention.self.key"), h, h)?,
                value: lin(&format!("{q}.attention.self.value"), h, h)?,
                attn_out: lin(&format!("{q}.attention.output.dense"), h, h)?,
                attn_norm: LayerNorm::load(w, &format!("{p}{q}.attention.output.LayerNorm"), h)?,
                intermediate: lin(&format!("{q}.intermediate.dense"), c.intermediate_size, h)?,
                output: lin(&format!("{q}.output.dense"), h, c.intermediate_size)?,
                out_norm: LayerNorm::load(w, &format!("{p}{q}.output.LayerNorm"), h)?,
            });
        }
        Ok(BertModel {
            word: w.get(&format!("{p}embeddings.word_embeddings.weight"), &[c.vocab_size, h])?,
            position: w
                .get(&format!("{p}embeddings.position_embeddings.weight"), &[c.max_position_embeddings, h])?,
            token_type: w
                .get(&format!("{p}embeddings.token_type_embeddings.weight"), &[c.type_vocab_size, h])?,
            embed_norm: LayerNorm::load(w, &format!("{p}embeddings.LayerNorm"), h)?,
            layers,
            pooling,
            dtype: w.dtype,
            device: w.device.clone(),
            config,
        })
    }

    /// The last hidden state `[batch, S, hidden]` of right-padded sequences (S = the longest;
    /// padded rows hold unspecified values), all of token type 0.
    pub fn hidden_states(&self, sequences: &[&[u32]]) -> Result<Tensor> {
        let c = &self.config;
        let batch = sequences.len();
        let s = sequences.iter().map(|q| q.len()).max().unwrap_or(0);
        if batch == 0 || sequences.iter().any(|q| q.is_empty()) {
            return Err(RuntimeError::input("every input must hold at least one token"));
        }
        if s > c.max_position_embeddings {
            return Err(RuntimeError::input(format!(
                "an input of {s} tokens exceeds the encoder's {} positions (max_position_embeddings)",
                c.max_position_embeddings
            )));
        }
        let mut ids = vec![0i32; batch * s];
        for (b, seq) in sequences.iter().enumerate() {
            if let Some(&bad) = seq.iter().find(|&&t| t as usize >= c.vocab_size) {
                return Err(RuntimeError::input(format!(
                    "token id {bad} of input {b} is outside the vocabulary of {} tokens",
                    c.vocab_size
                )));
            }
            for (t, &tok) in seq.iter().enumerate() {
                ids[b * s + t] = tok as i32;
            }
        }
        let positions: Vec<i32> = (0..batch * s).map(|i| (i % s) as i32).collect();
        let dev = &self.device;
        let ids = i32_tensor(dev, &ids, &[batch, s])?;
        let positions = i32_tensor(dev, &positions, &[batch, s])?;
        let types = i32_tensor(dev, &vec![0; batch * s], &[batch, s])?;
        let lens: Vec<i32> = sequences.iter().map(|q| q.len() as i32).collect();
        let key_lens = i32_tensor(dev, &lens, &[batch])?;

        let x = ops::add(&ops::embedding(&self.word, &ids)?, &ops::embedding(&self.position, &positions)?)?;
        let x = ops::add(&x, &ops::embedding(&self.token_type, &types)?)?;
        let mut x = self.embed_norm.forward(&x, c.layer_norm_eps)?;
        let (nh, hd) = (c.num_heads, c.hidden_size / c.num_heads);
        let spec = ops::AttentionSpec::new(false, hd);
        for layer in &self.layers {
            let heads = |l: &Linear| -> Result<Tensor> { Ok(l.forward(&x)?.reshape(&[batch, s, nh, hd])?) };
            let attn = ops::attention(
                &heads(&layer.query)?,
                &heads(&layer.key)?,
                &heads(&layer.value)?,
                spec,
                Some(&key_lens),
            )?;
            let attn = layer.attn_out.forward(&attn.reshape(&[batch, s, c.hidden_size])?)?;
            let h = layer.attn_norm.forward_add(&x, &attn, c.layer_norm_eps)?;
            let ff = layer.output.forward(&layer.intermediate.forward_gelu(&h)?)?;
            x = layer.out_norm.forward_add(&h, &ff, c.layer_norm_eps)?;
        }
        Ok(x)
    }

    /// Sentence vectors `[batch, hidden]` (f32 on the host), pooled and normalised as configured.
    pub fn embed_ids(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let x = self.hidden_states(sequences)?;
        let (batch, s, h) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let pooled = match self.pooling.mode {
            // Mean pooling as a batched product with per-row weights 1/len on the real tokens,
            // so it runs on the device like everything else.
            PoolingMode::Mean => {
                let mut weights = vec![0f32; batch * s];
                for (b, seq) in sequences.iter().enumerate() {
                    weights[b * s..b * s + seq.len()].fill(1.0 / seq.len() as f32);
                }
                let weights = ops::cast(&Tensor::from_slice(&weights, &[batch, 1, s])?, self.dtype)?;
                ops::matmul(&weights.to_device(&self.device)?, &x)?.reshape(&[batch, h])?
            }
            PoolingMode::Cls => {
                let rows: Vec<i32> = (0..batch).map(|b| (b * s) as i32).collect();
                ops::embedding(&x.reshape(&[batch * s, h])?, &i32_tensor(&self.device, &rows, &[batch])?)?
            }
        };
        let pooled = if self.pooling.normalize { ops::l2_normalize(&pooled)? } else { pooled };
        let flat = pooled.to_vec_f32()?;
        Ok(flat.chunks(h).map(<[f32]>::to_vec).collect())
    }

    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }
}

/// A BERT model with its tokenizer: text in, sentence vectors out.
pub struct BertEmbedder {
    pub model: BertModel,
    pub tokenizer: Tokenizer,
    /// Inputs are cut to this many tokens (sentence-transformers' `max_seq_length`, else the
    /// position count), keeping the final `[SEP]`.
    pub max_tokens: usize,
    /// `bert:<folder name>`: says in reports, and in a saved index, which model embedded.
    pub name: String,
    /// Texts per forward pass where the caller leaves it to the embedder.
    pub batch_size: usize,
}

/// Texts per forward pass by default: large enough to keep a GPU busy, small enough that a
/// batch of 512-token texts stays within a few hundred MB of activations.
pub const DEFAULT_BATCH: usize = 32;

impl BertEmbedder {
    pub fn from_dir(dir: &Path, dtype: DType, device: Device) -> Result<BertEmbedder> {
        let model = BertModel::from_dir(dir, dtype, device)?;
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let st_config = dir.join("sentence_bert_config.json");
        let max_seq = std::fs::read_to_string(&st_config)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map(|n| n as usize);
        let positions = model.config.max_position_embeddings;
        let max_tokens = max_seq.map_or(positions, |m| m.min(positions)).max(2);
        let folder =
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        Ok(BertEmbedder {
            model,
            tokenizer,
            max_tokens,
            name: format!("bert:{folder}"),
            batch_size: DEFAULT_BATCH,
        })
    }

    /// Token ids of `text` with `[CLS]`/`[SEP]`, cut to `max_tokens`.
    ///
    /// Only the head of the text that the kept tokens can come from is tokenized
    /// ([`Tokenizer::encode_prefix`]: `max_tokens · 32` bytes), so a 20 MB line costs what a
    /// 16 KB one does and gives the same ids as its first 16 KB. (Tokenizing the whole line held
    /// tens of bytes per byte of text: offsets and alignments for every character.) The ids equal
    /// the whole text's unless its first `max_tokens` tokens average over 32 bytes each (in
    /// WordPiece only words over 100 characters, one `[UNK]` each, cover that much).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let (mut ids, _) = self.tokenizer.encode_prefix(text, self.max_tokens, true)?;
        if ids.len() > self.max_tokens {
            let last = ids[ids.len() - 1];
            ids.truncate(self.max_tokens - 1);
            ids.push(last);
        }
        Ok(ids)
    }

    /// Sentence vectors for `texts`, in their order, `batch_size` at a time.
    ///
    /// Texts are batched by token count (longest first), not in input order: a batch is padded
    /// to its longest text, so similar lengths together leave almost no padding to compute. Each
    /// text's vector is the same whichever texts share its batch (padding is masked), so the
    /// order changes nothing but the time.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        // On the CPU pool's workers, not one hand-off per op (cpu::pool).
        ragtune_compute::cpu::pool::in_pool(|| self.embed_here(texts, batch_size))
    }

    fn embed_here(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let ids = texts.iter().map(|t| self.tokenize(t)).collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        // Stable: equal lengths keep their input order (deterministic batches).
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let refs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            for (&i, v) in chunk.iter().zip(self.model.embed_ids(&refs)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
