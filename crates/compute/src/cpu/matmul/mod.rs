//! Matrix products on the CPU. On a CPU with AVX2 + FMA or AVX-512, products worth splitting
//! across threads run on ragtune's own blocked SGEMM ([`blocked`], with 6 × 16 AVX2 or 6 × 32
//! AVX-512 tiles); with `RAGTUNE_SGEMM=gemm-crate`, and for the small products of attention heads
//! and LoRA ranks, on the `gemm` crate, whose `x86-v4` feature (workspace Cargo.toml) adds
//! AVX-512 kernels on stable Rust. Both choose at run time from the running CPU's features: no
//! build flag depends on the build machine.
//!
//! bf16 and f16 operands are widened to f32 first (O(mk + kn) work next to the O(mnk) product),
//! so every dtype accumulates in f32. Small batched products (attention heads) run one matrix per
//! rayon task; large ones split each product across threads.

use gemm::Parallelism;
use rayon::prelude::*;

pub mod avx2;
pub mod avx512;
pub mod blocked;
pub mod pack;
pub mod packed;

use crate::backend::GemmCall;
use crate::dtype::{DType, Element};

/// Products smaller than this (m·n·k) are not worth splitting across threads, nor packing for
/// [`blocked`]: on one Zen 3 core the `gemm` crate took 0.73–0.86× its time at 16³–64³.
const PARALLEL_MIN_WORK: usize = 96 * 96 * 96;

/// Row-major operand layout of one matrix: (row stride, column stride) in elements.
fn strides(trans: bool, rows: usize, cols: usize) -> (isize, isize) {
    // op(X) is rows × cols; stored transposed it is cols × rows.
    if trans { (1, rows as isize) } else { (cols as isize, 1) }
}

/// A GEMM described like [`GemmCall`], on f32 slices (addresses in `call` are ignored).
/// `c` is read when `call.beta != 0`.
pub fn sgemm(call: &GemmCall, a: &[f32], b: &[f32], c: &mut [f32]) {
    let per = call.stride_c.max(call.m * call.n);
    assert!(
        call.batch == 0 || c.len() >= (call.batch - 1) * per + call.m * call.n,
        "sgemm: c holds {} values, short of {} products of {}×{}",
        c.len(),
        call.batch,
        call.m,
        call.n
    );
    // SAFETY: c holds every batch entry's outputs (asserted) and is initialised, so it may be read.
    unsafe { sgemm_raw(call, a, b, c.as_mut_ptr()) }
}

/// [`sgemm`] into memory that need not be initialised when `call.beta == 0`: then every one of
/// the outputs is written and none is read (what [`crate::host::HostBuffer::build_written`]
/// needs of an op's fresh output).
///
/// # Safety
/// `c` must be valid for writes of `batch` products of m·n f32, entry i at `i · max(stride_c,
/// m·n)`, and initialised when `call.beta != 0`; `a` and `b` must hold the operands `call`
/// describes (the op checks their shapes).
pub unsafe fn sgemm_raw(call: &GemmCall, a: &[f32], b: &[f32], c: *mut f32) {
    let GemmCall { batch, m, n, k, .. } = *call;
    if m == 0 || n == 0 || batch == 0 {
        return;
    }
    let (a_rs, a_cs) = strides(call.trans_a, m, k);
    let (b_rs, b_cs) = strides(call.trans_b, k, n);
    let work = m * n * k.max(1);
    let out = Out(c, call.stride_c.max(m * n));
    let one = |i: usize, par: Parallelism| {
        let a = &a[i * call.stride_a..];
        let b = &b[i * call.stride_b..];
        // SAFETY: entry i's m·n outputs lie inside what the caller vouched for.
        let c = unsafe { out.entry(i) };
        if k == 0 {
            // An empty sum: C = beta · C; with beta = 0 nothing of C is read (0.0 is all zero bits).
            // SAFETY: entry i holds m·n values, initialised when beta ≠ 0.
            unsafe {
                if call.beta == 0.0 {
                    std::ptr::write_bytes(c, 0, m * n);
                } else {
                    std::slice::from_raw_parts_mut(c, m * n).iter_mut().for_each(|v| *v *= call.beta);
                }
            }
            return;
        }
        if own_kernel() && work >= PARALLEL_MIN_WORK {
            let threads = match par {
                Parallelism::Rayon(t) => t,
                _ => 1,
            };
            let view = |x: &[f32], (rs, cs): (isize, isize)| pack::View {
                ptr: x.as_ptr(),
                rs: rs as usize,
                cs: cs as usize,
            };
            let prob = blocked::Problem {
                m,
                n,
                k,
                alpha: call.alpha,
                beta: call.beta,
                a: view(a, (a_rs, a_cs)),
                b: view(b, (b_rs, b_cs)),
                packed_b: None,
                epilogue: packed::Epilogue::NONE,
                c,
                ldc: n,
            };
            // SAFETY: own_kernel() checked the CPU; the op checked that each operand holds these
            // shapes at these strides (as the crate's call below relies on too); k ≥ 1 (above).
            unsafe { blocked::sgemm(&prob, threads) };
            return;
        }
        // SAFETY: the op checked that each operand holds batch matrices of these shapes (or one
        // when its stride is 0); C is read only when beta ≠ 0.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c,
                1,
                n as isize,
                call.beta != 0.0,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                call.beta,
                call.alpha,
                false,
                false,
                false,
                par,
            )
        }
    };
    let threads = rayon::current_num_threads();
    if work >= PARALLEL_MIN_WORK || batch == 1 {
        let par = if work >= PARALLEL_MIN_WORK && threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        (0..batch).for_each(|i| one(i, par));
    } else {
        (0..batch).into_par_iter().for_each(|i| one(i, Parallelism::None));
    }
}

/// Whether f32 products run on [`blocked`]: on a CPU with AVX2 + FMA or AVX-512 (see
/// [`crate::cpu::gemv_simd::Isa`], which `RAGTUNE_CPU_ISA` caps), unless `RAGTUNE_SGEMM=gemm-crate`
/// asks for the `gemm` crate (for measuring what each gains).
pub(crate) fn own_kernel() -> bool {
    static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| {
        use crate::cpu::gemv_simd::Isa;
        matches!(Isa::detected(), Isa::Avx2 | Isa::Avx512)
            && std::env::var("RAGTUNE_SGEMM").as_deref() != Ok("gemm-crate")
    })
}

/// C's first entry and the stride between entries, shared across rayon tasks; each task writes
/// only its own entry.
#[derive(Clone, Copy)]
struct Out(*mut f32, usize);

// SAFETY: the tasks holding an `Out` write disjoint entries of C (one batch index each).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Entry `i` of C. A method, so closures capture the whole `Out` (its raw pointer alone is
    /// neither Send nor Sync).
    ///
    /// # Safety
    /// Entry `i` must lie inside the memory `Out` was made from.
    unsafe fn entry(self, i: usize) -> *mut f32 {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.add(i * self.1) }
    }
}

/// Widen any float slice to f32 (a borrow when it already is f32).
pub fn widen<T: Element>(x: &[T]) -> std::borrow::Cow<'_, [f32]> {
    if T::DTYPE == DType::F32 {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(x))
    } else {
        std::borrow::Cow::Owned(x.par_iter().map(|v| v.to_f32()).collect())
    }
}

/// `dst (m × n, row stride dst_rs) = [dst +] scale · lhs (m × k) · rhs (k × n)`, single-threaded
/// (callers run one per rayon task). `lhs[i][p]` is at `i·lhs_rs + p·lhs_cs`, `rhs[p][j]` at
/// `p·rhs_rs + j·rhs_cs`: the strides let an operand be read transposed or in place
/// from a wider layout (attention's K/V in `[b, s, h, d]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
    scale: f32,
) {
    assert!(dst.len() >= (m - 1) * dst_rs + n, "gemm_strided: dst too short");
    assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs, "gemm_strided: lhs too short");
    assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs, "gemm_strided: rhs too short");
    // SAFETY: the asserts above bound every index the strides reach.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
