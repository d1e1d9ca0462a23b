//! The typed error of ragtune-index. Every variant names the thing that is wrong (the argument,
//! the row and id, the file) and says how to fix it. An operation that returns an error has
//! changed nothing: indexes validate everything before they modify their state.

use std::path::PathBuf;

use ragtune_compute::ComputeError;

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Vectors or queries whose width is not the index's dimension.
    #[error(
        "{what} have dimension {got}, but the index holds {expected}-dimensional vectors: pass an [n, {expected}] \
         array (or build an index with dim = {got})"
    )]
    Dimension { what: &'static str, expected: usize, got: usize },
    /// Vectors or queries that are not a 2-D `[n, dim]` array of floats.
    #[error("{what}: {detail}")]
    Shape { what: &'static str, detail: String },
    /// NaN or ±inf in a vector or query.
    #[error(
        "{what}: row {row}{} holds {value} at column {col}; vectors must be finite: clean or drop that row",
        id.map(|id| format!(" (id {id})")).unwrap_or_default()
    )]
    NonFinite { what: &'static str, row: usize, id: Option<u64>, col: usize, value: f32 },
    /// A zero vector under the cosine metric, which has no direction.
    #[error(
        "{what}: row {row}{} is the zero vector, which has no direction under the cosine metric: drop it, \
         or use the ip or l2 metric",
        id.map(|id| format!(" (id {id})")).unwrap_or_default()
    )]
    ZeroVector { what: &'static str, row: usize, id: Option<u64> },
    /// `k = 0` in a search.
    #[error("k must be at least 1 (got 0): ask for the number of nearest neighbours you want")]
    ZeroK,
    /// The same id twice in one `add`.
    #[error(
        "add: id {id} appears more than once in this batch (rows {first_row} and {second_row}); ids must be unique"
    )]
    DuplicateIdInBatch { id: u64, first_row: usize, second_row: usize },
    /// An id that the index already holds.
    #[error(
        "add: id {id} (row {row} of this batch) is already in the index: remove it first, or pick a new id"
    )]
    IdExists { id: u64, row: usize },
    /// `ids.len()` differs from the number of vectors.
    #[error("add: {vectors} vectors but {ids} ids were given: pass exactly one id per vector")]
    IdCount { vectors: usize, ids: usize },
    /// `remove` of ids the index does not hold (nothing is removed then).
    #[error(
        "remove: {count} of the given ids are not in the index (the first: {first:?}); nothing was removed: \
         pass only ids that were added"
    )]
    UnknownIds { count: usize, first: Vec<u64> },
    /// An IVF index used before `train`.
    #[error(
        "the IVF index is not trained: call IvfFlatIndex::train (or IvfFlatIndex::build) before add or search"
    )]
    NotTrained,
    /// Any other bad argument (nlist = 0, nprobe = 0, a non-float storage dtype, ...).
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// An error of the compute layer (device, op).
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file's contents are not what its format requires (truncated, corrupt, wrong kind).
    #[error("{}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
}

impl IndexError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        IndexError::Invalid { what, detail: detail.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io { path: path.into(), source }
    }
    pub(crate) fn file(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        IndexError::File { path: path.into(), detail: detail.into() }
    }
}
