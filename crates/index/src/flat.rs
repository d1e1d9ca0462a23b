//! [`FlatIndex`]: exact search. Every query is scored against every stored vector by the fused
//! similarity + top-k op of ragtune-compute, on the index's device.
//!
//! Rows are kept sorted by id, so the op's tie-break (smaller row first) is the promised
//! tie-break by smaller id. Every mutating call validates its whole input first: on an error the
//! index is exactly as it was.

use std::path::Path;

use ragtune_compute::{DType, Device, Tensor};

use crate::error::{IndexError, Result};
use crate::file::{self, Kind, Saved};
use crate::filter::{Filter, RowBitmap};
use crate::input::{check_dim, check_storage_dtype, checked_rows, to_storage};
use crate::metric::Metric;
use crate::search::{SearchResult, into_results, search_store};
use crate::store::{RowStore, check_unique, sort_batch};

#[derive(Clone, Debug)]
pub struct FlatIndex {
    metric: Metric,
    device: Device,
    store: RowStore,
}

impl FlatIndex {
    /// An empty index of `dim`-dimensional vectors stored as `dtype` (f32, f16 or bf16) on
    /// `device`. Scores are always computed and returned in f32.
    pub fn new(dim: usize, metric: Metric, dtype: DType, device: &Device) -> Result<FlatIndex> {
        check_dim(dim)?;
        check_storage_dtype(dtype)?;
        Ok(FlatIndex { metric, device: device.clone(), store: RowStore::new(dim, dtype) })
    }

    pub fn dim(&self) -> usize {
        self.store.dim
    }
    pub fn metric(&self) -> Metric {
        self.metric
    }
    pub fn dtype(&self) -> DType {
        self.store.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn len(&self) -> usize {
        self.store.len()
    }
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }
    /// The stored ids, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.store.ids
    }
    pub fn contains(&self, id: u64) -> bool {
        self.store.ids.binary_search(&id).is_ok()
    }

    /// Add `vectors` (`[n, dim]`, any float dtype, any device) under `ids` (one per row).
    ///
    /// Errors, with nothing added: a shape or dimension mismatch, a NaN or infinite value, a
    /// zero vector under cosine, an id repeated in `ids`, an id already in the index.
    /// Cosine vectors are normalized before they are stored. Batch adds: each add rebuilds the
    /// stored tensor once.
    pub fn add(&mut self, vectors: &Tensor, ids: &[u64]) -> Result<()> {
        if vectors.rank() == 2 && vectors.shape()[0] != ids.len() {
            return Err(IndexError::IdCount { vectors: vectors.shape()[0], ids: ids.len() });
        }
        let rows = checked_rows("add: vectors", vectors, self.dim(), self.metric, Some(ids))?;
        check_unique(ids)?;
        if let Some((row, &id)) = ids.iter().enumerate().find(|(_, id)| self.contains(**id)) {
            return Err(IndexError::IdExists { id, row });
        }
        let (ids, rows) = sort_batch(ids, &rows, self.dim());
        let new_rows = to_storage(&rows, self.dim(), self.dtype(), &Device::Cpu)?;
        self.store = self.store.merged(&ids, &new_rows, &self.device)?;
        Ok(())
    }

    /// Remove the vectors of `ids` and return how many were removed (repeats in `ids` count
    /// once). An id the index does not hold is an error ([`IndexError::UnknownIds`]) and then
    /// nothing is removed: a caller that wants "remove if present" filters with
    /// [`FlatIndex::contains`] first.
    pub fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let unknown: Vec<u64> = sorted.iter().copied().filter(|&id| !self.contains(id)).collect();
        if !unknown.is_empty() {
            return Err(IndexError::UnknownIds {
                count: unknown.len(),
                first: unknown.into_iter().take(8).collect(),
            });
        }
        self.store = self.store.without(&sorted, &self.device)?;
        Ok(sorted.len())
    }

    /// The `k` best stored vectors for each row of `queries` (`[nq, dim]`), best first, ties by
    /// the smaller id. `k` may exceed `len()` (then every allowed vector is returned). A
    /// `filter` restricts the search to the ids it allows, inside the search: each query still
    /// gets the best `k` allowed vectors (fewer only when fewer are allowed).
    pub fn search(&self, queries: &Tensor, k: usize, filter: Option<&Filter>) -> Result<Vec<SearchResult>> {
        if k == 0 {
            return Err(IndexError::ZeroK);
        }
        let rows = checked_rows("search: queries", queries, self.dim(), self.metric, None)?;
        let q = to_storage(&rows, self.dim(), self.dtype(), &self.device)?;
        let allow = filter.map(|f| RowBitmap::for_rows(&self.store.ids, f));
        let found = search_store(&q, &self.store, k, self.metric, allow.as_ref(), &self.device)?;
        Ok(into_results(found))
    }

    /// The same index with its vectors on `device`.
    pub fn to_device(&self, device: &Device) -> Result<FlatIndex> {
        Ok(FlatIndex { metric: self.metric, device: device.clone(), store: self.store.to_device(device)? })
    }

    /// Save to `path` atomically (see [`crate::file`] for the format).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        file::save(
            path.as_ref(),
            &Saved {
                kind: Kind::Flat,
                metric: self.metric,
                dtype: self.dtype(),
                dim: self.dim(),
                nprobe: 0,
                centroids: None,
                lists: vec![self.store.clone()],
            },
        )
    }

    /// Load a flat index saved by [`FlatIndex::save`] onto `device` (any device: files hold host
    /// bytes, so an index saved from a GPU loads on a CPU and the reverse).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<FlatIndex> {
        let path = path.as_ref();
        let saved = file::load(path)?;
        if saved.kind != Kind::Flat {
            return Err(IndexError::file(
                path,
                "this file holds an IVF index: load it with IvfFlatIndex::load",
            ));
        }
        FlatIndex::from_saved(saved, device)
    }

    pub(crate) fn from_saved(saved: Saved, device: &Device) -> Result<FlatIndex> {
        let store = saved.lists.into_iter().next().unwrap_or_else(|| RowStore::new(saved.dim, saved.dtype));
        Ok(FlatIndex { metric: saved.metric, device: device.clone(), store: store.to_device(device)? })
    }
}
