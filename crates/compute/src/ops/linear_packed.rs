//! `linear_packed`: a linear layer on the CPU over a weight packed once
//! ([`crate::cpu::matmul::packed::PackedB`]), with the bias and GELU applied to each tile of the
//! output as the product finishes it.

use crate::cpu::matmul::packed;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::host::HostBuffer;
use crate::tensor::{Storage, Tensor};

/// `act(x · Wᵀ + bias)` for `x` f32 `[.., in]` on the host, the weight packed from `[out, in]`
/// ([`packed::PackedB::from_weight`]) and an optional f32 `bias` `[out]`; `act` is exact GELU
/// when `gelu`, else nothing. Runs where [`packed::in_use`] says the blocked SGEMM does.
///
/// Equal to `ops::linear` then `ops::add` (then `ops::gelu`) up to the order in which the bias is
/// added: the product of each k block accumulates first, the bias last.
pub fn linear_packed(x: &Tensor, w: &packed::PackedB, bias: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    const OP: &str = "linear_packed";
    let (inp, out) = (w.k(), w.n());
    if !packed::in_use() {
        return Err(ComputeError::invalid(
            OP,
            "the packed product runs on CPUs whose widest vector unit is AVX2 \
             (cpu::matmul::packed::in_use says where); use ops::linear here",
        ));
    }
    if x.rank() == 0 || x.last_dim() != inp || x.dtype() != DType::F32 || !x.is_host() {
        return Err(ComputeError::shape(
            OP,
            format!(
                "x must be f32 [.., {inp}] on the host for the packed weight [{out}, {inp}], not {} {:?}{}",
                x.dtype(),
                x.shape(),
                if x.is_host() { "" } else { " on a GPU" }
            ),
        ));
    }
    let bias = match bias {
        Some(b) if b.shape() != [out] || b.dtype() != DType::F32 || !b.is_host() => {
            return Err(ComputeError::shape(
                OP,
                format!("the bias must be f32 [{out}] on the host, not {} {:?}", b.dtype(), b.shape()),
            ));
        }
        Some(b) => Some(b.as_slice::<f32>()?),
        None => None,
    };
    let rows = x.numel() / inp;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = out;
    if rows == 0 {
        return Ok(Tensor::from_parts(Storage::Host(HostBuffer::build(0, |_| ())), shape, DType::F32));
    }
    let xv = x.as_slice::<f32>()?;
    let threads = rayon::current_num_threads();
    // SAFETY: in_use() checked the CPU; the product writes all rows × out values of the buffer
    // (beta 0: none is read); the bias holds `out` values (checked above).
    let buf = unsafe {
        HostBuffer::build_written(rows * out * 4, |p| {
            packed::product_into(xv, rows, w, bias, gelu, p.cast::<f32>(), threads)
        })
    };
    Ok(Tensor::from_parts(Storage::Host(buf), shape, DType::F32))
}
