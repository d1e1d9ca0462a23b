//! What a kernel launch is, independent of who executes it.
//!
//! A [`KernelCall`] names a kernel (a typed [`Kernel`] handle: the `kernels/<family>.cu` file and
//! the `extern "C" __global__` name), a grid/block/shared-memory configuration and the argument list,
//! exactly as `cuLaunchKernel` takes it. The GPU side of every op builds one of these from buffer
//! addresses; the CUDA backend hands it to the driver, and the CPU emulation of the kernels
//! (`ragtune-kernel-emu`) runs the very same call on host memory. One code path decides the
//! arguments for both, so a parity test on the emulator checks the launch logic too.

pub use crate::kernels::Kernel;

/// One kernel argument, by value. Pointers are raw addresses: device addresses on a GPU, host
/// addresses on the emulator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
}

impl Arg {
    /// The argument's bytes as the kernel receives them (little-endian, natural size).
    pub fn bytes(&self) -> Vec<u8> {
        match *self {
            Arg::Ptr(v) | Arg::U64(v) => v.to_le_bytes().to_vec(),
            Arg::I64(v) => v.to_le_bytes().to_vec(),
            Arg::I32(v) => v.to_le_bytes().to_vec(),
            Arg::U32(v) => v.to_le_bytes().to_vec(),
            Arg::F32(v) => v.to_le_bytes().to_vec(),
        }
    }
}

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

impl LaunchDims {
    /// A 1-D grid of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32, shared_bytes: u32) -> Self {
        LaunchDims { grid: (blocks.max(1), 1, 1), block: (threads, 1, 1), shared_bytes }
    }
    pub fn threads_per_block(&self) -> u32 {
        self.block.0 * self.block.1 * self.block.2
    }
    pub fn blocks(&self) -> u64 {
        self.grid.0 as u64 * self.grid.1 as u64 * self.grid.2 as u64
    }
}

/// A complete kernel launch.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCall {
    /// Which kernel: one of the generated handles of [`crate::kernels`].
    pub kernel: Kernel,
    pub dims: LaunchDims,
    pub args: Vec<Arg>,
}

/// Blocks needed to cover `n` items with `per_block` items per block.
pub fn blocks_for(n: usize, per_block: usize) -> u32 {
    n.div_ceil(per_block.max(1)).max(1) as u32
}
