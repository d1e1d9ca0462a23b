//! Launches of kernels/embed.cu: a block per id. The kernel flags ids outside the vocabulary;
//! the flag is read back (4 bytes) so a bad id is the same error as on the CPU.

use std::sync::Arc;

use super::{output, ptr, row_threads};
use crate::backend::GpuBackend;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
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
    let suffix = match table.dtype() {
        DType::F32 | DType::BF16 | DType::F16 => table.dtype().kernel_suffix(),
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
        family: "embed",
        function: format!("embedding_{suffix}"),
        dims: LaunchDims::linear(n.min(1 << 16) as u32, row_threads(d).min(256), 0),
        args: vec![
            ptr(table),
            ptr(ids),
            Arg::Ptr(out_ptr),
            Arg::Ptr(bad.addr()),
            Arg::I32(n as i32),
            Arg::I32(d as i32),
            Arg::I32(vocab as i32),
        ],
    })?;
    let mut flag = [0u8; 4];
    backend.download(bad.as_ref(), &mut flag)?;
    match i32::from_le_bytes(flag) {
        i32::MAX => Ok(out),
        pos => Err(ops::embed_bad_id(pos as usize, None, vocab)),
    }
}
