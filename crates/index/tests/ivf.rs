//! IvfFlatIndex: recall@10 against the exact FlatIndex on a clustered set at the documented
//! nprobe, exactness when every list is probed, filters, removes, and adds after training.

mod common;

use common::*;
use ragtune_compute::{DType, Device};
use ragtune_index::{Filter, FlatIndex, IdBitmap, IvfFlatIndex, IvfParams, Metric, SearchResult};

fn recall(got: &[SearchResult], exact: &[SearchResult]) -> f64 {
    let hit: usize =
        got.iter().zip(exact).map(|(g, e)| g.ids.iter().filter(|id| e.ids.contains(id)).count()).sum();
    hit as f64 / exact.iter().map(|e| e.ids.len()).sum::<usize>() as f64
}

/// The documented point (crate docs, README): nlist = 64, nprobe = nlist / 8 = 8 on 40 blobs.
#[test]
fn recall_at_10_is_at_least_0_95_at_the_documented_nprobe() {
    let (n, dim, nq) = (20_000, 32, 200);
    let mut r = rng(30);
    let (rows, queries) = clustered(&mut r, n, nq, dim, 40, SIGMA);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 2 + 1).collect();
    let (base, q) = (tensor(&rows, dim), tensor(&queries, dim));
    for metric in Metric::ALL {
        let mut flat = FlatIndex::new(dim, metric, DType::F32, &Device::Cpu).unwrap();
        flat.add(&base, &ids).unwrap();
        let exact = flat.search(&q, 10, None).unwrap();
        let params = IvfParams::new(64);
        assert_eq!(params.nprobe, 8, "the documented default");
        let ivf = IvfFlatIndex::build(&base, &ids, metric, DType::F32, &Device::Cpu, params).unwrap();
        assert_eq!(ivf.len(), n);
        assert!(ivf.list_sizes().iter().all(|&s| s > 0), "no empty list: {:?}", ivf.list_sizes());
        let got = ivf.search(&q, 10, None).unwrap();
        let rec = recall(&got, &exact);
        assert!(rec >= 0.95, "{metric}: recall@10 {rec:.3} at nprobe 8");
        // Probing every list is exact.
        let all = ivf.search_nprobe(&q, 10, 64, None).unwrap();
        for (a, e) in all.iter().zip(&exact) {
            assert_eq!(a.ids, e.ids, "{metric}: nprobe = nlist must equal the flat search");
        }
    }
}

#[test]
fn every_list_probed_matches_the_reference_for_every_dtype() {
    let (n, dim) = (1500, 20);
    let mut r = rng(31);
    let (rows, queries) = clustered(&mut r, n, 7, dim, 9, SIGMA);
    let ids: Vec<u64> = (0..n as u64).rev().map(|i| i * 5).collect();
    for metric in Metric::ALL {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let ivf = ivf_index(&rows, dim, &ids, metric, dtype, 12);
            let base = held(&rows, dim, metric, dtype);
            let qs = held(&queries, dim, metric, dtype);
            for k in [1, 10, n + 3] {
                let got = ivf.search_nprobe(&tensor(&queries, dim), k, 12, None).unwrap();
                for (qi, res) in got.iter().enumerate() {
                    let refs = all_scores(metric, &qs[qi * dim..(qi + 1) * dim], &base, &ids, dim);
                    check(&format!("ivf {metric} {dtype} k={k}"), metric, res, refs, k, tolerance(dtype));
                }
            }
        }
    }
}

#[test]
fn filters_removes_and_later_adds() {
    let (n, dim) = (3000, 16);
    let (rows, queries, ids) = seeded_clusters(32, n, 5, dim, 10);
    let metric = Metric::L2;
    // Train on the first half, add both halves in separate calls (the second out of id order).
    let mut ivf = IvfFlatIndex::new(dim, metric, DType::F32, &Device::Cpu, IvfParams::new(10)).unwrap();
    ivf.train(&tensor(&rows[..n / 2 * dim], dim)).unwrap();
    ivf.add(&tensor(&rows[n / 2 * dim..], dim), &ids[n / 2..]).unwrap();
    ivf.add(&tensor(&rows[..n / 2 * dim], dim), &ids[..n / 2]).unwrap();
    let gone: Vec<u64> = (0..n as u64).filter(|i| i % 4 == 0).collect();
    assert_eq!(ivf.remove(&gone).unwrap(), gone.len());
    let base = held(&rows, dim, metric, DType::F32);
    let qs = held(&queries, dim, metric, DType::F32);
    let allow: Vec<u64> = (0..n as u64).filter(|i| i % 6 == 0 || i % 7 == 0).collect();
    let bitmap = IdBitmap::from_ids(&allow);
    for filter in [Filter::Ids(&allow), Filter::Bitmap(&bitmap)] {
        let got = ivf.search_nprobe(&tensor(&queries, dim), 25, 10, Some(&filter)).unwrap();
        for (qi, res) in got.iter().enumerate() {
            let refs: Vec<_> = all_scores(metric, &qs[qi * dim..(qi + 1) * dim], &base, &ids, dim)
                .into_iter()
                .filter(|(_, id)| id % 4 != 0 && (id % 6 == 0 || id % 7 == 0))
                .collect();
            check(&format!("ivf filter {filter:?}"), metric, res, refs, 25, 1e-4);
        }
    }
    // Only two allowed ids: fewer than k come back.
    let got = ivf.search_nprobe(&tensor(&queries, dim), 25, 10, Some(&Filter::Ids(&[1, 2]))).unwrap();
    assert!(got.iter().all(|r| r.ids == vec![1, 2] || r.ids == vec![2, 1]));
}

/// Ties across lists go to the smaller id, also at the cut of k: the packed store orders rows by
/// (list, id), so the search must not let the op's row tie-break decide. Rows tied at the k-th
/// score sit in both lists (one list around [1, 0], one around [0, 1]; the query [1, 1] scores
/// 1 against each unit vector).
#[test]
fn ties_across_lists_go_to_the_smaller_id_at_the_cut() {
    let rows = [1.0f32, 0.0, 0.8, 0.0, 0.0, 1.0, 0.0, 0.8, 0.5, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0];
    let ids = [50u64, 60, 10, 70, 80, 90, 40, 20];
    let mut p = IvfParams::new(2);
    p.nprobe = 2;
    let index =
        IvfFlatIndex::build(&tensor(&rows, 2), &ids, Metric::InnerProduct, DType::F32, &Device::Cpu, p)
            .unwrap();
    assert_eq!(index.list_sizes().iter().filter(|&&s| s > 0).count(), 2, "{:?}", index.list_sizes());
    let q = tensor(&[1.0, 1.0], 2);
    // Score 1: ids 50, 10, 40, 20 (two per list); then 0.8: 60, 70; then 0.5: 80, 90.
    for (k, want) in [(1, vec![10]), (2, vec![10, 20]), (3, vec![10, 20, 40]), (5, vec![10, 20, 40, 50, 60])]
    {
        let hits = index.search(&q, k, None).unwrap();
        assert_eq!(hits[0].ids, want, "k = {k}");
    }
}
