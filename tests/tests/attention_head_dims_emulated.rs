//! Attention on a kernel device (the emulator) for head dims without a stamped-out kernel: the
//! device zero-pads to the next kernel's head dim and drops the extra output dims, matching the
//! f64 reference, without sending anything back to the host; above the largest kernel's head
//! dim it is an error that says so.

use std::sync::Arc;

use ragtune_compute::{DType, Device, Tensor, ops};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::instrumented::Instrumented;
use ragtune_tests::{random_tensor, reference, rel_err, rng, tolerance};

#[test]
fn odd_head_dims_are_padded_on_the_device_and_match_the_reference() {
    let (counted, device) =
        Instrumented::device(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    let mut r = rng(43);
    // (batch, sq, skv, hq, hkv, d, causal): prefill and decode shapes, GQA, d below, between and
    // just above the kernels' head dims.
    for (dims, causal, dtype) in [
        ((1, 9, 9, 4, 2, 48), true, DType::F32),
        ((2, 2, 13, 2, 1, 24), true, DType::BF16),
        ((1, 7, 11, 3, 3, 100), false, DType::F32),
    ] {
        let (b, sq, skv, hq, hkv, d) = dims;
        let (q, qv) = random_tensor(&mut r, &[b, sq, hq, d], dtype, 1.0);
        let (k, kv) = random_tensor(&mut r, &[b, skv, hkv, d], dtype, 1.0);
        let (v, vv) = random_tensor(&mut r, &[b, skv, hkv, d], dtype, 1.0);
        let spec = ops::AttentionSpec::new(causal, d);
        let up = |t: &Tensor| t.to_device(&device).unwrap();
        let (dq, dk, dv) = (up(&q), up(&k), up(&v));
        let before = counted.downloaded();
        let out = ops::attention(&dq, &dk, &dv, spec, None).unwrap();
        assert_eq!(counted.downloaded(), before, "head dim {d}: nothing went back to the host");
        assert_eq!(out.shape(), &[b, sq, hq, d]);
        assert_eq!(out.dtype(), dtype);
        let want = reference::attention(&qv, &kv, &vv, dims, causal, f64::from(spec.scale), None);
        let got = out.to_host().unwrap().to_vec_f32().unwrap();
        let err = rel_err(&got, &want);
        assert!(err < tolerance(dtype, true), "head dim {d} {dtype}: relative error {err}");
    }
}

#[test]
fn head_dims_above_the_largest_kernel_are_an_error_naming_them() {
    let device = Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    let mut r = rng(44);
    let (q, _) = random_tensor(&mut r, &[1, 3, 2, 160], DType::F32, 1.0);
    let q = q.to_device(&device).unwrap();
    let e = ops::attention(&q, &q, &q, ops::AttentionSpec::new(true, 160), None).unwrap_err().to_string();
    assert!(e.contains("head_dim 160") && e.contains("--device cpu"), "{e}");
}
