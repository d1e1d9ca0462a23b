//! [`PreparedWeight`]: a linear layer's f32 weight laid out once for products of many rows on
//! the CPU, in the layout the CPU's matrix product is fastest at.
//!
//! - Where products run on ragtune's own SGEMM, AVX2 or AVX-512 ([`cpu::matmul::packed::in_use`]), the
//!   weight is packed into that kernel's 16-column panels ([`PackedB`]), so no call packs it
//!   again, and the bias and BERT's GELU are applied to each tile as it finishes
//!   (`ops::linear_packed`). On a 2-core Zen 3 packing B had been 3–4% of an embedding run's and
//!   of a LoRA training step's samples.
//! - Elsewhere (on the `gemm` crate: `RAGTUNE_SGEMM=gemm-crate`) it is copied as `[in, out]`, so that products
//!   multiply `x · V` with V row-major instead of `x · Wᵀ`: the crate is much slower on `x · Wᵀ`
//!   with W stored `[out, in]` (PyTorch's layout, the one every file and the GPU path use). On a
//!   2-core AMD EPYC Zen 4 (bench/examples/mm_orient, 2026-12-06), the copy took a SmolLM2-135M
//!   down projection (1536 → 576) from 3.1 to 1.5 ms at 128 rows and from 6.2 to 4.6 ms at 512,
//!   the 576 → 576 projections from 0.62 to 0.46 ms at 128 rows, and a 256 × 1024² product from
//!   4.7 to 2.7 ms; at no shape tried was it slower.
//!
//! The cost is memory: the layer holds its weight twice once a product of more than
//! [`cpu::gemv::MAX_ROWS`] rows has run (decode steps use the `[out, in]` weight directly and
//! make no copy). Weights above [`MAX_COPY_BYTES`] are not prepared.
//!
//! The prepared form is tied to the weight tensor it was made from: the slot keeps a clone of it
//! (tensors are values whose in-place ops copy shared storage first), so a weight that is
//! replaced or rewritten no longer matches the clone's storage and is prepared again. Whether a
//! call uses it depends only on the weight, the row count and the CPU, never on earlier calls,
//! so the same input always rounds the same way.

use std::sync::{Arc, Mutex, PoisonError};

use ragtune_compute::cpu::matmul::packed::PackedB;
use ragtune_compute::{DType, Tensor, cpu};

use crate::error::Result;

/// The largest weight (bytes) that gets prepared: 4096 × 4096 f32.
pub const MAX_COPY_BYTES: usize = 64 << 20;

/// A weight `[out, in]` laid out for products of many rows.
#[derive(Clone, Debug)]
pub enum Prepared {
    /// Packed for ragtune's blocked SGEMM (`ops::linear_packed`).
    Packed(Arc<PackedB>),
    /// Transposed to `[in, out]` (`ops::matmul` / `ops::matmul_bias`).
    Transposed(Tensor),
}

/// The weight as last seen and its prepared form.
#[derive(Default)]
pub struct PreparedWeight(Mutex<Option<(Tensor, Prepared)>>);

impl PreparedWeight {
    /// `w` (`[out, in]`) prepared for this CPU when a product of `rows` rows should use it: f32
    /// on the host, more than a decode step's rows, at most [`MAX_COPY_BYTES`]. Made at the first
    /// such call and kept while `w` is the same tensor.
    pub fn get(&self, w: &Tensor, rows: usize) -> Result<Option<Prepared>> {
        self.get_as(cpu::matmul::packed::in_use(), w, rows)
    }

    /// [`PreparedWeight::get`] with the form chosen by the caller (`packed` needs
    /// [`cpu::matmul::packed::in_use`] to be usable); tests reach both forms on one CPU this way.
    pub fn get_as(&self, packed: bool, w: &Tensor, rows: usize) -> Result<Option<Prepared>> {
        if rows <= cpu::gemv::MAX_ROWS
            || w.dtype() != DType::F32
            || !w.is_host()
            || w.rank() != 2
            || w.numel() == 0
            || w.size_bytes() > MAX_COPY_BYTES
        {
            return Ok(None);
        }
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((source, t)) = &*slot
            && same_storage(source, w)
            && matches!(t, Prepared::Packed(_)) == packed
        {
            return Ok(Some(t.clone()));
        }
        let t = if packed {
            let (out, inp) = (w.shape()[0], w.shape()[1]);
            Prepared::Packed(Arc::new(PackedB::from_weight(w.as_slice::<f32>()?, out, inp)))
        } else {
            Prepared::Transposed(transpose(w)?)
        };
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

    /// The forms this CPU can make: the transposed copy always, the packed one where the blocked
    /// SGEMM runs.
    fn forms() -> Vec<bool> {
        if cpu::matmul::packed::in_use() { vec![false, true] } else { vec![false] }
    }

    /// `x · Wᵀ (+ b)` through a prepared weight, as `Linear` computes it.
    fn product(p: &Prepared, x: &Tensor, b: Option<&Tensor>) -> Tensor {
        match p {
            Prepared::Packed(w) => ops::linear_packed(x, w, b, false).unwrap(),
            Prepared::Transposed(t) => match b {
                Some(b) => ops::matmul_bias(x, t, b).unwrap(),
                None => ops::matmul(x, t).unwrap(),
            },
        }
    }

    #[test]
    fn the_copy_is_the_exact_transpose_and_is_reused() {
        let w = seeded(1, &[37, 70]);
        let slot = PreparedWeight::default();
        let Some(Prepared::Transposed(t)) = slot.get_as(false, &w, 64).unwrap() else {
            panic!("f32, 64 rows: copied")
        };
        assert_eq!(t.shape(), [70, 37]);
        let (wv, tv) = (w.to_vec_f32().unwrap(), t.to_vec_f32().unwrap());
        for r in 0..37 {
            for c in 0..70 {
                assert_eq!(tv[c * 37 + r], wv[r * 70 + c], "({r}, {c})");
            }
        }
        let Some(Prepared::Transposed(again)) = slot.get_as(false, &w.clone(), 64).unwrap() else { panic!() };
        assert_eq!(again.host_bytes().unwrap().as_ptr(), t.host_bytes().unwrap().as_ptr(), "not rebuilt");
    }

    #[test]
    fn the_packed_form_is_reused_and_rebuilt_for_a_new_weight() {
        if !cpu::matmul::packed::in_use() {
            eprintln!("the blocked SGEMM does not run on this CPU: no packed form to check");
            return;
        }
        let slot = PreparedWeight::default();
        let w = seeded(1, &[37, 70]);
        let Some(Prepared::Packed(p)) = slot.get_as(true, &w, 64).unwrap() else { panic!("packed") };
        assert_eq!((p.k(), p.n()), (70, 37));
        let Some(Prepared::Packed(again)) = slot.get(&w.clone(), 64).unwrap() else { panic!("packed") };
        assert!(Arc::ptr_eq(&p, &again), "not rebuilt");
        let Some(Prepared::Packed(other)) = slot.get(&seeded(2, &[37, 70]), 64).unwrap() else { panic!() };
        assert!(!Arc::ptr_eq(&p, &other) && p.as_slice() != other.as_slice(), "a new weight, a new packing");
    }

    #[test]
    fn a_replaced_weight_gets_a_new_copy() {
        let slot = PreparedWeight::default();
        let (w1, w2) = (seeded(1, &[16, 24]), seeded(2, &[16, 24]));
        let copy = |w: &Tensor| match slot.get_as(false, w, 16).unwrap() {
            Some(Prepared::Transposed(t)) => t.to_vec_f32().unwrap(),
            other => panic!("{other:?}"),
        };
        let (t1, t2) = (copy(&w1), copy(&w2));
        assert_ne!(t1, t2);
        assert_eq!(t2[1], w2.to_vec_f32().unwrap()[24], "column 0, row 1 of the new weight");
    }

    #[test]
    fn decode_rows_other_dtypes_and_empty_weights_keep_the_stored_weight() {
        let slot = PreparedWeight::default();
        let w = seeded(3, &[8, 8]);
        for packed in forms() {
            assert!(slot.get_as(packed, &w, cpu::gemv::MAX_ROWS).unwrap().is_none());
            let bf = ops::cast(&w, DType::BF16).unwrap();
            assert!(slot.get_as(packed, &bf, 64).unwrap().is_none());
            assert!(slot.get_as(packed, &seeded(3, &[8, 0]), 64).unwrap().is_none());
        }
    }

    #[test]
    fn the_product_through_either_form_matches_x_times_w_transposed() {
        let (x, w, b) = (seeded(4, &[40, 96]), seeded(5, &[56, 96]), seeded(9, &[56]));
        let (xv, wv, bv) = (x.to_vec_f32().unwrap(), w.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        for packed in forms() {
            let p = PreparedWeight::default().get_as(packed, &w, 40).unwrap().unwrap();
            for bias in [None, Some(&b)] {
                let fast = product(&p, &x, bias).to_vec_f32().unwrap();
                for i in 0..40 {
                    for j in 0..56 {
                        let dot: f64 = (0..96).map(|k| xv[i * 96 + k] as f64 * wv[j * 96 + k] as f64).sum();
                        let want = dot + bias.map_or(0.0, |_| bv[j] as f64);
                        let got = fast[i * 56 + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "packed {packed} bias {}: ({i}, {j}) {got} against {want}",
                            bias.is_some()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_biased_layer_matches_f64_through_the_prepared_weight_and_the_decode_path() {
        // 40 rows: the prepared weight with the bias inside the product; 3 rows: the stored
        // weight's gemv and a separate add. Both are x·Wᵀ + b, and GELU of it through
        // forward_gelu (fused where the weight is packed), against the GELU op (itself checked
        // against f64 in the compute crate) on the same product.
        let (w, b) = (seeded(6, &[56, 96]), seeded(7, &[56]));
        let layer = crate::linear::Linear::dense(w.clone(), Some(ops::scale(&b, 10.0).unwrap()));
        let (wv, bv) = (w.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        for rows in [40, 3] {
            let x = seeded(8 + rows as u32, &[rows, 96]);
            let y = layer.forward_base(&x).unwrap();
            let g = layer.forward_gelu(&x).unwrap();
            assert_eq!((y.shape(), g.shape()), ([rows, 56].as_slice(), [rows, 56].as_slice()));
            let (yv, gv, xv) = (y.to_vec_f32().unwrap(), g.to_vec_f32().unwrap(), x.to_vec_f32().unwrap());
            let gelu_of_y = ops::gelu(&y).unwrap().to_vec_f32().unwrap();
            for i in 0..rows {
                for j in 0..56 {
                    let dot: f64 = (0..96).map(|k| xv[i * 96 + k] as f64 * wv[j * 96 + k] as f64).sum();
                    let want = dot + 10.0 * bv[j] as f64;
                    let (e, got) = (i * 56 + j, yv[i * 56 + j] as f64);
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{rows} rows ({i}, {j})");
                    let (g, want_g) = (gv[e], gelu_of_y[e]);
                    assert!(
                        (g - want_g).abs() <= 1e-5 * (1.0 + want_g.abs()),
                        "gelu, {rows} rows ({i}, {j})"
                    );
                }
            }
        }
        assert!(layer.prepared.get(&w, 40).unwrap().is_some(), "the 40-row call used the prepared weight");
    }
}
