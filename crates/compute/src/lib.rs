//! ragtune-compute: the ground floor of ragtune.
//!
//! [`Device`] picks where work runs (a CUDA GPU when one is usable, otherwise the CPU, and it
//! says why). [`Tensor`] holds data on the host or a device. The [`ops`] are written once and
//! dispatch to a CPU implementation (`cpu/`) or to hand-written CUDA kernels (`kernels/*.cu`,
//! compiled at run time by NVRTC, launched through cudarc) — the one seam between CPU and GPU.

pub mod backend;
pub mod launch;
pub mod dtype;
pub mod error;

pub use dtype::{DType, Element, FloatElement};
pub use error::{ComputeError, Result};
