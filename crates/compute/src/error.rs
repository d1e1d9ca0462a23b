//! The typed error of ragtune-compute. Every variant names the operation and the operands, and
//! where there is one, the fix.

use std::path::PathBuf;

pub type Result<T, E = ComputeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// Operand shapes do not fit together.
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    /// Operand dtypes do not fit together, or the op does not support a dtype.
    #[error("{op}: dtype mismatch: {detail}")]
    DType { op: &'static str, detail: String },
    /// Operands live on different devices.
    #[error("{op}: operands are on different devices ({detail}); copy them with Tensor::to_device first")]
    Device { op: &'static str, detail: String },
    /// A bad argument that is not a shape or dtype (k = 0, eps < 0, a NaN scale ...).
    #[error("{op}: {detail}")]
    Invalid { op: &'static str, detail: String },
    /// CUDA cannot be used here; the reason says which piece is missing.
    #[error("CUDA is not usable: {0}")]
    CudaUnavailable(String),
    /// The CUDA driver, cuBLAS or NVRTC returned an error.
    #[error("CUDA error in {context}: {message}")]
    Cuda { context: String, message: String },
    /// NVRTC rejected a kernel source; `log` is NVRTC's own log.
    #[error("NVRTC could not compile kernels/{family}.cu for {arch}:\n{log}")]
    Compile { family: String, arch: String, log: String },
    /// A kernel run on the CPU emulator reported a fault (out-of-bounds access, barrier misuse...).
    #[error("kernel {function} failed: {detail}")]
    Kernel { function: String, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file's contents are not what its format requires.
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
}

impl ComputeError {
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        ComputeError::Shape { op, detail: detail.into() }
    }
    pub(crate) fn dtype(op: &'static str, detail: impl Into<String>) -> Self {
        ComputeError::DType { op, detail: detail.into() }
    }
    pub(crate) fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        ComputeError::Invalid { op, detail: detail.into() }
    }
    pub(crate) fn cuda(context: impl Into<String>, message: impl ToString) -> Self {
        ComputeError::Cuda { context: context.into(), message: message.to_string() }
    }
}
