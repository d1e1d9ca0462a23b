//! [`Instrumented`]: a kernel device wrapped to count what crosses the seam (launches, GEMMs,
//! bytes copied back to the host), to record which kernels ran, to pose as a GPU with less shared
//! memory, and, for tests that must see a wrong device fail, to inject a
//! fault (every GEMM scaled, or every launch of a named kernel dropped).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ragtune_compute::backend::{DeviceMemory, GemmCall, GpuBackend};
use ragtune_compute::launch::KernelCall;
use ragtune_compute::{ComputeError, Device, MemoryStats};

#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn GpuBackend>,
    /// Multiplies every GEMM's alpha (1.0: no fault).
    pub gemm_alpha: f32,
    /// Launches of kernels whose name contains this are dropped (their output stays as allocated).
    pub skip_kernel: Option<&'static str>,
    pub launches: AtomicUsize,
    pub gemms: AtomicUsize,
    pub downloaded_bytes: AtomicUsize,
    /// Reports this per-block shared-memory maximum instead of `inner`'s (a smaller GPU).
    pub max_shared: Option<usize>,
    /// The name of every kernel launched (dropped ones included).
    launched: Mutex<BTreeSet<&'static str>>,
}

impl Instrumented {
    /// A device on `inner`, counted: the counter (to read afterwards) and the device.
    pub fn device(inner: Arc<dyn GpuBackend>) -> (Arc<Instrumented>, Device) {
        let counted = Arc::new(Instrumented::new(inner));
        (counted.clone(), Device::from_backend(counted))
    }

    /// `inner` without faults.
    pub fn new(inner: Arc<dyn GpuBackend>) -> Instrumented {
        Instrumented::faulty(inner, 1.0, None)
    }

    pub fn faulty(
        inner: Arc<dyn GpuBackend>,
        gemm_alpha: f32,
        skip_kernel: Option<&'static str>,
    ) -> Instrumented {
        Instrumented {
            inner,
            gemm_alpha,
            skip_kernel,
            launches: AtomicUsize::new(0),
            gemms: AtomicUsize::new(0),
            downloaded_bytes: AtomicUsize::new(0),
            max_shared: None,
            launched: Mutex::new(BTreeSet::new()),
        }
    }

    /// Launches plus GEMMs so far.
    pub fn work(&self) -> usize {
        self.launches.load(Ordering::Relaxed) + self.gemms.load(Ordering::Relaxed)
    }

    /// The names of the kernels launched so far, sorted.
    pub fn launched(&self) -> Vec<&'static str> {
        self.launched.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    pub fn downloaded(&self) -> usize {
        self.downloaded_bytes.load(Ordering::Relaxed)
    }
}

impl GpuBackend for Instrumented {
    fn describe(&self) -> String {
        // Each fault is a different device for anything keyed by the description.
        if self.gemm_alpha == 1.0 && self.skip_kernel.is_none() {
            self.inner.describe()
        } else {
            format!("{} (GEMM × {}, dropping {:?})", self.inner.describe(), self.gemm_alpha, self.skip_kernel)
        }
    }
    fn alloc(&self, bytes: usize) -> Result<Arc<dyn DeviceMemory>, ComputeError> {
        self.inner.alloc(bytes)
    }
    fn upload(&self, src: &[u8]) -> Result<Arc<dyn DeviceMemory>, ComputeError> {
        self.inner.upload(src)
    }
    fn download(&self, src: &dyn DeviceMemory, dst: &mut [u8]) -> Result<(), ComputeError> {
        self.downloaded_bytes.fetch_add(dst.len(), Ordering::Relaxed);
        self.inner.download(src, dst)
    }
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<(), ComputeError> {
        self.inner.copy(src, dst, bytes)
    }
    fn launch(&self, call: &KernelCall) -> Result<(), ComputeError> {
        self.launches.fetch_add(1, Ordering::Relaxed);
        self.launched.lock().unwrap_or_else(|e| e.into_inner()).insert(call.kernel.name());
        if self.skip_kernel.is_some_and(|k| call.kernel.name().contains(k)) {
            return Ok(());
        }
        self.inner.launch(call)
    }
    fn max_shared_bytes_per_block(&self) -> usize {
        self.max_shared.unwrap_or_else(|| self.inner.max_shared_bytes_per_block())
    }

    fn gemm(&self, call: &GemmCall) -> Result<(), ComputeError> {
        self.gemms.fetch_add(1, Ordering::Relaxed);
        self.inner.gemm(&GemmCall { alpha: call.alpha * self.gemm_alpha, ..*call })
    }
    fn synchronize(&self) -> Result<(), ComputeError> {
        self.inner.synchronize()
    }
    fn memory_stats(&self) -> MemoryStats {
        self.inner.memory_stats()
    }
    fn reset_peak_memory(&self) {
        self.inner.reset_peak_memory()
    }
}
