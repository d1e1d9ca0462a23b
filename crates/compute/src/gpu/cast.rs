//! Launches of kernels/cast.cu: one kernel per (from, to) pair.

use std::sync::Arc;

use super::{args, per_element};
use crate::backend::GpuBackend;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::launch::Arg;
use crate::tensor::Tensor;

pub fn cast(backend: &Arc<dyn GpuBackend>, x: &Tensor, to: DType) -> Result<Tensor> {
    let from = match x.dtype() {
        DType::F32 => kernels::cast::CAST_F32,
        DType::BF16 => kernels::cast::CAST_BF16,
        DType::F16 => kernels::cast::CAST_F16,
        DType::I32 => kernels::cast::CAST_I32,
        DType::U32 => kernels::cast::CAST_U32,
        DType::U8 => kernels::cast::CAST_U8,
    };
    let n = Arg::I64(x.numel() as i64);
    per_element(backend, (x.shape(), to), from.of(to)?, |out| args![x, out, n])
}
