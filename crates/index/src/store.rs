//! [`RowStore`]: vectors kept as one `[n, dim]` tensor on the index's device, rows sorted by id.
//!
//! Keeping rows in id order is what makes the search op's tie-break (the smaller row index
//! first) an id tie-break, with no extra work at search time. Appending ids larger than every
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
pub(crate) struct RowStore {
    pub dim: usize,
    pub dtype: DType,
    /// Strictly ascending; row `r` of `vectors` holds id `ids[r]`.
    pub ids: Vec<u64>,
    /// `[ids.len(), dim]` of `dtype` on the index's device; `None` while empty.
    pub vectors: Option<Tensor>,
}

impl RowStore {
    pub fn new(dim: usize, dtype: DType) -> RowStore {
        RowStore { dim, dtype, ids: Vec::new(), vectors: None }
    }

    /// A store from ids (strictly ascending) and their rows (`[len, dim]` of `dtype`, any device).
    pub fn from_parts(dim: usize, dtype: DType, ids: Vec<u64>, vectors: Option<Tensor>) -> RowStore {
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
    pub fn merged(&self, new_ids: &[u64], new_rows: &Tensor, device: &Device) -> Result<RowStore> {
        if new_ids.is_empty() {
            return Ok(self.clone());
        }
        if let Some(old) = self.vectors.as_ref().filter(|_| matches!(device, Device::Gpu(_))) {
            return self.merged_on_device(old, new_ids, new_rows, device);
        }
        let new_bytes =
            new_rows.host_bytes().ok_or_else(|| internal("merged: new rows must be on the host"))?;
        let old = self.host_vectors()?;
        let old_bytes = old.as_ref().and_then(|t| t.host_bytes()).unwrap_or(&[]);
        let rb = self.row_bytes();
        let total = self.ids.len() + new_ids.len();
        let mut bytes = Vec::with_capacity(total * rb);
        let mut ids = Vec::with_capacity(total);
        if self.ids.last().is_none_or(|&last| last < new_ids[0]) {
            ids.extend_from_slice(&self.ids);
            ids.extend_from_slice(new_ids);
            bytes.extend_from_slice(old_bytes);
            bytes.extend_from_slice(new_bytes);
        } else {
            let (mut i, mut j) = (0, 0);
            while i < self.ids.len() || j < new_ids.len() {
                let take_old = j == new_ids.len() || (i < self.ids.len() && self.ids[i] < new_ids[j]);
                if take_old {
                    ids.push(self.ids[i]);
                    bytes.extend_from_slice(&old_bytes[i * rb..(i + 1) * rb]);
                    i += 1;
                } else {
                    ids.push(new_ids[j]);
                    bytes.extend_from_slice(&new_bytes[j * rb..(j + 1) * rb]);
                    j += 1;
                }
            }
        }
        self.with_rows(ids, bytes, device)
    }

    /// This store without the rows of `remove` (strictly ascending, every one held).
    pub fn without(&self, remove: &[u64], device: &Device) -> Result<RowStore> {
        if remove.is_empty() {
            return Ok(self.clone());
        }
        if let Some(old) = self.vectors.as_ref().filter(|_| matches!(device, Device::Gpu(_))) {
            let mut r = remove.iter().peekable();
            let (mut ids, mut rows) = (Vec::new(), Vec::new());
            for (row, &id) in self.ids.iter().enumerate() {
                if r.peek() == Some(&&id) {
                    r.next();
                } else {
                    ids.push(id);
                    rows.push(row);
                }
            }
            return self.gathered(old, ids, &rows, device);
        }
        let old = self.host_vectors()?;
        let old_bytes = old.as_ref().and_then(|t| t.host_bytes()).unwrap_or(&[]);
        let rb = self.row_bytes();
        let keep = self.ids.len() - remove.len();
        let (mut ids, mut bytes) = (Vec::with_capacity(keep), Vec::with_capacity(keep * rb));
        let mut r = remove.iter().peekable();
        for (row, &id) in self.ids.iter().enumerate() {
            if r.peek() == Some(&&id) {
                r.next();
                continue;
            }
            ids.push(id);
            bytes.extend_from_slice(&old_bytes[row * rb..(row + 1) * rb]);
        }
        self.with_rows(ids, bytes, device)
    }

    /// [`RowStore::merged`] for rows on a GPU: `[old; new]` on the device (the new rows uploaded,
    /// the old ones copied device to device), then gathered into id order unless the new ids all
    /// come after the old ones.
    fn merged_on_device(
        &self,
        old: &Tensor,
        new_ids: &[u64],
        new_rows: &Tensor,
        device: &Device,
    ) -> Result<RowStore> {
        let (n_old, n_new) = (self.ids.len(), new_ids.len());
        let mut both = Tensor::zeros(&[n_old + n_new, self.dim], self.dtype, device)?;
        ops::copy_into(&mut both, old, 0)?;
        ops::copy_into(&mut both, &new_rows.to_device(device)?, n_old * self.dim)?;
        if self.ids.last().is_none_or(|&last| last < new_ids[0]) {
            let ids = self.ids.iter().chain(new_ids).copied().collect();
            return Ok(RowStore { dim: self.dim, dtype: self.dtype, ids, vectors: Some(both) });
        }
        // Merge the two sorted id lists, remembering where each row sits in `both`.
        let (mut ids, mut rows) = (Vec::with_capacity(n_old + n_new), Vec::with_capacity(n_old + n_new));
        let (mut i, mut j) = (0, 0);
        while i < n_old || j < n_new {
            if j == n_new || (i < n_old && self.ids[i] < new_ids[j]) {
                ids.push(self.ids[i]);
                rows.push(i);
                i += 1;
            } else {
                ids.push(new_ids[j]);
                rows.push(n_old + j);
                j += 1;
            }
        }
        self.gathered(&both, ids, &rows, device)
    }

    /// A store holding `ids`, whose rows are `rows` of `from` (a device tensor), gathered on the
    /// device.
    fn gathered(&self, from: &Tensor, ids: Vec<u64>, rows: &[usize], device: &Device) -> Result<RowStore> {
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
    fn with_rows(&self, ids: Vec<u64>, bytes: Vec<u8>, device: &Device) -> Result<RowStore> {
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
    pub fn to_device(&self, device: &Device) -> Result<RowStore> {
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
