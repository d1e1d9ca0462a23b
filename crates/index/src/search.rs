//! The search step shared by both index kinds: queries against one [`RowStore`] through the
//! fused similarity + top-k op, with an optional row bitmap applied inside the op, and the op's
//! row numbers mapped back to ids.

use ragtune_compute::ops::{TopkSpec, topk_similarity};
use ragtune_compute::{Device, Tensor};

use crate::error::Result;
use crate::filter::RowBitmap;
use crate::metric::Metric;
use crate::store::RowStore;

/// One query's results: ids and scores, best first (ties: the smaller id first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchResult {
    pub ids: Vec<u64>,
    pub scores: Vec<f32>,
}

impl SearchResult {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// For each row of `queries` (storage dtype, on the store's device), the best `k` allowed rows
/// of `store` as (score, id), best first. Fewer than `k` when fewer rows exist or are allowed.
pub(crate) fn search_store(
    queries: &Tensor,
    store: &RowStore,
    k: usize,
    metric: Metric,
    allow: Option<&RowBitmap>,
    device: &Device,
) -> Result<Vec<Vec<(f32, u64)>>> {
    let nq = queries.shape()[0];
    let base = match &store.vectors {
        Some(v) if allow.is_none_or(|a| a.allowed > 0) => v,
        _ => return Ok(vec![Vec::new(); nq]),
    };
    let allow_tensor =
        allow.map(|a| Tensor::from_slice(&a.words, &[a.words.len()])?.to_device(device)).transpose()?;
    // k is the user's number; only min(k, rows) results can exist, so that (not k) sizes
    // every buffer: `--k 18446744073709551615` must cost what `--k <len>` costs.
    let spec = TopkSpec { k: k.min(store.len()).max(1), similarity: metric.similarity() };
    let found = topk_similarity(queries, base, spec, allow_tensor.as_ref())?;
    let rows = found.rows.to_vec::<i32>()?;
    let scores = found.scores.to_vec::<f32>()?;
    let kk = found.rows.shape().get(1).copied().unwrap_or(0);
    Ok((0..nq)
        .map(|q| {
            let range = q * kk..(q + 1) * kk;
            rows[range.clone()]
                .iter()
                .zip(&scores[range])
                .filter_map(|(&r, &s)| {
                    usize::try_from(r).ok().and_then(|r| store.ids.get(r)).map(|&id| (s, id))
                })
                .collect()
        })
        .collect())
}

/// Turn (score, id) lists into [`SearchResult`]s.
pub(crate) fn into_results(found: Vec<Vec<(f32, u64)>>) -> Vec<SearchResult> {
    found
        .into_iter()
        .map(|hits| SearchResult {
            ids: hits.iter().map(|h| h.1).collect(),
            scores: hits.iter().map(|h| h.0).collect(),
        })
        .collect()
}
