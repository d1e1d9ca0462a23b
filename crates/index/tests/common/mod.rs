//! Shared test support: seeded data, the values an index really stores (rounded to its dtype,
//! normalized for cosine), an f64 brute-force reference, and the comparison of results with it.

#![allow(dead_code)]

use half::{bf16, f16};
use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{FlatIndex, IvfFlatIndex, IvfParams, Metric, SearchResult};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn random_rows(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The ids 0, 1, …, n − 1 (one per row, in row order).
pub fn seq_ids(n: usize) -> Vec<u64> {
    (0..n as u64).collect()
}

/// A test's usual data: `n` random rows `dim` wide from `rng(seed)`, and their ids 0..n. The rng
/// comes back as the rows left it, for drawing queries.
pub fn seeded_rows(seed: u64, n: usize, dim: usize) -> (ChaCha8Rng, Vec<f32>, Vec<u64>) {
    let mut r = rng(seed);
    let rows = random_rows(&mut r, n, dim);
    (r, rows, seq_ids(n))
}

/// Like [`seeded_rows`] for clustered data: `n` rows and `nq` queries `dim` wide around
/// `clusters` centers (σ = [`SIGMA`]) from `rng(seed)`, and the row ids 0..n.
pub fn seeded_clusters(
    seed: u64,
    n: usize,
    nq: usize,
    dim: usize,
    clusters: usize,
) -> (Vec<f32>, Vec<f32>, Vec<u64>) {
    let (rows, queries) = clustered(&mut rng(seed), n, nq, dim, clusters, SIGMA);
    (rows, queries, seq_ids(n))
}

pub fn tensor(rows: &[f32], dim: usize) -> Tensor {
    Tensor::from_slice(rows, &[rows.len() / dim, dim]).expect("shape")
}

/// Round like a cast to `dtype`.
pub fn round(v: f32, dtype: DType) -> f64 {
    match dtype {
        DType::F16 => f16::from_f32(v).to_f64(),
        DType::BF16 => bf16::from_f32(v).to_f64(),
        _ => v as f64,
    }
}

/// The rows as the index holds them: normalized (cosine) in f32, then rounded to `dtype`.
pub fn held(rows: &[f32], dim: usize, metric: Metric, dtype: DType) -> Vec<f64> {
    rows.chunks_exact(dim)
        .flat_map(|r| {
            let scale = if metric == Metric::Cosine {
                1.0 / r.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt()
            } else {
                1.0
            };
            r.iter().map(move |&v| round((v as f64 * scale) as f32, dtype)).collect::<Vec<_>>()
        })
        .collect()
}

pub fn score(metric: Metric, q: &[f64], x: &[f64]) -> f64 {
    match metric {
        Metric::L2 => q.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum(),
        _ => q.iter().zip(x).map(|(a, b)| a * b).sum(),
    }
}

/// f64 scores of one query against every (id, row).
pub fn all_scores(metric: Metric, q: &[f64], base: &[f64], ids: &[u64], dim: usize) -> Vec<(f64, u64)> {
    base.chunks_exact(dim).zip(ids).map(|(x, &id)| (score(metric, q, x), id)).collect()
}

/// Best first, ties by the smaller id.
pub fn rank(metric: Metric, v: &mut [(f64, u64)]) {
    v.sort_by(|a, b| {
        let s = if metric == Metric::L2 { a.0.total_cmp(&b.0) } else { b.0.total_cmp(&a.0) };
        s.then(a.1.cmp(&b.1))
    });
}

/// Check `got` against the f64 reference `scores` (every allowed candidate of one query):
/// the count, each score, and each id — an id may differ from the reference only where the
/// two reference scores lie within `tol` (a near-tie that rounding may order either way).
#[track_caller]
pub fn check(
    what: &str,
    metric: Metric,
    got: &SearchResult,
    mut scores: Vec<(f64, u64)>,
    k: usize,
    tol: f64,
) {
    rank(metric, &mut scores);
    let want = &scores[..k.min(scores.len())];
    assert_eq!(got.ids.len(), want.len(), "{what}: result count");
    assert_eq!(got.scores.len(), want.len(), "{what}: score count");
    let by_id: std::collections::HashMap<u64, f64> = scores.iter().map(|&(s, id)| (id, s)).collect();
    let mut seen = std::collections::HashSet::new();
    for (i, (&id, &s)) in got.ids.iter().zip(&got.scores).enumerate() {
        assert!(seen.insert(id), "{what}: id {id} returned twice");
        let r = *by_id.get(&id).unwrap_or_else(|| panic!("{what}: id {id} is not an allowed candidate"));
        let t = tol * (1.0 + r.abs());
        assert!((s as f64 - r).abs() <= t, "{what}: position {i}, id {id}: score {s} vs reference {r}");
        if id != want[i].1 {
            assert!(
                (r - want[i].0).abs() <= t,
                "{what}: position {i}: got id {id} (ref score {r}), want id {} (ref score {})",
                want[i].1,
                want[i].0
            );
        }
        if i > 0 && got.scores[i - 1] == s {
            assert!(got.ids[i - 1] < id, "{what}: equal scores must come in id order");
        }
    }
}

pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 2e-3,
        _ => 1e-2,
    }
}

/// A CPU flat index of `rows` (`dim` wide) under `ids`.
pub fn flat_index(rows: &[f32], dim: usize, ids: &[u64], metric: Metric, dtype: DType) -> FlatIndex {
    let mut index = FlatIndex::new(dim, metric, dtype, &Device::Cpu).unwrap();
    index.add(&tensor(rows, dim), ids).unwrap();
    index
}

/// A CPU IVF-flat index of `rows` (`dim` wide) under `ids`, built with `nlist` lists and the
/// default nprobe.
pub fn ivf_index(
    rows: &[f32],
    dim: usize,
    ids: &[u64],
    metric: Metric,
    dtype: DType,
    nlist: usize,
) -> IvfFlatIndex {
    IvfFlatIndex::build(&tensor(rows, dim), ids, metric, dtype, &Device::Cpu, IvfParams::new(nlist)).unwrap()
}

// Not every test binary that includes this module draws clusters.
#[allow(unused_imports)]
pub use ragtune_tests::clustered;

/// The σ of the tests' clusters: well separated.
pub const SIGMA: f32 = 0.15;

/// A fresh path in the temp folder for this test.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ragtune-index-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}
