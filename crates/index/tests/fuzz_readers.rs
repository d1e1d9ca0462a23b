//! Issue 17, item 7: mutation tests of the index crate's readers (.npy and the index file).
//! Byte edits from `ragtune_tests::fuzz::mutate` (flips, extreme u64s over header fields,
//! truncations, insertions); half of the index files are re-checksummed so the structure checks
//! behind the SHA-256 are reached, and a loaded index is searched with a huge k. Each read
//! returns an error or a value: never a panic, an abort or more than 1 GiB.

mod common;

use common::*;
use ragtune_compute::{DType, Device};
use ragtune_index::{AnyIndex, Metric, npy};
use ragtune_tests::fuzz::{CountingAlloc, file, fuzz, mutate};
use rand::Rng;
use sha2::{Digest, Sha256};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Vectors (f32) and ids (i64) files, each read as what it holds: a mutated file must give an
/// error or a value either way.
#[test]
fn fuzz_npy() {
    let (vectors, ids) = (temp_path("fuzz-v.npy"), temp_path("fuzz-i.npy"));
    npy::write_f32(&vectors, &[10, 4], &random_rows(&mut rng(1), 10, 4)).unwrap();
    npy::write_i64(&ids, &[10], &(0..10).collect::<Vec<_>>()).unwrap();
    let originals = [std::fs::read(&vectors).unwrap(), std::fs::read(&ids).unwrap()];
    fuzz(
        "npy",
        17,
        |rng| {
            let which = rng.random_range(0..2);
            file(["v.npy", "i.npy"][which], mutate::bytes(rng, &originals[which], 128))
        },
        |dir| match dir.join("v.npy").exists() {
            true => npy::read_vectors(dir.join("v.npy")).map(drop),
            false => npy::read_ids(dir.join("i.npy")).map(drop),
        },
    );
}

fn fuzz_index(kind: &str, seed: u64, index: AnyIndex, dim: usize, rows: &[f32]) {
    let path = temp_path(&format!("fuzz-{kind}.rtx"));
    index.save(&path).unwrap();
    let original = std::fs::read(&path).unwrap();
    let q = tensor(&rows[..dim], dim);
    fuzz(
        &format!("index-{kind}"),
        seed,
        |rng| {
            let mut bytes = mutate::bytes(rng, &original, 64);
            if rng.random() && bytes.len() >= 32 {
                let body = bytes.len() - 32;
                let digest = Sha256::digest(&bytes[..body]);
                bytes[body..].copy_from_slice(&digest);
            }
            file("i.rtx", bytes)
        },
        |dir| AnyIndex::load(dir.join("i.rtx"), &Device::Cpu)?.search(&q, usize::MAX, None, None),
    );
}

#[test]
fn fuzz_index_flat() {
    let (n, dim) = (64, 4);
    let (_, rows, ids) = seeded_rows(2, n, dim);
    let flat = flat_index(&rows, dim, &ids, Metric::L2, DType::F16);
    fuzz_index("flat", 18, AnyIndex::Flat(flat), dim, &rows);
}

#[test]
fn fuzz_index_ivf() {
    let (n, dim) = (64, 4);
    let (_, rows, ids) = seeded_rows(3, n, dim);
    let ivf = ivf_index(&rows, dim, &ids, Metric::Cosine, DType::F32, 4);
    fuzz_index("ivf", 18, AnyIndex::Ivf(ivf), dim, &rows);
}
