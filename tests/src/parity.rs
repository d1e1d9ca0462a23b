//! The kernel parity suite: every op of the compute crate, run on a kernel device (the CPU
//! emulation of `kernels/*.cu`, or a CUDA GPU) and on the CPU, on random shapes that are not
//! multiples of any block or tile size. Each check panics with the op, shape and dtype on failure.

use ragtune_compute::ops::{self, MatmulSpec, Similarity, SoftmaxSpec, TopkSpec};
use ragtune_compute::{DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::{
    MatmulCase, assert_close, bitmap_tensor, ivf_case, lora_backward_args, random_tensor, search_case,
    tolerance,
};

fn on(device: &Device, t: &Tensor) -> Tensor {
    t.to_device(device).expect("copy to device")
}

fn compare(what: &str, dev: &Tensor, cpu: &Tensor, tol: f64) {
    assert!(!dev.is_host() || cpu.is_host(), "{what}: result should stay on the device");
    assert_eq!(dev.shape(), cpu.shape(), "{what}: shape");
    assert_eq!(dev.dtype(), cpu.dtype(), "{what}: dtype");
    let reference: Vec<f64> = cpu.to_vec_f32().unwrap().into_iter().map(f64::from).collect();
    assert_close(what, &dev.to_vec_f32().unwrap(), &reference, tol);
}

pub fn matmul(device: &Device, rng: &mut ChaCha8Rng) {
    let cases: &[MatmulCase] = &[
        (&[], &[], 1, 1, 1),
        (&[], &[], 17, 33, 65),
        (&[3], &[3], 5, 7, 19),
        (&[2, 2], &[], 9, 4, 31),
        (&[], &[4], 6, 3, 11),
        (&[], &[], 3, 5, 0),
        (&[0], &[0], 4, 4, 4),
    ];
    for dtype in DType::FLOATS {
        for &(ba, bb, m, n, k) in cases {
            for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let sa: Vec<usize> =
                    ba.iter().copied().chain(if trans_a { [k, m] } else { [m, k] }).collect();
                let sb: Vec<usize> =
                    bb.iter().copied().chain(if trans_b { [n, k] } else { [k, n] }).collect();
                let (a, _) = random_tensor(rng, &sa, dtype, 1.0);
                let (b, _) = random_tensor(rng, &sb, dtype, 1.0);
                let spec = MatmulSpec { trans_a, trans_b, alpha: 0.75 };
                let cpu = ops::matmul_ex(&a, &b, spec).unwrap();
                let dev = ops::matmul_ex(&on(device, &a), &on(device, &b), spec).unwrap();
                compare(
                    &format!("matmul {dtype} a{sa:?} b{sb:?} {spec:?}"),
                    &dev,
                    &cpu,
                    tolerance(dtype, true),
                );
            }
        }
    }
}

const ROW_SHAPES: &[&[usize]] = &[&[1], &[3, 1], &[5, 33], &[2, 3, 100], &[2, 1000], &[1, 4099]];

pub fn norms(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &shape in ROW_SHAPES {
            let cols = *shape.last().unwrap();
            let (x, _) = random_tensor(rng, shape, dtype, 3.0);
            let (w, _) = random_tensor(rng, &[cols], dtype, 1.0);
            let (b, _) = random_tensor(rng, &[cols], dtype, 1.0);
            let (xd, wd, bd) = (on(device, &x), on(device, &w), on(device, &b));
            let tol = tolerance(dtype, true);
            compare(
                &format!("rms_norm {dtype} {shape:?}"),
                &ops::rms_norm(&xd, &wd, 1e-5).unwrap(),
                &ops::rms_norm(&x, &w, 1e-5).unwrap(),
                tol,
            );
            for bias in [true, false] {
                let (bc, bdv) = if bias { (Some(&b), Some(&bd)) } else { (None, None) };
                compare(
                    &format!("layer_norm {dtype} {shape:?} bias={bias}"),
                    &ops::layer_norm(&xd, &wd, bdv, 1e-5).unwrap(),
                    &ops::layer_norm(&x, &w, bc, 1e-5).unwrap(),
                    tol,
                );
            }
        }
    }
}

pub fn softmax(device: &Device, rng: &mut ChaCha8Rng) {
    let shapes: &[&[usize]] = &[&[1, 1], &[7, 7], &[2, 5, 9], &[3, 9, 5], &[1, 2, 3000], &[4, 1, 37]];
    for dtype in DType::FLOATS {
        for &shape in shapes {
            for causal in [false, true] {
                let (x, _) = random_tensor(rng, shape, dtype, 4.0);
                let spec = SoftmaxSpec { scale: 0.3, causal };
                compare(
                    &format!("softmax {dtype} {shape:?} causal={causal}"),
                    &ops::softmax(&on(device, &x), spec).unwrap(),
                    &ops::softmax(&x, spec).unwrap(),
                    tolerance(dtype, true),
                );
            }
        }
    }
}

pub fn elementwise(device: &Device, rng: &mut ChaCha8Rng) {
    let cases: &[(&[usize], &[usize])] =
        &[(&[1], &[1]), (&[7, 13], &[7, 13]), (&[5, 3, 77], &[77]), (&[1001], &[1001])];
    for dtype in DType::FLOATS {
        for &(sa, sb) in cases {
            let (a, _) = random_tensor(rng, sa, dtype, 2.0);
            let (b, _) = random_tensor(rng, sb, dtype, 2.0);
            let (ad, bd) = (on(device, &a), on(device, &b));
            let tol = tolerance(dtype, false);
            let what = |op: &str| format!("{op} {dtype} {sa:?} {sb:?}");
            compare(&what("add"), &ops::add(&ad, &bd).unwrap(), &ops::add(&a, &b).unwrap(), tol);
            compare(&what("mul"), &ops::mul(&ad, &bd).unwrap(), &ops::mul(&a, &b).unwrap(), tol);
            compare(&what("scale"), &ops::scale(&ad, -1.7).unwrap(), &ops::scale(&a, -1.7).unwrap(), tol);
            compare(&what("silu"), &ops::silu(&ad).unwrap(), &ops::silu(&a).unwrap(), tol);
            compare(&what("gelu"), &ops::gelu(&ad).unwrap(), &ops::gelu(&a).unwrap(), tol);
        }
    }
}

/// Casts must agree exactly, edge values included (NaN, ±∞, out of range, halfway cases). NaN
/// payloads may differ (CUDA writes the canonical 0x7FFF, the `half` crate keeps a quiet NaN).
pub fn cast(device: &Device, rng: &mut ChaCha8Rng) {
    let mut values = crate::random_vec(rng, 300, 300.0);
    values.extend([
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -1.99,
        255.0,
        255.9,
        256.0,
        -1.0,
        1e10,
        -1e10,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        16_777_217.0,
        1.0 + 1.0 / 256.0,
        65504.0,
        70000.0,
        1e-8,
    ]);
    let src = Tensor::from_slice(&values, &[values.len()]).unwrap();
    for from in DType::ALL {
        let x = ops::cast(&src, from).unwrap();
        for to in DType::ALL {
            let cpu = ops::cast(&x, to).unwrap();
            let dev = ops::cast(&on(device, &x), to).unwrap().to_host().unwrap();
            let (c, d) = (cpu.host_bytes().unwrap(), dev.host_bytes().unwrap());
            let (cf, df) = (cpu.to_vec_f32().unwrap(), dev.to_vec_f32().unwrap());
            if let Some(i) = (0..values.len()).find(|&i| {
                let s = to.size();
                c[i * s..i * s + s] != d[i * s..i * s + s] && !(cf[i].is_nan() && df[i].is_nan())
            }) {
                panic!(
                    "cast {from} -> {to}: element {i} (source {}) differs: cpu {:?} device {:?}",
                    values[i],
                    &c[i * to.size()..(i + 1) * to.size()],
                    &d[i * to.size()..(i + 1) * to.size()]
                );
            }
        }
    }
}

/// Row-wise L2 normalisation (kernels/norm.cu), zero rows included.
pub fn l2_normalize(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &shape in ROW_SHAPES {
            let (x, _) = random_tensor(rng, shape, dtype, 3.0);
            compare(
                &format!("l2_normalize {dtype} {shape:?}"),
                &ops::l2_normalize(&on(device, &x)).unwrap(),
                &ops::l2_normalize(&x).unwrap(),
                tolerance(dtype, true),
            );
        }
        let zeros = ops::cast(&Tensor::from_slice(&[0.0f32; 10], &[2, 5]).unwrap(), dtype).unwrap();
        let dev = ops::l2_normalize(&on(device, &zeros)).unwrap().to_vec_f32().unwrap();
        assert_eq!(dev, vec![0.0; 10], "l2_normalize {dtype}: a zero row stays zero");
    }
}

/// (nq, n, d, k) for the search parity: streaming (nq <= 8), fused (more queries; bf16/f16 on
/// tensor cores; 70 queries make a full and a partial 64-query block) and radix (k > 128)
/// paths, n not a multiple of any tile, k = 1, k > n.
const TOPK_CASES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (3, 700, 20, 1),
    (5, 1100, 37, 10),
    (2, 40, 8, 100),
    (20, 1300, 40, 1),
    (33, 777, 70, 50),
    (17, 100, 16, 128),
    (3, 3000, 24, 2000),
    (12, 150, 9, 200),
    (70, 200, 33, 7),
];

fn search_on(
    device: &Device,
    q: &Tensor,
    b: &Tensor,
    k: usize,
    sim: Similarity,
    allow: Option<&Tensor>,
) -> (Vec<i32>, Vec<f32>) {
    let r = ops::topk_similarity(
        &on(device, q),
        &on(device, b),
        TopkSpec { k, similarity: sim },
        allow.map(|a| on(device, a)).as_ref(),
    )
    .unwrap();
    assert!(!r.rows.is_host() || device.is_cpu(), "topk results should stay on the device");
    (r.rows.to_vec::<i32>().unwrap(), r.scores.to_vec::<f32>().unwrap())
}

/// `topk_similarity` on the device against the CPU: on integer data (exact scores on every path)
/// rows, ties and scores must be identical, with and without a filter that leaves fewer than k
/// rows; on random data the scores must agree within the dtype's tolerance.
pub fn topk(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &(nq, n, d, k) in TOPK_CASES {
            for sim in [Similarity::Dot, Similarity::L2] {
                let what = format!("topk {dtype} {sim:?} nq={nq} n={n} d={d} k={k}");
                let (q, b, _, _) = search_case(rng, nq, n, d, dtype, true);
                let cpu = search_on(&Device::Cpu, &q, &b, k, sim, None);
                assert_eq!(search_on(device, &q, &b, k, sim, None), cpu, "{what}: integer data");
                // Keep about a third of the rows, and only 3 in the upper half.
                let allow: Vec<bool> =
                    (0..n).map(|r| if r < n / 2 { r % 3 == 1 } else { r % 97 == 5 }).collect();
                let mask = bitmap_tensor(&allow);
                let cpu = search_on(&Device::Cpu, &q, &b, k, sim, Some(&mask));
                assert_eq!(
                    search_on(device, &q, &b, k, sim, Some(&mask)),
                    cpu,
                    "{what}: integer data, filtered"
                );
                let (q, b, _, _) = search_case(rng, nq, n, d, dtype, false);
                let (_, cpu_scores) = search_on(&Device::Cpu, &q, &b, k, sim, None);
                let (_, dev_scores) = search_on(device, &q, &b, k, sim, None);
                let reference: Vec<f64> = cpu_scores.iter().map(|&v| f64::from(v)).collect();
                assert_close(
                    &format!("{what}: random data"),
                    &dev_scores,
                    &reference,
                    tolerance(DType::F32, true),
                );
            }
        }
    }
}

/// (list sizes, nq, d): empty lists, a list of one row, lists longer than a 256-row chunk of
/// the kernel, d not a multiple of the 32 lanes.
const IVF_CASES: &[(&[usize], usize, usize)] =
    &[(&[0, 1, 300, 7, 40, 0, 529], 6, 24), (&[3], 2, 9), (&[0, 70, 1, 260], 5, 33)];

/// `topk_ivf` on the device against the CPU on integer data: rows, ties and scores identical,
/// for nprobe 1 and more (with −1 probes), k below and above the probed rows, with and without
/// a filter.
pub fn topk_ivf(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &(sizes, nq, d) in IVF_CASES {
            let n: usize = sizes.iter().sum();
            let (q, b, _, _) = search_case(rng, nq, n, d, dtype, true);
            for nprobe in [1, sizes.len().min(3)] {
                let (offsets, probes, _, _) = ivf_case(rng, sizes, nq, nprobe);
                let allow: Vec<bool> = (0..n).map(|r| r % 3 != 1).collect();
                let mask = bitmap_tensor(&allow);
                for k in [1, 10, 400] {
                    for sim in [Similarity::Dot, Similarity::L2] {
                        for filter in [None, Some(&mask)] {
                            let what = format!(
                                "topk_ivf {dtype} {sim:?} sizes={sizes:?} nq={nq} d={d} nprobe={nprobe} k={k} \
                                 filtered={}",
                                filter.is_some()
                            );
                            let run = |dev: &Device| {
                                let r = ops::topk_ivf(
                                    &on(dev, &q),
                                    &on(dev, &b),
                                    &on(dev, &offsets),
                                    &on(dev, &probes),
                                    TopkSpec { k, similarity: sim },
                                    filter.map(|a| on(dev, a)).as_ref(),
                                )
                                .unwrap_or_else(|e| panic!("{what}: {e}"));
                                assert!(
                                    !r.rows.is_host() || dev.is_cpu(),
                                    "{what}: results should stay on the device"
                                );
                                (r.rows.to_vec::<i32>().unwrap(), r.scores.to_vec::<f32>().unwrap())
                            };
                            assert_eq!(run(device), run(&Device::Cpu), "{what}");
                        }
                    }
                }
            }
        }
    }
}

/// `kmeans_assign` (exact on integer data, ties included) and `kmeans_update` (f32 atomics on
/// the device: equal up to rounding) against the CPU.
pub fn kmeans(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for (n, c, d) in [(1usize, 1usize, 1usize), (150, 7, 5), (700, 70, 33), (333, 130, 17)] {
            let what = format!("kmeans {dtype} n={n} c={c} d={d}");
            let (p, cents, _, _) = search_case(rng, n, c, d, dtype, true);
            let (ca, cd) = ops::kmeans_assign(&p, &cents).unwrap();
            let (da, dd) = ops::kmeans_assign(&on(device, &p), &on(device, &cents)).unwrap();
            assert_eq!(da.to_vec::<i32>().unwrap(), ca.to_vec::<i32>().unwrap(), "{what}: assignment");
            assert_eq!(dd.to_vec::<f32>().unwrap(), cd.to_vec::<f32>().unwrap(), "{what}: distances");
            let (p, _) = random_tensor(rng, &[n, d], dtype, 2.0);
            let (old, _) = random_tensor(rng, &[c, d], dtype, 2.0);
            // Cluster c - 1 stays empty when c > 1; every 5th point is unassigned.
            let assign: Vec<i32> = (0..n)
                .map(|i| if i % 5 == 4 { -1 } else { (i * 7 % c.max(2).saturating_sub(1).max(1)) as i32 })
                .collect();
            let at = Tensor::from_slice(&assign, &[n]).unwrap();
            let (cc, cn) = ops::kmeans_update(&p, &at, &old).unwrap();
            let (dc, dn) = ops::kmeans_update(&on(device, &p), &on(device, &at), &on(device, &old)).unwrap();
            assert_eq!(dn.to_vec::<i32>().unwrap(), cn.to_vec::<i32>().unwrap(), "{what}: counts");
            compare(&format!("{what}: centroids"), &dc, &cc, tolerance(DType::F32, true));
        }
    }
}

/// (batch, sq, skv, hq, hkv, d, causal, key_lens) of the attention parity cases: every
/// specialised head_dim in prefill and in decode, GQA groups of 1, 2 and 3, a cache, padding, a
/// length shorter than the queries, and a head_dim no kernel specialises.
type AttentionCase = (usize, usize, usize, usize, usize, usize, bool, Option<&'static [i32]>);
const ATTENTION_CASES: &[AttentionCase] = &[
    (1, 7, 7, 3, 1, 64, true, None),
    (2, 65, 65, 1, 1, 128, true, Some(&[65, 30])),
    (1, 1, 65, 3, 1, 80, true, None),
    (2, 2, 70, 2, 2, 96, true, Some(&[70, 3])),
    (1, 7, 9, 2, 2, 32, false, Some(&[5])),
    (2, 7, 9, 3, 3, 64, true, Some(&[9, 4])),
    (1, 65, 65, 2, 2, 80, false, None),
    (1, 1, 300, 2, 1, 64, true, Some(&[257])),
    (1, 5, 5, 1, 1, 20, true, None),
    (1, 9, 9, 4, 2, 96, true, None),
    (2, 3, 130, 4, 2, 128, true, Some(&[130, 64])),
];

/// Fused attention (kernels/attention.cu): the prefill and the split-KV decode kernels.
pub fn attention(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &(b, sq, skv, hq, hkv, d, causal, lens) in ATTENTION_CASES {
            let spec = ops::AttentionSpec::new(causal, d);
            attention_case(device, rng, dtype, [b, sq, skv, hq, hkv, d], spec, lens);
        }
    }
}

/// One attention call on `device` against the CPU, on fresh random q, k, v of sizes
/// `[batch, sq, skv, hq, hkv, d]`.
fn attention_case(
    device: &Device,
    rng: &mut ChaCha8Rng,
    dtype: DType,
    [b, sq, skv, hq, hkv, d]: [usize; 6],
    spec: ops::AttentionSpec,
    lens: Option<&[i32]>,
) {
    let (q, _) = random_tensor(rng, &[b, sq, hq, d], dtype, 1.0);
    let (k, _) = random_tensor(rng, &[b, skv, hkv, d], dtype, 1.0);
    let (v, _) = random_tensor(rng, &[b, skv, hkv, d], dtype, 1.0);
    let lens = lens.map(|l| Tensor::from_slice(l, &[b]).unwrap());
    let dev_lens = lens.as_ref().map(|l| on(device, l));
    compare(
        &format!(
            "attention {dtype} b{b} sq{sq} skv{skv} hq{hq} hkv{hkv} d{d} causal={} window {:?} {lens:?}",
            spec.causal, spec.window
        ),
        &ops::attention(&on(device, &q), &on(device, &k), &on(device, &v), spec, dev_lens.as_ref()).unwrap(),
        &ops::attention(&q, &k, &v, spec, lens.as_ref()).unwrap(),
        tolerance(dtype, true),
    );
}

/// (batch, sq, skv, hq, hkv, d, window, key_lens) of the sliding-window parity cases: prefill
/// whose later query tiles skip the key tiles before their window (windows no multiple of the
/// 64- or 32-key tiles), prefill over a cache offset with padding, window 1, left-padded
/// queries, split-KV decode over caches longer than the window (several splits), a window
/// longer than the keys, and a head_dim no kernel specialises.
type WindowCase = (usize, usize, usize, usize, usize, usize, usize, Option<&'static [i32]>);
const WINDOW_CASES: &[WindowCase] = &[
    (1, 130, 130, 2, 1, 64, 37, None),
    (2, 70, 200, 2, 2, 128, 50, Some(&[200, 90])),
    (1, 19, 19, 3, 1, 32, 5, None),
    (2, 9, 9, 1, 1, 80, 1, Some(&[9, 4])),
    (1, 1, 300, 2, 1, 64, 70, Some(&[257])),
    (2, 3, 400, 4, 2, 96, 100, Some(&[400, 150])),
    (1, 4, 70, 3, 1, 64, 1, None),
    (1, 2, 40, 2, 2, 32, 100, None),
    (1, 5, 5, 1, 1, 20, 2, None),
];

/// Sliding-window attention (kernels/attention.cu): prefill tile skipping and boundary masks,
/// split-KV decode starting at the window.
pub fn sliding_window_attention(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &(b, sq, skv, hq, hkv, d, window, lens) in WINDOW_CASES {
            let spec = ops::AttentionSpec::new(true, d).with_window(Some(window));
            attention_case(device, rng, dtype, [b, sq, skv, hq, hkv, d], spec, lens);
        }
    }
}

/// Rotary embedding (kernels/rope.cu), partial rotation and large positions included.
pub fn rope(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for &(b, s, h, d, rot) in
            &[(1, 1, 1, 64, 64), (2, 7, 3, 80, 80), (1, 65, 2, 128, 64), (2, 5, 4, 96, 32)]
        {
            let (x, _) = random_tensor(rng, &[b, s, h, d], dtype, 2.0);
            let pos: Vec<i32> = (0..b * s).map(|i| (i as i32 * 997) % 9000).collect();
            let freqs: Vec<f32> =
                (0..rot / 2).map(|j| 1.0 / 10000f32.powf(2.0 * j as f32 / rot as f32)).collect();
            let pos = Tensor::from_slice(&pos, &[b, s]).unwrap();
            let freqs = Tensor::from_slice(&freqs, &[rot / 2]).unwrap();
            compare(
                &format!("rope {dtype} [{b}, {s}, {h}, {d}] rot {rot}"),
                &ops::rope(&on(device, &x), &on(device, &pos), &on(device, &freqs)).unwrap(),
                &ops::rope(&x, &pos, &freqs).unwrap(),
                tolerance(dtype, false),
            );
        }
    }
}

/// Embedding lookup (kernels/embed.cu): exact rows, and an id outside the vocabulary is an error.
pub fn embedding(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        let (table, _) = random_tensor(rng, &[37, 19], dtype, 1.0);
        let ids: Vec<i32> = (0..45).map(|i| (i * 7 + 3) % 37).collect();
        let ids = Tensor::from_slice(&ids, &[5, 9]).unwrap();
        compare(
            &format!("embedding {dtype}"),
            &ops::embedding(&on(device, &table), &on(device, &ids)).unwrap(),
            &ops::embedding(&table, &ids).unwrap(),
            0.0,
        );
        let bad = Tensor::from_slice(&[0i32, 36, 37, -1], &[4]).unwrap();
        let e = ops::embedding(&on(device, &table), &on(device, &bad)).unwrap_err().to_string();
        assert!(e.contains("ids[2]"), "embedding {dtype}: the first bad position is reported: {e}");
    }
}

/// The fused SwiGLU gate (kernels/act.cu).
pub fn swiglu(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        for shape in [&[1usize][..], &[7, 13], &[3, 1001]] {
            let (g, _) = random_tensor(rng, shape, dtype, 4.0);
            let (u, _) = random_tensor(rng, shape, dtype, 2.0);
            compare(
                &format!("swiglu {dtype} {shape:?}"),
                &ops::swiglu(&on(device, &g), &on(device, &u)).unwrap(),
                &ops::swiglu(&g, &u).unwrap(),
                tolerance(dtype, false),
            );
        }
    }
}

/// `copy_into` on the device: the bytes land at the offset, and a tensor sharing the storage
/// keeps its values (copy-on-write).
pub fn copy_into(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::ALL {
        let (cache, _) = random_tensor(rng, &[3, 11], DType::F32, 5.0);
        let (new, _) = random_tensor(rng, &[2, 5], DType::F32, 5.0);
        let (cache, new) = (ops::cast(&cache, dtype).unwrap(), ops::cast(&new, dtype).unwrap());
        let mut dev = on(device, &cache);
        let before = dev.clone();
        ops::copy_into(&mut dev, &on(device, &new), 13).unwrap();
        let mut host = cache.clone();
        ops::copy_into(&mut host, &new, 13).unwrap();
        assert!(!dev.is_host() || device.is_cpu(), "copy_into {dtype}: stays on the device");
        assert_eq!(dev.to_host().unwrap().host_bytes(), host.host_bytes(), "copy_into {dtype}");
        assert_eq!(
            before.to_host().unwrap().host_bytes(),
            cache.host_bytes(),
            "copy_into {dtype}: clone kept"
        );
    }
}

/// The fused AdamW update in place on the device against the CPU's, over a few steps, with a
/// clone of the weights that must keep its values (copy-on-write).
pub fn adamw(device: &Device, rng: &mut ChaCha8Rng) {
    let hp = ops::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    for n in [1usize, 1000, 70_001] {
        let (p, _) = random_tensor(rng, &[n], DType::F32, 1.0);
        let zeros = Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap();
        let (mut dp, mut dm, mut dv) = (on(device, &p), on(device, &zeros), on(device, &zeros));
        let kept = dp.clone();
        let (mut hp_, mut hm, mut hv) = (p.clone(), zeros.clone(), zeros.clone());
        for step in 1..=3 {
            let (g, _) = random_tensor(rng, &[n], DType::F32, 1.0);
            ops::adamw_step(&mut dp, &on(device, &g), &mut dm, &mut dv, &hp, 1e-2, step).unwrap();
            ops::adamw_step(&mut hp_, &g, &mut hm, &mut hv, &hp, 1e-2, step).unwrap();
        }
        for (what, d, h) in [("param", &dp, &hp_), ("m", &dm, &hm), ("v", &dv, &hv)] {
            compare(&format!("adamw {what} [{n}]"), d, h, 1e-5);
        }
        assert_eq!(
            kept.to_vec::<f32>().unwrap(),
            p.to_vec::<f32>().unwrap(),
            "adamw [{n}]: a clone keeps its values"
        );
    }
}

/// The fused cross-entropy on the device against the CPU's: loss, count and the logits' gradient,
/// with ignored rows and vocabularies that are not multiples of a block.
pub fn cross_entropy(device: &Device, rng: &mut ChaCha8Rng) {
    for (rows, vocab) in [(1usize, 1usize), (7, 50), (33, 1000), (4, 5003)] {
        let (x, _) = random_tensor(rng, &[rows, vocab], DType::F32, 4.0);
        let t: Vec<i32> = (0..rows)
            .map(|i| if i % 4 == 2 { ops::IGNORE_INDEX } else { ((i * 7919) % vocab) as i32 })
            .collect();
        let t = Tensor::from_slice(&t, &[rows]).unwrap();
        let dev = ops::cross_entropy(&on(device, &x), &on(device, &t), ops::IGNORE_INDEX).unwrap();
        let cpu = ops::cross_entropy(&x, &t, ops::IGNORE_INDEX).unwrap();
        let what = format!("cross_entropy [{rows}, {vocab}]");
        assert_eq!(dev.count, cpu.count, "{what}: count");
        assert!(
            (dev.loss - cpu.loss).abs() <= 1e-5 * cpu.loss.abs().max(1.0),
            "{what}: loss {} vs {}",
            dev.loss,
            cpu.loss
        );
        compare(&format!("{what} dlogits"), &dev.dlogits, &cpu.dlogits, 1e-5);
    }
}

/// Shapes of the row-wise backward checks: one element, odd sizes, several blocks of a long row.
const BACKWARD_SHAPES: [(usize, usize); 3] = [(1, 1), (5, 37), (70, 1100)];

/// The RMSNorm backward kernel (kernels/norm.cu) against the CPU's.
pub fn rms_norm_backward(device: &Device, rng: &mut ChaCha8Rng) {
    for (rows, cols) in BACKWARD_SHAPES {
        let (x, _) = random_tensor(rng, &[rows, cols], DType::F32, 2.0);
        let (w, _) = random_tensor(rng, &[cols], DType::F32, 1.0);
        let (dy, _) = random_tensor(rng, &[rows, cols], DType::F32, 1.0);
        let (ddx, ddw) =
            ops::rms_norm_backward(&on(device, &x), &on(device, &w), &on(device, &dy), 1e-5).unwrap();
        let (cdx, cdw) = ops::rms_norm_backward(&x, &w, &dy, 1e-5).unwrap();
        compare(&format!("rms_norm_backward dx [{rows}, {cols}]"), &ddx, &cdx, 1e-5);
        compare(&format!("rms_norm_backward dw [{rows}, {cols}]"), &ddw, &cdw, 1e-4);
    }
}

/// The SwiGLU backward kernel (kernels/act.cu) against the CPU's.
pub fn swiglu_backward(device: &Device, rng: &mut ChaCha8Rng) {
    for (rows, cols) in BACKWARD_SHAPES {
        let (x, _) = random_tensor(rng, &[rows, cols], DType::F32, 2.0);
        let (u, _) = random_tensor(rng, &[rows, cols], DType::F32, 2.0);
        let (dy, _) = random_tensor(rng, &[rows, cols], DType::F32, 1.0);
        let (dg, du) = ops::swiglu_backward(&on(device, &x), &on(device, &u), &on(device, &dy)).unwrap();
        let (cg, cu) = ops::swiglu_backward(&x, &u, &dy).unwrap();
        compare(&format!("swiglu_backward dgate [{rows}, {cols}]"), &dg, &cg, 1e-5);
        compare(&format!("swiglu_backward dup [{rows}, {cols}]"), &du, &cu, 1e-5);
    }
}

/// The embedding backward kernel (kernels/embed.cu) against the CPU's, with repeated ids.
pub fn embedding_backward(device: &Device, rng: &mut ChaCha8Rng) {
    for (rows, cols) in BACKWARD_SHAPES {
        let (dy, _) = random_tensor(rng, &[rows, cols], DType::F32, 1.0);
        let vocab = 3 + rows / 2;
        let ids: Vec<i32> = (0..rows).map(|i| ((i * 31) % vocab) as i32).collect();
        let ids = Tensor::from_slice(&ids, &[rows]).unwrap();
        let dt = ops::embedding_backward(&on(device, &ids), &on(device, &dy), vocab).unwrap();
        compare(
            &format!("embedding_backward [{rows}, {cols}] vocab {vocab}"),
            &dt,
            &ops::embedding_backward(&ids, &dy, vocab).unwrap(),
            1e-5,
        );
    }
}

/// (batch, sq, skv, hq, hkv, head_dim, causal, key_lens) of an attention backward case.
type AttentionBackwardCase = (usize, usize, usize, usize, usize, usize, bool, Option<Vec<i32>>);

/// The attention backward kernel against the CPU's: GQA, causal prefill, decode alignment over
/// a longer key range, padding masks and a row that sees no key.
pub fn attention_backward(device: &Device, rng: &mut ChaCha8Rng) {
    // (batch, sq, skv, hq, hkv, head_dim, causal, key_lens)
    // The last three with sliding windows (the case's window): prefill past the window, decode
    // over a cache longer than it, left-padded queries. Head dim 40: a lane owns two dims, one of
    // them only in the first 8 lanes.
    let cases: [(AttentionBackwardCase, Option<usize>); 8] = [
        ((2, 5, 5, 4, 2, 8, true, None), None),
        ((1, 6, 9, 4, 2, 40, false, None), None),
        ((2, 3, 70, 2, 1, 16, true, Some(vec![70, 41])), None),
        ((1, 4, 4, 3, 3, 5, false, Some(vec![3])), None),
        ((1, 3, 3, 2, 1, 4, true, Some(vec![0])), None),
        ((1, 9, 9, 2, 1, 8, true, None), Some(3)),
        ((2, 2, 70, 2, 2, 16, true, Some(vec![70, 30])), Some(20)),
        ((2, 5, 7, 3, 1, 8, true, Some(vec![7, 3])), Some(1)),
    ];
    for ((b, sq, skv, hq, hkv, d, causal, lens), window) in cases {
        let (q, _) = random_tensor(rng, &[b, sq, hq, d], DType::F32, 1.0);
        let (k, _) = random_tensor(rng, &[b, skv, hkv, d], DType::F32, 1.0);
        let (v, _) = random_tensor(rng, &[b, skv, hkv, d], DType::F32, 1.0);
        let (g, _) = random_tensor(rng, &[b, sq, hq, d], DType::F32, 1.0);
        let spec = ops::AttentionSpec::new(causal, d).with_window(window);
        let lens = lens.map(|l| Tensor::from_slice(&l, &[b]).unwrap());
        let dl = lens.as_ref().map(|l| on(device, l));
        let dev = ops::attention_backward(
            &on(device, &q),
            &on(device, &k),
            &on(device, &v),
            &on(device, &g),
            spec,
            dl.as_ref(),
        )
        .unwrap();
        let cpu = ops::attention_backward(&q, &k, &v, &g, spec, lens.as_ref()).unwrap();
        let what = format!(
            "attention_backward [{b}, {sq}, {skv}, {hq}, {hkv}, {d}] causal {causal} window {window:?}"
        );
        compare(&format!("{what} dq"), &dev.0, &cpu.0, 1e-4);
        compare(&format!("{what} dk"), &dev.1, &cpu.1, 1e-4);
        compare(&format!("{what} dv"), &dev.2, &cpu.2, 1e-4);
    }
}

/// The multi-adapter LoRA shrink and expand against the CPU's, every float dtype, with rows of
/// no adapter (id −1) and in/out sizes that are not multiples of a block.
pub fn lora(device: &Device, rng: &mut ChaCha8Rng) {
    for dtype in DType::FLOATS {
        let (rows, inp, out, r, adapters) = (9usize, 300usize, 37usize, 4usize, 3usize);
        let (x, _) = random_tensor(rng, &[rows, inp], dtype, 1.0);
        let (a, _) = random_tensor(rng, &[adapters, r, inp], dtype, 1.0);
        let (b, _) = random_tensor(rng, &[adapters, out, r], dtype, 1.0);
        let (y, _) = random_tensor(rng, &[rows, out], dtype, 1.0);
        let ids: Vec<i32> = (0..rows as i32).map(|i| i % (adapters as i32 + 1) - 1).collect();
        let ids = Tensor::from_slice(&ids, &[rows]).unwrap();
        let scales = [2.0f32, 0.5, -1.0];
        let du = ops::lora_shrink(&on(device, &x), &on(device, &a), &on(device, &ids)).unwrap();
        let cu = ops::lora_shrink(&x, &a, &ids).unwrap();
        compare(&format!("lora_shrink {dtype}"), &du, &cu, 1e-4);
        let mut dy = on(device, &y);
        let mut cy = y.clone();
        ops::lora_expand(&mut dy, &du, &on(device, &b), &on(device, &ids), &scales).unwrap();
        ops::lora_expand(&mut cy, &cu, &b, &ids, &scales).unwrap();
        compare(&format!("lora_expand {dtype}"), &dy, &cy, tolerance(dtype, true));
        // Device ids are not read back: an id past the bank reads as no adapter (a zero row of
        // u, y unchanged) instead of reading past the stacked weights.
        let bad = Tensor::from_slice(&[0i32, adapters as i32, 1, 1000], &[4]).unwrap();
        let x4 = on(device, &random_tensor(rng, &[4, inp], dtype, 1.0).0);
        let u4 = ops::lora_shrink(&x4, &on(device, &a), &on(device, &bad)).unwrap().to_vec::<f32>().unwrap();
        assert!(u4[r..2 * r].iter().chain(&u4[3 * r..]).all(|&v| v == 0.0), "ids past the bank: {u4:?}");
        assert!(u4[..r].iter().any(|&v| v != 0.0), "id 0 gave a zero row: {u4:?}");
        // The expand stages B in tiles of 32 columns x 16 ranks per warp: rank 20 takes a full
        // and a partial tile, 70 columns three warps, the last one partial.
        let (r2, out2) = (20usize, 70usize);
        let (u2, _) = random_tensor(rng, &[rows, r2], DType::F32, 1.0);
        let (b2, _) = random_tensor(rng, &[adapters, out2, r2], dtype, 1.0);
        let (y2, _) = random_tensor(rng, &[rows, out2], dtype, 1.0);
        let (mut dy2, mut cy2) = (on(device, &y2), y2.clone());
        ops::lora_expand(&mut dy2, &on(device, &u2), &on(device, &b2), &on(device, &ids), &scales).unwrap();
        ops::lora_expand(&mut cy2, &u2, &b2, &ids, &scales).unwrap();
        compare(&format!("lora_expand r {r2} out {out2} {dtype}"), &dy2, &cy2, tolerance(dtype, true));
        if dtype != DType::F32 {
            lora_grouped(device, rng, dtype);
        }
        // The backward, with and without a dropout mask (zeros and twos), rank 11: a full and a
        // partial group of 8 ranks on the GPU; 260 rows: two chunks of the outer products.
        let (rows, r, inp) = (260usize, 11usize, 72usize);
        let (x, _) = random_tensor(rng, &[rows, inp], dtype, 1.0);
        let (a, _) = random_tensor(rng, &[adapters, r, inp], dtype, 1.0);
        let (b, _) = random_tensor(rng, &[adapters, out, r], dtype, 1.0);
        let (g, _) = random_tensor(rng, &[rows, out], dtype, 1.0);
        let (dx0, _) = random_tensor(rng, &[rows, inp], dtype, 1.0);
        let m: Vec<f32> = (0..rows * inp).map(|i| if i % 3 == 0 { 0.0 } else { 2.0 }).collect();
        let mask = ops::cast(&Tensor::from_slice(&m, &[rows, inp]).unwrap(), dtype).unwrap();
        // Adapter 2 has no rows below 200: the second chunk carries most of its gradient.
        let ids: Vec<i32> = (0..rows as i32).map(|i| if i < 200 { i % 3 - 1 } else { 2 }).collect();
        let ids = Tensor::from_slice(&ids, &[rows]).unwrap();
        // Both mask cases in f32, one in each half type (the emulator runs a thread at a time).
        let cases: &[bool] = match dtype {
            DType::F32 => &[false, true],
            DType::BF16 => &[true],
            _ => &[false],
        };
        for &masked in cases {
            let u = ops::lora_shrink(&x, &a, &ids).unwrap();
            let what = format!("lora_backward {dtype} masked {masked}");
            let inputs = [&x, &mask, &g, &u, &a, &b, &ids];
            check_lora_backward(device, &what, inputs, masked, &scales, &dx0, dtype, false);
        }
        if dtype != DType::F32 {
            continue;
        }
        // Training's batch: every row uses the one adapter. A device runs the reductions over
        // rows as GEMMs there (lora_backward_shared); the CPU's general backward is the reference.
        let ids0 = Tensor::from_slice(&vec![0i32; rows], &[rows]).unwrap();
        let (a1, _) = random_tensor(rng, &[1, r, inp], dtype, 1.0);
        let (b1, _) = random_tensor(rng, &[1, out, r], dtype, 1.0);
        let u1 = ops::lora_shrink(&x, &a1, &ids0).unwrap();
        for masked in [false, true] {
            let what = format!("lora_backward_shared masked {masked}");
            let inputs = [&x, &mask, &g, &u1, &a1, &b1, &ids0];
            check_lora_backward(device, &what, inputs, masked, &[-0.75], &dx0, dtype, true);
        }
    }
}

/// The grouped (SGMV) tensor-core shrink and expand, which a device takes for bf16 / f16 batches
/// of 64 rows or more, against the CPU: 150 rows (not a multiple of the 16-row mma tile) mixing
/// rows of no adapter, an adapter of 90-odd rows (two 64-row tiles), one of a single row and
/// one of none; ranks 8, 16, 20 and 64; in and out sizes that are not multiples of the 64-wide
/// tiles, aligned (whole 16-byte copies) or not.
fn lora_grouped(device: &Device, rng: &mut ChaCha8Rng, dtype: DType) {
    let (rows, adapters) = (150usize, 5usize);
    let ids: Vec<i32> = (0..rows as i32)
        .map(|i| match i {
            5 => 4,
            _ if i % 7 == 0 => -1,
            _ if i < 110 => 0,
            _ => 1 + i % 2,
        })
        .collect();
    let ids = Tensor::from_slice(&ids, &[rows]).unwrap();
    let scales = [0.5f32, -2.0, 1.5, 3.0, -0.25];
    for (r, inp, out) in [(16usize, 264usize, 100usize), (8, 200, 70), (64, 72, 36), (20, 264, 64)] {
        let (x, _) = random_tensor(rng, &[rows, inp], dtype, 1.0);
        let (a, _) = random_tensor(rng, &[adapters, r, inp], dtype, 1.0);
        let (b, _) = random_tensor(rng, &[adapters, out, r], dtype, 1.0);
        let (y, _) = random_tensor(rng, &[rows, out], dtype, 1.0);
        let what = format!("grouped lora rows {rows} r {r} in {inp} out {out} {dtype}");
        let du = ops::lora_shrink(&on(device, &x), &on(device, &a), &on(device, &ids)).unwrap();
        let cu = ops::lora_shrink(&x, &a, &ids).unwrap();
        compare(&format!("{what} shrink"), &du, &cu, 1e-4);
        let (mut dy, mut cy) = (on(device, &y), y.clone());
        ops::lora_expand(&mut dy, &du, &on(device, &b), &on(device, &ids), &scales).unwrap();
        ops::lora_expand(&mut cy, &cu, &b, &ids, &scales).unwrap();
        compare(&format!("{what} expand"), &dy, &cy, tolerance(dtype, true));
    }
}

/// One LoRA backward (dx, dA, dB) on `device` against the CPU's general backward, from the
/// tensors `[x, mask, dy, u, a, b, ids]`. `shared`: the device runs `lora_backward_shared`, the
/// path training takes when every row uses the one adapter.
#[allow(clippy::too_many_arguments)]
fn check_lora_backward(
    device: &Device,
    what: &str,
    [x, mask, g, u, a, b, ids]: [&Tensor; 7],
    masked: bool,
    scales: &[f32],
    dx0: &Tensor,
    dtype: DType,
    shared: bool,
) {
    let run = |d: &Device, shared: bool| {
        let t = |v: &Tensor| on(d, v);
        let (x, mask, g, u, a, b, ids) = (t(x), t(mask), t(g), t(u), t(a), t(b), t(ids));
        let inputs = lora_backward_args([&x, &mask, &g, &u, &a, &b, &ids], masked, scales);
        let mut dx = on(d, dx0);
        let backward = if shared { ops::lora_backward_shared } else { ops::lora_backward };
        let (da, db) = backward(&inputs, &mut dx).unwrap();
        (dx, da, db)
    };
    let (gdx, gda, gdb) = run(device, shared);
    let (cdx, cda, cdb) = run(&Device::Cpu, false);
    compare(&format!("{what} dx"), &gdx, &cdx, tolerance(dtype, true));
    compare(&format!("{what} dA"), &gda, &cda, 1e-4);
    compare(&format!("{what} dB"), &gdb, &cdb, 1e-4);
}
