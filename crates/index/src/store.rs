//! [`RowStore`]: vectors kept as one `[n, dim]` tensor on the index's device, rows sorted by key:
//! the id for a flat index, (list, id) for an IVF index (so each list is a contiguous run of
//! rows, sorted by id within it).
//!
//! Keeping a flat index's rows in id order is what makes the search op's tie-break (the smaller
//! row index first) an id tie-break, with no extra work at search time. Appending ids larger than every
//! stored id — the common case — is a plain concatenation; other adds merge. Tensors are
//! immutable, so a change builds a new row tensor; callers batch their adds. On the host the
//! rows are merged byte by byte; on a GPU the stored rows never leave the device: the new rows
//! are uploaded beside them and one gather (the embedding op) puts every row in id order, or
//! keeps the rows a removal leaves. `merged`/`without` return a new store and leave `self` untouched, so an index can
//! prepare every change first and commit it only when nothing can fail any more.

use std::sync::Arc;

use ragtune_compute::{ByteOwner, DType, Device, Tensor, ops};

use crate::error::{IndexError, Result};

#[derive(Clone, Debug)]
pub(crate) struct RowStore<K = u64> {
    pub dim: usize,
    pub dtype: DType,
    /// The row keys, strictly ascending; row `r` of `vectors` holds key `ids[r]`.
    pub ids: Vec<K>,
    /// `[ids.len(), dim]` of `dtype` on the index's device; `None` while empty.
    pub vectors: Option<Tensor>,
}

impl<K: Ord + Copy> RowStore<K> {
    pub fn new(dim: usize, dtype: DType) -> RowStore<K> {
        RowStore { dim, dtype, ids: Vec::new(), vectors: None }
    }

    /// A store from ids (strictly ascending) and their rows (`[len, dim]` of `dtype`, any device).
    pub fn from_parts(dim: usize, dtype: DType, ids: Vec<K>, vectors: Option<Tensor>) -> RowStore<K> {
        let vectors = vectors.filter(|_| !ids.is_empty());
        RowStore { dim, dtype, ids, vectors }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    fn row_bytes(&self) -> usize {
        self.dim * self.dtype.size()
    }

    /// The stored rows as a host tensor (downloaded when on a device).
    pub fn host_vectors(&self) -> Result<Option<Tensor>> {
        Ok(self.vectors.as_ref().map(|v| v.to_host()).transpose()?)
    }

    /// This store with `new_ids` (strictly ascending, none held yet) and their rows `new_rows`
    /// (a host tensor `[len, dim]` of the storage dtype, same order) merged in.
    pub fn merged(&self, new_ids: &[K], new_rows: &Tensor, device: &Device) -> Result<RowStore<K>> {
        if new_ids.is_empty() {
            return Ok(self.clone());
        }
        let (ids, rows) = merge_order(&self.ids, new_ids);
        let appended = rows.iter().enumerate().all(|(i, &r)| i == r);
        if let Some(old) = self.vectors.as_ref().filter(|_| matches!(device, Device::Gpu(_))) {
            // `[old; new]` on the device (the old rows copied device to device), then gathered
            // into id order unless the new ids all come after the old ones.
            let mut both = Tensor::zeros(&[ids.len(), self.dim], self.dtype, device)?;
            ops::copy_into(&mut both, old, 0)?;
            ops::copy_into(&mut both, &new_rows.to_device(device)?, self.ids.len() * self.dim)?;
            if appended {
                return Ok(RowStore { dim: self.dim, dtype: self.dtype, ids, vectors: Some(both) });
            }
            return self.gathered(&both, ids, &rows, device);
        }
        let new_bytes =
            new_rows.host_bytes().ok_or_else(|| internal("merged: new rows must be on the host"))?;
        let old = self.host_vectors()?;
        let old_bytes = old.as_ref().and_then(|t| t.host_bytes()).unwrap_or(&[]);
        let bytes = if appended {
            [old_bytes, new_bytes].concat()
        } else {
            row_bytes_of(old_bytes, new_bytes, &rows, self.row_bytes())
        };
        self.with_rows(ids, bytes, device)
    }

    /// This store without the rows of `remove` (strictly ascending, every one held).
    pub fn without(&self, remove: &[K], device: &Device) -> Result<RowStore<K>> {
        if remove.is_empty() {
            return Ok(self.clone());
        }
        let (ids, rows) = kept_order(&self.ids, remove);
        if let Some(old) = self.vectors.as_ref().filter(|_| matches!(device, Device::Gpu(_))) {
            return self.gathered(old, ids, &rows, device);
        }
        let old = self.host_vectors()?;
        let old_bytes = old.as_ref().and_then(|t| t.host_bytes()).unwrap_or(&[]);
        self.with_rows(ids, row_bytes_of(old_bytes, &[], &rows, self.row_bytes()), device)
    }

    /// A store holding `ids`, whose rows are `rows` of `from` (a device tensor), gathered on the
    /// device.
    fn gathered(&self, from: &Tensor, ids: Vec<K>, rows: &[usize], device: &Device) -> Result<RowStore<K>> {
        if ids.is_empty() {
            return Ok(RowStore { dim: self.dim, dtype: self.dtype, ids, vectors: None });
        }
        // Row counts of an index fit in 31 bits: the search kernels index rows with i32 too.
        let index: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let index = Tensor::from_slice(&index, &[index.len()])?.to_device(device)?;
        let vectors = ops::embedding(from, &index)?;
        Ok(RowStore { dim: self.dim, dtype: self.dtype, ids, vectors: Some(vectors) })
    }

    /// A store holding `ids` and their row bytes, uploaded to `device` (no copy on the CPU:
    /// the tensor views the vector's allocation).
    fn with_rows(&self, ids: Vec<K>, bytes: Vec<u8>, device: &Device) -> Result<RowStore<K>> {
        let vectors = if ids.is_empty() {
            None
        } else {
            let len = bytes.len();
            let owner: Arc<dyn ByteOwner> = Arc::new(bytes);
            let t = Tensor::from_shared_bytes(owner, 0, len, self.dtype, &[ids.len(), self.dim])?;
            Some(t.to_device(device)?)
        };
        Ok(RowStore { dim: self.dim, dtype: self.dtype, ids, vectors })
    }

    /// The same rows on `device`.
    pub fn to_device(&self, device: &Device) -> Result<RowStore<K>> {
        let vectors = self.vectors.as_ref().map(|v| v.to_device(device)).transpose()?;
        Ok(RowStore { vectors, ..self.clone() })
    }
}

/// A batch of new rows sorted by id: the ids ascending and the f32 rows in the same order.
pub(crate) fn sort_batch(ids: &[u64], rows: &[f32], dim: usize) -> (Vec<u64>, Vec<f32>) {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_unstable_by_key(|&i| ids[i]);
    let sorted_ids = order.iter().map(|&i| ids[i]).collect();
    let mut sorted_rows = Vec::with_capacity(rows.len());
    for &i in &order {
        sorted_rows.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
    }
    (sorted_ids, sorted_rows)
}

/// The first id that appears twice in `ids`, as an error naming both rows.
pub(crate) fn check_unique(ids: &[u64]) -> Result<()> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_unstable_by_key(|&i| (ids[i], i));
    for w in order.windows(2) {
        if ids[w[0]] == ids[w[1]] {
            return Err(IndexError::DuplicateIdInBatch { id: ids[w[0]], first_row: w[0], second_row: w[1] });
        }
    }
    Ok(())
}

fn internal(detail: &str) -> IndexError {
    IndexError::invalid("row store", detail.to_string())
}

/// The ids of `old` and `new` (both strictly ascending, disjoint) in one ascending list, and for
/// each the row it comes from in `[old; new]`.
fn merge_order<K: Ord + Copy>(old: &[K], new: &[K]) -> (Vec<K>, Vec<usize>) {
    let (mut ids, mut rows) =
        (Vec::with_capacity(old.len() + new.len()), Vec::with_capacity(old.len() + new.len()));
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if j == new.len() || (i < old.len() && old[i] < new[j]) {
            ids.push(old[i]);
            rows.push(i);
            i += 1;
        } else {
            ids.push(new[j]);
            rows.push(old.len() + j);
            j += 1;
        }
    }
    (ids, rows)
}

/// The ids of `held` not in `remove` (both strictly ascending), and the row each sits in.
fn kept_order<K: Ord + Copy>(held: &[K], remove: &[K]) -> (Vec<K>, Vec<usize>) {
    let mut r = remove.iter().peekable();
    let (mut ids, mut rows) = (Vec::new(), Vec::new());
    for (row, &id) in held.iter().enumerate() {
        if r.peek() == Some(&&id) {
            r.next();
        } else {
            ids.push(id);
            rows.push(row);
        }
    }
    (ids, rows)
}

/// The bytes of `rows` of `[old; new]`, rows of `rb` bytes.
fn row_bytes_of(old: &[u8], new: &[u8], rows: &[usize], rb: usize) -> Vec<u8> {
    let n_old = old.len() / rb.max(1);
    let mut out = Vec::with_capacity(rows.len() * rb);
    for &r in rows {
        let (src, i) = if r < n_old { (old, r) } else { (new, r - n_old) };
        out.extend_from_slice(&src[i * rb..(i + 1) * rb]);
    }
    out
}
