//! Host memory behind a tensor: an owned, 8-byte-aligned buffer, or a window into bytes owned by
//! someone else (a safetensors file in memory or mapped), shared without copying.

use std::fmt;
use std::sync::Arc;

/// Bytes that keep themselves alive: a `Vec<u8>`, a memory map, an `Arc<[u8]>` ...
pub trait ByteOwner: AsRef<[u8]> + Send + Sync + 'static {}
impl<T: AsRef<[u8]> + Send + Sync + 'static> ByteOwner for T {}

/// Host bytes, cheap to clone. Reads share; the one write path ([`HostBuffer::bytes_mut`]) copies
/// on write, so a clone never sees another clone's writes.
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
        // SAFETY: the copy writes all bytes.len() bytes.
        unsafe {
            HostBuffer::build_written(bytes.len(), |dst| {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len())
            })
        }
    }

    /// A buffer of `len` bytes that `fill` writes through the pointer it is given, with no zeroing
    /// first: an op's output that its kernel writes whole (a GEMM that does not read C) would
    /// otherwise be written twice, and the zeroing was ~5% of a LoRA training step (perf, 2-core
    /// AMD EPYC). No reference to the unwritten bytes is ever made; the padding after `len` in
    /// the last word is zeroed here.
    ///
    /// # Safety
    /// `fill` must write every one of the `len` bytes at the pointer (8-byte aligned) and nothing
    /// beyond them, and must not read a byte before writing it.
    pub unsafe fn build_written(len: usize, fill: impl FnOnce(*mut u8)) -> Self {
        let n = len.div_ceil(8);
        let mut words: Vec<u64> = Vec::with_capacity(n);
        // SAFETY: the capacity holds n words; the last is zeroed (its bytes past len are padding)
        // before fill writes the first len bytes, so all n words are initialised at set_len.
        unsafe {
            if n > 0 {
                words.as_mut_ptr().add(n - 1).write(0);
            }
            fill(words.as_mut_ptr().cast::<u8>());
            words.set_len(n);
        }
        HostBuffer::Owned { words: Arc::new(words), len }
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

    /// The bytes, writable, copy-on-write: a buffer whose words another `HostBuffer` also holds
    /// (a clone of the tensor), or bytes borrowed from another owner (a mapped file), is first
    /// copied into a buffer of its own, so no other tensor ever sees the write.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            HostBuffer::Owned { words, len } => {
                &mut bytemuck::cast_slice_mut::<u64, u8>(Arc::make_mut(words).as_mut_slice())[..*len]
            }
            HostBuffer::Shared { .. } => {
                *self = HostBuffer::copy_from(self.bytes());
                self.bytes_mut() // owned now: one more step
            }
        }
    }
}

impl fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_shared() { "shared" } else { "owned" };
        write!(f, "HostBuffer({kind}, {} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::HostBuffer;

    #[test]
    fn copies_and_written_buffers_hold_exactly_their_bytes() {
        for len in [0usize, 1, 7, 8, 13, 64] {
            let src: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) | 1).collect();
            let copy = HostBuffer::copy_from(&src);
            assert_eq!(copy.bytes(), &src[..], "len {len}");
            // The padding after len in the last word is zero, not whatever the allocator held.
            if let HostBuffer::Owned { words, .. } = &copy {
                let all = bytemuck::cast_slice::<u64, u8>(words);
                assert!(all[len..].iter().all(|&b| b == 0), "len {len}: padding {:?}", &all[len..]);
            }
        }
    }
}
