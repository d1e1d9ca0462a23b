//! Operand helpers of the training ops (backwards, loss, optimizer): they take and give f32 —
//! training keeps activations, gradients and master weights in f32 — and these check that,
//! read the elements wherever the tensor lives, and compare shapes with errors naming both.

use std::borrow::Cow;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::ops::require_dtype;
use crate::tensor::Tensor;

/// The f32 elements of `t`, borrowed on the host, downloaded from a device.
pub(crate) fn f32_data<'a>(op: &'static str, what: &str, t: &'a Tensor) -> Result<Cow<'a, [f32]>> {
    require_dtype(
        op,
        t,
        DType::F32,
        (what, "is"),
        "backward ops take f32 (cast activations and gradients with ops::cast)",
    )?;
    if t.is_host() { Ok(Cow::Borrowed(t.as_slice::<f32>()?)) } else { Ok(Cow::Owned(t.to_vec::<f32>()?)) }
}

/// An error unless `t` is f32 (the training kernels take f32 only).
pub(crate) fn f32_only(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    require_dtype(op, t, DType::F32, (what, "is"), "backward ops take f32 (cast with ops::cast)")
}

/// An f32 tensor of `data` on `device`.
pub(crate) fn f32_output(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
    Tensor::from_slice(data, shape)?.to_device(device)
}

pub(crate) fn same_shape(op: &'static str, a: (&str, &Tensor), b: (&str, &Tensor)) -> Result<()> {
    if a.1.shape() != b.1.shape() {
        return Err(ComputeError::shape(
            op,
            format!("{} {:?} and {} {:?} must have the same shape", a.0, a.1.shape(), b.0, b.1.shape()),
        ));
    }
    Ok(())
}
