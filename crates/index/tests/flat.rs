//! FlatIndex against an f64 brute-force reference: every metric and dtype, awkward sizes,
//! k = 1 and k > n, duplicate vectors (ties by id), adds out of id order, removes, filters.

mod common;

use common::*;
use ragtune_compute::{DType, Device};
use ragtune_index::{Filter, FlatIndex, IdBitmap, Metric};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

#[test]
fn flat_matches_the_f64_reference_for_every_metric_and_dtype() {
    // n and dim are not multiples of any tile size; ids are sparse and added out of order.
    let (n, dim, nq) = (1037, 23, 9);
    let mut r = rng(1);
    let rows = random_rows(&mut r, n, dim);
    let ids: Vec<u64> = (0..n as u64).map(|i| (i * 7919) % 100_003 + 5).collect();
    let queries = random_rows(&mut r, nq, dim);
    for metric in Metric::ALL {
        for dtype in DTYPES {
            let mut index = FlatIndex::new(dim, metric, dtype, &Device::Cpu).unwrap();
            // Two adds whose ids interleave: exercises the merge path.
            let half = n / 2;
            index.add(&tensor(&rows[half * dim..], dim), &ids[half..]).unwrap();
            index.add(&tensor(&rows[..half * dim], dim), &ids[..half]).unwrap();
            assert_eq!(index.len(), n);
            let base = held(&rows, dim, metric, dtype);
            let qs = held(&queries, dim, metric, dtype);
            for k in [1, 10, 100, n + 5] {
                let got = index.search(&tensor(&queries, dim), k, None).unwrap();
                assert_eq!(got.len(), nq);
                for (qi, res) in got.iter().enumerate() {
                    let refs = all_scores(metric, &qs[qi * dim..(qi + 1) * dim], &base, &ids, dim);
                    check(&format!("{metric} {dtype} k={k} q{qi}"), metric, res, refs, k, tolerance(dtype));
                }
            }
        }
    }
}

#[test]
fn duplicate_vectors_tie_by_the_smaller_id() {
    let dim = 5;
    let v = [0.3f32, -0.2, 0.9, 0.1, 0.4];
    for metric in Metric::ALL {
        for dtype in DTYPES {
            let mut index = FlatIndex::new(dim, metric, dtype, &Device::Cpu).unwrap();
            let rows: Vec<f32> = v.repeat(6);
            // Ids in no particular order, in two adds, so rows are merged.
            index.add(&tensor(&rows[..3 * dim], dim), &[42, 7, 19]).unwrap();
            index.add(&tensor(&rows[3 * dim..], dim), &[3, 100, 8]).unwrap();
            let got = index.search(&tensor(&v, dim), 4, None).unwrap();
            assert_eq!(got[0].ids, vec![3, 7, 8, 19], "{metric} {dtype}");
            assert!(got[0].scores.windows(2).all(|w| w[0] == w[1]));
        }
    }
}

#[test]
fn filters_are_applied_inside_the_search() {
    let (n, dim) = (300, 16);
    let mut r = rng(2);
    let rows = random_rows(&mut r, n, dim);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 3).collect();
    let queries = random_rows(&mut r, 4, dim);
    for metric in Metric::ALL {
        let index = flat_index(&rows, dim, &ids, metric, DType::F32);
        let base = held(&rows, dim, metric, DType::F32);
        let qs = held(&queries, dim, metric, DType::F32);
        // Every 10th id, plus ids the index does not hold (never returned).
        let allow: Vec<u64> = ids.iter().copied().filter(|id| id % 30 == 0).chain([1, 2, 4]).collect();
        let bitmap = IdBitmap::from_ids(&allow);
        for filter in [Filter::Ids(&allow), Filter::Bitmap(&bitmap)] {
            for k in [1, 5, 10, 50] {
                let got = index.search(&tensor(&queries, dim), k, Some(&filter)).unwrap();
                for (qi, res) in got.iter().enumerate() {
                    let refs: Vec<_> = all_scores(metric, &qs[qi * dim..(qi + 1) * dim], &base, &ids, dim)
                        .into_iter()
                        .filter(|(_, id)| id % 30 == 0)
                        .collect();
                    check(&format!("{metric} {filter:?} k={k}"), metric, res, refs, k, 1e-4);
                }
            }
        }
        // A filter that leaves fewer than k, and one that leaves nothing.
        let got = index.search(&tensor(&queries, dim), 10, Some(&Filter::Ids(&[0, 3]))).unwrap();
        assert!(got.iter().all(|r| r.ids.len() == 2));
        let got = index.search(&tensor(&queries, dim), 10, Some(&Filter::Ids(&[1]))).unwrap();
        assert!(got.iter().all(|r| r.is_empty()));
    }
}

#[test]
fn remove_then_search_matches_the_reference() {
    let (n, dim) = (200, 8);
    let (mut r, rows, ids) = seeded_rows(3, n, dim);
    let mut index = flat_index(&rows, dim, &ids, Metric::L2, DType::F32);
    let gone: Vec<u64> = ids.iter().copied().filter(|i| i % 3 == 1).chain([4, 4]).collect();
    let removed = index.remove(&gone).unwrap();
    assert_eq!(removed, gone.len() - 2);
    assert_eq!(index.len(), n - removed);
    assert!(!index.contains(1) && index.contains(0));
    let q = random_rows(&mut r, 1, dim);
    let base = held(&rows, dim, Metric::L2, DType::F32);
    let refs: Vec<_> = all_scores(Metric::L2, &held(&q, dim, Metric::L2, DType::F32), &base, &ids, dim)
        .into_iter()
        .filter(|(_, id)| !gone.contains(id))
        .collect();
    let got = index.search(&tensor(&q, dim), 20, None).unwrap();
    check("after remove", Metric::L2, &got[0], refs, 20, 1e-4);
    // Removing everything leaves an empty index that still searches.
    let rest = index.ids().to_vec();
    index.remove(&rest).unwrap();
    assert!(index.is_empty());
    assert!(index.search(&tensor(&q, dim), 3, None).unwrap()[0].is_empty());
}

#[test]
fn empty_index_and_empty_batches() {
    let index = FlatIndex::new(4, Metric::InnerProduct, DType::F32, &Device::Cpu).unwrap();
    let got = index.search(&tensor(&[1.0, 2.0, 3.0, 4.0], 4), 5, None).unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].is_empty());
    let none = ragtune_compute::Tensor::from_slice::<f32>(&[], &[0, 4]).unwrap();
    assert!(index.search(&none, 5, None).unwrap().is_empty());
    let mut index = index;
    index.add(&none, &[]).unwrap();
    assert!(index.is_empty());
}
