//! `attention`: ragtune's fused CPU attention (blocked, online softmax) against a naive unfused
//! one in the same run — QKᵀ GEMM, softmax, PV GEMM, the scores materialised — the CPU twin of
//! the GPU benchmark in bench/src/gpu/attention.rs. Heads are folded into the batch
//! (`[b·h, s, 1, d]`) so both paths do the same arithmetic without transposes.
//!
//! Checked first: fused against naive, and both against an f64 reference on one head.

use anyhow::Result;
use ragtune_compute::ops::{self, AttentionSpec, MatmulSpec, SoftmaxSpec};
use ragtune_compute::{DType, Tensor};

use super::Ctx;
use crate::harness::{check_close, median_time};
use crate::random_tensor;
use crate::report::Row;

struct Case {
    name: &'static str,
    heads: usize,
    sq: usize,
    skv: usize,
    d: usize,
}

fn cases(quick: bool) -> Vec<Case> {
    let mut c = vec![
        Case { name: "prefill causal", heads: 9, sq: 512, skv: 512, d: 64 },
        Case { name: "decode", heads: 9, sq: 1, skv: 2048, d: 64 },
    ];
    if !quick {
        c.insert(1, Case { name: "prefill causal", heads: 8, sq: 1024, skv: 1024, d: 128 });
        c.push(Case { name: "decode", heads: 72, sq: 1, skv: 1024, d: 64 });
    }
    c
}

/// Softmax(q kᵀ / √d) v with scores materialised; `causal` when sq == skv.
fn naive(q: &Tensor, k: &Tensor, v: &Tensor, c: &Case) -> Result<Tensor> {
    let (q, k, v) = (
        q.reshape(&[c.heads, c.sq, c.d])?,
        k.reshape(&[c.heads, c.skv, c.d])?,
        v.reshape(&[c.heads, c.skv, c.d])?,
    );
    let alpha = 1.0 / (c.d as f32).sqrt();
    let scores = ops::matmul_ex(&q, &k, MatmulSpec { trans_b: true, alpha, ..Default::default() })?;
    let p = ops::softmax(&scores, SoftmaxSpec { scale: 1.0, causal: c.sq > 1 })?;
    Ok(ops::matmul(&p, &v)?.reshape(&[c.heads, c.sq, 1, c.d])?)
}

/// Head 0's output in f64: the independent reference.
pub fn reference_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    sq: usize,
    skv: usize,
    d: usize,
    causal: bool,
) -> Vec<f64> {
    let mut out = vec![0f64; sq * d];
    let scale = 1.0 / (d as f64).sqrt();
    for i in 0..sq {
        // Aligned at the end: query i sees keys 0..=i + (skv − sq).
        let visible = if causal { i + 1 + skv - sq } else { skv };
        let s: Vec<f64> = (0..visible)
            .map(|j| (0..d).map(|x| q[i * d + x] as f64 * k[j * d + x] as f64).sum::<f64>() * scale)
            .collect();
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (j, w) in e.iter().enumerate() {
            for x in 0..d {
                out[i * d + x] += w / sum * v[j * d + x] as f64;
            }
        }
    }
    out
}

pub fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, c) in cases(ctx.quick).iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let q = random_tensor(seed, &[c.heads, c.sq, 1, c.d], DType::F32);
        let k = random_tensor(seed + 1, &[c.heads, c.skv, 1, c.d], DType::F32);
        let v = random_tensor(seed + 2, &[c.heads, c.skv, 1, c.d], DType::F32);
        let causal = c.sq > 1;
        let spec = AttentionSpec::new(causal, c.d);
        let shape = format!("b·h={} sq={} skv={} d={} f32", c.heads, c.sq, c.skv, c.d);
        let fused = ops::attention(&q, &k, &v, spec, None)?.to_vec_f32()?;
        let unfused = naive(&q, &k, &v, c)?.to_vec_f32()?;
        let head = |t: &Tensor, s: usize| -> Result<Vec<f32>> { Ok(t.to_vec_f32()?[..s * c.d].to_vec()) };
        let want =
            reference_head(&head(&q, c.sq)?, &head(&k, c.skv)?, &head(&v, c.skv)?, c.sq, c.skv, c.d, causal);
        let what = format!("attention {} {shape}", c.name);
        let err = check_close(&what, &fused[..c.sq * c.d], &want, 1e-5)?;
        check_close(&format!("naive {what}"), &unfused[..c.sq * c.d], &want, 1e-5)?;
        let cross: Vec<f64> = unfused.iter().map(|&x| x as f64).collect();
        check_close(&format!("{what} vs naive, every head"), &fused, &cross, 1e-5)?;

        let (ours, reps) = median_time(ctx.budget, || {
            std::hint::black_box(ops::attention(&q, &k, &v, spec, None).expect("checked above"));
        });
        let (peer, _) = median_time(ctx.budget, || {
            std::hint::black_box(naive(&q, &k, &v, c).expect("checked above"));
        });
        let mut flops = 4.0 * (c.heads * c.sq * c.skv * c.d) as f64;
        if causal {
            flops /= 2.0;
        }
        let bytes = 4.0 * (c.heads * c.d * (2 * c.sq + 2 * c.skv)) as f64;
        rows.push(
            Row::new("attention", c.name, &shape, ours, reps, flops, bytes, &ctx.ceilings)?
                .with_peer("naive unfused", peer)
                .with_check(format!("head 0 vs f64: rel err {err:.1e}; every head vs naive")),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_matches_hand_computed_attention() {
        // One query, two keys with scores 0 and ln 3 · √d/√d: weights 1/4, 3/4 (d = 1).
        let out = reference_head(&[1.0], &[0.0, 3f32.ln()], &[4.0, 8.0], 1, 2, 1, false);
        assert!((out[0] - 7.0).abs() < 1e-6, "{out:?}");
        // Causal, two queries: the first sees only key 0.
        let out = reference_head(&[1.0, 1.0], &[0.0, 3f32.ln()], &[4.0, 8.0], 2, 2, 1, true);
        assert!((out[0] - 4.0).abs() < 1e-9 && (out[1] - 7.0).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn fused_and_naive_agree_with_the_reference_at_a_small_size() {
        let c = Case { name: "t", heads: 3, sq: 17, skv: 17, d: 8 };
        let q = random_tensor(1, &[3, 17, 1, 8], DType::F32);
        let k = random_tensor(2, &[3, 17, 1, 8], DType::F32);
        let v = random_tensor(3, &[3, 17, 1, 8], DType::F32);
        let fused =
            ops::attention(&q, &k, &v, AttentionSpec::new(true, 8), None).unwrap().to_vec_f32().unwrap();
        let unfused = naive(&q, &k, &v, &c).unwrap().to_vec_f32().unwrap();
        let h = |t: &Tensor| t.to_vec_f32().unwrap()[..17 * 8].to_vec();
        let want = reference_head(&h(&q), &h(&k), &h(&v), 17, 17, 8, true);
        assert!(check_close("fused", &fused[..17 * 8], &want, 1e-5).is_ok());
        assert!(check_close("naive", &unfused[..17 * 8], &want, 1e-5).is_ok());
        // Non-causal reference must not match a causal output.
        let wrong = reference_head(&h(&q), &h(&k), &h(&v), 17, 17, 8, false);
        assert!(check_close("wrong", &fused[..17 * 8], &wrong, 1e-3).is_err());
    }
}
