//! Cluster bootstrap: 95% intervals when questions come in groups that are not independent.
//!
//! Questions about the same source passage (or the same entity) share what makes them easy or
//! hard: the passage is well written or garbled, the entity is famous or obscure, the
//! fine-tuned adapter memorised that document or not. Resampling questions one by one treats a
//! passage with six questions as six independent pieces of evidence and makes the interval too
//! narrow. The cluster bootstrap resamples *clusters* with replacement — `K` draws from the `K`
//! clusters — and keeps every question of a drawn cluster; the statistic of a resample is
//! the mean over all the questions it holds (a ratio: summed values over summed counts, since
//! clusters differ in size). Percentiles, interpolation and the seeded ChaCha8 stream are those
//! of [`super::bootstrap`].
//!
//! Few clusters: the percentile bootstrap's variance is the plug-in one (divided by `K`, not
//! `K − 1`) and its percentiles are those of a normal, not of a t with `K − 1` degrees of
//! freedom; with 30–60 clusters of correlated questions its 95% intervals cover 92–94%. So
//! each bound is moved away from the observed mean by [`small_sample_factor`]`(K)` =
//! `√(K/(K−1)) · t₀.₉₇₅,K−1 / z₀.₉₇₅` — the finite-cluster correction of cluster-robust
//! inference (Cameron & Miller 2015, §VI): 1.03 at K = 60, 1.01 at K = 200, → 1. The simulation
//! test below checks the result against a known difference.
//!
//! The cluster of a question is [`cluster_key`]: its first `sources` entry, else its own id.
//! When every cluster holds one question the draws, sums and percentiles are exactly those of
//! [`bootstrap_mean`](super::bootstrap_mean), [`paired_difference`](super::paired_difference)
//! and [`group_difference`](super::group_difference), bit for bit, before that factor (tested
//! below), so data without sources gets the interval it always got, widened by under 1% from
//! 130 questions on.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::MetricsError;
use super::bootstrap::{check, interval};
use crate::report::Interval;
use crate::task::QaItem;

/// The cluster a question belongs to: the first passage it was written from, or — with no
/// source — the question itself (a cluster of one).
pub fn cluster_key(q: &QaItem) -> &str {
    q.sources.first().map_or(q.id.as_str(), String::as_str)
}

/// Question id → cluster key, for matching outcomes (which carry only the id) to clusters.
#[derive(Clone, Debug, Default)]
pub struct ClusterKeys<'a> {
    by_id: HashMap<&'a str, &'a str>,
}

impl<'a> ClusterKeys<'a> {
    pub fn of(questions: &'a [QaItem]) -> Self {
        ClusterKeys { by_id: questions.iter().map(|q| (q.id.as_str(), cluster_key(q))).collect() }
    }

    /// The cluster of question `id`; an id the questions do not list is a cluster of its own.
    pub fn key<'b>(&'b self, id: &'b str) -> &'b str {
        self.by_id.get(id).copied().unwrap_or(id)
    }

    /// The clusters of `ids`, in order.
    pub fn keys<'b>(&'b self, ids: impl IntoIterator<Item = &'b str>) -> Vec<&'b str> {
        ids.into_iter().map(|id| self.key(id)).collect()
    }
}

/// How many distinct clusters `keys` name.
pub fn cluster_count(keys: &[&str]) -> usize {
    let mut seen: Vec<&str> = keys.to_vec();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// The mean of `values` with its cluster-bootstrap 95% interval; `keys[i]` is the cluster of
/// `values[i]`. `n` of the result is the number of values (questions), not of clusters.
pub fn cluster_mean(
    values: &[f64],
    keys: &[&str],
    resamples: usize,
    seed: u64,
) -> Result<Interval, MetricsError> {
    check("cluster_mean", values, resamples)?;
    same_length("cluster_mean: values vs cluster keys", values.len(), keys.len())?;
    let clusters = totals(values, keys);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples).map(|_| resampled_ratio(&clusters, &mut rng)).collect();
    let iv = interval(values.iter().sum::<f64>() / values.len() as f64, means, values.len());
    Ok(widened(iv, clusters.len()))
}

/// The mean over training seeds and questions of `per_seed[s][i]` (seed `s`'s score on question
/// `i`, the questions in the same order for every seed) with a two-stage bootstrap 95% interval:
/// each resample draws the seeds with replacement and the clusters of questions with
/// replacement, so the interval holds both the question sampling and the seed-to-seed spread of
/// training. One seed is [`cluster_mean`].
pub fn seeded_cluster_mean(
    per_seed: &[Vec<f64>],
    keys: &[&str],
    resamples: usize,
    seed: u64,
) -> Result<Interval, MetricsError> {
    let Some(first) = per_seed.first() else {
        return Err(MetricsError::Empty { what: "seeded_cluster_mean: no seed".into() });
    };
    if per_seed.len() == 1 {
        return cluster_mean(first, keys, resamples, seed);
    }
    for (s, values) in per_seed.iter().enumerate() {
        check(&format!("seeded_cluster_mean (seed {s})"), values, resamples)?;
        same_length("seeded_cluster_mean: a seed's values vs cluster keys", values.len(), keys.len())?;
    }
    let per_cluster: Vec<Vec<(f64, usize)>> = per_seed.iter().map(|v| totals(v, keys)).collect();
    let (n_seeds, k) = (per_seed.len(), per_cluster[0].len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples)
        .map(|_| {
            let seeds: Vec<usize> = (0..n_seeds).map(|_| rng.random_range(0..n_seeds)).collect();
            let (mut sum, mut count) = (0.0, 0usize);
            for _ in 0..k {
                let c = rng.random_range(0..k);
                for &s in &seeds {
                    let (total, m) = per_cluster[s][c];
                    sum += total;
                    count += m;
                }
            }
            sum / count as f64
        })
        .collect();
    let all = per_seed.iter().flatten().sum::<f64>() / (n_seeds * first.len()) as f64;
    Ok(widened(interval(all, means, first.len()), k))
}

/// The mean of `a[i] − b[i]` with its cluster-bootstrap 95% interval: the same clusters are
/// drawn for both arms (the pairing is kept, and so is everything a cluster's questions share).
pub fn cluster_paired_difference(
    a: &[f64],
    b: &[f64],
    keys: &[&str],
    resamples: usize,
    seed: u64,
) -> Result<Interval, MetricsError> {
    same_length("cluster_paired_difference", a.len(), b.len())?;
    check("cluster_paired_difference (first side)", a, resamples)?;
    check("cluster_paired_difference (second side)", b, resamples)?;
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    cluster_mean(&diffs, keys, resamples, seed)
}

/// `mean(a) − mean(b)` for two groups of different questions, with its cluster-bootstrap 95%
/// interval. When no cluster has questions in both groups, each group's clusters are resampled
/// on their own (a stratified cluster bootstrap: [`group_difference`](super::group_difference)
/// with clusters). When some cluster has questions in both (a seen and a held-out phrasing of
/// the same fact, two popularity buckets of one passage) the groups are not independent, so the
/// clusters of both groups are resampled together and each resample's difference is taken
/// between the two groups' questions it holds (a resample that holds none of one group is
/// drawn again). `n` of the result is `a.len() + b.len()`.
pub fn cluster_group_difference(
    a: &[f64],
    a_keys: &[&str],
    b: &[f64],
    b_keys: &[&str],
    resamples: usize,
    seed: u64,
) -> Result<Interval, MetricsError> {
    check("cluster_group_difference (first group)", a, resamples)?;
    check("cluster_group_difference (second group)", b, resamples)?;
    same_length("cluster_group_difference: first group vs its cluster keys", a.len(), a_keys.len())?;
    same_length("cluster_group_difference: second group vs its cluster keys", b.len(), b_keys.len())?;
    let observed = a.iter().sum::<f64>() / a.len() as f64 - b.iter().sum::<f64>() / b.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shared = {
        let in_a: std::collections::HashSet<&str> = a_keys.iter().copied().collect();
        b_keys.iter().any(|k| in_a.contains(k))
    };
    // Degrees of freedom: the clusters resampled together; for separate groups, the smaller
    // group's (the conservative end of Welch's range).
    let (diffs, k): (Vec<f64>, usize) = if shared {
        let both = joint_totals(a, a_keys, b, b_keys);
        ((0..resamples).map(|_| resampled_joint(&both, &mut rng)).collect(), both.len())
    } else {
        let (ca, cb) = (totals(a, a_keys), totals(b, b_keys));
        let diffs =
            (0..resamples).map(|_| resampled_ratio(&ca, &mut rng) - resampled_ratio(&cb, &mut rng)).collect();
        (diffs, ca.len().min(cb.len()))
    };
    Ok(widened(interval(observed, diffs, a.len() + b.len()), k))
}

/// The variance of the mean under cluster sampling over its variance under independent
/// sampling (Kish's design effect), estimated from the data: Σ_k (S_k − m_k·x̄)² / Σ_i (x_i − x̄)²,
/// where `S_k` is cluster k's sum and `m_k` its size — the two plug-in variances the cluster and
/// the plain bootstrap approximate. 1 when every cluster has one question or the values do not
/// vary; above 1 when questions of a cluster tend to agree.
pub fn design_effect(values: &[f64], keys: &[&str]) -> f64 {
    if values.is_empty() || values.len() != keys.len() {
        return 1.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let within: f64 = values.iter().map(|x| (x - mean).powi(2)).sum();
    if within <= 0.0 {
        return 1.0;
    }
    let between: f64 = totals(values, keys).iter().map(|&(s, m)| (s - m as f64 * mean).powi(2)).sum();
    between / within
}

/// How far [`cluster_mean`] and its siblings move each percentile bound from the observed
/// mean with `k` clusters: `√(k/(k−1)) · t₀.₉₇₅,k−1 / z₀.₉₇₅` (1 for `k ≤ 1`, where every
/// resample is the same cluster and the interval is a point anyway).
pub fn small_sample_factor(k: usize) -> f64 {
    if k <= 1 {
        return 1.0;
    }
    let kf = k as f64;
    (kf / (kf - 1.0)).sqrt() * t_975(k - 1) / Z_975
}

const Z_975: f64 = 1.959_963_984_540_054;

/// The 97.5th percentile of Student's t with `df` degrees of freedom: exact for df ≤ 4, the
/// Cornish–Fisher expansion in 1/df to the fourth order above (Abramowitz & Stegun 26.7.5;
/// within 2·10⁻⁴ relative of the exact value from df = 5 on, which moves an interval's bounds
/// by that fraction of their distance from the mean).
fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1 => 12.706_204_736_174_7,
        2 => 4.302_652_729_749_464,
        3 => 3.182_446_305_284_263,
        4 => 2.776_445_105_197_793,
        _ => {
            let (z, v) = (Z_975, df as f64);
            let (z3, z5, z7, z9) = (z.powi(3), z.powi(5), z.powi(7), z.powi(9));
            z + (z3 + z) / (4.0 * v)
                + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
                + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v.powi(3))
                + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / (92_160.0 * v.powi(4))
        }
    }
}

/// Each bound moved away from the mean by [`small_sample_factor`]`(k)`.
fn widened(iv: Interval, k: usize) -> Interval {
    let f = small_sample_factor(k);
    Interval { lo: iv.mean - f * (iv.mean - iv.lo), hi: iv.mean + f * (iv.hi - iv.mean), ..iv }
}

fn same_length(what: &str, left: usize, right: usize) -> Result<(), MetricsError> {
    if left != right {
        return Err(MetricsError::LengthMismatch { what: what.into(), left, right });
    }
    Ok(())
}

/// (sum, count) per cluster, clusters in the order they first appear, each summed in index
/// order.
fn totals(values: &[f64], keys: &[&str]) -> Vec<(f64, usize)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut members: Vec<Vec<f64>> = Vec::new();
    for (&v, &k) in values.iter().zip(keys) {
        let i = *index.entry(k).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[i].push(v);
    }
    members.into_iter().map(|m| (m.iter().sum(), m.len())).collect()
}

/// One resample's mean: `K` clusters drawn with replacement, their sums over their sizes.
/// With clusters of one this is the plain bootstrap's resampled mean, draw for draw.
fn resampled_ratio(clusters: &[(f64, usize)], rng: &mut ChaCha8Rng) -> f64 {
    let k = clusters.len();
    let mut count = 0usize;
    let sum: f64 = (0..k)
        .map(|_| {
            let (s, m) = clusters[rng.random_range(0..k)];
            count += m;
            s
        })
        .sum();
    sum / count as f64
}

/// Per cluster of the union: (sum over group a, count in a, sum over group b, count in b).
type Joint = (f64, usize, f64, usize);

fn joint_totals<'k>(a: &[f64], a_keys: &[&'k str], b: &[f64], b_keys: &[&'k str]) -> Vec<Joint> {
    let mut index: HashMap<&'k str, usize> = HashMap::new();
    let mut out: Vec<Joint> = Vec::new();
    for (side, values, keys) in [(0, a, a_keys), (1, b, b_keys)] {
        for (&v, &k) in values.iter().zip(keys) {
            let i = *index.entry(k).or_insert_with(|| {
                out.push((0.0, 0, 0.0, 0));
                out.len() - 1
            });
            if side == 0 {
                out[i].0 += v;
                out[i].1 += 1;
            } else {
                out[i].2 += v;
                out[i].3 += 1;
            }
        }
    }
    out
}

fn resampled_joint(clusters: &[Joint], rng: &mut ChaCha8Rng) -> f64 {
    let k = clusters.len();
    loop {
        let (mut sa, mut na, mut sb, mut nb) = (0.0, 0usize, 0.0, 0usize);
        for _ in 0..k {
            let c = clusters[rng.random_range(0..k)];
            sa += c.0;
            na += c.1;
            sb += c.2;
            nb += c.3;
        }
        if na > 0 && nb > 0 {
            return sa / na as f64 - sb / nb as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{bootstrap_mean, group_difference, paired_difference};
    use rand::Rng;

    fn ids(n: usize, prefix: &str) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn clusters_of_one_give_the_plain_bootstrap_widened_by_the_small_sample_factor() {
        let a: Vec<f64> = (0..137).map(|i| ((i * 7919) % 10 < 6) as u8 as f64).collect();
        let b: Vec<f64> = (0..137).map(|i| ((i * 104_729) % 10 < 4) as u8 as f64).collect();
        let keys = ids(137, "q");
        let k = refs(&keys);
        // The plain interval's bounds, moved from the mean by the factor: nothing else differs.
        let same = |clustered: Interval, plain: Interval, k: usize| {
            assert_eq!(widened(plain, k), clustered);
            assert!(clustered.hi - clustered.lo > plain.hi - plain.lo);
        };
        same(cluster_mean(&a, &k, 700, 3).unwrap(), bootstrap_mean(&a, 700, 3).unwrap(), 137);
        same(
            cluster_paired_difference(&a, &b, &k, 700, 4).unwrap(),
            paired_difference(&a, &b, 700, 4).unwrap(),
            137,
        );
        let (ka, kb) = (ids(137, "a"), ids(90, "b"));
        same(
            cluster_group_difference(&a, &refs(&ka), &b[..90], &refs(&kb), 700, 5).unwrap(),
            group_difference(&a, &b[..90], 700, 5).unwrap(),
            90,
        );
        assert_eq!(design_effect(&a, &k), 1.0);
    }

    #[test]
    fn the_small_sample_factor_is_the_finite_cluster_t_correction() {
        // t₀.₉₇₅ (tables): df 3 → 3.1824, 5 → 2.5706, 10 → 2.2281, 29 → 2.0452, 59 → 2.0010,
        // 199 → 1.9720.
        let table = [
            (3, 3.182_446),
            (5, 2.570_582),
            (10, 2.228_139),
            (29, 2.045_230),
            (59, 2.000_995),
            (199, 1.971_957),
        ];
        for (df, t) in table {
            assert!((t_975(df) - t).abs() < 2e-4 * t, "df {df}: {} vs {t}", t_975(df));
        }
        // K = 60: √(60/59)·2.0010/1.95996 = 1.0296.
        assert!((small_sample_factor(60) - 1.0296).abs() < 1e-4, "{}", small_sample_factor(60));
        assert!(small_sample_factor(1000) < 1.002 && small_sample_factor(1000) > 1.0);
        assert_eq!(small_sample_factor(1), 1.0);
    }

    #[test]
    fn duplicated_questions_do_not_narrow_a_cluster_interval() {
        // 80 independent facts; then each fact asked 5 times with the same outcome. The plain
        // bootstrap shrinks by √5, the cluster bootstrap sees the same 80 pieces of evidence.
        let once: Vec<f64> = (0..80).map(|i| ((i * 37) % 10 < 6) as u8 as f64).collect();
        let five: Vec<f64> = once.iter().flat_map(|&v| [v; 5]).collect();
        let facts = ids(80, "p");
        let keys: Vec<&str> = facts.iter().flat_map(|k| [k.as_str(); 5]).collect();
        let single = bootstrap_mean(&once, 4000, 1).unwrap();
        let clustered = cluster_mean(&five, &keys, 4000, 1).unwrap();
        let naive = bootstrap_mean(&five, 4000, 1).unwrap();
        let width = |iv: &Interval| iv.hi - iv.lo;
        assert!((width(&clustered) - width(&single)).abs() < 0.02, "{clustered:?} vs {single:?}");
        assert!(width(&naive) < 0.6 * width(&clustered), "{naive:?} vs {clustered:?}");
        assert_eq!((clustered.n, cluster_count(&keys)), (400, 80));
        assert!((design_effect(&five, &keys) - 5.0).abs() < 1e-12);
    }

    #[test]
    fn groups_sharing_clusters_are_resampled_together() {
        // Each passage has a seen and a held-out question with the same outcome: the groups are
        // perfectly dependent and their difference is 0 in every joint resample.
        let v: Vec<f64> = (0..60).map(|i| ((i * 13) % 7 < 3) as u8 as f64).collect();
        let passages = ids(60, "p");
        let k = refs(&passages);
        let iv = cluster_group_difference(&v, &k, &v, &k, 500, 2).unwrap();
        assert_eq!((iv.mean, iv.lo, iv.hi, iv.n), (0.0, 0.0, 0.0, 120));
        // Without the shared clusters the stratified resampling sees two independent groups.
        let other = ids(60, "x");
        let apart = cluster_group_difference(&v, &k, &v, &refs(&other), 500, 2).unwrap();
        assert!(apart.hi - apart.lo > 0.2, "{apart:?}");
    }

    #[test]
    fn a_question_without_sources_is_its_own_cluster() {
        let q = |id: &str, sources: &[&str]| QaItem {
            id: id.into(),
            question: String::new(),
            answer: String::new(),
            choices: Vec::new(),
            correct: None,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            phrasing: None,
            popularity: None,
        };
        let qs = [q("q1", &["doc-a", "doc-b"]), q("q2", &[]), q("q3", &["doc-a"])];
        let keys = ClusterKeys::of(&qs);
        assert_eq!(keys.keys(["q1", "q2", "q3", "q9"]), ["doc-a", "q2", "doc-a", "q9"]);
        assert_eq!(cluster_count(&keys.keys(["q1", "q2", "q3"])), 2);
    }

    /// One simulated evaluation: `clusters` source passages with 1–6 questions each, two arms
    /// answering every question right (1) or wrong (0). Per question the outcome pair
    /// (A, B) has the joint law `JOINT`, so E[A] = 0.70, E[B] = 0.55 and the true paired
    /// difference is exactly 0.15. The passage is a cluster-level random effect: each passage
    /// draws one pair from `JOINT`, and each of its questions takes that pair with
    /// probability `RHO` or an independent draw from `JOINT` otherwise — the marginal law is
    /// unchanged, and two questions of one passage have correlated differences (ρ² = 0.81).
    fn simulate(rng: &mut ChaCha8Rng, clusters: usize) -> (Vec<f64>, Vec<f64>, Vec<String>) {
        /// P(A=1, B=1), P(1, 0), P(0, 1), P(0, 0).
        const JOINT: [(f64, f64, f64); 4] =
            [(0.45, 1.0, 1.0), (0.25, 1.0, 0.0), (0.10, 0.0, 1.0), (0.20, 0.0, 0.0)];
        const RHO: f64 = 0.9;
        let draw = |rng: &mut ChaCha8Rng| {
            let mut u: f64 = rng.random();
            for &(p, a, b) in &JOINT {
                if u < p {
                    return (a, b);
                }
                u -= p;
            }
            (0.0, 0.0)
        };
        let (mut a, mut b, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..clusters {
            let shared = draw(rng);
            for _ in 0..rng.random_range(1..=6) {
                let (x, y) = if rng.random_bool(RHO) { shared } else { draw(rng) };
                a.push(x);
                b.push(y);
                keys.push(format!("p{k}"));
            }
        }
        (a, b, keys)
    }

    /// The 95% intervals of the cluster bootstrap cover the true difference in 93–97% of
    /// 1000 simulated evaluations of 60 passages; on the same data the question-level
    /// bootstrap, which treats the questions as independent, covers it far less often. With
    /// 1000 runs the coverage's standard error is 0.7 points, so 93–97 is ±3 of them around
    /// 95; the plain bootstrap's design effect here is about 3.7 (1 + (E[m²]/E[m] − 1)·ρ²
    /// with m uniform on 1–6), which shrinks its intervals to about ±1.02 standard errors:
    /// ~69% coverage.
    ///
    /// Measured while writing this (4000 runs each, other seeds): cluster coverage 94.2% with
    /// 400 resamples and 94.8% with 1000 (Monte Carlo error in the percentiles costs a little);
    /// without the small-sample factor 93.4% and 94.2% — the percentile bootstrap alone falls
    /// short with 60 clusters. Question-level: 66–68%. Takes ~3.5 s at the test profile's
    /// opt-level 1.
    #[test]
    fn cluster_intervals_cover_a_known_difference_and_question_level_ones_do_not() {
        const RUNS: usize = 1000;
        const RESAMPLES: usize = 500;
        const TRUE_DIFF: f64 = 0.15;
        const TRUE_A: f64 = 0.70;
        let start = std::time::Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(20_261_204);
        let (mut clustered, mut naive, mut mean_a, mut too_few) = (0, 0, 0, 0);
        for run in 0..RUNS {
            let (a, b, keys) = simulate(&mut rng, 60);
            let k = refs(&keys);
            let seed = run as u64;
            let d = cluster_paired_difference(&a, &b, &k, RESAMPLES, seed).unwrap();
            clustered += usize::from(d.lo <= TRUE_DIFF && TRUE_DIFF <= d.hi);
            let plain = paired_difference(&a, &b, RESAMPLES, seed).unwrap();
            naive += usize::from(plain.lo <= TRUE_DIFF && TRUE_DIFF <= plain.hi);
            let m = cluster_mean(&a, &k, RESAMPLES, seed).unwrap();
            mean_a += usize::from(m.lo <= TRUE_A && TRUE_A <= m.hi);
            let t = crate::metrics::paired_test(&a, &b, &k).unwrap();
            too_few += usize::from(t.min_detectable > TRUE_DIFF);
        }
        let share = |c: usize| c as f64 / RUNS as f64;
        let took = start.elapsed().as_secs_f64();
        eprintln!(
            "coverage over {RUNS} runs: cluster {:.3}, question-level {:.3}, cluster mean {:.3};              MDE above the true difference in {:.3}; {took:.2} s",
            share(clustered),
            share(naive),
            share(mean_a),
            share(too_few)
        );
        assert!((0.93..=0.97).contains(&share(clustered)), "cluster coverage {}", share(clustered));
        assert!((0.93..=0.97).contains(&share(mean_a)), "cluster coverage of a mean {}", share(mean_a));
        assert!(
            share(naive) < 0.85,
            "question-level coverage {} should fall well short of 95%",
            share(naive)
        );
    }

    #[test]
    fn bad_input_is_an_error_that_names_it() {
        let err = cluster_mean(&[1.0, 0.0], &["a"], 10, 0).unwrap_err();
        assert!(matches!(err, MetricsError::LengthMismatch { left: 2, right: 1, .. }), "{err}");
        assert!(matches!(cluster_mean(&[], &[], 10, 0), Err(MetricsError::Empty { .. })));
        assert!(matches!(cluster_mean(&[1.0], &["a"], 0, 0), Err(MetricsError::ZeroResamples { .. })));
        let err = cluster_paired_difference(&[1.0], &[1.0, 0.0], &["a"], 10, 0).unwrap_err();
        assert!(matches!(err, MetricsError::LengthMismatch { .. }));
    }

    #[test]
    fn seeds_widen_the_interval_by_their_spread() {
        // 60 questions in 30 clusters; three seeds that agree, and three that differ by a
        // uniform shift of ±0.15 (a training-seed effect the questions cannot show).
        let base: Vec<f64> = (0..60).map(|i| if i % 5 < 3 { 1.0 } else { 0.0 }).collect();
        let names: Vec<String> = (0..60).map(|i| format!("c{}", i / 2)).collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let same = vec![base.clone(); 3];
        let one = cluster_mean(&base, &keys, 2000, 5).unwrap();
        let agree = seeded_cluster_mean(&same, &keys, 2000, 5).unwrap();
        assert!((agree.mean - one.mean).abs() < 1e-12);
        let (w1, wa) = (one.hi - one.lo, agree.hi - agree.lo);
        assert!((wa - w1).abs() < 0.25 * w1, "agreeing seeds add nothing: {w1} vs {wa}");
        let shifted: Vec<Vec<f64>> =
            [-0.15, 0.0, 0.15].iter().map(|d| base.iter().map(|v| v + d).collect()).collect();
        let spread = seeded_cluster_mean(&shifted, &keys, 2000, 5).unwrap();
        assert!((spread.mean - one.mean).abs() < 1e-12);
        assert!(
            spread.hi - spread.lo > 1.3 * w1,
            "the seed spread widens it: {w1} vs {}",
            spread.hi - spread.lo
        );
        assert_eq!(
            seeded_cluster_mean(&same[..1], &keys, 500, 1).unwrap(),
            cluster_mean(&base, &keys, 500, 1).unwrap()
        );
        assert!(seeded_cluster_mean(&[], &keys, 10, 0).is_err());
    }
}
