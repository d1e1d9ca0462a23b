//! The emulator catches kernel bugs a GPU would get silently wrong (kernels in
//! tests/kernels/emu_faults.cu): a missing barrier, out-of-bounds writes, a thread exiting while
//! others wait at a barrier, warp collectives naming lanes that never arrive.

mod common;

use std::sync::Arc;

use common::{block_fault, kernel_fault, ptr, run, run_block};
use ragtune_compute::ComputeError;
use ragtune_compute::backend::{DeviceMemory, GpuBackend};
use ragtune_compute::launch::{Arg, Kernel, KernelCall, LaunchDims};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};

const FAM: &str = "emu_faults";

fn block_sums(kernel: &str, input: &[f32], schedule: Schedule) -> Vec<f32> {
    let blocks = input.len() / 128;
    let mut inp = input.to_vec();
    let mut out = vec![0f32; blocks];
    run(FAM, kernel, LaunchDims::linear(blocks as u32, 128, 0), vec![ptr(&mut inp), ptr(&mut out)], schedule)
        .unwrap();
    out
}

#[test]
fn missing_syncthreads_changes_the_result_under_some_schedule() {
    // Small integers: every summation order gives the exact answer, so any difference is the race.
    let input: Vec<f32> = (0..3 * 128).map(|i| (i % 7) as f32 + 1.0).collect();
    let want: Vec<f32> = input.chunks(128).map(|c| c.iter().sum()).collect();
    let mut schedules: Vec<Schedule> = Schedule::STANDARD.to_vec();
    schedules.extend((1..6).map(Schedule::Random));
    let mut caught = Vec::new();
    for &s in &schedules {
        assert_eq!(block_sums("fault_block_sum_ok", &input, s), want, "the correct twin must pass under {s}");
        if block_sums("fault_block_sum_racy", &input, s) != want {
            caught.push(s);
        }
    }
    assert!(!caught.is_empty(), "the missing __syncthreads() went unnoticed under every schedule");
    // Forward order runs thread 0 to its first barrier before thread 64 stored its value.
    assert!(caught.contains(&Schedule::Forward), "caught only under {caught:?}");
}

#[test]
fn reusing_reduction_scratch_without_a_barrier_is_caught() {
    // The race only appears when one warp runs far ahead of another: the scheduler's depth-first
    // order (the first warp of the priority order runs to the next barrier) must expose it.
    let (threads, blocks) = (128usize, 2usize);
    let input: Vec<f32> = (0..threads * blocks).map(|i| (i % 5) as f32).collect();
    let want: Vec<f32> = input
        .chunks(threads)
        .flat_map(|c| {
            let s: f32 = c.iter().sum();
            std::iter::repeat_n([s, 2.0 * s], threads).flatten()
        })
        .collect();
    let launch = |lead: i32, s: Schedule| {
        let mut inp = input.clone();
        let mut out = vec![0f32; 2 * input.len()];
        run(
            FAM,
            "fault_scratch_reuse",
            LaunchDims::linear(blocks as u32, threads as u32, 0),
            vec![ptr(&mut inp), ptr(&mut out), Arg::I32(lead)],
            s,
        )
        .unwrap();
        out
    };
    let mut caught = Vec::new();
    for s in Schedule::STANDARD {
        assert_eq!(launch(1, s), want, "the correct twin must pass under {s}");
        if launch(0, s) != want {
            caught.push(s);
        }
    }
    assert!(
        caught.contains(&Schedule::Forward) && caught.contains(&Schedule::Reverse),
        "caught only under {caught:?}"
    );
}

/// One block of `threads` threads of `kernel` (one of the guarded-write kernels: `y`, `n`) on
/// device buffer `y`.
fn launch_writer(
    be: &EmuBackend,
    kernel: &'static str,
    threads: u32,
    y: &dyn DeviceMemory,
    n: usize,
) -> Result<(), ComputeError> {
    be.launch(&KernelCall {
        kernel: Kernel::new(FAM, kernel),
        dims: LaunchDims::linear(1, threads, 0),
        args: vec![Arg::Ptr(y.addr()), Arg::I32(n as i32)],
    })
}

fn guarded_launch(
    kernel: &'static str,
    n: usize,
) -> (Result<(), ComputeError>, Arc<dyn DeviceMemory>, EmuBackend) {
    let be = EmuBackend::new(EmuOptions::default());
    let y = be.alloc(n * 4).unwrap();
    let r = launch_writer(&be, kernel, 64, y.as_ref(), n);
    (r, y, be)
}

#[test]
fn out_of_bounds_write_past_the_end_is_reported() {
    let (r, _y, be) = guarded_launch("fault_oob_write", 40);
    let d = kernel_fault(r, "fault_oob_write");
    assert!(d.contains("160 bytes") && d.contains("offset 160") && d.contains("0 bytes past its end"), "{d}");
    // The guard is re-armed: the next clean launch reports nothing.
    let y2 = be.alloc(64 * 4).unwrap();
    launch_writer(&be, "fault_oob_write", 32, y2.as_ref(), 40).unwrap();
}

#[test]
fn out_of_bounds_write_before_the_start_is_reported() {
    let (r, _y, _be) = guarded_launch("fault_underflow_write", 16);
    let d = kernel_fault(r, "fault_underflow_write");
    assert!(d.contains("offset -4") && d.contains("4 bytes before its start"), "{d}");
}

#[test]
fn in_bounds_launch_passes_the_guard_check() {
    // 64 threads write y[i] for i <= n = 64: all of y[0..64], nothing beyond 65 elements.
    let be = EmuBackend::default();
    let y = be.alloc(65 * 4).unwrap();
    launch_writer(&be, "fault_oob_write", 64, y.as_ref(), 64).unwrap();
    let mut out = vec![0u8; 65 * 4];
    be.download(y.as_ref(), &mut out).unwrap();
    // Thread 64 does not exist in a 64-thread launch: element 64 keeps the NaN poison.
    let vals: Vec<f32> = out.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(vals[..64].iter().all(|&v| v == 1.0));
    assert!(vals[64].is_nan());
}

#[test]
fn exit_while_others_wait_at_a_barrier_is_an_error_not_a_hang() {
    for s in Schedule::STANDARD {
        let mut y = vec![0f32; 64];
        let d = block_fault(FAM, "fault_exit_before_barrier", 64, vec![ptr(&mut y), Arg::I32(40)], s);
        assert!(d.contains("returned while") && d.contains("__syncthreads"), "{d}");
        // With every thread in range the same kernel is fine.
        run_block(FAM, "fault_exit_before_barrier", 64, vec![ptr(&mut y), Arg::I32(64)], s);
        assert_eq!(y[0], 63.0);
    }
}

#[test]
fn shuffle_naming_an_exited_lane_is_an_error() {
    for s in Schedule::STANDARD {
        let mut x = vec![1f32; 32];
        let mut y = vec![0f32; 1];
        let d =
            block_fault(FAM, "fault_shfl_exited_lane", 32, vec![ptr(&mut x), ptr(&mut y), Arg::I32(20)], s);
        assert!(d.contains("__shfl_xor_sync") && d.contains("exited"), "{s}: {d}");
        run_block(FAM, "fault_shfl_exited_lane", 32, vec![ptr(&mut x), ptr(&mut y), Arg::I32(32)], s);
        assert_eq!(y[0], 32.0);
    }
}

#[test]
fn malformed_collectives_are_errors() {
    // (kernel, schedule, does the fault's message say what went wrong). Each kernel takes one
    // buffer of 32 4-byte words (the ballot's unsigned, the others' float); host memory has no
    // type, so one buffer serves them all.
    type Says = fn(&str) -> bool;
    let cases: [(&str, Schedule, Says); 4] = [
        ("fault_shfl_not_in_own_mask", Schedule::Forward, |d| d.contains("not in its own mask")),
        ("fault_shfl_source_outside_mask", Schedule::Reverse, |d| {
            d.contains("reads lane 4") || d.contains("reads lane")
        }),
        ("fault_barrier_vs_collective", Schedule::Forward, |d| {
            d.contains("__ballot_sync") && d.contains("__syncthreads")
        }),
        ("fault_trap", Schedule::Forward, |d| d.contains("__trap") && d.contains("thread (3,0,0)")),
    ];
    let mut y = vec![0f32; 32];
    for (kernel, schedule, says) in cases {
        let d = block_fault(FAM, kernel, 32, vec![ptr(&mut y)], schedule);
        assert!(says(&d), "{d}");
    }
    // The emulator is usable after each fault.
    let mut x = vec![1f32; 32];
    run_block(
        FAM,
        "fault_shfl_exited_lane",
        32,
        vec![ptr(&mut x), ptr(&mut y), Arg::I32(32)],
        Schedule::Forward,
    );
}

#[test]
fn pointers_outside_live_buffers_are_refused() {
    let be = EmuBackend::default();
    let mut host = vec![0f32; 8];
    let r = be.launch(&KernelCall {
        kernel: Kernel::new(FAM, "fault_oob_write"),
        dims: LaunchDims::linear(1, 1, 0),
        args: vec![ptr(&mut host), Arg::I32(0)],
    });
    match r {
        Err(ComputeError::Invalid { detail, .. }) => assert!(detail.contains("argument 0"), "{detail}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Under the AddressSanitizer build (`RAGTUNE_EMU_SANITIZE=address`), overruns of a static
/// `__shared__` array and of dynamic shared memory are reported with the kernel file and line.
/// The report aborts the process, so each overrun runs in a child process (this test binary,
/// filtered to this test, told which kernel to run).
#[test]
fn asan_reports_shared_memory_overruns() {
    const CHILD: &str = "RAGTUNE_EMU_ASAN_CHILD";
    if ragtune_kernel_emu::sanitizer() != Some("address") {
        eprintln!(
            "not an AddressSanitizer build: shared-memory overruns are caught with RAGTUNE_EMU_SANITIZE=address"
        );
        return;
    }
    if let Ok(kernel) = std::env::var(CHILD) {
        let mut y = vec![0f32; 32];
        let (args, shared) = match kernel.as_str() {
            "fault_shared_overrun" => (vec![ptr(&mut y), Arg::I32(1)], 0),
            _ => (vec![ptr(&mut y)], 32 * 4),
        };
        let _ = run(FAM, &kernel, LaunchDims::linear(1, 32, shared), args, Schedule::Forward);
        return;
    }
    for (kernel, kind) in [
        ("fault_shared_overrun", "global-buffer-overflow"),
        ("fault_dynamic_shared_overrun", "heap-buffer-overflow"),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "asan_reports_shared_memory_overruns", "--nocapture", "--test-threads=1"])
            .env(CHILD, kernel)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{kernel}: the overrun went unreported:\n{stderr}");
        assert!(stderr.contains(kind) && stderr.contains("emu_faults.cu"), "{kernel}: {stderr}");
    }
}
