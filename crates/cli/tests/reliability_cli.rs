//! Issue 17 through the built binary: a huge question is refused as too long at the cost of a
//! context-sized one, and absurd config numbers give errors naming config.json and the field.

mod common;

use common::{dir, finetune_on_fixture, model_dir, p, ragtune};

#[test]
fn a_two_million_word_question_is_refused_quickly() {
    let d = dir("reliability-question");
    let prompts = d.join("prompts.jsonl");
    let huge = "word ".repeat(2_000_000);
    std::fs::write(&prompts, format!("{}\n", serde_json::json!({ "prompt": huge }))).unwrap();
    let model = model_dir();
    let start = std::time::Instant::now();
    let r = ragtune(&["generate", "--model", p(&model), "--prompts", p(&prompts), "--device", "cpu"]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && e.contains("prompts.jsonl prompt 1") && e.contains("context of 256 tokens"),
        "{e}"
    );
    assert!(start.elapsed().as_secs_f64() < 20.0, "{:?}", start.elapsed());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn absurd_config_numbers_name_config_json_and_the_field() {
    let src = model_dir();
    for (tag, field, value, needle) in [
        ("layers", "num_hidden_layers", serde_json::json!(1_000_000_000u64), "num_hidden_layers"),
        ("layers0", "num_hidden_layers", serde_json::json!(0), "at least 1 layer"),
        ("eps", "rms_norm_eps", serde_json::json!(1e308), "rms_norm_eps"),
    ] {
        let d = dir(tag);
        for f in ["model.safetensors", "tokenizer.json"] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
        config[field] = value;
        std::fs::write(d.join("config.json"), config.to_string()).unwrap();
        let r = ragtune(&["generate", "--model", d.to_str().unwrap(), "--prompt", "hi", "--device", "cpu"]);
        let e = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{tag}: a clean error, not a panic or an abort: {e}");
        assert!(e.contains("config.json") && e.contains(field) && e.contains(needle), "{tag}: {e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn huge_finetune_sizes_are_refused_by_option() {
    let d = dir("reliability-ft-sizes");
    let data = d.join("data.jsonl");
    std::fs::write(&data, "{\"text\": \"The robot watered the plants.\"}\n").unwrap();
    for (opt, value, needle) in [
        ("--batch-size", "1000000000", "65536"),
        ("--accumulate", "18446744073709551615", "65536"),
        ("--lora-r", "100000000", "hidden size"),
        ("--steps", "18446744073709551615", "overflow"),
    ] {
        let r = finetune_on_fixture(&data, &d.join("out"), &[opt, value]);
        let e = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{opt} {value}: {e}");
        assert!(e.contains(needle), "{opt} {value}: {e}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
