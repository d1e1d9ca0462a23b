//! Save/load round trips for both kinds and every dtype; truncated, corrupted and foreign files
//! get errors naming the file; a failed save leaves no file behind.

mod common;

use common::*;
use ragtune_compute::{DType, Device};
use ragtune_index::{AnyIndex, FlatIndex, IndexError, IvfFlatIndex, IvfParams, Kind, Metric, file};

#[test]
fn flat_round_trip_every_metric_and_dtype() {
    let (n, dim) = (333, 12);
    let mut r = rng(20);
    let rows = random_rows(&mut r, n, dim);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 11 + 1).collect();
    let q = tensor(&random_rows(&mut r, 5, dim), dim);
    for metric in Metric::ALL {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let mut index = flat_index(&rows, dim, &ids, metric, dtype);
            index.remove(&[12, 23]).unwrap();
            let path = temp_path(&format!("flat-{metric}-{dtype}.rtx"));
            index.save(&path).unwrap();
            let loaded = FlatIndex::load(&path, &Device::Cpu).unwrap();
            assert_eq!((loaded.metric(), loaded.dtype(), loaded.dim()), (metric, dtype, dim));
            assert_eq!(loaded.ids(), index.ids());
            assert_eq!(loaded.search(&q, 17, None).unwrap(), index.search(&q, 17, None).unwrap());
            let any = AnyIndex::load(&path, &Device::Cpu).unwrap();
            assert_eq!(any.kind(), Kind::Flat);
            assert!(matches!(IvfFlatIndex::load(&path, &Device::Cpu), Err(IndexError::File { .. })));
        }
    }
}

#[test]
fn ivf_round_trip_keeps_lists_centroids_and_nprobe() {
    let (n, dim) = (2000, 16);
    let (rows, queries, ids) = seeded_clusters(21, n, 20, dim, 12);
    let mut p = IvfParams::new(16);
    p.nprobe = 3;
    let mut index =
        IvfFlatIndex::build(&tensor(&rows, dim), &ids, Metric::L2, DType::F16, &Device::Cpu, p).unwrap();
    index.remove(&[5, 6, 7]).unwrap();
    let path = temp_path("ivf.rtx");
    index.save(&path).unwrap();
    let loaded = IvfFlatIndex::load(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.list_sizes(), index.list_sizes());
    assert_eq!(loaded.centroids(), index.centroids());
    assert_eq!(loaded.nprobe(), 3);
    let q = tensor(&queries, dim);
    assert_eq!(loaded.search(&q, 10, None).unwrap(), index.search(&q, 10, None).unwrap());
    let info = file::info(&path).unwrap();
    assert_eq!((info.kind, info.count, info.nlist, info.dim), (Kind::IvfFlat, n - 3, 16, dim));
    // A loaded index keeps working: add and remove.
    let mut loaded = loaded;
    loaded.add(&tensor(&rows[..dim], dim), &[5]).unwrap();
    assert_eq!(loaded.len(), n - 2);
}

fn saved_flat(name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let mut index = FlatIndex::new(8, Metric::InnerProduct, DType::F32, &Device::Cpu).unwrap();
    index.add(&tensor(&random_rows(&mut rng(22), 50, 8), 8), &(0..50).collect::<Vec<u64>>()).unwrap();
    let path = temp_path(name);
    index.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn truncated_corrupt_and_foreign_files_are_refused_naming_the_file() {
    let (path, bytes) = saved_flat("damaged.rtx");
    let name = path.display().to_string();
    for cut in [bytes.len() - 1, bytes.len() / 2, 60, 9] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = FlatIndex::load(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("truncated"), "cut at {cut}: {e}");
    }
    for at in [13, 20, 100, bytes.len() - 40, bytes.len() - 3] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let e = FlatIndex::load(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(&name) && (e.contains("corrupt") || e.contains("truncated")), "flip at {at}: {e}");
    }
    std::fs::write(&path, b"hello, this is not an index at all, not even close......................")
        .unwrap();
    let e = FlatIndex::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("not a ragtune index file"), "{e}");
    let mut newer = bytes.clone();
    newer[8] = 9;
    std::fs::write(&path, &newer).unwrap();
    let e = FlatIndex::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("version 9"), "{e}");
    let missing = temp_path("missing.rtx");
    let e = FlatIndex::load(&missing, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("missing.rtx"), "{e}");
}

#[test]
fn save_is_atomic_and_a_failed_save_leaves_nothing() {
    let (path, bytes) = saved_flat("atomic.rtx");
    // Saving again over the file replaces it whole; no temporary files stay behind.
    let index = FlatIndex::load(&path, &Device::Cpu).unwrap();
    index.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let dir = path.parent().unwrap();
    // Only this file's temporaries (`.atomic.rtx.ragtune-tmp.*`): other tests save into the same folder
    // at the same time.
    assert!(
        std::fs::read_dir(dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".atomic.rtx.ragtune-tmp."))
    );
    // Into a folder that does not exist: an error naming the path, and no file.
    let bad = dir.join("no-such-dir").join("x.rtx");
    let e = index.save(&bad).unwrap_err();
    assert!(matches!(e, IndexError::Io { .. }) && e.to_string().contains("no-such-dir"), "{e}");
    assert!(!bad.exists());
}

/// A version-1 IVF file written byte by byte from the format table of `file.rs` (as any earlier
/// build wrote it: lists one after another, ids ascending within a list) loads, searches its
/// lists, and saves back to the same bytes.
#[test]
fn a_hand_written_ivf_file_loads_and_saves_back_byte_for_byte() {
    use sha2::{Digest, Sha256};
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RAGTIDX\0");
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&[1, 0, 0, 0]); // IVF, ip, f32, reserved
    for v in [2u64, 3, 2, 2, 2, 1] {
        // dim, count, nlist, nprobe, then the list sizes 2 and 1
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1f32, 0.0, 0.0, 1.0] {
        bytes.extend_from_slice(&v.to_le_bytes()); // centroids
    }
    for id in [5u64, 9, 7] {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    for v in [1f32, 0.0, 2.0, 0.5, 0.0, 3.0] {
        bytes.extend_from_slice(&v.to_le_bytes()); // ids 5 and 9 in list 0, id 7 in list 1
    }
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    let path = temp_path("hand.rtx");
    std::fs::write(&path, &bytes).unwrap();
    let index = IvfFlatIndex::load(&path, &Device::Cpu).unwrap();
    assert_eq!(index.list_sizes(), vec![2, 1]);
    let q = tensor(&[1.0, 1.0], 2);
    let hits = index.search(&q, 3, None).unwrap();
    assert_eq!((hits[0].ids.clone(), hits[0].scores.clone()), (vec![7, 9, 5], vec![3.0, 2.5, 1.0]));
    let again = temp_path("hand-again.rtx");
    index.save(&again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), bytes, "save must write what an earlier build wrote");
}
