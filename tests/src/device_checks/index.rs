//! The vector indexes on a device against the same indexes on the CPU: searches (every metric
//! and storage dtype, k = 1, k > len, id and bitmap filters), adds in several batches, removes,
//! IVF training and probing, and files saved on one device and loaded on the other.
//!
//! The vectors are small integers with planted duplicates (`crate::search_case`), so every dot
//! product and squared distance is exact in f32 on any path and in any order: inner-product and
//! L2 results must agree to the bit, ties (broken by the smaller id) included. Cosine scores
//! divide by norms, so they may differ in the last bits; there scores agree within
//! `COSINE_TOL` and ids may differ only among scores tied within it.

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{Filter, FlatIndex, IdBitmap, IvfFlatIndex, IvfParams, Metric, SearchResult};

use super::ok;
use crate::{rng, search_case};

/// Cosine scores lie in [-1, 1] and are exact up to f32 summation order over at most 24 terms.
const COSINE_TOL: f32 = 1e-5;

/// Flat index: every metric and storage dtype, searched with and without filters, after two
/// adds and a remove, and through files in both directions.
pub fn flat(device: &Device) {
    let mut r = rng(41);
    let (nq, n, d) = (9, 389, 24);
    let (queries, base, _, _) = search_case(&mut r, nq, n, d, DType::F32, true);
    let ids = sparse_ids(n);
    let files = TempDir::new("flat");
    for metric in [Metric::InnerProduct, Metric::L2, Metric::Cosine] {
        for dtype in DType::FLOATS {
            let case = format!("flat {metric:?} {dtype} on {device}");
            let make = |on: &Device| {
                let mut index = ok(FlatIndex::new(d, metric, dtype, on), format!("{case}: new on {on}"));
                // Two batches: the second merges into what the device already holds.
                for (rows, ids) in [(0..200, &ids[..200]), (200..n, &ids[200..])] {
                    ok(index.add(&rows_of(&base, rows), ids), format!("{case}: add on {on}"));
                }
                index
            };
            let (mut cpu, mut dev) = (make(&Device::Cpu), make(device));
            let search = |index: &FlatIndex, k, filter: Option<&Filter>| {
                ok(index.search(&queries, k, filter), format!("{case}: search k={k} on {}", index.device()))
            };
            let allow: Vec<u64> = ids.iter().copied().step_by(3).collect();
            let bitmap = IdBitmap::from_ids(&ids[..150]);
            let filters = [
                ("none", None),
                ("ids", Some(Filter::Ids(&allow))),
                ("bitmap", Some(Filter::Bitmap(&bitmap))),
            ];
            for k in [1, 10, n + 3] {
                for (label, filter) in &filters {
                    let what = format!("{case} k={k} filter={label}");
                    same(&what, metric, &search(&dev, k, filter.as_ref()), &search(&cpu, k, filter.as_ref()));
                }
            }
            let gone: Vec<u64> = ids.iter().copied().skip(1).step_by(5).collect();
            let removed =
                (ok(cpu.remove(&gone), "remove on the CPU"), ok(dev.remove(&gone), "remove on the device"));
            assert_eq!(removed.0, removed.1, "{case}: removed counts");
            let want = search(&cpu, 10, None);
            same(&format!("{case} after remove"), metric, &search(&dev, 10, None), &want);

            let path = files.path(&format!("{metric:?}-{dtype}.rtx"));
            files_cross_devices(&case, metric, &path, (&cpu, &dev), |i| search(i, 10, None), &want);
        }
    }
}

/// IVF index: k-means training on the device gives the CPU's centroids, and probing every list
/// gives the exact flat search; on the same centroids, adds (each vector's list is chosen on the
/// device), removes, partial probes with filters and files in both directions agree with the CPU.
pub fn ivf(device: &Device) {
    let mut r = rng(42);
    let (nq, n, d, nlist) = (7, 600, 16, 8);
    let (queries, base, _, _) = search_case(&mut r, nq, n, d, DType::F32, true);
    let ids = sparse_ids(n);
    let files = TempDir::new("ivf");
    for (metric, dtype) in [(Metric::L2, DType::F32), (Metric::InnerProduct, DType::BF16)] {
        let case = format!("ivf {metric:?} {dtype} on {device}");
        let params = IvfParams::new(nlist);
        let build = |on: &Device| {
            ok(IvfFlatIndex::build(&base, &ids, metric, dtype, on, params), format!("{case}: build on {on}"))
        };
        let (cpu, dev) = (build(&Device::Cpu), build(device));
        // Integer points make each cluster's sum exact, so the means agree up to the division's
        // rounding — as long as both sides assign every point alike, which they must.
        let centroids = |i: &IvfFlatIndex| i.centroids().map(<[f32]>::to_vec).unwrap_or_default();
        super::assert_near(format!("{case}: trained centroids"), &centroids(&dev), &centroids(&cpu), 1e-5);
        let mut flat = ok(FlatIndex::new(d, metric, dtype, &Device::Cpu), "flat reference");
        ok(flat.add(&base, &ids), "flat reference add");
        let exact = ok(flat.search(&queries, 10, None), "flat reference search");
        let all_lists =
            ok(dev.search_nprobe(&queries, 10, nlist, None), format!("{case}: search every list"));
        same(&format!("{case}: every list probed vs flat"), metric, &all_lists, &exact);

        // The same centroids on both sides (trained on the CPU, copied before any add), so every
        // list must hold the same vectors.
        let mut cpu = ok(IvfFlatIndex::new(d, metric, dtype, &Device::Cpu, params), "new IVF");
        ok(cpu.train(&base), "train on the CPU");
        let mut dev = ok(cpu.to_device(device), format!("{case}: trained index to the device"));
        for (rows, ids) in [(0..350, &ids[..350]), (350..n, &ids[350..])] {
            ok(cpu.add(&rows_of(&base, rows.clone()), ids), "add on the CPU");
            ok(dev.add(&rows_of(&base, rows), ids), format!("{case}: add on the device"));
        }
        assert_eq!(dev.list_sizes(), cpu.list_sizes(), "{case}: the device put vectors in other lists");
        let gone: Vec<u64> = ids.iter().copied().step_by(4).collect();
        ok(cpu.remove(&gone), "remove on the CPU");
        ok(dev.remove(&gone), format!("{case}: remove on the device"));
        assert_eq!(dev.list_sizes(), cpu.list_sizes(), "{case}: list sizes after remove");
        let allow: Vec<u64> = ids.iter().copied().step_by(3).collect();
        let search = |index: &IvfFlatIndex, nprobe, filter: Option<&Filter>| {
            ok(
                index.search_nprobe(&queries, 10, nprobe, filter),
                format!("{case}: search on {}", index.device()),
            )
        };
        for nprobe in [1, 3, nlist] {
            for (label, filter) in [("none", None), ("ids", Some(Filter::Ids(&allow)))] {
                let what = format!("{case} nprobe={nprobe} filter={label}");
                same(
                    &what,
                    metric,
                    &search(&dev, nprobe, filter.as_ref()),
                    &search(&cpu, nprobe, filter.as_ref()),
                );
            }
        }
        let want = search(&cpu, 3, None);
        let path = files.path(&format!("{metric:?}-{dtype}.rtx"));
        files_cross_devices(&case, metric, &path, (&cpu, &dev), |i| search(i, 3, None), &want);
    }
}

/// The two index kinds' files, for [`files_cross_devices`].
trait IndexFile: Sized {
    fn save_file(&self, path: &Path) -> ragtune_index::Result<()>;
    fn load_file(path: &Path, device: &Device) -> ragtune_index::Result<Self>;
    fn device(&self) -> &Device;
}

/// Both kinds have the same inherent methods; the trait only names them once.
macro_rules! index_file {
    ($($kind:ident),*) => { $(
        impl IndexFile for $kind {
            fn save_file(&self, path: &Path) -> ragtune_index::Result<()> {
                self.save(path)
            }
            fn load_file(path: &Path, device: &Device) -> ragtune_index::Result<Self> {
                $kind::load(path, device)
            }
            fn device(&self) -> &Device {
                $kind::device(self)
            }
        }
    )* };
}
index_file!(FlatIndex, IvfFlatIndex);

/// A file saved from the device loads on the CPU, and one saved from the CPU loads on the
/// device, and `search` on either gives `want` (the CPU index's results).
fn files_cross_devices<I: IndexFile>(
    case: &str,
    metric: Metric,
    path: &Path,
    (cpu, dev): (&I, &I),
    search: impl Fn(&I) -> Vec<SearchResult>,
    want: &[SearchResult],
) {
    for (from, to) in [(dev, &Device::Cpu), (cpu, dev.device())] {
        let direction = format!("{} -> {to}", from.device());
        ok(from.save_file(path), format!("{case}: save from {}", from.device()));
        let loaded = ok(I::load_file(path, to), format!("{case}: load on {to}"));
        same(&format!("{case} file {direction}"), metric, &search(&loaded), want);
    }
}

/// Ids that are neither dense nor in row order's steps: `7·i` plus a small seeded jitter.
fn sparse_ids(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| i * 7 + (i * 2654435761) % 5).collect()
}

/// Rows `rows` of a host `[n, d]` tensor.
fn rows_of(t: &Tensor, rows: std::ops::Range<usize>) -> Tensor {
    let d = t.shape()[1];
    let v = ok(t.to_vec::<f32>(), "host rows");
    ok(Tensor::from_slice(&v[rows.start * d..rows.end * d], &[rows.len(), d]), "row slice")
}

/// The device's results against the CPU's: to the bit for inner product and L2 (exact on
/// integer vectors), within [`COSINE_TOL`] for cosine, where ids may trade places only among
/// tied scores.
#[track_caller]
fn same(what: &str, metric: Metric, got: &[SearchResult], want: &[SearchResult]) {
    assert_eq!(got.len(), want.len(), "{what}: query count");
    for (q, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: result count of query {q}");
        if metric != Metric::Cosine {
            assert_eq!((&g.ids, &g.scores), (&w.ids, &w.scores), "{what}: query {q} (ids, scores)");
            continue;
        }
        for (i, (gs, ws)) in g.scores.iter().zip(&w.scores).enumerate() {
            assert!((gs - ws).abs() <= COSINE_TOL, "{what}: query {q} score {i}: {gs} vs {ws}");
        }
        // Where the ids differ, the CPU's score there must be tied with another of its results
        // (the two swapped places), or be the last one (tied with one the CPU cut off).
        for i in (0..g.len()).filter(|&i| g.ids[i] != w.ids[i]) {
            let tied = (0..w.len()).any(|j| j != i && (w.scores[j] - w.scores[i]).abs() <= COSINE_TOL);
            assert!(
                tied || i + 1 == w.len(),
                "{what}: query {q} result {i} is id {} on the device but {} on the CPU, with no tie ({})",
                g.ids[i],
                w.ids[i],
                w.scores[i]
            );
        }
    }
}

/// A fresh folder under the system's temporary directory for index files, removed on drop (the
/// GPU bundle has no other place to write to than what the machine gives it).
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ragtune-device-check-{what}-{}", std::process::id()));
        ok(std::fs::create_dir_all(&dir), format!("creating {}", dir.display()));
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}
