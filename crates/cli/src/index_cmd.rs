//! `ragtune index build|search|info`.
//!
//! - `build` reads `[n, dim]` vectors (`<f4` or `<f2` .npy) and optional `[n]` ids (`<i8`;
//!   default 0..n), builds a flat or IVF index on the chosen device, and saves it atomically.
//! - `search` loads an index on any device, searches `[nq, dim]` queries, and writes ids (`<i8`)
//!   and scores (`<f4`), both `[nq, min(k, len)]`, best first. A query with fewer results (IVF
//!   lists holding fewer than k vectors) is padded with id −1 and the worst score (−inf for ip
//!   and cosine, +inf for l2, whose scores are squared distances).
//! - `info` verifies a file (checksum included) and describes it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ragtune_compute::Tensor;
use ragtune_index::{AnyIndex, FlatIndex, IvfFlatIndex, IvfParams, Metric, file, npy};
use serde_json::json;

use crate::args::{DeviceArg, FloatDtype};
use crate::progress::bar;

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Build an index from vectors in a .npy file and save it.
    Build(BuildArgs),
    /// Search an index with queries from a .npy file; write ids and scores as .npy.
    Search(SearchArgs),
    /// Verify an index file and describe it.
    Info(InfoArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Exact search over every vector.
    Flat,
    /// Inverted file: k-means lists, the nprobe nearest searched.
    Ivf,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Vectors, a 2-D [n, dim] .npy of float32 or float16.
    #[arg(long)]
    vectors: PathBuf,
    /// Ids, a 1-D `[n]` .npy of int64 (default: 0..n).
    #[arg(long)]
    ids: Option<PathBuf>,
    /// ip (inner product), cosine, or l2 (squared distance).
    #[arg(long, value_parser = parse_metric)]
    metric: Metric,
    #[arg(long, value_enum, default_value = "flat")]
    kind: KindArg,
    /// IVF lists (default: 4·√n).
    #[arg(long)]
    nlist: Option<usize>,
    /// IVF lists probed per query, saved as the index's default (default: nlist / 8).
    #[arg(long)]
    nprobe: Option<usize>,
    /// How vectors are stored: f32, f16 or bf16 (scores are f32 either way); auto is the device's
    /// weight default (bf16 on a GPU). f32 by default: exact scores, as FAISS's flat index.
    #[arg(long, default_value = "f32", value_parser = FloatDtype::parse_dense)]
    dtype: FloatDtype,
    /// cpu, cuda, cuda:N or auto (a GPU when usable, else the CPU).
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
    /// Where to write the index.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SearchArgs {
    /// An index file written by `ragtune index build`.
    #[arg(long)]
    index: PathBuf,
    /// Queries, a 2-D [nq, dim] .npy of float32 or float16.
    #[arg(long)]
    queries: PathBuf,
    /// Results per query. A k above the index size is clamped to it (as FAISS does): the
    /// outputs then have `len` columns.
    #[arg(long)]
    k: usize,
    /// IVF lists probed per query (default: the one saved in the index).
    #[arg(long)]
    nprobe: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
    /// Output ids, int64 [nq, min(k, len)].
    #[arg(long)]
    out_ids: PathBuf,
    /// Output scores, float32 [nq, min(k, len)].
    #[arg(long)]
    out_scores: PathBuf,
}

#[derive(Args)]
pub struct InfoArgs {
    /// An index file.
    file: PathBuf,
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Metric::parse(s).ok_or_else(|| format!("unknown metric `{s}`: use ip, cosine or l2"))
}

pub fn run(cmd: IndexCommand, json: bool) -> Result<()> {
    match cmd {
        IndexCommand::Build(a) => build(a, json),
        IndexCommand::Search(a) => search(a, json),
        IndexCommand::Info(a) => info(a, json),
    }
}

/// Rows per add call: large enough that rebuilding the stored tensor stays cheap, small enough
/// for the bar to move.
fn chunk_rows(n: usize) -> usize {
    n.div_ceil(20).max(8192)
}

/// Rows `start..end` of a host `[n, dim]` tensor.
/// Hand `vectors` and their `ids` to `add` `chunk` rows at a time, with a progress bar.
fn add_in_chunks(
    vectors: &Tensor,
    ids: &[u64],
    chunk: usize,
    json: bool,
    mut add: impl FnMut(&Tensor, &[u64]) -> Result<()>,
) -> Result<()> {
    let n = ids.len();
    let pb = bar(n as u64, "adding", "vectors", json);
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        add(&rows(vectors, start, end)?, &ids[start..end])?;
        pb.set_position(end as u64);
    }
    pb.finish_and_clear();
    Ok(())
}

fn rows(t: &Tensor, start: usize, end: usize) -> Result<Tensor> {
    let dim = t.shape()[1];
    let rb = dim * t.dtype().size();
    let bytes = t.host_bytes().context("vectors are read into host memory")?;
    Ok(Tensor::from_bytes(&bytes[start * rb..end * rb], t.dtype(), &[end - start, dim])?)
}

fn build(a: BuildArgs, json: bool) -> Result<()> {
    let started = Instant::now();
    let device = a.device.open(json)?;
    let vectors = npy::read_vectors(&a.vectors)?;
    let (n, dim) = (vectors.shape()[0], vectors.shape()[1]);
    let ids = match &a.ids {
        Some(p) => npy::read_ids(p)?,
        None => (0..n as u64).collect(),
    };
    if ids.len() != n {
        bail!(
            "{} holds {} ids but {} holds {n} vectors: give one id per vector",
            a.ids.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            ids.len(),
            a.vectors.display()
        );
    }
    if let Some(p) = &a.ids {
        check_unique_ids(p, &ids)?;
    }
    if a.nprobe == Some(0) {
        bail!("--nprobe 0: an IVF search must probe at least 1 list; give --nprobe N with N >= 1");
    }
    if let (KindArg::Ivf, Some(nlist)) = (a.kind, a.nlist) {
        // Checked before anything is sized by nlist: k-means needs a vector per list.
        if nlist == 0 || nlist > n {
            bail!(
                "--nlist {nlist}: must be between 1 and the number of vectors ({n} in {}), as k-means needs at \
                 least one vector per list; a few times sqrt(n) is usual (the default is 4·sqrt(n))",
                a.vectors.display()
            );
        }
    }
    let what = || format!("building from {}", a.vectors.display());
    let dtype = a.dtype.resolve(&device);
    let chunk = chunk_rows(n);
    let index = match a.kind {
        KindArg::Flat => {
            let mut index = FlatIndex::new(dim, a.metric, dtype, &device)?;
            add_in_chunks(&vectors, &ids, chunk, json, |v, i| index.add(v, i).with_context(what))?;
            AnyIndex::Flat(index)
        }
        KindArg::Ivf => {
            let nlist = a.nlist.unwrap_or_else(|| ((4.0 * (n as f64).sqrt()) as usize).clamp(1, n.max(1)));
            let mut params = IvfParams::new(nlist);
            if let Some(p) = a.nprobe {
                params.nprobe = p;
            }
            let mut index = IvfFlatIndex::new(dim, a.metric, dtype, &device, params)?;
            let pb = bar(params.kmeans.iterations as u64, "k-means", "iterations", json);
            index
                .train_with_progress(&vectors, &mut |it, _| pb.set_position(it as u64))
                .with_context(what)?;
            pb.finish_and_clear();
            add_in_chunks(&vectors, &ids, chunk, json, |v, i| index.add(v, i).with_context(what))?;
            AnyIndex::Ivf(index)
        }
    };
    index.save(&a.out)?;
    let seconds = started.elapsed().as_secs_f64();
    let (nlist, nprobe) = match &index {
        AnyIndex::Ivf(i) => (Some(i.nlist()), Some(i.nprobe())),
        AnyIndex::Flat(_) => (None, None),
    };
    if json {
        println!(
            "{}",
            json!({
                "out": a.out, "kind": index.kind().name(), "metric": a.metric.name(), "dtype": dtype.to_string(),
                "dim": dim, "count": index.len(), "nlist": nlist, "nprobe": nprobe,
                "device": device.describe(), "seconds": seconds,
            })
        );
    } else {
        let ivf = nlist.map(|l| format!(", nlist {l}, nprobe {}", nprobe.unwrap_or(0))).unwrap_or_default();
        println!(
            "built {} index of {} {dim}-d vectors ({}, {}{ivf}) on {} in {seconds:.2} s -> {}",
            index.kind().name(),
            index.len(),
            a.metric,
            dtype,
            device.describe(),
            a.out.display()
        );
    }
    Ok(())
}

/// Duplicate ids are the ids file's fault: say so (with both rows) before the index is built.
fn check_unique_ids(path: &std::path::Path, ids: &[u64]) -> Result<()> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_unstable_by_key(|&i| (ids[i], i));
    if let Some(w) = order.windows(2).find(|w| ids[w[0]] == ids[w[1]]) {
        bail!(
            "--ids {}: id {} appears twice (rows {} and {}); ids must be unique: fix the ids file",
            path.display(),
            ids[w[0]],
            w[0],
            w[1]
        );
    }
    Ok(())
}

fn search(a: SearchArgs, json: bool) -> Result<()> {
    if a.nprobe == Some(0) {
        bail!("--nprobe 0: an IVF search must probe at least 1 list; give --nprobe N with N >= 1");
    }
    let device = a.device.open(json)?;
    let index = AnyIndex::load(&a.index, &device)?;
    let queries = npy::read_vectors(&a.queries)?;
    let started = Instant::now();
    let results = index
        .search(&queries, a.k, a.nprobe, None)
        .with_context(|| format!("searching {} with {}", a.index.display(), a.queries.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let nq = results.len();
    let kk = a.k.min(index.len());
    let worst = index.metric().worst_score();
    let mut ids = vec![-1i64; nq * kk];
    let mut scores = vec![worst; nq * kk];
    for (q, r) in results.iter().enumerate() {
        for (j, (&id, &s)) in r.ids.iter().zip(&r.scores).enumerate().take(kk) {
            ids[q * kk + j] = i64::try_from(id).context("an id does not fit in int64")?;
            scores[q * kk + j] = s;
        }
    }
    npy::write_i64(&a.out_ids, &[nq, kk], &ids)?;
    npy::write_f32(&a.out_scores, &[nq, kk], &scores)?;
    let qps = nq as f64 / seconds.max(1e-9);
    if json {
        println!(
            "{}",
            json!({
                "queries": nq, "k": a.k, "columns": kk, "seconds": seconds, "qps": qps,
                "device": device.describe(), "out_ids": a.out_ids, "out_scores": a.out_scores,
            })
        );
    } else {
        println!(
            "searched {nq} queries (k = {}) in {seconds:.3} s ({qps:.0} QPS) on {} -> {}, {}",
            a.k,
            device.describe(),
            a.out_ids.display(),
            a.out_scores.display()
        );
    }
    Ok(())
}

fn info(a: InfoArgs, json: bool) -> Result<()> {
    let i = file::info(&a.file)?;
    let (min, max) = (i.list_sizes.iter().min().copied(), i.list_sizes.iter().max().copied());
    if json {
        println!(
            "{}",
            json!({
                "file": a.file, "format_version": i.version, "kind": i.kind.name(), "metric": i.metric.name(),
                "dtype": i.dtype.to_string(), "dim": i.dim, "count": i.count,
                "nlist": (i.nlist > 0).then_some(i.nlist), "nprobe": (i.nlist > 0).then_some(i.nprobe),
                "list_size_min": (i.nlist > 0).then_some(min), "list_size_max": (i.nlist > 0).then_some(max),
                "bytes": i.file_bytes, "checksum": "ok",
            })
        );
    } else {
        println!("{}: ragtune index, format version {}, checksum ok", a.file.display(), i.version);
        println!("  kind    {}", i.kind.name());
        println!("  metric  {}", i.metric);
        println!("  dtype   {}", i.dtype);
        println!("  dim     {}", i.dim);
        println!("  vectors {}", i.count);
        if i.nlist > 0 {
            println!("  nlist   {} (list sizes {}..{})", i.nlist, min.unwrap_or(0), max.unwrap_or(0));
            println!("  nprobe  {} (default)", i.nprobe);
        }
        println!("  size    {} bytes", i.file_bytes);
    }
    Ok(())
}
