//! The emulated profiler: exact memory-access properties of one launch, from every lane's every
//! load and store.
//!
//! Each kernel file is compiled twice (see `build.rs`): the plain copy [`crate::launch`] runs,
//! and a *profiling copy* in which gcc's access instrumentation calls the profiler
//! (`emu/profile.cpp`) on every load and store. [`profile_launch`] runs the profiling copy and
//! returns a [`LaunchProfile`]: global bytes and 32-byte sectors per warp-wide access (load
//! efficiency), shared-memory bank-conflict degree, atomics, barriers, `mma` and `ldmatrix`
//! instructions. These are properties of the addresses alone — no timing is modelled.
//! [`EmuBackend::start_profiling`](crate::EmuBackend::start_profiling) profiles every launch an
//! op makes through the backend.
//!
//! Unavailable in the AddressSanitizer build (libasan owns the hook names): see
//! [`profiling_available`].

use ragtune_compute::ComputeError;
use ragtune_compute::launch::KernelCall;

use crate::{EmuOptions, checked_kernel, prof_registry, run};

/// The C side's totals (`RtEmuProfile` in emu/profile.h; same field order).
#[repr(C)]
#[derive(Default)]
struct RawProfile {
    global_loads: u64,
    global_load_bytes: u64,
    global_load_sector_bytes: u64,
    global_stores: u64,
    global_store_bytes: u64,
    global_store_sector_bytes: u64,
    shared_accesses: u64,
    shared_ways_sum: u64,
    shared_load_bytes: u64,
    shared_store_bytes: u64,
    global_atomics: u64,
    barriers: u64,
    mma: u64,
    ldmatrix: u64,
    cp_async_bytes: u64,
}

unsafe extern "C" {
    fn rt_emu_prof_start(ranges: *const u64, n: usize);
    fn rt_emu_prof_stop(out: *mut RawProfile);
}

/// What one profiled launch did, summed over its blocks. A *warp-wide access* is one
/// instruction executed by the lanes of a warp together (grouped by call site and pass).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaunchProfile {
    pub kernel: String,
    pub family: String,
    /// Warp-wide global loads.
    pub global_loads: u64,
    /// Distinct bytes each warp-wide global load read, summed (a value several lanes of one
    /// access read counts once).
    pub global_load_bytes: u64,
    /// 32 bytes per distinct sector each warp-wide global load touched, summed.
    pub global_load_sector_bytes: u64,
    pub global_stores: u64,
    pub global_store_bytes: u64,
    pub global_store_sector_bytes: u64,
    /// Warp-wide shared-memory loads and stores.
    pub shared_accesses: u64,
    /// Sum over them of the bank-conflict degree (1 = conflict free).
    pub shared_ways_sum: u64,
    /// Bytes the lanes loaded from / stored to shared memory.
    pub shared_load_bytes: u64,
    pub shared_store_bytes: u64,
    /// Atomic operations on global memory, one per thread.
    pub global_atomics: u64,
    /// Block-wide barriers completed (one per barrier per block).
    pub barriers: u64,
    /// Warp-wide `mma.sync` instructions (m16n8k16: 4096 flops each).
    pub mma: u64,
    /// Warp-wide `ldmatrix` instructions.
    pub ldmatrix: u64,
    /// Bytes copied global → shared by `cp.async`.
    pub cp_async_bytes: u64,
}

impl LaunchProfile {
    /// Bytes the lanes used / bytes of the sectors they touched, over all global loads (1.0 for
    /// a launch without global loads).
    pub fn load_efficiency(&self) -> f64 {
        ratio(self.global_load_bytes, self.global_load_sector_bytes)
    }

    /// The same for global stores.
    pub fn store_efficiency(&self) -> f64 {
        ratio(self.global_store_bytes, self.global_store_sector_bytes)
    }

    /// Mean bank-conflict degree over warp-wide shared accesses: the most distinct 4-byte words
    /// one bank serves in one phase (1.0 = conflict free, also for a launch without any).
    pub fn smem_bank_conflict_ways(&self) -> f64 {
        if self.shared_accesses == 0 {
            1.0
        } else {
            self.shared_ways_sum as f64 / self.shared_accesses as f64
        }
    }

    /// Floating-point operations the tensor cores did (`mma` × 2·16·8·16).
    pub fn mma_flops(&self) -> u64 {
        self.mma * 2 * 16 * 8 * 16
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 1.0 } else { num as f64 / den as f64 }
}

/// Whether this build has the profiling copies (not under `RAGTUNE_EMU_SANITIZE=address`).
pub fn profiling_available() -> bool {
    !prof_registry().is_empty()
}

/// Runs `call` like [`crate::launch`], on the kernel's profiling copy, and reports its accesses.
/// `global` lists the launch's global memory as `(address, length in bytes)`: accesses there
/// are global, accesses to the block's shared memory are shared, anything else (the threads'
/// stacks) is not counted.
pub fn profile_launch(
    call: &KernelCall,
    opts: &EmuOptions,
    global: &[(u64, usize)],
) -> Result<LaunchProfile, ComputeError> {
    let kernel = checked_kernel(call)?;
    let Some(copy) = prof_registry().iter().find(|k| k.name == kernel.name) else {
        return Err(ComputeError::Invalid {
            op: "kernel-emu profile",
            detail: if profiling_available() {
                format!("kernel `{}` has no profiling copy", kernel.name)
            } else {
                "this build has no profiling copies of the kernels (the AddressSanitizer build); build \
                 without RAGTUNE_EMU_SANITIZE"
                    .to_string()
            },
        });
    };
    let ranges: Vec<u64> = global.iter().flat_map(|&(a, n)| [a, n as u64]).collect();
    let mut raw = RawProfile::default();
    // The C side's session state is per thread and the launch runs its blocks on this thread,
    // so sessions on other threads, and ordinary launches beside them, do not mix in.
    // SAFETY: `ranges` holds `global.len()` (address, length) pairs and outlives the session,
    // which stop ends; `raw` matches RtEmuProfile's layout.
    let result = unsafe {
        rt_emu_prof_start(ranges.as_ptr(), global.len());
        let result = run(call, opts, copy.raw);
        rt_emu_prof_stop(&mut raw);
        result
    };
    result?;
    Ok(LaunchProfile {
        kernel: kernel.name.to_string(),
        family: kernel.family.to_string(),
        global_loads: raw.global_loads,
        global_load_bytes: raw.global_load_bytes,
        global_load_sector_bytes: raw.global_load_sector_bytes,
        global_stores: raw.global_stores,
        global_store_bytes: raw.global_store_bytes,
        global_store_sector_bytes: raw.global_store_sector_bytes,
        shared_accesses: raw.shared_accesses,
        shared_ways_sum: raw.shared_ways_sum,
        shared_load_bytes: raw.shared_load_bytes,
        shared_store_bytes: raw.shared_store_bytes,
        global_atomics: raw.global_atomics,
        barriers: raw.barriers,
        mma: raw.mma,
        ldmatrix: raw.ldmatrix,
        cp_async_bytes: raw.cp_async_bytes,
    })
}
