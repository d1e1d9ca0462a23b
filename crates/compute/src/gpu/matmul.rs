//! Matrix products on a device: cuBLAS on a GPU (through [`GpuBackend::gemm`]).

use std::sync::Arc;

use super::{output, ptr};
use crate::backend::{GemmCall, GpuBackend};
use crate::error::Result;
use crate::launch::Arg;
use crate::tensor::Tensor;

/// `call` carries the geometry; its addresses are filled in here.
pub fn matmul(
    backend: &Arc<dyn GpuBackend>,
    a: &Tensor,
    b: &Tensor,
    mut call: GemmCall,
    out_shape: &[usize],
) -> Result<Tensor> {
    let (out, out_ptr) = output(backend, out_shape, call.out_dtype)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let addr = |t: &Tensor| match ptr(t) {
        Arg::Ptr(p) => p,
        _ => 0,
    };
    call.a = addr(a);
    call.b = addr(b);
    call.c = out_ptr;
    if call.k == 0 {
        // cuBLAS leaves C untouched for k = 0 with beta = 0 on some versions; an empty sum is 0.
        let zeros = vec![0u8; out.size_bytes()];
        let mem = backend.upload(&zeros)?;
        return Ok(Tensor::from_parts(
            crate::tensor::Storage::Gpu { backend: backend.clone(), mem },
            out_shape.to_vec(),
            call.out_dtype,
        ));
    }
    backend.gemm(&call)?;
    Ok(out)
}
