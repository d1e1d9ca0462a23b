//! Each CUDA primitive the emulator provides, against hand-computed expectations
//! (kernels in tests/kernels/emu_semantics.cu), under every standard schedule.

// Loops index by thread id on purpose: the expectations are written per CUDA thread.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{call, ptr, run, run_block};
use half::{bf16, f16};
use ragtune_compute::ComputeError;
use ragtune_compute::launch::{Arg, LaunchDims};
use ragtune_kernel_emu::{EmuOptions, Schedule};

const FAM: &str = "emu_semantics";

/// What CUDA's documentation says a shuffle returns, written independently of the emulator's
/// PTX-style formula: lanes are grouped in sections of `width`.
fn expected_shfl(mode: i32, lane: usize, arg: i32, width: usize, vals: &[i32]) -> i32 {
    let base = lane / width * width;
    let src = match mode {
        0 => Some(base + (arg as usize % width)),
        1 => (lane - base >= arg as usize).then(|| lane - arg as usize),
        2 => (lane - base + (arg as usize) < width).then(|| lane + arg as usize),
        _ => {
            let j = lane ^ arg as usize;
            // xor may reach an earlier section, never a later one.
            (j < base + width).then_some(j)
        }
    };
    vals[src.unwrap_or(lane)]
}

#[test]
fn shuffles_match_cuda_semantics() {
    let n = 64;
    let input: Vec<i32> = (0..n).map(|t| t * 10 + 1).collect();
    for schedule in Schedule::STANDARD {
        for mode in 0..4 {
            for width in [32usize, 16, 8, 4, 2, 1] {
                for arg in [0, 1, 3, 5, 8, 17, 31] {
                    let mut inp = input.clone();
                    let mut out = vec![0i32; n as usize];
                    let args = vec![
                        ptr(&mut inp),
                        ptr(&mut out),
                        Arg::I32(mode),
                        Arg::I32(arg),
                        Arg::I32(width as i32),
                    ];
                    run_block(FAM, "emu_shfl", n as u32, args, schedule);
                    for t in 0..n as usize {
                        let warp = t / 32 * 32;
                        let want = expected_shfl(mode, t % 32, arg, width, &input[warp..warp + 32]);
                        assert_eq!(
                            out[t], want,
                            "mode {mode} width {width} arg {arg} thread {t} ({schedule})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn shuffle_hand_cases() {
    // A few results written out by hand, so the formula above is not the only witness.
    let mut inp: Vec<i32> = (0..32).collect();
    let mut out = vec![0i32; 32];
    let mut go = |mode: i32, arg: i32, width: i32, out: &mut Vec<i32>| {
        run_block(
            FAM,
            "emu_shfl",
            32,
            vec![ptr(&mut inp), ptr(out), Arg::I32(mode), Arg::I32(arg), Arg::I32(width)],
            Schedule::Reverse,
        );
    };
    go(3, 16, 32, &mut out); // xor 16: swap halves
    assert_eq!(&out[..3], &[16, 17, 18]);
    assert_eq!(out[31], 15);
    go(2, 1, 8, &mut out); // down 1 within sections of 8: lane 7 keeps its own value
    assert_eq!(&out[5..10], &[6, 7, 7, 9, 10]);
    go(1, 2, 32, &mut out); // up 2: lanes 0 and 1 keep theirs
    assert_eq!(&out[..4], &[0, 1, 0, 1]);
    go(0, 9, 4, &mut out); // idx 9 with width 4 reads lane base + 1
    assert_eq!(&out[..8], &[1, 1, 1, 1, 5, 5, 5, 5]);
    go(3, 8, 4, &mut out); // xor 8 with width 4 reaches back into an earlier section only
    assert_eq!(out[0], 0); // lane 8 is later: own value
    assert_eq!(out[9], 1); // lane 1 is earlier: allowed
}

#[test]
fn shuffle_with_per_lane_sources_and_8_byte_values() {
    for schedule in Schedule::STANDARD {
        let mut inp: Vec<f64> = (0..64).map(|i| i as f64 * 1.5 + 0.25).collect();
        let mut out = vec![0f64; 64];
        run_block(FAM, "emu_shfl_permute", 64, vec![ptr(&mut inp), ptr(&mut out)], schedule);
        for t in 0..64 {
            let src = t / 32 * 32 + (t % 32 * 7 + 3) % 32;
            assert_eq!(out[t], inp[src]);
        }
    }
}

#[test]
fn divergent_half_warp_masks() {
    for schedule in Schedule::STANDARD {
        let mut inp: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let mut out = vec![0f32; 32];
        run_block(FAM, "emu_shfl_half_masks", 32, vec![ptr(&mut inp), ptr(&mut out)], schedule);
        for t in 0..16 {
            assert_eq!(out[t], (t ^ 1) as f32);
        }
        for t in 16..32 {
            // down 2 under width 32: lanes 30, 31 have no source and keep their own value.
            assert_eq!(out[t], if t + 2 < 32 { (t + 2) as f32 } else { t as f32 });
        }
    }
}

#[test]
fn votes() {
    for schedule in Schedule::STANDARD {
        // warp 0: lanes 1, 5, 31; warp 1: everyone, but only lanes 32..52 (n = 53) stay.
        let mut pred: Vec<i32> = (0..64).map(|t| i32::from(t >= 32 || t == 1 || t == 5 || t == 31)).collect();
        let mut out = vec![0u32; 10];
        run_block(FAM, "emu_vote", 64, vec![ptr(&mut pred), ptr(&mut out), Arg::I32(53)], schedule);
        assert_eq!(out[0], (1 << 1) | (1 << 5) | (1 << 31));
        assert_eq!(&out[1..5], &[1, 0, 0xffff_ffff, 1]);
        let stayed = (1u32 << 21) - 1;
        assert_eq!(&out[5..10], &[stayed, 1, 1, stayed, 1], "{schedule}");
    }
}

#[test]
fn match_and_reduce() {
    for schedule in Schedule::STANDARD {
        let mut inp: Vec<i32> = (0..32).map(|t| if t % 3 == 0 { -7 } else { t }).collect();
        let mut out = vec![0u32; 96];
        run_block(FAM, "emu_match_reduce", 32, vec![ptr(&mut inp), ptr(&mut out)], schedule);
        let threes: u32 = (0..32).filter(|t| t % 3 == 0).map(|t| 1u32 << t).sum();
        let sum: i32 = inp.iter().sum();
        for t in 0..32 {
            let want_match = if t % 3 == 0 { threes } else { 1 << t };
            assert_eq!(out[3 * t], want_match, "match_any lane {t}");
            assert_eq!(out[3 * t + 1] as i32, sum);
            assert_eq!(out[3 * t + 2] as i32, 31);
        }
    }
}

#[test]
fn syncthreads_votes() {
    for schedule in Schedule::STANDARD {
        let mut pred: Vec<i32> = (0..96).map(|t| i32::from(t % 4 == 0)).collect();
        let mut out = vec![0i32; 3 * 96];
        run_block(FAM, "emu_sync_votes", 96, vec![ptr(&mut pred), ptr(&mut out)], schedule);
        for t in 0..96 {
            assert_eq!(&out[3 * t..3 * t + 3], &[24, 0, 1]);
        }
    }
}

#[test]
fn builtin_variables() {
    let dims = LaunchDims { grid: (2, 3, 1), block: (4, 2, 2), shared_bytes: 0 };
    let total = 2 * 3 * 4 * 2 * 2;
    let mut out = vec![-1i32; 12 * total];
    run(FAM, "emu_builtins", dims, vec![ptr(&mut out)], Schedule::Random(7)).unwrap();
    let mut t = 0;
    for by in 0..3 {
        for bx in 0..2 {
            for tz in 0..2 {
                for ty in 0..2 {
                    for tx in 0..4 {
                        assert_eq!(&out[12 * t..12 * t + 12], &[tx, ty, tz, bx, by, 0, 4, 2, 2, 2, 3, 32]);
                        t += 1;
                    }
                }
            }
        }
    }
}

#[test]
fn dynamic_shared_is_per_block_and_poisoned() {
    for schedule in Schedule::STANDARD {
        let (blocks, threads) = (3usize, 64usize);
        let mut inp: Vec<f32> = (0..blocks * threads).map(|i| i as f32).collect();
        let mut out = vec![0f32; blocks * threads];
        let mut fresh = vec![0u32; blocks * threads];
        run(
            FAM,
            "emu_dynamic_shared",
            LaunchDims::linear(blocks as u32, threads as u32, (threads * 4) as u32),
            vec![ptr(&mut inp), ptr(&mut out), ptr(&mut fresh)],
            schedule,
        )
        .unwrap();
        assert!(fresh.iter().all(|&b| b == 0xffff_ffff), "dynamic shared memory not poisoned before a block");
        for b in 0..blocks {
            for t in 0..threads {
                assert_eq!(out[b * threads + t], inp[b * threads + threads - 1 - t]);
            }
        }
    }
}

#[test]
fn atomics() {
    let mut counters = [0u32; 3];
    let mut minmax = [i32::MIN, i32::MAX];
    let mut sum = [0f32];
    run(
        FAM,
        "emu_atomics",
        LaunchDims::linear(3, 64, 0),
        vec![ptr(&mut counters), ptr(&mut minmax), ptr(&mut sum)],
        Schedule::Random(3),
    )
    .unwrap();
    assert_eq!(counters[0], 192);
    assert_eq!(counters[1], 0xffff_ffff);
    assert!(counters[2] >= 100 && counters[2] < 292, "CAS stored {}", counters[2]);
    assert_eq!(minmax, [191, 0]);
    assert_eq!(sum[0], 96.0);
}

#[test]
fn bf16_and_f16_conversions_round_to_nearest_even() {
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        1.0 + 1.0 / 256.0,           // bf16 tie, even below: rounds down
        1.0 + 3.0 / 256.0,           // bf16 tie, odd below: rounds up
        f32::from_bits(0x3f80_8001), // just above a bf16 tie
        65504.0,                     // f16 max
        65519.0,                     // rounds to f16 max
        65520.0,                     // rounds to f16 inf
        1e-8,                        // f16 subnormal range
        5.960_464_5e-8,              // smallest f16 subnormal
        2.980_232_2e-8,              // half of it: ties to even (zero)
        3.0e-8,                      // just above: rounds up to the smallest subnormal
        6.097_555e-5,                // largest f16 subnormal neighbourhood
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3.140_625,
        -1234.567,
    ];
    let mut rng = 0x1234_5678u32;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let v = f32::from_bits(rng);
        if !v.is_nan() {
            vals.push(v);
        }
    }
    vals.push(f32::NAN);
    let n = vals.len();
    let mut bf = vec![0u16; n];
    let mut hf = vec![0u16; n];
    let mut back = vec![0f32; 2 * n];
    run(
        FAM,
        "emu_convert",
        LaunchDims::linear(n.div_ceil(128) as u32, 128, 0),
        vec![ptr(&mut vals), ptr(&mut bf), ptr(&mut hf), ptr(&mut back), Arg::I32(n as i32)],
        Schedule::Forward,
    )
    .unwrap();
    for i in 0..n - 1 {
        let v = vals[i];
        assert_eq!(bf[i], bf16::from_f32(v).to_bits(), "bf16 of {v:e} ({:#x})", v.to_bits());
        assert_eq!(hf[i], f16::from_f32(v).to_bits(), "f16 of {v:e} ({:#x})", v.to_bits());
        assert_eq!(back[2 * i].to_bits(), bf16::from_bits(bf[i]).to_f32().to_bits());
        assert_eq!(back[2 * i + 1].to_bits(), f16::from_bits(hf[i]).to_f32().to_bits());
    }
    // NaN becomes the canonical 0x7fff, as cuda_bf16.h / cuda_fp16.h produce.
    assert_eq!((bf[n - 1], hf[n - 1]), (0x7fff, 0x7fff));
    assert!(back[2 * n - 2].is_nan() && back[2 * n - 1].is_nan());
}

#[test]
fn rt_common_block_reductions_under_every_schedule() {
    let (blocks, threads) = (3usize, 256usize);
    let mut inp: Vec<f32> = (0..blocks * threads).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    for schedule in Schedule::STANDARD {
        let mut out = vec![0f32; 2 * blocks];
        run(
            FAM,
            "emu_block_reduce",
            LaunchDims::linear(blocks as u32, threads as u32, 0),
            vec![ptr(&mut inp), ptr(&mut out)],
            schedule,
        )
        .unwrap();
        for b in 0..blocks {
            let chunk = &inp[b * threads..(b + 1) * threads];
            assert_eq!(out[2 * b], chunk.iter().sum::<f32>(), "sum of block {b} ({schedule})");
            assert_eq!(out[2 * b + 1], chunk.iter().cloned().fold(f32::MIN, f32::max));
        }
    }
}

#[test]
fn scalar_arguments_are_marshalled_at_their_natural_size() {
    let mut out = [0i64; 5];
    run(
        FAM,
        "emu_args",
        LaunchDims::linear(1, 1, 0),
        vec![
            ptr(&mut out),
            Arg::I32(-5),
            Arg::U32(0xdead_beef),
            Arg::I64(-1 << 40),
            Arg::U64(1 << 63),
            Arg::F32(1.5),
        ],
        Schedule::Forward,
    )
    .unwrap();
    assert_eq!(out, [-5, 0xdead_beef, -1 << 40, i64::MIN, 1.5f32.to_bits() as i64]);
}

#[test]
fn macro_stamped_kernels_are_registered() {
    for k in ["emu_scale_f32", "emu_scale_bf16", "emu_scale_f16"] {
        assert!(ragtune_kernel_emu::has_kernel(k), "{k} missing from {:?}", ragtune_kernel_emu::kernels());
        assert_eq!(ragtune_kernel_emu::kernel_family(k), Some(FAM));
    }
    assert_eq!(
        ragtune_kernel_emu::kernel_signature("emu_scale_f32"),
        Some("const float*, float*, float, int")
    );
    let mut x: Vec<u16> = [1.0f32, -2.0, 3.5].iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    let mut y = vec![0u16; 3];
    run_block(
        FAM,
        "emu_scale_bf16",
        32,
        vec![ptr(&mut x), ptr(&mut y), Arg::F32(2.0), Arg::I32(3)],
        Schedule::Forward,
    );
    let y: Vec<f32> = y.iter().map(|&b| bf16::from_bits(b).to_f32()).collect();
    assert_eq!(y, [2.0, -4.0, 7.0]);
}

fn invalid_detail(r: Result<(), ComputeError>) -> String {
    match r {
        Err(ComputeError::Invalid { detail, .. }) => detail,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn launch_errors_are_clear() {
    let opts = EmuOptions::default();
    let mut buf = vec![0f32; 4];
    let args = vec![ptr(&mut buf), Arg::I32(4)];
    // Unknown name: close names listed.
    let d = invalid_detail(ragtune_kernel_emu::launch(
        &call("emu_faults", "fault_oob_writ", LaunchDims::linear(1, 1, 0), args.clone()),
        &opts,
    ));
    assert!(d.contains("fault_oob_write"), "{d}");
    // Wrong family.
    let d = invalid_detail(ragtune_kernel_emu::launch(
        &call("norm", "fault_oob_write", LaunchDims::linear(1, 1, 0), args.clone()),
        &opts,
    ));
    assert!(d.contains("emu_faults.cu"), "{d}");
    // Wrong argument count and type.
    let d = invalid_detail(ragtune_kernel_emu::launch(
        &call("emu_faults", "fault_oob_write", LaunchDims::linear(1, 1, 0), vec![ptr(&mut buf)]),
        &opts,
    ));
    assert!(d.contains("takes 2 arguments"), "{d}");
    let d = invalid_detail(ragtune_kernel_emu::launch(
        &call(
            "emu_faults",
            "fault_oob_write",
            LaunchDims::linear(1, 1, 0),
            vec![ptr(&mut buf), Arg::F32(4.0)],
        ),
        &opts,
    ));
    assert!(d.contains("argument 1") && d.contains("int"), "{d}");
    let d = invalid_detail(ragtune_kernel_emu::launch(
        &call("emu_faults", "fault_oob_write", LaunchDims::linear(1, 1, 0), vec![ptr(&mut buf), Arg::I64(4)]),
        &opts,
    ));
    assert!(d.contains("argument 1"), "{d}");
    // Launch configurations the driver refuses.
    for dims in [
        LaunchDims::linear(1, 2048, 0),
        LaunchDims::linear(1, 0, 0),
        LaunchDims { grid: (1, 1, 1), block: (32, 32, 2), shared_bytes: 0 },
        LaunchDims::linear(1, 32, 228 * 1024),
    ] {
        match ragtune_kernel_emu::launch(&call("emu_faults", "fault_oob_write", dims, args.clone()), &opts) {
            Err(ComputeError::Cuda { message, .. }) => {
                assert!(message.starts_with("CUDA_ERROR_INVALID_VALUE"), "{message}")
            }
            other => panic!("{dims:?}: expected a CUDA error, got {other:?}"),
        }
    }
}

#[test]
fn registry_lists_every_kernel() {
    let names = ragtune_kernel_emu::kernels();
    for k in ["emu_shfl", "fault_block_sum_racy", "tc_matmul_bf16_kn", "emu_in_c_block"] {
        assert!(names.contains(&k), "{k} not in {names:?}");
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    assert!(!ragtune_kernel_emu::has_kernel("no_such_kernel"));
}

#[test]
fn kernels_declared_in_an_extern_c_block_run() {
    let mut out = vec![0i32; 8];
    run_block(FAM, "emu_in_c_block", 8, vec![ptr(&mut out)], Schedule::Forward);
    assert_eq!(out, [0, 2, 4, 6, 8, 10, 12, 14]);
}
