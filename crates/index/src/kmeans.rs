//! k-means training of IVF centroids: seeded random initialisation from the training points,
//! then Lloyd iterations with the `kmeans_assign` / `kmeans_update` ops on the index's device.
//!
//! Like FAISS, training runs on a seeded sample of at most `max_points_per_centroid · nlist`
//! points: more points barely move the centroids and cost linear time. An empty cluster is
//! re-seeded by splitting the largest one (its centroid copied, both copies nudged apart), so
//! every list stays usable.

use ragtune_compute::ops::{kmeans_assign, kmeans_update};
use ragtune_compute::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::error::{IndexError, Result};

/// How centroids are trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KmeansParams {
    /// Lloyd iterations (assign, then update).
    pub iterations: usize,
    /// The sample size cap, per centroid.
    pub max_points_per_centroid: usize,
    /// Seeds the sample and the initial centroids: the same data and seed give the same index.
    pub seed: u64,
}

impl Default for KmeansParams {
    fn default() -> Self {
        KmeansParams { iterations: 10, max_points_per_centroid: 256, seed: 0x5eed }
    }
}

/// Relative nudge that separates a split centroid from its copy.
const SPLIT_EPS: f32 = 1.0 / 1024.0;

/// Train `nlist` centroids on `points` (host f32, `[n, dim]`, already checked). `progress` is
/// told `(iteration, iterations)` after each Lloyd iteration. Returns `[nlist · dim]` f32.
pub(crate) fn train(
    points: &[f32],
    dim: usize,
    nlist: usize,
    params: &KmeansParams,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>> {
    let n = points.len() / dim.max(1);
    if n < nlist {
        return Err(IndexError::invalid(
            "train",
            format!(
                "{n} training vectors cannot make {nlist} lists: give at least nlist vectors, or lower nlist"
            ),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let cap = params.max_points_per_centroid.max(1).saturating_mul(nlist);
    let sample_rows = if n > cap {
        let mut rows = sample(&mut rng, n, cap).into_vec();
        rows.sort_unstable();
        gather(points, dim, &rows)
    } else {
        points.to_vec()
    };
    let m = sample_rows.len() / dim;
    let init = sample(&mut rng, m, nlist).into_vec();
    let mut centroids = gather(&sample_rows, dim, &init);
    let pts = Tensor::from_slice(&sample_rows, &[m, dim])?.to_device(device)?;
    for it in 0..params.iterations {
        let c = Tensor::from_slice(&centroids, &[nlist, dim])?.to_device(device)?;
        let (assign, _) = kmeans_assign(&pts, &c)?;
        let (updated, counts) = kmeans_update(&pts, &assign, &c)?;
        centroids = updated.to_vec::<f32>()?;
        let mut counts: Vec<i64> = counts.to_vec::<i32>()?.into_iter().map(i64::from).collect();
        split_empty(&mut centroids, &mut counts, dim);
        progress(it + 1, params.iterations);
    }
    Ok(centroids)
}

/// Re-seed every empty cluster by splitting the currently largest one.
fn split_empty(centroids: &mut [f32], counts: &mut [i64], dim: usize) {
    for empty in 0..counts.len() {
        if counts[empty] != 0 {
            continue;
        }
        let (big, &size) =
            counts.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i))).expect("nlist >= 1");
        if size < 2 {
            return;
        }
        for j in 0..dim {
            let v = centroids[big * dim + j];
            // Additive part so zero coordinates move too.
            let nudge = v.abs() * SPLIT_EPS + 1e-6;
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            centroids[empty * dim + j] = v + sign * nudge;
            centroids[big * dim + j] = v - sign * nudge;
        }
        counts[empty] = size / 2;
        counts[big] = size - size / 2;
    }
}

fn gather(points: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * dim);
    for &r in rows {
        out.extend_from_slice(&points[r * dim..(r + 1) * dim]);
    }
    out
}
