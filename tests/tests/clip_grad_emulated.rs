//! `ops::clip_grad_norm` on a kernel device (the emulator): the norm and the clipped gradients
//! match the CPU's f64 sum, and only the one f32 total crosses back to the host — not the
//! gradients (which a training step would otherwise copy every step).

use std::sync::Arc;

use ragtune_compute::{Tensor, ops};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::instrumented::Instrumented;
use ragtune_tests::{random_vec, rel_err, rng};

#[test]
fn the_device_norm_matches_the_cpu_and_downloads_four_bytes() {
    let (counted, device) =
        Instrumented::device(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    let mut r = rng(41);
    let shapes: [&[usize]; 4] = [&[37, 11], &[0, 5], &[300], &[4, 6, 5]];
    let host: Vec<Vec<f32>> = shapes.iter().map(|s| random_vec(&mut r, s.iter().product(), 1.0)).collect();
    let norm_f64 = host.iter().flatten().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();

    for (max_norm, clips) in [(1e6f32, false), (1.5, true)] {
        let mut on_device: Vec<Tensor> = host
            .iter()
            .zip(shapes)
            .map(|(v, s)| Tensor::from_slice(v, s).unwrap().to_device(&device).unwrap())
            .collect();
        let before = counted.downloaded();
        let norm = ops::clip_grad_norm(&mut on_device, max_norm).unwrap();
        assert_eq!(counted.downloaded() - before, 4, "one f32 crossed to the host");
        assert!((f64::from(norm) - norm_f64).abs() / norm_f64 < 1e-6, "{norm} vs {norm_f64}");

        let mut on_cpu: Vec<Tensor> =
            host.iter().zip(shapes).map(|(v, s)| Tensor::from_slice(v, s).unwrap()).collect();
        let cpu_norm = ops::clip_grad_norm(&mut on_cpu, max_norm).unwrap();
        assert!((norm - cpu_norm).abs() / cpu_norm < 1e-6);
        let coef = if clips { f64::from(max_norm) / (norm_f64 + 1e-6) } else { 1.0 };
        for (g, v) in on_device.iter().zip(&host) {
            assert!(!g.is_host(), "the gradient stayed on the device");
            let want: Vec<f64> = v.iter().map(|&x| f64::from(x) * coef).collect();
            assert!(rel_err(&g.to_vec_f32().unwrap(), &want) < 1e-6);
        }
    }
}
