//! CPU exact search (`topk_similarity`) at the size of the index issue's bar: 100k × 384 f32
//! base, 1,000 queries, k = 10 (FAISS IndexFlatIP does ~2,300 QPS there on 2 cores). Throughput
//! is reported in queries (criterion's "elements/s" = QPS); the FLOP rate of the similarity
//! (2 · nq · n · d) follows from it. Also a single query (bandwidth-bound) and a large k.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ragtune_bench::{gemm_flops, random_tensor};
use ragtune_compute::DType;
use ragtune_compute::ops::{self, Similarity, TopkSpec};

fn topk(c: &mut Criterion) {
    let (n, d, nq) = (100_000usize, 384usize, 1000usize);
    let base = random_tensor(1, &[n, d], DType::F32);
    let queries = random_tensor(2, &[nq, d], DType::F32);
    let mut g = c.benchmark_group("topk");
    g.sample_size(10);
    for (k, sim) in [(10, Similarity::Dot), (10, Similarity::L2), (1000, Similarity::Dot)] {
        let spec = TopkSpec { k, similarity: sim };
        // Correct before fast: the best dot product of a query with itself-like rows is finite
        // and the scores come back ordered.
        let r = ops::topk_similarity(&queries, &base, spec, None).unwrap();
        let s = r.scores.to_vec::<f32>().unwrap();
        assert!(s[..k].windows(2).all(|w| if sim == Similarity::Dot { w[0] >= w[1] } else { w[0] <= w[1] }));
        g.throughput(Throughput::Elements(nq as u64));
        let name = format!("{sim:?} {n}x{d} nq={nq} k={k} ({} GFLOP)", gemm_flops(nq, n, d) / 1_000_000_000);
        g.bench_function(name, |b| b.iter(|| ops::topk_similarity(&queries, &base, spec, None).unwrap()));
    }
    let one = random_tensor(3, &[1, d], DType::F32);
    g.throughput(Throughput::Elements(1));
    let spec = TopkSpec { k: 10, similarity: Similarity::Dot };
    g.bench_function(format!("Dot {n}x{d} nq=1 k=10"), |b| {
        b.iter(|| ops::topk_similarity(&one, &base, spec, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, topk);
criterion_main!(benches);
