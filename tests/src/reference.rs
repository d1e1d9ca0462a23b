//! f64 reference implementations, written for clarity rather than speed, independent of the CPU
//! code they check.

/// `C[b] = alpha · op(A[b]) · op(B[b])`, row-major; `stride_a/b = 0` broadcasts one matrix.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f64],
    b: &[f64],
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    broadcast_a: bool,
    broadcast_b: bool,
    alpha: f64,
) -> Vec<f64> {
    let mut c = vec![0f64; batch * m * n];
    for bi in 0..batch {
        let ao = if broadcast_a { 0 } else { bi * m * k };
        let bo = if broadcast_b { 0 } else { bi * k * n };
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    let av = if trans_a { a[ao + p * m + i] } else { a[ao + i * k + p] };
                    let bv = if trans_b { b[bo + j * k + p] } else { b[bo + p * n + j] };
                    s += av * bv;
                }
                c[bi * m * n + i * n + j] = alpha * s;
            }
        }
    }
    c
}

pub fn rms_norm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let cols = w.len();
    x.chunks(cols)
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps).sqrt();
            r.iter().zip(w).map(move |(v, w)| v * inv * w)
        })
        .collect()
}

pub fn layer_norm(x: &[f64], w: &[f64], b: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let cols = w.len();
    x.chunks(cols)
        .flat_map(|r| {
            let mean = r.iter().sum::<f64>() / cols as f64;
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (var + eps).sqrt();
            r.iter().enumerate().map(move |(j, v)| (v - mean) * inv * w[j] + b.map_or(0.0, |b| b[j]))
        })
        .collect()
}

/// Softmax over rows of `cols`; rows are grouped in matrices of `rows` for the causal mask.
pub fn softmax(x: &[f64], rows: usize, cols: usize, scale: f64, causal: bool) -> Vec<f64> {
    let mut out = vec![0f64; x.len()];
    for (r, (xr, or)) in x.chunks(cols).zip(out.chunks_mut(cols)).enumerate() {
        let i = (r % rows) as i64;
        let visible =
            if causal { (i + cols as i64 - rows as i64 + 1).clamp(0, cols as i64) as usize } else { cols };
        if visible == 0 {
            continue;
        }
        let m = xr[..visible].iter().map(|v| v * scale).fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = xr[..visible].iter().map(|v| (v * scale - m).exp()).sum();
        for j in 0..visible {
            or[j] = (xr[j] * scale - m).exp() / s;
        }
    }
    out
}

pub fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// Brute-force search: for each query (rows of `q`, `d` wide) the best `min(k, n)` rows of `b`
/// as `(row, score)`, best first, ties to the smaller row; rows with `allow[r] == false` are
/// skipped and the tail is padded with `(-1, −∞)` (dot) / `(-1, +∞)` (L2). L2 scores are squared
/// distances computed directly as Σ(q − b)².
pub fn topk(
    q: &[f64],
    b: &[f64],
    d: usize,
    k: usize,
    l2: bool,
    allow: Option<&[bool]>,
) -> Vec<Vec<(i64, f64)>> {
    let n = b.len().checked_div(d).unwrap_or(0);
    let nq = q.len().checked_div(d).unwrap_or(0);
    let kk = k.min(n);
    (0..nq)
        .map(|i| {
            let qi = &q[i * d..(i + 1) * d];
            let mut all: Vec<(i64, f64)> = (0..n)
                .filter(|&r| allow.is_none_or(|a| a[r]))
                .map(|r| {
                    let br = &b[r * d..(r + 1) * d];
                    let s = if l2 {
                        qi.iter().zip(br).map(|(x, y)| (x - y) * (x - y)).sum()
                    } else {
                        qi.iter().zip(br).map(|(x, y)| x * y).sum()
                    };
                    (r as i64, s)
                })
                .collect();
            all.sort_by(|x, y| {
                let by_score = if l2 { x.1.total_cmp(&y.1) } else { y.1.total_cmp(&x.1) };
                by_score.then(x.0.cmp(&y.0))
            });
            all.truncate(kk);
            all.resize(kk, (-1, if l2 { f64::INFINITY } else { f64::NEG_INFINITY }));
            all
        })
        .collect()
}

/// k-means update: per-cluster means (old centroid for an empty cluster) and counts; assignments
/// outside `0..c` are skipped.
pub fn kmeans_update(p: &[f64], assign: &[i32], old: &[f64], d: usize) -> (Vec<f64>, Vec<i32>) {
    let c = old.len() / d.max(1);
    let mut sums = vec![0f64; c * d];
    let mut counts = vec![0i32; c];
    for (i, &a) in assign.iter().enumerate() {
        if a >= 0 && (a as usize) < c {
            let a = a as usize;
            counts[a] += 1;
            for j in 0..d {
                sums[a * d + j] += p[i * d + j];
            }
        }
    }
    for a in 0..c {
        for j in 0..d {
            sums[a * d + j] = if counts[a] > 0 { sums[a * d + j] / counts[a] as f64 } else { old[a * d + j] };
        }
    }
    (sums, counts)
}

/// Attention over the projections' layout: q `[b, sq, hq, d]`, k/v `[b, skv, hkv, d]`, query
/// head `h` reading kv head `h / (hq / hkv)`. Query `i` sees keys `j < len` and, when causal,
/// `j <= i + len − sq`, where `len = key_lens[b]` or `skv`. A query seeing no key yields zeros.
/// The full score row is materialised and soft-maxed directly (no online recurrence).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dims: (usize, usize, usize, usize, usize, usize),
    causal: bool,
    scale: f64,
    key_lens: Option<&[i32]>,
) -> Vec<f64> {
    sliding_attention(q, k, v, dims, causal, None, scale, key_lens)
}

/// [`attention`] with an optional sliding window, written as transformers' mask functions are:
/// with `p = i + len − sq` the query's absolute position, key `j` is kept iff `j < len` (padding),
/// `j <= p` when causal (`causal_mask_function`), and `j > p − window` when windowed
/// (`sliding_window_overlay`: `kv_idx > q_idx − sliding_window`); every key is tested.
#[allow(clippy::too_many_arguments)]
pub fn sliding_attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    (b, sq, skv, hq, hkv, d): (usize, usize, usize, usize, usize, usize),
    causal: bool,
    window: Option<usize>,
    scale: f64,
    key_lens: Option<&[i32]>,
) -> Vec<f64> {
    let mut out = vec![0f64; b * sq * hq * d];
    for bi in 0..b {
        let len = key_lens.map_or(skv, |l| l[bi] as usize);
        for i in 0..sq {
            let p = i as i64 + len as i64 - sq as i64;
            let kept: Vec<usize> = (0..skv)
                .filter(|&j| {
                    let j = j as i64;
                    j < len as i64 && (!causal || j <= p) && window.is_none_or(|w| j > p - w as i64)
                })
                .collect();
            if kept.is_empty() {
                continue;
            }
            for h in 0..hq {
                let hk = h / (hq / hkv);
                let qr = &q[((bi * sq + i) * hq + h) * d..][..d];
                let scores: Vec<f64> = kept
                    .iter()
                    .map(|&j| {
                        let kr = &k[((bi * skv + j) * hkv + hk) * d..][..d];
                        scale * qr.iter().zip(kr).map(|(a, b)| a * b).sum::<f64>()
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let total: f64 = w.iter().sum();
                let o = &mut out[((bi * sq + i) * hq + h) * d..][..d];
                for (&j, wj) in kept.iter().zip(&w) {
                    let vr = &v[((bi * skv + j) * hkv + hk) * d..][..d];
                    for (o, x) in o.iter_mut().zip(vr) {
                        *o += wj / total * x;
                    }
                }
            }
        }
    }
    out
}

/// Hugging Face's rotary embedding, written as transformers writes it: `cos`/`sin` of
/// `emb = cat(freqs, freqs)` with `freqs = position · inv_freq` — a product rounded to f32, as
/// transformers computes it (a position of 10⁴ makes that rounding visible), cos/sin in f64 — then `x · cos + rotate_half(x) · sin` over the first `rot` dims, where
/// `rotate_half(x) = cat(−x[rot/2..rot], x[..rot/2])`; the rest of the head passes through.
/// x `[rows = b · s, h, d]`, one position per row.
pub fn rope(x: &[f64], positions: &[i32], inv_freq: &[f32], h: usize, d: usize) -> Vec<f64> {
    let half = inv_freq.len();
    let rot = 2 * half;
    let mut out = x.to_vec();
    for (r, &p) in positions.iter().enumerate() {
        let emb: Vec<f64> = (0..rot).map(|j| (p as f32 * inv_freq[j % half]) as f64).collect();
        for hi in 0..h {
            let xr = &x[(r * h + hi) * d..][..d];
            let rotated: Vec<f64> =
                (0..rot).map(|j| if j < half { -xr[j + half] } else { xr[j - half] }).collect();
            for j in 0..rot {
                out[(r * h + hi) * d + j] = xr[j] * emb[j].cos() + rotated[j] * emb[j].sin();
            }
        }
    }
    out
}

/// `silu(gate) · up`, elementwise (Llama's MLP gate).
pub fn swiglu(gate: &[f64], up: &[f64]) -> Vec<f64> {
    gate.iter().zip(up).map(|(&g, &u)| silu(g) * u).collect()
}

/// Rows `ids[i]` of a `[vocab, d]` table.
pub fn embedding(table: &[f64], ids: &[i32], d: usize) -> Vec<f64> {
    ids.iter().flat_map(|&id| table[id as usize * d..(id as usize + 1) * d].iter().copied()).collect()
}

/// PyTorch's `cross_entropy(logits, targets, ignore_index, reduction="mean")` over rows of
/// `vocab`: the mean of `logsumexp(row) − row[target]` over targets not equal to `ignore_index`
/// (0 when none is counted).
pub fn cross_entropy(logits: &[f64], targets: &[i32], vocab: usize, ignore_index: i32) -> f64 {
    let (mut total, mut count) = (0f64, 0usize);
    for (row, &t) in logits.chunks(vocab).zip(targets) {
        if t == ignore_index {
            continue;
        }
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        total += lse - row[t as usize];
        count += 1;
    }
    if count == 0 { 0.0 } else { total / count as f64 }
}

/// The gradient of a scalar function `f` at `x` by central finite differences in f64, with a step
/// of `h · max(1, |x_i|)` per element.
pub fn finite_difference(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let step = h * x[i].abs().max(1.0);
            xp[i] = x[i] + step;
            let up = f(&xp);
            xp[i] = x[i] - step;
            let down = f(&xp);
            xp[i] = x[i];
            (up - down) / (2.0 * step)
        })
        .collect()
}

/// `Σ out · weights`: turns an op's output into the scalar whose gradient w.r.t. the output is
/// `weights` (the upstream gradient `dy` of a backward check).
pub fn weighted_sum(out: &[f64], weights: &[f64]) -> f64 {
    out.iter().zip(weights).map(|(a, b)| a * b).sum()
}
