//! The CPU side of every op against the f64 references, on awkward shapes and every float dtype,
//! plus the errors bad input must produce.

use ragtune_compute::ops::{self, MatmulSpec, SoftmaxSpec};
use ragtune_compute::{ComputeError, DType, Tensor};
use ragtune_tests::{MatmulCase, assert_close, random_tensor, reference, rng, tolerance};

#[test]
fn matmul_matches_f64_reference() {
    let mut r = rng(1);
    let cases: &[MatmulCase] = &[
        (&[], &[], 1, 1, 1),
        (&[], &[], 67, 45, 129),
        (&[3], &[3], 5, 7, 19),
        (&[2], &[], 33, 17, 8),
        (&[], &[5], 4, 9, 6),
        (&[], &[], 200, 150, 300), // large enough for the multi-threaded path
        (&[40], &[40], 8, 8, 8),   // many small products: one per rayon task
        (&[3], &[], 100, 97, 101), // a batch of products each split across threads
    ];
    for dtype in DType::FLOATS {
        for &(ba, bb, m, n, k) in cases {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let sa: Vec<usize> = ba.iter().copied().chain(if ta { [k, m] } else { [m, k] }).collect();
                let sb: Vec<usize> = bb.iter().copied().chain(if tb { [n, k] } else { [k, n] }).collect();
                let (a, av) = random_tensor(&mut r, &sa, dtype, 1.0);
                let (b, bv) = random_tensor(&mut r, &sb, dtype, 1.0);
                let spec = MatmulSpec { trans_a: ta, trans_b: tb, alpha: 1.25 };
                let out = ops::matmul_ex(&a, &b, spec).unwrap();
                let batch = ba.iter().chain(bb.iter()).copied().max().unwrap_or(1).max(1);
                let want =
                    reference::matmul(&av, &bv, batch, m, n, k, ta, tb, ba.is_empty(), bb.is_empty(), 1.25);
                let mut shape: Vec<usize> = if ba.is_empty() { bb.to_vec() } else { ba.to_vec() };
                shape.extend([m, n]);
                assert_eq!(out.shape(), &shape[..]);
                assert_close(
                    &format!("matmul {dtype} {sa:?}x{sb:?} {spec:?}"),
                    &out.to_vec_f32().unwrap(),
                    &want,
                    tolerance(dtype, true),
                );
            }
        }
    }
}

#[test]
fn few_row_products_match_f64_reference() {
    // m <= 8 takes the streaming decode path; shapes straddle its chunk and task sizes.
    let mut r = rng(6);
    for dtype in DType::FLOATS {
        for &(m, n, k) in
            &[(1usize, 1usize, 1usize), (1, 1537, 576), (3, 70, 1100), (8, 513, 33), (2, 9, 4097)]
        {
            for (ta, tb) in [(false, true), (false, false), (true, true), (true, false)] {
                let sa = if ta { [k, m] } else { [m, k] };
                let sb = if tb { [n, k] } else { [k, n] };
                let (a, av) = random_tensor(&mut r, &sa, dtype, 1.0);
                let (b, bv) = random_tensor(&mut r, &sb, dtype, 1.0);
                let spec = MatmulSpec { trans_a: ta, trans_b: tb, alpha: 0.5 };
                let out = ops::matmul_ex(&a, &b, spec).unwrap();
                let want = reference::matmul(&av, &bv, 1, m, n, k, ta, tb, false, false, 0.5);
                let what = format!("few-row matmul {dtype} m={m} n={n} k={k} ta={ta} tb={tb}");
                assert_close(&what, &out.to_vec_f32().unwrap(), &want, tolerance(dtype, true));
            }
        }
    }
}

#[test]
fn matmul_with_empty_inner_dimension_is_zero() {
    let a = Tensor::from_slice::<f32>(&[], &[3, 0]).unwrap();
    let b = Tensor::from_slice::<f32>(&[], &[0, 2]).unwrap();
    assert_eq!(ops::matmul(&a, &b).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 6]);
    // The f32 output is written, not zeroed first: a batch of empty sums must still be zeros.
    let a = Tensor::from_slice::<f32>(&[], &[4, 3, 0]).unwrap();
    let b = Tensor::from_slice::<f32>(&[], &[4, 0, 2]).unwrap();
    assert_eq!(ops::matmul(&a, &b).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 24]);
}

#[test]
fn linear_applies_a_pytorch_weight() {
    let mut r = rng(2);
    let (x, xv) = random_tensor(&mut r, &[2, 3, 10], DType::F32, 1.0);
    let (w, wv) = random_tensor(&mut r, &[7, 10], DType::F32, 1.0);
    let y = ops::linear(&x, &w).unwrap();
    assert_eq!(y.shape(), &[2, 3, 7]);
    let want = reference::matmul(&xv, &wv, 1, 6, 7, 10, false, true, false, false, 1.0);
    assert_close("linear", &y.to_vec_f32().unwrap(), &want, 1e-5);
}

#[test]
fn matmul_bias_matches_f64_reference() {
    // Few rows take matmul + add; more rows in f32 write the bias first and accumulate onto it,
    // with k long enough for the product to arrive in several blocks.
    let mut r = rng(9);
    for dtype in DType::FLOATS {
        for &(m, n, k) in &[(1usize, 5usize, 3usize), (8, 33, 70), (9, 17, 5), (130, 70, 1100), (300, 1, 2)] {
            let (a, av) = random_tensor(&mut r, &[m, k], dtype, 1.0);
            let (b, bv) = random_tensor(&mut r, &[k, n], dtype, 1.0);
            let (c, cv) = random_tensor(&mut r, &[n], dtype, 10.0);
            let out = ops::matmul_bias(&a, &b, &c).unwrap();
            assert_eq!(out.shape(), &[m, n]);
            let mut want = reference::matmul(&av, &bv, 1, m, n, k, false, false, false, false, 1.0);
            want.iter_mut().enumerate().for_each(|(i, w)| *w += cv[i % n]);
            let what = format!("matmul_bias {dtype} m={m} n={n} k={k}");
            assert_close(&what, &out.to_vec_f32().unwrap(), &want, tolerance(dtype, true));
        }
    }
    let z = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &ragtune_compute::Device::Cpu).unwrap();
    expect_shape_error(ops::matmul_bias(&z(&[9, 4]), &z(&[4, 3]), &z(&[4])), &["[4]", "[n]"]);
    expect_shape_error(ops::matmul_bias(&z(&[9, 4]), &z(&[5, 3]), &z(&[3])), &["[9, 4]", "[5, 3]"]);
    expect_shape_error(ops::matmul_bias(&z(&[2, 9, 4]), &z(&[4, 3]), &z(&[3])), &["[2, 9, 4]", "[m, k]"]);
}

#[test]
fn norms_match_f64_reference() {
    let mut r = rng(3);
    for dtype in DType::FLOATS {
        for shape in [&[1usize][..], &[4, 1], &[3, 17], &[2, 2, 513], &[1, 5000]] {
            let cols = *shape.last().unwrap();
            let (x, xv) = random_tensor(&mut r, shape, dtype, 3.0);
            let (w, wv) = random_tensor(&mut r, &[cols], dtype, 1.0);
            let (b, bv) = random_tensor(&mut r, &[cols], dtype, 1.0);
            let tol = tolerance(dtype, true);
            let out = ops::rms_norm(&x, &w, 1e-6).unwrap();
            assert_close(
                &format!("rms_norm {dtype} {shape:?}"),
                &out.to_vec_f32().unwrap(),
                &reference::rms_norm(&xv, &wv, 1e-6),
                tol,
            );
            let out = ops::layer_norm(&x, &w, Some(&b), 1e-5).unwrap();
            let want = reference::layer_norm(&xv, &wv, Some(&bv), 1e-5);
            assert_close(&format!("layer_norm {dtype} {shape:?}"), &out.to_vec_f32().unwrap(), &want, tol);
            // The fused residual + norm: against the f64 norm of the sum, and equal to the two
            // ops in turn (the sum is rounded to the dtype either way).
            let (res, rv) = random_tensor(&mut r, shape, dtype, 1.0);
            let fused = ops::add_layer_norm(&x, &res, &w, Some(&b), 1e-5).unwrap();
            let sum: Vec<f32> = rv.iter().zip(&xv).map(|(&r, &x)| (r + x) as f32).collect();
            let sum = ops::cast(&Tensor::from_slice(&sum, shape).unwrap(), dtype).unwrap();
            let sum: Vec<f64> = sum.to_vec_f32().unwrap().into_iter().map(f64::from).collect();
            let want = reference::layer_norm(&sum, &wv, Some(&bv), 1e-5);
            let got = fused.to_vec_f32().unwrap();
            assert_close(&format!("add_layer_norm {dtype} {shape:?}"), &got, &want, tol);
            let two = ops::layer_norm(&ops::add(&x, &res).unwrap(), &w, Some(&b), 1e-5).unwrap();
            assert_eq!(got, two.to_vec_f32().unwrap(), "add_layer_norm {dtype} {shape:?}: fused ≠ two ops");
        }
    }
    let z = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &ragtune_compute::Device::Cpu).unwrap();
    expect_shape_error(ops::add_layer_norm(&z(&[2, 4]), &z(&[4]), &z(&[4]), None, 1e-5), &["[2, 4]", "[4]"]);
}

#[test]
fn layer_norm_is_stable_for_rows_with_a_large_mean() {
    let x: Vec<f32> = (0..256).map(|i| 1.0e4 + (i % 7) as f32 * 0.01).collect();
    let xv: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let w = vec![1f32; 256];
    let out = ops::layer_norm(
        &Tensor::from_slice(&x, &[1, 256]).unwrap(),
        &Tensor::from_slice(&w, &[256]).unwrap(),
        None,
        1e-5,
    )
    .unwrap();
    let want = reference::layer_norm(&xv, &vec![1.0; 256], None, 1e-5);
    assert_close("layer_norm large mean", &out.to_vec_f32().unwrap(), &want, 1e-3);
}

#[test]
fn softmax_matches_f64_reference_with_and_without_causal_mask() {
    let mut r = rng(4);
    for dtype in DType::FLOATS {
        for shape in [&[1usize, 1][..], &[6, 6], &[2, 4, 9], &[2, 9, 4], &[1, 3, 700]] {
            for causal in [false, true] {
                let (x, xv) = random_tensor(&mut r, shape, dtype, 5.0);
                let spec = SoftmaxSpec { scale: 0.7, causal };
                let out = ops::softmax(&x, spec).unwrap().to_vec_f32().unwrap();
                let rows = if causal { shape[shape.len() - 2] } else { 1 };
                let want = reference::softmax(&xv, rows, *shape.last().unwrap(), 0.7, causal);
                assert_close(
                    &format!("softmax {dtype} {shape:?} causal={causal}"),
                    &out,
                    &want,
                    tolerance(dtype, true),
                );
            }
        }
    }
}

#[test]
fn causal_softmax_masks_the_future() {
    let x = Tensor::from_slice(&[1f32; 9], &[3, 3]).unwrap();
    let y = ops::softmax(&x, SoftmaxSpec { scale: 1.0, causal: true }).unwrap().to_vec::<f32>().unwrap();
    let h = 0.5f32;
    let t = 1.0 / 3.0;
    assert_eq!(y, vec![1.0, 0.0, 0.0, h, h, 0.0, t, t, t]);
}

#[test]
fn elementwise_and_activations_match_f64_reference() {
    let mut r = rng(5);
    for dtype in DType::FLOATS {
        let (a, av) = random_tensor(&mut r, &[4, 3, 50], dtype, 3.0);
        let (b, bv) = random_tensor(&mut r, &[50], dtype, 3.0);
        let tol = tolerance(dtype, false);
        let rep = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
            av.iter().enumerate().map(|(i, &x)| f(x, bv[i % 50])).collect()
        };
        assert_close("add", &ops::add(&a, &b).unwrap().to_vec_f32().unwrap(), &rep(&|x, y| x + y), tol);
        assert_close("mul", &ops::mul(&a, &b).unwrap().to_vec_f32().unwrap(), &rep(&|x, y| x * y), tol);
        // Same shapes split across several tasks (a residual), and a repeated operand longer
        // than one task.
        for (sa, sb) in [(&[7usize, 14_287][..], &[7usize, 14_287][..]), (&[3, 40_000], &[40_000])] {
            let (x, xv) = random_tensor(&mut r, sa, dtype, 3.0);
            let (y, yv) = random_tensor(&mut r, sb, dtype, 3.0);
            let want: Vec<f64> = xv.iter().enumerate().map(|(i, &x)| x + yv[i % yv.len()]).collect();
            let got = ops::add(&x, &y).unwrap().to_vec_f32().unwrap();
            assert_close(&format!("add {dtype} {sa:?} + {sb:?}"), &got, &want, tol);
        }
        assert_close(
            "scale",
            &ops::scale(&a, 0.3).unwrap().to_vec_f32().unwrap(),
            &rep(&|x, _| x * 0.3),
            tol,
        );
        assert_close(
            "silu",
            &ops::silu(&a).unwrap().to_vec_f32().unwrap(),
            &rep(&|x, _| reference::silu(x)),
            tol,
        );
        assert_close(
            "gelu",
            &ops::gelu(&a).unwrap().to_vec_f32().unwrap(),
            &rep(&|x, _| reference::gelu(x)),
            tol,
        );
    }
}

#[test]
fn casts_round_to_nearest_even_and_saturate() {
    let x = Tensor::from_slice(&[1.5f32, 2.5, -1.9, 300.0, -5.0, f32::NAN, 1e10, 1.0 + 1.0 / 256.0], &[8])
        .unwrap();
    assert_eq!(ops::cast(&x, DType::U8).unwrap().to_vec::<u8>().unwrap(), vec![1, 2, 0, 255, 0, 0, 255, 1]);
    assert_eq!(
        ops::cast(&x, DType::I32).unwrap().to_vec::<i32>().unwrap(),
        vec![1, 2, -1, 300, -5, 0, i32::MAX, 1]
    );
    // 1 + 2^-8 is halfway between two bf16 values; ties go to the even mantissa (1.0).
    let b = ops::cast(&x, DType::BF16).unwrap().to_vec_f32().unwrap();
    assert_eq!(b[7], 1.0);
    assert!(b[5].is_nan());
    let back = ops::cast(&ops::cast(&x, DType::F16).unwrap(), DType::F32).unwrap().to_vec::<f32>().unwrap();
    // -1.9 rounds to the nearest f16, -(1 + 922/1024).
    assert_eq!(back[..5], [1.5, 2.5, -(1.0 + 922.0 / 1024.0), 300.0, -5.0]);
    assert!(back[6].is_infinite());
}

fn expect_shape_error(r: Result<Tensor, ComputeError>, must_name: &[&str]) {
    match r {
        Err(ComputeError::Shape { detail, .. }) => {
            for s in must_name {
                assert!(detail.contains(s), "error `{detail}` should name {s}");
            }
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn shape_mismatches_name_both_operands() {
    let a = Tensor::from_slice(&[0f32; 6], &[2, 3]).unwrap();
    let b = Tensor::from_slice(&[0f32; 8], &[4, 2]).unwrap();
    expect_shape_error(ops::matmul(&a, &b), &["[2, 3]", "[4, 2]"]);
    let b3 = Tensor::from_slice(&[0f32; 24], &[2, 3, 4]).unwrap();
    let a3 = Tensor::from_slice(&[0f32; 18], &[3, 2, 3]).unwrap();
    expect_shape_error(ops::matmul(&a3, &b3), &["[3, 2, 3]", "[2, 3, 4]"]);
    expect_shape_error(ops::add(&a, &b), &["[2, 3]", "[4, 2]"]);
    let w = Tensor::from_slice(&[1f32; 4], &[4]).unwrap();
    expect_shape_error(ops::rms_norm(&a, &w, 1e-5), &["[4]", "[2, 3]"]);
    expect_shape_error(
        ops::layer_norm(&a, &Tensor::from_slice(&[1f32; 3], &[3]).unwrap(), Some(&w), 1e-5),
        &["[4]", "[3]"],
    );
    expect_shape_error(ops::linear(&a, &b), &["[2, 3]", "[4, 2]"]);
    expect_shape_error(a.reshape(&[4, 2]), &["[2, 3]", "[4, 2]"]);
    assert!(matches!(Tensor::from_slice(&[0f32; 5], &[2, 3]), Err(ComputeError::Shape { .. })));
}

#[test]
fn dtype_mismatches_and_bad_arguments_are_errors() {
    let a = Tensor::from_slice(&[0f32; 4], &[2, 2]).unwrap();
    let b = ops::cast(&a, DType::BF16).unwrap();
    let i = ops::cast(&a, DType::I32).unwrap();
    for r in [ops::matmul(&a, &b), ops::add(&a, &b), ops::silu(&i), ops::softmax(&i, SoftmaxSpec::default())]
    {
        match r {
            Err(ComputeError::DType { detail, .. }) => {
                assert!(detail.contains("f32") || detail.contains("i32"), "{detail}")
            }
            other => panic!("expected a dtype error, got {other:?}"),
        }
    }
    let w = Tensor::from_slice(&[1f32; 2], &[2]).unwrap();
    assert!(matches!(ops::rms_norm(&a, &w, -1.0), Err(ComputeError::Invalid { .. })));
    assert!(matches!(ops::rms_norm(&a, &w, f32::NAN), Err(ComputeError::Invalid { .. })));
    assert!(matches!(ops::scale(&a, f32::INFINITY), Err(ComputeError::Invalid { .. })));
    assert!(matches!(a.as_slice::<half::bf16>(), Err(ComputeError::DType { .. })));
    let scalar = Tensor::from_slice(&[1f32], &[]).unwrap();
    assert!(matches!(
        ops::softmax(&scalar, SoftmaxSpec { scale: 1.0, causal: true }),
        Err(ComputeError::Shape { .. })
    ));
}
