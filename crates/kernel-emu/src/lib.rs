//! ragtune-kernel-emu: runs ragtune's `kernels/*.cu` on a CPU with CUDA's execution semantics, so
//! `cargo test` proves kernels correct on machines without a GPU.
//!
//! The build script compiles every kernel file as host C++ against `emu/cuda_emu.h` (the CUDA
//! built-ins, types, intrinsics and atomics) and `emu/runtime.cpp` (a fiber scheduler: the
//! threads of a block are fibers on one OS thread, blocks run one after another). A launch takes
//! the same [`KernelCall`] the CUDA backend gives the driver; pointer arguments are host
//! addresses. Faults CUDA would leave undefined — a thread returning while others wait at
//! `__syncthreads()`, a warp collective whose mask names a lane that never arrives, a shuffle
//! reading a lane outside its mask — come back as [`ComputeError::Kernel`], never as a hang.
//!
//! Two ways in:
//! - [`launch`]: run one kernel on host memory you own;
//! - [`EmuBackend`]: a [`GpuBackend`](ragtune_compute::backend::GpuBackend) whose "device"
//!   memory is guarded host memory (out-of-bounds writes are reported after each launch) and
//!   whose `gemm` is an f64 reference loop, so ops written against the backend seam run here.
//!
//! - [`profile_launch`] / [`EmuBackend::start_profiling`]: run a kernel's instrumented copy and
//!   get a [`LaunchProfile`] (load efficiency, bank conflicts, atomics, barriers, mma) —
//!   `cargo xtask emu-profile` runs it over the kernel families.
//!
//! Run parity tests under several [`Schedule`]s: a missing barrier changes the result under at
//! least one of them.
//!
//! AddressSanitizer: `RAGTUNE_EMU_SANITIZE=address cargo test ...` builds the emulated kernels
//! and the scheduler with `-fsanitize=address` and links gcc's ASan runtime statically into
//! every test binary that uses this crate, so no `LD_PRELOAD` or `ASAN_OPTIONS` is needed
//! (`ASAN_OPTIONS=detect_leaks=0` silences LeakSanitizer if another crate leaks on purpose).
//! Overruns of host buffers, of static `__shared__` arrays and of dynamic shared memory are then
//! reported with the `.cu` file and line, and abort the test process. Switching the variable
//! rebuilds only this crate and relinks what uses it (a separate `CARGO_TARGET_DIR` keeps both
//! variants built, at the cost of a second build of every dependency). [`sanitizer`] tells which
//! variant is running.
//!
//! Stricter than a GPU, on purpose: a warp collective whose mask names a lane that has exited or
//! does not exist (a partial last warp) is an error, as is a thread returning while others wait
//! at `__syncthreads()`; `__activemask()` returns the lanes that reach it together.
//!
//! Shared memory as strictly as the hardware, or more: static and dynamic shared memory are
//! filled with 0xFF bytes (NaN / -1) before every block, so reading shared memory the block did
//! not write shows in the output; more than 48 KiB of static shared memory per block is refused
//! (measured after the first block: the bytes of the kernel file's `__shared__` section it
//! wrote), as is dynamic shared memory over 48 KiB unless the kernel opted in
//! ([`set_max_dynamic_shared_bytes`], the emulated `cudaFuncSetAttribute`; [`EmuBackend`] does
//! it as the CUDA backend does) and anything over sm_80's 163 KiB per block. Blocks run one at a
//! time in the order of the [`Schedule`]: forward, reverse, or a seeded shuffle.
//!
//! Gap: gcc ignores the section attribute on the `__shared__` statics of *template* functions
//! (they are COMDAT `.bss` objects), so those (the templated attention and top-k tiles) are
//! neither poisoned per block nor counted toward the 48 KiB static limit yet; non-template
//! kernels are covered.
//!
//! Limits: fibers switch only at barriers and warp collectives, so a spin-wait on another thread hangs;
//! each thread has a 256 KiB stack; timing, occupancy and memory ordering between blocks are not
//! modelled (blocks run one after another).

mod backend;
mod gemm;
mod profile;

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::fmt;
use std::sync::{Mutex, OnceLock};

use ragtune_compute::ComputeError;
use ragtune_compute::launch::{Arg, KernelCall, LaunchDims};

pub use backend::EmuBackend;
pub use gemm::reference_gemm;
pub use profile::{LaunchProfile, profile_launch, profiling_available};

/// The order in which the scheduler runs the blocks of a grid and resumes the runnable threads of
/// a block. CUDA promises neither, so a correct kernel computes the same result under every
/// schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Block 0 first, then 1, 2, ...; within a block thread 0 first, then 1, 2, ...
    #[default]
    Forward,
    /// The last block first; the last thread first.
    Reverse,
    /// Blocks in a seeded shuffled order; threads in a fresh seeded permutation at every
    /// scheduling round (deterministic for a given seed).
    Random(u64),
}

impl Schedule {
    /// Forward, reverse and one random schedule: what parity tests should loop over.
    pub const STANDARD: [Schedule; 3] = [Schedule::Forward, Schedule::Reverse, Schedule::Random(0x5eed)];
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Forward => f.write_str("forward"),
            Schedule::Reverse => f.write_str("reverse"),
            Schedule::Random(seed) => write!(f, "random, seed {seed}"),
        }
    }
}

/// How the emulator runs a launch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmuOptions {
    pub schedule: Schedule,
}

// ---- the C++ side (emu/runtime.cpp and the generated registry) ------------------------------

#[repr(C)]
struct RawParam {
    size: u32,
    kind: c_char,
}

#[repr(C)]
struct RawKernel {
    name: *const c_char,
    family: *const c_char,
    trampoline: *const c_void,
    param_count: u32,
    params: *const RawParam,
    signature: unsafe extern "C" fn() -> *const c_char,
    shared_begin: *mut u8,
    shared_end: *mut u8,
}

unsafe extern "C" {
    static rt_emu_registry: [*const RawKernel; 0];
    static rt_emu_registry_len: u32;
    static rt_emu_prof_registry: [*const RawKernel; 0];
    static rt_emu_prof_registry_len: u32;
    fn rt_emu_run(
        kernel: *const RawKernel,
        args: *mut *mut c_void,
        grid: *const u32,
        block: *const u32,
        shared_bytes: u32,
        schedule: c_int,
        seed: u64,
        static_limit: u32,
        block_limit: u32,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// What the registry knows about one kernel.
struct Kernel {
    name: &'static str,
    family: &'static str,
    /// (size in bytes, kind: b'p' pointer, b'f' float, b'i' signed, b'u' unsigned, b's' struct)
    params: Vec<(u32, u8)>,
    /// The parameter types as the C++ compiler spells them: `const float*, float*, int`.
    signature: String,
    raw: *const RawKernel,
}

// SAFETY: `raw` points at an immutable, statically allocated descriptor.
unsafe impl Send for Kernel {}
unsafe impl Sync for Kernel {}

fn registry() -> &'static [Kernel] {
    static REGISTRY: OnceLock<Vec<Kernel>> = OnceLock::new();
    // SAFETY: the generated registry holds `rt_emu_registry_len` valid descriptors.
    REGISTRY
        .get_or_init(|| unsafe { read_registry((&raw const rt_emu_registry).cast(), rt_emu_registry_len) })
}

/// The profiling copies (empty in the AddressSanitizer build), found by the kernel's name.
fn prof_registry() -> &'static [Kernel] {
    static REGISTRY: OnceLock<Vec<Kernel>> = OnceLock::new();
    // SAFETY: as for `registry`.
    REGISTRY.get_or_init(|| unsafe {
        read_registry((&raw const rt_emu_prof_registry).cast(), rt_emu_prof_registry_len)
    })
}

/// # Safety
/// `table` must hold `len` valid descriptors whose strings are static NUL-terminated literals.
unsafe fn read_registry(table: *const *const RawKernel, len: u32) -> Vec<Kernel> {
    // SAFETY: the caller's contract.
    let table = unsafe { std::slice::from_raw_parts(table, len as usize) };
    table
        .iter()
        .map(|&raw| {
            // SAFETY: the caller's contract: valid descriptors, static strings.
            let k = unsafe { &*raw };
            let params = (0..k.param_count as usize)
                .map(|i| {
                    // SAFETY: `params` holds `param_count` entries.
                    let p = unsafe { &*k.params.add(i) };
                    (p.size, p.kind as u8)
                })
                .collect();
            // SAFETY: static NUL-terminated strings.
            let (pretty, name, family) = unsafe {
                (
                    CStr::from_ptr((k.signature)()).to_string_lossy(),
                    CStr::from_ptr(k.name).to_str().unwrap_or("?"),
                    CStr::from_ptr(k.family).to_str().unwrap_or("?"),
                )
            };
            Kernel { name, family, params, signature: parse_signature(&pretty), raw }
        })
        .collect()
}

/// `... [with P = {const float*, float*, int}]` → `const float*, float*, int`.
fn parse_signature(pretty: &str) -> String {
    pretty
        .find("P = {")
        .and_then(|start| {
            let rest = &pretty[start + 5..];
            rest.rfind('}').map(|end| rest[..end].to_string())
        })
        .unwrap_or_else(|| pretty.to_string())
}

fn find(name: &str) -> Option<&'static Kernel> {
    registry().iter().find(|k| k.name == name)
}

/// Every kernel the emulator can run: all `extern "C" __global__` functions of `kernels/*.cu`
/// (and the test-only kernels of this crate), sorted.
pub fn kernels() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = registry().iter().map(|k| k.name).collect();
    names.sort_unstable();
    names
}

/// The sanitizer the emulated kernels were built with: `Some("address")` under
/// `RAGTUNE_EMU_SANITIZE=address`, else None.
pub fn sanitizer() -> Option<&'static str> {
    Some(env!("RAGTUNE_EMU_BUILT_WITH")).filter(|s| !s.is_empty())
}

/// Whether `name` is an emulated kernel.
pub fn has_kernel(name: &str) -> bool {
    find(name).is_some()
}

/// The family (`kernels/<family>.cu`) a kernel is defined in.
pub fn kernel_family(name: &str) -> Option<&'static str> {
    find(name).map(|k| k.family)
}

/// A kernel's parameter list as C++ spells it, e.g. `const float*, float*, int`.
pub fn kernel_signature(name: &str) -> Option<&'static str> {
    find(name).map(|k| k.signature.as_str())
}

const OP: &str = "kernel-emu launch";
/// Static `__shared__` memory per block on every GPU (48 KiB): more is a ptxas error.
pub const STATIC_SHARED_LIMIT_BYTES: u32 = 48 * 1024;
/// Dynamic shared memory a launch may request without the `MaxDynamicSharedMemorySize` opt-in.
pub const DYNAMIC_SHARED_DEFAULT_BYTES: u32 = 48 * 1024;
/// The most shared memory (static + dynamic) one block may use, opt-in included: sm_80's 163 KiB
/// (A100), the smallest of the GPUs ragtune targets (H100/H200 allow 227 KiB = 232448 bytes), so
/// a launch the emulator accepts fits every one of them.
pub const MAX_SHARED_BYTES_PER_BLOCK: u32 = 166_912;

/// Per-kernel `MaxDynamicSharedMemorySize` attributes, as `cudaFuncSetAttribute` leaves them.
fn dynamic_opt_ins() -> &'static Mutex<HashMap<String, u32>> {
    static OPT_INS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    OPT_INS.get_or_init(Default::default)
}

/// The emulated `cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
/// bytes)` (cudarc: `CudaFunction::set_attribute`): lets launches of `kernel` request up to
/// `bytes` of dynamic shared memory. Like the driver's, it persists for the process and is
/// refused above the device maximum ([`MAX_SHARED_BYTES_PER_BLOCK`]).
pub fn set_max_dynamic_shared_bytes(kernel: &str, bytes: u32) -> Result<(), ComputeError> {
    if !has_kernel(kernel) {
        return Err(ComputeError::Invalid {
            op: OP,
            detail: format!("set_max_dynamic_shared_bytes: no kernel named `{kernel}`"),
        });
    }
    if bytes > MAX_SHARED_BYTES_PER_BLOCK {
        return Err(invalid_launch(
            kernel,
            format!(
                "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes}) is over the device maximum \
                 {MAX_SHARED_BYTES_PER_BLOCK}"
            ),
        ));
    }
    dynamic_opt_ins().lock().unwrap_or_else(|e| e.into_inner()).insert(kernel.to_string(), bytes);
    Ok(())
}

/// The dynamic shared memory launches of `kernel` may request: its opt-in, else 48 KiB.
pub fn max_dynamic_shared_bytes(kernel: &str) -> u32 {
    let opted = dynamic_opt_ins().lock().unwrap_or_else(|e| e.into_inner()).get(kernel).copied();
    opted.unwrap_or(DYNAMIC_SHARED_DEFAULT_BYTES).max(DYNAMIC_SHARED_DEFAULT_BYTES)
}

fn invalid_launch(function: &str, detail: String) -> ComputeError {
    ComputeError::Cuda {
        context: format!("cuLaunchKernel({function}) on the CPU emulator"),
        message: format!("CUDA_ERROR_INVALID_VALUE: {detail}"),
    }
}

/// Rejects the launch configurations the driver rejects.
fn check_dims(function: &str, dims: &LaunchDims) -> Result<(), ComputeError> {
    let (bx, by, bz) = dims.block;
    let (gx, gy, gz) = dims.grid;
    if bx == 0 || by == 0 || bz == 0 || gx == 0 || gy == 0 || gz == 0 {
        return Err(invalid_launch(
            function,
            format!("empty grid {:?} or block {:?}", dims.grid, dims.block),
        ));
    }
    if bx > 1024 || by > 1024 || bz > 64 {
        return Err(invalid_launch(
            function,
            format!("block {:?} exceeds the per-dimension limits (1024, 1024, 64)", dims.block),
        ));
    }
    let threads = bx as u64 * by as u64 * bz as u64;
    if threads > 1024 {
        return Err(invalid_launch(
            function,
            format!("block {:?} has {threads} threads (max 1024)", dims.block),
        ));
    }
    if gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
        return Err(invalid_launch(
            function,
            format!("grid {:?} exceeds the limits (2^31-1, 65535, 65535)", dims.grid),
        ));
    }
    if dims.shared_bytes > MAX_SHARED_BYTES_PER_BLOCK {
        return Err(invalid_launch(
            function,
            format!(
                "{} bytes of dynamic shared memory requested, over the device maximum \
                 {MAX_SHARED_BYTES_PER_BLOCK} (sm_80; shrink the tiles)",
                dims.shared_bytes
            ),
        ));
    }
    let allowed = max_dynamic_shared_bytes(function);
    if dims.shared_bytes > allowed {
        return Err(invalid_launch(
            function,
            format!(
                "{} bytes of dynamic shared memory requested, but the kernel allows {allowed}: above \
                 {DYNAMIC_SHARED_DEFAULT_BYTES} bytes a launch needs \
                 cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) first (set_max_dynamic_shared_bytes \
                 here, CudaFunction::set_attribute in the CUDA backend)",
                dims.shared_bytes
            ),
        ));
    }
    Ok(())
}

/// Close names for an unknown kernel: same prefix/suffix or a small edit distance.
fn close_names(name: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = registry()
        .iter()
        .map(|k| (edit_distance(name, k.name), k.name))
        .filter(|(d, n)| *d <= name.len().max(3) / 3 || n.contains(name) || name.contains(n))
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn arg_name(a: &Arg) -> &'static str {
    match a {
        Arg::Ptr(_) => "Ptr",
        Arg::I32(_) => "I32",
        Arg::U32(_) => "U32",
        Arg::I64(_) => "I64",
        Arg::U64(_) => "U64",
        Arg::F32(_) => "F32",
    }
}

/// Whether `arg` is read correctly by a parameter of `size` bytes and `kind`. Sizes must match
/// (cuLaunchKernel copies `size` bytes from the argument); a float must not meet an integer.
/// Integer signedness and pointer vs 64-bit integer are interchangeable at the ABI level.
fn arg_fits(arg: &Arg, size: u32, kind: u8) -> bool {
    let (arg_size, arg_kind) = match arg {
        Arg::Ptr(_) => (8, b'p'),
        Arg::I32(_) | Arg::U32(_) => (4, b'i'),
        Arg::I64(_) | Arg::U64(_) => (8, b'i'),
        Arg::F32(_) => (4, b'f'),
    };
    if arg_size != size {
        return false;
    }
    match kind {
        b'f' => arg_kind == b'f',
        b'p' => arg_kind == b'p' || matches!(arg, Arg::U64(_) | Arg::I64(_)),
        b'i' | b'u' => arg_kind != b'f',
        _ => true, // a struct by value: only the size can be checked
    }
}

/// Runs `call` on the CPU. Pointer arguments are host addresses the kernel reads and writes
/// directly. Returns after every block ran, or with the first fault.
pub fn launch(call: &KernelCall, opts: &EmuOptions) -> Result<(), ComputeError> {
    let kernel = checked_kernel(call)?;
    run(call, opts, kernel.raw)
}

/// The registered kernel `call` names, once the call is one a GPU would accept for it.
fn checked_kernel(call: &KernelCall) -> Result<&'static Kernel, ComputeError> {
    let name = call.kernel.name();
    let Some(kernel) = find(name) else {
        let close = close_names(name);
        let hint = if close.is_empty() {
            format!("{} kernels are registered", registry().len())
        } else {
            format!("close names: {}", close.join(", "))
        };
        return Err(ComputeError::Invalid {
            op: OP,
            detail: format!(
                "no kernel named `{name}` in kernels/{}.cu or any other kernels/*.cu ({hint})",
                call.kernel.family()
            ),
        });
    };
    if kernel.family != call.kernel.family() {
        return Err(ComputeError::Invalid {
            op: OP,
            detail: format!(
                "kernel `{name}` is defined in kernels/{}.cu, but the call names family `{}` \
                 (a GPU would look for it in the wrong module)",
                kernel.family,
                call.kernel.family()
            ),
        });
    }
    check_dims(name, &call.dims)?;
    if call.args.len() != kernel.params.len() {
        return Err(ComputeError::Invalid {
            op: OP,
            detail: format!(
                "kernel `{name}({})` takes {} arguments, the call passes {}",
                kernel.signature,
                kernel.params.len(),
                call.args.len()
            ),
        });
    }
    for (i, (arg, &(size, kind))) in call.args.iter().zip(&kernel.params).enumerate() {
        if !arg_fits(arg, size, kind) {
            let ty = kernel.signature.split(", ").nth(i).unwrap_or("?");
            return Err(ComputeError::Invalid {
                op: OP,
                detail: format!(
                    "kernel `{name}({})`: argument {i} is Arg::{}, which does not fit parameter type `{ty}` \
                     ({size} bytes)",
                    kernel.signature,
                    arg_name(arg)
                ),
            });
        }
    }

    Ok(kernel)
}

/// Runs descriptor `raw` (a checked call's kernel, or its profiling copy) over the grid.
fn run(call: &KernelCall, opts: &EmuOptions, raw: *const RawKernel) -> Result<(), ComputeError> {
    let name = call.kernel.name();
    // Marshal exactly like cuLaunchKernel: an array of pointers, each to a value of its
    // parameter's natural size (one aligned 8-byte slot per argument holds it).
    let mut slots: Vec<u64> = vec![0; call.args.len()];
    for (slot, arg) in slots.iter_mut().zip(&call.args) {
        let bytes = arg.bytes();
        let mut buf = [0u8; 8];
        buf[..bytes.len()].copy_from_slice(&bytes);
        *slot = u64::from_ne_bytes(buf);
    }
    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| (s as *mut u64).cast::<c_void>()).collect();

    let grid = [call.dims.grid.0, call.dims.grid.1, call.dims.grid.2];
    let block = [call.dims.block.0, call.dims.block.1, call.dims.block.2];
    let (schedule, seed) = match opts.schedule {
        Schedule::Forward => (0, 0),
        Schedule::Reverse => (1, 0),
        Schedule::Random(seed) => (2, seed),
    };
    let mut err = vec![0u8; 4096];
    // SAFETY: the descriptor is valid; `ptrs` holds one pointer per parameter to a value of the
    // parameter's size, alive for the call. What the kernel does with its pointer arguments is
    // the caller's contract (host memory it owns), as with a GPU launch.
    let rc = unsafe {
        rt_emu_run(
            raw,
            ptrs.as_mut_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            call.dims.shared_bytes,
            schedule,
            seed,
            STATIC_SHARED_LIMIT_BYTES,
            MAX_SHARED_BYTES_PER_BLOCK,
            err.as_mut_ptr().cast::<c_char>(),
            err.len(),
        )
    };
    if rc != 0 {
        let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
        return Err(ComputeError::Kernel {
            function: name.to_string(),
            detail: format!("{} (schedule {})", String::from_utf8_lossy(&err[..end]), opts.schedule),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_parsing() {
        assert_eq!(
            parse_signature(
                "static const char* RtEmuSig<void(P ...)>::signature() [with P = {const float*, int}]"
            ),
            "const float*, int"
        );
        assert_eq!(parse_signature("x [with P = {}]"), "");
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn arg_fitting() {
        assert!(arg_fits(&Arg::Ptr(0), 8, b'p'));
        assert!(arg_fits(&Arg::U64(0), 8, b'p'));
        assert!(!arg_fits(&Arg::I32(0), 8, b'i'));
        assert!(!arg_fits(&Arg::F32(0.0), 4, b'i'));
        assert!(!arg_fits(&Arg::I32(0), 4, b'f'));
        assert!(arg_fits(&Arg::U32(0), 4, b'i'));
    }
}
