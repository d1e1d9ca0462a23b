//! Embedding lookup: rows of a `[vocab, d]` table by token id; its backward scatter-adds the
//! output gradient into a `[vocab, d]` f32 table.

use super::common_device;
use super::f32_operands::{f32_data, f32_only, f32_output};
use super::require_dtype;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::host::HostBuffer;
use crate::tensor::{Storage, Tensor};
use crate::{cpu, gpu};

/// Embedding lookup: table `[vocab, d]` (any dtype; the output has it), ids i32 of any shape ->
/// `[..ids.shape, d]`.
///
/// An id outside `[0, vocab)` is an error on every device, naming its position. On the CPU the
/// ids are checked first; on a GPU the kernel writes zeros for such a row and records the first
/// bad position, which the op reads back (one 4-byte copy) and turns into the same error.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    const OP: &str = "embedding";
    if table.rank() != 2 {
        return Err(ComputeError::shape(OP, format!("table {:?} must be [vocab, dim]", table.shape())));
    }
    require_dtype(OP, ids, DType::I32, ("ids", "are"), "token ids must be i32")?;
    let (vocab, d) = (table.shape()[0], table.shape()[1]);
    if ids.numel() > i32::MAX as usize || vocab > i32::MAX as usize {
        return Err(ComputeError::shape(
            OP,
            format!("ids {:?} / table {:?}: counts must fit in 31 bits", ids.shape(), table.shape()),
        ));
    }
    let mut shape = ids.shape().to_vec();
    shape.push(d);
    match common_device(OP, &[table, ids])? {
        Device::Cpu => {
            let id = ids.as_slice::<i32>()?;
            if let Some(pos) = cpu::embed::first_bad_id(id, vocab) {
                return Err(bad_id(pos, Some(id[pos]), vocab));
            }
            let bytes = table.host_bytes().unwrap_or_default();
            let row = d * table.dtype().size();
            let buf = HostBuffer::build(id.len() * row, |o| cpu::embed::embedding(bytes, id, row, o));
            Ok(Tensor::from_parts(Storage::Host(buf), shape, table.dtype()))
        }
        Device::Gpu(backend) => gpu::embed::embedding(&backend, table, ids, &shape),
    }
}

/// The error for an id outside the vocabulary at flat position `pos` of `ids`.
pub(crate) fn bad_id(pos: usize, id: Option<i32>, vocab: usize) -> ComputeError {
    let id = id.map_or_else(|| "an id".to_string(), |id| format!("id {id}"));
    ComputeError::invalid(
        "embedding",
        format!(
            "ids[{pos}] (flat position): {id} lies outside the vocabulary 0..{vocab}; check the tokenizer matches the model"
        ),
    )
}

/// Gradient of `embedding(table, ids)` w.r.t. a `[vocab, d]` table, given `dy` `[..ids, d]`:
/// rows scatter-added by id (a token seen twice gets both rows). f32 `[vocab, d]`.
pub fn embedding_backward(ids: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor> {
    const OP: &str = "embedding_backward";
    require_dtype(OP, ids, DType::I32, ("ids", "are"), "token ids must be i32")?;
    let d = dy.last_dim();
    if dy.rank() != ids.rank() + 1 || dy.shape()[..ids.rank()] != *ids.shape() {
        return Err(ComputeError::shape(
            OP,
            format!("dy {:?} must be [..ids {:?}, dim]: one gradient row per id", dy.shape(), ids.shape()),
        ));
    }
    let device = common_device(OP, &[ids, dy])?;
    let id = ids.to_vec::<i32>()?;
    if let Some(pos) = cpu::embed::first_bad_id(&id, vocab) {
        return Err(ComputeError::invalid(
            OP,
            format!("ids[{pos}] (flat position) = {} lies outside the vocabulary 0..{vocab}", id[pos]),
        ));
    }
    if let Device::Gpu(backend) = &device {
        f32_only(OP, "dy", dy)?;
        if vocab > i32::MAX as usize || id.len() > i32::MAX as usize {
            return Err(ComputeError::shape(
                OP,
                format!("ids {:?} / vocab {vocab}: counts must fit in 31 bits", ids.shape()),
            ));
        }
        return crate::gpu::embed::embedding_backward(backend, ids, dy, vocab);
    }
    let ds = f32_data(OP, "dy", dy)?;
    let mut table = vec![0f32; vocab * d];
    cpu::embed::embedding_backward(&id, &ds, d, &mut table);
    f32_output(&table, &[vocab, d], &device)
}
