//! `ragtune generate` and `ragtune embed` end to end on the transformers fixtures: greedy ids
//! through `--json`, streamed text, embeddings in an `.npy` equal to sentence-transformers', and
//! clear errors with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::io::Write;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime")
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap()
}

fn ragtune(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ragtune"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ragtune");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = ragtune(args, stdin);
    assert!(out.status.success(), "ragtune {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn generate_greedy_json_matches_transformers() {
    let m = manifest();
    let model = fixtures().join("llama-gqa/model");
    let case = &m["models"]["llama-gqa"]["cases"][1];
    let prompt = case["prompt"].as_str().unwrap();
    let stdout = ok(
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            prompt,
            "--max-tokens",
            "8",
            "--device",
            "cpu",
            "--json",
        ],
        None,
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["prompt_ids"], case["ids"]);
    assert_eq!(report["output_ids"], case["greedy_ids"]);
    assert_eq!(report["finish"], "length");

    // Streamed text (sampling with a seed is reproducible).
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        prompt,
        "--max-tokens",
        "6",
        "--temperature",
        "0.8",
        "--top-p",
        "0.9",
        "--seed",
        "7",
        "--device",
        "cpu",
    ];
    assert_eq!(ok(&args, None), ok(&args, None));
}

#[test]
fn embed_writes_sentence_transformers_vectors() {
    let m = manifest();
    let case = &m["models"]["bert-mini"];
    let sentences: Vec<&str> =
        case["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let dir = std::env::temp_dir().join(format!("ragtune-embed-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("vectors.npy");
    // JSONL on stdin: one line with a `text` field, the others plain.
    let input = format!(
        "{}\n{}\n\n{}\n",
        serde_json::json!({"text": sentences[0], "id": 1}),
        sentences[1],
        sentences[2]
    );
    let model = fixtures().join("bert-mini/model");
    ok(
        &[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--input",
            "-",
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
        ],
        Some(&input),
    );
    let ours = ragtune_index::npy::read_vectors(&out).unwrap();
    assert_eq!(ours.shape(), [3, 32]);
    let theirs = ragtune_index::npy::read_vectors(fixtures().join("bert-mini/embeddings.npy")).unwrap();
    let (a, b) = (ours.to_vec_f32().unwrap(), theirs.to_vec_f32().unwrap());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    assert!((num / den).sqrt() < 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_runtime_input_fails_clearly() {
    let model = fixtures().join("llama-gqa/model");
    let out =
        ragtune(&["generate", "--model", model.to_str().unwrap(), "--prompt", "hi", "--dtype", "i32"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dtype i32"));
    let out =
        ragtune(&["generate", "--model", "/nonexistent/model", "--prompt", "hi", "--device", "cpu"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model"));
    let bert = fixtures().join("bert-mini/model");
    let out = ragtune(
        &[
            "embed",
            "--model",
            bert.to_str().unwrap(),
            "--input",
            "-",
            "--out",
            "/tmp/x.npy",
            "--device",
            "cpu",
        ],
        Some("\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no texts"));
}
