//! The typed error of ragtune-trainer: every variant names the file, field or tensor at fault
//! and, where there is one, the fix.

use std::path::PathBuf;

use ragtune_compute::ComputeError;
use ragtune_runtime::RuntimeError;

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An op failed (shape, dtype or device mismatch ...).
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// Loading the base model failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file's contents are not what its format requires (bad JSON, a misshapen tensor ...).
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
    /// An adapter feature ragtune does not implement (DoRA, `modules_to_save`, ...).
    #[error("{path}: unsupported adapter feature `{feature}`: {detail}")]
    Unsupported { path: String, feature: String, detail: String },
    /// A bad request: a batch that does not fit the model, a bad hyper-parameter ...
    #[error("{0}")]
    Input(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl std::fmt::Display, detail: impl Into<String>) -> Self {
        TrainError::Format { path: path.to_string(), detail: detail.into() }
    }
    pub(crate) fn input(detail: impl Into<String>) -> Self {
        TrainError::Input(detail.into())
    }
}
