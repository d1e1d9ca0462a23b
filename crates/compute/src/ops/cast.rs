//! `cast` between any two dtypes (semantics in `cpu/cast.rs`).

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::host::HostBuffer;
use crate::tensor::{Storage, Tensor};
use crate::{cpu, gpu};

/// `x` converted to `to` (the same tensor when it already has that dtype).
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    match x.device() {
        Device::Cpu => {
            let src = x.host_bytes().expect("a CPU tensor has host bytes");
            let buf =
                HostBuffer::build(x.numel() * to.size(), |dst| cpu::cast::cast(src, x.dtype(), dst, to));
            Ok(Tensor::from_parts(Storage::Host(buf), x.shape().to_vec(), to))
        }
        Device::Gpu(b) => gpu::cast::cast(&b, x, to),
    }
}
