//! The typed error of ragtune-runtime. Each variant names the file, field or tensor at fault and,
//! where there is one, what is supported instead.

use std::path::PathBuf;

use ragtune_compute::ComputeError;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An op failed (shape, dtype or device mismatch, a CUDA error ...).
    #[error(transparent)]
    Compute(#[from] ComputeError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file's bytes are not what its format requires (truncated, corrupt, bad JSON ...).
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
    /// A `config.json` field is missing, of the wrong type, or has a value ragtune cannot run.
    #[error("{path}: field `{field}`: {detail}")]
    Config { path: String, field: String, detail: String },
    /// A weight is missing, misshapen, or of a type that cannot be read.
    #[error("tensor `{name}`: {detail}")]
    Tensor { name: String, detail: String },
    /// A feature of a model or file that ragtune does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An adapter feature ragtune does not implement (DoRA, `modules_to_save`, ...), in a file.
    #[error("{path}: unsupported adapter feature `{feature}`: {detail}")]
    UnsupportedFeature { path: String, feature: String, detail: String },
    /// A bad request: an empty or too long prompt, a bad sampling parameter ...
    #[error("{0}")]
    Input(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl RuntimeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl ToString, detail: impl Into<String>) -> Self {
        RuntimeError::Format { path: path.to_string(), detail: detail.into() }
    }
    pub(crate) fn tensor(name: impl Into<String>, detail: impl Into<String>) -> Self {
        RuntimeError::Tensor { name: name.into(), detail: detail.into() }
    }
    pub(crate) fn unsupported_feature(
        path: impl std::fmt::Display,
        feature: &str,
        detail: impl Into<String>,
    ) -> Self {
        RuntimeError::UnsupportedFeature {
            path: path.to_string(),
            feature: feature.to_string(),
            detail: detail.into(),
        }
    }
    pub(crate) fn input(detail: impl Into<String>) -> Self {
        RuntimeError::Input(detail.into())
    }
}
