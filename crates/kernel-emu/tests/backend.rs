//! EmuBackend's memory (guards, poison, bounds) and its reference GEMM.

use half::{bf16, f16};
use ragtune_compute::backend::{GemmCall, GpuBackend};
use ragtune_compute::{ComputeError, DType};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn describe_names_the_schedule() {
    let be = EmuBackend::new(EmuOptions { schedule: Schedule::Random(9) });
    assert_eq!(be.describe(), "CPU emulation of kernels/*.cu (schedule random, seed 9)");
    assert_eq!(EmuBackend::default().describe(), "CPU emulation of kernels/*.cu (schedule forward)");
}

#[test]
fn alloc_is_poisoned_upload_download_round_trips() {
    let be = EmuBackend::default();
    let fresh = be.alloc(10).unwrap();
    assert_eq!(fresh.len(), 10);
    assert_eq!(fresh.addr() % 256, 0, "cudaMalloc-like alignment");
    let mut out = [0u8; 10];
    be.download(fresh.as_ref(), &mut out).unwrap();
    assert_eq!(out, [0xff; 10]);
    let data: Vec<u8> = (0..=255).collect();
    let buf = be.upload(&data).unwrap();
    let mut back = vec![0u8; 256];
    be.download(buf.as_ref(), &mut back).unwrap();
    assert_eq!(back, data);
    let mut prefix = [0u8; 4];
    be.download(buf.as_ref(), &mut prefix).unwrap();
    assert_eq!(prefix, [0, 1, 2, 3]);
    let mut too_long = vec![0u8; 257];
    assert!(matches!(be.download(buf.as_ref(), &mut too_long), Err(ComputeError::Shape { .. })));
    let empty = be.upload(&[]).unwrap();
    assert!(empty.is_empty());
    be.synchronize().unwrap();
}

fn to_bytes(v: &[f32], dt: DType) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| match dt {
            DType::F32 => x.to_le_bytes().to_vec(),
            DType::BF16 => bf16::from_f32(x).to_bits().to_le_bytes().to_vec(),
            _ => f16::from_f32(x).to_bits().to_le_bytes().to_vec(),
        })
        .collect()
}

fn from_bytes(b: &[u8], dt: DType) -> Vec<f64> {
    match dt {
        DType::F32 => b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        DType::BF16 => b.chunks(2).map(|c| bf16::from_le_bytes(c.try_into().unwrap()).to_f64()).collect(),
        _ => b.chunks(2).map(|c| f16::from_le_bytes(c.try_into().unwrap()).to_f64()).collect(),
    }
}

/// Builds explicit matrices, runs the backend's GEMM, and compares with a direct computation on
/// the logical (untransposed) matrices.
#[allow(clippy::too_many_arguments)]
fn gemm_case(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    broadcast_b: bool,
    dt_in: DType,
    dt_out: DType,
    alpha: f32,
    beta: f32,
    rng: &mut ChaCha8Rng,
) {
    let be = EmuBackend::default();
    let b_batches = if broadcast_b { 1 } else { batch };
    let a: Vec<f32> = (0..batch * m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..b_batches * k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let c0: Vec<f32> = (0..batch * m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (qa, qb, qc) = (
        from_bytes(&to_bytes(&a, dt_in), dt_in),
        from_bytes(&to_bytes(&b, dt_in), dt_in),
        from_bytes(&to_bytes(&c0, dt_out), dt_out),
    );
    let da = be.upload(&to_bytes(&a, dt_in)).unwrap();
    let db = be.upload(&to_bytes(&b, dt_in)).unwrap();
    // beta == 0: C starts as NaN poison and must not leak into the result.
    let dc = if beta == 0.0 {
        be.alloc(batch * m * n * dt_out.size()).unwrap()
    } else {
        be.upload(&to_bytes(&c0, dt_out)).unwrap()
    };
    be.gemm(&GemmCall {
        batch,
        m,
        n,
        k,
        a: da.addr(),
        b: db.addr(),
        c: dc.addr(),
        trans_a,
        trans_b,
        stride_a: m * k,
        stride_b: if broadcast_b { 0 } else { k * n },
        stride_c: m * n,
        in_dtype: dt_in,
        out_dtype: dt_out,
        alpha,
        beta,
    })
    .unwrap();
    let mut out = vec![0u8; batch * m * n * dt_out.size()];
    be.download(dc.as_ref(), &mut out).unwrap();
    let got = from_bytes(&out, dt_out);
    let tol = match dt_out {
        DType::F32 => 1e-5,
        DType::BF16 => 1e-2,
        _ => 2e-3,
    } * (k as f64).sqrt().max(1.0);
    for bi in 0..batch {
        let bb = if broadcast_b { 0 } else { bi };
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    // Stored layouts: A is m x k (or k x m when transposed), B is k x n (or n x k).
                    let av = if trans_a { qa[bi * m * k + p * m + i] } else { qa[bi * m * k + i * k + p] };
                    let bv = if trans_b { qb[bb * k * n + j * k + p] } else { qb[bb * k * n + p * n + j] };
                    acc += av * bv;
                }
                let mut want = alpha as f64 * acc;
                if beta != 0.0 {
                    want += beta as f64 * qc[bi * m * n + i * n + j];
                }
                let g = got[bi * m * n + i * n + j];
                assert!(
                    (g - want).abs() <= tol * want.abs().max(1.0),
                    "batch {bi} C[{i}][{j}] = {g}, want {want} (trans {trans_a}/{trans_b}, {dt_in}->{dt_out})"
                );
            }
        }
    }
}

#[test]
fn gemm_reference_honours_every_flag() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        gemm_case(2, 5, 7, 3, ta, tb, false, DType::F32, DType::F32, 1.0, 0.0, &mut rng);
        gemm_case(3, 4, 6, 9, ta, tb, true, DType::F32, DType::F32, 0.5, 2.0, &mut rng);
    }
    for (di, dout) in [
        (DType::BF16, DType::BF16),
        (DType::F16, DType::F32),
        (DType::BF16, DType::F32),
        (DType::F16, DType::F16),
    ] {
        gemm_case(2, 6, 5, 8, false, true, false, di, dout, 1.0, 1.0, &mut rng);
    }
    // k = 0: C = beta * C.
    gemm_case(1, 3, 3, 0, false, false, false, DType::F32, DType::F32, 1.0, 0.5, &mut rng);
}

#[test]
fn gemm_refuses_operands_outside_buffers_and_bad_dtypes() {
    let be = EmuBackend::default();
    let a = be.alloc(4 * 4 * 4).unwrap();
    let c = be.alloc(4 * 4 * 4).unwrap();
    let mut call = GemmCall {
        batch: 1,
        m: 4,
        n: 4,
        k: 4,
        a: a.addr(),
        b: a.addr(),
        c: c.addr(),
        trans_a: false,
        trans_b: false,
        stride_a: 16,
        stride_b: 16,
        stride_c: 16,
        in_dtype: DType::F32,
        out_dtype: DType::F32,
        alpha: 1.0,
        beta: 0.0,
    };
    be.gemm(&call).unwrap();
    call.batch = 2; // the second batch of A lies past the buffer
    match be.gemm(&call) {
        Err(ComputeError::Invalid { detail, .. }) => assert!(detail.starts_with("A:"), "{detail}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    call.batch = 1;
    call.in_dtype = DType::I32;
    assert!(matches!(be.gemm(&call), Err(ComputeError::DType { .. })));
}

#[test]
fn time_ms_covers_the_work_and_passes_its_error_on() {
    use ragtune_compute::Device;
    let sleep = || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok(())
    };
    let emu = Device::from_backend(std::sync::Arc::new(EmuBackend::default()));
    for device in [Device::cpu(), emu] {
        let ms = device.time_ms(sleep).unwrap();
        assert!((20.0..2000.0).contains(&ms), "{device}: {ms} ms for a 20 ms sleep");
        let failed = device.time_ms(|| Err(ComputeError::Invalid { op: "work", detail: "failed".into() }));
        assert!(matches!(failed, Err(ComputeError::Invalid { op: "work", .. })), "{device}: {failed:?}");
    }
}
