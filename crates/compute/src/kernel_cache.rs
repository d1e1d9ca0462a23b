//! The kernel loader's cache: each kernel family compiled once per architecture.
//!
//! [`compiled`] returns the image of `kernels/<family>.cu` for an architecture, compiling it with
//! NVRTC on first use. Images are kept in memory for the process and on disk across processes,
//! because NVRTC takes ~0.1 s per family and architecture — noticeable at every start-up.
//!
//! The disk cache lives in `RAGTUNE_CACHE_DIR`, else `$XDG_CACHE_HOME/ragtune/kernels`, else
//! `$HOME/.cache/ragtune/kernels`. A file's key is a SHA-256 of the family's source hash (its
//! source and every shared header), the architecture, the NVRTC version and the compile options,
//! so editing a kernel, upgrading NVRTC or changing an option never loads a stale image. Files
//! carry a magic, a format version and a checksum; one that fails any check is ignored and
//! rewritten. Writes go to a temporary file that is renamed into place, so a reader never sees
//! half a file, even with several processes compiling at once. A cache that cannot be written
//! (read-only home, full disk) costs a recompile next time, never an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::error::{ComputeError, Result};
use crate::kernel_sources;
use crate::nvrtc::{self, CompileOptions, ImageKind};

/// The environment variable naming the disk cache folder.
pub const CACHE_DIR_ENV: &str = "RAGTUNE_CACHE_DIR";

const MAGIC: &[u8; 8] = b"RTKERNEL";
const FORMAT_VERSION: u32 = 1;
const EXTENSION: &str = "rtk";

/// A compiled kernel family, ready to load as a module.
#[derive(Debug)]
pub struct CompiledImage {
    pub family: String,
    pub arch: String,
    /// The CUBIN for a real architecture (`sm_90a`); the PTX text for a virtual one
    /// (`compute_80`). The field keeps its name for both, as module loaders accept either.
    pub cubin: Vec<u8>,
    pub kind: ImageKind,
    /// NVRTC's log from the compile that produced the image (warnings; usually empty).
    pub log: String,
    /// Where the image came from this time.
    pub origin: ImageOrigin,
}

/// Where a [`CompiledImage`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageOrigin {
    /// Read from this disk cache file.
    DiskCache(PathBuf),
    /// Compiled now and saved to this file.
    CompiledAndSaved(PathBuf),
    /// Compiled now; not saved, for this reason.
    CompiledNotSaved(String),
}

type Slot = Arc<Mutex<Option<Arc<CompiledImage>>>>;

/// The in-memory cache: one slot per (family, arch). A slot has its own lock so two threads
/// asking for the same image compile it once, while different images compile in parallel.
static MEMORY: OnceLock<Mutex<HashMap<(String, String), Slot>>> = OnceLock::new();

/// The image of `kernels/<family>.cu` for `arch` (`sm_90a`, or `compute_80` for PTX), from
/// memory, else from the disk cache, else compiled by NVRTC now.
pub fn compiled(family: &str, arch: &str) -> Result<Arc<CompiledImage>> {
    let Some(kernel) = kernel_sources::family(family) else {
        let known: Vec<&str> = kernel_sources::families().iter().map(|k| k.family).collect();
        return Err(ComputeError::Invalid {
            op: "kernel_cache::compiled",
            detail: format!(
                "no kernel family `{family}`: kernels/{family}.cu is not part of this build (known: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        });
    };
    nvrtc::image_kind(arch)?;
    let slot = {
        let mut map = MEMORY.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        map.entry((family.to_owned(), arch.to_owned())).or_default().clone()
    };
    // A poisoned slot only means another thread panicked while compiling; its content is still
    // either None or a finished image.
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(image) = slot.as_ref() {
        return Ok(image.clone());
    }
    let dir = cache_dir();
    let image = Arc::new(load_or_compile(kernel.family, kernel.source, arch, dir.as_deref())?);
    *slot = Some(image.clone());
    Ok(image)
}

/// The disk cache folder (see the module docs); None when no variable names a place for it.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("ragtune/kernels")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/ragtune/kernels")))
}

/// The options every cached image is compiled with (part of the key).
fn loader_options() -> CompileOptions {
    CompileOptions::default()
}

/// Everything that decides the image, hashed: a cache file whose key differs is not used.
fn cache_key(family: &str, source: &str, arch: &str, nvrtc_version: (i32, i32)) -> [u8; 32] {
    // The given source is hashed rather than source_hash(family)'s, so the key also covers a
    // source that is not (or no longer) the embedded one.
    kernel_sources::hash_with_headers(b"ragtune-kernel-cache-v1", family, source, |piece| {
        piece(arch.as_bytes());
        piece(format!("{}.{}", nvrtc_version.0, nvrtc_version.1).as_bytes());
        for option in nvrtc::compile_options(arch, &loader_options()) {
            piece(option.as_bytes());
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cache_file(dir: &Path, family: &str, arch: &str, key: &[u8; 32]) -> PathBuf {
    // The family name is a file stem and could hold anything; keep the file name plain. The key
    // decides identity; the readable part is for people looking in the folder.
    let plain: String = family
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    dir.join(format!("{plain}-{arch}-{}.{EXTENSION}", &hex(key)[..32]))
}

/// The disk part of [`compiled`], with the folder given (None: no disk cache).
fn load_or_compile(family: &str, source: &str, arch: &str, dir: Option<&Path>) -> Result<CompiledImage> {
    let version = nvrtc::nvrtc_status()?;
    let kind = nvrtc::image_kind(arch)?;
    let key = cache_key(family, source, arch, version);
    let path = dir.map(|d| cache_file(d, family, arch, &key));
    if let Some(path) = &path
        && let Ok(bytes) = std::fs::read(path)
        && let Some((log, image)) = decode(&bytes, &key, kind)
    {
        return Ok(CompiledImage {
            family: family.into(),
            arch: arch.into(),
            cubin: image,
            kind,
            log,
            origin: ImageOrigin::DiskCache(path.clone()),
        });
    }
    let out = nvrtc::compile(family, source, arch, &loader_options())?;
    let origin = match &path {
        None => ImageOrigin::CompiledNotSaved(format!(
            "no cache folder: set {CACHE_DIR_ENV}, XDG_CACHE_HOME or HOME"
        )),
        Some(path) => match write_atomically(path, &encode(&key, kind, &out.log, &out.image)) {
            Ok(()) => ImageOrigin::CompiledAndSaved(path.clone()),
            Err(e) => ImageOrigin::CompiledNotSaved(format!("could not write {}: {e}", path.display())),
        },
    };
    Ok(CompiledImage {
        family: family.into(),
        arch: arch.into(),
        cubin: out.image,
        kind,
        log: out.log,
        origin,
    })
}

/// The cache file: magic, format version, image kind, key, log and image lengths, log, image,
/// then a SHA-256 of everything before it.
fn encode(key: &[u8; 32], kind: ImageKind, log: &str, image: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 + 1 + 32 + 16 + log.len() + image.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind_byte(kind));
    out.extend_from_slice(key);
    out.extend_from_slice(&(log.len() as u64).to_le_bytes());
    out.extend_from_slice(&(image.len() as u64).to_le_bytes());
    out.extend_from_slice(log.as_bytes());
    out.extend_from_slice(image);
    let checksum: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&checksum);
    out
}

fn kind_byte(kind: ImageKind) -> u8 {
    match kind {
        ImageKind::Cubin => 0,
        ImageKind::Ptx => 1,
    }
}

/// `(log, image)` from a cache file, or None when anything is off: wrong magic or version,
/// another key or kind, lengths that do not add up, a checksum mismatch.
fn decode(bytes: &[u8], key: &[u8; 32], kind: ImageKind) -> Option<(String, Vec<u8>)> {
    const HEADER: usize = 8 + 4 + 1 + 32 + 8 + 8;
    if bytes.len() < HEADER + 32 {
        return None;
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let u64_at =
        |at: usize| -> Option<u64> { Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?)) };
    if &body[..8] != MAGIC
        || body[8..12] != FORMAT_VERSION.to_le_bytes()
        || body[12] != kind_byte(kind)
        || &body[13..45] != key
    {
        return None;
    }
    let log_len = usize::try_from(u64_at(45)?).ok()?;
    let image_len = usize::try_from(u64_at(53)?).ok()?;
    if HEADER.checked_add(log_len)?.checked_add(image_len)? != body.len() {
        return None;
    }
    let log = std::str::from_utf8(&body[HEADER..HEADER + log_len]).ok()?.to_owned();
    Some((log, body[HEADER + log_len..].to_vec()))
}

/// Writes `bytes` to `path` through ragtune's one atomic writer ([`crate::atomic_file`]):
/// readers see the old file or the new one, never a mix; stale temporaries are cleaned.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    crate::atomic_file::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ragtune-kernel-cache-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn cache_file_round_trips_and_rejects_damage() {
        let key = [7u8; 32];
        let bytes = encode(&key, ImageKind::Cubin, "a warning", b"\x7fELF image");
        assert_eq!(
            decode(&bytes, &key, ImageKind::Cubin),
            Some(("a warning".into(), b"\x7fELF image".to_vec()))
        );
        assert_eq!(decode(&bytes, &[8u8; 32], ImageKind::Cubin), None, "another key");
        assert_eq!(decode(&bytes, &key, ImageKind::Ptx), None, "another kind");
        for cut in [0, 1, 8, 60, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut], &key, ImageKind::Cubin), None, "truncated at {cut}");
        }
        for flip in [0, 9, 50, bytes.len() - 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[flip] ^= 1;
            assert_eq!(decode(&bad, &key, ImageKind::Cubin), None, "bit flipped at {flip}");
        }
        let empty = encode(&key, ImageKind::Ptx, "", b"");
        assert_eq!(decode(&empty, &key, ImageKind::Ptx), Some((String::new(), Vec::new())));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = TempDir::new("write");
        let path = dir.0.join("sub/x.rtk");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.0.join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn key_depends_on_every_input() {
        let base = cache_key("f", "src", "sm_90a", (13, 0));
        assert_eq!(base, cache_key("f", "src", "sm_90a", (13, 0)));
        assert_ne!(base, cache_key("g", "src", "sm_90a", (13, 0)));
        assert_ne!(base, cache_key("f", "src2", "sm_90a", (13, 0)));
        assert_ne!(base, cache_key("f", "src", "sm_80", (13, 0)));
        assert_ne!(base, cache_key("f", "src", "sm_90a", (13, 1)));
        let name = cache_file(Path::new("/c"), "we/ird", "sm_90a", &base);
        assert_eq!(name.parent(), Some(Path::new("/c")));
        assert!(name.file_name().unwrap().to_str().unwrap().starts_with("we_ird-sm_90a-"));
    }

    #[test]
    fn unknown_family_and_arch_are_errors() {
        let e = compiled("no_such_family", "sm_90a").unwrap_err().to_string();
        assert!(e.contains("kernels/no_such_family.cu"), "{e}");
        if let Some(k) = kernel_sources::families().first() {
            assert!(compiled(k.family, "sm_9x").is_err());
        }
    }

    #[test]
    fn disk_cache_hits_and_heals_a_corrupt_file() {
        if let Err(e) = nvrtc::nvrtc_status() {
            eprintln!("skipping disk_cache_hits_and_heals_a_corrupt_file: {e}");
            return;
        }
        let dir = TempDir::new("disk");
        let source = "#include \"rt_common.cuh\"\n\
            extern \"C\" __global__ void scale_f32(float* x, float a, int n) {\n\
                int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= a; }\n";
        let first = load_or_compile("cache_test", source, "sm_90a", Some(&dir.0)).unwrap();
        let ImageOrigin::CompiledAndSaved(path) = &first.origin else { panic!("{:?}", first.origin) };
        let second = load_or_compile("cache_test", source, "sm_90a", Some(&dir.0)).unwrap();
        assert_eq!(second.origin, ImageOrigin::DiskCache(path.clone()));
        assert_eq!(second.cubin, first.cubin);

        // A damaged file is ignored, recompiled and rewritten.
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(path, &bytes).unwrap();
        let healed = load_or_compile("cache_test", source, "sm_90a", Some(&dir.0)).unwrap();
        assert_eq!(healed.origin, ImageOrigin::CompiledAndSaved(path.clone()));
        assert_eq!(healed.cubin, first.cubin);
        let again = load_or_compile("cache_test", source, "sm_90a", Some(&dir.0)).unwrap();
        assert_eq!(again.origin, ImageOrigin::DiskCache(path.clone()));

        // Virtual architectures cache PTX text.
        let ptx = load_or_compile("cache_test", source, "compute_80", Some(&dir.0)).unwrap();
        assert_eq!(ptx.kind, ImageKind::Ptx);
        assert!(String::from_utf8_lossy(&ptx.cubin).contains(".entry scale_f32"));

        // An unwritable folder costs the disk copy, not the image.
        let blocker = dir.0.join("a-file");
        std::fs::write(&blocker, b"").unwrap();
        let unsaved = load_or_compile("cache_test", source, "sm_80", Some(&blocker)).unwrap();
        assert!(matches!(unsaved.origin, ImageOrigin::CompiledNotSaved(_)), "{:?}", unsaved.origin);
        assert!(!unsaved.cubin.is_empty());
    }
}
