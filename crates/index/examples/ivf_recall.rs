//! The recall@10-vs-nprobe curve of IvfFlatIndex on a clustered synthetic set, against the exact
//! FlatIndex on the same data (the table in the crate docs and the README comes from here):
//!
//! ```sh
//! cargo run --release -p ragtune-index --example ivf_recall [-- N DIM CLUSTERS NLIST SIGMA_PERCENT]
//! ```
//!
//! The set: CLUSTERS Gaussian blobs (centres uniform in [-1, 1]^DIM, σ = SIGMA_PERCENT/100 per coordinate, default 0.5: the
//! blobs overlap, so one cell rarely holds every neighbour),
//! N base vectors and 1,000 queries drawn from the same blobs, seed 7.

use std::time::Instant;

use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{FlatIndex, IvfFlatIndex, IvfParams, Metric};
use ragtune_tests::clustered;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (n, dim, clusters, nlist, nq, k) = (arg(0, 100_000), arg(1, 64), arg(2, 200), arg(3, 256), 1000, 10);
    let sigma = arg(4, 50) as f32 / 100.0;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (base, queries) = clustered(&mut rng, n, nq, dim, clusters, sigma);
    let ids: Vec<u64> = (0..n as u64).collect();
    let (base, queries) = (Tensor::from_slice(&base, &[n, dim])?, Tensor::from_slice(&queries, &[nq, dim])?);
    println!(
        "n = {n}, dim = {dim}, {clusters} clusters (σ = {sigma}), nlist = {nlist}, {nq} queries, k = {k}, {}",
        Device::Cpu.describe()
    );
    for metric in Metric::ALL {
        let mut flat = FlatIndex::new(dim, metric, DType::F32, &Device::Cpu)?;
        flat.add(&base, &ids)?;
        let t = Instant::now();
        let exact = flat.search(&queries, k, None)?;
        let flat_qps = nq as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ivf = IvfFlatIndex::build(&base, &ids, metric, DType::F32, &Device::Cpu, IvfParams::new(nlist))?;
        println!(
            "\nmetric {metric}: IVF build {:.2} s; flat search {flat_qps:.0} QPS",
            t.elapsed().as_secs_f64()
        );
        println!("| nprobe | recall@10 | QPS |\n|---|---|---|");
        for nprobe in [1, 2, 4, 8, 16, 32, 64] {
            if nprobe > nlist {
                break;
            }
            let t = Instant::now();
            let got = ivf.search_nprobe(&queries, k, nprobe, None)?;
            let qps = nq as f64 / t.elapsed().as_secs_f64();
            let hit: usize = got
                .iter()
                .zip(&exact)
                .map(|(g, e)| g.ids.iter().filter(|id| e.ids.contains(id)).count())
                .sum();
            println!("| {nprobe} | {:.3} | {qps:.0} |", hit as f64 / (nq * k) as f64);
        }
    }
    Ok(())
}
