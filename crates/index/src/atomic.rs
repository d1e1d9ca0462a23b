//! Atomic file writes: the bytes go to a temporary file in the destination's folder, are flushed
//! to disk (fsync), and only then renamed over the destination. A crash or an error midway leaves
//! the old file (or no file), never a half-written one; the temporary file is removed on error.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IndexError, Result};

/// Write `path` atomically with whatever `fill` writes into the buffered writer.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable only once the folder is synced; best effort, as some
        // file systems refuse to open a folder for syncing.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = fs::remove_file(&tmp);
        IndexError::io(path, e)
    })
}

/// `dir/.name.tmp.<pid>.<nanos>`: beside the destination, so the rename stays in one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    path.with_file_name(format!(".{name}.tmp.{}.{nanos}", std::process::id()))
}
