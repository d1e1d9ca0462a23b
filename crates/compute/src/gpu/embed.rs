//! Launches of kernels/embed.cu: a block per id. The kernel flags ids outside the vocabulary;
//! the flag is read back (4 bytes) so a bad id is the same error as on the CPU. The backward
//! scatter-adds with atomics into a zeroed f32 table.

use std::sync::Arc;

use super::{args, output, row_threads};
use crate::backend::GpuBackend;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::ops;
use crate::tensor::Tensor;

pub fn embedding(
    backend: &Arc<dyn GpuBackend>,
    table: &Tensor,
    ids: &Tensor,
    shape: &[usize],
) -> Result<Tensor> {
    // Kernels move float elements; other tables (integer codes) take the host path.
    match table.dtype() {
        DType::F32 | DType::BF16 | DType::F16 => {}
        _ => {
            return ops::embedding(&table.to_host()?, &ids.to_host()?)?
                .to_device(&Device::Gpu(backend.clone()));
        }
    };
    let (vocab, d) = (table.shape()[0], table.shape()[1]);
    let n = ids.numel();
    let (out, out_ptr) = output(backend, shape, table.dtype())?;
    if n == 0 || d == 0 {
        return Ok(out);
    }
    let bad = backend.upload(&i32::MAX.to_le_bytes())?;
    backend.launch(&KernelCall {
        kernel: kernels::embed::EMBEDDING.of(table.dtype())?,
        dims: LaunchDims::linear(n.min(1 << 16) as u32, row_threads(d).min(256), 0),
        args: args![table, ids, Arg::Ptr(out_ptr), Arg::Ptr(bad.addr()), n, d, vocab],
    })?;
    let mut flag = [0u8; 4];
    backend.download(bad.as_ref(), &mut flag)?;
    match i32::from_le_bytes(flag) {
        i32::MAX => Ok(out),
        pos => Err(ops::embed_bad_id(pos as usize, None, vocab)),
    }
}

/// `[vocab, d]`: rows of `dy` scatter-added by id into a zeroed table.
pub fn embedding_backward(
    backend: &Arc<dyn GpuBackend>,
    ids: &Tensor,
    dy: &Tensor,
    vocab: usize,
) -> Result<Tensor> {
    let d = dy.last_dim();
    let n = ids.numel();
    let table = Tensor::zeros(&[vocab, d], DType::F32, &Device::Gpu(backend.clone()))?;
    if n == 0 || d == 0 {
        return Ok(table);
    }
    backend.launch(&KernelCall {
        kernel: kernels::embed::EMBEDDING_BACKWARD_F32,
        dims: LaunchDims::linear(n.min(1 << 16) as u32, row_threads(d).min(256), 0),
        args: args![ids, dy, &table, n, d],
    })?;
    Ok(table)
}
