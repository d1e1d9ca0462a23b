//! The emulated profiler's metrics on kernels with known access patterns (tests/kernels/
//! emu_profile.cu), each checked against the number worked out by hand from the addresses; one
//! real family (norm) checked against the bytes of its inputs; and the emulated ldmatrix and
//! cp.async of kernels/include/rt_async.cuh against their PTX semantics.

mod common;

use std::sync::Arc;

use common::{call, ptr, run, run_block};
use ragtune_compute::launch::{Arg, LaunchDims};
use ragtune_compute::{Device, Tensor, ops};
use ragtune_kernel_emu::{
    EmuBackend, EmuOptions, LaunchProfile, Schedule, profile_launch, profiling_available,
};

const FAM: &str = "emu_profile";

/// Profiles one launch whose global memory is `bufs` (address, bytes); None (and the test
/// skips) in the AddressSanitizer build, which has no profiling copies.
fn profile(function: &str, dims: LaunchDims, args: Vec<Arg>, bufs: &[(u64, usize)]) -> Option<LaunchProfile> {
    if !profiling_available() {
        eprintln!("no profiling copies in this (AddressSanitizer) build: skipped");
        return None;
    }
    Some(profile_launch(&call(FAM, function, dims, args), &EmuOptions::default(), bufs).unwrap())
}

/// Profiles `function` reading `x` and writing `y` (both counted), with `scalars` after them.
fn profile_xy(
    function: &str,
    dims: LaunchDims,
    x: &mut [f32],
    y: &mut [f32],
    scalars: Vec<Arg>,
) -> Option<LaunchProfile> {
    let bufs = [region(x), region(y)];
    let mut args = vec![ptr(x), ptr(y)];
    args.extend(scalars);
    profile(function, dims, args, &bufs)
}

/// Profiles one ldmatrix.x4 (untransposed) on zeroed 256-byte-aligned tiles.
fn profile_ldmatrix_x4() -> Option<LaunchProfile> {
    let (mut tiles, mut outs) = (aligned(128, |_| 0.0), aligned(128, |_| 0.0));
    let (tile, out) = (floats(&mut tiles, 128), floats(&mut outs, 128));
    profile_xy("prof_ldmatrix_x4", LaunchDims::linear(1, 32, 0), tile, out, vec![Arg::I32(0)])
}

fn region<T>(v: &[T]) -> (u64, usize) {
    (v.as_ptr() as u64, std::mem::size_of_val(v))
}

/// 256 bytes, aligned like cudaMalloc's buffers (sector counts depend on alignment).
#[derive(Clone, Copy)]
#[repr(C, align(256))]
struct Chunk([f32; 64]);

/// A 256-byte-aligned host buffer of `n` floats, filled by `f`.
fn aligned(n: usize, f: impl Fn(usize) -> f32) -> Vec<Chunk> {
    let mut v = vec![Chunk([0.0; 64]); n.div_ceil(64)];
    for i in 0..n {
        v[i / 64].0[i % 64] = f(i);
    }
    v
}

fn floats(v: &mut [Chunk], n: usize) -> &mut [f32] {
    // SAFETY: Chunk is 64 f32s with no padding; n <= 64 * v.len().
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), n) }
}

#[test]
fn a_coalesced_copy_uses_every_byte_it_fetches() {
    let n = 256;
    let (mut xs, mut ys) = (aligned(n, |i| i as f32), aligned(n, |_| 0.0));
    let (x, y) = (floats(&mut xs, n), floats(&mut ys, n));
    let Some(p) = profile_xy("prof_copy", LaunchDims::linear(2, 128, 0), x, y, vec![Arg::I32(n as i32)])
    else {
        return;
    };
    assert_eq!(y, x, "the profiling copy computes what the kernel computes");
    assert_eq!(p.global_loads, 8, "one warp-wide load per warp: {p:?}");
    assert_eq!(p.global_load_bytes, 4 * n as u64);
    assert_eq!(p.global_load_sector_bytes, 4 * n as u64);
    assert_eq!(p.load_efficiency(), 1.0);
    assert_eq!((p.global_stores, p.global_store_bytes), (8, 4 * n as u64));
    assert_eq!(p.store_efficiency(), 1.0);
    assert_eq!((p.shared_accesses, p.global_atomics, p.barriers, p.mma), (0, 0, 0, 0));
}

#[test]
fn strided_reads_waste_the_rest_of_each_sector() {
    // stride 2: a warp's 32 floats span 8 sectors' worth of bytes twice over (half used);
    // stride 32: every lane its own sector, 4 of its 32 bytes used.
    for (stride, efficiency) in [(1, 1.0), (2, 0.5), (32, 0.125)] {
        let n = 64;
        let (mut xs, mut ys) = (aligned(n * stride, |_| 1.0), aligned(n, |_| 0.0));
        let (x, y) = (floats(&mut xs, n * stride), floats(&mut ys, n));
        let scalars = vec![Arg::I32(stride as i32), Arg::I32(n as i32)];
        let Some(p) = profile_xy("prof_strided_read", LaunchDims::linear(1, 64, 0), x, y, scalars) else {
            return;
        };
        assert_eq!(p.global_load_bytes, 4 * n as u64, "stride {stride}");
        assert_eq!(p.load_efficiency(), efficiency, "stride {stride}: {p:?}");
        assert_eq!(p.store_efficiency(), 1.0, "stride {stride}");
    }
}

#[test]
fn a_shared_column_read_conflicts_32_ways_unless_padded() {
    for (pad, column_ways) in [(0, 32), (1, 1)] {
        let mut x: Vec<f32> = (0..1024).map(|i| i as f32).collect();
        let mut y = vec![0f32; 1024];
        let dims = LaunchDims::linear(1, 32, 0);
        let Some(p) = profile_xy("prof_smem_columns", dims, &mut x, &mut y, vec![Arg::I32(pad)]) else {
            return;
        };
        // y is the transpose of x: the shared accesses were the ones intended.
        for r in 0..32 {
            for c in 0..32 {
                assert_eq!(y[c * 32 + r], x[r * 32 + c]);
            }
        }
        // 32 conflict-free row stores, then 32 column loads of `column_ways` each.
        assert_eq!(p.shared_accesses, 64, "pad {pad}: {p:?}");
        assert_eq!(p.shared_ways_sum, 32 + 32 * column_ways, "pad {pad}: {p:?}");
        assert_eq!(p.smem_bank_conflict_ways(), (32.0 + 32.0 * column_ways as f64) / 64.0);
        assert_eq!((p.shared_load_bytes, p.shared_store_bytes), (4096, 4096));
        assert_eq!(p.barriers, 1);
    }
}

#[test]
fn a_shared_broadcast_is_not_a_conflict() {
    let (mut xs, mut ys) = (aligned(1, |_| 7.0), aligned(64, |_| 0.0));
    let (x, y) = (floats(&mut xs, 1), floats(&mut ys, 64));
    let dims = LaunchDims::linear(1, 64, 0);
    let Some(p) = profile_xy("prof_smem_broadcast", dims, x, y, vec![Arg::I32(0)]) else { return };
    assert!(y.iter().all(|&v| v == 7.0));
    // lane 0's store, then one broadcast load per warp: all conflict free.
    assert_eq!((p.shared_accesses, p.shared_ways_sum), (3, 3), "{p:?}");
    // The one global load reads 4 bytes of one sector.
    assert_eq!((p.global_loads, p.global_load_bytes, p.global_load_sector_bytes), (1, 4, 32));
}

#[test]
fn atomics_and_barriers_are_counted_exactly() {
    let mut counter = vec![0i32; 1];
    let bufs = [region(&counter)];
    let args = vec![ptr(&mut counter), Arg::I32(3)];
    let Some(p) = profile("prof_atomics", LaunchDims::linear(2, 64, 0), args, &bufs) else { return };
    assert_eq!(counter[0], 2 * 64 * 3);
    assert_eq!(p.global_atomics, 2 * 64 * 3, "{p:?}");
    // An atomic is not also a plain load and store.
    assert_eq!((p.global_loads, p.global_stores), (0, 0), "{p:?}");

    let mut outs = aligned(3, |_| 0.0);
    let out = floats(&mut outs, 3);
    let bufs = [region(out)];
    let args = vec![ptr(out), Arg::I32(5)];
    let Some(p) = profile("prof_barriers", LaunchDims::linear(3, 64, 0), args, &bufs) else { return };
    assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), vec![5; 3]);
    assert_eq!(p.barriers, 3 * 5, "{p:?}");
    // Only lane 0 of block b stores: one warp-wide store of 4 bytes per block.
    assert_eq!((p.global_stores, p.global_store_bytes, p.global_store_sector_bytes), (3, 12, 96));
}

#[test]
fn memory_outside_the_given_regions_is_not_counted() {
    let mut x: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let mut y = vec![0f32; 64];
    let bufs = [region(&y)];
    let args = vec![ptr(&mut x), ptr(&mut y), Arg::I32(64)];
    let Some(p) = profile("prof_copy", LaunchDims::linear(1, 64, 0), args, &bufs) else { return };
    assert_eq!((p.global_loads, p.global_store_bytes), (0, 256), "{p:?}");
}

/// The 16x16 bf16-bit tile element (r, c) as the test fills it.
fn tile_value(r: usize, c: usize) -> u16 {
    (r * 16 + c) as u16 + 1
}

#[test]
fn ldmatrix_x4_hands_out_the_mma_fragment_layout() {
    for trans in [false, true] {
        let mut tile: Vec<u16> = (0..256).map(|i| tile_value(i / 16, i % 16)).collect();
        let mut out = vec![0u32; 128];
        let args = vec![ptr(&mut tile), ptr(&mut out), Arg::I32(trans as i32)];
        run_block(FAM, "prof_ldmatrix_x4", 32, args, Schedule::Random(3));
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            for i in 0..4 {
                // Matrix i covers rows (i & 1) * 8.., columns (i >> 1) * 8..
                let (r0, c0) = ((i & 1) * 8, (i >> 1) * 8);
                let (lo, hi) = if trans {
                    (tile_value(r0 + 2 * t, c0 + g), tile_value(r0 + 2 * t + 1, c0 + g))
                } else {
                    (tile_value(r0 + g, c0 + 2 * t), tile_value(r0 + g, c0 + 2 * t + 1))
                };
                let want = lo as u32 | (hi as u32) << 16;
                assert_eq!(out[lane * 4 + i], want, "trans {trans} lane {lane} reg {i}");
            }
        }
    }
}

#[test]
fn ldmatrix_x1_x2_read_only_the_first_lanes_rows() {
    for num in [1usize, 2] {
        let mut tile: Vec<u16> = (0..128).map(|i| i as u16 + 1).collect();
        let mut out = vec![0u32; 64];
        let args = vec![ptr(&mut tile), ptr(&mut out), Arg::I32(num as i32)];
        run_block(FAM, "prof_ldmatrix_x1_x2", 32, args, Schedule::Forward);
        for lane in 0..32 {
            for i in 0..2 {
                // Matrix i = rows 8i..8i+8 of the 16x8 tile; lane gets row lane/4, words lane%4.
                let want = if i < num {
                    let e = (8 * i + lane / 4) * 8 + 2 * (lane % 4);
                    tile[e] as u32 | (tile[e + 1] as u32) << 16
                } else {
                    0
                };
                assert_eq!(out[lane * 2 + i], want, "x{num} lane {lane} reg {i}");
            }
        }
    }
}

#[test]
fn ldmatrix_profiles_as_conflict_free_16_byte_rows() {
    let Some(p) = profile_ldmatrix_x4() else { return };
    assert_eq!(p.ldmatrix, 1, "{p:?}");
    // 8 stores of 2-byte elements (conflict free: 32 lanes, 16 words), 1 ldmatrix: each
    // quarter-warp reads 8 rows of 16 bytes at a 32-byte pitch = banks 0-3, 8-11, ... twice:
    // rows r and r+4 share banks, so 2-way.
    assert_eq!(p.shared_accesses, 9, "{p:?}");
    assert_eq!(p.shared_ways_sum, 8 + 2, "{p:?}");
}

#[test]
fn launches_on_other_threads_do_not_count_into_a_session() {
    if !profiling_available() {
        return;
    }
    // Another thread keeps issuing ordinary ldmatrix launches while this one profiles; each
    // session must still see exactly its own one ldmatrix and its own stores.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut tile: Vec<u16> = (0..128).map(|i| i as u16).collect();
                let mut out = vec![0u32; 64];
                let args = vec![ptr(&mut tile), ptr(&mut out), Arg::I32(2)];
                run_block(FAM, "prof_ldmatrix_x1_x2", 32, args, Schedule::Forward);
            }
        })
    };
    for _ in 0..50 {
        let p = profile_ldmatrix_x4().unwrap();
        assert_eq!((p.ldmatrix, p.shared_accesses), (1, 9), "{p:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
}

#[test]
fn cp_async_lands_at_the_wait_of_its_group() {
    for bytes in [4, 8, 16] {
        let mut x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let mut seen = vec![0f32; 128];
        let bufs = [region(&x), region(&seen)];
        let args = vec![ptr(&mut x), ptr(&mut seen), Arg::I32(bytes)];
        let dims = LaunchDims::linear(1, 32, 0);
        if profiling_available() {
            let p = profile_launch(&call(FAM, "prof_cp_async", dims, args), &EmuOptions::default(), &bufs)
                .unwrap();
            assert_eq!(p.cp_async_bytes, 256, "{bytes}-byte copies: {p:?}");
        } else {
            run(FAM, "prof_cp_async", dims, args, Schedule::Reverse).unwrap();
        }
        for i in 0..32 {
            assert_eq!(seen[i], i as f32, "group 0 after wait_group 1, {bytes}-byte copies");
            assert_eq!(seen[32 + i], -2.0, "group 1 still in flight after wait_group 1, {bytes}-byte copies");
            assert_eq!(seen[64 + i], i as f32, "after wait_all");
            assert_eq!(seen[96 + i], (32 + i) as f32, "after wait_all");
        }
    }
}

/// Runs `f` on an emulated device with profiling on; the profiles of its launches.
fn profiled_ops(f: impl FnOnce(&Device)) -> Vec<LaunchProfile> {
    let backend = Arc::new(EmuBackend::new(EmuOptions::default()));
    let device = Device::from_backend(backend.clone());
    backend.start_profiling();
    f(&device);
    backend.take_profiles()
}

fn on(device: &Device, data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape).unwrap().to_device(device).unwrap()
}

#[test]
fn a_one_pass_kernel_loads_exactly_its_inputs() {
    if !profiling_available() {
        return;
    }
    let n = 1000;
    let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
    let profiles = profiled_ops(|d| {
        let sum = ops::add(&on(d, &a, &[n]), &on(d, &b, &[n])).unwrap();
        assert_eq!(sum.to_vec_f32().unwrap()[999], 2997.0);
    });
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    let p = &profiles[0];
    assert_eq!((p.family.as_str(), p.kernel.as_str()), ("elementwise", "add_f32"));
    assert_eq!(p.global_load_bytes, 2 * 4 * n as u64, "a and b, once each: {p:?}");
    assert_eq!(p.global_store_bytes, 4 * n as u64, "{p:?}");
    assert_eq!((p.load_efficiency(), p.store_efficiency()), (1.0, 1.0));
}

#[test]
fn rms_norm_reads_its_rows_twice_and_the_weight_once_per_row() {
    if !profiling_available() {
        return;
    }
    // kernels/norm.cu reads each row twice (statistics, then the output) and the weight once
    // per row (block); it writes each output element once.
    let (rows, cols) = (4usize, 256usize);
    let x: Vec<f32> = (0..rows * cols).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    let w: Vec<f32> = (0..cols).map(|i| 1.0 + i as f32 / cols as f32).collect();
    let profiles = profiled_ops(|d| {
        ops::rms_norm(&on(d, &x, &[rows, cols]), &on(d, &w, &[cols]), 1e-5).unwrap();
    });
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    let p = &profiles[0];
    assert_eq!(p.family, "norm");
    let (x_bytes, w_bytes) = ((rows * cols * 4) as u64, (cols * 4) as u64);
    assert_eq!(p.global_load_bytes, 2 * x_bytes + rows as u64 * w_bytes, "{p:?}");
    assert_eq!(p.global_store_bytes, x_bytes, "{p:?}");
    assert_eq!(p.load_efficiency(), 1.0, "{p:?}");
    // Two block sums per row (one in rms: rt_block_sum barriers twice).
    assert_eq!(p.barriers, rows as u64 * 2, "{p:?}");
}
