//! Row softmax over the last dimension, with an optional scale and causal mask.

use super::{common_device, common_float_dtype, host_output, with_float};
use crate::device::Device;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxSpec {
    /// Multiplies the logits before the softmax (1/√d in attention).
    pub scale: f32,
    /// Treat the last two dimensions `[rows, cols]` as attention scores with a causal mask: row
    /// `i` sees columns `j ≤ i + cols − rows`.
    pub causal: bool,
}

impl Default for SoftmaxSpec {
    fn default() -> Self {
        SoftmaxSpec { scale: 1.0, causal: false }
    }
}

pub fn softmax(x: &Tensor, spec: SoftmaxSpec) -> Result<Tensor> {
    const OP: &str = "softmax";
    let dt = common_float_dtype(OP, &[x])?;
    if x.rank() == 0 || (spec.causal && x.rank() < 2) {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?} needs at least {} dimensions", x.shape(), if spec.causal { 2 } else { 1 }),
        ));
    }
    if !spec.scale.is_finite() {
        return Err(ComputeError::invalid(OP, format!("scale must be finite, got {}", spec.scale)));
    }
    let cols = x.last_dim();
    let rows = if spec.causal { x.shape()[x.rank() - 2] } else { 1 };
    if rows > i32::MAX as usize || cols > i32::MAX as usize || x.numel() / cols.max(1) > i32::MAX as usize {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?}: the number of rows and the row length must each fit in 31 bits", x.shape()),
        ));
    }
    match common_device(OP, &[x])? {
        Device::Cpu => with_float!(dt, T => {
            let xs = x.as_slice::<T>()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::softmax::softmax(xs, rows, cols, spec.scale, spec.causal, o)))
        }),
        Device::Gpu(b) => gpu::softmax::softmax(&b, x, rows, spec.scale, spec.causal),
    }
}
