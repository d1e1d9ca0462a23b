//! The `lora` suite's backward row: a LoRA projection's backward on a frozen base as the trainer
//! runs it (the base's dx GEMM, then `ops::lora_backward` adding the adapter's part into that dx
//! in place and returning dA, dB) against the dx GEMM alone and the unfused path (four GEMMs, a
//! scale and an add). Checked first against an f64 reference on sampled rows and on dA, dB.

use anyhow::Result;
use ragtune_compute::{DType, Tensor, ops};

use super::Ctx;
use super::gemm::spread;
use crate::harness::{check_close, median_time};
use crate::random_tensor;
use crate::report::Row;

const SCALE: f32 = 2.0;

/// The inputs: x `[m, k]`, W `[n, k]`, A `[r, k]`, B `[n, r]`, dy `[m, n]`, u = x Aᵀ.
struct Inputs {
    x: Tensor,
    w: Tensor,
    a2: Tensor,
    b2: Tensor,
    dy: Tensor,
    u: Tensor,
    ids: Tensor,
}

impl Inputs {
    fn new(m: usize, k: usize, n: usize, r: usize) -> Result<Inputs> {
        let x = random_tensor(31, &[m, k], DType::F32);
        let a2 = random_tensor(33, &[r, k], DType::F32);
        let ids = Tensor::from_slice(&vec![0i32; m], &[m])?;
        let u = ops::lora_shrink(&x, &a2.reshape(&[1, r, k])?, &ids)?;
        Ok(Inputs {
            w: random_tensor(32, &[n, k], DType::F32),
            b2: random_tensor(34, &[n, r], DType::F32),
            dy: random_tensor(35, &[m, n], DType::F32),
            x,
            a2,
            u,
            ids,
        })
    }

    /// ragtune's path: `(dx, dA, dB)`.
    fn fused(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let (r, k, n) = (self.a2.shape()[0], self.a2.shape()[1], self.b2.shape()[0]);
        let (mut dx, _) = ops::linear_backward(None, &self.w, &self.dy)?;
        let (a, b) = (self.a2.reshape(&[1, r, k])?, self.b2.reshape(&[1, n, r])?);
        let args = ops::LoraBackward {
            x: &self.x,
            mask: None,
            dy: &self.dy,
            u: &self.u,
            a: &a,
            b: &b,
            ids: &self.ids,
            scales: &[SCALE],
        };
        let (da, db) = ops::lora_backward(&args, &mut dx)?;
        Ok((dx, da, db))
    }

    /// The unfused path the trainer ran before: `(dx, dA, dB)`.
    fn unfused(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let (dx, _) = ops::linear_backward(None, &self.w, &self.dy)?;
        let z = ops::scale(&self.u, SCALE)?;
        let (dz, db) = ops::linear_backward(Some(&z), &self.b2, &self.dy)?;
        let (dxl, da) = ops::linear_backward(Some(&self.x), &self.a2, &ops::scale(&dz, SCALE)?)?;
        Ok((ops::add(&dx, &dxl)?, da.expect("x given"), db.expect("z given")))
    }

    /// f64: dx on `rows`, then all of dA and dB.
    fn reference(&self, rows: &[usize]) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        let (r, k, n) = (self.a2.shape()[0], self.a2.shape()[1], self.b2.shape()[0]);
        let f = |t: &Tensor| -> Result<Vec<f64>> { Ok(t.to_vec_f32()?.into_iter().map(f64::from).collect()) };
        let (x, w, a, b, dy) = (f(&self.x)?, f(&self.w)?, f(&self.a2)?, f(&self.b2)?, f(&self.dy)?);
        let m = self.x.shape()[0];
        // du = s · dy B, u = x Aᵀ, both in f64.
        let du: Vec<f64> = (0..m * r)
            .map(|e| SCALE as f64 * (0..n).map(|o| dy[e / r * n + o] * b[o * r + e % r]).sum::<f64>())
            .collect();
        let u: Vec<f64> =
            (0..m * r).map(|e| (0..k).map(|p| x[e / r * k + p] * a[e % r * k + p]).sum()).collect();
        let mut dx = Vec::with_capacity(rows.len() * k);
        for &i in rows {
            for p in 0..k {
                let base: f64 = (0..n).map(|o| dy[i * n + o] * w[o * k + p]).sum();
                dx.push(base + (0..r).map(|j| du[i * r + j] * a[j * k + p]).sum::<f64>());
            }
        }
        let da = (0..r * k).map(|e| (0..m).map(|i| du[i * r + e / k] * x[i * k + e % k]).sum()).collect();
        let db = (0..n * r)
            .map(|e| SCALE as f64 * (0..m).map(|i| dy[i * n + e / r] * u[i * r + e % r]).sum::<f64>())
            .collect();
        Ok((dx, da, db))
    }
}

/// Checks, then times, the backward at (m, k, n, r).
pub fn row(ctx: &Ctx, (m, k, n, r): (usize, usize, usize, usize)) -> Result<Row> {
    let t = Inputs::new(m, k, n, r)?;
    let shape = format!("m={m} k={k} n={n} r={r} f32");
    let picked = spread(m);
    let (want_dx, want_da, want_db) = t.reference(&picked)?;
    let pick = |dx: &Tensor| -> Result<Vec<f32>> {
        let v = dx.to_vec_f32()?;
        Ok(picked.iter().flat_map(|&i| v[i * k..(i + 1) * k].to_vec()).collect())
    };
    let mut err = 0f64;
    for (what, (dx, da, db)) in [("LoRA backward", t.fused()?), ("unfused LoRA backward", t.unfused()?)] {
        err = err.max(check_close(&format!("{what} dx {shape}"), &pick(&dx)?, &want_dx, 1e-5)?);
        err = err.max(check_close(&format!("{what} dA {shape}"), &da.to_vec_f32()?, &want_da, 1e-5)?);
        err = err.max(check_close(&format!("{what} dB {shape}"), &db.to_vec_f32()?, &want_db, 1e-5)?);
    }
    let (ours, reps) = median_time(ctx.budget, || {
        std::hint::black_box(t.fused().expect("checked above"));
    });
    let (base, _) = median_time(ctx.budget, || {
        std::hint::black_box(ops::linear_backward(None, &t.w, &t.dy).expect("same shapes"));
    });
    let (plain, _) = median_time(ctx.budget, || {
        std::hint::black_box(t.unfused().expect("checked above"));
    });
    let flops = 2.0 * (m * k * n) as f64 + 4.0 * (m * r * (k + n)) as f64;
    let bytes = 4.0 * (2 * m * k + n * k + 2 * (r * k + n * r) + m * n) as f64;
    let name = "LoRA backward (dx GEMM + lora_backward)";
    Ok(Row::new("lora", name, &shape, ours, reps, flops, bytes, &ctx.ceilings)?
        .with_peer("base dx GEMM alone", base)
        .with_peer("unfused LoRA backward GEMMs", plain)
        .with_check(format!("16 rows of dx, all of dA, dB vs f64: rel err {err:.1e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backward_paths_match_f64_and_a_wrong_reference_is_seen() {
        let t = Inputs::new(70, 9, 11, 3).unwrap();
        let rows: Vec<usize> = (0..70).collect();
        let (dx, da, db) = t.reference(&rows).unwrap();
        for (got_dx, got_da, got_db) in [t.fused().unwrap(), t.unfused().unwrap()] {
            assert!(check_close("dx", &got_dx.to_vec_f32().unwrap(), &dx, 1e-5).is_ok());
            assert!(check_close("dA", &got_da.to_vec_f32().unwrap(), &da, 1e-5).is_ok());
            assert!(check_close("dB", &got_db.to_vec_f32().unwrap(), &db, 1e-5).is_ok());
        }
        // The base's dx alone lacks the adapter's part: the check must see the difference.
        let (base, _) = ops::linear_backward(None, &t.w, &t.dy).unwrap();
        assert!(check_close("base dx", &base.to_vec_f32().unwrap(), &dx, 1e-3).is_err());
    }
}
