//! [`IvfFlatIndex`]: approximate search over an inverted file of flat lists.
//!
//! Training clusters a sample of the vectors into `nlist` centroids (k-means, [`crate::kmeans`]).
//! Each vector is stored in the list of its nearest centroid (squared L2, the k-means cells);
//! each list is a `RowStore` sorted by id. A search scores the queries against the centroids,
//! probes the `nprobe` best lists of each query (by inner product for the `ip` metric — the
//! lists most likely to hold large inner products — and by L2 distance otherwise), and runs the
//! fused similarity + top-k op once per probed list over every query that probes it, so queries
//! are batched per list. The per-list results are merged best first, ties by the smaller id.
//!
//! Filters are translated per list into row bitmaps and applied inside each list's search.

use std::collections::HashMap;
use std::path::Path;

use ragtune_compute::ops::{Similarity, TopkSpec, kmeans_assign, topk_similarity};
use ragtune_compute::{DType, Device, Tensor};

use crate::error::{IndexError, Result};
use crate::file::{self, Kind, Saved};
use crate::filter::{Filter, RowBitmap};
use crate::input::{check_dim, check_storage_dtype, checked_rows, to_storage};
use crate::kmeans::{self, KmeansParams};
use crate::metric::Metric;
use crate::search::{SearchResult, into_results, search_store};
use crate::store::{RowStore, check_unique, sort_batch};

/// The shape of an IVF index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IvfParams {
    /// Number of lists (k-means centroids).
    pub nlist: usize,
    /// Lists probed per query by default (clamped to `nlist`).
    pub nprobe: usize,
    pub kmeans: KmeansParams,
}

impl IvfParams {
    /// `nlist` lists, probing `max(1, nlist / 8)` by default (the documented recall point of the
    /// crate docs), default k-means settings.
    pub fn new(nlist: usize) -> IvfParams {
        IvfParams { nlist, nprobe: (nlist / 8).max(1), kmeans: KmeansParams::default() }
    }
}

#[derive(Clone, Debug)]
pub struct IvfFlatIndex {
    metric: Metric,
    dtype: DType,
    dim: usize,
    device: Device,
    params: IvfParams,
    /// `[nlist, dim]` f32 on `device`, and the same on the host; `None` until trained.
    centroids: Option<(Tensor, Vec<f32>)>,
    lists: Vec<RowStore>,
    /// Which list holds each id.
    owner: HashMap<u64, u32>,
}

impl IvfFlatIndex {
    /// An untrained index; call [`IvfFlatIndex::train`] before adding.
    pub fn new(
        dim: usize,
        metric: Metric,
        dtype: DType,
        device: &Device,
        params: IvfParams,
    ) -> Result<IvfFlatIndex> {
        check_dim(dim)?;
        check_storage_dtype(dtype)?;
        if params.nlist == 0 {
            return Err(IndexError::invalid("nlist", "an IVF index needs at least 1 list (nlist >= 1)"));
        }
        if params.nprobe == 0 {
            return Err(IndexError::invalid("nprobe", "nprobe must be at least 1"));
        }
        if params.kmeans.iterations == 0 {
            return Err(IndexError::invalid("kmeans iterations", "k-means needs at least 1 iteration"));
        }
        Ok(IvfFlatIndex {
            metric,
            dtype,
            dim,
            device: device.clone(),
            params,
            centroids: None,
            // The lists are made by `train`, once it is known that there are at least nlist
            // vectors: a user's nlist must not size an allocation before the data is checked.
            lists: Vec::new(),
            owner: HashMap::new(),
        })
    }

    /// Train on `vectors`, then add them under `ids`: the usual way to make an IVF index.
    pub fn build(
        vectors: &Tensor,
        ids: &[u64],
        metric: Metric,
        dtype: DType,
        device: &Device,
        params: IvfParams,
    ) -> Result<IvfFlatIndex> {
        let dim = vectors.shape().get(1).copied().unwrap_or(0);
        let mut index = IvfFlatIndex::new(dim, metric, dtype, device, params)?;
        index.train(vectors)?;
        index.add(vectors, ids)?;
        Ok(index)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn metric(&self) -> Metric {
        self.metric
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn nlist(&self) -> usize {
        self.params.nlist
    }
    pub fn nprobe(&self) -> usize {
        self.params.nprobe
    }
    pub fn params(&self) -> &IvfParams {
        &self.params
    }
    pub fn is_trained(&self) -> bool {
        self.centroids.is_some()
    }
    pub fn len(&self) -> usize {
        self.owner.len()
    }
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }
    pub fn contains(&self, id: u64) -> bool {
        self.owner.contains_key(&id)
    }
    /// The number of vectors in each list.
    pub fn list_sizes(&self) -> Vec<usize> {
        self.lists.iter().map(|l| l.len()).collect()
    }
    /// The trained centroids, `[nlist · dim]` f32 row-major.
    pub fn centroids(&self) -> Option<&[f32]> {
        self.centroids.as_ref().map(|c| c.1.as_slice())
    }

    /// Lists probed per query from now on (`1..`; values above `nlist` probe every list).
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        if nprobe == 0 {
            return Err(IndexError::invalid("nprobe", "nprobe must be at least 1"));
        }
        self.params.nprobe = nprobe;
        Ok(())
    }

    /// Train the centroids on `vectors` (`[n, dim]`, n >= nlist). Retraining an index that
    /// holds vectors is refused (its lists would no longer match the cells).
    pub fn train(&mut self, vectors: &Tensor) -> Result<()> {
        self.train_with_progress(vectors, &mut |_, _| {})
    }

    /// [`IvfFlatIndex::train`], telling `progress` `(iteration, iterations)` as it goes.
    pub fn train_with_progress(
        &mut self,
        vectors: &Tensor,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        if !self.is_empty() {
            return Err(IndexError::invalid(
                "train",
                "the index already holds vectors: train a new index (retraining would invalidate its lists)",
            ));
        }
        let rows = checked_rows("train: vectors", vectors, self.dim, self.metric, None)?;
        let c =
            kmeans::train(&rows, self.dim, self.params.nlist, &self.params.kmeans, &self.device, progress)?;
        let t = Tensor::from_slice(&c, &[self.params.nlist, self.dim])?.to_device(&self.device)?;
        self.centroids = Some((t, c));
        self.lists = (0..self.params.nlist).map(|_| RowStore::new(self.dim, self.dtype)).collect();
        Ok(())
    }

    fn centroid_tensor(&self) -> Result<&Tensor> {
        self.centroids.as_ref().map(|c| &c.0).ok_or(IndexError::NotTrained)
    }

    /// Add `vectors` under `ids`; the same checks and guarantees as [`crate::FlatIndex::add`].
    pub fn add(&mut self, vectors: &Tensor, ids: &[u64]) -> Result<()> {
        let centroids = self.centroid_tensor()?;
        if vectors.rank() == 2 && vectors.shape()[0] != ids.len() {
            return Err(IndexError::IdCount { vectors: vectors.shape()[0], ids: ids.len() });
        }
        let rows = checked_rows("add: vectors", vectors, self.dim, self.metric, Some(ids))?;
        check_unique(ids)?;
        if let Some((row, &id)) = ids.iter().enumerate().find(|(_, id)| self.contains(**id)) {
            return Err(IndexError::IdExists { id, row });
        }
        if ids.is_empty() {
            return Ok(());
        }
        let (ids, rows) = sort_batch(ids, &rows, self.dim);
        let pts = Tensor::from_slice(&rows, &[ids.len(), self.dim])?.to_device(&self.device)?;
        let assign = kmeans_assign(&pts, centroids)?.0.to_vec::<i32>()?;
        let mut per_list: Vec<Vec<usize>> = vec![Vec::new(); self.params.nlist];
        for (i, &l) in assign.iter().enumerate() {
            let l = usize::try_from(l).ok().filter(|&l| l < self.params.nlist).ok_or_else(|| {
                IndexError::invalid(
                    "add",
                    format!("kmeans_assign returned list {l} for {} lists", self.params.nlist),
                )
            })?;
            per_list[l].push(i);
        }
        // Prepare every changed list, then commit them together: an error leaves the index as it was.
        let mut changed = Vec::new();
        for (l, members) in per_list.iter().enumerate().filter(|(_, m)| !m.is_empty()) {
            let list_ids: Vec<u64> = members.iter().map(|&i| ids[i]).collect();
            let list_rows: Vec<f32> = members
                .iter()
                .flat_map(|&i| rows[i * self.dim..(i + 1) * self.dim].iter().copied())
                .collect();
            let stored = to_storage(&list_rows, self.dim, self.dtype, &Device::Cpu)?;
            changed.push((l, self.lists[l].merged(&list_ids, &stored, &self.device)?));
        }
        for (l, store) in changed {
            self.lists[l] = store;
        }
        for (i, &l) in assign.iter().enumerate() {
            self.owner.insert(ids[i], l as u32);
        }
        Ok(())
    }

    /// Remove `ids`; the same contract as [`crate::FlatIndex::remove`] (unknown ids are an error
    /// and then nothing is removed; returns the number removed).
    pub fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let unknown: Vec<u64> = sorted.iter().copied().filter(|id| !self.contains(*id)).collect();
        if !unknown.is_empty() {
            return Err(IndexError::UnknownIds {
                count: unknown.len(),
                first: unknown.into_iter().take(8).collect(),
            });
        }
        let mut per_list: Vec<Vec<u64>> = vec![Vec::new(); self.lists.len()];
        for &id in &sorted {
            per_list[self.owner[&id] as usize].push(id);
        }
        let mut changed = Vec::new();
        for (l, gone) in per_list.iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            changed.push((l, self.lists[l].without(gone, &self.device)?));
        }
        for (l, store) in changed {
            self.lists[l] = store;
        }
        for id in &sorted {
            self.owner.remove(id);
        }
        Ok(sorted.len())
    }

    /// Search with the index's `nprobe`; see [`IvfFlatIndex::search_nprobe`].
    pub fn search(&self, queries: &Tensor, k: usize, filter: Option<&Filter>) -> Result<Vec<SearchResult>> {
        self.search_nprobe(queries, k, self.params.nprobe, filter)
    }

    /// The `k` best vectors among the `nprobe` lists nearest each query, best first, ties by the
    /// smaller id; fewer than `k` when the probed lists hold fewer (allowed) vectors.
    pub fn search_nprobe(
        &self,
        queries: &Tensor,
        k: usize,
        nprobe: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<SearchResult>> {
        if k == 0 {
            return Err(IndexError::ZeroK);
        }
        if nprobe == 0 {
            return Err(IndexError::invalid("nprobe", "nprobe must be at least 1"));
        }
        let centroids = self.centroid_tensor()?;
        let rows = checked_rows("search: queries", queries, self.dim, self.metric, None)?;
        let nq = rows.len() / self.dim;
        let mut hits: Vec<Vec<(f32, u64)>> = vec![Vec::new(); nq];
        if nq == 0 || self.is_empty() {
            return Ok(into_results(hits));
        }
        let probe_similarity = match self.metric {
            Metric::InnerProduct => Similarity::Dot,
            Metric::Cosine | Metric::L2 => Similarity::L2,
        };
        let q32 = Tensor::from_slice(&rows, &[nq, self.dim])?.to_device(&self.device)?;
        let spec = TopkSpec { k: nprobe.min(self.params.nlist), similarity: probe_similarity };
        let probes = topk_similarity(&q32, centroids, spec, None)?.rows.to_vec::<i32>()?;
        let per_query = probes.len() / nq;
        let mut queries_of: Vec<Vec<usize>> = vec![Vec::new(); self.params.nlist];
        for (i, &l) in probes.iter().enumerate() {
            if let Some(list) = usize::try_from(l).ok().and_then(|l| queries_of.get_mut(l)) {
                list.push(i / per_query);
            }
        }
        let allowed_by_list = filter.map(|f| self.group_filter(f));
        for (l, qs) in queries_of.iter().enumerate() {
            let list = &self.lists[l];
            if qs.is_empty() || list.len() == 0 {
                continue;
            }
            let allow = match (filter, &allowed_by_list) {
                (Some(Filter::Ids(_)), Some(groups)) => {
                    Some(RowBitmap::for_rows(&list.ids, &Filter::Ids(&groups[l])))
                }
                (Some(f), _) => Some(RowBitmap::for_rows(&list.ids, f)),
                (None, _) => None,
            };
            if allow.as_ref().is_some_and(|a| a.allowed == 0) {
                continue;
            }
            let sub: Vec<f32> =
                qs.iter().flat_map(|&q| rows[q * self.dim..(q + 1) * self.dim].iter().copied()).collect();
            let sub = to_storage(&sub, self.dim, self.dtype, &self.device)?;
            let found = search_store(&sub, list, k, self.metric, allow.as_ref(), &self.device)?;
            for (&q, found) in qs.iter().zip(found) {
                hits[q].extend(found);
            }
        }
        for h in &mut hits {
            h.sort_unstable_by(|a, b| self.metric.rank(*a, *b));
            h.truncate(k);
        }
        Ok(into_results(hits))
    }

    /// An allow-list of ids split by the list that holds each id (ids not held are dropped).
    fn group_filter(&self, filter: &Filter) -> Vec<Vec<u64>> {
        let mut groups = vec![Vec::new(); self.params.nlist];
        if let Filter::Ids(ids) = filter {
            for id in ids.iter() {
                if let Some(&l) = self.owner.get(id) {
                    groups[l as usize].push(*id);
                }
            }
        }
        groups
    }

    /// The same index with its vectors and centroids on `device`.
    pub fn to_device(&self, device: &Device) -> Result<IvfFlatIndex> {
        let centroids = match &self.centroids {
            Some((t, host)) => Some((t.to_device(device)?, host.clone())),
            None => None,
        };
        let lists = self.lists.iter().map(|l| l.to_device(device)).collect::<Result<_>>()?;
        Ok(IvfFlatIndex { device: device.clone(), centroids, lists, ..self.clone() })
    }

    /// Save to `path` atomically (see [`crate::file`]). An untrained index cannot be saved.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let centroids = self.centroids.as_ref().ok_or(IndexError::NotTrained)?.1.clone();
        file::save(
            path.as_ref(),
            &Saved {
                kind: Kind::IvfFlat,
                metric: self.metric,
                dtype: self.dtype,
                dim: self.dim,
                nprobe: self.params.nprobe,
                centroids: Some(centroids),
                lists: self.lists.clone(),
            },
        )
    }

    /// Load an IVF index saved by [`IvfFlatIndex::save`] onto any `device`.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<IvfFlatIndex> {
        let path = path.as_ref();
        let saved = file::load(path)?;
        if saved.kind != Kind::IvfFlat {
            return Err(IndexError::file(path, "this file holds a flat index: load it with FlatIndex::load"));
        }
        IvfFlatIndex::from_saved(saved, device)
    }

    pub(crate) fn from_saved(saved: Saved, device: &Device) -> Result<IvfFlatIndex> {
        let nlist = saved.lists.len();
        // `file::load` refuses an IVF file with nprobe 0.
        let params = IvfParams { nlist, nprobe: saved.nprobe, kmeans: KmeansParams::default() };
        let host = saved.centroids.unwrap_or_default();
        let t = Tensor::from_slice(&host, &[nlist, saved.dim])?.to_device(device)?;
        let mut owner = HashMap::new();
        let mut lists = Vec::with_capacity(nlist);
        for (l, store) in saved.lists.into_iter().enumerate() {
            for &id in &store.ids {
                owner.insert(id, l as u32);
            }
            lists.push(store.to_device(device)?);
        }
        Ok(IvfFlatIndex {
            metric: saved.metric,
            dtype: saved.dtype,
            dim: saved.dim,
            device: device.clone(),
            params,
            centroids: Some((t, host)),
            lists,
            owner,
        })
    }
}
