//! Plain GEMMs through cuBLAS (`cublasGemmStridedBatchedEx`, f32 accumulation).
//!
//! ragtune's matrices are row-major; cuBLAS's are column-major. A row-major `C = op(A)·op(B)`
//! is the column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`, so B goes first and the dimensions swap.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::driver::CudaStream;

use crate::backend::GemmCall;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};

pub(super) struct Blas {
    handle: CudaBlas,
}

fn cuda_type(op: &'static str, dtype: DType) -> Result<cudaDataType> {
    Ok(match dtype {
        DType::F32 => cudaDataType::CUDA_R_32F,
        DType::BF16 => cudaDataType::CUDA_R_16BF,
        DType::F16 => cudaDataType::CUDA_R_16F,
        other => {
            return Err(ComputeError::dtype(op, format!("cuBLAS GEMM takes f32, bf16 or f16, not {other}")));
        }
    })
}

fn int(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| ComputeError::invalid("matmul", format!("{what} = {v} exceeds cuBLAS's 32-bit limit")))
}

impl Blas {
    pub(super) fn new(stream: Arc<CudaStream>) -> Result<Blas> {
        let handle = CudaBlas::new(stream)
            .map_err(|e| ComputeError::cuda("creating a cuBLAS handle (is libcublas.so.13 installed?)", e))?;
        Ok(Blas { handle })
    }

    pub(super) fn gemm(&self, g: &GemmCall) -> Result<()> {
        let in_type = cuda_type("matmul", g.in_dtype)?;
        let out_type = cuda_type("matmul", g.out_dtype)?;
        let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        let (m, n, k) = (int("n", g.n)?, int("m", g.m)?, int("k", g.k)?);
        let lda = int("ld", if g.trans_b { g.k } else { g.n })?.max(1);
        let ldb = int("ld", if g.trans_a { g.m } else { g.k })?.max(1);
        let ldc = int("ld", g.n)?.max(1);
        let (alpha, beta) = (g.alpha, g.beta);
        // SAFETY: the op checked that every buffer holds batch × its matrix (or one matrix when the
        // stride is 0), and alpha/beta live on this stack frame for the duration of the call.
        let status = unsafe {
            cudarc::cublas::sys::cublasGemmStridedBatchedEx(
                *self.handle.handle(),
                op(g.trans_b),
                op(g.trans_a),
                m,
                n,
                k,
                &alpha as *const f32 as *const c_void,
                g.b as *const c_void,
                in_type,
                lda,
                g.stride_b as i64,
                g.a as *const c_void,
                in_type,
                ldb,
                g.stride_a as i64,
                &beta as *const f32 as *const c_void,
                g.c as *mut c_void,
                out_type,
                ldc,
                g.stride_c as i64,
                int("batch", g.batch)?,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        status.result().map_err(|e| {
            ComputeError::cuda(format!("cuBLAS GEMM {}x{}x{} (batch {})", g.m, g.n, g.k, g.batch), e)
        })
    }
}
