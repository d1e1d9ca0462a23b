//! The index file: one versioned format for both index kinds, written atomically.
//!
//! All integers little-endian; offsets in bytes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `RAGTIDX\0` |
//! | 8 | 4 | format version (`1`) |
//! | 12 | 1 | kind: 0 flat, 1 IVF-flat |
//! | 13 | 1 | metric: 0 ip, 1 cosine, 2 l2 |
//! | 14 | 1 | storage dtype: 0 f32, 1 f16, 2 bf16 |
//! | 15 | 1 | reserved, 0 |
//! | 16 | 8 | dim |
//! | 24 | 8 | count: number of vectors |
//! | 32 | 8 | nlist: number of lists (1 for flat) |
//! | 40 | 8 | nprobe: the IVF default (0 for flat) |
//! | 48 | 8·nlist | list sizes (u64), summing to count |
//! | | 4·nlist·dim | IVF only: centroids, f32, row-major |
//! | | 8·count | ids (u64), list by list, ascending within a list |
//! | | count·dim·size | vectors in the storage dtype, in the order of the ids |
//! | end − 32 | 32 | SHA-256 of every byte before it |
//!
//! Vectors are stored as host bytes whatever device the index lived on, so a file saved from a
//! GPU index loads on a CPU and the reverse. Loading checks the magic, the version and the
//! checksum, then the structure (sizes add up, ids ascending and unique), and names the file in
//! every error. Writing goes to a temporary file in the same folder, fsync, rename.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ragtune_compute::{ByteOwner, DType, Tensor};
use sha2::{Digest, Sha256};

use crate::atomic::write_atomically;
use crate::error::{IndexError, Result};
use crate::metric::Metric;
use crate::store::RowStore;

pub const MAGIC: &[u8; 8] = b"RAGTIDX\0";
pub const VERSION: u32 = 1;
const HEADER: usize = 48;
const CHECKSUM: usize = 32;

/// Which index a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Flat,
    IvfFlat,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Flat => "flat",
            Kind::IvfFlat => "ivf",
        }
    }
}

/// Everything a file holds, in memory.
pub(crate) struct Saved {
    pub kind: Kind,
    pub metric: Metric,
    pub dtype: DType,
    pub dim: usize,
    pub nprobe: usize,
    /// `[nlist · dim]` f32, IVF only.
    pub centroids: Option<Vec<f32>>,
    /// One store for a flat index, `nlist` for IVF.
    pub lists: Vec<RowStore>,
}

fn dtype_code(dtype: DType) -> u8 {
    match dtype {
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => 0,
    }
}

fn dtype_from_code(code: u8) -> Option<DType> {
    [DType::F32, DType::F16, DType::BF16].into_iter().find(|&d| dtype_code(d) == code)
}

/// A writer that hashes what passes through it.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn save(path: &Path, s: &Saved) -> Result<()> {
    // Fetch every list's bytes before creating the file, so a device error leaves no file.
    let hosts: Vec<Option<Tensor>> = s.lists.iter().map(|l| l.host_vectors()).collect::<Result<_>>()?;
    let count: usize = s.lists.iter().map(|l| l.len()).sum();
    write_atomically(path, |w| {
        let mut h = Hashing { inner: w, hasher: Sha256::new() };
        h.write_all(MAGIC)?;
        h.write_all(&VERSION.to_le_bytes())?;
        let kind = match s.kind {
            Kind::Flat => 0u8,
            Kind::IvfFlat => 1,
        };
        h.write_all(&[kind, s.metric.code(), dtype_code(s.dtype), 0])?;
        for v in [s.dim, count, s.lists.len(), s.nprobe] {
            h.write_all(&(v as u64).to_le_bytes())?;
        }
        for l in &s.lists {
            h.write_all(&(l.len() as u64).to_le_bytes())?;
        }
        if let Some(c) = &s.centroids {
            h.write_all(bytemuck::cast_slice(c))?;
        }
        for l in &s.lists {
            h.write_all(bytemuck::cast_slice(&l.ids))?;
        }
        for t in hosts.iter().flatten() {
            h.write_all(t.host_bytes().expect("host tensor"))?;
        }
        let digest = h.hasher.finalize();
        w.write_all(&digest)
    })
}

/// Little-endian reads at a cursor; the caller checked the length first.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn u64(&mut self) -> u64 {
        let v = u64::from_le_bytes(self.b[self.at..self.at + 8].try_into().expect("8 bytes"));
        self.at += 8;
        v
    }
}

/// The layout a header promises: (list count, expected file size), or why it is impossible.
fn expected_size(kind: Kind, dtype: DType, dim: u64, count: u64, nlist: u64) -> Option<usize> {
    let (dim, count, nlist) =
        (usize::try_from(dim).ok()?, usize::try_from(count).ok()?, usize::try_from(nlist).ok()?);
    let centroids = if kind == Kind::IvfFlat { nlist.checked_mul(dim)?.checked_mul(4)? } else { 0 };
    let vectors = count.checked_mul(dim)?.checked_mul(dtype.size())?;
    HEADER
        .checked_add(nlist.checked_mul(8)?)?
        .checked_add(centroids)?
        .checked_add(count.checked_mul(8)?)?
        .checked_add(vectors)?
        .checked_add(CHECKSUM)
}

pub(crate) fn load(path: &Path) -> Result<Saved> {
    let bytes = fs::read(path).map_err(|e| IndexError::io(path, e))?;
    let bad = |detail: String| IndexError::file(path, detail);
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad(
            "not a ragtune index file (no RAGTIDX magic): build one with `ragtune index build`".into()
        ));
    }
    if bytes.len() < HEADER + CHECKSUM {
        return Err(bad(format!(
            "truncated: {} bytes, shorter than any index file ({} bytes): the file was cut short, copy or build it again",
            bytes.len(),
            HEADER + CHECKSUM
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "index format version {version}, but this ragtune reads version {VERSION}: rebuild the index with \
             this version of ragtune"
        )));
    }
    let kind = match bytes[12] {
        0 => Some(Kind::Flat),
        1 => Some(Kind::IvfFlat),
        _ => None,
    };
    let metric = Metric::from_code(bytes[13]);
    let dtype = dtype_from_code(bytes[14]);
    let mut c = Cursor { b: &bytes, at: 16 };
    let (dim, count, nlist, nprobe) = (c.u64(), c.u64(), c.u64(), c.u64());
    let expected = match (kind, dtype) {
        (Some(k), Some(d)) => expected_size(k, d, dim, count, nlist),
        _ => None,
    };

    let body = bytes.len() - CHECKSUM;
    let digest = Sha256::digest(&bytes[..body]);
    if digest.as_slice() != &bytes[body..] {
        return Err(bad(match expected {
            Some(e) if e > bytes.len() => format!(
                "truncated: the header promises {e} bytes but the file holds {}: it was cut short, copy or build \
                 it again",
                bytes.len()
            ),
            _ => {
                "checksum mismatch: the file is corrupt; restore a good copy or build the index again".into()
            }
        }));
    }
    // The checksum matched, so what follows can only fail for a file that a writer got wrong.
    let (kind, metric, dtype) = match (kind, metric, dtype) {
        (Some(k), Some(m), Some(d)) => (k, m, d),
        _ => return Err(bad(format!("unknown kind/metric/dtype codes {:?}", &bytes[12..15]))),
    };
    let expected =
        expected.ok_or_else(|| bad(format!("impossible sizes: dim {dim}, count {count}, nlist {nlist}")))?;
    if expected != bytes.len() {
        return Err(bad(format!("the header promises {expected} bytes but the file holds {}", bytes.len())));
    }
    let (dim, count, nlist) = (dim as usize, count as usize, nlist as usize);
    if dim == 0 || nlist == 0 || (kind == Kind::Flat && nlist != 1) {
        return Err(bad(format!("invalid header: dim {dim}, nlist {nlist} for a {} index", kind.name())));
    }
    if kind == Kind::IvfFlat && nprobe == 0 {
        return Err(bad(
            "the IVF header holds nprobe 0, which probes no list and finds nothing: the file was written \
             wrongly; build the index again (or pass --nprobe N >= 1 when searching a rebuilt one)"
                .into(),
        ));
    }
    let sizes: Vec<usize> = (0..nlist).map(|_| c.u64() as usize).collect();
    if sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(count) {
        return Err(bad(format!("list sizes do not add up to the {count} vectors the header counts")));
    }
    let centroids = if kind == Kind::IvfFlat {
        let n = nlist * dim;
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[c.at..c.at + 4 * n]);
        c.at += 4 * n;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad("a centroid holds a non-finite value".into()));
        }
        Some(v)
    } else {
        None
    };
    let ids: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes[c.at..c.at + 8 * count]);
    let mut vec_at = c.at + 8 * count;
    let row_bytes = dim * dtype.size();
    // A matching checksum proves the bytes are what a writer wrote, not that the writer wrote
    // numbers: a NaN row would rank first (or last) for every query, so refuse it here.
    if let Some((pos, value)) = first_non_finite(&bytes[vec_at..vec_at + count * row_bytes], dtype) {
        let row = pos / dim;
        return Err(bad(format!(
            "stored vector row {row} (id {}) holds {value} at column {}: an index must hold finite vectors; \
             build it again from clean vectors",
            ids[row],
            pos % dim
        )));
    }

    let owner: Arc<dyn ByteOwner> = Arc::new(bytes);
    let mut lists = Vec::with_capacity(nlist);
    let mut id_at = 0;
    for (l, &size) in sizes.iter().enumerate() {
        let list_ids = ids[id_at..id_at + size].to_vec();
        if list_ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(format!("the ids of list {l} are not strictly ascending")));
        }
        let vectors = if size == 0 {
            None
        } else {
            Some(Tensor::from_shared_bytes(owner.clone(), vec_at, size * row_bytes, dtype, &[size, dim])?)
        };
        lists.push(RowStore::from_parts(dim, dtype, list_ids, vectors));
        id_at += size;
        vec_at += size * row_bytes;
    }
    if nlist > 1 {
        let mut seen = HashSet::with_capacity(count);
        if let Some(id) = ids.iter().find(|id| !seen.insert(**id)) {
            return Err(bad(format!("id {id} is stored in two lists")));
        }
    }
    Ok(Saved { kind, metric, dtype, dim, nprobe: nprobe as usize, centroids, lists })
}

/// The first non-finite value of `bytes` (little-endian `dtype` values) as (index, value).
fn first_non_finite(bytes: &[u8], dtype: DType) -> Option<(usize, f32)> {
    match dtype {
        DType::F16 => bytes.chunks_exact(2).enumerate().find_map(|(i, b)| {
            let v = half::f16::from_le_bytes([b[0], b[1]]);
            (!v.is_finite()).then(|| (i, v.to_f32()))
        }),
        DType::BF16 => bytes.chunks_exact(2).enumerate().find_map(|(i, b)| {
            let v = half::bf16::from_le_bytes([b[0], b[1]]);
            (!v.is_finite()).then(|| (i, v.to_f32()))
        }),
        _ => bytes.chunks_exact(4).enumerate().find_map(|(i, b)| {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (!v.is_finite()).then_some((i, v))
        }),
    }
}

/// What `ragtune index info` shows without loading vectors onto a device.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub version: u32,
    pub kind: Kind,
    pub metric: Metric,
    pub dtype: DType,
    pub dim: usize,
    pub count: usize,
    pub nlist: usize,
    pub nprobe: usize,
    pub list_sizes: Vec<usize>,
    pub file_bytes: u64,
}

/// Read and verify `path` (checksum included) and describe it.
pub fn info(path: impl AsRef<Path>) -> Result<FileInfo> {
    let path = path.as_ref();
    let file_bytes = fs::metadata(path).map_err(|e| IndexError::io(path, e))?.len();
    let s = load(path)?;
    Ok(FileInfo {
        version: VERSION,
        kind: s.kind,
        metric: s.metric,
        dtype: s.dtype,
        dim: s.dim,
        count: s.lists.iter().map(|l| l.len()).sum(),
        nlist: if s.kind == Kind::Flat { 0 } else { s.lists.len() },
        nprobe: s.nprobe,
        list_sizes: s.lists.iter().map(|l| l.len()).collect(),
        file_bytes,
    })
}
