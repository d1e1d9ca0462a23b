//! The CPU side of the runtime's op families — attention, rope, embedding, swiglu, copy_into —
//! against f64 references, on sequence lengths that are not multiples of any tile, every head
//! dimension the kernels specialise, GQA, causal masks over a cache, sliding windows, padding;
//! plus the errors.

use ragtune_compute::ops::{self, AttentionSpec};
use ragtune_compute::{ComputeError, DType, Tensor};
use ragtune_tests::{assert_close, random_tensor, reference, rng, tolerance};

/// (batch, sq, skv, hq, hkv, d, causal, key_lens)
type Case = (usize, usize, usize, usize, usize, usize, bool, Option<&'static [i32]>);

const CASES: &[Case] = &[
    (1, 1, 1, 1, 1, 64, false, None),
    (2, 7, 7, 3, 1, 80, true, None),
    (1, 65, 65, 2, 2, 64, true, None),
    (2, 3, 70, 6, 2, 128, true, Some(&[70, 40])),
    (2, 1, 65, 4, 4, 96, true, Some(&[65, 1])),
    (2, 7, 9, 3, 3, 32, false, Some(&[0, 5])),
    (2, 7, 9, 3, 1, 64, true, Some(&[9, 4])), // len < sq: the first queries see nothing
    (1, 130, 130, 4, 2, 64, true, None),
    (1, 5, 300, 2, 1, 64, false, None), // three key tiles, every row rescaled across them
    (1, 260, 260, 2, 2, 32, true, Some(&[260])),
    (1, 9, 9, 2, 1, 20, false, None), // a head_dim no kernel specialises
    // Decode steps (at most 8 query rows per kv head): the cache split into spans whose states
    // are merged, tiles cut short, GQA groups of 3 and 4, two positions that see different keys,
    // an empty sequence beside full ones, an odd head_dim.
    (1, 1, 700, 9, 3, 64, true, Some(&[650])),
    (2, 2, 400, 8, 2, 64, true, Some(&[400, 131])),
    (3, 1, 300, 2, 1, 20, false, Some(&[0, 300, 129])),
];

#[test]
fn attention_matches_f64_reference() {
    let mut r = rng(41);
    for dtype in DType::FLOATS {
        for &(b, sq, skv, hq, hkv, d, causal, lens) in CASES {
            let spec = AttentionSpec::new(causal, d);
            check_against_reference(&mut r, dtype, (b, sq, skv, hq, hkv, d), spec, lens);
        }
    }
}

/// `ops::attention` on fresh random q, k, v against [`reference::sliding_attention`]; returns
/// the op's output and the reference without a window.
fn check_against_reference(
    r: &mut rand_chacha::ChaCha8Rng,
    dtype: DType,
    dims: (usize, usize, usize, usize, usize, usize),
    spec: AttentionSpec,
    lens: Option<&[i32]>,
) -> (Vec<f32>, Vec<f64>) {
    let (b, sq, skv, hq, hkv, d) = dims;
    let (q, qv) = random_tensor(r, &[b, sq, hq, d], dtype, 1.0);
    let (k, kv) = random_tensor(r, &[b, skv, hkv, d], dtype, 1.0);
    let (v, vv) = random_tensor(r, &[b, skv, hkv, d], dtype, 1.0);
    let lens_t = lens.map(|l| Tensor::from_slice(l, &[b]).unwrap());
    let out = ops::attention(&q, &k, &v, spec, lens_t.as_ref()).unwrap();
    assert_eq!(out.shape(), &[b, sq, hq, d]);
    assert_eq!(out.dtype(), dtype);
    let (causal, scale) = (spec.causal, spec.scale as f64);
    let want = reference::sliding_attention(&qv, &kv, &vv, dims, causal, spec.window, scale, lens);
    let out = out.to_vec_f32().unwrap();
    let what = format!("attention {dtype} {dims:?} causal={causal} window {:?} {lens:?}", spec.window);
    assert_close(&what, &out, &want, tolerance(dtype, true));
    (out, reference::attention(&qv, &kv, &vv, dims, causal, scale, lens))
}

/// (batch, sq, skv, hq, hkv, d, window, key_lens) of the sliding-window cases: windows of 1,
/// windows that are no multiple of a tile, prefill past the window, decode over a cache longer
/// than the window, GQA, left-padded queries (len < sq), a head_dim no kernel specialises.
type WindowCase = (usize, usize, usize, usize, usize, usize, usize, Option<&'static [i32]>);

const WINDOW_CASES: &[WindowCase] = &[
    (1, 19, 19, 2, 1, 64, 5, None),
    (1, 7, 7, 1, 1, 32, 1, None),
    (1, 130, 130, 4, 2, 64, 37, None),
    (1, 200, 200, 2, 2, 80, 70, None),
    (2, 3, 70, 6, 2, 128, 10, Some(&[70, 40])),
    (2, 1, 300, 4, 4, 96, 50, Some(&[257, 3])),
    (2, 7, 9, 3, 1, 64, 3, Some(&[9, 4])),
    (1, 9, 9, 2, 1, 20, 4, None),
    (1, 1, 900, 6, 2, 64, 300, Some(&[870])), // a decode step whose window starts mid-cache
];

#[test]
fn sliding_window_attention_matches_f64_reference() {
    let mut r = rng(47);
    for dtype in DType::FLOATS {
        for &(b, sq, skv, hq, hkv, d, window, lens) in WINDOW_CASES {
            let spec = AttentionSpec::new(true, d).with_window(Some(window));
            let (out, full) = check_against_reference(&mut r, dtype, (b, sq, skv, hq, hkv, d), spec, lens);
            // The window changes the answer wherever a query sees more than `window` keys.
            let longest = lens.map_or(skv, |l| *l.iter().max().unwrap() as usize);
            if longest > window {
                let what = format!("{dtype} {:?} window {window}: the window has no effect", (b, sq, skv));
                assert!(ragtune_tests::rel_err(&out, &full) > 1e-2, "{what}");
            }
        }
    }
}

/// Random f32 q `[b, sq, hq, d]` (with its f64 values), then k and v `[b, skv, hkv, d]`, drawn in
/// that order from `r`.
fn random_qkv(
    r: &mut rand_chacha::ChaCha8Rng,
    (b, sq, skv, hq, hkv, d): (usize, usize, usize, usize, usize, usize),
) -> ((Tensor, Vec<f64>), Tensor, Tensor) {
    let q = random_tensor(r, &[b, sq, hq, d], DType::F32, 1.0);
    let (k, _) = random_tensor(r, &[b, skv, hkv, d], DType::F32, 1.0);
    let (v, _) = random_tensor(r, &[b, skv, hkv, d], DType::F32, 1.0);
    (q, k, v)
}

#[test]
fn a_window_as_long_as_the_keys_is_full_attention() {
    let mut r = rng(48);
    let ((q, _), k, v) = random_qkv(&mut r, (2, 70, 90, 4, 2, 64));
    let lens = Tensor::from_slice(&[90i32, 75], &[2]).unwrap();
    let spec = AttentionSpec::new(true, 64);
    let full = ops::attention(&q, &k, &v, spec, Some(&lens)).unwrap().to_vec::<f32>().unwrap();
    for window in [90, 91, 1000] {
        let out = ops::attention(&q, &k, &v, spec.with_window(Some(window)), Some(&lens)).unwrap();
        assert_eq!(out.to_vec::<f32>().unwrap(), full, "window {window}");
    }
}

#[test]
fn decode_with_a_window_matches_the_last_rows_of_windowed_prefill() {
    // A cache longer than the window: decoding the last 2 queries over all 150 keys equals the
    // last 2 rows of the windowed prefill (absolute positions survive the cache offset).
    let mut r = rng(49);
    let (n, h, d, w) = (150, 2, 64, 33);
    let ((q, qv), k, v) = random_qkv(&mut r, (1, n, n, h, h, d));
    let spec = AttentionSpec::new(true, d).with_window(Some(w));
    let full = ops::attention(&q, &k, &v, spec, None).unwrap().to_vec::<f32>().unwrap();
    let tail: Vec<f32> = qv[(n - 2) * h * d..].iter().map(|&x| x as f32).collect();
    let step =
        ops::attention(&Tensor::from_slice(&tail, &[1, 2, h, d]).unwrap(), &k, &v, spec, None).unwrap();
    let want: Vec<f64> = full[(n - 2) * h * d..].iter().map(|&x| x as f64).collect();
    assert_close("windowed decode vs prefill", &step.to_vec::<f32>().unwrap(), &want, 1e-6);
}

#[test]
fn attention_rows_that_see_no_key_are_zero() {
    let mut r = rng(42);
    let (q, _) = random_tensor(&mut r, &[2, 4, 2, 64], DType::F32, 1.0);
    let (k, _) = random_tensor(&mut r, &[2, 6, 1, 64], DType::F32, 1.0);
    let lens = Tensor::from_slice(&[0i32, 2], &[2]).unwrap();
    let out = ops::attention(&q, &k, &k, AttentionSpec::new(true, 64), Some(&lens)).unwrap();
    let out = out.to_vec::<f32>().unwrap();
    let row = 2 * 64;
    // Batch 0 has no keys; in batch 1 (len 2, sq 4) queries 0 and 1 see none.
    assert!(out[..4 * row].iter().all(|&x| x == 0.0), "batch 0");
    assert!(out[4 * row..6 * row].iter().all(|&x| x == 0.0), "batch 1, queries 0-1");
    assert!(out[6 * row..].iter().all(|&x| x != 0.0), "batch 1, queries 2-3 see keys");
}

#[test]
fn decode_step_matches_the_last_row_of_prefill() {
    // The causal alignment: one query over a cache of n keys equals the last query of a prefill.
    let mut r = rng(43);
    let ((q, _), k, v) = random_qkv(&mut r, (1, 10, 10, 4, 2, 64));
    let spec = AttentionSpec::new(true, 64);
    let full = ops::attention(&q, &k, &v, spec, None).unwrap().to_vec::<f32>().unwrap();
    let last = Tensor::from_slice(&q.to_vec::<f32>().unwrap()[9 * 256..], &[1, 1, 4, 64]).unwrap();
    let step = ops::attention(&last, &k, &v, spec, None).unwrap().to_vec::<f32>().unwrap();
    let want: Vec<f64> = full[9 * 256..].iter().map(|&x| x as f64).collect();
    assert_close("decode vs prefill", &step, &want, 1e-6);
}

#[test]
fn attention_rejects_bad_input_with_clear_errors() {
    let f = |s: &[usize]| Tensor::zeros(s, DType::F32, &ragtune_compute::Device::Cpu).unwrap();
    let spec = AttentionSpec::new(false, 8);
    let err = |r: Result<Tensor, ComputeError>| r.unwrap_err().to_string();
    assert!(
        err(ops::attention(&f(&[1, 2, 8]), &f(&[1, 2, 1, 8]), &f(&[1, 2, 1, 8]), spec, None))
            .contains("rank 4")
    );
    assert!(
        err(ops::attention(&f(&[1, 2, 3, 8]), &f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), spec, None))
            .contains("multiple")
    );
    assert!(
        err(ops::attention(&f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 4]), &f(&[1, 2, 2, 4]), spec, None))
            .contains("head_dim")
    );
    let lens = Tensor::from_slice(&[3i32], &[1]).unwrap();
    let e = err(ops::attention(&f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), spec, Some(&lens)));
    assert!(e.contains("key_lens[0] = 3"), "{e}");
    let lens = Tensor::from_slice(&[1.0f32], &[1]).unwrap();
    let e = err(ops::attention(&f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), spec, Some(&lens)));
    assert!(e.contains("i32"), "{e}");
    let bf = ops::cast(&f(&[1, 2, 2, 8]), DType::BF16).unwrap();
    assert!(matches!(
        ops::attention(&f(&[1, 2, 2, 8]), &bf, &bf, spec, None),
        Err(ComputeError::DType { .. })
    ));
    let bad = AttentionSpec { causal: false, scale: f32::NAN, window: None };
    assert!(
        err(ops::attention(&f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), &f(&[1, 2, 2, 8]), bad, None))
            .contains("scale")
    );
    let x = f(&[1, 2, 2, 8]);
    let e = err(ops::attention(&x, &x, &x, AttentionSpec::new(true, 8).with_window(Some(0)), None));
    assert!(e.contains("window of 0"), "{e}");
    let e = err(ops::attention(&x, &x, &x, spec.with_window(Some(4)), None));
    assert!(e.contains("needs causal"), "{e}");
}

fn inv_freq(rot: usize, theta: f32) -> Vec<f32> {
    (0..rot / 2).map(|j| 1.0 / theta.powf(2.0 * j as f32 / rot as f32)).collect()
}

#[test]
fn rope_matches_the_hugging_face_formula() {
    let mut r = rng(44);
    // (b, s, h, d, rot): full rotation, partial rotation (rot < d), odd sizes.
    for dtype in DType::FLOATS {
        for &(b, s, h, d, rot) in
            &[(1, 1, 1, 64, 64), (2, 7, 3, 80, 80), (1, 65, 2, 128, 64), (3, 5, 4, 96, 32)]
        {
            let (x, xv) = random_tensor(&mut r, &[b, s, h, d], dtype, 2.0);
            let pos: Vec<i32> = (0..b * s).map(|i| (i as i32 * 37) % 5000 + (i as i32 % 3) * 3000).collect();
            let freqs = inv_freq(rot, 10000.0);
            let out = ops::rope(
                &x,
                &Tensor::from_slice(&pos, &[b, s]).unwrap(),
                &Tensor::from_slice(&freqs, &[rot / 2]).unwrap(),
            )
            .unwrap();
            assert_eq!(out.dtype(), dtype);
            let want = reference::rope(&xv, &pos, &freqs, h, d);
            assert_close(
                &format!("rope {dtype} [{b}, {s}, {h}, {d}] rot {rot}"),
                &out.to_vec_f32().unwrap(),
                &want,
                tolerance(dtype, false),
            );
        }
    }
}

#[test]
fn rope_rejects_bad_shapes() {
    let x = Tensor::from_slice(&[0f32; 16], &[1, 2, 1, 8]).unwrap();
    let pos = Tensor::from_slice(&[0i32, 1], &[1, 2]).unwrap();
    let e = ops::rope(&x, &pos, &Tensor::from_slice(&[1f32; 5], &[5]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("rot"), "{e}");
    let e = ops::rope(
        &x,
        &Tensor::from_slice(&[0i32], &[1, 1]).unwrap(),
        &Tensor::from_slice(&[1f32; 4], &[4]).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("positions"), "{e}");
}

#[test]
fn embedding_gathers_rows_and_rejects_ids_outside_the_vocabulary() {
    let mut r = rng(45);
    for dtype in DType::FLOATS {
        let (table, tv) = random_tensor(&mut r, &[11, 7], dtype, 1.0);
        let ids = [3i32, 0, 10, 3, 5, 1];
        let out = ops::embedding(&table, &Tensor::from_slice(&ids, &[2, 3]).unwrap()).unwrap();
        assert_eq!(out.shape(), &[2, 3, 7]);
        let want: Vec<f64> = ids.iter().flat_map(|&i| tv[i as usize * 7..][..7].to_vec()).collect();
        assert_close(&format!("embedding {dtype}"), &out.to_vec_f32().unwrap(), &want, 0.0);
        for bad in [-1, 11] {
            let e = ops::embedding(&table, &Tensor::from_slice(&[1, bad], &[2]).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains("ids[1]") && e.contains(&format!("id {bad}")), "{e}");
        }
    }
    let e = ops::embedding(
        &Tensor::from_slice(&[0f32; 4], &[2, 2]).unwrap(),
        &Tensor::from_slice(&[0f32], &[1]).unwrap(),
    );
    assert!(matches!(e, Err(ComputeError::DType { .. })));
}

#[test]
fn swiglu_matches_f64_reference() {
    let mut r = rng(46);
    for dtype in DType::FLOATS {
        for shape in [&[1usize][..], &[3, 77], &[2, 5, 1000]] {
            let (g, gv) = random_tensor(&mut r, shape, dtype, 4.0);
            let (u, uv) = random_tensor(&mut r, shape, dtype, 2.0);
            let out = ops::swiglu(&g, &u).unwrap();
            let want: Vec<f64> = gv.iter().zip(&uv).map(|(&g, &u)| reference::silu(g) * u).collect();
            assert_close(
                &format!("swiglu {dtype} {shape:?}"),
                &out.to_vec_f32().unwrap(),
                &want,
                tolerance(dtype, false),
            );
        }
    }
    let e = ops::swiglu(
        &Tensor::from_slice(&[0f32; 4], &[4]).unwrap(),
        &Tensor::from_slice(&[0f32; 4], &[2, 2]).unwrap(),
    );
    assert!(matches!(e, Err(ComputeError::Shape { .. })));
}

#[test]
fn copy_into_writes_in_place_and_copies_shared_storage_first() {
    let mut cache = Tensor::from_slice(&[0f32; 12], &[2, 3, 2]).unwrap();
    let new = Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0], &[1, 2, 2]).unwrap();
    ops::copy_into(&mut cache, &new, 8).unwrap();
    assert_eq!(cache.to_vec::<f32>().unwrap(), [0., 0., 0., 0., 0., 0., 0., 0., 1., 2., 3., 4.]);
    // A clone shares the storage: writing through `cache` must not change it.
    let snapshot = cache.clone();
    let view = cache.reshape(&[12]).unwrap();
    ops::copy_into(&mut cache, &new, 0).unwrap();
    assert_eq!(&cache.to_vec::<f32>().unwrap()[..4], &[1., 2., 3., 4.]);
    assert_eq!(&snapshot.to_vec::<f32>().unwrap()[..4], &[0.; 4]);
    assert_eq!(&view.to_vec::<f32>().unwrap()[..4], &[0.; 4]);
    // A zero-copy view of someone else's bytes is copied, never written through.
    let owner: std::sync::Arc<Vec<u8>> = std::sync::Arc::new(vec![0u8; 16]);
    let mut borrowed = Tensor::from_shared_bytes(owner.clone(), 0, 16, DType::I32, &[4]).unwrap();
    ops::copy_into(&mut borrowed, &Tensor::from_slice(&[7i32], &[1]).unwrap(), 3).unwrap();
    assert_eq!(borrowed.to_vec::<i32>().unwrap(), [0, 0, 0, 7]);
    assert!(owner.iter().all(|&b| b == 0));
    // Errors: past the end, dtype mismatch.
    let e = ops::copy_into(&mut cache, &new, 9).unwrap_err().to_string();
    assert!(e.contains("offset 9"), "{e}");
    let e = ops::copy_into(&mut cache, &ops::cast(&new, DType::BF16).unwrap(), 0).unwrap_err();
    assert!(matches!(e, ComputeError::DType { .. }));
}
