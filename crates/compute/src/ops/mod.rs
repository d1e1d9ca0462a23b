//! The op set: checked, device-agnostic entry points. Each op validates shapes, dtypes and
//! devices (errors name both operands' shapes), then runs on the operands' device — the CPU
//! implementation in `cpu/` or the kernels through `gpu/`.

mod act;
mod attention;
mod cast;
mod copy;
mod elementwise;
mod embed;
mod f32_operands;
mod kmeans;
mod lora;
mod loss;
mod matmul;
mod norm;
mod optim;
mod rope;
mod softmax;
mod topk;

pub use act::{gelu, silu, swiglu, swiglu_backward};
pub use attention::{AttentionSpec, attention, attention_backward};
pub use cast::cast;
pub use copy::copy_into;
pub use elementwise::{add, mul, scale};
pub(crate) use embed::bad_id as embed_bad_id;
pub use embed::{embedding, embedding_backward};
pub use kmeans::{kmeans_assign, kmeans_update};
pub use lora::{LoraBackward, lora_backward, lora_backward_shared, lora_expand, lora_shrink};
pub use loss::{CrossEntropy, IGNORE_INDEX, cross_entropy};
pub use matmul::{MatmulSpec, linear, linear_backward, linear_packed, matmul, matmul_bias, matmul_ex};
pub use norm::{add_layer_norm, l2_normalize, layer_norm, rms_norm, rms_norm_backward};
pub use optim::{AdamW, adamw_step, clip_grad_norm};
pub use rope::{rope, rope_backward};
pub use softmax::{SoftmaxSpec, softmax};
pub use topk::{Similarity, TopkResult, TopkSpec, topk_ivf, topk_similarity};

use half::{bf16, f16};

use crate::device::Device;
use crate::dtype::{DType, FloatElement};
use crate::error::{ComputeError, Result};
use crate::host::HostBuffer;
use crate::tensor::{Storage, Tensor};

/// The device all operands share, or an error naming where each lives.
pub(crate) fn common_device(op: &'static str, tensors: &[&Tensor]) -> Result<Device> {
    let first = tensors[0].device();
    for t in &tensors[1..] {
        if !t.device().same_as(&first) {
            let detail = tensors
                .iter()
                .map(|t| format!("{:?} on {}", t.shape(), t.device()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ComputeError::Device { op, detail });
        }
    }
    Ok(first)
}

/// `Ok` when `t` is `want`; otherwise `op`'s dtype error "`name` [shape] `verb` dtype; `advice`"
/// (`verb`: "is" or "are"). The single-dtype operand checks of the ops share it.
pub(crate) fn require_dtype(
    op: &'static str,
    t: &Tensor,
    want: DType,
    (name, verb): (&str, &str),
    advice: &str,
) -> Result<()> {
    if t.dtype() != want {
        return Err(ComputeError::dtype(
            op,
            format!("{name} {:?} {verb} {}; {advice}", t.shape(), t.dtype()),
        ));
    }
    Ok(())
}

/// Operands must share one floating-point dtype.
pub(crate) fn common_float_dtype(op: &'static str, tensors: &[&Tensor]) -> Result<DType> {
    let dt = tensors[0].dtype();
    if !dt.is_float() {
        return Err(ComputeError::dtype(
            op,
            format!(
                "{op} computes on f32, bf16 or f16; operand {:?} is {dt} (cast it first)",
                tensors[0].shape()
            ),
        ));
    }
    if let Some(t) = tensors.iter().find(|t| t.dtype() != dt) {
        return Err(ComputeError::dtype(
            op,
            format!("operand {:?} is {dt} but operand {:?} is {}", tensors[0].shape(), t.shape(), t.dtype()),
        ));
    }
    Ok(dt)
}

/// A new host tensor of `shape`/`T`, filled by `f`.
pub(crate) fn host_output<T: FloatElement>(shape: &[usize], f: impl FnOnce(&mut [T])) -> Tensor {
    let n: usize = shape.iter().product();
    let buf = HostBuffer::build(n * T::DTYPE.size(), |bytes| f(bytemuck::cast_slice_mut(bytes)));
    Tensor::from_parts(Storage::Host(buf), shape.to_vec(), T::DTYPE)
}

/// Run `$body` with `$T` bound to the Rust type of float dtype `$dt`.
macro_rules! with_float {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::dtype::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::dtype::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            $crate::dtype::DType::F16 => {
                type $T = half::f16;
                $body
            }
            other => unreachable!("dtype {other} was checked to be a float type"),
        }
    };
}
pub(crate) use with_float;

// Keep the element types referenced so `with_float!` users need no imports of their own.
const _: (Option<bf16>, Option<f16>) = (None, None);
