//! [`LlamaModel`]: the weights of a Llama-family decoder, loaded from Hugging Face names (the
//! GGUF loader renames its tensors to these before calling [`LlamaModel::from_weights`]).

use std::path::Path;

use ragtune_compute::{DType, Device, Tensor};

use crate::config::{LlamaConfig, ModelConfig};
use crate::error::{Result, RuntimeError};
use crate::linear::{Linear, QuantWeight};
use crate::llama::names::{self, LayerNorm, Projection, TensorName};
use crate::weights::Weights;

/// One decoder layer's weights (public so the trainer can run its own forward and backward).
pub struct Layer {
    pub input_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub post_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

impl Layer {
    /// The projection `p` of the layer.
    pub fn projection(&self, p: Projection) -> &Linear {
        match p {
            Projection::Q => &self.q,
            Projection::K => &self.k,
            Projection::V => &self.v,
            Projection::O => &self.o,
            Projection::Gate => &self.gate,
            Projection::Up => &self.up,
            Projection::Down => &self.down,
        }
    }

    /// The projection `p` of the layer, to change (attach an adapter, update a weight).
    pub fn projection_mut(&mut self, p: Projection) -> &mut Linear {
        match p {
            Projection::Q => &mut self.q,
            Projection::K => &mut self.k,
            Projection::V => &mut self.v,
            Projection::O => &mut self.o,
            Projection::Gate => &mut self.gate,
            Projection::Up => &mut self.up,
            Projection::Down => &mut self.down,
        }
    }

    /// The norm `n` of the layer.
    pub fn norm(&self, n: LayerNorm) -> &Tensor {
        match n {
            LayerNorm::Input => &self.input_norm,
            LayerNorm::PostAttention => &self.post_norm,
        }
    }
}

pub struct LlamaModel {
    pub config: LlamaConfig,
    pub dtype: DType,
    pub device: Device,
    pub embed: Tensor,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    /// `[vocab, hidden]`; the embedding itself when the weights are tied.
    pub lm_head: Tensor,
    /// The output layer kept quantized (a GGUF file loaded at its stored precision); when set,
    /// logits come from it and `lm_head` serves only as the dense tied copy.
    pub lm_head_quant: Option<QuantWeight>,
    /// f32 `[head_dim / 2]` on the device, scaling included.
    pub inv_freq: Tensor,
}

/// `num_hidden_layers` against the layers the weights hold (`model.layers.N.*`), before anything
/// is sized by it: a config that promises more layers than the files carry is refused by name.
fn check_layer_count(c: &LlamaConfig, w: &Weights, config_origin: &str) -> Result<()> {
    let present = w
        .names()
        .filter_map(|n| n.strip_prefix(names::LAYERS_PREFIX)?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    if c.num_layers > present {
        return Err(RuntimeError::Config {
            path: config_origin.to_string(),
            field: "num_hidden_layers".into(),
            detail: format!(
                "{} layers, but the weights hold {present}: tensor {} \
                 is missing from {}; the config does not match these weights",
                c.num_layers,
                TensorName::Norm(present, LayerNorm::Input),
                w.origin()
            ),
        });
    }
    Ok(())
}

impl LlamaModel {
    /// Load a Hugging Face folder (`config.json` + safetensors) in `dtype` onto `device`.
    pub fn from_dir(dir: &Path, dtype: DType, device: Device) -> Result<LlamaModel> {
        let (config_path, config) = ModelConfig::from_dir_as(
            dir,
            |c| match c {
                ModelConfig::Llama(c) => Some(c),
                ModelConfig::Bert(_) => None,
            },
            "describes a BERT encoder; it embeds text but cannot generate (use `ragtune embed`)",
        )?;
        let weights = Weights::open_dir(dir, dtype, device)?;
        check_layer_count(&config, &weights, &config_path.display().to_string())?;
        LlamaModel::from_weights(config, &weights)
    }

    pub fn from_weights(config: LlamaConfig, w: &Weights) -> Result<LlamaModel> {
        Self::from_weights_with(config, w, &mut |name, out, inp, bias| Linear::load(w, name, out, inp, bias))
    }

    /// [`LlamaModel::from_weights`] with the projections made by `linear(prefix, out, in,
    /// bias)` (the GGUF loader's stored precision hands out quantized layers this way).
    pub fn from_weights_with(
        config: LlamaConfig,
        w: &Weights,
        linear: &mut dyn FnMut(&str, usize, usize, bool) -> Result<Linear>,
    ) -> Result<LlamaModel> {
        if !w.dtype.is_float() {
            return Err(RuntimeError::input(format!("models run in f32, bf16 or f16, not {}", w.dtype)));
        }
        let c = &config;
        let h = c.hidden_size;
        check_layer_count(c, w, "the model config")?;
        let embed = w.get(names::EMBED, &[c.vocab_size, h])?;
        let mut layers = Vec::new();
        for l in 0..c.num_layers {
            let mut lin = |p: Projection| {
                let (out, inp) = p.shape(c);
                linear(&names::projection_module(l, p), out, inp, p.has_bias(c))
            };
            layers.push(Layer {
                input_norm: w.get(&TensorName::Norm(l, LayerNorm::Input).hf(), &[h])?,
                q: lin(Projection::Q)?,
                k: lin(Projection::K)?,
                v: lin(Projection::V)?,
                o: lin(Projection::O)?,
                post_norm: w.get(&TensorName::Norm(l, LayerNorm::PostAttention).hf(), &[h])?,
                gate: lin(Projection::Gate)?,
                up: lin(Projection::Up)?,
                down: lin(Projection::Down)?,
            });
        }
        let norm = w.get(names::FINAL_NORM, &[h])?;
        // Tied models reuse the embedding even when a file carries an (identical) lm_head copy.
        let lm_head = if c.tie_word_embeddings {
            embed.clone()
        } else {
            w.get_opt(names::LM_HEAD, &[c.vocab_size, h])?.ok_or_else(|| {
                RuntimeError::tensor(
                    names::LM_HEAD,
                    "missing, and tie_word_embeddings is false in config.json (set it to true if the \
                     model reuses its embedding as the output layer)",
                )
            })?
        };
        let inv = config.rope.inv_freq();
        let inv_freq = Tensor::from_slice(&inv, &[inv.len()])?.to_device(&w.device)?;
        Ok(LlamaModel {
            config,
            dtype: w.dtype,
            device: w.device.clone(),
            embed,
            layers,
            norm,
            lm_head,
            lm_head_quant: None,
            inv_freq,
        })
    }

    /// The tensor `name` names, when the model holds it (a bias the config does not give, or
    /// the output layer of a tied model, it does not). A projection kept quantized
    /// (`--dtype stored`) has no dense weight to hand out and is refused by name.
    pub fn tensor(&self, name: TensorName) -> Result<Option<&Tensor>> {
        let layer = |l: usize| {
            self.layers.get(l).ok_or_else(|| {
                RuntimeError::tensor(name.hf(), format!("the model has {} layers", self.layers.len()))
            })
        };
        Ok(match name {
            TensorName::Embed => Some(&self.embed),
            TensorName::Norm(l, n) => Some(layer(l)?.norm(n)),
            TensorName::Weight(l, p) => Some(
                layer(l)?
                    .projection(p)
                    .dense_weight()
                    .map_err(|e| RuntimeError::tensor(name.hf(), e.to_string()))?,
            ),
            TensorName::Bias(l, p) => layer(l)?.projection(p).bias.as_ref(),
            TensorName::FinalNorm => Some(&self.norm),
            TensorName::LmHead => (!self.config.tie_word_embeddings).then_some(&self.lm_head),
        })
    }

    /// Every weight under its Hugging Face name, in [`TensorName::all`]'s canonical order:
    /// biases where the model has them, the output layer only when it is not tied (the tied
    /// head is the embedding, not repeated). What every writer of a model folder writes.
    pub fn named_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for name in TensorName::all(&self.config) {
            if let Some(t) = self.tensor(name)? {
                out.push((name.hf(), t.clone()));
            }
        }
        Ok(out)
    }

    /// The longest context a sequence may reach (prompt and generated tokens together):
    /// `max_position_embeddings`. A sliding window does not shorten it — attention hides the
    /// keys behind the window (the KV cache still keeps them all).
    pub fn max_context(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// Whether any projection carries an attached adapter or an adapter bank.
    pub fn has_adapter(&self) -> bool {
        self.layers.iter().any(|l| {
            Projection::ALL
                .into_iter()
                .map(|p| l.projection(p))
                .any(|lin| lin.lora.is_some() || lin.bank.is_some())
        })
    }

    /// Bytes of weights read per decoded token: every parameter once (the tied head counted
    /// again, since it is read twice: as a lookup row and as the full output matrix).
    pub fn weight_bytes_per_token(&self) -> usize {
        let layers = self.sum_layers(Tensor::size_bytes, Linear::weight_bytes);
        let head = self.lm_head_quant.as_ref().map_or(self.lm_head.size_bytes(), |q| q.matrix.size_bytes());
        layers + self.norm.size_bytes() + head
    }

    /// Parameters: embeddings, norms, every projection (biases included) and an untied head (a
    /// tied one shares the embedding's weights).
    pub fn num_params(&self) -> usize {
        // `shape()`, not the weight tensor: a layer kept quantized (dtype = "stored") has no
        // dense one.
        let lin = |l: &Linear| {
            let (out, inp) = l.shape();
            out * inp + l.bias.as_ref().map_or(0, |b| b.numel())
        };
        let head = if self.config.tie_word_embeddings { 0 } else { self.lm_head.numel() };
        self.embed.numel() + self.norm.numel() + self.sum_layers(Tensor::numel, lin) + head
    }

    /// Over every layer: `norm` of its two norms plus `lin` of its seven projections.
    fn sum_layers(&self, norm: impl Fn(&Tensor) -> usize, lin: impl Fn(&Linear) -> usize) -> usize {
        let layer = |l: &Layer| {
            norm(&l.input_norm)
                + norm(&l.post_norm)
                + Projection::ALL.map(|p| lin(l.projection(p))).iter().sum::<usize>()
        };
        self.layers.iter().map(layer).sum()
    }

    /// Logits `x · lm_headᵀ` from the quantized head when there is one.
    pub(crate) fn head(&self, x: &Tensor) -> Result<Tensor> {
        match &self.lm_head_quant {
            Some(q) => q.forward(x),
            None => Ok(ragtune_compute::ops::linear(x, &self.lm_head)?),
        }
    }
}
