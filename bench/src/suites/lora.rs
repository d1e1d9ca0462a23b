//! `lora`: a LoRA layer `y = x Wᵀ + s · (x Aᵀ) Bᵀ` as ragtune serves it (base GEMM, then
//! `lora_shrink` + `lora_expand`) against its peers in the same run: the plain base GEMM alone
//! (the bar on a GPU: the LoRA layer ≤ 1.05× of it) and the unfused path (two more GEMMs and an
//! add over the whole batch). Checked first on sampled rows against an f64 reference. Each shape
//! also gets the backward's row (`lora_backward.rs`).

use anyhow::Result;
use ragtune_compute::ops::{self, MatmulSpec};
use ragtune_compute::{DType, Tensor};

use super::Ctx;
use super::gemm::spread;
use crate::harness::{check_close, median_time};
use crate::random_tensor;
use crate::report::Row;

const SCALE: f32 = 2.0;

/// Rows `rows` of `x Wᵀ + s (x Aᵀ) Bᵀ` in f64: x `[m, k]`, W `[n, k]`, A `[r, k]`, B `[n, r]`;
/// `dims` = (k, n, r).
pub fn reference_rows(
    x: &[f32],
    w: &[f32],
    a: &[f32],
    b: &[f32],
    (k, n, r): (usize, usize, usize),
    rows: &[usize],
) -> Vec<f64> {
    let dot = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    let mut out = Vec::with_capacity(rows.len() * n);
    for &i in rows {
        let xi = &x[i * k..(i + 1) * k];
        let u: Vec<f64> = (0..r).map(|j| dot(xi, &a[j * k..(j + 1) * k])).collect();
        for o in 0..n {
            let low: f64 = (0..r).map(|j| u[j] * b[o * r + j] as f64).sum();
            out.push(dot(xi, &w[o * k..(o + 1) * k]) + SCALE as f64 * low);
        }
    }
    out
}

/// ragtune's path: the base GEMM, then the adapter's shrink and expand.
fn lora_layer(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let mut y = ops::linear(x, w)?;
    let u = ops::lora_shrink(x, a, ids)?;
    ops::lora_expand(&mut y, &u, b, ids, &[SCALE])?;
    Ok(y)
}

/// The unfused path: x Wᵀ + s · ((x Aᵀ) Bᵀ) with whole-batch GEMMs and an add.
fn unfused(x: &Tensor, w: &Tensor, a2: &Tensor, b2: &Tensor) -> Result<Tensor> {
    let y = ops::linear(x, w)?;
    let u = ops::linear(x, a2)?;
    let low = ops::matmul_ex(&u, b2, MatmulSpec { trans_b: true, alpha: SCALE, ..Default::default() })?;
    Ok(ops::add(&y, &low)?)
}

pub fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let shapes: &[(usize, usize, usize, usize)] =
        if ctx.quick { &[(256, 1024, 1024, 16)] } else { &[(256, 1024, 1024, 16), (512, 2048, 2048, 16)] };
    let mut rows = Vec::new();
    for &(m, k, n, r) in shapes {
        let x = random_tensor(21, &[m, k], DType::F32);
        let w = random_tensor(22, &[n, k], DType::F32);
        let a2 = random_tensor(23, &[r, k], DType::F32);
        let b2 = random_tensor(24, &[n, r], DType::F32);
        let (a, b) = (a2.reshape(&[1, r, k])?, b2.reshape(&[1, n, r])?);
        let ids = Tensor::from_slice(&vec![0i32; m], &[m])?;
        let y = lora_layer(&x, &w, &a, &b, &ids)?;
        let picked = spread(m);
        let want = reference_rows(
            &x.to_vec_f32()?,
            &w.to_vec_f32()?,
            &a2.to_vec_f32()?,
            &b2.to_vec_f32()?,
            (k, n, r),
            &picked,
        );
        let pick = |t: &Tensor| -> Result<Vec<f32>> {
            let v = t.to_vec_f32()?;
            Ok(picked.iter().flat_map(|&i| v[i * n..(i + 1) * n].to_vec()).collect())
        };
        let shape = format!("m={m} k={k} n={n} r={r} f32");
        let err = check_close(&format!("LoRA layer {shape}"), &pick(&y)?, &want, 1e-5)?;
        check_close(&format!("unfused LoRA {shape}"), &pick(&unfused(&x, &w, &a2, &b2)?)?, &want, 1e-5)?;

        let (ours, reps) = median_time(ctx.budget, || {
            std::hint::black_box(lora_layer(&x, &w, &a, &b, &ids).expect("checked above"));
        });
        let (base, _) = median_time(ctx.budget, || {
            std::hint::black_box(ops::linear(&x, &w).expect("same shapes"));
        });
        let (plain, _) = median_time(ctx.budget, || {
            std::hint::black_box(unfused(&x, &w, &a2, &b2).expect("checked above"));
        });
        let flops = 2.0 * (m * k * n) as f64 + 2.0 * (m * r * (k + n)) as f64;
        let bytes = 4.0 * (m * k + n * k + r * k + n * r + m * n) as f64;
        let name = "LoRA layer (shrink + expand)";
        rows.push(
            Row::new("lora", name, &shape, ours, reps, flops, bytes, &ctx.ceilings)?
                .with_peer("base GEMM alone", base)
                .with_peer("unfused LoRA GEMMs", plain)
                .with_check(format!("16 rows vs f64: rel err {err:.1e}")),
        );
        rows.push(super::lora_backward::row(ctx, (m, k, n, r))?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lora_paths_match_the_reference_and_a_wrong_scale_does_not() {
        let (m, k, n, r) = (5, 7, 6, 2);
        let x = random_tensor(1, &[m, k], DType::F32);
        let w = random_tensor(2, &[n, k], DType::F32);
        let a2 = random_tensor(3, &[r, k], DType::F32);
        let b2 = random_tensor(4, &[n, r], DType::F32);
        let ids = Tensor::from_slice(&vec![0i32; m], &[m]).unwrap();
        let y = lora_layer(&x, &w, &a2.reshape(&[1, r, k]).unwrap(), &b2.reshape(&[1, n, r]).unwrap(), &ids)
            .unwrap();
        let rows: Vec<usize> = (0..m).collect();
        let v = |t: &Tensor| t.to_vec_f32().unwrap();
        let want = reference_rows(&v(&x), &v(&w), &v(&a2), &v(&b2), (k, n, r), &rows);
        assert!(check_close("lora", &v(&y), &want, 1e-5).is_ok());
        assert!(check_close("unfused", &v(&unfused(&x, &w, &a2, &b2).unwrap()), &want, 1e-5).is_ok());
        // The base GEMM alone is not the LoRA layer: the check must see the difference.
        assert!(check_close("base only", &v(&ops::linear(&x, &w).unwrap()), &want, 1e-3).is_err());
    }
}
