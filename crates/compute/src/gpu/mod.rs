//! The GPU side of the ops: each op family builds the [`KernelCall`]s for `kernels/<family>.cu`
//! from buffer addresses and hands them to the device's [`GpuBackend`]. The same code runs on a
//! CUDA GPU and on the CPU emulation of the kernels, so the emulator checks these launches too.

pub mod act;
pub mod attention;
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

use crate::backend::{DeviceMemory, GpuBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::Kernel;
use crate::launch::{Arg, KernelCall, LaunchDims};
use crate::tensor::{Storage, Tensor};

/// An op's value as the kernel argument its `.cu` signature takes: a tensor or a scratch buffer
/// is its device address (`None`: a null pointer), a size an `int`, a flag an `int` 0/1, an `f32`
/// a `float`; an [`Arg`] passes as it is (raw addresses, `long long` counts).
pub(crate) trait IntoArg {
    fn into_arg(self) -> Arg;
}

macro_rules! into_arg {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl IntoArg for $t {
            fn into_arg(self) -> Arg {
                let $v = self;
                $e
            }
        })*
    };
}
into_arg! {
    Arg => |a| a,
    &Tensor => |t| ptr(t),
    Option<&Tensor> => |t| t.map_or(Arg::Ptr(0), ptr),
    &Arc<dyn DeviceMemory> => |m| Arg::Ptr(m.addr()),
    usize => |v| Arg::I32(v as i32),
    i32 => |v| Arg::I32(v),
    bool => |v| Arg::I32(v as i32),
    f32 => |v| Arg::F32(v),
}

/// A kernel's argument list from op values, converted by [`IntoArg`].
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::gpu::IntoArg::into_arg($a)),*] };
}
pub(crate) use args;

/// Launches `kernel` over `dims` into a fresh output of `shape` and `dtype`; `args` receives the
/// output's address. An `empty` launch (nothing to compute) is skipped and the output returned as
/// allocated.
pub(crate) fn launch_into(
    backend: &Arc<dyn GpuBackend>,
    (shape, dtype): (&[usize], DType),
    kernel: Kernel,
    dims: LaunchDims,
    empty: bool,
    args: impl FnOnce(Arg) -> Vec<Arg>,
) -> Result<Tensor> {
    let (out, out_ptr) = output(backend, shape, dtype)?;
    if !empty {
        backend.launch(&KernelCall { kernel, dims, args: args(Arg::Ptr(out_ptr)) })?;
    }
    Ok(out)
}

/// One block per row of `cols` elements of `x`, into an output shaped like `x`.
pub(crate) fn per_row(
    backend: &Arc<dyn GpuBackend>,
    x: &Tensor,
    kernel: Kernel,
    cols: usize,
    args: impl FnOnce(Arg) -> Vec<Arg>,
) -> Result<Tensor> {
    let rows = x.numel() / cols.max(1);
    let dims = LaunchDims::linear(rows as u32, row_threads(cols), 0);
    launch_into(backend, (x.shape(), x.dtype()), kernel, dims, rows == 0 || cols == 0, args)
}

/// A grid-stride loop over the elements of an output of `shape` and `dtype`.
pub(crate) fn per_element(
    backend: &Arc<dyn GpuBackend>,
    (shape, dtype): (&[usize], DType),
    kernel: Kernel,
    args: impl FnOnce(Arg) -> Vec<Arg>,
) -> Result<Tensor> {
    let n = shape.iter().product();
    launch_into(backend, (shape, dtype), kernel, elementwise_dims(n), n == 0, args)
}

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
