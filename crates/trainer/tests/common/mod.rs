//! Helpers shared by the trainer's tests: finite-difference checks for the gradient tests, and
//! the fixtures' paths, tokenizer and JSON rows for the fixture and data tests (each test file
//! uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ragtune_runtime::Tokenizer;
use serde_json::Value;

/// The repository's `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A JSON array of arrays of integers (a fixture's token rows).
pub fn rows(v: &Value) -> Vec<Vec<i32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect())
        .collect()
}

/// The tokenizer of the `llama-gqa` runtime fixture.
pub fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(&fixtures().join("runtime/llama-gqa/model/tokenizer.json")).unwrap()
}

/// `text` written to a JSONL file in the temporary folder, named after `name` and this process.
pub fn write_jsonl(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ragtune-data-{name}-{}.jsonl", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// The derivative of a loss at weights `base` along `dirn`, by Richardson-extrapolated central
/// differences (error O(h⁴)): `loss_at(w)` is the loss, in f64, with the weights set to `w`.
pub fn directional_derivative(
    base: &[f32],
    dirn: &[f32],
    h: f32,
    mut loss_at: impl FnMut(Vec<f32>) -> f64,
) -> f64 {
    let mut at = |s: f32| loss_at(base.iter().zip(dirn).map(|(w, u)| w + s * h * u).collect());
    let n1 = (at(1.0) - at(-1.0)) / (2.0 * f64::from(h));
    let n2 = (at(0.5) - at(-0.5)) / f64::from(h);
    (4.0 * n2 - n1) / 3.0
}

/// `⟨grad, dirn⟩` in f64.
pub fn dot(grad: &[f32], dirn: &[f32]) -> f64 {
    grad.iter().zip(dirn).map(|(a, u)| f64::from(*a) * f64::from(*u)).sum()
}

/// The analytic derivative matches the numeric one within `rel · |analytic| + abs`.
#[track_caller]
pub fn assert_derivative(what: &str, analytic: f64, numeric: f64, rel: f64, abs: f64) {
    assert!(
        (numeric - analytic).abs() <= rel * analytic.abs() + abs,
        "{what}: analytic {analytic:.6e} vs numeric {numeric:.6e}"
    );
}
