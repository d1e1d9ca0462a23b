//! Issue 17, item 7: mutation tests of the index crate's readers (.npy and the index file).
//! Seeded byte mutations (flips, extreme u64s over header fields, truncations, insertions),
//! half of the index files re-checksummed so the structure checks are reached; each read must
//! return an error or a value, never panic. A fixed seed and a time budget keep them short.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use ragtune_compute::{DType, Device};
use ragtune_index::{AnyIndex, FlatIndex, IvfFlatIndex, IvfParams, Metric, npy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

const BUDGET: Duration = Duration::from_secs(2);
const MAX_CASES: usize = 400;

fn mutate(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if b.is_empty() {
            b.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..b.len());
        match rng.random_range(0..6) {
            0 => b[at] ^= 1 << rng.random_range(0..8),
            1 => b[at] = if rng.random() { 0 } else { 0xff },
            2 => b.truncate(at),
            3 => {
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(at..at, extra);
            }
            _ => {
                // An extreme number over a (likely) header field.
                let v: u64 = [u64::MAX, 1 << 62, 1 << 40, 0, 1, u32::MAX as u64][rng.random_range(0..6)];
                let at = (at.min(64) / 8) * 8;
                let end = (at + 8).min(b.len());
                b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
            }
        }
    }
    b
}

fn run(name: &str, seed: u64, original: &[u8], mut check: impl FnMut(&[u8])) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut cases = 0;
    while cases < MAX_CASES && start.elapsed() < BUDGET {
        let bytes = mutate(&mut rng, original);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&bytes)));
        assert!(outcome.is_ok(), "{name}: case {cases} (seed {seed}) panicked");
        cases += 1;
    }
    assert!(cases >= 20, "{name}: only {cases} cases ran within the budget");
}

#[test]
fn mutated_npy_files_never_panic() {
    let path = temp_path("fuzz.npy");
    npy::write_f32(&path, &[10, 4], &random_rows(&mut rng(1), 10, 4)).unwrap();
    let original = std::fs::read(&path).unwrap();
    run("npy", 17, &original, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let _ = npy::read_vectors(&path);
        let _ = npy::read_ids(&path);
    });
}

#[test]
fn mutated_index_files_never_panic() {
    let (n, dim) = (64, 4);
    let rows = random_rows(&mut rng(2), n, dim);
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut flat = FlatIndex::new(dim, Metric::L2, DType::F16, &Device::Cpu).unwrap();
    flat.add(&tensor(&rows, dim), &ids).unwrap();
    let ivf = IvfFlatIndex::build(
        &tensor(&rows, dim),
        &ids,
        Metric::Cosine,
        DType::F32,
        &Device::Cpu,
        IvfParams::new(4),
    )
    .unwrap();
    let q = tensor(&rows[..dim], dim);
    for (kind, save) in [("flat", AnyIndex::Flat(flat)), ("ivf", AnyIndex::Ivf(ivf))] {
        let path = temp_path(&format!("fuzz-{kind}.rtx"));
        save.save(&path).unwrap();
        let original = std::fs::read(&path).unwrap();
        let mut flip = false;
        run(kind, 18, &original, |bytes| {
            let mut bytes = bytes.to_vec();
            flip = !flip;
            if flip && bytes.len() >= 32 {
                let body = bytes.len() - 32;
                let digest = Sha256::digest(&bytes[..body]);
                bytes[body..].copy_from_slice(&digest);
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(index) = AnyIndex::load(&path, &Device::Cpu) {
                let _ = index.search(&q, usize::MAX, None, None);
            }
        });
    }
}
