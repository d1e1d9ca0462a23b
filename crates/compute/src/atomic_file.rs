//! The one atomic file writer of ragtune: every crate that saves a file (index, kernel cache,
//! adapters, merged models, checkpoints, reports) goes through [`write()`] / [`write_with`].
//!
//! The bytes go to a temporary file beside the destination named `.NAME.ragtune-tmp.<pid>.<nanos>`
//! (recognisable, unique per process and moment, in the same folder so the rename stays on one
//! file system), are flushed and fsynced, and the file is renamed over the destination; then the
//! folder is fsynced so the rename itself survives a power cut. A reader sees the old file or the
//! new one, never a torn one. On an error the temporary file is removed.
//!
//! A writer killed with `kill -9` cannot remove its temporary file. So after each successful
//! write, [`write_with`] removes the destination's stale siblings: `.NAME.ragtune-tmp.*` files
//! whose writing process no longer exists, or that have not been touched for a day (a temporary
//! file lives for the seconds a save takes; a day-old one whose pid is alive belongs to a
//! process that reused a dead writer's pid). Files of a live process — another one saving the
//! same file right now, or another thread of this one — are left alone: removing them would make
//! that save fail.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A temporary file untouched this long is stale whatever its pid says.
const STALE_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The marker between a destination's name and the pid in its temporary files' names.
pub const TEMP_MARKER: &str = ".ragtune-tmp.";

/// Write `bytes` to `path` atomically (see the module docs).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Write `path` atomically with whatever `fill` writes into the buffered writer.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (tmp, file) = create_temp(path)?;
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(path);
        Ok(())
    })();
    match result {
        Ok(()) => {
            remove_stale(path);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `dir/.NAME.ragtune-tmp.<pid>.<nanos>`, created new (never an existing file).
fn create_temp(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let pid = std::process::id();
    let mut attempt = 0u128;
    loop {
        let tmp = path.with_file_name(format!(".{name}{TEMP_MARKER}{pid}.{}", nanos + attempt));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // Another thread of this process in the same nanosecond: the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// fsync the folder holding `path`, so the rename is durable. Best effort: some file systems
/// refuse to open a folder for syncing.
pub fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Remove the stale temporary files of `path` (see the module docs); returns how many went.
/// Errors are ignored: cleaning up is a courtesy, never a reason to fail a save.
pub fn remove_stale(path: &Path) -> usize {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return 0 };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let prefix = format!(".{name}{TEMP_MARKER}");
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let day_old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_AGE);
        let stale = if pid == std::process::id() {
            // Our own pid: another thread may be writing it now.
            day_old
        } else {
            pid_alive(pid) == Some(false) || day_old
        };
        if stale && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists (`None` where this cannot be told).
fn pid_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(case: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ragtune-atomic-{case}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn temps(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(TEMP_MARKER))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replace_whole_and_leave_no_temp() {
        let d = dir("plain");
        let p = d.join("x.bin");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(temps(&d).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_fill_removes_its_temp_and_keeps_the_old_file() {
        let d = dir("fail");
        let p = d.join("x.bin");
        write(&p, b"old").unwrap();
        let e = write_with(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(e.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert!(temps(&d).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn stale_temps_of_dead_writers_are_removed_by_the_next_write() {
        let d = dir("stale");
        let p = d.join("x.bin");
        // A pid that cannot be alive (above Linux's pid_max of 2^22), one of another file,
        // and one of a live process (this one, written now).
        let dead = d.join(format!(".x.bin{TEMP_MARKER}4294967294.1"));
        let other = d.join(format!(".y.bin{TEMP_MARKER}4294967294.1"));
        let live = d.join(format!(".x.bin{TEMP_MARKER}{}.5", std::process::id()));
        // pid 1 is always alive: a recent temp of it is left, a two-day-old one is stale.
        let recent = d.join(format!(".x.bin{TEMP_MARKER}1.7"));
        let old = d.join(format!(".x.bin{TEMP_MARKER}1.8"));
        for f in [&dead, &other, &live, &recent, &old] {
            fs::write(f, b"junk").unwrap();
        }
        let two_days_ago = SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
        File::options().write(true).open(&old).unwrap().set_modified(two_days_ago).unwrap();
        write(&p, b"new").unwrap();
        assert!(!dead.exists(), "a dead writer's temp is removed");
        assert!(other.exists(), "another file's temps are not touched");
        assert!(live.exists(), "a live writer's temp (this process, another thread) is left alone");
        assert!(recent.exists(), "a live process's recent temp is left alone");
        assert!(!old.exists(), "a day-old temp is stale whatever its pid");
        fs::remove_dir_all(&d).unwrap();
    }
}
