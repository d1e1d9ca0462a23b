//! `add`, `mul` (the second operand may be a suffix of the first's shape, repeated over the
//! leading dimensions: a bias or a per-channel scale) and `scale` by a scalar.

use super::{common_device, common_float_dtype, host_output, with_float};
use crate::cpu::elementwise::BinaryOp;
use crate::device::Device;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

fn binary(op_name: &'static str, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dt = common_float_dtype(op_name, &[a, b])?;
    let (sa, sb) = (a.shape(), b.shape());
    if sb.len() > sa.len() || sa[sa.len() - sb.len()..] != *sb {
        return Err(ComputeError::shape(
            op_name,
            format!(
                "b {sb:?} must equal a {sa:?} or a trailing part of it (it repeats over the leading dimensions)"
            ),
        ));
    }
    if b.numel() == 0 && a.numel() != 0 {
        return Err(ComputeError::shape(op_name, format!("b {sb:?} is empty but a {sa:?} is not")));
    }
    match common_device(op_name, &[a, b])? {
        Device::Cpu => with_float!(dt, T => {
            let (xa, xb) = (a.as_slice::<T>()?, b.as_slice::<T>()?);
            Ok(host_output::<T>(sa, |o| cpu::elementwise::binary(op, xa, xb, o)))
        }),
        Device::Gpu(backend) => gpu::elementwise::binary(&backend, op, a, b),
    }
}

/// `a + b`, with `b` repeated over `a`'s leading dimensions when its shape is a suffix of `a`'s.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("add", BinaryOp::Add, a, b)
}

/// `a · b` elementwise, with the same repetition rule as [`add`].
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary("mul", BinaryOp::Mul, a, b)
}

/// `x · s`.
pub fn scale(x: &Tensor, s: f32) -> Result<Tensor> {
    const OP: &str = "scale";
    let dt = common_float_dtype(OP, &[x])?;
    if !s.is_finite() {
        return Err(ComputeError::invalid(OP, format!("the scale must be finite, got {s}")));
    }
    match x.device() {
        Device::Cpu => with_float!(dt, T => {
            let xs = x.as_slice::<T>()?;
            Ok(host_output::<T>(x.shape(), |o| cpu::elementwise::scale(xs, s, o)))
        }),
        Device::Gpu(b) => gpu::elementwise::scale(&b, x, s),
    }
}
