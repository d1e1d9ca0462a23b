//! `ragtune generate` and `ragtune embed` end to end on the transformers fixtures: greedy ids
//! through `--json`, streamed text, embeddings in an `.npy` equal to sentence-transformers', and
//! clear errors with a non-zero exit.

mod common;

use std::path::Path;
use std::process::Output;

use common::{fixtures, ok, p, ragtune, ragtune_stdin, stderr};

/// `ragtune embed` with the bert-mini fixture on the CPU, `stdin` as its input, into `out`.
fn embed_stdin(out: &Path, stdin: &str) -> Output {
    let model = fixtures().join("runtime/bert-mini/model");
    ragtune_stdin(&["embed", "--model", p(&model), "--input", "-", "--out", p(out), "--device", "cpu"], stdin)
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("runtime/manifest.json")).unwrap()).unwrap()
}

#[test]
fn generate_greedy_json_matches_transformers() {
    let m = manifest();
    let model = fixtures().join("runtime/llama-gqa/model");
    let case = &m["models"]["llama-gqa"]["cases"][1];
    let prompt = case["prompt"].as_str().unwrap();
    let head = ["generate", "--model", model.to_str().unwrap(), "--prompt", prompt];
    let stdout = ok(&[&head[..], &["--max-tokens", "8", "--device", "cpu", "--json"]].concat());
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["prompt_ids"], case["ids"]);
    assert_eq!(report["output_ids"], case["greedy_ids"]);
    assert_eq!(report["finish"], "length");

    // Streamed text (sampling with a seed is reproducible).
    let args = [
        &head[..],
        &["--max-tokens", "6", "--temperature", "0.8", "--top-p", "0.9", "--seed", "7", "--device", "cpu"],
    ]
    .concat();
    assert_eq!(ok(&args), ok(&args));
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
    let embedded = embed_stdin(&out, &input);
    assert!(embedded.status.success(), "{}", stderr(&embedded));
    let ours = ragtune_index::npy::read_vectors(&out).unwrap();
    assert_eq!(ours.shape(), [3, 32]);
    let theirs =
        ragtune_index::npy::read_vectors(fixtures().join("runtime/bert-mini/embeddings.npy")).unwrap();
    let (a, b) = (ours.to_vec_f32().unwrap(), theirs.to_vec_f32().unwrap());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    assert!((num / den).sqrt() < 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_runtime_input_fails_clearly() {
    let model = fixtures().join("runtime/llama-gqa/model");
    let out = ragtune(&["generate", "--model", model.to_str().unwrap(), "--prompt", "hi", "--dtype", "i32"]);
    assert!(!out.status.success());
    // Refused while the command line is read: the flag, the value and the accepted values.
    let e = stderr(&out);
    assert!(
        e.contains("'i32'") && e.contains("--dtype") && e.contains("f32, bf16, f16, stored, stored-q8"),
        "{e}"
    );
    let out = ragtune(&["generate", "--model", "/nonexistent/model", "--prompt", "hi", "--device", "cpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model"));
    let out = embed_stdin(Path::new("/tmp/x.npy"), "\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no texts"));
}

/// Issue 17, item 2: a 20 MB line is cut before it is tokenized, so `ragtune embed` gives it its
/// prefix's vector in about the prefix's time. (Tokenizing it whole took 2 GB and 30 s.)
#[test]
fn embed_cuts_a_huge_line_before_tokenizing() {
    let dir = std::env::temp_dir().join(format!("ragtune-embed-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sentence = "The robot watered twelve plants in the greenhouse, then it rested. ";
    // 10 sentences are ~130 tokens, over the fixture's 64: the prefix fills the input.
    let prefix = sentence.repeat(10);
    let huge = sentence.repeat(20_000_000 / sentence.len());
    let (input, out) = (dir.join("texts.txt"), dir.join("vectors.npy"));
    std::fs::write(&input, format!("{prefix}\n{huge}\n")).unwrap();
    let model = fixtures().join("runtime/bert-mini/model");
    let started = std::time::Instant::now();
    let args = ["embed", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap()];
    ok(&[&args[..], &["--out", out.to_str().unwrap(), "--device", "cpu"]].concat());
    let secs = started.elapsed().as_secs_f64();
    let v = ragtune_index::npy::read_vectors(&out).unwrap();
    assert_eq!(v.shape(), [2, 32]);
    let v = v.to_vec_f32().unwrap();
    assert_eq!(v[..32], v[32..], "the huge line's vector is its prefix's");
    assert!(secs < 20.0, "embedding took {secs:.1} s: the line was tokenized whole");
    std::fs::remove_dir_all(&dir).ok();
}
