//! The GPU-side seam: what a device that runs ragtune's kernels must provide.
//!
//! Two implementations exist: the CUDA backend (`cuda/`, cudarc + NVRTC + cuBLAS) and, in tests,
//! the CPU emulation of the kernels (`ragtune-kernel-emu`), which keeps "device" memory on the
//! host and runs `kernels/*.cu` compiled as C++. The ops in `gpu/` are written once against this
//! trait, so the emulator exercises exactly the launches a GPU will see.

use std::fmt::Debug;
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::Result;
use crate::launch::KernelCall;
use crate::memory_meter::MemoryStats;

/// A block of device memory. Dropping the last handle frees it.
pub trait DeviceMemory: Send + Sync + Debug {
    /// The address kernels receive (a device address on a GPU, a host address on the emulator).
    fn addr(&self) -> u64;
    /// Size in bytes.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A strided-batched GEMM in row-major terms:
/// `C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]` with `C[b]` of shape `m × n`.
/// `op(A)` is `m × k` (stored `k × m` when `trans_a`), `op(B)` is `k × n` (stored `n × k` when
/// `trans_b`). Strides are in elements between consecutive batch matrices (0 broadcasts).
/// A and B share `in_dtype`; accumulation is f32; C has `out_dtype`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmCall {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub trans_a: bool,
    pub trans_b: bool,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    pub in_dtype: DType,
    pub out_dtype: DType,
    pub alpha: f32,
    pub beta: f32,
}

/// A device that runs ragtune's kernels.
pub trait GpuBackend: Send + Sync + Debug {
    /// Human-readable name, e.g. `NVIDIA H100 80GB HBM3 (sm_90, cuda:0)`.
    fn describe(&self) -> String;
    /// Allocate `bytes` bytes (contents unspecified).
    fn alloc(&self, bytes: usize) -> Result<Arc<dyn DeviceMemory>>;
    /// Allocate and fill from host bytes.
    fn upload(&self, src: &[u8]) -> Result<Arc<dyn DeviceMemory>>;
    /// Copy a whole buffer (or its first `dst.len()` bytes) to the host; waits for prior work.
    fn download(&self, src: &dyn DeviceMemory, dst: &mut [u8]) -> Result<()>;
    /// Copy `bytes` bytes from device address `src` to `dst` (each inside a live allocation of
    /// this device; the ranges must not overlap), ordered after all queued work.
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()>;
    /// Launch one kernel of `kernels/<family>.cu`.
    fn launch(&self, call: &KernelCall) -> Result<()>;
    /// Run a GEMM (cuBLAS on a GPU).
    fn gemm(&self, call: &GemmCall) -> Result<()>;
    /// The most shared memory one block may use, opt-in included (the driver's
    /// `MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`: 227 KiB on an H100, 163 KiB on an A100, 99 KiB on
    /// sm_86/sm_89 GPUs). Launch code sizes its tiles or picks another path by it.
    fn max_shared_bytes_per_block(&self) -> usize;
    /// Wait for all queued work.
    fn synchronize(&self) -> Result<()>;
    /// Bytes of this backend's allocations live now and at the peak since the last
    /// [`GpuBackend::reset_peak_memory`] (see [`crate::memory_meter`] for what is counted).
    fn memory_stats(&self) -> MemoryStats;
    /// Start a new peak measurement from what is live now.
    fn reset_peak_memory(&self);
    /// Milliseconds of device time taken by the work `work` queues. The default is host wall
    /// time from a synchronised start to a synchronised end (the emulator, where launches run
    /// synchronously); the CUDA backend records events around the work on its stream instead, so
    /// launch latency and the final synchronisation stay out of short kernels' times.
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.synchronize()?;
        let start = std::time::Instant::now();
        work()?;
        self.synchronize()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }
}
