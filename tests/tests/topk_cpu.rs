//! The CPU side of the search ops (`topk_similarity`, `topk_ivf`, `l2_normalize`, `kmeans_assign`,
//! `kmeans_update`) against brute-force f64 references: exact rows and ties on integer data,
//! near-equal scores on random data, and clear errors on bad input.

use ragtune_compute::ops::{self, Similarity, TopkSpec};
use ragtune_compute::{ComputeError, DType, Tensor};
use ragtune_tests::{
    assert_close, bitmap_tensor, ivf_case, random_tensor, reference, rng, search_case, tolerance,
};
use rand::Rng;

const SIMS: [Similarity; 2] = [Similarity::Dot, Similarity::L2];

/// (nq, n, d, k): n not a multiple of any block (1024 rows, 128 queries), k = 1, k > n, large k,
/// many query blocks, a single query (the base split across threads).
const CASES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (5, 37, 16, 1),
    (3, 20, 9, 50),
    (130, 1500, 24, 10),
    (1, 2500, 33, 7),
    (4, 3001, 12, 2000),
    (2, 5000, 8, 100),
];

fn search(q: &Tensor, b: &Tensor, k: usize, sim: Similarity, allow: Option<&Tensor>) -> (Vec<i32>, Vec<f32>) {
    let r = ops::topk_similarity(q, b, TopkSpec { k, similarity: sim }, allow).unwrap();
    let kk = k.min(b.shape()[0]);
    assert_eq!(r.rows.shape(), &[q.shape()[0], kk]);
    assert_eq!(r.scores.shape(), &[q.shape()[0], kk]);
    (r.rows.to_vec::<i32>().unwrap(), r.scores.to_vec::<f32>().unwrap())
}

/// One unfiltered search: the dtype, the case `(nq, n, d, k)`, the similarity, the f64 operands,
/// the reference's `(row, score)`s per query and the op's rows and scores.
struct Run<'a> {
    dtype: DType,
    case: (usize, usize, usize, usize),
    sim: Similarity,
    qv: &'a [f64],
    bv: &'a [f64],
    want: Vec<Vec<(i64, f64)>>,
    rows: Vec<i32>,
    scores: Vec<f32>,
}

/// Searches every dtype × `CASES` × similarity on fresh operands from `seed` (integer-valued when
/// `integer`) and hands each run to `check`.
fn each_unfiltered_run(seed: u64, integer: bool, mut check: impl FnMut(Run<'_>)) {
    let mut rng = rng(seed);
    for dtype in DType::FLOATS {
        for &(nq, n, d, k) in CASES {
            let (q, b, qv, bv) = search_case(&mut rng, nq, n, d, dtype, integer);
            for sim in SIMS {
                let want = reference::topk(&qv, &bv, d, k, sim == Similarity::L2, None);
                let (rows, scores) = search(&q, &b, k, sim, None);
                check(Run { dtype, case: (nq, n, d, k), sim, qv: &qv, bv: &bv, want, rows, scores });
            }
        }
    }
}

#[test]
fn integer_data_gives_exact_rows_ties_and_scores() {
    each_unfiltered_run(301, true, |Run { dtype, case: (nq, n, d, k), sim, want, rows, scores, .. }| {
        let kk = k.min(n);
        for i in 0..nq {
            for j in 0..kk {
                let (r, s) = want[i][j];
                assert_eq!(
                    (rows[i * kk + j] as i64, scores[i * kk + j] as f64),
                    (r, s),
                    "{dtype} {sim:?} nq={nq} n={n} d={d} k={k}: query {i} rank {j}"
                );
            }
        }
    });
}

#[test]
fn filters_apply_inside_the_search_and_pad_the_tail() {
    let mut rng = rng(302);
    for dtype in DType::FLOATS {
        for (n, density) in [(100usize, 0.5f64), (2100, 0.003), (3000, 0.0), (64, 1.0)] {
            let (nq, d, k) = (6, 10, 20);
            let (q, b, qv, bv) = search_case(&mut rng, nq, n, d, dtype, true);
            let allow: Vec<bool> = (0..n).map(|_| rng.random_bool(density)).collect();
            for sim in SIMS {
                let want = reference::topk(&qv, &bv, d, k, sim == Similarity::L2, Some(&allow));
                let (rows, scores) = search(&q, &b, k, sim, Some(&bitmap_tensor(&allow)));
                let got: Vec<(i64, f64)> =
                    rows.iter().zip(&scores).map(|(&r, &s)| (r as i64, s as f64)).collect();
                let want: Vec<(i64, f64)> = want.into_iter().flatten().collect();
                assert_eq!(got, want, "{dtype} {sim:?} n={n} density={density}");
            }
        }
    }
}

/// `topk_ivf` against the f64 brute force over each query's probed lists (a per-query allow
/// mask: in a probed list and, when filtered, allowed): exact rows, ties and scores on integer
/// data, with empty lists, one-row lists, −1 probes, k beyond the probed rows.
#[test]
fn ivf_search_matches_brute_force_over_the_probed_lists() {
    let mut rng = rng(306);
    let cases: &[(&[usize], usize, usize)] =
        &[(&[0, 1, 300, 7, 40, 0, 529], 7, 24), (&[5], 3, 9), (&[0, 700, 1, 260, 33], 5, 17)];
    for dtype in DType::FLOATS {
        for &(sizes, nq, d) in cases {
            let n: usize = sizes.iter().sum();
            let (q, b, qv, bv) = search_case(&mut rng, nq, n, d, dtype, true);
            for nprobe in [1, sizes.len().min(3)] {
                let (offsets, probes, ov, pv) = ivf_case(&mut rng, sizes, nq, nprobe);
                let filter: Vec<bool> = (0..n).map(|r| r % 5 != 2).collect();
                for (k, sim, filtered) in
                    [(1, SIMS[0], false), (10, SIMS[1], true), (600, SIMS[0], true), (40, SIMS[1], false)]
                {
                    let allow = bitmap_tensor(&filter);
                    let r = ops::topk_ivf(
                        &q,
                        &b,
                        &offsets,
                        &probes,
                        TopkSpec { k, similarity: sim },
                        filtered.then_some(&allow),
                    )
                    .unwrap();
                    let kk = k.min(n);
                    assert_eq!(r.rows.shape(), &[nq, kk]);
                    let (rows, scores) = (r.rows.to_vec::<i32>().unwrap(), r.scores.to_vec::<f32>().unwrap());
                    for i in 0..nq {
                        let mut mask = vec![false; n];
                        for &l in pv[i * nprobe..(i + 1) * nprobe].iter().filter(|&&l| l >= 0) {
                            for row in ov[l as usize] as usize..ov[l as usize + 1] as usize {
                                mask[row] = !filtered || filter[row];
                            }
                        }
                        let want = reference::topk(
                            &qv[i * d..(i + 1) * d],
                            &bv,
                            d,
                            k,
                            sim == Similarity::L2,
                            Some(&mask),
                        );
                        let got: Vec<(i64, f64)> =
                            (i * kk..(i + 1) * kk).map(|j| (rows[j] as i64, scores[j] as f64)).collect();
                        assert_eq!(
                            got, want[0],
                            "{dtype} {sim:?} sizes={sizes:?} nprobe={nprobe} k={k} filtered={filtered}: query {i}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn ivf_bad_input_gets_a_clear_error() {
    let q = Tensor::from_slice(&[1f32, 2.0], &[1, 2]).unwrap();
    let b = Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let spec = TopkSpec { k: 1, similarity: Similarity::Dot };
    let offs = |v: &[i32]| Tensor::from_slice(v, &[v.len()]).unwrap();
    let probes = Tensor::from_slice(&[0i32], &[1, 1]).unwrap();
    let err = |o: &Tensor, p: &Tensor| ops::topk_ivf(&q, &b, o, p, spec, None).unwrap_err().to_string();
    assert!(
        err(&offs(&[0, 3]), &probes).contains("list_offsets must rise from 0"),
        "{}",
        err(&offs(&[0, 3]), &probes)
    );
    assert!(err(&offs(&[0, 2, 1, 2]), &probes).contains("list_offsets"));
    assert!(
        err(&Tensor::from_slice(&[0f32, 2.0], &[2]).unwrap(), &probes).contains("list_offsets [2] of f32")
    );
    let bad_probes = Tensor::from_slice(&[0i32, 1], &[2, 1]).unwrap();
    assert!(err(&offs(&[0, 2]), &bad_probes).contains("probes [2, 1]"));
    let no_probes = Tensor::from_slice::<i32>(&[], &[1, 0]).unwrap();
    assert!(err(&offs(&[0, 2]), &no_probes).contains("nprobe >= 1"));
}

#[test]
fn random_data_scores_match_the_f64_reference() {
    each_unfiltered_run(303, false, |Run { dtype, case: (nq, n, d, k), sim, qv, bv, want, rows, scores }| {
        let want_scores: Vec<f64> = want.iter().flatten().map(|&(_, s)| s).collect();
        let what = format!("{dtype} {sim:?} nq={nq} n={n} d={d} k={k}");
        // Operands were rounded to `dtype` before the reference saw them: f32 accuracy.
        assert_close(&what, &scores, &want_scores, tolerance(DType::F32, true));
        // Every returned row really has the score reported for it.
        let kk = k.min(n);
        let exact: Vec<f64> = rows
            .iter()
            .enumerate()
            .map(|(idx, &r)| {
                let (i, r) = (idx / kk, r as usize);
                let (qi, br) = (&qv[i * d..(i + 1) * d], &bv[r * d..(r + 1) * d]);
                match sim {
                    Similarity::Dot => qi.iter().zip(br).map(|(x, y)| x * y).sum(),
                    Similarity::L2 => qi.iter().zip(br).map(|(x, y)| (x - y) * (x - y)).sum(),
                }
            })
            .collect();
        assert_close(&format!("{what} (rows)"), &scores, &exact, tolerance(DType::F32, true));
    });
}

#[test]
fn empty_inputs_give_empty_results() {
    let q = Tensor::from_slice::<f32>(&[], &[0, 4]).unwrap();
    let b = Tensor::from_slice(&[1.0f32; 12], &[3, 4]).unwrap();
    let (rows, _) = search(&q, &b, 5, Similarity::Dot, None);
    assert!(rows.is_empty());
    let empty_base = Tensor::from_slice::<f32>(&[], &[0, 4]).unwrap();
    let q2 = Tensor::from_slice(&[1.0f32; 8], &[2, 4]).unwrap();
    let r =
        ops::topk_similarity(&q2, &empty_base, TopkSpec { k: 3, similarity: Similarity::L2 }, None).unwrap();
    assert_eq!(r.rows.shape(), &[2, 0]);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let q = Tensor::from_slice(&[1.0f32; 8], &[2, 4]).unwrap();
    let b = Tensor::from_slice(&[1.0f32; 40], &[10, 4]).unwrap();
    let spec = TopkSpec { k: 3, similarity: Similarity::Dot };
    let err = |r: Result<ops::TopkResult, ComputeError>| r.unwrap_err().to_string();
    assert!(err(ops::topk_similarity(&q, &b, TopkSpec { k: 0, ..spec }, None)).contains("k = 0"));
    let b5 = Tensor::from_slice(&[1.0f32; 50], &[10, 5]).unwrap();
    assert!(err(ops::topk_similarity(&q, &b5, spec, None)).contains("[10, 5]"));
    let b16 = ops::cast(&b, DType::BF16).unwrap();
    assert!(err(ops::topk_similarity(&q, &b16, spec, None)).contains("bf16"));
    let wrong_words = Tensor::from_slice(&[1u32, 2], &[2]).unwrap();
    assert!(err(ops::topk_similarity(&q, &b, spec, Some(&wrong_words))).contains("u32 [1]"));
    let ints = Tensor::from_slice(&[1i32; 8], &[2, 4]).unwrap();
    assert!(ops::topk_similarity(&ints, &ints, spec, None).is_err());
    let flat = Tensor::from_slice(&[1.0f32; 4], &[4]).unwrap();
    assert!(err(ops::topk_similarity(&flat, &b, spec, None)).contains("2-D"));
    assert!(ops::kmeans_assign(&q, &Tensor::from_slice::<f32>(&[], &[0, 4]).unwrap()).is_err());
    let bad_assign = Tensor::from_slice(&[0i32; 3], &[3]).unwrap();
    assert!(ops::kmeans_update(&q, &bad_assign, &b).unwrap_err().to_string().contains("i32 [2]"));
}

#[test]
fn l2_normalize_gives_unit_rows_and_keeps_zero_rows() {
    let mut rng = rng(304);
    for dtype in DType::FLOATS {
        let (x, xv) = random_tensor(&mut rng, &[7, 33], dtype, 3.0);
        let y = ops::l2_normalize(&x).unwrap();
        assert_eq!(y.dtype(), dtype);
        let want: Vec<f64> = xv
            .chunks(33)
            .flat_map(|r| {
                let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                r.iter().map(move |v| v / norm)
            })
            .collect();
        assert_close(
            &format!("l2_normalize {dtype}"),
            &y.to_vec_f32().unwrap(),
            &want,
            tolerance(dtype, true),
        );
    }
    let zeros = Tensor::from_slice(&[0.0f32; 6], &[2, 3]).unwrap();
    assert_eq!(ops::l2_normalize(&zeros).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 6]);
}

#[test]
fn kmeans_assign_picks_the_nearest_centroid_with_ties_to_the_smaller_index() {
    let mut rng = rng(305);
    for dtype in DType::FLOATS {
        // Centroids repeat (every 7th), points copy centroids: plenty of exact ties.
        let (p, c, pv, cv) = search_case(&mut rng, 1200, 40, 6, dtype, true);
        let (assign, dist) = ops::kmeans_assign(&p, &c).unwrap();
        let want = reference::topk(&pv, &cv, 6, 1, true, None);
        let got: Vec<(i64, f64)> = assign
            .to_vec::<i32>()
            .unwrap()
            .into_iter()
            .zip(dist.to_vec::<f32>().unwrap())
            .map(|(a, d)| (a as i64, d as f64))
            .collect();
        assert_eq!(got, want.into_iter().flatten().collect::<Vec<_>>(), "{dtype}");
    }
}

#[test]
fn kmeans_update_averages_clusters_and_keeps_empty_ones() {
    let mut rng = rng(306);
    for dtype in DType::FLOATS {
        let (n, c, d) = (5000, 9, 13);
        let (p, pv) = random_tensor(&mut rng, &[n, d], dtype, 2.0);
        let (old, oldv) = random_tensor(&mut rng, &[c, d], DType::F32, 2.0);
        // Cluster 4 gets no points; some points are unassigned (−1).
        let assign: Vec<i32> =
            (0..n).map(|_| [-1, 0, 1, 2, 3, 5, 6, 7, 8][rng.random_range(0..9usize)]).collect();
        let at = Tensor::from_slice(&assign, &[n]).unwrap();
        let (cent, counts) = ops::kmeans_update(&p, &at, &old).unwrap();
        let (want, want_counts) = reference::kmeans_update(&pv, &assign, &oldv, d);
        assert_eq!(counts.to_vec::<i32>().unwrap(), want_counts);
        assert_eq!(cent.dtype(), DType::F32);
        let got = cent.to_vec::<f32>().unwrap();
        assert_close(&format!("kmeans_update {dtype}"), &got, &want, tolerance(DType::F32, true));
        assert_eq!(&got[4 * d..5 * d], &old.to_vec::<f32>().unwrap()[4 * d..5 * d]);
    }
}
