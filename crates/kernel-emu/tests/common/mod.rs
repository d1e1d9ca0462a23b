//! Helpers shared by the integration tests: launching on plain host vectors.

#![allow(dead_code)] // each test file uses a different subset

use ragtune_compute::ComputeError;
use ragtune_compute::launch::{Arg, Kernel, KernelCall, LaunchDims};
use ragtune_kernel_emu::{EmuOptions, Schedule};

/// A pointer argument to a host slice.
pub fn ptr<T>(v: &mut [T]) -> Arg {
    Arg::Ptr(v.as_mut_ptr() as u64)
}

pub fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

pub fn call(family: &'static str, function: &str, dims: LaunchDims, args: Vec<Arg>) -> KernelCall {
    // Test kernels live outside kernels/, so they have no generated handle; a name built with
    // format! is leaked to get the 'static a handle holds (a few bytes per test launch).
    KernelCall { kernel: Kernel::new(family, leak(function)), dims, args }
}

/// Launch on host memory with the given schedule.
pub fn run(
    family: &'static str,
    function: &str,
    dims: LaunchDims,
    args: Vec<Arg>,
    schedule: Schedule,
) -> Result<(), ComputeError> {
    ragtune_kernel_emu::launch(&call(family, function, dims, args), &EmuOptions { schedule })
}

/// Launch one block of `threads` threads on host memory with the given schedule; panics if the
/// launch fails (most tests run a single block).
pub fn run_block(family: &'static str, function: &str, threads: u32, args: Vec<Arg>, schedule: Schedule) {
    run(family, function, LaunchDims::linear(1, threads, 0), args, schedule).unwrap();
}

/// The message of the kernel fault a one-block launch of `threads` threads must end in.
pub fn block_fault(
    family: &'static str,
    function: &str,
    threads: u32,
    args: Vec<Arg>,
    schedule: Schedule,
) -> String {
    kernel_fault(run(family, function, LaunchDims::linear(1, threads, 0), args, schedule), function)
}

/// The message of a kernel fault, or a panic naming what came back instead.
pub fn kernel_fault(r: Result<(), ComputeError>, function: &str) -> String {
    match r {
        Err(ComputeError::Kernel { function: f, detail }) => {
            assert_eq!(f, function, "fault attributed to the wrong kernel: {detail}");
            eprintln!("{function}: {detail}"); // what a developer sees (cargo test -- --nocapture)
            detail
        }
        other => panic!("expected a kernel fault from {function}, got {other:?}"),
    }
}
