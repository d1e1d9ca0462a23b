//! The tensor-core helper (kernels/include/rt_mma.cuh) through a tiled matmul kernel
//! (tests/kernels/tc_matmul.cu), against an f64 reference, on shapes that are not multiples of
//! the 16 x 8 x 16 instruction tile.

use half::{bf16, f16};
use ragtune_compute::backend::GpuBackend;
use ragtune_compute::launch::{Arg, Kernel, KernelCall, LaunchDims};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rounds through the 16-bit type: (bits, the value the kernel sees).
fn quantize(v: f32, is_bf16: bool) -> (u16, f64) {
    if is_bf16 {
        let b = bf16::from_f32(v);
        (b.to_bits(), b.to_f64())
    } else {
        let h = f16::from_f32(v);
        (h.to_bits(), h.to_f64())
    }
}

fn check(m: usize, n: usize, k: usize, is_bf16: bool, b_nk: bool, schedule: Schedule, rng: &mut ChaCha8Rng) {
    let a: Vec<(u16, f64)> = (0..m * k).map(|_| quantize(rng.random_range(-2.0..2.0), is_bf16)).collect();
    let b: Vec<(u16, f64)> = (0..k * n).map(|_| quantize(rng.random_range(-2.0..2.0), is_bf16)).collect();
    let bytes = |v: &[(u16, f64)]| v.iter().flat_map(|(bits, _)| bits.to_le_bytes()).collect::<Vec<u8>>();
    let be = EmuBackend::new(EmuOptions { schedule });
    let da = be.upload(&bytes(&a)).unwrap();
    let db = be.upload(&bytes(&b)).unwrap();
    let dc = be.alloc(m * n * 4).unwrap();
    let kernel = match (is_bf16, b_nk) {
        (true, true) => "tc_matmul_bf16_nk",
        (true, false) => "tc_matmul_bf16_kn",
        (false, true) => "tc_matmul_f16_nk",
        (false, false) => "tc_matmul_f16_kn",
    };
    be.launch(&KernelCall {
        kernel: Kernel::new("tc_matmul", kernel),
        dims: LaunchDims {
            grid: (n.div_ceil(16) as u32, m.div_ceil(32) as u32, 1),
            block: (128, 1, 1),
            shared_bytes: 0,
        },
        args: vec![
            Arg::Ptr(da.addr()),
            Arg::Ptr(db.addr()),
            Arg::Ptr(dc.addr()),
            Arg::I32(m as i32),
            Arg::I32(n as i32),
            Arg::I32(k as i32),
        ],
    })
    .unwrap();
    let mut out = vec![0u8; m * n * 4];
    be.download(dc.as_ref(), &mut out).unwrap();
    let c: Vec<f32> = out.chunks(4).map(|x| f32::from_le_bytes(x.try_into().unwrap())).collect();
    for i in 0..m {
        for j in 0..n {
            let mut want = 0.0f64;
            let mut mag = 0.0f64;
            for p in 0..k {
                // `_nk`: the same logical B, stored transposed (b holds B[p][j] at j*k + p).
                let bv = if b_nk { b[j * k + p].1 } else { b[p * n + j].1 };
                want += a[i * k + p].1 * bv;
                mag += (a[i * k + p].1 * bv).abs();
            }
            let got = c[i * n + j] as f64;
            // f32 accumulation of exact products: error bounded by k ulps of the magnitude sum.
            let tol = 1e-6 * (k as f64) * mag.max(1.0);
            assert!(
                (got - want).abs() <= tol,
                "{kernel} {m}x{n}x{k} ({schedule}): C[{i}][{j}] = {got}, want {want}"
            );
        }
    }
}

#[test]
fn mma_matmul_matches_f64_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for &(m, n, k) in &[(16, 8, 16), (37, 29, 45), (1, 1, 1), (50, 33, 20), (32, 16, 48)] {
        for is_bf16 in [true, false] {
            for b_nk in [false, true] {
                check(m, n, k, is_bf16, b_nk, Schedule::Forward, &mut rng);
            }
        }
    }
}

#[test]
fn mma_matmul_is_schedule_independent() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for schedule in Schedule::STANDARD {
        check(37, 29, 45, true, true, schedule, &mut rng);
    }
}

/// The emulated `mma.sync` against the PTX ISA's fragment tables, written out here independently
/// of the load helpers: lane l holds A[g + 8(i%2)][2t + 8(i/2) + {0,1}] in a[i],
/// B[2t + 8i + {0,1}][g] in b[i], and C/D[g + 8(i/2)][2t + i%2] in c[i]/d[i] (g = l/4, t = l%4).
#[test]
fn mma_fragment_layout_matches_the_ptx_tables() {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let am: Vec<Vec<f32>> =
        (0..16).map(|_| (0..16).map(|_| rng.random_range(-4i32..4) as f32).collect()).collect();
    let bm: Vec<Vec<f32>> =
        (0..16).map(|_| (0..8).map(|_| rng.random_range(-4i32..4) as f32).collect()).collect();
    let cm: Vec<Vec<f32>> =
        (0..16).map(|_| (0..8).map(|_| rng.random_range(-4i32..4) as f32).collect()).collect();
    let pack =
        |lo: f32, hi: f32| bf16::from_f32(lo).to_bits() as u32 | (bf16::from_f32(hi).to_bits() as u32) << 16;
    let (mut a, mut b, mut c) = (vec![0u32; 128], vec![0u32; 64], vec![0f32; 128]);
    for l in 0..32 {
        let (g, t) = (l / 4, l % 4);
        for i in 0..4 {
            let (row, col) = (g + 8 * (i % 2), 2 * t + 8 * (i / 2));
            a[4 * l + i] = pack(am[row][col], am[row][col + 1]);
            c[4 * l + i] = cm[g + 8 * (i / 2)][2 * t + i % 2];
        }
        for i in 0..2 {
            let k = 2 * t + 8 * i;
            b[2 * l + i] = pack(bm[k][g], bm[k + 1][g]);
        }
    }
    let mut d = vec![f32::NAN; 128];
    let ptr = |p: *mut u8| Arg::Ptr(p as u64);
    ragtune_kernel_emu::launch(
        &KernelCall {
            kernel: Kernel::new("tc_matmul", "tc_mma_raw_bf16"),
            dims: LaunchDims::linear(1, 32, 0),
            args: vec![
                ptr(a.as_mut_ptr().cast()),
                ptr(b.as_mut_ptr().cast()),
                ptr(c.as_mut_ptr().cast()),
                ptr(d.as_mut_ptr().cast()),
            ],
        },
        &EmuOptions { schedule: Schedule::Random(1) },
    )
    .unwrap();
    for l in 0..32 {
        let (g, t) = (l / 4, l % 4);
        for i in 0..4 {
            let (row, col) = (g + 8 * (i / 2), 2 * t + i % 2);
            let want: f32 = cm[row][col] + (0..16).map(|k| am[row][k] * bm[k][col]).sum::<f32>();
            assert_eq!(d[4 * l + i], want, "lane {l} d[{i}] = D[{row}][{col}]");
        }
    }
}
