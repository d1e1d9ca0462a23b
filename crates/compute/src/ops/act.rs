//! `silu` and `gelu` (exact, erf-based).

use super::{common_float_dtype, host_output, with_float};
use crate::cpu::act::Activation;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::{cpu, gpu};

fn activation(act: Activation, op: &'static str, x: &Tensor) -> Result<Tensor> {
    let dt = common_float_dtype(op, &[x])?;
    match x.device() {
        Device::Cpu => with_float!(dt, T => {
            let xs = x.as_slice::<T>()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::act::activation(act, xs, o)))
        }),
        Device::Gpu(b) => gpu::act::activation(&b, act, x),
    }
}

/// `x · σ(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    activation(Activation::Silu, "silu", x)
}

/// `0.5 · x · (1 + erf(x / √2))`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    activation(Activation::Gelu, "gelu", x)
}
