//! `ragtune generate --prompts FILE.jsonl --adapter NAME=DIR ...` end to end on the llama-gqa
//! fixture: prompts of different lengths, each with its own adapter or the base, run in mixed
//! batches, and every output line (greedy) equals running that prompt alone with that adapter
//! through the single-prompt form (`--adapter DIR --prompt TEXT`); bad files and names fail with
//! a message naming them.

mod common;

use std::path::Path;

use common::{model_dir, ragtune};
use ragtune_compute::{Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::peft::save_adapter;
use ragtune_trainer::{LoraAdapter, LoraConfig, Target};
use serde_json::{Value, json};

/// A random adapter (B not zero, so it changes the outputs) written as a PEFT folder.
fn write_adapter(dir: &Path, targets: &[Target], r: usize, seed: u64) {
    let model = LlamaModel::from_dir(&model_dir(), ragtune_compute::DType::F32, Device::Cpu).unwrap();
    let config = LoraConfig {
        r,
        alpha: 2.0 * r as f32,
        use_rslora: false,
        dropout: 0.0,
        targets: targets.to_vec(),
        layers: None,
    };
    let mut adapter = LoraAdapter::init(config, &model.config, seed, &Device::Cpu).unwrap();
    // A small xorshift stream: uniform in ±0.6.
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.2
    };
    for m in adapter.modules.iter_mut().flatten().flatten() {
        let b: Vec<f32> = (0..m.b.numel()).map(|_| next()).collect();
        m.b = Tensor::from_slice(&b, m.b.shape()).unwrap();
    }
    save_adapter(&adapter, dir, "llama-gqa").unwrap();
}

const MAX_TOKENS: &str = "10";

/// The single-prompt form with `--json`: the output ids and text.
fn alone(prompt: &str, adapter: Option<&Path>) -> (Vec<u64>, String) {
    let model = model_dir();
    let mut args = vec!["generate", "--model", model.to_str().unwrap(), "--prompt", prompt];
    args.extend(["--max-tokens", MAX_TOKENS, "--device", "cpu", "--json"]);
    if let Some(dir) = adapter {
        args.extend(["--adapter", dir.to_str().unwrap()]);
    }
    let out = ragtune(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = v["output_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    (ids, v["text"].as_str().unwrap().to_string())
}

#[test]
fn each_prompt_gets_its_own_adapter_in_mixed_batches() {
    let d = std::env::temp_dir().join(format!("ragtune-gen-adapters-{}", std::process::id()));
    let (qa, style) = (d.join("qa"), d.join("style"));
    write_adapter(&qa, &[Target::Q, Target::V], 4, 1);
    write_adapter(&style, &Target::ALL, 2, 2);
    let lines = [
        json!({"prompt": "Question: What is the capital of France? Answer:", "adapter": "qa"}),
        json!({"prompt": "The robot", "adapter": "style"}),
        json!({"prompt": "Once upon a time there was", "adapter": null}),
        json!({"prompt": "Hello", "adapter": "qa"}),
        json!({"prompt": "The robot"}),
    ];
    let file = d.join("prompts.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n\n")).collect();
    std::fs::write(&file, text).unwrap();
    let model = model_dir();
    let named = |name: &str, dir: &Path| format!("{name}={}", dir.display());
    let (a1, a2) = (named("qa", &qa), named("style", &style));
    // Batches of 3: one mixed batch of three and one of two, ragged prompt lengths in each.
    let out = ragtune(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        &a1,
        "--adapter",
        &a2,
        "--prompts",
        file.to_str().unwrap(),
        "--batch-size",
        "3",
        "--max-tokens",
        MAX_TOKENS,
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), lines.len());
    let mut changed = 0;
    for (line, g) in lines.iter().zip(&got) {
        let prompt = line["prompt"].as_str().unwrap();
        assert_eq!(g["prompt"], prompt);
        assert_eq!(g["adapter"], line.get("adapter").cloned().unwrap_or(Value::Null));
        let dir = match g["adapter"].as_str() {
            Some("qa") => Some(qa.as_path()),
            Some("style") => Some(style.as_path()),
            _ => None,
        };
        let (ids, text) = alone(prompt, dir);
        let batched: Vec<u64> =
            g["output_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert!(!batched.is_empty());
        assert_eq!(batched, ids, "{prompt:?} with {:?}", g["adapter"]);
        assert_eq!(g["text"].as_str().unwrap(), text);
        if dir.is_some() && alone(prompt, None).0 != ids {
            changed += 1;
        }
    }
    assert!(changed >= 2, "the adapters must change the outputs, or the test shows nothing");

    // An unknown adapter name, an unnamed adapter, and a malformed line are refused by name.
    let run = |extra: &[&str], file: &Path| {
        let mut args =
            vec!["generate", "--model", model.to_str().unwrap(), "--prompts", file.to_str().unwrap()];
        args.extend(["--device", "cpu", "--max-tokens", "2"]);
        args.extend_from_slice(extra);
        let r = ragtune(&args);
        assert!(!r.status.success());
        String::from_utf8(r.stderr).unwrap()
    };
    let err = run(&["--adapter", &a2], &file);
    assert!(err.contains("`qa`") && err.contains("prompt 1"), "{err}");
    let err = run(&["--adapter", qa.to_str().unwrap()], &file);
    assert!(err.contains("NAME=DIR"), "{err}");
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\": \"x\"}\n{\"text\": \"y\"}\n").unwrap();
    let err = run(&[], &bad);
    assert!(err.contains("line 2") && err.contains("\"prompt\""), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}
