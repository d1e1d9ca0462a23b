//! Host memory behind a tensor: an owned, 8-byte-aligned buffer, or a window into bytes owned by
//! someone else (a safetensors file in memory or mapped), shared without copying.

use std::fmt;
use std::sync::Arc;

/// Bytes that keep themselves alive: a `Vec<u8>`, a memory map, an `Arc<[u8]>` ...
pub trait ByteOwner: AsRef<[u8]> + Send + Sync + 'static {}
impl<T: AsRef<[u8]> + Send + Sync + 'static> ByteOwner for T {}

/// Read-only host bytes, cheap to clone.
#[derive(Clone)]
pub enum HostBuffer {
    /// Owned, 8-byte aligned (backed by `u64`s) so any element type can be viewed in place.
    Owned { words: Arc<Vec<u64>>, len: usize },
    /// `len` bytes at `offset` in a buffer owned elsewhere.
    Shared { owner: Arc<dyn ByteOwner>, offset: usize, len: usize },
}

impl HostBuffer {
    /// Copy `bytes` into a new aligned buffer.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        HostBuffer::Owned { words: Arc::new(words), len: bytes.len() }
    }

    /// A zeroed buffer of `len` bytes, filled by `fill` before it becomes read-only.
    pub fn build(len: usize, fill: impl FnOnce(&mut [u8])) -> Self {
        let mut words = vec![0u64; len.div_ceil(8)];
        fill(&mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len]);
        HostBuffer::Owned { words: Arc::new(words), len }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            HostBuffer::Owned { words, len } => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
            HostBuffer::Shared { owner, offset, len } => &(**owner).as_ref()[*offset..*offset + *len],
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostBuffer::Owned { len, .. } | HostBuffer::Shared { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are borrowed from another owner (no copy was made).
    pub fn is_shared(&self) -> bool {
        matches!(self, HostBuffer::Shared { .. })
    }
}

impl fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_shared() { "shared" } else { "owned" };
        write!(f, "HostBuffer({kind}, {} bytes)", self.len())
    }
}
