//! The bf16 and int8 screens of the CPU flat search (`cpu::topk_screen`): their answers are
//! exactly the top k of the exact re-scored keys over ALL rows — checked against exhaustive
//! re-scoring, bit for bit, on random data, on data built so that thousands of rows fall inside
//! the error bound, with filters, for both metrics, odd widths and ragged sizes — with the
//! portable kernels everywhere and the AVX512_BF16, AVX2 and VNNI kernels where the CPU has them; the
//! bound itself against f64 dot products on data shaped to stress it; and the exact keys against
//! f64 dot products.

use ragtune_compute::Tensor;
use ragtune_compute::cpu::topk::{Selector, pack, sqnorm, unpack_key, unpack_row};
use ragtune_compute::cpu::topk_screen::{self, Kernel, exact_key};
use ragtune_compute::ops::{self, Similarity, TopkSpec};
use ragtune_tests::{random_vec, rng};

/// Every kernel this CPU runs: both portable ones, and each SIMD one the CPU has.
fn kernels() -> Vec<Kernel> {
    let (run, skip): (Vec<Kernel>, Vec<Kernel>) = Kernel::ALL.into_iter().partition(|k| k.available());
    if !skip.is_empty() {
        println!("this CPU lacks {skip:?}: those kernels are not run here");
    }
    run
}

/// Top k of the exact keys over every allowed row, as the screen must return them.
fn exhaustive(
    q: &[f32],
    base: &[f32],
    d: usize,
    k: usize,
    sim: Similarity,
    allow: Option<&[u32]>,
) -> Vec<Vec<u64>> {
    let n = base.len() / d;
    q.chunks(d)
        .map(|qr| {
            let mut sel = Selector::new(k);
            for r in 0..n {
                if allow.is_some_and(|a| (a[r >> 5] >> (r & 31)) & 1 == 0) {
                    continue;
                }
                sel.push(pack(exact_key(qr, &base[r * d..(r + 1) * d], sqnorm(qr), sim), r));
            }
            sel.into_sorted()
        })
        .collect()
}

fn check(q: &[f32], base: &[f32], d: usize, k: usize, sim: Similarity, allow: Option<&[u32]>, what: &str) {
    let (nq, n) = (q.len() / d, base.len() / d);
    let want = exhaustive(q, base, d, k, sim, allow);
    for kernel in kernels() {
        let got =
            topk_screen::search(kernel, q, base, nq, n, d, k, sim, allow).expect("finite data is screened");
        for (qi, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g, w,
                "{what}, {kernel:?}, {sim:?}, k {k}: query {qi} differs from exhaustive re-scoring"
            );
        }
    }
}

/// `nq` random queries and `n` random base rows of dimension `d`, drawn in that order from the
/// generator seeded with `seed`.
fn queries_and_base(seed: u64, nq: usize, n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let q = random_vec(&mut r, nq * d, 1.0);
    (q, random_vec(&mut r, n * d, 1.0))
}

#[test]
fn the_screen_equals_exhaustive_rescoring_on_random_data() {
    let mut r = rng(71);
    for &(n, d, nq) in &[(5003, 384, 70), (4500, 100, 33), (4099, 45, 32)] {
        let q = random_vec(&mut r, nq * d, 1.0);
        let base = random_vec(&mut r, n * d, 1.0);
        for sim in [Similarity::Dot, Similarity::L2] {
            for k in [1, 10, 100] {
                check(&q, &base, d, k, sim, None, &format!("random {n}×{d}, {nq} queries"));
            }
        }
    }
}

#[test]
fn near_ties_inside_the_bound_are_rescored_not_dropped() {
    // Three directions, each repeated ~1,500 times with relative noise 1e-4 — far below bf16's
    // resolution, so for every query thousands of rows share an approximate score with the true
    // top k and only exact re-scoring can order them.
    let (n, d, nq) = (4608, 64, 40);
    let mut r = rng(72);
    let dirs = random_vec(&mut r, 3 * d, 1.0);
    let noise = random_vec(&mut r, n * d, 1e-4);
    let base: Vec<f32> = (0..n * d).map(|i| dirs[(i / d % 3) * d + i % d] * (1.0 + noise[i])).collect();
    let mut q = random_vec(&mut r, nq * d, 1.0);
    q[..d].copy_from_slice(&base[..d]); // a query equal to a stored row
    for sim in [Similarity::Dot, Similarity::L2] {
        for k in [1, 16, 200] {
            check(&q, &base, d, k, sim, None, "near ties");
        }
    }
}

#[test]
fn filters_apply_inside_the_screen() {
    let (n, d, nq) = (4200, 48, 35);
    let (q, base) = queries_and_base(73, nq, n, d);
    let bitmap = |keep: &dyn Fn(usize) -> bool| {
        let mut b = vec![0u32; n.div_ceil(32)];
        (0..n).filter(|&i| keep(i)).for_each(|i| b[i >> 5] |= 1 << (i & 31));
        b
    };
    let thirds = bitmap(&|i| i % 3 == 1);
    check(&q, &base, d, 10, Similarity::Dot, Some(&thirds), "every third row");
    let few = bitmap(&|i| i % 1000 == 7); // 5 rows allowed, k = 10: five results each
    check(&q, &base, d, 10, Similarity::L2, Some(&few), "fewer allowed rows than k");
    let got = topk_screen::search(Kernel::PortableInt8, &q, &base, nq, n, d, 10, Similarity::L2, Some(&few))
        .unwrap();
    assert!(got.iter().all(|c| c.len() == 5 && c.iter().all(|&p| unpack_row(p) % 1000 == 7)));
}

#[test]
fn exact_keys_match_f64_and_unbounded_data_is_declined() {
    let (n, d, nq) = (4096, 384, 32);
    let (q, mut base) = queries_and_base(74, nq, n, d);
    for kernel in [Kernel::PortableBf16, Kernel::PortableInt8] {
        let got = topk_screen::search(kernel, &q, &base, nq, n, d, 5, Similarity::Dot, None).unwrap();
        for (qi, c) in got.iter().enumerate() {
            for &p in c {
                let row = unpack_row(p);
                let f64_dot: f64 =
                    (0..d).map(|i| f64::from(q[qi * d + i]) * f64::from(base[row * d + i])).sum();
                assert!((f64::from(unpack_key(p)) - f64_dot).abs() <= 1e-5 * f64_dot.abs().max(1.0));
            }
        }
    }
    for bad in [f32::INFINITY, f32::NAN, 1e30] {
        base[3 * d] = bad;
        for kernel in [Kernel::PortableBf16, Kernel::PortableInt8] {
            let found = topk_screen::search(kernel, &q, &base, nq, n, d, 5, Similarity::Dot, None);
            assert!(found.is_none(), "{kernel:?} screened a row holding {bad}");
        }
    }
}

#[test]
fn the_op_takes_the_screen_and_agrees_with_the_plain_path() {
    // ops::topk_similarity on f32 with many queries goes through the screen when the CPU has
    // AVX512_BF16, AVX512-VNNI, or AVX2 without AVX-512. It must give the exhaustive answer's rows.
    let (n, d, nq, k) = (6000, 96, 64, 10);
    let (q, base) = queries_and_base(75, nq, n, d);
    let want = exhaustive(&q, &base, d, k, Similarity::Dot, None);
    let qt = Tensor::from_slice(&q, &[nq, d]).unwrap();
    let bt = Tensor::from_slice(&base, &[n, d]).unwrap();
    let found = ops::topk_similarity(&qt, &bt, TopkSpec { k, similarity: Similarity::Dot }, None).unwrap();
    let (rows, scores) = (found.rows.to_vec::<i32>().unwrap(), found.scores.to_vec::<f32>().unwrap());
    for qi in 0..nq {
        let want_rows: Vec<i32> = want[qi].iter().map(|&p| unpack_row(p) as i32).collect();
        assert_eq!(&rows[qi * k..(qi + 1) * k], &want_rows[..], "query {qi}");
        for (j, &p) in want[qi].iter().enumerate() {
            let s = scores[qi * k + j];
            assert!(
                (s - unpack_key(p)).abs() <= 1e-5 * s.abs().max(1.0),
                "query {qi} rank {j}: {s} vs {}",
                unpack_key(p)
            );
        }
    }
}

#[test]
fn bf16_and_f16_storage_are_screened_against_their_stored_values() {
    // The stored values are the truth: the exhaustive reference re-scores the widened rows, and
    // the screen reads the same rows in their storage type.
    use half::{bf16, f16};
    let (n, d, nq) = (4500, 96, 40);
    let (q, base) = queries_and_base(76, nq, n, d);
    let b16: Vec<bf16> = base.iter().map(|&v| bf16::from_f32(v)).collect();
    let h16: Vec<f16> = base.iter().map(|&v| f16::from_f32(v)).collect();
    let wide_b: Vec<f32> = b16.iter().map(|v| v.to_f32()).collect();
    let wide_h: Vec<f32> = h16.iter().map(|v| v.to_f32()).collect();
    for sim in [Similarity::Dot, Similarity::L2] {
        for kernel in kernels() {
            let want = exhaustive(&q, &wide_b, d, 10, sim, None);
            let got = topk_screen::search(kernel, &q, &b16, nq, n, d, 10, sim, None).unwrap();
            assert_eq!(got, want, "bf16 storage, {kernel:?}, {sim:?}");
            let want = exhaustive(&q, &wide_h, d, 10, sim, None);
            let got = topk_screen::search(kernel, &q, &h16, nq, n, d, 10, sim, None).unwrap();
            assert_eq!(got, want, "f16 storage, {kernel:?}, {sim:?}");
        }
    }
}

/// Rows and queries shaped to stress each format's bound: uniform values, one large outlier
/// among small values (coarse int8 levels), integer values (exact levels), zero rows, rows below
/// and above the int8 format's scale range, and values spanning 60 binades.
fn stressed(r: &mut rand_chacha::ChaCha8Rng, count: usize, d: usize) -> Vec<f32> {
    let mut v = random_vec(r, count * d, 1.0);
    for (i, row) in v.chunks_mut(d).enumerate() {
        match i % 8 {
            1 => row[i % d] = 300.0,
            2 => row.iter_mut().for_each(|x| *x = (*x * 20.0).round()),
            3 => row.fill(0.0),
            4 => row.iter_mut().for_each(|x| *x *= 1e-17),
            5 => row.iter_mut().for_each(|x| *x *= 1e12),
            6 => row.iter_mut().enumerate().for_each(|(j, x)| *x *= 2f32.powi(-((j % 60) as i32))),
            7 => row[..d / 2].fill(1e-30),
            _ => {}
        }
    }
    v
}

#[test]
fn every_approximate_score_lies_within_its_bound() {
    let mut r = rng(77);
    for d in [384, 45, 16] {
        let (nq, n) = (40, 200);
        let q = stressed(&mut r, nq, d);
        let base = stressed(&mut r, n, d);
        let mut int8_scores = Vec::new();
        for kernel in kernels() {
            let found = topk_screen::scores_and_bounds(kernel, &q, &base, d).expect("bounded data");
            let (mut worst, mut loose) = (0f64, 0f64);
            for (qi, row) in found.iter().enumerate() {
                let qr = &q[qi * d..(qi + 1) * d];
                for (xi, &(s, bound)) in row.iter().enumerate() {
                    let x = &base[xi * d..(xi + 1) * d];
                    let exact = exact_key(qr, x, sqnorm(qr), Similarity::Dot);
                    let gap = (s - exact).abs();
                    assert!(
                        gap <= bound,
                        "{kernel:?}, d {d}: query {qi} row {xi}: screen {s}, exact {exact}, bound {bound}"
                    );
                    let norms = f64::from(sqnorm(qr)).sqrt() * f64::from(sqnorm(x)).sqrt();
                    if qi % 8 == 0 && xi % 8 == 0 && norms > 0.0 {
                        // Uniform rows and queries: how loose the bound is, relative to ‖q‖·‖x‖.
                        loose = loose.max(f64::from(bound) / norms);
                        worst = worst.max(f64::from(gap) / norms);
                    }
                }
            }
            // A bound must also be useful: on uniform data, a few hundredths of ‖q‖·‖x‖ for int8
            // (one side at 7 bits, Cauchy–Schwarz twice) and about 2⁻⁷ for bf16.
            let cap = if kernel.is_int8() { 0.03 } else { 0.009 };
            assert!(loose < cap, "{kernel:?}, d {d}: bound {loose} of ‖q‖·‖x‖");
            assert!(worst > 0.0 && worst < loose, "{kernel:?}, d {d}: error {worst}, bound {loose}");
            if kernel.is_int8() {
                int8_scores.push((kernel, found));
            }
        }
        // The AVX2 and VNNI kernels do the portable kernel's arithmetic: the same integers, the
        // same three roundings.
        for (kernel, scores) in &int8_scores[1..] {
            assert_eq!(
                scores, &int8_scores[0].1,
                "d {d}: {kernel:?} and {:?} int8 scores differ",
                int8_scores[0].0
            );
        }
    }
}
