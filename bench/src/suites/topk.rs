//! `topk`: exact similarity search (`ops::topk_similarity`, what `FlatIndex` runs) against FAISS
//! `IndexFlatIP` (bench/faiss_flat.py, the pinned faiss-cpu wheel) on the same vectors with the
//! same thread count. The anchor: 100k × 384, 1,000 queries, k = 10 (~2,300 QPS for FAISS
//! on 2 cores). Checked first: the top-k of 16 queries against an f64 scan, and recall of every
//! query against NumPy's f64 top-k when the Python peer runs. A single query (bandwidth-bound)
//! is timed too.

use anyhow::{Context, Result, bail};
use ragtune_compute::cpu::topk_screen::Kernel;
use ragtune_compute::ops::{self, Similarity, TopkSpec};
use ragtune_compute::{DType, Tensor};
use ragtune_index::npy;

use super::Ctx;
use crate::harness::median_time;
use crate::report::Row;
use crate::{gemm_flops, random_tensor};

/// The k best rows of `base` for `query` by f64 dot product, ties to the smaller row.
pub fn exact_topk(base: &[f32], query: &[f32], d: usize, k: usize) -> Vec<i64> {
    let mut scored: Vec<(f64, i64)> = base
        .chunks_exact(d)
        .enumerate()
        .map(|(i, row)| (row.iter().zip(query).map(|(&a, &b)| a as f64 * b as f64).sum(), i as i64))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

/// The fraction of `want`'s ids found in `got`, row by row (`k` per row).
pub fn recall(got: &[i64], want: &[i64], k: usize) -> f64 {
    if want.is_empty() {
        return 1.0;
    }
    let hit: usize =
        got.chunks(k).zip(want.chunks(k)).map(|(g, w)| g.iter().filter(|i| w.contains(i)).count()).sum();
    hit as f64 / want.len() as f64
}

/// The rows `topk_similarity` returns for each query, flattened, as i64 (the type
/// [`exact_topk`] gives).
fn top_rows(queries: &Tensor, base: &Tensor, spec: TopkSpec) -> Result<Vec<i64>> {
    let rows = ops::topk_similarity(queries, base, spec, None)?.rows;
    Ok(rows.to_vec::<i32>()?.into_iter().map(i64::from).collect())
}

pub fn run(ctx: &Ctx, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    // The anchor size in both modes: it takes seconds even on 2 cores.
    let (n, d, nq, k) = (100_000, 384, 1000, 10);
    let base = random_tensor(11, &[n, d], DType::F32);
    let queries = random_tensor(12, &[nq, d], DType::F32);
    let spec = TopkSpec { k, similarity: Similarity::Dot };
    let (bv, qv) = (base.to_vec_f32()?, queries.to_vec_f32()?);

    let ids = top_rows(&queries, &base, spec)?;
    let checked = 16.min(nq);
    let want: Vec<i64> = (0..checked).flat_map(|q| exact_topk(&bv, &qv[q * d..(q + 1) * d], d, k)).collect();
    let r16 = recall(&ids[..checked * k], &want, k);
    if r16 < 0.99 {
        bail!(
            "topk_similarity {n}x{d} k={k}: recall@{k} of {checked} queries vs an f64 scan is {r16:.3}, not ~1; not timed"
        );
    }
    let mut check = format!("{checked} queries vs f64 scan: recall {r16:.3}");

    // FAISS on the same vectors, through files (removed afterwards: 150 MB at full size).
    let dir = ctx.scratch.join("topk");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (bp, qp) = (dir.join("base.npy"), dir.join("queries.npy"));
    npy::write_f32(&bp, &[n, d], &bv)?;
    npy::write_f32(&qp, &[nq, d], &qv)?;
    let p = |x: &std::path::Path| x.to_string_lossy().into_owned();
    let repeats = if ctx.quick { "5" } else { "10" };
    let faiss =
        ctx.python("faiss_flat.py", &[p(&bp), p(&qp), k.to_string(), p(&dir), repeats.to_string()], notes)?;
    let mut faiss_peer = None;
    if let Some(v) = &faiss {
        let qps = v["qps"].as_f64().context("faiss_flat.py printed no qps")?;
        let read =
            |f: &str| -> Result<Vec<i64>> { Ok(bytemuck::pod_collect_to_vec(&npy::read(dir.join(f))?.data)) };
        let exact = read("exact_ids.npy")?;
        let (ours_r, theirs_r) = (recall(&ids, &exact, k), recall(&read("faiss_ids.npy")?, &exact, k));
        if ours_r < 0.99 {
            bail!(
                "topk_similarity {n}x{d}: recall@{k} of all {nq} queries vs NumPy f64 is {ours_r:.4}; not timed"
            );
        }
        check += &format!("; all {nq} vs NumPy f64: recall {ours_r:.4} (FAISS {theirs_r:.4})");
        faiss_peer =
            Some((format!("FAISS {} IndexFlatIP", v["faiss"].as_str().unwrap_or("?")), nq as f64 / qps));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let (ours, reps) = median_time(ctx.budget, || {
        std::hint::black_box(ops::topk_similarity(&queries, &base, spec, None).expect("checked above"));
    });
    let bytes = 4.0 * ((n + nq) * d) as f64 + 8.0 * (nq * k) as f64;
    let mut row = Row::new(
        "topk",
        "flat dot",
        &format!("n={n} d={d} nq={nq} k={k} f32"),
        ours,
        reps,
        gemm_flops(nq, n, d) as f64,
        bytes,
        &ctx.ceilings,
    )?
    .with_check(check)
    .with_note(format!(
        "{:.0} QPS{}",
        nq as f64 / ours,
        match ragtune_compute::cpu::topk_screen::fast_kernel() {
            Some(Kernel::Avx512Bf16) => {
                "; exact answers through the bf16 screen (AVX512_BF16), so above the f32 FMA ceiling"
            }
            Some(Kernel::VnniInt8) => {
                "; exact answers through the int8 screen (AVX512-VNNI), so above the f32 FMA ceiling"
            }
            Some(_) => "; exact answers through the int8 screen (AVX2), so above the f32 FMA ceiling",
            None => "",
        }
    ));
    if let Some((name, t)) = faiss_peer {
        row = row.with_peer(&name, t);
    }

    // One query: every base vector read once for 2·n·d FLOPs — bandwidth-bound.
    let one = random_tensor(13, &[1, d], DType::F32);
    let got = top_rows(&one, &base, spec)?;
    let r1 = recall(&got, &exact_topk(&bv, &one.to_vec_f32()?, d, k), k);
    if r1 < 0.99 {
        bail!("topk_similarity 1 query: recall@{k} vs an f64 scan is {r1:.3}; not timed");
    }
    let (t1, reps1) = median_time(ctx.budget, || {
        std::hint::black_box(ops::topk_similarity(&one, &base, spec, None).expect("checked above"));
    });
    let single = Row::new(
        "topk",
        "flat dot, 1 query",
        &format!("n={n} d={d} nq=1 k={k} f32"),
        t1,
        reps1,
        gemm_flops(1, n, d) as f64,
        4.0 * (n * d) as f64,
        &ctx.ceilings,
    )?
    .with_check(format!("vs f64 scan: recall {r1:.3}"));
    Ok(vec![row, single])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_topk_and_recall_by_hand() {
        // Rows (d = 2): scores with q = (1, 0) are 0.5, 2, -1, 2 -> order 1, 3 (tie, smaller first), 0.
        let base = [0.5, 9.0, 2.0, 0.0, -1.0, 0.0, 2.0, 5.0];
        assert_eq!(exact_topk(&base, &[1.0, 0.0], 2, 3), [1, 3, 0]);
        assert_eq!(recall(&[1, 3, 0], &[1, 3, 0], 3), 1.0);
        assert!((recall(&[1, 2, 0, 5, 6, 7], &[1, 3, 0, 5, 6, 7], 3) - 5.0 / 6.0).abs() < 1e-12);
        // Recall is per row: an id of another row's answer does not count.
        assert_eq!(recall(&[5, 6, 7, 1, 3, 0], &[1, 3, 0, 5, 6, 7], 3), 0.0);
    }

    #[test]
    fn topk_similarity_agrees_with_the_f64_scan_at_a_small_size() {
        let (n, d, k) = (300, 16, 7);
        let base = random_tensor(1, &[n, d], DType::F32);
        let q = random_tensor(2, &[2, d], DType::F32);
        let spec = TopkSpec { k, similarity: Similarity::Dot };
        let got: Vec<i64> = ops::topk_similarity(&q, &base, spec, None)
            .unwrap()
            .rows
            .to_vec::<i32>()
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect();
        let (bv, qv) = (base.to_vec_f32().unwrap(), q.to_vec_f32().unwrap());
        let want: Vec<i64> = (0..2).flat_map(|i| exact_topk(&bv, &qv[i * d..(i + 1) * d], d, k)).collect();
        assert_eq!(recall(&got, &want, k), 1.0);
    }
}
