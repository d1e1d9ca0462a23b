//! [`Device`]: where tensors live and ops run. `Device::auto()` picks a usable CUDA GPU, otherwise
//! the CPU, and says why; it never panics (cudarc panics when `libcuda` is missing, so the CUDA
//! backend probes first and guards context creation — see `cuda/`).

use std::fmt;
use std::sync::Arc;

use crate::backend::GpuBackend;
use crate::error::{ComputeError, Result};
use crate::memory_meter::MemoryStats;
use crate::tensor::same_backend;

#[derive(Clone)]
pub enum Device {
    /// The host CPU: ops run as Rust (rayon, the `gemm` crate).
    Cpu,
    /// A device that runs `kernels/*.cu`: a CUDA GPU, or the CPU emulation of the kernels in tests.
    Gpu(Arc<dyn GpuBackend>),
}

/// What [`Device::auto`] chose, and why it is not a GPU when it is not.
#[derive(Clone, Debug)]
pub struct DeviceChoice {
    pub device: Device,
    /// Why the CPU was chosen (no driver library, no device, no NVRTC, a compile failure, or
    /// `RAGTUNE_DEVICE=cpu`); `None` when a GPU was chosen.
    pub cpu_reason: Option<String>,
}

impl Device {
    pub fn cpu() -> Device {
        Device::Cpu
    }

    /// The CUDA device `ordinal`, or the reason it cannot be used.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        crate::cuda::backend_for(ordinal).map(|b| Device::Gpu(b as Arc<dyn GpuBackend>))
    }

    /// A device backed by any [`GpuBackend`] (the kernel emulator in tests).
    pub fn from_backend(backend: Arc<dyn GpuBackend>) -> Device {
        Device::Gpu(backend)
    }

    /// `RAGTUNE_DEVICE` (`cpu`, `cuda`, `cuda:N`, `auto`) when set, otherwise the first CUDA
    /// device when usable, otherwise the CPU — with the reason.
    pub fn auto() -> DeviceChoice {
        let requested = std::env::var("RAGTUNE_DEVICE").ok();
        Device::choose(requested.as_deref().unwrap_or("auto"))
    }

    /// Like [`Device::auto`] for an explicit spec (`cpu`, `cuda`, `cuda:N`, `auto`); an unknown
    /// spec falls back to the CPU with a reason naming it.
    ///
    /// `auto` takes a GPU only once it has passed the self-test ([`crate::selftest::gate`]:
    /// run the first time on this machine, remembered after); an explicit `cuda` is taken as
    /// asked.
    pub fn choose(spec: &str) -> DeviceChoice {
        let cpu = |reason: String| DeviceChoice { device: Device::Cpu, cpu_reason: Some(reason) };
        let automatic = matches!(spec.trim().to_ascii_lowercase().as_str(), "auto" | "");
        match Device::parse_spec(spec) {
            Ok(None) => cpu("the CPU was asked for".into()),
            Ok(Some(ordinal)) => match Device::cuda(ordinal) {
                Ok(device) if automatic => {
                    match crate::selftest::gate(&device, &crate::cuda::versions().summary()) {
                        Ok(()) => DeviceChoice { device, cpu_reason: None },
                        Err(why) => cpu(why),
                    }
                }
                Ok(device) => DeviceChoice { device, cpu_reason: None },
                Err(e) => cpu(e.to_string()),
            },
            Err(e) => cpu(e.to_string()),
        }
    }

    /// Parse a device spec strictly: `Ok(None)` = CPU, `Ok(Some(n))` = CUDA device n.
    pub fn parse_spec(spec: &str) -> Result<Option<usize>> {
        let s = spec.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(None),
            "cuda" | "gpu" | "auto" | "" => Ok(Some(0)),
            _ => s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()).map(Some).ok_or_else(|| {
                ComputeError::Invalid {
                    op: "device",
                    detail: format!("unknown device `{spec}`: use cpu, cuda, cuda:N or auto"),
                }
            }),
        }
    }

    /// A device for an explicit user request: `cpu` and `auto` never fail; `cuda`/`cuda:N` fail
    /// with the reason when that GPU is not usable.
    pub fn from_spec(spec: &str) -> Result<Device> {
        if spec.trim().eq_ignore_ascii_case("auto") {
            return Ok(Device::auto().device);
        }
        match Device::parse_spec(spec)? {
            None => Ok(Device::Cpu),
            Some(n) => Device::cuda(n),
        }
    }

    /// The dtype model weights load in when the user does not choose (`--dtype auto`): bf16 on a
    /// GPU — tensor cores and half the bytes of f32 per decode step, with f32 accumulation in
    /// every kernel — and f32 on the CPU, where the GEMMs widen bf16 to f32 anyway and f32 keeps
    /// results exact. Training keeps f32 master weights either way: LoRA adapters always train
    /// in f32 over the frozen base, and full fine-tuning needs f32 weights.
    pub fn default_weight_dtype(&self) -> crate::dtype::DType {
        match self {
            Device::Cpu => crate::dtype::DType::F32,
            Device::Gpu(_) => crate::dtype::DType::BF16,
        }
    }

    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }

    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            Device::Gpu(b) => b.describe(),
        }
    }

    /// Whether two handles name the same device.
    pub fn same_as(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => same_backend(a, b),
            _ => false,
        }
    }

    /// Device memory held by ragtune's allocations on this device, now and at the peak since the
    /// last [`Device::reset_peak_memory`]; `None` on the CPU, where host memory is the process's
    /// resident set (read it from the OS).
    pub fn memory_stats(&self) -> Option<MemoryStats> {
        match self {
            Device::Cpu => None,
            Device::Gpu(b) => Some(b.memory_stats()),
        }
    }

    /// Start a new peak measurement of [`Device::memory_stats`] (nothing to do on the CPU).
    pub fn reset_peak_memory(&self) {
        if let Device::Gpu(b) = self {
            b.reset_peak_memory();
        }
    }

    /// Milliseconds `work` takes on this device: CUDA events around the work it queues on a GPU
    /// ([`GpuBackend::time_ms`]), wall time on the CPU (where ops finish before they return).
    pub fn time_ms(&self, mut work: impl FnMut() -> Result<()>) -> Result<f64> {
        match self {
            Device::Cpu => {
                let start = std::time::Instant::now();
                work()?;
                Ok(start.elapsed().as_secs_f64() * 1e3)
            }
            Device::Gpu(b) => b.time_ms(&mut work),
        }
    }

    /// Wait for all work queued on the device.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(b) => b.synchronize(),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(b) => f.write_str(&b.describe()),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
