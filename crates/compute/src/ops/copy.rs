//! `copy_into`: the one in-place op, for KV caches.

use super::common_device;
use crate::device::Device;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;

/// Copy `src` into `dst` in place, starting at element `offset` of `dst` (flat, row-major): with a
/// cache `[b, max_seq, h, d]` and new keys `[1, n, h, d]` of sequence `i`, the offset is
/// `((i · max_seq) + pos) · h · d`. Same dtype and device; shapes may differ, only the element
/// counts matter.
///
/// Tensors are values: when `dst`'s storage is shared with another tensor (a clone, a reshape, a
/// zero-copy view of a file), `dst` first gets a copy of its own — on the host and on a device
/// alike — so the other tensor never changes. Keep one handle to a cache to update it in place.
pub fn copy_into(dst: &mut Tensor, src: &Tensor, offset: usize) -> Result<()> {
    const OP: &str = "copy_into";
    if dst.dtype() != src.dtype() {
        return Err(ComputeError::dtype(
            OP,
            format!(
                "dst {:?} is {} but src {:?} is {}; cast src first",
                dst.shape(),
                dst.dtype(),
                src.shape(),
                src.dtype()
            ),
        ));
    }
    let n = src.numel();
    if offset.checked_add(n).is_none_or(|end| end > dst.numel()) {
        return Err(ComputeError::shape(
            OP,
            format!(
                "src {:?} ({n} elements) at offset {offset} runs past dst {:?} ({} elements)",
                src.shape(),
                dst.shape(),
                dst.numel()
            ),
        ));
    }
    let size = dst.dtype().size();
    let (start, bytes) = (offset * size, n * size);
    match common_device(OP, &[dst, src])? {
        Device::Cpu => {
            let from = src.host_bytes().unwrap_or_default();
            if let Some(to) = dst.host_bytes_mut() {
                to[start..start + bytes].copy_from_slice(from);
            }
            Ok(())
        }
        Device::Gpu(backend) => {
            let to = dst.device_addr_mut()?.unwrap_or(0);
            let from = src.device_addr().unwrap_or(0);
            backend.copy(from, to + start as u64, bytes)
        }
    }
}
