//! ragtune-compute: the ground floor of ragtune.
//!
//! [`Device`] picks where work runs (a CUDA GPU when one is usable, otherwise the CPU, and it
//! says why). [`Tensor`] holds data on the host or a device. The [`ops`] are written once and
//! dispatch to a CPU implementation (`cpu/`) or to hand-written CUDA kernels (`kernels/*.cu`,
//! compiled at run time by NVRTC, launched through cudarc) — the one seam between CPU and GPU.
//!
//! ```
//! use ragtune_compute::{Device, Tensor, ops};
//! let device = Device::auto().device;
//! let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?.to_device(&device)?;
//! let w = Tensor::from_slice(&[1.0f32, 1.0], &[2])?.to_device(&device)?;
//! let y = ops::rms_norm(&x, &w, 1e-6)?;
//! assert_eq!(y.shape(), &[2, 2]);
//! # Ok::<(), ragtune_compute::ComputeError>(())
//! ```

pub mod atomic_file;
pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod dtype;
pub mod error;
mod gpu;
pub mod host;
pub mod kernel_cache;
pub mod kernel_sources;
pub mod kernels;
pub mod launch;
pub mod memory_meter;
pub mod nvrtc;
pub mod ops;
pub mod safetensors_io;
pub mod selftest;
pub mod tensor;

pub use device::{Device, DeviceChoice};
pub use dtype::{DType, Element, FloatElement};
pub use error::{ComputeError, Result};
pub use host::{ByteOwner, HostBuffer};
pub use memory_meter::{MemoryMeter, MemoryStats};
pub use tensor::Tensor;

/// The README's Rust example is compiled and run as a doctest, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExample;
