//! Finite-difference gradient checks of every backward op on the CPU: an f64 reference forward
//! (tests/src/reference.rs) is perturbed element by element, and the central differences must
//! match the op's f32 gradient within 1e-3 relative error (‖g − fd‖ / ‖fd‖). Each check uses
//! the scalar `Σ forward(inputs) · dy` with a random `dy`, so the op's gradient given `dy` is
//! exactly that scalar's gradient. Also: AdamW against PyTorch's formulas in f64, clipping, and
//! the errors bad input gets.

use ragtune_compute::ops::{self, AdamW, AttentionSpec};
use ragtune_compute::{DType, Tensor};
use ragtune_tests::reference::{self, finite_difference as fd, weighted_sum};
use ragtune_tests::{assert_close, random_tensor, rng};

const TOL: f64 = 1e-3;

/// (batch, sq, skv, hq, hkv, head_dim, causal, key_lens)
type AttentionCase = (usize, usize, usize, usize, usize, usize, bool, Option<&'static [i32]>);
const H: f64 = 1e-5;

fn rand(r: &mut rand_chacha::ChaCha8Rng, shape: &[usize]) -> (Tensor, Vec<f64>) {
    random_tensor(r, shape, DType::F32, 1.0)
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut r = rng(11);
    for &(rows, inp, out) in &[(1, 1, 1), (3, 5, 7), (2 * 3, 17, 4)] {
        let (x, xv) = rand(&mut r, &[rows, inp]);
        let (w, wv) = rand(&mut r, &[out, inp]);
        let (dy, dyv) = rand(&mut r, &[rows, out]);
        let f = |x: &[f64], w: &[f64]| {
            weighted_sum(&reference::matmul(x, w, 1, rows, out, inp, false, true, true, true, 1.0), &dyv)
        };
        let (dx, dw) = ops::linear_backward(Some(&x), &w, &dy).unwrap();
        assert_close("linear dx", &f32s(&dx), &fd(&xv, H, |x| f(x, &wv)), TOL);
        assert_close("linear dw", &f32s(&dw.unwrap()), &fd(&wv, H, |w| f(&xv, w)), TOL);
        let (dx_only, none) = ops::linear_backward(None, &w, &dy).unwrap();
        assert!(none.is_none());
        assert_eq!(f32s(&dx_only), f32s(&dx));
    }
}

#[test]
fn rms_norm_backward_matches_finite_differences() {
    let mut r = rng(12);
    // One column is left out: there dx = w·eps/(x²+eps)^1.5 is a cancellation of O(1) terms in f32.
    for &(rows, cols) in &[(1, 2), (3, 8), (5, 37)] {
        let (x, xv) = rand(&mut r, &[rows, cols]);
        let (w, wv) = rand(&mut r, &[cols]);
        let (dy, dyv) = rand(&mut r, &[rows, cols]);
        let eps = 1e-5;
        let f = |x: &[f64], w: &[f64]| weighted_sum(&reference::rms_norm(x, w, eps), &dyv);
        let (dx, dw) = ops::rms_norm_backward(&x, &w, &dy, eps as f32).unwrap();
        assert_close(&format!("rms_norm dx {rows}x{cols}"), &f32s(&dx), &fd(&xv, H, |x| f(x, &wv)), TOL);
        assert_close(&format!("rms_norm dw {rows}x{cols}"), &f32s(&dw), &fd(&wv, H, |w| f(&xv, w)), TOL);
    }
}

#[test]
fn rope_backward_matches_finite_differences() {
    let mut r = rng(13);
    // (batch, seq, heads, head_dim, rotated pairs): a partial rotation leaves dims untouched.
    for &(b, s, h, d, half) in &[(1, 1, 1, 2, 1), (2, 5, 3, 8, 4), (1, 4, 2, 10, 3)] {
        let (x, xv) = rand(&mut r, &[b, s, h, d]);
        let (dy, dyv) = rand(&mut r, &[b, s, h, d]);
        let pos: Vec<i32> = (0..b * s).map(|i| (i * 7 % 23) as i32).collect();
        let inv: Vec<f32> =
            (0..half).map(|j| 1.0 / 10000f32.powf(2.0 * j as f32 / (2 * half) as f32)).collect();
        let positions = Tensor::from_slice(&pos, &[b, s]).unwrap();
        let inv_freq = Tensor::from_slice(&inv, &[half]).unwrap();
        let dx = ops::rope_backward(&dy, &positions, &inv_freq).unwrap();
        let want = fd(&xv, H, |x| weighted_sum(&reference::rope(x, &pos, &inv, h, d), &dyv));
        assert_close(&format!("rope dx {:?}", x.shape()), &f32s(&dx), &want, TOL);
    }
}

/// Checks `attention_backward` under `spec` on fresh random operands of `dims` = (batch, sq, skv,
/// hq, hkv, head_dim): dq, dk and dv against central differences of `Σ forward(q, k, v) · dout`,
/// where `forward` is the f64 reference with the same mask.
fn check_attention_backward(
    r: &mut rand_chacha::ChaCha8Rng,
    (b, sq, skv, hq, hkv, d): (usize, usize, usize, usize, usize, usize),
    spec: AttentionSpec,
    lens: Option<&[i32]>,
    name: &str,
    forward: impl Fn(&[f64], &[f64], &[f64]) -> Vec<f64>,
) {
    let (q, qv) = rand(r, &[b, sq, hq, d]);
    let (k, kv) = rand(r, &[b, skv, hkv, d]);
    let (v, vv) = rand(r, &[b, skv, hkv, d]);
    let (dout, dov) = rand(r, &[b, sq, hq, d]);
    let key_lens = lens.map(|l| Tensor::from_slice(l, &[b]).unwrap());
    let (dq, dk, dv) = ops::attention_backward(&q, &k, &v, &dout, spec, key_lens.as_ref()).unwrap();
    let f = |q: &[f64], k: &[f64], v: &[f64]| weighted_sum(&forward(q, k, v), &dov);
    assert_close(&format!("{name} dq"), &f32s(&dq), &fd(&qv, H, |q| f(q, &kv, &vv)), TOL);
    assert_close(&format!("{name} dk"), &f32s(&dk), &fd(&kv, H, |k| f(&qv, k, &vv)), TOL);
    assert_close(&format!("{name} dv"), &f32s(&dv), &fd(&vv, H, |v| f(&qv, &kv, v)), TOL);
}

#[test]
fn attention_backward_matches_finite_differences() {
    let mut r = rng(14);
    let cases: &[AttentionCase] = &[
        (1, 1, 1, 1, 1, 1, false, None),
        (2, 5, 5, 4, 2, 8, true, None),          // prefill with GQA
        (2, 3, 6, 2, 1, 4, true, Some(&[6, 4])), // decode over a cache, one sequence shorter
        (1, 4, 4, 3, 3, 5, false, Some(&[3])),   // padding mask, no causality
        (1, 3, 3, 2, 1, 4, true, Some(&[0])),    // no key at all: zero gradients
        // Several blocks of query rows (the CPU backward takes 64 rows = 32 positions × 2 heads
        // per block here): causal prefill, and decode-shaped rows over caches of two lengths.
        (1, 70, 70, 4, 2, 4, true, None),
        (2, 36, 40, 2, 1, 3, true, Some(&[40, 30])),
    ];
    for &(b, sq, skv, hq, hkv, d, causal, lens) in cases {
        let (dims, spec) = ((b, sq, skv, hq, hkv, d), AttentionSpec::new(causal, d));
        let name = format!("attention {dims:?} causal {causal} lens {lens:?}");
        check_attention_backward(&mut r, dims, spec, lens, &name, |q, k, v| {
            reference::attention(q, k, v, dims, causal, spec.scale as f64, lens)
        });
    }
}

#[test]
fn sliding_window_attention_backward_matches_finite_differences() {
    let mut r = rng(17);
    // (batch, sq, skv, hq, hkv, head_dim, window, key_lens)
    type WindowCase = (usize, usize, usize, usize, usize, usize, usize, Option<&'static [i32]>);
    let cases: &[WindowCase] = &[
        (1, 7, 7, 2, 1, 4, 3, None),          // prefill past the window, GQA
        (1, 5, 5, 1, 1, 3, 1, None),          // each query sees itself only
        (2, 2, 9, 2, 2, 4, 4, Some(&[9, 3])), // decode over a cache longer than the window
        (2, 4, 6, 3, 1, 5, 2, Some(&[6, 2])), // left-padded queries (len < sq)
    ];
    for &(b, sq, skv, hq, hkv, d, window, lens) in cases {
        let (dims, spec) = ((b, sq, skv, hq, hkv, d), AttentionSpec::new(true, d).with_window(Some(window)));
        let name = format!("attention {dims:?} window {window} lens {lens:?}");
        check_attention_backward(&mut r, dims, spec, lens, &name, |q, k, v| {
            reference::sliding_attention(q, k, v, dims, true, Some(window), spec.scale as f64, lens)
        });
    }
}

#[test]
fn swiglu_backward_matches_finite_differences() {
    let mut r = rng(15);
    for shape in [&[1usize][..], &[3, 7], &[2, 3, 33]] {
        let (g, gv) = random_tensor(&mut r, shape, DType::F32, 4.0);
        let (u, uv) = rand(&mut r, shape);
        let (dy, dyv) = rand(&mut r, shape);
        let (dg, du) = ops::swiglu_backward(&g, &u, &dy).unwrap();
        let f = |g: &[f64], u: &[f64]| weighted_sum(&reference::swiglu(g, u), &dyv);
        assert_close("swiglu dgate", &f32s(&dg), &fd(&gv, H, |g| f(g, &uv)), TOL);
        assert_close("swiglu dup", &f32s(&du), &fd(&uv, H, |u| f(&gv, u)), TOL);
    }
}

#[test]
fn embedding_backward_matches_finite_differences() {
    let mut r = rng(16);
    let (vocab, d) = (7, 5);
    let ids = [3i32, 0, 3, 6, 3, 1]; // a repeated id must sum its rows
    let (tv, tvv) = rand(&mut r, &[vocab, d]);
    let (dy, dyv) = rand(&mut r, &[2, 3, d]);
    let idt = Tensor::from_slice(&ids, &[2, 3]).unwrap();
    let dt = ops::embedding_backward(&idt, &dy, vocab).unwrap();
    assert_eq!(dt.shape(), &[vocab, d]);
    let want = fd(&tvv, H, |t| weighted_sum(&reference::embedding(t, &ids, d), &dyv));
    assert_close("embedding dtable", &f32s(&dt), &want, TOL);
    let _ = tv;
    let bad = Tensor::from_slice(&[7i32], &[1]).unwrap();
    let err = ops::embedding_backward(&bad, &Tensor::from_slice(&[0f32; 5], &[1, 5]).unwrap(), vocab);
    assert!(err.unwrap_err().to_string().contains("outside the vocabulary"));
}

#[test]
fn cross_entropy_matches_finite_differences_and_ignores_masked_targets() {
    let mut r = rng(17);
    for &(rows, vocab) in &[(1, 1), (4, 9), (6, 50)] {
        let (x, xv) = random_tensor(&mut r, &[rows, vocab], DType::F32, 3.0);
        let targets: Vec<i32> = (0..rows)
            .map(|i| if i % 3 == 1 { ops::IGNORE_INDEX } else { ((i * 5) % vocab) as i32 })
            .collect();
        let t = Tensor::from_slice(&targets, &[rows]).unwrap();
        let ce = ops::cross_entropy(&x, &t, ops::IGNORE_INDEX).unwrap();
        let want = reference::cross_entropy(&xv, &targets, vocab, ops::IGNORE_INDEX);
        assert!(((ce.loss as f64) - want).abs() <= 1e-5 * want.abs().max(1.0), "loss {} vs {want}", ce.loss);
        assert_eq!(ce.count, targets.iter().filter(|&&t| t != ops::IGNORE_INDEX).count());
        let g = fd(&xv, H, |x| reference::cross_entropy(x, &targets, vocab, ops::IGNORE_INDEX));
        assert_close(&format!("cross_entropy dlogits {rows}x{vocab}"), &f32s(&ce.dlogits), &g, TOL);
    }
    // Nothing counted: loss 0 and zero gradient, not NaN.
    let x = Tensor::from_slice(&[1f32, 2.0], &[1, 2]).unwrap();
    let none = ops::cross_entropy(&x, &Tensor::from_slice(&[-100i32], &[1]).unwrap(), -100).unwrap();
    assert_eq!((none.loss, none.count), (0.0, 0));
    assert_eq!(f32s(&none.dlogits), vec![0.0, 0.0]);
    let bad = ops::cross_entropy(&x, &Tensor::from_slice(&[2i32], &[1]).unwrap(), -100).unwrap_err();
    assert!(bad.to_string().contains("targets[0]"), "{bad}");
}

#[test]
fn adamw_matches_pytorch_formulas_in_f64() {
    let mut r = rng(18);
    let n = 40_000; // more than one parallel chunk
    let (mut p, pv) = rand(&mut r, &[n]);
    let mut m = Tensor::zeros(&[n], DType::F32, &ragtune_compute::Device::Cpu).unwrap();
    let mut v = m.clone();
    let keep = p.clone(); // copy-on-write: this clone must not change
    let hp = AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let lr = 1e-2;
    let (mut rp, mut rm, mut rv) = (pv.clone(), vec![0f64; n], vec![0f64; n]);
    for step in 1..=3u64 {
        let (g, gv) = rand(&mut r, &[n]);
        ops::adamw_step(&mut p, &g, &mut m, &mut v, &hp, lr, step).unwrap();
        let (b1, b2) = (hp.beta1 as f64, hp.beta2 as f64);
        let (bc1, bc2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for i in 0..n {
            rp[i] *= 1.0 - lr as f64 * hp.weight_decay as f64;
            rm[i] = b1 * rm[i] + (1.0 - b1) * gv[i];
            rv[i] = b2 * rv[i] + (1.0 - b2) * gv[i] * gv[i];
            rp[i] -= lr as f64 / bc1 * rm[i] / (rv[i].sqrt() / bc2.sqrt() + hp.eps as f64);
        }
    }
    assert_close("adamw param", &f32s(&p), &rp, 1e-5);
    assert_close("adamw m", &f32s(&m), &rm, 1e-5);
    assert_close("adamw v", &f32s(&v), &rv, 1e-5);
    assert_eq!(keep.to_vec::<f32>().unwrap().iter().map(|&x| x as f64).collect::<Vec<_>>(), pv);
    let g = Tensor::from_slice(&[0f32; 3], &[3]).unwrap();
    let err = ops::adamw_step(&mut p, &g, &mut m, &mut v, &hp, lr, 4).unwrap_err();
    assert!(err.to_string().contains("grad [3]"), "{err}");
}

#[test]
fn clip_grad_norm_scales_to_the_global_norm() {
    let a = Tensor::from_slice(&[3f32, 0.0], &[2]).unwrap();
    let b = Tensor::from_slice(&[4f32], &[1]).unwrap();
    let mut grads = vec![a, b];
    let norm = ops::clip_grad_norm(&mut grads, 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    let after: f32 = grads.iter().flat_map(f32s).map(|x| x * x).sum::<f32>().sqrt();
    assert!((after - 1.0).abs() < 1e-5, "{after}");
    // Under the limit: unchanged.
    let norm2 = ops::clip_grad_norm(&mut grads, 10.0).unwrap();
    assert!((norm2 - after).abs() < 1e-6);
    let mut nan = vec![Tensor::from_slice(&[f32::NAN], &[1]).unwrap()];
    assert!(ops::clip_grad_norm(&mut nan, 1.0).unwrap_err().to_string().contains("NaN"));
}

#[test]
fn backward_ops_reject_bad_shapes_and_dtypes() {
    let x = Tensor::from_slice(&[1f32; 6], &[2, 3]).unwrap();
    let w = Tensor::from_slice(&[1f32; 4], &[4]).unwrap();
    let err = ops::rms_norm_backward(&x, &w, &x, 1e-5).unwrap_err().to_string();
    assert!(err.contains("weight [4]") && err.contains("[2, 3]"), "{err}");
    let xb = ops::cast(&x, DType::BF16).unwrap();
    let err = ops::swiglu_backward(&xb, &xb, &xb).unwrap_err().to_string();
    assert!(err.contains("f32"), "{err}");
    let dy = Tensor::from_slice(&[1f32; 10], &[2, 5]).unwrap();
    let wl = Tensor::from_slice(&[1f32; 12], &[4, 3]).unwrap();
    let err = ops::linear_backward(Some(&x), &wl, &dy).unwrap_err().to_string();
    assert!(err.contains("dy [2, 5]") && err.contains("[4, 3]"), "{err}");
}
