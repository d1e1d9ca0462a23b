//! The CUDA backend: cudarc for the driver, NVRTC (through `kernel_cache`) for `kernels/*.cu`,
//! cuBLAS for plain GEMMs.
//!
//! Opening a device never panics. cudarc's lazy loader panics when `libcuda.so` is missing, so
//! `backend_for` first asks `is_culib_present()`, then creates the context inside
//! `catch_unwind` as a second guard, checks NVRTC and cuBLAS (whose loader panics the same way
//! when `libcublas.so.13` is missing, so the handle is created here, guarded, not at the first
//! matmul), and compiles one kernel family so that a device which cannot build our kernels is
//! reported as unusable up front. [`versions`] reports the driver, NVRTC and cuBLAS for
//! `ragtune doctor`.

mod blas;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, PushKernelArg,
};

use crate::backend::{DeviceMemory, GemmCall, GpuBackend};
use crate::error::{ComputeError, Result};
use crate::launch::{Arg, KernelCall};
use crate::memory_meter::{MemoryMeter, MemoryStats};

/// The family compiled when a device is opened, to prove NVRTC works for it.
const PROBE_FAMILY: &str = "elementwise";

/// The cuBLAS library cudarc loads (CUDA 13).
const CUBLAS_LIB: &str = "libcublas.so.13";

/// The CUDA libraries on this machine, as `ragtune doctor` reports them: each a version
/// `(major, minor)` or why it is not usable. Never panics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaVersions {
    pub driver: std::result::Result<(i32, i32), String>,
    pub nvrtc: std::result::Result<(i32, i32), String>,
    pub cublas: std::result::Result<(i32, i32), String>,
}

impl CudaVersions {
    /// One line naming every version (part of the self-test's cache key).
    pub fn summary(&self) -> String {
        let v = |r: &std::result::Result<(i32, i32), String>| match r {
            Ok((a, b)) => format!("{a}.{b}"),
            Err(_) => "absent".into(),
        };
        format!("driver {} nvrtc {} cublas {}", v(&self.driver), v(&self.nvrtc), v(&self.cublas))
    }
}

/// The architecture kernels are compiled for on CUDA device `ordinal` (opening it if needed).
pub fn arch_of(ordinal: usize) -> Result<String> {
    backend_for(ordinal).map(|b| b.arch().to_string())
}

/// The driver's CUDA version, NVRTC's and cuBLAS's, probing each library first.
pub fn versions() -> CudaVersions {
    // SAFETY (both probes): only whether the shared library can be opened.
    let driver = if unsafe { cudarc::driver::sys::is_culib_present() } {
        let mut v = 0;
        // SAFETY: writes one int.
        guarded("cuDriverGetVersion", || unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) })
            .map_err(|e| e.to_string())
            .and_then(|r| r.result().map_err(|e| format!("cuDriverGetVersion: {e:?}")))
            .map(|()| (v / 1000, (v % 1000) / 10))
    } else {
        Err("no CUDA driver library (libcuda.so): this machine has no NVIDIA driver".into())
    };
    let nvrtc = crate::nvrtc::nvrtc_status().map_err(|e| e.to_string());
    let cublas = if unsafe { cudarc::cublas::sys::is_culib_present() } {
        use cudarc::cublas::sys::libraryPropertyType_t::{MAJOR_VERSION, MINOR_VERSION};
        let (mut major, mut minor) = (0, 0);
        // SAFETY: each call writes one int; no handle is needed.
        guarded("cublasGetProperty", || unsafe {
            cudarc::cublas::sys::cublasGetProperty(MAJOR_VERSION, &mut major).result()?;
            cudarc::cublas::sys::cublasGetProperty(MINOR_VERSION, &mut minor).result()
        })
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| format!("cublasGetProperty: {e:?}")))
        .map(|()| (major, minor))
    } else {
        Err(format!("{CUBLAS_LIB} was not found on the library path"))
    };
    CudaVersions { driver, nvrtc, cublas }
}

pub struct CudaBackend {
    ordinal: usize,
    name: String,
    arch: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// Created when the device opens (see the module docs).
    blas: Mutex<blas::Blas>,
    /// `RAGTUNE_POISON_ALLOCS=1`: fill fresh allocations with 0xFF (NaN in every float type) so
    /// a test sees any output element a kernel forgot to write.
    poison: bool,
    /// Bytes of the allocations handed out (each [`CudaMemory`] gives its bytes back on drop).
    meter: Arc<MemoryMeter>,
    /// The device's per-block shared-memory maximum with the opt-in.
    max_shared: usize,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The backend of CUDA device `ordinal`, opened once per process and shared.
pub(crate) fn backend_for(ordinal: usize) -> Result<Arc<CudaBackend>> {
    static OPEN: OnceLock<Mutex<HashMap<usize, Arc<CudaBackend>>>> = OnceLock::new();
    let mut open = OPEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = open.get(&ordinal) {
        return Ok(b.clone());
    }
    let backend = Arc::new(CudaBackend::open(ordinal)?);
    open.insert(ordinal, backend.clone());
    Ok(backend)
}

fn unavailable(msg: impl Into<String>) -> ComputeError {
    ComputeError::CudaUnavailable(msg.into())
}

/// Run a cudarc call that may panic inside its lazy library loader.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        unavailable(format!("{what} failed inside the CUDA library loader: {msg}"))
    })
}

impl CudaBackend {
    fn open(ordinal: usize) -> Result<CudaBackend> {
        // SAFETY: only probes whether the shared library can be opened.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable(
                "no CUDA driver library (libcuda.so) was found: this machine has no NVIDIA driver",
            ));
        }
        let count = guarded("cuDeviceGetCount", CudaContext::device_count)?
            .map_err(|e| unavailable(format!("the CUDA driver reports no usable device ({e})")))?;
        if count <= 0 {
            return Err(unavailable("the CUDA driver is installed but sees no GPU"));
        }
        if ordinal >= count as usize {
            return Err(unavailable(format!(
                "cuda:{ordinal} was asked for, but only {count} GPU(s) exist (cuda:0..cuda:{})",
                count - 1
            )));
        }
        let ctx = guarded("cuCtxCreate", || CudaContext::new(ordinal))?
            .map_err(|e| unavailable(format!("cannot open cuda:{ordinal}: {e}")))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| unavailable(format!("cannot read the compute capability of cuda:{ordinal}: {e}")))?;
        // Hopper's arch-specific features (wgmma, TMA) need sm_90a exactly.
        let arch = if (major, minor) == (9, 0) { "sm_90a".to_string() } else { format!("sm_{major}{minor}") };
        use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN;
        let max_shared =
            ctx.attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN).map_err(|e| {
                unavailable(format!("cannot read the shared-memory limit of cuda:{ordinal} ({name}): {e}"))
            })? as usize;
        crate::nvrtc::nvrtc_status()
            .map_err(|e| unavailable(format!("cuda:{ordinal} ({name}) is present, but {e}")))?;
        // SAFETY: only probes whether the shared library can be opened.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(unavailable(format!(
                "cuda:{ordinal} ({name}) is present, but cuBLAS ({CUBLAS_LIB}) was not found: install the CUDA 13 \
                 cuBLAS library (the nvidia-cublas pip wheel or the toolkit) and put it on the library path, or \
                 use --device cpu"
            )));
        }
        // Raw addresses travel in kernel arguments, so cudarc's per-slice event tracking would
        // see none of the uses; ordering comes from the single stream instead.
        // SAFETY: called before any allocation on this context.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = guarded("cublasCreate", || blas::Blas::new(stream.clone()))?
            .map_err(|e| unavailable(format!("cuda:{ordinal} ({name}) is present, but {e}")))?;
        let backend = CudaBackend {
            ordinal,
            name,
            arch,
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            blas: Mutex::new(blas),
            poison: std::env::var("RAGTUNE_POISON_ALLOCS").is_ok_and(|v| v == "1"),
            meter: Arc::new(MemoryMeter::new()),
            max_shared,
        };
        backend
            .module(PROBE_FAMILY)
            .map_err(|e| unavailable(format!("cuda:{ordinal} cannot build ragtune's kernels: {e}")))?;
        Ok(backend)
    }

    /// The architecture kernels are compiled for (`sm_90a`, `sm_80`, ...).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    fn module(&self, family: &str) -> Result<Arc<CudaModule>> {
        let source = crate::kernel_sources::family(family).ok_or_else(|| ComputeError::Invalid {
            op: "kernel launch",
            detail: format!("no kernel family `{family}` (kernels/{family}.cu) is built into this binary"),
        })?;
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(source.family) {
            return Ok(m.clone());
        }
        let image = crate::kernel_cache::compiled(source.family, &self.arch)?;
        let module = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(image.cubin.clone()))
            .map_err(|e| ComputeError::cuda(format!("loading kernels/{family}.cu for {}", self.arch), e))?;
        modules.insert(source.family, module.clone());
        Ok(module)
    }

    fn function(&self, family: &str, name: &str) -> Result<CudaFunction> {
        let key = format!("{family}/{name}");
        if let Some(f) = self.functions.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(f.clone());
        }
        let f = self
            .module(family)?
            .load_function(name)
            .map_err(|e| ComputeError::cuda(format!("kernels/{family}.cu has no kernel `{name}`"), e))?;
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).insert(key, f.clone());
        Ok(f)
    }
}

#[derive(Debug)]
struct CudaMemory {
    /// Owns the allocation (freed, stream-ordered, on drop); kernels see only `addr`.
    _allocation: CudaSlice<u8>,
    addr: u64,
    len: usize,
    meter: Arc<MemoryMeter>,
}

impl Drop for CudaMemory {
    fn drop(&mut self) {
        self.meter.freed(self.len);
    }
}

impl DeviceMemory for CudaMemory {
    fn addr(&self) -> u64 {
        self.addr
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl CudaBackend {
    fn wrap(&self, slice: CudaSlice<u8>, len: usize) -> Arc<dyn DeviceMemory> {
        let addr = {
            let (addr, _sync) = slice.device_ptr(&self.stream);
            addr
        };
        self.meter.allocated(len);
        Arc::new(CudaMemory { addr, len, _allocation: slice, meter: self.meter.clone() })
    }

    /// Make this device's context current on the calling thread before a raw driver or cuBLAS
    /// call, which use whatever context is current (cudarc's own calls bind it themselves). A
    /// model call runs on whichever rayon worker picked it up (`cpu::pool`), so such a call can
    /// be the first CUDA call on its thread.
    fn make_current(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| ComputeError::cuda(format!("making cuda:{}'s context current", self.ordinal), e))
    }
}

impl GpuBackend for CudaBackend {
    fn describe(&self) -> String {
        format!("{} ({}, cuda:{})", self.name, self.arch, self.ordinal)
    }

    fn alloc(&self, bytes: usize) -> Result<Arc<dyn DeviceMemory>> {
        // A zero-byte cuMemAlloc is an error; keep one byte so every tensor has an address.
        // SAFETY: the contents are uninitialised; every op writes its whole output.
        let slice = unsafe { self.stream.alloc::<u8>(bytes.max(1)) }.map_err(|e| {
            ComputeError::cuda(format!("allocating {bytes} bytes on cuda:{}", self.ordinal), e)
        })?;
        let mem = self.wrap(slice, bytes);
        if self.poison {
            // SAFETY: `mem` is a fresh allocation of at least `bytes.max(1)` bytes on this stream.
            unsafe {
                cudarc::driver::result::memset_d8_async(
                    mem.addr(),
                    0xFF,
                    bytes.max(1),
                    self.stream.cu_stream(),
                )
                .map_err(|e| ComputeError::cuda("poisoning a fresh allocation", e))?;
            }
        }
        Ok(mem)
    }

    fn upload(&self, src: &[u8]) -> Result<Arc<dyn DeviceMemory>> {
        if src.is_empty() {
            return self.alloc(0);
        }
        let slice = self.stream.clone_htod(src).map_err(|e| {
            ComputeError::cuda(format!("copying {} bytes to cuda:{}", src.len(), self.ordinal), e)
        })?;
        Ok(self.wrap(slice, src.len()))
    }

    fn download(&self, src: &dyn DeviceMemory, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        if dst.len() > src.len() {
            return Err(ComputeError::invalid(
                "download",
                format!("asked for {} bytes from a {}-byte buffer", dst.len(), src.len()),
            ));
        }
        self.make_current()?;
        // SAFETY: `src` is a live allocation of this context of at least dst.len() bytes, and
        // the stream orders the copy after every kernel that wrote it.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(dst, src.addr(), self.stream.cu_stream())
                .map_err(|e| ComputeError::cuda("copying from the GPU", e))?;
        }
        self.synchronize()
    }

    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.make_current()?;
        // SAFETY: the caller passes ranges inside live allocations of this context; the copy
        // is queued on the one stream, after every kernel that wrote `src`.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream())
                .map_err(|e| ComputeError::cuda(format!("copying {bytes} bytes on cuda:{}", self.ordinal), e))
        }
    }

    fn launch(&self, call: &KernelCall) -> Result<()> {
        let func = self.function(call.kernel.family(), call.kernel.name())?;
        // Above 48 KiB of dynamic shared memory the driver refuses the launch unless the kernel
        // opted in (cudaFuncSetAttribute MaxDynamicSharedMemorySize); the emulator refuses it too.
        if call.dims.shared_bytes > 48 * 1024 {
            use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            let bytes = call.dims.shared_bytes;
            guarded("cuFuncSetAttribute", || {
                func.set_attribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes as i32)
            })?
            .map_err(|e| {
                ComputeError::cuda(
                    format!(
                        "opting {} in to {bytes} bytes of dynamic shared memory (over this device's \
                         per-block maximum? shrink the tiles)",
                        call.kernel.name()
                    ),
                    e,
                )
            })?;
        }
        let mut builder = self.stream.launch_builder(&func);
        for arg in &call.args {
            match arg {
                Arg::Ptr(v) | Arg::U64(v) => builder.arg(v),
                Arg::I64(v) => builder.arg(v),
                Arg::I32(v) => builder.arg(v),
                Arg::U32(v) => builder.arg(v),
                Arg::F32(v) => builder.arg(v),
            };
        }
        let d = call.dims;
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: d.grid,
            block_dim: d.block,
            shared_mem_bytes: d.shared_bytes,
        };
        // SAFETY: the argument list is built by the op for exactly this kernel's signature, and
        // every pointer is a live allocation of this context (checked by the op's shape logic).
        unsafe { builder.launch(cfg) }
            .map_err(|e| ComputeError::cuda(format!("launching {} ({:?})", call.kernel.name(), d), e))?;
        Ok(())
    }

    fn max_shared_bytes_per_block(&self) -> usize {
        self.max_shared
    }

    fn gemm(&self, call: &GemmCall) -> Result<()> {
        self.make_current()?;
        self.blas.lock().unwrap_or_else(|e| e.into_inner()).gemm(call)
    }

    fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| ComputeError::cuda(format!("synchronizing cuda:{}", self.ordinal), e))
    }

    fn memory_stats(&self) -> MemoryStats {
        self.meter.stats()
    }

    fn reset_peak_memory(&self) {
        self.meter.reset_peak();
    }

    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let event = |what: &str| {
            self.stream.record_event(timing).map_err(|e| {
                ComputeError::cuda(format!("recording the {what} event on cuda:{}", self.ordinal), e)
            })
        };
        let start = event("start")?;
        work()?;
        let end = event("end")?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(|e| ComputeError::cuda(format!("timing events on cuda:{}", self.ordinal), e))?;
        Ok(f64::from(ms))
    }
}
