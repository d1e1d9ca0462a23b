//! The multi-adapter LoRA path on the CPU against an f64 reference — `y + scale[id] · x A[id]ᵀ
//! B[id]ᵀ` row by row, rows without an adapter unchanged; its backward (dx in place, dA, dB per
//! adapter, with and without a dropout mask) — and the errors bad input gets.

use ragtune_compute::ops;
use ragtune_compute::{DType, Tensor};
use ragtune_tests::{assert_close, lora_backward_args, random_tensor, rng, tolerance};

/// 150 rows: 70 of adapter 0, 10 without an adapter, 70 of adapter 1.
fn long_runs() -> Vec<i32> {
    (0..150)
        .map(|i| {
            if i < 70 {
                0
            } else if i < 80 {
                -1
            } else {
                1
            }
        })
        .collect()
}

#[test]
fn shrink_then_expand_adds_each_rows_adapter() {
    let mut r = rng(41);
    // Interleaved ids, and long runs of one adapter (blocks of 64 rows on the CPU) around rows
    // without one.
    let long = long_runs();
    for (dtype, id) in
        DType::FLOATS.into_iter().flat_map(|d| [(d, vec![0, 1, -1, 1, 0, -1]), (d, long.clone())])
    {
        let (rows, inp, out, rank, adapters) = (id.len(), 19usize, 11usize, 3usize, 2usize);
        let (x, xv) = random_tensor(&mut r, &[rows, inp], dtype, 1.0);
        let (a, av) = random_tensor(&mut r, &[adapters, rank, inp], dtype, 1.0);
        let (b, bv) = random_tensor(&mut r, &[adapters, out, rank], dtype, 1.0);
        let (y, yv) = random_tensor(&mut r, &[rows, out], dtype, 1.0);
        let ids = Tensor::from_slice(&id, &[rows]).unwrap();
        let scales = [1.5f32, -0.25];
        let u = ops::lora_shrink(&x, &a, &ids).unwrap();
        let mut got = y.clone();
        ops::lora_expand(&mut got, &u, &b, &ids, &scales).unwrap();
        let mut want = yv.clone();
        for i in 0..rows {
            if id[i] < 0 {
                continue;
            }
            let ad = id[i] as usize;
            let ui: Vec<f64> = (0..rank)
                .map(|j| (0..inp).map(|k| xv[i * inp + k] * av[(ad * rank + j) * inp + k]).sum())
                .collect();
            for o in 0..out {
                let d: f64 = (0..rank).map(|j| ui[j] * bv[(ad * out + o) * rank + j]).sum();
                want[i * out + o] += scales[ad] as f64 * d;
            }
        }
        assert_close(&format!("lora {dtype}"), &got.to_vec_f32().unwrap(), &want, tolerance(dtype, true));
        // The input tensor is untouched (copy-on-write).
        assert_eq!(y.to_vec_f32().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>(), yv);
    }
}

#[test]
fn bad_ids_and_scales_are_named() {
    let x = Tensor::from_slice(&[1f32; 4], &[2, 2]).unwrap();
    let a = Tensor::from_slice(&[1f32; 2], &[1, 1, 2]).unwrap();
    let ids = Tensor::from_slice(&[0i32, 1], &[2]).unwrap();
    let err = ops::lora_shrink(&x, &a, &ids).unwrap_err().to_string();
    assert!(err.contains("ids[1] = 1"), "{err}");
    let ok = Tensor::from_slice(&[0i32, -1], &[2]).unwrap();
    let u = ops::lora_shrink(&x, &a, &ok).unwrap();
    let mut y = Tensor::from_slice(&[0f32; 6], &[2, 3]).unwrap();
    let b = Tensor::from_slice(&[1f32; 3], &[1, 3, 1]).unwrap();
    let err = ops::lora_expand(&mut y, &u, &b, &ok, &[1.0, 2.0]).unwrap_err().to_string();
    assert!(err.contains("2 scales for 1 adapters"), "{err}");
    let err = ops::lora_shrink(&x, &Tensor::from_slice(&[1f32; 3], &[1, 1, 3]).unwrap(), &ok)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[1, 1, 3]"), "{err}");
}

/// The values of a backward's inputs, as f64.
struct Values<'a> {
    x: &'a [f64],
    mask: Option<&'a [f64]>,
    dy: &'a [f64],
    u: &'a [f64],
    a: &'a [f64],
    b: &'a [f64],
    dx0: &'a [f64],
}

/// The f64 gradients of `y += scale[id] · ((x ⊙ mask) A[id]ᵀ) B[id]ᵀ`: `(dx added to dx0, dA, dB)`.
fn backward_reference(
    Values { x: xv, mask: mv, dy: dyv, u: uv, a: av, b: bv, dx0 }: Values,
    id: &[i32],
    scales: &[f32],
    (inp, out, rank, adapters): (usize, usize, usize, usize),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = id.len();
    let (mut dx, mut da, mut db) =
        (dx0.to_vec(), vec![0f64; adapters * rank * inp], vec![0f64; adapters * out * rank]);
    let mask = |i: usize, k: usize| mv.map_or(1.0, |m| m[i * inp + k]);
    for i in 0..rows {
        if id[i] < 0 {
            continue;
        }
        let (ad, s) = (id[i] as usize, scales[id[i] as usize] as f64);
        let du: Vec<f64> = (0..rank)
            .map(|j| s * (0..out).map(|o| dyv[i * out + o] * bv[(ad * out + o) * rank + j]).sum::<f64>())
            .collect();
        for k in 0..inp {
            let g: f64 = (0..rank).map(|j| du[j] * av[(ad * rank + j) * inp + k]).sum();
            dx[i * inp + k] += mask(i, k) * g;
            for j in 0..rank {
                da[(ad * rank + j) * inp + k] += du[j] * xv[i * inp + k] * mask(i, k);
            }
        }
        for o in 0..out {
            for j in 0..rank {
                db[(ad * out + o) * rank + j] += s * dyv[i * out + o] * uv[i * rank + j];
            }
        }
    }
    (dx, da, db)
}

#[test]
fn backward_matches_f64_gradients_per_adapter() {
    let mut r = rng(43);
    // Runs longer than the CPU's 64-row blocks, rows without an adapter, an adapter no row uses
    // (its gradients are zeros), more than 64 columns (two column tasks), ranks that are not a
    // multiple of the GPU's 8-rank groups.
    let long = long_runs();
    for dtype in DType::FLOATS {
        for (id, rank, masked) in
            [(vec![0, 1, -1, 1, 0, -1, 1], 3usize, false), (long.clone(), 9, true), (long.clone(), 5, false)]
        {
            let (rows, inp, out, adapters) = (id.len(), 70usize, 75usize, 3usize);
            let (x, xv) = random_tensor(&mut r, &[rows, inp], dtype, 1.0);
            let (a, av) = random_tensor(&mut r, &[adapters, rank, inp], dtype, 1.0);
            let (b, bv) = random_tensor(&mut r, &[adapters, out, rank], dtype, 1.0);
            let (dy, dyv) = random_tensor(&mut r, &[rows, out], dtype, 1.0);
            let (dx0, dx0v) = random_tensor(&mut r, &[rows, inp], dtype, 1.0);
            // Inverted dropout with p = 0.5: zeros and twos, exact in every dtype.
            let mv: Vec<f64> = (0..rows * inp).map(|i| if (i * 7919) % 5 < 2 { 0.0 } else { 2.0 }).collect();
            let mask = ops::cast(
                &Tensor::from_slice(&mv.iter().map(|&v| v as f32).collect::<Vec<_>>(), &[rows, inp]).unwrap(),
                dtype,
            )
            .unwrap();
            let ids = Tensor::from_slice(&id, &[rows]).unwrap();
            let scales = [1.5f32, -0.25, 3.0];
            let shrunk = if masked { ops::mul(&x, &mask).unwrap() } else { x.clone() };
            let u = ops::lora_shrink(&shrunk, &a, &ids).unwrap();
            let uv: Vec<f64> = u.to_vec::<f32>().unwrap().iter().map(|&v| v as f64).collect();
            let mut dx = dx0.clone();
            let args = lora_backward_args([&x, &mask, &dy, &u, &a, &b, &ids], masked, &scales);
            let (da, db) = ops::lora_backward(&args, &mut dx).unwrap();
            let (want_dx, want_da, want_db) = backward_reference(
                Values {
                    x: &xv,
                    mask: masked.then_some(&mv[..]),
                    dy: &dyv,
                    u: &uv,
                    a: &av,
                    b: &bv,
                    dx0: &dx0v,
                },
                &id,
                &scales,
                (inp, out, rank, adapters),
            );
            let what = format!("lora backward {dtype} rank {rank} masked {masked}");
            assert_close(&format!("{what} dx"), &dx.to_vec_f32().unwrap(), &want_dx, tolerance(dtype, true));
            // dA and dB are f32 whatever the storage; their inputs were rounded to it already.
            assert_eq!((da.dtype(), db.dtype()), (DType::F32, DType::F32));
            assert_close(&format!("{what} dA"), &da.to_vec_f32().unwrap(), &want_da, 1e-5);
            assert_close(&format!("{what} dB"), &db.to_vec_f32().unwrap(), &want_db, 1e-5);
            let unused = &da.to_vec_f32().unwrap()[2 * rank * inp..];
            assert!(unused.iter().all(|&v| v == 0.0), "{what}: the unused adapter has a gradient");
            // dx0 was shared with dx before the call: copy-on-write left it alone.
            assert_eq!(dx0.to_vec_f32().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>(), dx0v);
        }
    }
}

#[test]
fn backward_shape_errors_name_the_tensors() {
    let x = Tensor::from_slice(&[1f32; 4], &[2, 2]).unwrap();
    let a = Tensor::from_slice(&[1f32; 2], &[1, 1, 2]).unwrap();
    let b = Tensor::from_slice(&[1f32; 3], &[1, 3, 1]).unwrap();
    let dy = Tensor::from_slice(&[1f32; 6], &[2, 3]).unwrap();
    let ids = Tensor::from_slice(&[0i32, -1], &[2]).unwrap();
    let u = ops::lora_shrink(&x, &a, &ids).unwrap();
    let args =
        |dy| ops::LoraBackward { x: &x, mask: None, dy, u: &u, a: &a, b: &b, ids: &ids, scales: &[1.0] };
    let mut dx = x.clone();
    assert!(ops::lora_backward(&args(&dy), &mut dx).is_ok());
    let short = Tensor::from_slice(&[1f32; 4], &[2, 2]).unwrap();
    let err = ops::lora_backward(&args(&short), &mut dx).unwrap_err().to_string();
    assert!(err.contains("dy [2, 2]") && err.contains("B [1, 3, 1]"), "{err}");
    let mut wrong = Tensor::from_slice(&[1f32; 2], &[1, 2]).unwrap();
    let err = ops::lora_backward(&args(&dy), &mut wrong).unwrap_err().to_string();
    assert!(err.contains("dx [1, 2]"), "{err}");
    let half = ops::cast(&dy, DType::BF16).unwrap();
    let err = ops::lora_backward(&args(&half), &mut dx).unwrap_err().to_string();
    assert!(err.contains("lora_backward"), "{err}");
}

#[test]
fn shared_backward_is_the_general_one_and_refuses_mixed_batches() {
    let mut r = rng(47);
    let (rows, inp, out, rank) = (70usize, 9usize, 6usize, 3usize);
    let (x, _) = random_tensor(&mut r, &[rows, inp], DType::F32, 1.0);
    let (a, _) = random_tensor(&mut r, &[1, rank, inp], DType::F32, 1.0);
    let (b, _) = random_tensor(&mut r, &[1, out, rank], DType::F32, 1.0);
    let (dy, _) = random_tensor(&mut r, &[rows, out], DType::F32, 1.0);
    let zeros = Tensor::from_slice(&vec![0i32; rows], &[rows]).unwrap();
    let u = ops::lora_shrink(&x, &a, &zeros).unwrap();
    let args =
        |ids| ops::LoraBackward { x: &x, mask: None, dy: &dy, u: &u, a: &a, b: &b, ids, scales: &[0.5] };
    let (mut dx_general, mut dx_shared) = (x.clone(), x.clone());
    let general = ops::lora_backward(&args(&zeros), &mut dx_general).unwrap();
    let shared = ops::lora_backward_shared(&args(&zeros), &mut dx_shared).unwrap();
    for (what, s, g) in
        [("dx", &dx_shared, &dx_general), ("dA", &shared.0, &general.0), ("dB", &shared.1, &general.1)]
    {
        assert_eq!(s.to_vec_f32().unwrap(), g.to_vec_f32().unwrap(), "{what}");
    }
    // A row without the adapter is a mixed batch: the shared path says to use the general one.
    let mut mixed = vec![0i32; rows];
    mixed[5] = -1;
    let mixed = Tensor::from_slice(&mixed, &[rows]).unwrap();
    let err = ops::lora_backward_shared(&args(&mixed), &mut dx_shared).unwrap_err().to_string();
    assert!(err.contains("every id 0") && err.contains("use lora_backward"), "{err}");
}
