//! Atomic file writes of the index crate, through ragtune's one writer
//! ([`ragtune_compute::atomic_file`]): the bytes go to `.NAME.ragtune-tmp.<pid>.<nanos>` beside
//! the destination, are fsynced, and renamed over it; a crash or an error midway leaves the old
//! file (or no file), never a half-written one; the temporary file is removed on error, and
//! the temporaries of killed writers are removed by the next successful write.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::error::{IndexError, Result};

/// Write `path` atomically with whatever `fill` writes into the buffered writer.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    ragtune_compute::atomic_file::write_with(path, fill).map_err(|e| IndexError::io(path, e))
}
