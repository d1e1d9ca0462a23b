//! Pinned Python wheels for the benchmarks' peers, pip-installed once into a folder under
//! `target/` (a marker file names what is there, so a changed pin reinstalls).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `root/target/<folder>` holding `wheels`, installed unless the marker already names them;
/// `size` is said while installing (e.g. " (about 6 GB)").
pub(crate) fn install_once(root: &Path, folder: &str, wheels: &[&str], size: &str) -> Result<PathBuf> {
    let dir = root.join("target").join(folder);
    let marker = dir.join(".installed");
    let pinned = wheels.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&pinned) {
        return Ok(dir);
    }
    println!("installing {pinned} into {}{size} ...", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "--target"])
        .arg(&dir)
        .args(wheels)
        .status()
        .context("running python3 -m pip (install python3-pip)")?;
    if !status.success() {
        bail!("pip could not install {pinned}");
    }
    std::fs::write(&marker, &pinned)?;
    Ok(dir)
}
