//! `config.json` of a Hugging Face model folder, parsed into the hyper-parameters the runtime
//! runs: [`LlamaConfig`] for `llama`, `mistral` and `qwen2` (SmolLM is `llama`), [`BertConfig`] for
//! `bert`. Parsing goes through `serde_json::Value` rather than derived structs so that every
//! error names the field, and so that the several spellings real files use (an int or a list of
//! eos ids, `rope_scaling` or `rope_parameters`, `torch_dtype` or `dtype`) are all accepted.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Result, RuntimeError};
use crate::rope::{RopeConfig, RopeScaling};

/// The architectures the runtime can run.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Llama(LlamaConfig),
    Bert(BertConfig),
}

/// Which member of the Llama family a config came from (they differ in biases only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlamaFamily {
    Llama,
    Mistral,
    Qwen2,
}

/// The hyper-parameters of a Llama-family decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub family: LlamaFamily,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Key/value heads: fewer than `num_heads` for grouped-query attention.
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f32,
    pub rope: RopeConfig,
    /// The LM head reuses the token embedding (no `lm_head.weight` in the file).
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2 always; Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// o_proj carries a bias (Llama with `attention_bias`; never Qwen2).
    pub o_bias: bool,
    /// gate/up/down projections carry a bias (`mlp_bias`).
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    /// Every id that ends generation (`eos_token_id` may be an int or a list).
    pub eos_token_ids: Vec<u32>,
    /// The dtype the weights were saved in (`torch_dtype` / `dtype`), when the file says.
    pub torch_dtype: Option<String>,
    /// The sliding attention window (Mistral; Qwen2 with `use_sliding_window`): a query sees
    /// itself and the `sliding_window − 1` tokens before it, in the layers it applies to (see
    /// [`LlamaConfig::attention_window`]). `None`: full attention everywhere.
    pub sliding_window: Option<usize>,
    /// Layers that attend to the whole context even though `sliding_window` is set: Qwen2's
    /// layers below `max_window_layers`, or those `layer_types` calls `full_attention`. Empty
    /// for Mistral (every layer slides).
    pub full_attention_layers: Vec<usize>,
}

impl LlamaConfig {
    /// The sliding window of layer `layer`, as transformers applies it: `sliding_window`
    /// unless the layer is one of [`LlamaConfig::full_attention_layers`].
    pub fn attention_window(&self, layer: usize) -> Option<usize> {
        self.sliding_window.filter(|_| !self.full_attention_layers.contains(&layer))
    }

    /// A plain Llama's `config.json` as transformers' `LlamaForCausalLM` reads it, weights stored
    /// as `torch_dtype` ("float32", "bfloat16"...): what a writer of a model folder puts beside
    /// the safetensors. Biases, RoPE scaling and sliding windows are not written (plain Llamas
    /// have none); callers add or override keys they own (special token ids, for one).
    pub fn llama_config_json(&self, torch_dtype: &str) -> Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope.theta,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_ids.first(),
            "torch_dtype": torch_dtype,
        })
    }
}

/// The hyper-parameters of a BERT encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
}

impl ModelConfig {
    /// Read and parse `config.json` at `path`.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io(path, e))?;
        ModelConfig::from_json(&text, &path.display().to_string())
    }

    /// Read `config.json` in `dir` and keep it if `pick` accepts its architecture; otherwise an
    /// Unsupported error "`<path>` `mismatch`". Each model's `from_dir` starts here.
    pub(crate) fn from_dir_as<T>(
        dir: &Path,
        pick: impl FnOnce(ModelConfig) -> Option<T>,
        mismatch: &str,
    ) -> Result<(std::path::PathBuf, T)> {
        let path = dir.join("config.json");
        match pick(ModelConfig::from_file(&path)?) {
            Some(config) => Ok((path, config)),
            None => Err(RuntimeError::Unsupported(format!("{} {mismatch}", path.display()))),
        }
    }

    /// Parse the text of a `config.json`; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<ModelConfig> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| RuntimeError::format(origin, format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| RuntimeError::format(origin, "config.json must hold a JSON object"))?;
        let f = Fields { obj, origin };
        let model_type = f.opt_str("model_type")?.unwrap_or_default();
        match model_type.as_str() {
            "llama" => Ok(ModelConfig::Llama(parse_llama(&f, LlamaFamily::Llama)?)),
            "mistral" => Ok(ModelConfig::Llama(parse_llama(&f, LlamaFamily::Mistral)?)),
            "qwen2" => Ok(ModelConfig::Llama(parse_llama(&f, LlamaFamily::Qwen2)?)),
            "bert" => Ok(ModelConfig::Bert(parse_bert(&f)?)),
            other => Err(f.err(
                "model_type",
                format!("`{other}` is not supported; ragtune runs llama, mistral, qwen2 (decoders) and bert (encoders)"),
            )),
        }
    }
}

fn parse_llama(f: &Fields<'_>, family: LlamaFamily) -> Result<LlamaConfig> {
    let hidden_size = f.req_usize("hidden_size")?;
    let num_heads = f.req_usize("num_attention_heads")?;
    let num_kv_heads = f.opt_usize("num_key_value_heads")?.unwrap_or(num_heads);
    if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(f.err(
            "num_key_value_heads",
            format!("{num_kv_heads} key/value heads must be > 0 and divide the {num_heads} attention heads"),
        ));
    }
    let head_dim = match f.opt_usize("head_dim")? {
        Some(d) => d,
        None if hidden_size % num_heads == 0 => hidden_size / num_heads,
        None => {
            return Err(f.err(
                "head_dim",
                format!("absent, and hidden_size {hidden_size} is not a multiple of {num_heads} heads"),
            ));
        }
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(f.err("head_dim", format!("{head_dim} must be even and > 0 for rotary embedding")));
    }
    let act = f.opt_str("hidden_act")?.unwrap_or_else(|| "silu".into());
    if act != "silu" {
        return Err(f.err("hidden_act", format!("`{act}` is not supported; Llama-family models use silu")));
    }
    let attention_bias = f.opt_bool("attention_bias")?.unwrap_or(false);
    let (qkv_bias, o_bias) = match family {
        LlamaFamily::Qwen2 => (true, false),
        LlamaFamily::Mistral => (false, false),
        LlamaFamily::Llama => (attention_bias, attention_bias),
    };
    let max_position_embeddings = f.req_usize("max_position_embeddings")?;
    let num_layers = f.req_layers()?;
    let vocab_size = f.req_usize("vocab_size")?;
    let intermediate_size = f.req_usize("intermediate_size")?;
    // Products of config numbers size tensors and buffers later: they must not overflow (the
    // loader then checks each one against the tensor actually stored).
    f.checked_product("num_attention_heads", &[num_heads, head_dim])?;
    f.checked_product("vocab_size", &[vocab_size, hidden_size, 4])?;
    f.checked_product("intermediate_size", &[intermediate_size, hidden_size, 4])?;
    f.checked_product("max_position_embeddings", &[max_position_embeddings, num_kv_heads, head_dim, 4])?;
    // transformers' defaults: an absent `sliding_window` is 4096 for both families, an explicit
    // null none. Qwen2 files carry a window but only use it with `use_sliding_window: true`.
    let window = || -> Result<Option<usize>> {
        match f.obj.get("sliding_window") {
            None => Ok(Some(4096)),
            Some(_) => f.opt_usize("sliding_window"),
        }
    };
    let sliding_window = match family {
        LlamaFamily::Mistral => window()?,
        LlamaFamily::Qwen2 if f.opt_bool("use_sliding_window")?.unwrap_or(false) => window()?,
        _ => None,
    };
    if sliding_window == Some(0) {
        return Err(f.err("sliding_window", "0 would hide every token; give a window >= 1 or null"));
    }
    let full_attention_layers = match family {
        LlamaFamily::Qwen2 if sliding_window.is_some() => qwen2_full_attention_layers(f, num_layers)?,
        _ => Vec::new(),
    };
    Ok(LlamaConfig {
        family,
        vocab_size,
        hidden_size,
        intermediate_size,
        num_layers,
        num_heads,
        num_kv_heads,
        head_dim,
        max_position_embeddings,
        rms_norm_eps: f.eps("rms_norm_eps", 1e-6)?,
        rope: parse_rope(f, head_dim)?,
        tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
        qkv_bias,
        o_bias,
        mlp_bias: f.opt_bool("mlp_bias")?.unwrap_or(false),
        bos_token_id: f.token_ids("bos_token_id")?.first().copied(),
        eos_token_ids: f.token_ids("eos_token_id")?,
        torch_dtype: match f.opt_str("torch_dtype")? {
            Some(s) => Some(s),
            None => f.opt_str("dtype")?,
        },
        sliding_window,
        full_attention_layers,
    })
}

/// The layers of a Qwen2 model with a sliding window that still attend to everything, as
/// transformers' `Qwen2Config` decides: from `layer_types` when the file has it (transformers
/// writes it), else every layer below `max_window_layers` (default 28).
fn qwen2_full_attention_layers(f: &Fields<'_>, num_layers: usize) -> Result<Vec<usize>> {
    let Some(types) = f.present("layer_types") else {
        let below = f.opt_usize("max_window_layers")?.unwrap_or(28);
        return Ok((0..num_layers.min(below)).collect());
    };
    let types = types.as_array().ok_or_else(|| f.err("layer_types", "must be a list of strings"))?;
    if types.len() != num_layers {
        return Err(f.err(
            "layer_types",
            format!(
                "has {} entries for {num_layers} layers (num_hidden_layers): give one per layer",
                types.len()
            ),
        ));
    }
    let mut full = Vec::new();
    for (l, t) in types.iter().enumerate() {
        match t.as_str() {
            Some("full_attention") => full.push(l),
            Some("sliding_attention") => {}
            _ => {
                return Err(f.err(
                    &format!("layer_types[{l}]"),
                    format!(
                        "{t} is not supported; Qwen2 layers are \"full_attention\" or \"sliding_attention\""
                    ),
                ));
            }
        }
    }
    Ok(full)
}

/// `rope_theta` + `rope_scaling`, or the newer `rope_parameters` object that holds both.
fn parse_rope(f: &Fields<'_>, head_dim: usize) -> Result<RopeConfig> {
    let (params, field) = match (f.obj.get("rope_parameters"), f.obj.get("rope_scaling")) {
        (Some(Value::Object(p)), _) => (Some(p), "rope_parameters"),
        (_, Some(Value::Object(p))) => (Some(p), "rope_scaling"),
        (_, None | Some(Value::Null)) | (None | Some(Value::Null), _) => (None, "rope_scaling"),
        _ => return Err(f.err("rope_scaling", "must be an object or null")),
    };
    let theta = match params.and_then(|p| p.get("rope_theta")) {
        Some(v) => v.as_f64().ok_or_else(|| f.err(&format!("{field}.rope_theta"), "must be a number"))?,
        None => f.opt_f64("rope_theta")?.unwrap_or(10000.0),
    };
    if !(theta.is_finite() && theta > 0.0) {
        return Err(f.err("rope_theta", format!("{theta} must be a positive number")));
    }
    let scaling = match params {
        None => RopeScaling::None,
        Some(p) => {
            let sub = Fields { obj: p, origin: f.origin };
            let kind = match sub.opt_str("rope_type")? {
                Some(k) => k,
                None => sub.opt_str("type")?.unwrap_or_else(|| "default".into()),
            };
            let num = |name: &str| -> Result<f64> {
                sub.opt_f64(name)?.ok_or_else(|| f.err(&format!("{field}.{name}"), "is required"))
            };
            match kind.as_str() {
                "default" => RopeScaling::None,
                "linear" => RopeScaling::Linear { factor: num("factor")? },
                "llama3" => RopeScaling::Llama3 {
                    factor: num("factor")?,
                    low_freq_factor: num("low_freq_factor")?,
                    high_freq_factor: num("high_freq_factor")?,
                    original_max_position_embeddings: num("original_max_position_embeddings")?,
                },
                other => {
                    return Err(f.err(
                        &format!("{field}.rope_type"),
                        format!("`{other}` is not supported; ragtune implements default, linear and llama3"),
                    ));
                }
            }
        }
    };
    if let RopeScaling::Linear { factor } | RopeScaling::Llama3 { factor, .. } = scaling
        && !(factor.is_finite() && factor > 0.0)
    {
        return Err(f.err(&format!("{field}.factor"), format!("{factor} must be a positive number")));
    }
    if let RopeScaling::Llama3 { low_freq_factor, high_freq_factor, .. } = scaling
        && high_freq_factor <= low_freq_factor
    {
        return Err(f.err(
            &format!("{field}.high_freq_factor"),
            format!("{high_freq_factor} must exceed low_freq_factor {low_freq_factor}"),
        ));
    }
    Ok(RopeConfig { theta, scaling, rotary_dim: head_dim })
}

fn parse_bert(f: &Fields<'_>) -> Result<BertConfig> {
    let act = f.opt_str("hidden_act")?.unwrap_or_else(|| "gelu".into());
    if act != "gelu" {
        return Err(f.err("hidden_act", format!("`{act}` is not supported; BERT encoders use gelu (erf)")));
    }
    if let Some(kind) = f.opt_str("position_embedding_type")?
        && kind != "absolute"
    {
        return Err(f.err("position_embedding_type", format!("`{kind}` is not supported; only absolute")));
    }
    let hidden_size = f.req_usize("hidden_size")?;
    let num_heads = f.req_usize("num_attention_heads")?;
    if num_heads == 0 || hidden_size % num_heads != 0 {
        return Err(f.err(
            "num_attention_heads",
            format!("{num_heads} heads must be > 0 and divide hidden_size {hidden_size}"),
        ));
    }
    let config = BertConfig {
        vocab_size: f.req_usize("vocab_size")?,
        hidden_size,
        num_layers: f.req_layers()?,
        num_heads,
        intermediate_size: f.req_usize("intermediate_size")?,
        max_position_embeddings: f.req_usize("max_position_embeddings")?,
        type_vocab_size: f.opt_usize("type_vocab_size")?.unwrap_or(2),
        layer_norm_eps: f.eps("layer_norm_eps", 1e-12)?,
    };
    f.checked_product("vocab_size", &[config.vocab_size, hidden_size, 4])?;
    f.checked_product("intermediate_size", &[config.intermediate_size, hidden_size, 4])?;
    f.checked_product("max_position_embeddings", &[config.max_position_embeddings, hidden_size, 4])?;
    f.checked_product("type_vocab_size", &[config.type_vocab_size, hidden_size, 4])?;
    Ok(config)
}

/// The most layers a config may declare (`num_hidden_layers`): far above any real model, far
/// below what would make per-layer bookkeeping a memory problem.
pub const MAX_LAYERS: usize = 4096;

/// Typed access to a JSON object whose errors name the field and the file.
pub(crate) struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub origin: &'a str,
}

impl Fields<'_> {
    pub fn err(&self, field: &str, detail: impl Into<String>) -> RuntimeError {
        RuntimeError::Config {
            path: self.origin.to_string(),
            field: field.to_string(),
            detail: detail.into(),
        }
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    pub fn opt_usize(&self, name: &str) -> Result<Option<usize>> {
        self.present(name)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.err(name, format!("must be a non-negative integer, found {v}")))
            })
            .transpose()
    }

    pub fn req_usize(&self, name: &str) -> Result<usize> {
        self.opt_usize(name)?.ok_or_else(|| self.err(name, "is required"))
    }

    /// `num_hidden_layers`: at least 1 (a model of no layers computes nothing) and at most
    /// [`MAX_LAYERS`]; the loader then checks it against the layers the weights hold.
    pub fn req_layers(&self) -> Result<usize> {
        let n = self.req_usize("num_hidden_layers")?;
        if n == 0 {
            return Err(self.err("num_hidden_layers", "0: a model needs at least 1 layer"));
        }
        if n > MAX_LAYERS {
            return Err(self.err(
                "num_hidden_layers",
                format!(
                    "{n} is more than ragtune loads ({MAX_LAYERS}; the largest open models have ~130): the \
                     file is damaged or not a model config"
                ),
            ));
        }
        Ok(n)
    }

    /// A normalisation epsilon: a number that stays finite and >= 0 as the f32 the model uses,
    /// and below 1 (it guards a division by a variance; real models use 1e-5 .. 1e-12).
    pub fn eps(&self, name: &str, default: f64) -> Result<f32> {
        let v = self.opt_f64(name)?.unwrap_or(default);
        let e = v as f32;
        if !(e.is_finite() && (0.0..1.0).contains(&e)) {
            return Err(self.err(
                name,
                format!(
                    "{v} is not usable: an epsilon must be >= 0 and < 1 (and finite as an f32); real models \
                     use 1e-5 .. 1e-12"
                ),
            ));
        }
        Ok(e)
    }

    /// The product of `sizes` (config numbers that together size a tensor), or an error naming
    /// `field` when it does not fit in memory addresses.
    pub fn checked_product(&self, field: &str, sizes: &[usize]) -> Result<usize> {
        sizes.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).ok_or_else(|| {
            self.err(
                field,
                format!("the sizes {sizes:?} multiply past what memory can address: the file is damaged"),
            )
        })
    }

    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>> {
        self.present(name)
            .map(|v| v.as_f64().ok_or_else(|| self.err(name, format!("must be a number, found {v}"))))
            .transpose()
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>> {
        self.present(name)
            .map(|v| v.as_bool().ok_or_else(|| self.err(name, format!("must be true or false, found {v}"))))
            .transpose()
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<String>> {
        self.present(name)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.err(name, format!("must be a string, found {v}")))
            })
            .transpose()
    }

    /// A token id given as an int, a list of ints, or null.
    pub fn token_ids(&self, name: &str) -> Result<Vec<u32>> {
        let one = |v: &Value| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| self.err(name, format!("must be a token id or a list of them, found {v}")))
        };
        match self.present(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    }
}
