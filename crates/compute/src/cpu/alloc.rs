//! How freed host memory is kept: a process-wide setting of glibc's allocator, for the programs
//! that run ops on the CPU (the `ragtune` CLI, the bench runner).
//!
//! Every op returns a fresh tensor, and a training step frees and re-allocates the same buffers
//! of a few MiB each time. With glibc's defaults those buffers come from `mmap` (or the heap top
//! trimmed after each free), so each step faults the pages in again and the kernel zeroes them:
//! six of the demo's LoRA steps (bench/examples/demo_step, 2-core AMD EPYC) faulted 150–230k
//! pages with glibc's defaults and 46k with this setting; perf put ~12% of a step in page faults
//! and zeroing.
//! Fixing the mmap threshold at 32 MiB (glibc's maximum) and trimming only above 1 GiB free keeps
//! those buffers in the process for reuse; the peak resident memory is unchanged, only freed
//! memory below 1 GiB is not handed back to the system until the process ends.

/// Keep freed buffers for reuse (see the module doc); returns whether the allocator took the
/// setting (false off glibc, where this does nothing). Call once, early, from a program's main.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's thresholds; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_setting() {
        assert!(super::keep_freed_memory());
    }
}
