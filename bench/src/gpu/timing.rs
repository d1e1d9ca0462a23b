//! How the GPU benchmarks time: the two GPU ceilings measured first in the run — a large
//! device-to-device copy and a large bf16 GEMM through cuBLAS (`ops::matmul` on a device) — and
//! an L2 flush between timed repeats.
//!
//! Timing: [`Device::time_ms`] — CUDA events recorded around each repeat on the stream, so
//! launch latency and host synchronisation stay out — median of the repeats, after a warm-up
//! (module load and NVRTC compile stay out). The code runs on the kernel emulator in
//! `cargo test` (wall time there); no GPU number has been produced with it yet.

use ragtune_compute::ops;
use ragtune_compute::{DType, Device, Tensor};

use ragtune_tests::rel_err;

use crate::random_tensor;

use crate::report::Ceilings;

/// Overwrites a buffer larger than L2 (H100: 50 MB) between repeats, so no repeat reads what the
/// previous one left in cache.
pub struct L2Flush {
    dst: Tensor,
    src: Tensor,
}

impl L2Flush {
    pub fn new(device: &Device, bytes: usize) -> L2Flush {
        let n = bytes / 4;
        let src = Tensor::from_slice(&vec![1f32; n], &[n]).unwrap().to_device(device).unwrap();
        let dst = Tensor::zeros(&[n], DType::F32, device).unwrap();
        L2Flush { dst, src }
    }

    pub fn flush(&mut self) {
        ops::copy_into(&mut self.dst, &self.src, 0).unwrap();
    }
}

/// Median milliseconds of `f` over `repeats` calls after two warm-ups, each call preceded by an
/// L2 flush that is not timed.
pub fn median_ms_flushed(device: &Device, repeats: usize, flush: &mut L2Flush, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            flush.flush();
            device
                .time_ms(|| {
                    f();
                    Ok(())
                })
                .unwrap()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// What the timed repeats of one benchmark share: the device they run on, how many make the
/// median, and the L2 flush before each.
pub struct Timing<'a> {
    /// The device the timed work runs on.
    pub device: &'a Device,
    /// Timed repeats per median (at least one runs).
    pub repeats: usize,
    /// Overwritten before every timed repeat.
    pub flush: &'a mut L2Flush,
}

impl Timing<'_> {
    /// [`median_ms_flushed`] of `f` with this device, repeat count and flush.
    pub fn median_ms(&mut self, f: impl FnMut()) -> f64 {
        median_ms_flushed(self.device, self.repeats, self.flush, f)
    }
}

/// The ceilings at `gemm_n`³ (bf16, f32 accumulation) and a `copy_bytes` device copy, checked
/// first: the GEMM on two rows against f64, the copy element for element.
pub fn measure_ceilings(device: &Device, gemm_n: usize, copy_bytes: usize, repeats: usize) -> Ceilings {
    let n = gemm_n;
    let (a, b) = (random_tensor(98, &[n, n], DType::BF16), random_tensor(99, &[n, n], DType::BF16));
    let (av, bv) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
    let (a, b) = (a.to_device(device).unwrap(), b.to_device(device).unwrap());
    let c = ops::matmul(&a, &b).unwrap().to_vec_f32().unwrap();
    let rows = [0, n - 1];
    let got: Vec<f32> = rows.iter().flat_map(|&i| c[i * n..(i + 1) * n].to_vec()).collect();
    // Row i of A·B as a sum of B's rows (B read in order: a column walk over 8192² is slow).
    let want: Vec<f64> = rows
        .iter()
        .flat_map(|&i| {
            let mut row = vec![0f64; n];
            for (p, &aip) in av[i * n..(i + 1) * n].iter().enumerate() {
                for (w, &bpj) in row.iter_mut().zip(&bv[p * n..(p + 1) * n]) {
                    *w += aip as f64 * bpj as f64;
                }
            }
            row
        })
        .collect();
    let err = rel_err(&got, &want);
    assert!(err <= 1e-2, "bf16 GEMM ceiling {n}³: output differs from f64 by {err:.2e}");

    let elems = copy_bytes / 4;
    let src = Tensor::from_slice(&(0..elems).map(|i| (i % 1021) as f32).collect::<Vec<_>>(), &[elems])
        .unwrap()
        .to_device(device)
        .unwrap();
    let mut dst = Tensor::zeros(&[elems], DType::F32, device).unwrap();
    ops::copy_into(&mut dst, &src, 0).unwrap();
    assert!(
        dst.to_vec_f32().unwrap().iter().enumerate().all(|(i, &v)| v == (i % 1021) as f32),
        "device copy is wrong"
    );

    // The copy itself moves more than L2 holds; the GEMM is flushed like every other row.
    let mut flush = L2Flush::new(device, crate::gpu::plan::FLUSH_BYTES);
    let gemm_ms = median_ms_flushed(device, repeats, &mut flush, || {
        ops::matmul(&a, &b).unwrap();
    });
    let copy_ms =
        median_ms_flushed(device, repeats, &mut flush, || ops::copy_into(&mut dst, &src, 0).unwrap());
    Ceilings {
        compute_name: format!("cuBLAS bf16 GEMM {n}³ (ops::matmul), median of {repeats}"),
        compute_flops: 2.0 * (n as f64).powi(3) / (gemm_ms / 1e3),
        bandwidth_name: format!(
            "device-to-device copy {} MiB (read + write), median of {repeats}",
            copy_bytes >> 20
        ),
        bandwidth_bytes: 2.0 * (elems * 4) as f64 / (copy_ms / 1e3),
    }
}
