//! Checking vectors and queries before they touch an index: a 2-D float array of the index's
//! width, every value finite, no zero vector under cosine. Returns the rows as host f32 (already
//! normalized for cosine), from which the index makes its storage dtype. Nothing is modified
//! here, so an index that calls this first changes nothing when it fails.

use ragtune_compute::{Device, Tensor, ops};

use crate::error::{IndexError, Result};
use crate::metric::Metric;

/// `x` as `[n, dim]` host f32 rows, checked, and normalized when the metric asks for it.
/// `ids` (when given) only makes error messages name the id of a bad row.
pub(crate) fn checked_rows(
    what: &'static str,
    x: &Tensor,
    dim: usize,
    metric: Metric,
    ids: Option<&[u64]>,
) -> Result<Vec<f32>> {
    if x.rank() != 2 {
        return Err(IndexError::Shape {
            what,
            detail: format!(
                "expected a 2-D [n, {dim}] array, got shape {:?}: reshape it to [n, {dim}]",
                x.shape()
            ),
        });
    }
    if !x.dtype().is_float() {
        return Err(IndexError::Shape {
            what,
            detail: format!("expected f32, f16 or bf16 values, got {}: cast them first", x.dtype()),
        });
    }
    let (n, d) = (x.shape()[0], x.shape()[1]);
    if d != dim {
        return Err(IndexError::Dimension { what, expected: dim, got: d });
    }
    let rows = x.to_vec_f32()?;
    if let Some(pos) = rows.iter().position(|v| !v.is_finite()) {
        let row = pos / dim;
        return Err(IndexError::NonFinite {
            what,
            row,
            id: ids.map(|ids| ids[row]),
            col: pos % dim,
            value: rows[pos],
        });
    }
    if !metric.normalizes() || n == 0 {
        return Ok(rows);
    }
    if let Some(row) = rows.chunks_exact(dim).position(|r| r.iter().all(|&v| v == 0.0)) {
        return Err(IndexError::ZeroVector { what, row, id: ids.map(|ids| ids[row]) });
    }
    let t = Tensor::from_slice(&rows, &[n, dim])?;
    Ok(ops::l2_normalize(&t)?.to_vec::<f32>()?)
}

/// Host f32 rows `[n, dim]` as a tensor of `dtype` on `device`.
pub(crate) fn to_storage(
    rows: &[f32],
    dim: usize,
    dtype: ragtune_compute::DType,
    device: &Device,
) -> Result<Tensor> {
    let t = Tensor::from_slice(rows, &[rows.len() / dim.max(1), dim])?;
    Ok(ops::cast(&t, dtype)?.to_device(device)?)
}

/// The storage dtype must be a float type.
pub(crate) fn check_storage_dtype(dtype: ragtune_compute::DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(IndexError::invalid(
            "index dtype",
            format!("vectors are stored as f32, f16 or bf16, not {dtype}: pick one of those"),
        ))
    }
}

/// The dimension must be at least 1.
pub(crate) fn check_dim(dim: usize) -> Result<()> {
    if dim == 0 {
        return Err(IndexError::invalid("index dim", "the dimension must be at least 1"));
    }
    Ok(())
}
