//! Issue 17: sizes a user passes (k, nlist, nprobe) never panic or allocate by the request, and
//! garbage stored in a file (NaN vectors, an IVF nprobe of 0) is refused on load, naming the file
//! and the row.

mod common;

use common::*;
use ragtune_compute::{DType, Device};
use ragtune_index::{AnyIndex, FlatIndex, IvfFlatIndex, IvfParams, Metric, npy};
use sha2::{Digest, Sha256};

/// Rewrite the trailing SHA-256 so a deliberately edited file passes the checksum.
fn rehash(bytes: &mut [u8]) {
    let body = bytes.len() - 32;
    let digest = Sha256::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(&digest);
}

#[test]
fn a_huge_k_is_clamped_to_the_index_size_for_every_metric_and_kind() {
    let (n, dim) = (200, 8);
    let (mut r, rows, ids) = seeded_rows(170, n, dim);
    let q = tensor(&random_rows(&mut r, 3, dim), dim);
    for metric in Metric::ALL {
        let flat = flat_index(&rows, dim, &ids, metric, DType::F32);
        let ivf = ivf_index(&rows, dim, &ids, metric, DType::F32, 8);
        let exact = flat.search(&q, n, None).unwrap();
        let ivf_all = ivf.search_nprobe(&q, n, 8, None).unwrap();
        for k in [usize::MAX, i64::MAX as usize, 1_000_000_000, n + 1] {
            assert_eq!(flat.search(&q, k, None).unwrap(), exact, "{metric} k {k}");
            let found = ivf.search_nprobe(&q, k, usize::MAX, None).unwrap();
            assert_eq!(found, ivf_all, "{metric} ivf k {k}");
        }
    }
}

#[test]
fn a_huge_nlist_is_refused_by_training_before_anything_is_sized_by_it() {
    let (n, dim) = (200, 4);
    let rows = random_rows(&mut rng(171), n, dim);
    for nlist in [usize::MAX, 1_000_000, n + 1] {
        let mut index =
            IvfFlatIndex::new(dim, Metric::L2, DType::F32, &Device::Cpu, IvfParams::new(nlist)).unwrap();
        let e = index.train(&tensor(&rows, dim)).unwrap_err().to_string();
        assert!(e.contains(&format!("{n} training vectors cannot make {nlist} lists")), "{e}");
        assert!(!index.is_trained());
    }
}

#[test]
fn nprobe_zero_is_refused_for_both_kinds() {
    let dim = 4;
    let (_, rows, ids) = seeded_rows(172, 50, dim);
    let flat = flat_index(&rows, dim, &ids, Metric::L2, DType::F32);
    let any = AnyIndex::Flat(flat);
    let e = any.search(&tensor(&rows[..dim], dim), 3, Some(0), None).unwrap_err().to_string();
    assert!(e.contains("nprobe"), "{e}");
    assert!(any.search(&tensor(&rows[..dim], dim), 3, Some(2), None).is_ok());
}

#[test]
fn a_file_whose_vectors_hold_nan_or_inf_is_refused_naming_file_and_row() {
    let (n, dim) = (20, 4);
    for (dtype, bad) in [
        (DType::F32, f32::NAN.to_le_bytes().to_vec()),
        (DType::F32, f32::INFINITY.to_le_bytes().to_vec()),
        (DType::F16, half::f16::NAN.to_le_bytes().to_vec()),
        (DType::BF16, half::bf16::NEG_INFINITY.to_le_bytes().to_vec()),
    ] {
        let mut index = FlatIndex::new(dim, Metric::L2, dtype, &Device::Cpu).unwrap();
        index
            .add(
                &tensor(&random_rows(&mut rng(173), n, dim), dim),
                &(100..100 + n as u64).collect::<Vec<_>>(),
            )
            .unwrap();
        let path = temp_path(&format!("nan-{dtype}.rtx"));
        index.save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Row 7, column 2: vectors start after the header, one list size and the ids.
        let at = 48 + 8 + 8 * n + (7 * dim + 2) * dtype.size();
        bytes[at..at + bad.len()].copy_from_slice(&bad);
        rehash(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let e = AnyIndex::load(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("row 7 (id 107)") && e.contains("column 2"),
            "{dtype}: {e}"
        );
    }
}

#[test]
fn an_ivf_file_with_nprobe_zero_is_refused() {
    let (n, dim) = (100, 4);
    let (_, rows, ids) = seeded_rows(174, n, dim);
    let index = ivf_index(&rows, dim, &ids, Metric::L2, DType::F32, 4);
    let path = temp_path("nprobe0.rtx");
    index.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40..48].copy_from_slice(&0u64.to_le_bytes());
    rehash(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let e = AnyIndex::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()) && e.contains("nprobe 0"), "{e}");
}

#[test]
fn vectors_of_dimension_zero_are_refused_naming_the_file() {
    let path = temp_path("dim0.npy");
    npy::write_f32(&path, &[200, 0], &[]).unwrap();
    let e = npy::read_vectors(&path).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()) && e.contains("[200, 0]"), "{e}");
}
