//! PEFT LoRA adapter folders in and out:
//! `adapter_config.json` + `adapter_model.safetensors`.
//!
//! Reading parses every field that changes what the adapter computes and refuses what ragtune
//! does not implement — DoRA, `modules_to_save`, embedding LoRA, another `peft_type`,
//! `fan_in_fan_out`, trained biases, per-module rank/alpha patterns, pickled `.bin` weights —
//! with an error naming the feature. Keys may carry an adapter name (`.lora_A.default.weight`)
//! or lack the `base_model.model.` prefix. Every A needs its B, shapes must match the model and
//! the rank, and a tensor that is not a LoRA weight is an error. `target_modules` is read in
//! all three of peft's spellings ([`TargetModules`]: a list, a regex string matched against
//! the whole module name, `"all-linear"`), and weights on a module it does not select are an
//! error (the config and the weights disagree).
//!
//! Writing produces what `peft` writes (prefix `base_model.model.`, no adapter name, A `[r, in]`,
//! B `[out, r]`, F32), so `PeftModel.from_pretrained` loads it unchanged. Files are written to a
//! temporary name and renamed, so a crash never leaves a half-written adapter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ragtune_compute::{Device, Tensor, safetensors_io};
use safetensors::{Dtype as StDtype, SafeTensors};
use serde_json::{Value, json};

use super::{LoraAdapter, LoraConfig, LoraModule, Target};
use crate::config::LlamaConfig;
use crate::error::{Result, RuntimeError};
use crate::llama::names;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| RuntimeError::io(path, e))
}

/// Read a PEFT LoRA adapter folder for `model`, onto `device` (f32 master weights).
pub fn load_adapter(dir: &Path, model: &LlamaConfig, device: &Device) -> Result<LoraAdapter> {
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    if !weights_path.is_file() && dir.join("adapter_model.bin").is_file() {
        return Err(RuntimeError::unsupported_feature(
            dir.join("adapter_model.bin").display(),
            "adapter_model.bin (pickle)",
            "pickled PyTorch weights are not read (loading a pickle can run code); re-save the adapter \
             with safetensors: model.save_pretrained(dir, safe_serialization=True)",
        ));
    }
    let text = String::from_utf8(read(&config_path)?)
        .map_err(|_| RuntimeError::format(config_path.display(), "not UTF-8 text"))?;
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| RuntimeError::format(config_path.display(), format!("not valid JSON: {e}")))?;
    let config = parse_config(&cfg, &config_path.display().to_string())?;
    let selected = TargetModules::from_config(&cfg, &config_path.display().to_string())?;
    let only_layers = layers_to_transform(&cfg, &config_path.display().to_string(), model.num_layers)?;
    let bytes = read(&weights_path)?;
    let origin = weights_path.display().to_string();
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| RuntimeError::format(&origin, format!("not a valid safetensors file: {e}")))?;
    // (layer, target) -> (A, B), from the normalised key of each tensor.
    let mut pairs: BTreeMap<(usize, Target), (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        let (layer, target, is_a) = parse_key(&name, &origin, model.num_layers)?;
        let dtype = safetensors_io::dtype_of(&name, view.dtype())
            .map_err(|e| RuntimeError::format(&origin, e.to_string()))?;
        if !dtype.is_float() {
            return Err(RuntimeError::format(
                &origin,
                format!("tensor `{name}` is {dtype}; LoRA weights are floats"),
            ));
        }
        let raw = Tensor::from_bytes(view.data(), dtype, view.shape())?;
        let values = raw.to_vec_f32()?;
        // A NaN or infinite weight would poison every output (and a merged model for good).
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(RuntimeError::format(
                &origin,
                format!(
                    "tensor `{name}` holds {} at element {i}: LoRA weights must be finite; the adapter is \
                     damaged (or its training diverged): retrain it or use an earlier checkpoint",
                    values[i]
                ),
            ));
        }
        let f32s = Tensor::from_slice(&values, view.shape())?;
        let slot = pairs.entry((layer, target)).or_default();
        let place = if is_a { &mut slot.0 } else { &mut slot.1 };
        if place.replace(f32s).is_some() {
            return Err(RuntimeError::format(
                &origin,
                format!("tensor `{name}` appears twice (under two key spellings)"),
            ));
        }
    }
    if pairs.is_empty() {
        return Err(RuntimeError::format(&origin, "the file holds no LoRA weights"));
    }
    let mut modules: Vec<[Option<LoraModule>; 7]> =
        (0..model.num_layers).map(|_| Default::default()).collect();
    let (mut targets, mut layers) = (BTreeSet::new(), BTreeSet::new());
    for ((l, t), (a, b)) in pairs {
        let key = LoraAdapter::peft_prefix(l, t);
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            (a, _) => {
                let (has, lacks) = if a.is_some() { ("lora_A", "lora_B") } else { ("lora_B", "lora_A") };
                return Err(RuntimeError::format(
                    &origin,
                    format!("`{key}` has {has} but no {lacks}: every LoRA A needs its B"),
                ));
            }
        };
        let module = names::projection_module(l, t);
        if let Some(only) = only_layers.as_ref().filter(|only| !only.contains(&l)) {
            return Err(RuntimeError::format(
                &origin,
                format!(
                    "`{key}` adapts layer {l}, which {CONFIG_FILE}'s layers_to_transform ({only:?}) does not \
                     list: the weights and the config disagree"
                ),
            ));
        }
        if let Some(sel) = selected.as_ref().filter(|s| !s.matches(&module)) {
            return Err(RuntimeError::format(
                &origin,
                format!(
                    "`{key}` adapts `{module}`, which {CONFIG_FILE}'s target_modules ({sel}) does not select: \
                     the weights and the config disagree"
                ),
            ));
        }
        let (out, inp) = t.shape(model);
        let r = config.r;
        if a.shape() != [r, inp] || b.shape() != [out, r] {
            return Err(RuntimeError::format(
                &origin,
                format!(
                    "`{key}`: lora_A {:?} and lora_B {:?} must be [r={r}, in={inp}] and [out={out}, r={r}] \
                     (rank r from {CONFIG_FILE}, in/out from the model); a rank or shape mismatch means the \
                     adapter was trained for another model or with rank_pattern",
                    a.shape(),
                    b.shape()
                ),
            ));
        }
        targets.insert(t);
        layers.insert(l);
        modules[l][t.index()] = Some(LoraModule { a: a.to_device(device)?, b: b.to_device(device)? });
    }
    let layers = if layers.len() == model.num_layers { None } else { Some(layers.into_iter().collect()) };
    let config = LoraConfig { targets: targets.into_iter().collect(), layers, ..config };
    Ok(LoraAdapter { config, modules })
}

/// `target_modules` of `adapter_config.json`, read as `peft` reads it, over full module names
/// such as `model.layers.3.self_attn.q_proj`.
#[derive(Clone, Debug)]
pub enum TargetModules {
    /// A module matches when its name equals an entry or ends with `.entry`.
    List(Vec<String>),
    /// A regular expression that must match the whole name (peft: `re.fullmatch`). Holds the
    /// pattern as written and its anchored compilation.
    Regex(String, regex::Regex),
    /// `"all-linear"`: every linear layer but the output head — all seven projections.
    AllLinear,
}

impl TargetModules {
    /// From a `target_modules` value: a list of names, `"all-linear"`, or a regex string.
    /// `origin` names the file in errors.
    pub fn parse(value: &Value, origin: &str) -> Result<TargetModules> {
        let bad = |detail: String| RuntimeError::format(origin, format!("field `target_modules`: {detail}"));
        match value {
            Value::String(s) if s.eq_ignore_ascii_case("all-linear") => Ok(TargetModules::AllLinear),
            Value::String(pattern) => {
                // Anchored at both ends to behave as Python's re.fullmatch.
                let anchored = format!(r"\A(?:{pattern})\z");
                let re = regex::Regex::new(&anchored).map_err(|e| {
                    bad(format!(
                        "`{pattern}` is not a regular expression ragtune can read ({e}); \
                         Python-only syntax such as look-arounds is not supported: list the modules instead"
                    ))
                })?;
                Ok(TargetModules::Regex(pattern.clone(), re))
            }
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(TargetModules::List)
                .ok_or_else(|| bad(format!("the list {value} must hold only module names (strings)"))),
            other => {
                Err(bad(format!("{other} must be a list of module names, a regex string or \"all-linear\"")))
            }
        }
    }

    /// The `target_modules` field of a parsed `adapter_config.json`; `None` when absent or null
    /// (peft then uses its default for the architecture, and the weights decide).
    pub fn from_config(cfg: &Value, origin: &str) -> Result<Option<TargetModules>> {
        match cfg.get("target_modules") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => TargetModules::parse(v, origin).map(Some),
        }
    }

    /// Whether the module with the full name `module` (`model.layers.3.self_attn.q_proj`) is
    /// selected. Only the seven projections are linear layers LoRA can adapt here.
    pub fn matches(&self, module: &str) -> bool {
        match self {
            TargetModules::List(names) => names
                .iter()
                .any(|n| module == n || module.strip_suffix(n.as_str()).is_some_and(|p| p.ends_with('.'))),
            TargetModules::Regex(_, re) => re.is_match(module),
            TargetModules::AllLinear => module.rsplit('.').next().and_then(Target::from_name).is_some(),
        }
    }
}

impl std::fmt::Display for TargetModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetModules::List(names) => write!(f, "the list {names:?}"),
            TargetModules::Regex(pattern, _) => write!(f, "the regex `{pattern}`"),
            TargetModules::AllLinear => write!(f, "\"all-linear\""),
        }
    }
}

/// The fields of `adapter_config.json` that decide what the adapter computes.
fn parse_config(cfg: &Value, origin: &str) -> Result<LoraConfig> {
    let obj =
        cfg.as_object().ok_or_else(|| RuntimeError::format(origin, "the top level must be a JSON object"))?;
    let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let unsupported =
        |feature: &str, detail: &str| Err(RuntimeError::unsupported_feature(origin, feature, detail));
    match field("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        Some(other) => {
            return unsupported("peft_type", &format!("`{other}`: only LORA adapters are supported"));
        }
        None => {
            return Err(RuntimeError::format(origin, "field `peft_type` is missing (it must be \"LORA\")"));
        }
    }
    if field("use_dora").and_then(Value::as_bool) == Some(true) {
        return unsupported("use_dora", "DoRA (weight-decomposed LoRA) adapters are not supported yet");
    }
    if field("modules_to_save").is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
        return unsupported(
            "modules_to_save",
            "fully trained module copies are not supported; only LoRA weights",
        );
    }
    if field("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
        return unsupported("fan_in_fan_out", "transposed (Conv1D / GPT-2 style) weights are not supported");
    }
    match field("bias").and_then(Value::as_str) {
        None | Some("none") => {}
        Some(other) => {
            return unsupported(
                "bias",
                &format!("`{other}`: trained biases are not supported (use \"none\")"),
            );
        }
    }
    // Newer peft fields that change what the adapter computes: refused by name when set.
    for (name, what) in [
        (
            "exclude_modules",
            "excluding modules from target_modules is not supported: list the targets instead",
        ),
        ("layer_replication", "replicated layers are not supported"),
        ("target_parameters", "LoRA on raw parameters (not linear modules) is not supported"),
        ("trainable_token_indices", "trainable token embeddings are not supported"),
    ] {
        if field(name).is_some_and(|v| !matches!(v, Value::Array(a) if a.is_empty())) {
            return unsupported(name, what);
        }
    }
    for name in ["lora_bias", "use_qalora", "use_bdlora"] {
        if field(name).and_then(Value::as_bool) == Some(true) {
            return unsupported(name, "this LoRA variant is not supported");
        }
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if field(pattern).is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty())) {
            return unsupported(pattern, "per-module rank/alpha overrides are not supported yet");
        }
    }
    let r =
        field("r").and_then(Value::as_u64).filter(|&r| r > 0).ok_or_else(|| {
            RuntimeError::format(origin, "field `r` must be a positive integer (the LoRA rank)")
        })? as usize;
    if r > MAX_RANK {
        return Err(RuntimeError::format(
            origin,
            format!(
                "field `r`: {r} is above the largest rank ragtune reads ({MAX_RANK}); the file is damaged"
            ),
        ));
    }
    let alpha64 = field("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| RuntimeError::format(origin, "field `lora_alpha` must be a number"))?;
    let alpha = alpha64 as f32;
    // The scale alpha / r (or alpha / sqrt(r)) multiplies every update: it must be a finite,
    // non-negative f32 (a negative alpha flips the adapter's sign; peft never writes one).
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(RuntimeError::format(
            origin,
            format!(
                "field `lora_alpha`: {alpha64} is not usable; the LoRA scale alpha / r needs alpha >= 0 and finite \
                 as an f32 (peft writes e.g. 16 or 32)"
            ),
        ));
    }
    let dropout64 = field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0);
    if !(0.0..1.0).contains(&dropout64) {
        return Err(RuntimeError::format(
            origin,
            format!("field `lora_dropout`: {dropout64} must be in [0, 1)"),
        ));
    }
    let dropout = dropout64 as f32;
    let use_rslora = field("use_rslora").and_then(Value::as_bool).unwrap_or(false);
    Ok(LoraConfig { r, alpha, use_rslora, dropout, targets: Vec::new(), layers: None })
}

/// The largest LoRA rank an adapter config may declare (`r`); real adapters use 4 .. 256.
pub const MAX_RANK: usize = 65536;

/// `layers_to_transform` as peft reads it: an int or a list of ints, the only layer indices
/// that get LoRA modules (`None`: every layer). `layers_pattern` must name Llama's `layers`.
fn layers_to_transform(cfg: &Value, origin: &str, num_layers: usize) -> Result<Option<Vec<usize>>> {
    let bad = |detail: String| RuntimeError::format(origin, format!("field `layers_to_transform`: {detail}"));
    let layers = match cfg.get("layers_to_transform") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => vec![n.as_u64().ok_or_else(|| bad(format!("{n} is not a layer index")))?],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_u64().ok_or_else(|| bad(format!("{v} is not a layer index"))))
            .collect::<Result<Vec<_>>>()?,
        Some(other) => return Err(bad(format!("{other} must be a layer index or a list of them"))),
    };
    let mut out = Vec::with_capacity(layers.len());
    for l in layers {
        match usize::try_from(l).ok().filter(|&l| l < num_layers) {
            Some(l) => out.push(l),
            None => {
                return Err(bad(format!(
                    "layer {l} is not in the model, which has {num_layers} layers (0..{num_layers})"
                )));
            }
        }
    }
    match cfg.get("layers_pattern") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if p == "layers" => {}
        Some(Value::Array(a)) if a.iter().all(|v| v.as_str() == Some("layers")) => {}
        Some(other) => {
            return Err(RuntimeError::unsupported_feature(
                origin,
                "layers_pattern",
                format!("{other}: Llama-family models number their layers under `layers`"),
            ));
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

/// `(layer, target, is_A)` of a tensor key, after dropping the `base_model.model.` prefix and an
/// adapter name; an error naming the feature for DoRA, embedding LoRA and `modules_to_save`.
fn parse_key(name: &str, origin: &str, num_layers: usize) -> Result<(usize, Target, bool)> {
    if name.contains("lora_magnitude_vector") {
        return Err(RuntimeError::unsupported_feature(
            origin,
            "lora_magnitude_vector (DoRA)",
            format!("tensor `{name}`"),
        ));
    }
    if name.contains("lora_embedding_") {
        return Err(RuntimeError::unsupported_feature(
            origin,
            "lora_embedding_A/B (LoRA on embeddings)",
            format!("tensor `{name}`"),
        ));
    }
    if name.contains("modules_to_save") {
        return Err(RuntimeError::unsupported_feature(origin, "modules_to_save", format!("tensor `{name}`")));
    }
    let bad = || {
        RuntimeError::format(
            origin,
            format!(
                "tensor `{name}` is not a LoRA weight of a Llama projection \
                 (expected base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_<A|B>.weight)"
            ),
        )
    };
    let key = name.strip_prefix("base_model.model.").unwrap_or(name);
    let rest = key.strip_prefix(names::LAYERS_PREFIX).ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split('.').collect();
    // N . group . proj . lora_X [. adapter_name] . weight
    if !(parts.len() == 5 || parts.len() == 6) || parts[parts.len() - 1] != "weight" {
        return Err(bad());
    }
    let layer: usize = parts[0].parse().map_err(|_| bad())?;
    if layer >= num_layers {
        return Err(RuntimeError::format(
            origin,
            format!("tensor `{name}` is for layer {layer}, but the model has {num_layers} layers"),
        ));
    }
    let target = Target::from_name(parts[2]).filter(|t| t.parent() == parts[1]).ok_or_else(bad)?;
    let is_a = match parts[3] {
        "lora_A" => true,
        "lora_B" => false,
        _ => return Err(bad()),
    };
    Ok((layer, target, is_a))
}

/// Write `adapter` as a PEFT folder in `dir` (created when missing). `base_model` goes into
/// `base_model_name_or_path`.
pub fn save_adapter(adapter: &LoraAdapter, dir: &Path, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
    let c = &adapter.config;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": c.r,
        "lora_alpha": c.alpha,
        "lora_dropout": c.dropout,
        "use_rslora": c.use_rslora,
        "use_dora": false,
        "bias": "none",
        "fan_in_fan_out": false,
        "target_modules": c.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "layers_to_transform": c.layers,
        "layers_pattern": null,
        "modules_to_save": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "init_lora_weights": true,
        "inference_mode": true,
        "revision": null,
    });
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| RuntimeError::format(dir.display(), e.to_string()))?;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (l, t, m) in adapter.iter() {
        let prefix = LoraAdapter::peft_prefix(l, t);
        for (part, tensor) in [("lora_A", &m.a), ("lora_B", &m.b)] {
            let values = tensor.to_vec_f32()?;
            named.push((format!("{prefix}.{part}.weight"), tensor.shape().to_vec(), bytemuck_f32(&values)));
        }
    }
    let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = f32_safetensors(&named, metadata, "the adapter")
        .map_err(|message| RuntimeError::format(dir.display(), message))?;
    write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
}

/// `named` (name, shape, little-endian f32 bytes) as a safetensors file's bytes: the adapter's
/// weights here and the trainer's optimizer state. An error is its message alone (the tensor's
/// name, or that `what` could not be serialised), for the caller to wrap with its file.
pub fn f32_safetensors(
    named: &[(String, Vec<usize>, Vec<u8>)],
    metadata: Option<std::collections::HashMap<String, String>>,
    what: &str,
) -> std::result::Result<Vec<u8>, String> {
    let views = named
        .iter()
        .map(|(n, shape, data)| {
            safetensors::tensor::TensorView::new(StDtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| format!("tensor `{n}`: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata).map_err(|e| format!("cannot serialise {what}: {e}"))
}

fn bytemuck_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Through ragtune's one atomic writer ([`ragtune_compute::atomic_file`]): a temporary file
/// beside `path`, fsynced and renamed over it; readers see the old file or the new one, and
/// the temporaries of killed writers are removed by the next successful write.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ragtune_compute::atomic_file::write(path, bytes).map_err(|e| RuntimeError::io(path, e))
}
