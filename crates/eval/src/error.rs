//! The experiment's errors. Each names what was wrong — the file and line, the setting, the
//! arm — and how to fix it; errors from the layers below are wrapped with their own messages.

use std::path::Path;

/// Anything that stops an experiment.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A setting or a combination of settings that cannot run.
    #[error("{0}")]
    Config(String),
    /// Malformed input data: `at` is `file` or `file:line`.
    #[error("{at}: {message}")]
    Data { at: String, message: String },
    /// Training diverged or could not start.
    #[error("{0}")]
    Training(String),
    /// Writing the report failed.
    #[error(transparent)]
    Report(#[from] crate::report::write::ReportError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Runtime(#[from] ragtune_runtime::RuntimeError),
    #[error(transparent)]
    Train(#[from] ragtune_trainer::TrainError),
    #[error(transparent)]
    Index(#[from] ragtune_index::IndexError),
    #[error(transparent)]
    Compute(#[from] ragtune_compute::ComputeError),
    /// An interval that could not be computed: no values, zero resamples, a NaN score.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    pub fn config(message: impl Into<String>) -> EvalError {
        EvalError::Config(message.into())
    }

    pub fn training(message: impl Into<String>) -> EvalError {
        EvalError::Training(message.into())
    }

    /// Bad data at `at` (`path` or `path:line`).
    pub fn data(at: impl std::fmt::Display, message: impl Into<String>) -> EvalError {
        EvalError::Data { at: at.to_string(), message: message.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> EvalError {
        EvalError::Io { path: path.display().to_string(), source }
    }
}
