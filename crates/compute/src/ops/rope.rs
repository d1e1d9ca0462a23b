//! Rotary position embedding in Hugging Face's "rotate_half" layout. Its backward is the inverse
//! rotation — the forward with negated frequencies — so it runs on any device and dtype.

use super::require_dtype;
use super::scale;
use super::{common_device, common_float_dtype, host_output, with_float};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

/// Rotary embedding, Hugging Face "rotate_half" layout: within the first
/// `rot = 2 · inv_freq.len()` dims of each head, dim `j` pairs with `j + rot/2` and turns by the
/// angle `positions[b, s] · inv_freq[j]` (f32, as transformers computes it); dims beyond `rot`
/// pass through.
///
/// x `[b, s, h, d]` (any float dtype, the output has it too); positions i32 `[b, s]`; inv_freq
/// f32 `[rot/2]` — the caller computes it, llama3 scaling included.
pub fn rope(x: &Tensor, positions: &Tensor, inv_freq: &Tensor) -> Result<Tensor> {
    const OP: &str = "rope";
    let dt = common_float_dtype(OP, &[x])?;
    if x.rank() != 4 {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?} must be [batch, seq, heads, head_dim]", x.shape()),
        ));
    }
    let (b, s, h, d) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    if positions.dtype() != DType::I32 || positions.shape() != [b, s] {
        return Err(ComputeError::shape(
            OP,
            format!(
                "positions {:?} of {} must be i32 [{b}, {s}] (one position per token of x {:?})",
                positions.shape(),
                positions.dtype(),
                x.shape()
            ),
        ));
    }
    if inv_freq.dtype() != DType::F32 || inv_freq.rank() != 1 || 2 * inv_freq.numel() > d {
        return Err(ComputeError::shape(
            OP,
            format!(
                "inv_freq {:?} of {} must be f32 [rot / 2] with rot <= head_dim {d} of x {:?}",
                inv_freq.shape(),
                inv_freq.dtype(),
                x.shape()
            ),
        ));
    }
    if b.saturating_mul(s).saturating_mul(h) > i32::MAX as usize || d > i32::MAX as usize {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?}: rows must fit in 31 bits; split the batch", x.shape()),
        ));
    }
    match common_device(OP, &[x, positions, inv_freq])? {
        Device::Cpu => with_float!(dt, T => {
            let (xs, ps, fs) = (x.as_slice::<T>()?, positions.as_slice::<i32>()?, inv_freq.as_slice::<f32>()?);
            Ok(host_output::<T>(x.shape(), |o| cpu::rope::rope(xs, ps, fs, h, d, o)))
        }),
        Device::Gpu(backend) => gpu::rope::rope(&backend, x, positions, inv_freq),
    }
}

/// Gradient of `y = rope(x, positions, inv_freq)` given `dy`: the rotation is orthogonal, so the
/// gradient is `dy` turned back by the same angles — `rope` with negated frequencies (the angle
/// `p · (−f)` is exactly the negated forward angle). Any device and float dtype.
pub fn rope_backward(dy: &Tensor, positions: &Tensor, inv_freq: &Tensor) -> Result<Tensor> {
    require_dtype("rope_backward", inv_freq, DType::F32, ("inv_freq", "is"), "it must be f32 as for rope")?;
    rope(dy, positions, &scale(inv_freq, -1.0)?)
}
