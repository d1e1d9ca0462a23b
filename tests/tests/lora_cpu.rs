//! The multi-adapter LoRA path on the CPU against an f64 reference — `y + scale[id] · x A[id]ᵀ
//! B[id]ᵀ` row by row, rows without an adapter unchanged — and the errors bad input gets.

use ragtune_compute::ops;
use ragtune_compute::{DType, Tensor};
use ragtune_tests::{assert_close, random_tensor, rng, tolerance};

#[test]
fn shrink_then_expand_adds_each_rows_adapter() {
    let mut r = rng(41);
    // Interleaved ids, and long runs of one adapter (blocks of 64 rows on the CPU) around rows
    // without one.
    let long: Vec<i32> = (0..150)
        .map(|i| {
            if i < 70 {
                0
            } else if i < 80 {
                -1
            } else {
                1
            }
        })
        .collect();
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
