//! [`TransposedWeight`]: a linear layer's f32 weight copied once as `[in, out]`, so that products
//! of many rows on the CPU multiply `x · V` with V row-major instead of `x · Wᵀ`.
//!
//! Why: the `gemm` crate is much slower on `x · Wᵀ` with W stored `[out, in]` (PyTorch's layout,
//! the one every file and the GPU path use) than on the same product with the weight stored
//! `[in, out]`. On a 2-core AMD EPYC Zen 4 (bench/examples/mm_orient, 2026-12-06), the copy took
//! a SmolLM2-135M down projection (1536 → 576) from 3.1 to 1.5 ms at 128 rows and from 6.2 to
//! 4.6 ms at 512, the 576 → 576 projections from 0.62 to 0.46 ms at 128 rows, and a 256 × 1024²
//! product from 4.7 to 2.7 ms; at no shape tried was it slower. Transposing per call costs about
//! what it saves at these sizes, so the copy is kept.
//!
//! The cost is memory: the layer holds its weight twice once a product of more than
//! [`cpu::gemv::MAX_ROWS`] rows has run (decode steps use the `[out, in]` weight directly and
//! make no copy). Weights above [`MAX_COPY_BYTES`] are not copied.
//!
//! The copy is tied to the weight tensor it was made from: the slot keeps a clone of it (tensors
//! are values whose in-place ops copy shared storage first), so a weight that is replaced or
//! rewritten no longer matches the clone's storage and the copy is made again. Whether a call
//! uses the copy depends only on the weight and the row count, never on earlier calls, so the
//! same input always rounds the same way.

use std::sync::{Mutex, PoisonError};

use ragtune_compute::{DType, Tensor, cpu};

use crate::error::Result;

/// The largest weight (bytes) that gets a transposed copy: 4096 × 4096 f32.
pub const MAX_COPY_BYTES: usize = 64 << 20;

/// The weight as last seen and its transpose `[in, out]`.
#[derive(Default)]
pub struct TransposedWeight(Mutex<Option<(Tensor, Tensor)>>);

impl TransposedWeight {
    /// `w` (`[out, in]`) transposed to `[in, out]` when a product of `rows` rows should use it:
    /// f32 on the host, more than a decode step's rows, at most [`MAX_COPY_BYTES`]. Made at the
    /// first such call and kept while `w` is the same tensor.
    pub fn get(&self, w: &Tensor, rows: usize) -> Result<Option<Tensor>> {
        if rows <= cpu::gemv::MAX_ROWS
            || w.dtype() != DType::F32
            || !w.is_host()
            || w.rank() != 2
            || w.size_bytes() > MAX_COPY_BYTES
        {
            return Ok(None);
        }
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((source, t)) = &*slot
            && same_storage(source, w)
        {
            return Ok(Some(t.clone()));
        }
        let t = transpose(w)?;
        *slot = Some((w.clone(), t.clone()));
        Ok(Some(t))
    }
}

/// Whether two host tensors are views of the same bytes with the same shape. The slot's clone
/// keeps its buffer alive, so an equal address cannot be a new buffer at an old one's place.
fn same_storage(a: &Tensor, b: &Tensor) -> bool {
    match (a.host_bytes(), b.host_bytes()) {
        (Some(x), Some(y)) => x.as_ptr() == y.as_ptr() && x.len() == y.len() && a.shape() == b.shape(),
        _ => false,
    }
}

/// `[rows, cols]` f32 → `[cols, rows]`, in 32 × 32 tiles so that reads and writes stay in cache.
fn transpose(w: &Tensor) -> Result<Tensor> {
    const TILE: usize = 32;
    let (rows, cols) = (w.shape()[0], w.shape()[1]);
    let src = w.as_slice::<f32>()?;
    let mut out = vec![0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    Ok(Tensor::from_slice(&out, &[cols, rows])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragtune_compute::ops;

    fn seeded(seed: u32, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        Tensor::from_slice(&v, shape).unwrap()
    }

    #[test]
    fn the_copy_is_the_exact_transpose_and_is_reused() {
        let w = seeded(1, &[37, 70]);
        let slot = TransposedWeight::default();
        let t = slot.get(&w, 64).unwrap().expect("f32, 64 rows: copied");
        assert_eq!(t.shape(), [70, 37]);
        let (wv, tv) = (w.to_vec_f32().unwrap(), t.to_vec_f32().unwrap());
        for r in 0..37 {
            for c in 0..70 {
                assert_eq!(tv[c * 37 + r], wv[r * 70 + c], "({r}, {c})");
            }
        }
        let again = slot.get(&w.clone(), 64).unwrap().unwrap();
        assert_eq!(again.host_bytes().unwrap().as_ptr(), t.host_bytes().unwrap().as_ptr(), "not rebuilt");
    }

    #[test]
    fn a_replaced_weight_gets_a_new_copy() {
        let slot = TransposedWeight::default();
        let (w1, w2) = (seeded(1, &[16, 24]), seeded(2, &[16, 24]));
        let t1 = slot.get(&w1, 16).unwrap().unwrap().to_vec_f32().unwrap();
        let t2 = slot.get(&w2, 16).unwrap().unwrap().to_vec_f32().unwrap();
        assert_ne!(t1, t2);
        assert_eq!(t2[1], w2.to_vec_f32().unwrap()[24], "column 0, row 1 of the new weight");
    }

    #[test]
    fn decode_rows_and_other_dtypes_keep_the_stored_weight() {
        let slot = TransposedWeight::default();
        let w = seeded(3, &[8, 8]);
        assert!(slot.get(&w, cpu::gemv::MAX_ROWS).unwrap().is_none());
        let bf = ops::cast(&w, DType::BF16).unwrap();
        assert!(slot.get(&bf, 64).unwrap().is_none());
    }

    #[test]
    fn the_product_through_the_copy_matches_x_times_w_transposed() {
        let (x, w) = (seeded(4, &[40, 96]), seeded(5, &[56, 96]));
        let t = TransposedWeight::default().get(&w, 40).unwrap().unwrap();
        let fast = ops::matmul(&x, &t).unwrap().to_vec_f32().unwrap();
        let (xv, wv) = (x.to_vec_f32().unwrap(), w.to_vec_f32().unwrap());
        for i in 0..40 {
            for j in 0..56 {
                let want: f64 = (0..96).map(|k| xv[i * 96 + k] as f64 * wv[j * 96 + k] as f64).sum();
                assert!((fast[i * 56 + j] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "({i}, {j})");
            }
        }
    }

    #[test]
    fn a_biased_layer_matches_f64_through_the_copy_and_the_decode_path() {
        // 40 rows: the copy with the bias written first (matmul_bias); 3 rows: the stored
        // weight's gemv and a separate add. Both are x·Wᵀ + b.
        let (w, b) = (seeded(6, &[56, 96]), seeded(7, &[56]));
        let layer = crate::linear::Linear::dense(w.clone(), Some(ops::scale(&b, 10.0).unwrap()));
        let (wv, bv) = (w.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        for rows in [40, 3] {
            let x = seeded(8 + rows as u32, &[rows, 96]);
            let y = layer.forward_base(&x).unwrap();
            assert_eq!(y.shape(), [rows, 56]);
            let (yv, xv) = (y.to_vec_f32().unwrap(), x.to_vec_f32().unwrap());
            for i in 0..rows {
                for j in 0..56 {
                    let dot: f64 = (0..96).map(|k| xv[i * 96 + k] as f64 * wv[j * 96 + k] as f64).sum();
                    let want = dot + 10.0 * bv[j] as f64;
                    let got = yv[i * 56 + j] as f64;
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{rows} rows ({i}, {j})");
                }
            }
        }
        assert!(layer.transposed.get(&w, 40).unwrap().is_some(), "the 40-row call used the copy");
    }
}
