//! k-means steps on the CPU (family `kmeans`, kernels/kmeans.cu).
//!
//! The assignment is a top-1 search under squared L2 — exactly [`super::topk`] with k = 1, so it
//! shares its blocked SGEMM, its clamped distance `max(‖p‖² + ‖c‖² − 2 p·c, 0)` and its tie rule
//! (the smaller centroid index). The update sums each cluster's points in f32 per rayon task and
//! adds the partial sums up, instead of the kernel's atomics: same result up to rounding.

use rayon::prelude::*;

use super::topk;
use crate::dtype::FloatElement;
use crate::ops::Similarity;

/// Nearest centroid of each of the `n` points and its squared distance. `c ≥ 1`.
pub fn kmeans_assign<T: FloatElement>(
    points: &[T],
    centroids: &[T],
    n: usize,
    c: usize,
    d: usize,
    assign_out: &mut [i32],
    dist_out: &mut [f32],
) {
    let nearest = topk::search(points, centroids, [n, c, d], 1, Similarity::L2, None);
    topk::write_results(&nearest, 1.min(c), Similarity::L2, assign_out, dist_out);
}

/// Points per rayon task of the update: enough to amortise a task's c × d partial sums.
const UPDATE_POINTS_PER_TASK: usize = 4096;

/// Mean of the points assigned to each of the `c` clusters (`sums_out`, `c × d`) and the counts;
/// a cluster without points keeps its old centroid. Assignments outside `0..c` (−1 for
/// "unassigned") are skipped.
pub fn kmeans_update<T: FloatElement, O: FloatElement>(
    points: &[T],
    assign: &[i32],
    old_centroids: &[O],
    c: usize,
    d: usize,
    centroids_out: &mut [f32],
    counts_out: &mut [i32],
) {
    let (sums, counts) = assign
        .par_chunks(UPDATE_POINTS_PER_TASK)
        .enumerate()
        .map(|(t, chunk)| {
            let mut sums = vec![0f32; c * d];
            let mut counts = vec![0i32; c];
            for (i, &a) in chunk.iter().enumerate() {
                if a < 0 || a as usize >= c {
                    continue;
                }
                let p = (t * UPDATE_POINTS_PER_TASK + i) * d;
                let a = a as usize;
                counts[a] += 1;
                for (s, v) in sums[a * d..(a + 1) * d].iter_mut().zip(&points[p..p + d]) {
                    *s += v.to_f32();
                }
            }
            (sums, counts)
        })
        .reduce(
            || (vec![0f32; c * d], vec![0i32; c]),
            |(mut s1, mut c1), (s2, c2)| {
                s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                (s1, c1)
            },
        );
    for j in 0..c {
        let out = &mut centroids_out[j * d..(j + 1) * d];
        if counts[j] > 0 {
            // A division, not a multiply by 1/count: the kernel divides too, so they agree.
            let count = counts[j] as f32;
            out.iter_mut().zip(&sums[j * d..(j + 1) * d]).for_each(|(o, s)| *o = s / count);
        } else {
            out.iter_mut().zip(&old_centroids[j * d..(j + 1) * d]).for_each(|(o, v)| *o = v.to_f32());
        }
    }
    counts_out.copy_from_slice(&counts);
}
