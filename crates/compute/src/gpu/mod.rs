//! The GPU side of the ops: each op family builds the [`KernelCall`]s for `kernels/<family>.cu`
//! from buffer addresses and hands them to the device's [`GpuBackend`]. The same code runs on a
//! CUDA GPU and on the CPU emulation of the kernels, so the emulator checks these launches too.

pub mod act;
pub mod attention;
pub mod backward;
pub mod cast;
pub mod elementwise;
pub mod embed;
pub mod kmeans;
pub mod lora;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod rope;
pub mod softmax;
pub mod topk;

use std::sync::Arc;

use crate::backend::GpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::launch::Arg;
use crate::tensor::{Storage, Tensor};

/// A fresh, uninitialised output tensor on `backend`, and its address.
pub(crate) fn output(backend: &Arc<dyn GpuBackend>, shape: &[usize], dtype: DType) -> Result<(Tensor, u64)> {
    let bytes = shape.iter().product::<usize>() * dtype.size();
    let mem = backend.alloc(bytes)?;
    let addr = mem.addr();
    Ok((Tensor::from_parts(Storage::Gpu { backend: backend.clone(), mem }, shape.to_vec(), dtype), addr))
}

/// The address of a device tensor as a kernel argument. Callers have checked the device.
pub(crate) fn ptr(t: &Tensor) -> Arg {
    Arg::Ptr(t.device_addr().unwrap_or(0))
}

/// Threads for one block working on a row of `cols` elements: a multiple of 32, at most 1024.
pub(crate) fn row_threads(cols: usize) -> u32 {
    (cols.div_ceil(32) * 32).clamp(32, 1024) as u32
}

/// Blocks of 256 threads for `n` elements in a grid-stride loop (capped: each thread loops).
pub(crate) fn elementwise_dims(n: usize) -> crate::launch::LaunchDims {
    crate::launch::LaunchDims::linear(crate::launch::blocks_for(n, 256).min(1 << 16), 256, 0)
}
