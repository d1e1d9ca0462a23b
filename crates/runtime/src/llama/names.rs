//! The one table of Llama-family parameter names: every tensor a decoder holds, spelled the
//! Hugging Face way (`model.layers.3.self_attn.q_proj.weight`, what safetensors folders and PEFT
//! adapters use) and the GGUF way (`blk.3.attn_q.weight`, what llama.cpp's converter writes).
//! Readers (the safetensors and GGUF loaders, PEFT target modules) and writers (model folders,
//! merged adapters) take their names from here, so the spellings cannot drift apart.

use std::fmt;
use std::str::FromStr;

use crate::config::LlamaConfig;
use crate::error::RuntimeError;

/// The seven linear projections of a decoder layer (also the modules LoRA can target).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Projection {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Projection {
    /// Every projection, in the order a layer holds (and a file lists) them.
    pub const ALL: [Projection; 7] = [
        Projection::Q,
        Projection::K,
        Projection::V,
        Projection::O,
        Projection::Gate,
        Projection::Up,
        Projection::Down,
    ];

    /// The Hugging Face module name, as in PEFT's `target_modules` (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Projection::Q => "q_proj",
            Projection::K => "k_proj",
            Projection::V => "v_proj",
            Projection::O => "o_proj",
            Projection::Gate => "gate_proj",
            Projection::Up => "up_proj",
            Projection::Down => "down_proj",
        }
    }

    /// The module holding it inside a layer: `self_attn` or `mlp`.
    pub fn parent(self) -> &'static str {
        match self {
            Projection::Q | Projection::K | Projection::V | Projection::O => "self_attn",
            Projection::Gate | Projection::Up | Projection::Down => "mlp",
        }
    }

    /// The module's path inside a layer (`self_attn.q_proj`, `mlp.gate_proj`, ...).
    pub fn path(self) -> &'static str {
        match self {
            Projection::Q => "self_attn.q_proj",
            Projection::K => "self_attn.k_proj",
            Projection::V => "self_attn.v_proj",
            Projection::O => "self_attn.o_proj",
            Projection::Gate => "mlp.gate_proj",
            Projection::Up => "mlp.up_proj",
            Projection::Down => "mlp.down_proj",
        }
    }

    /// The GGUF module name (`attn_q`, `ffn_gate`, ...).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Projection::Q => "attn_q",
            Projection::K => "attn_k",
            Projection::V => "attn_v",
            Projection::O => "attn_output",
            Projection::Gate => "ffn_gate",
            Projection::Up => "ffn_up",
            Projection::Down => "ffn_down",
        }
    }

    /// The projection whose [`Projection::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Projection> {
        Projection::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The projection whose [`Projection::gguf_name`] is `name`.
    pub fn from_gguf_name(name: &str) -> Option<Projection> {
        Projection::ALL.into_iter().find(|p| p.gguf_name() == name)
    }

    /// Position in [`Projection::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// `(out, in)` of the projection's weight for `config`.
    pub fn shape(self, c: &LlamaConfig) -> (usize, usize) {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        match self {
            Projection::Q => (q, h),
            Projection::K | Projection::V => (kv, h),
            Projection::O => (h, q),
            Projection::Gate | Projection::Up => (i, h),
            Projection::Down => (h, i),
        }
    }

    /// Whether `config` gives this projection a bias.
    pub fn has_bias(self, c: &LlamaConfig) -> bool {
        match self {
            Projection::Q | Projection::K | Projection::V => c.qkv_bias,
            Projection::O => c.o_bias,
            Projection::Gate | Projection::Up | Projection::Down => c.mlp_bias,
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Projection {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Projection, RuntimeError> {
        Projection::from_name(s).ok_or_else(|| {
            RuntimeError::input(format!(
                "`{s}` is not a Llama projection; the projections are {}",
                Projection::ALL.map(Projection::name).join(", ")
            ))
        })
    }
}

/// The two RMS norms of a decoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerNorm {
    /// Before attention.
    Input,
    /// Before the MLP.
    PostAttention,
}

impl LayerNorm {
    /// The Hugging Face module name.
    pub fn name(self) -> &'static str {
        match self {
            LayerNorm::Input => "input_layernorm",
            LayerNorm::PostAttention => "post_attention_layernorm",
        }
    }

    /// The GGUF module name.
    pub fn gguf_name(self) -> &'static str {
        match self {
            LayerNorm::Input => "attn_norm",
            LayerNorm::PostAttention => "ffn_norm",
        }
    }
}

/// The Hugging Face name of the token embedding.
pub const EMBED: &str = "model.embed_tokens.weight";
/// The Hugging Face name of the final norm.
pub const FINAL_NORM: &str = "model.norm.weight";
/// The Hugging Face name of an untied output layer.
pub const LM_HEAD: &str = "lm_head.weight";
/// What every per-layer Hugging Face name starts with (then the layer number).
pub const LAYERS_PREFIX: &str = "model.layers.";
/// The GGUF name of the token embedding.
pub const GGUF_EMBED: &str = "token_embd.weight";
/// The GGUF name of the final norm.
pub const GGUF_FINAL_NORM: &str = "output_norm.weight";
/// The GGUF name of an untied output layer.
pub const GGUF_LM_HEAD: &str = "output.weight";

/// `model.layers.{layer}.{path}`: the Hugging Face module of a projection (without `.weight`),
/// as PEFT names its target modules and [`crate::linear::Linear::load`] takes its prefix.
pub fn projection_module(layer: usize, p: Projection) -> String {
    format!("{LAYERS_PREFIX}{layer}.{}", p.path())
}

/// One tensor of a Llama-family decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorName {
    Embed,
    Norm(usize, LayerNorm),
    Weight(usize, Projection),
    Bias(usize, Projection),
    FinalNorm,
    LmHead,
}

impl TensorName {
    /// Every tensor `config` describes, in the canonical order: the embedding; per layer its
    /// two norms, then each projection's weight (and bias, when the config has one); the final
    /// norm; the output layer when it is not tied to the embedding.
    pub fn all(c: &LlamaConfig) -> Vec<TensorName> {
        let mut out = vec![TensorName::Embed];
        for l in 0..c.num_layers {
            out.push(TensorName::Norm(l, LayerNorm::Input));
            out.push(TensorName::Norm(l, LayerNorm::PostAttention));
            for p in Projection::ALL {
                out.push(TensorName::Weight(l, p));
                if p.has_bias(c) {
                    out.push(TensorName::Bias(l, p));
                }
            }
        }
        out.push(TensorName::FinalNorm);
        if !c.tie_word_embeddings {
            out.push(TensorName::LmHead);
        }
        out
    }

    /// The Hugging Face spelling (`model.layers.0.self_attn.q_proj.weight`).
    pub fn hf(self) -> String {
        HF.spell(self)
    }

    /// The GGUF spelling (`blk.0.attn_q.weight`).
    pub fn gguf(self) -> String {
        GGUF.spell(self)
    }

    /// The tensor a Hugging Face name spells, when it is one the decoder uses.
    pub fn from_hf(name: &str) -> Option<TensorName> {
        HF.parse(name)
    }

    /// The tensor a GGUF name spells, when it is one the decoder uses.
    pub fn from_gguf(name: &str) -> Option<TensorName> {
        GGUF.parse(name)
    }

    /// The tensor's shape under `config`.
    pub fn shape(self, c: &LlamaConfig) -> Vec<usize> {
        match self {
            TensorName::Embed | TensorName::LmHead => vec![c.vocab_size, c.hidden_size],
            TensorName::Norm(..) | TensorName::FinalNorm => vec![c.hidden_size],
            TensorName::Weight(_, p) => {
                let (out, inp) = p.shape(c);
                vec![out, inp]
            }
            TensorName::Bias(_, p) => vec![p.shape(c).0],
        }
    }

    /// The projection the tensor belongs to, if any.
    pub fn projection(self) -> Option<Projection> {
        match self {
            TensorName::Weight(_, p) | TensorName::Bias(_, p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hf())
    }
}

/// One way of spelling tensor names: its fixed names, what precedes a layer number, and its
/// module names. Writing and parsing both go through it, so they cannot disagree.
struct Spelling {
    embed: &'static str,
    final_norm: &'static str,
    lm_head: &'static str,
    layers: &'static str,
    norm: fn(LayerNorm) -> &'static str,
    projection: fn(Projection) -> &'static str,
}

const HF: Spelling = Spelling {
    embed: EMBED,
    final_norm: FINAL_NORM,
    lm_head: LM_HEAD,
    layers: LAYERS_PREFIX,
    norm: LayerNorm::name,
    projection: Projection::path,
};

const GGUF: Spelling = Spelling {
    embed: GGUF_EMBED,
    final_norm: GGUF_FINAL_NORM,
    lm_head: GGUF_LM_HEAD,
    layers: "blk.",
    norm: LayerNorm::gguf_name,
    projection: Projection::gguf_name,
};

impl Spelling {
    fn spell(&self, t: TensorName) -> String {
        let layers = self.layers;
        match t {
            TensorName::Embed => self.embed.to_string(),
            TensorName::Norm(l, n) => format!("{layers}{l}.{}.weight", (self.norm)(n)),
            TensorName::Weight(l, p) => format!("{layers}{l}.{}.weight", (self.projection)(p)),
            TensorName::Bias(l, p) => format!("{layers}{l}.{}.bias", (self.projection)(p)),
            TensorName::FinalNorm => self.final_norm.to_string(),
            TensorName::LmHead => self.lm_head.to_string(),
        }
    }

    fn parse(&self, name: &str) -> Option<TensorName> {
        let fixed = [
            (self.embed, TensorName::Embed),
            (self.final_norm, TensorName::FinalNorm),
            (self.lm_head, TensorName::LmHead),
        ];
        if let Some(&(_, t)) = fixed.iter().find(|(n, _)| *n == name) {
            return Some(t);
        }
        let (layer, rest) = name.strip_prefix(self.layers)?.split_once('.')?;
        let layer = layer_number(layer)?;
        let (module, suffix) = rest.rsplit_once('.')?;
        let norm =
            [LayerNorm::Input, LayerNorm::PostAttention].into_iter().find(|&n| (self.norm)(n) == module);
        if let Some(n) = norm {
            return (suffix == "weight").then_some(TensorName::Norm(layer, n));
        }
        let p = Projection::ALL.into_iter().find(|&p| (self.projection)(p) == module)?;
        match suffix {
            "weight" => Some(TensorName::Weight(layer, p)),
            "bias" => Some(TensorName::Bias(layer, p)),
            _ => None,
        }
    }
}

/// A layer number as file names write it: decimal digits only, no sign or leading zero, so
/// that a name and its [`TensorName`] map one to one.
fn layer_number(s: &str) -> Option<usize> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_names_parse_back() {
        for p in Projection::ALL {
            assert_eq!(p.name().parse::<Projection>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
            assert_eq!(format!("{}.{}", p.parent(), p.name()), p.path());
            assert_eq!(Projection::from_gguf_name(p.gguf_name()), Some(p));
            assert_eq!(Projection::ALL[p.index()], p);
        }
        let e = "lm_head".parse::<Projection>().unwrap_err().to_string();
        assert!(e.contains("lm_head") && e.contains("down_proj"), "{e}");
    }

    #[test]
    fn names_outside_the_table_are_not_read() {
        for name in [
            "model.layers.01.input_layernorm.weight",
            "model.layers.+1.input_layernorm.weight",
            "model.layers.0.input_layernorm.bias",
            "model.layers.0.self_attn.q_proj.scales",
            "model.layers.0.mlp.q_proj.weight",
            "model.layers.0.self_attn.rotary_emb.inv_freq",
            "model.embed_tokens.bias",
        ] {
            assert_eq!(TensorName::from_hf(name), None, "{name}");
        }
        for name in
            ["rope_freqs.weight", "blk.0.attn_norm.bias", "blk.x.attn_q.weight", "blk.0.attn_qkv.weight"]
        {
            assert_eq!(TensorName::from_gguf(name), None, "{name}");
        }
    }
}
