//! The CUDA C sources of ragtune's kernels, embedded at build time.
//!
//! `build.rs` lists `kernels/*.cu` (one file per kernel family) and `kernels/include/*.cuh`
//! (shared device helpers) and embeds their bytes, so a binary compiles its kernels with NVRTC
//! wherever it runs, with no checkout beside it. Headers are handed to NVRTC in memory under
//! their file names, which is how kernels include them (`#include "rt_common.cuh"`).

use sha2::{Digest, Sha256};

/// One kernel family: `kernels/<family>.cu`.
#[derive(Debug)]
pub struct KernelSource {
    /// The file stem, e.g. `"norm"` for `kernels/norm.cu`.
    pub family: &'static str,
    /// The file's contents.
    pub source: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));

/// Every kernel family, sorted by name.
pub fn families() -> &'static [KernelSource] {
    FAMILIES
}

/// The family called `name` (the file stem of `kernels/<name>.cu`), if there is one.
pub fn family(name: &str) -> Option<&'static KernelSource> {
    FAMILIES.iter().find(|k| k.family == name)
}

/// Every shared header as `(file name, contents)`, e.g. `("rt_common.cuh", "...")`, sorted by name.
pub fn headers() -> &'static [(&'static str, &'static str)] {
    HEADERS
}

/// SHA-256 of everything that decides what NVRTC produces from `family`'s sources: the family's
/// name and source and every header (name and contents). Any header counts, not just the ones
/// the family includes: over-invalidating a cache costs one compile, missing a change costs a
/// stale kernel. Each piece is length-prefixed so moving bytes between pieces changes the hash.
/// An unknown family hashes as an empty source (callers look the family up first).
pub fn source_hash(family: &str) -> [u8; 32] {
    let source = self::family(family).map_or("", |k| k.source);
    hash_with_headers(b"ragtune-kernel-source-v1", family, source, |_| {})
}

/// SHA-256 of length-prefixed pieces: `tag`, the family's name, `source`, every header's name and
/// text, then whatever `more` feeds the piece function. [`source_hash`] and the kernel cache's key
/// share it, so both cover the headers the same way.
pub(crate) fn hash_with_headers(
    tag: &[u8],
    family: &str,
    source: &str,
    more: impl FnOnce(&mut dyn FnMut(&[u8])),
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut piece = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    piece(tag);
    piece(family.as_bytes());
    piece(source.as_bytes());
    for (name, text) in HEADERS {
        piece(name.as_bytes());
        piece(text.as_bytes());
    }
    more(&mut piece);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels");
        let on_disk = |sub: &str, ext: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
                        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        let embedded: Vec<String> = families().iter().map(|k| format!("{}.cu", k.family)).collect();
        assert_eq!(embedded, on_disk("", "cu"), "kernels/*.cu");
        let headers: Vec<String> = headers().iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(headers, on_disk("include", "cuh"), "kernels/include/*.cuh");
        assert!(headers.iter().any(|h| h == "rt_common.cuh"));
        for k in families() {
            let text = std::fs::read_to_string(dir.join(format!("{}.cu", k.family))).unwrap();
            assert_eq!(text, k.source, "kernels/{}.cu", k.family);
            assert!(family(k.family).is_some());
        }
        assert!(family("no_such_family").is_none());
    }

    #[test]
    fn source_hash_depends_on_family_and_is_stable() {
        assert_eq!(source_hash("a"), source_hash("a"));
        assert_ne!(source_hash("a"), source_hash("b"));
        for k in families() {
            assert_ne!(source_hash(k.family), source_hash("no_such_family"));
        }
    }
}
