//! CPU fused attention (blocked, online softmax, multi-threaded): prefill and decode at a
//! SmolLM2-135M-like geometry (9 query heads, 3 kv heads, head_dim 64) and at Llama-like
//! head_dim 128. Throughput is in FLOPs (criterion's "elements"): 4 · b · sq · skv · hq · d,
//! halved for causal prefill (PERFORMANCE.md's convention), so "Gelem/s" reads as GFLOP/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ragtune_bench::random_tensor;
use ragtune_compute::ops::{self, AttentionSpec};
use ragtune_compute::{DType, Tensor};

struct Case {
    name: &'static str,
    b: usize,
    sq: usize,
    skv: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    causal: bool,
    dtype: DType,
}

/// A causal case from `[b, sq, skv, hq, hkv, d]`.
fn case(name: &'static str, [b, sq, skv, hq, hkv, d]: [usize; 6], dtype: DType) -> Case {
    Case { name, b, sq, skv, hq, hkv, d, causal: true, dtype }
}

fn attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    let cases = [
        case("prefill causal b1 s512 h9/3 d64 f32", [1, 512, 512, 9, 3, 64], DType::F32),
        case("prefill causal b1 s1024 h8/8 d128 f32", [1, 1024, 1024, 8, 8, 128], DType::F32),
        case("prefill causal b1 s512 h9/3 d64 bf16", [1, 512, 512, 9, 3, 64], DType::BF16),
        case("decode b1 kv2048 h9/3 d64 f32", [1, 1, 2048, 9, 3, 64], DType::F32),
        case("decode b8 kv1024 h9/3 d64 f32", [8, 1, 1024, 9, 3, 64], DType::F32),
    ];
    for (i, cs) in cases.iter().enumerate() {
        let seed = 10 * i as u64;
        let q = random_tensor(seed, &[cs.b, cs.sq, cs.hq, cs.d], cs.dtype);
        let k = random_tensor(seed + 1, &[cs.b, cs.skv, cs.hkv, cs.d], cs.dtype);
        let v = random_tensor(seed + 2, &[cs.b, cs.skv, cs.hkv, cs.d], cs.dtype);
        let spec = AttentionSpec::new(cs.causal, cs.d);
        // Correct before fast: finite, and the decode alignment holds (the last query of the
        // batch's first sequence equals a one-query call over the same keys).
        let out = ops::attention(&q, &k, &v, spec, None).unwrap().to_vec_f32().unwrap();
        assert!(out.iter().all(|x| x.is_finite()), "{}: non-finite output", cs.name);
        if cs.sq > 1 {
            let row = cs.hq * cs.d;
            let qv = q.to_vec_f32().unwrap();
            let last = Tensor::from_slice(&qv[(cs.sq - 1) * row..cs.sq * row], &[1, 1, cs.hq, cs.d]).unwrap();
            let last = ops::cast(&last, cs.dtype).unwrap();
            // The first sequence's keys or values alone, back in the case's dtype.
            let first_seq = |t: &Tensor| {
                let n = cs.skv * cs.hkv * cs.d;
                let t = Tensor::from_slice(&t.to_vec_f32().unwrap()[..n], &[1, cs.skv, cs.hkv, cs.d]);
                ops::cast(&t.unwrap(), cs.dtype).unwrap()
            };
            let (fk, fv) = (first_seq(&k), first_seq(&v));
            let step = ops::attention(&last, &fk, &fv, spec, None).unwrap().to_vec_f32().unwrap();
            let want = &out[(cs.sq - 1) * row..cs.sq * row];
            let err = step.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-2, "{}: decode vs prefill differ by {err}", cs.name);
        }
        let mut flops = 4.0 * (cs.b * cs.sq * cs.skv * cs.hq * cs.d) as f64;
        if cs.causal && cs.sq == cs.skv {
            flops /= 2.0;
        }
        g.throughput(Throughput::Elements(flops as u64));
        g.bench_function(cs.name, |bch| bch.iter(|| ops::attention(&q, &k, &v, spec, None).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, attention);
criterion_main!(benches);
