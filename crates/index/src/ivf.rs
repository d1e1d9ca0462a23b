//! [`IvfFlatIndex`]: approximate search over an inverted file of flat lists.
//!
//! Training clusters a sample of the vectors into `nlist` centroids (k-means, [`crate::kmeans`]).
//! Each vector belongs to the list of its nearest centroid (squared L2, the k-means cells). All
//! lists live in one `RowStore` keyed by (list, id): list `l` is the contiguous run of rows
//! `offsets[l]..offsets[l + 1]`, sorted by id, and the offsets are kept on the host and as an i32
//! tensor on the index's device. A search scores the queries against the centroids and keeps the
//! `nprobe` best lists of each query (by inner product for the `ip` metric — the lists most
//! likely to hold large inner products — and by L2 distance otherwise) on the device, where one
//! `topk_ivf` op searches every query's probed lists (on a GPU: a block per (query, probe), then a
//! merge); only the final rows and scores come back. Filters become one bitmap over the packed
//! rows, applied inside the op.
//!
//! The op breaks ties by the smaller packed row, i.e. the smaller (list, id); the index promises
//! the smaller id. It asks for one result more than it needs: when that extra result scores
//! strictly worse than the k-th, every row tied with the k-th came back and re-ranking by
//! (score, id) is exact; otherwise (an exact tie across the cut, rare on real data) it asks
//! again with twice as many.
//!
//! `add` assigns the new rows with `kmeans_assign` (downloading only their assignments), sorts
//! them by (list, id) on the host, and merges them into the store — on a GPU one gather on the
//! device puts old and new rows in (list, id) order; `remove` gathers the rows it keeps.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ragtune_compute::ops::{Similarity, TopkSpec, kmeans_assign, topk_ivf, topk_similarity};
use ragtune_compute::{ByteOwner, DType, Device, Tensor};

use crate::error::{IndexError, Result};
use crate::file::{self, Kind, Saved};
use crate::filter::{Filter, RowBitmap};
use crate::input::{check_dim, check_storage_dtype, checked_rows, to_storage};
use crate::kmeans::{self, KmeansParams};
use crate::metric::Metric;
use crate::search::{SearchResult, into_results};
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
    /// Every list's rows, keyed (list, id).
    store: RowStore<(u32, u64)>,
    /// `[nlist + 1]`: list `l` is rows `offsets[l]..offsets[l + 1]` of `store` (empty until trained).
    offsets: Vec<usize>,
    /// `offsets` as i32 on `device`; `None` until trained.
    offsets_tensor: Option<Tensor>,
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
            // The offsets are made by `train`, once it is known that there are at least nlist
            // vectors: a user's nlist must not size an allocation before the data is checked.
            store: RowStore::new(dim, dtype),
            offsets: Vec::new(),
            offsets_tensor: None,
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
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
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
        self.store = RowStore::new(self.dim, self.dtype);
        (self.offsets, self.offsets_tensor) = offsets_of(&self.store.ids, self.params.nlist, &self.device)?;
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
        let mut keys = Vec::with_capacity(ids.len());
        for (&l, &id) in assign.iter().zip(&ids) {
            let l = u32::try_from(l).ok().filter(|&l| (l as usize) < self.params.nlist).ok_or_else(|| {
                IndexError::invalid(
                    "add",
                    format!("kmeans_assign returned list {l} for {} lists", self.params.nlist),
                )
            })?;
            keys.push((l, id));
        }
        // The batch in (list, id) order: ids are sorted already, so a stable sort by list.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| keys[i].0);
        let keys: Vec<(u32, u64)> = order.iter().map(|&i| keys[i]).collect();
        let sorted: Vec<f32> =
            order.iter().flat_map(|&i| rows[i * self.dim..(i + 1) * self.dim].iter().copied()).collect();
        let stored = to_storage(&sorted, self.dim, self.dtype, &Device::Cpu)?;
        // Prepare the new store and offsets, then commit: an error leaves the index as it was.
        let store = self.store.merged(&keys, &stored, &self.device)?;
        let offsets = offsets_of(&store.ids, self.params.nlist, &self.device)?;
        self.commit(store, offsets);
        for &(l, id) in &keys {
            self.owner.insert(id, l);
        }
        Ok(())
    }

    fn commit(&mut self, store: RowStore<(u32, u64)>, (offsets, tensor): (Vec<usize>, Option<Tensor>)) {
        self.store = store;
        self.offsets = offsets;
        self.offsets_tensor = tensor;
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
        let mut gone: Vec<(u32, u64)> = sorted.iter().map(|id| (self.owner[id], *id)).collect();
        gone.sort_unstable();
        let store = self.store.without(&gone, &self.device)?;
        let offsets = offsets_of(&store.ids, self.params.nlist, &self.device)?;
        self.commit(store, offsets);
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
        let allow = match filter {
            Some(f) => {
                let owner = |id: u64| self.owner.get(&id).map(|&l| (l, id));
                let bitmap = RowBitmap::for_keys(&self.store.ids, f, owner, |key| key.1);
                if bitmap.allowed == 0 {
                    return Ok(into_results(hits));
                }
                Some(Tensor::from_slice(&bitmap.words, &[bitmap.words.len()])?.to_device(&self.device)?)
            }
            None => None,
        };
        let base = self.store.vectors.as_ref().ok_or(IndexError::NotTrained)?;
        let offsets = self.offsets_tensor.as_ref().ok_or(IndexError::NotTrained)?;
        let q32 = Tensor::from_slice(&rows, &[nq, self.dim])?.to_device(&self.device)?;
        let spec = TopkSpec { k: nprobe.min(self.params.nlist), similarity: probe_similarity };
        // The probes stay on the device: they are the op's list of lists to search.
        let probes = topk_similarity(&q32, centroids, spec, None)?.rows;
        let queries = if self.dtype == DType::F32 {
            q32
        } else {
            to_storage(&rows, self.dim, self.dtype, &self.device)?
        };
        let n = self.store.len();
        // One result more than k (see the module docs: ties across the cut), doubled while some
        // query's extra result ties its k-th.
        let mut want = k.saturating_add(1).min(n);
        loop {
            let found = topk_ivf(
                &queries,
                base,
                offsets,
                &probes,
                TopkSpec { k: want, similarity: self.metric.similarity() },
                allow.as_ref(),
            )?;
            let found_rows = found.rows.to_vec::<i32>()?;
            let scores = found.scores.to_vec::<f32>()?;
            let tie_at_cut = want < n
                && (0..nq).any(|q| {
                    // The last result (when real) ties the k-th: rows tied with it may be cut.
                    let (kth, last) = (q * want + k - 1, (q + 1) * want - 1);
                    found_rows[last] >= 0 && scores[kth].total_cmp(&scores[last]).is_eq()
                });
            if tie_at_cut {
                want = want.saturating_mul(2).min(n);
                continue;
            }
            for (q, h) in hits.iter_mut().enumerate() {
                let range = q * want..(q + 1) * want;
                h.extend(found_rows[range.clone()].iter().zip(&scores[range]).filter_map(|(&r, &s)| {
                    usize::try_from(r).ok().and_then(|r| self.store.ids.get(r)).map(|key| (s, key.1))
                }));
                h.sort_unstable_by(|a, b| self.metric.rank(*a, *b));
                h.truncate(k);
            }
            return Ok(into_results(hits));
        }
    }

    /// The same index with its vectors and centroids on `device`.
    pub fn to_device(&self, device: &Device) -> Result<IvfFlatIndex> {
        let centroids = match &self.centroids {
            Some((t, host)) => Some((t.to_device(device)?, host.clone())),
            None => None,
        };
        let store = self.store.to_device(device)?;
        let offsets_tensor = self.offsets_tensor.as_ref().map(|t| t.to_device(device)).transpose()?;
        Ok(IvfFlatIndex { device: device.clone(), centroids, store, offsets_tensor, ..self.clone() })
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
                lists: self.split_lists()?,
            },
        )
    }

    /// The store as one `RowStore` per list, as the file holds them: the rows downloaded once,
    /// each list a view of its run of them.
    fn split_lists(&self) -> Result<Vec<RowStore>> {
        let host = self.store.host_vectors()?;
        let bytes = host.as_ref().and_then(|t| t.host_bytes()).unwrap_or(&[]);
        let owner: Arc<dyn ByteOwner> = Arc::new(bytes.to_vec());
        let row_bytes = self.dim * self.dtype.size();
        let mut lists = Vec::with_capacity(self.params.nlist);
        for w in self.offsets.windows(2) {
            let ids = self.store.ids[w[0]..w[1]].iter().map(|key| key.1).collect();
            let len = w[1] - w[0];
            let vectors = (len > 0)
                .then(|| {
                    let (at, size) = (w[0] * row_bytes, len * row_bytes);
                    Tensor::from_shared_bytes(owner.clone(), at, size, self.dtype, &[len, self.dim])
                })
                .transpose()?;
            lists.push(RowStore::from_parts(self.dim, self.dtype, ids, vectors));
        }
        Ok(lists)
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
        // A file holds one store per list, in list order: one (list, id)-keyed store of them all.
        let mut owner = HashMap::new();
        let (mut keys, mut bytes) = (Vec::new(), Vec::new());
        for (l, list) in saved.lists.iter().enumerate() {
            for &id in &list.ids {
                owner.insert(id, l as u32);
                keys.push((l as u32, id));
            }
            if let Some(v) = list.host_vectors()? {
                bytes.extend_from_slice(v.host_bytes().unwrap_or(&[]));
            }
        }
        let vectors = (!keys.is_empty())
            .then(|| Tensor::from_bytes(&bytes, saved.dtype, &[keys.len(), saved.dim])?.to_device(device))
            .transpose()?;
        let store = RowStore::from_parts(saved.dim, saved.dtype, keys, vectors);
        let (offsets, offsets_tensor) = offsets_of(&store.ids, nlist, device)?;
        Ok(IvfFlatIndex {
            metric: saved.metric,
            dtype: saved.dtype,
            dim: saved.dim,
            device: device.clone(),
            params,
            centroids: Some((t, host)),
            store,
            offsets,
            offsets_tensor,
            owner,
        })
    }
}

/// The list offsets of a store keyed (list, id) with `nlist` lists: `[nlist + 1]` on the host,
/// and as an i32 tensor on `device` (the search op's `list_offsets`).
fn offsets_of(keys: &[(u32, u64)], nlist: usize, device: &Device) -> Result<(Vec<usize>, Option<Tensor>)> {
    let offsets: Vec<usize> = (0..=nlist).map(|l| keys.partition_point(|key| (key.0 as usize) < l)).collect();
    // Row counts of an index fit in 31 bits: the search kernels index rows with i32.
    let as_i32: Vec<i32> = offsets.iter().map(|&o| o as i32).collect();
    let tensor = Tensor::from_slice(&as_i32, &[nlist + 1])?.to_device(device)?;
    Ok((offsets, Some(tensor)))
}
