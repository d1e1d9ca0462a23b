//! Batched matrix products with either operand transposed; f32 accumulation for every dtype.
//! `linear_backward` is two of these products, so it runs on any device and dtype.
//! `linear_packed` is a linear layer on the CPU over a weight packed once
//! ([`crate::cpu::matmul::packed::PackedB`]), with the bias and GELU applied to each tile of the
//! output as the product finishes it.

use super::{common_device, common_float_dtype, host_output, with_float};
use crate::backend::GemmCall;
use crate::cpu::matmul::{packed, sgemm, widen};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{ComputeError, Result};
use crate::host::HostBuffer;
use crate::tensor::{Storage, Tensor};
use crate::{cpu, gpu};

/// How to read the operands of [`matmul_ex`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulSpec {
    /// A is stored `[.., k, m]`: the product uses Aᵀ.
    pub trans_a: bool,
    /// B is stored `[.., n, k]` (a PyTorch `Linear` weight): the product uses Bᵀ.
    pub trans_b: bool,
    /// Scales the product.
    pub alpha: f32,
}

impl Default for MatmulSpec {
    fn default() -> Self {
        MatmulSpec { trans_a: false, trans_b: false, alpha: 1.0 }
    }
}

/// `a · b` for `a` `[.., m, k]` and `b` `[.., k, n]` (or `[k, n]`, shared by every batch entry).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_ex(a, b, MatmulSpec::default())
}

/// `x · wᵀ` for `x` `[.., in]` and a weight `w` `[out, in]`: a linear layer without bias.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 || w.rank() != 2 {
        return Err(ComputeError::shape(
            "linear",
            format!("x {:?} must be [.., in] and the weight {:?} must be [out, in]", x.shape(), w.shape()),
        ));
    }
    let inner = x.last_dim();
    let rows = x.numel() / inner.max(1);
    let flat = x.reshape(&[rows, inner])?;
    let y = matmul_ex(&flat, w, MatmulSpec { trans_b: true, ..Default::default() }).map_err(|e| match e {
        ComputeError::Shape { .. } => ComputeError::shape(
            "linear",
            format!(
                "x {:?} has {inner} input features but the weight {:?} expects {}",
                x.shape(),
                w.shape(),
                w.shape()[1]
            ),
        ),
        other => other,
    })?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = w.shape()[0];
    y.reshape(&shape)
}

/// `a · b + bias` for `a` `[m, k]`, `b` `[k, n]` and `bias` `[n]` added to every row: a linear
/// layer with its bias, over a weight stored `[in, out]`.
///
/// On the CPU in f32 the output's rows start as the bias and the product accumulates onto them,
/// so the bias costs one write of the output instead of a second pass that reads it and writes a
/// new one. Elsewhere it is [`matmul`] then [`super::add`]. The sum is the same either way up to
/// the order of additions (the product may be added onto the bias in blocks of k).
pub fn matmul_bias(a: &Tensor, b: &Tensor, bias: &Tensor) -> Result<Tensor> {
    const OP: &str = "matmul_bias";
    let (sa, sb, sc) = (a.shape(), b.shape(), bias.shape());
    if sa.len() != 2 || sb.len() != 2 || sc.len() != 1 || sa[1] != sb[0] || sc[0] != sb[1] {
        return Err(ComputeError::shape(
            OP,
            format!("a {sa:?} must be [m, k], b {sb:?} [k, n] and the bias {sc:?} [n] for the same k and n"),
        ));
    }
    let dt = common_float_dtype(OP, &[a, b, bias])?;
    let (m, k, n) = (sa[0], sa[1], sb[1]);
    let host = matches!(common_device(OP, &[a, b, bias])?, Device::Cpu);
    if !host || dt != DType::F32 || m <= cpu::gemv::MAX_ROWS {
        return super::add(&matmul(a, b)?, bias);
    }
    let (av, bv, cv) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?, bias.as_slice::<f32>()?);
    let call = GemmCall {
        batch: 1,
        m,
        n,
        k,
        a: 0,
        b: 0,
        c: 0,
        trans_a: false,
        trans_b: false,
        stride_a: 0,
        stride_b: 0,
        stride_c: m * n,
        in_dtype: dt,
        out_dtype: dt,
        alpha: 1.0,
        beta: 1.0,
    };
    // SAFETY: the m rows of n values are all written with the bias before the GEMM reads and
    // accumulates onto them (beta 1); `av`, `bv` hold the checked [m, k] and [k, n] operands.
    let buf = unsafe {
        HostBuffer::build_written(m * n * 4, |p| {
            let c = p.cast::<f32>();
            for i in 0..m {
                std::ptr::copy_nonoverlapping(cv.as_ptr(), c.add(i * n), n);
            }
            cpu::matmul::sgemm_raw(&call, av, bv, c);
        })
    };
    Ok(Tensor::from_parts(Storage::Host(buf), vec![m, n], DType::F32))
}

/// The general product: `alpha · op(a) · op(b)`, batched over leading dimensions.
pub fn matmul_ex(a: &Tensor, b: &Tensor, spec: MatmulSpec) -> Result<Tensor> {
    const OP: &str = "matmul";
    let dt = common_float_dtype(OP, &[a, b])?;
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() < 2 || sb.len() < 2 {
        return Err(ComputeError::shape(
            OP,
            format!("operands need at least 2 dimensions: a {sa:?}, b {sb:?}"),
        ));
    }
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let (ra, rb) = (&sa[sa.len() - 2..], &sb[sb.len() - 2..]);
    let (m, k) = if spec.trans_a { (ra[1], ra[0]) } else { (ra[0], ra[1]) };
    let (kb, n) = if spec.trans_b { (rb[1], rb[0]) } else { (rb[0], rb[1]) };
    let ta = if spec.trans_a { "ᵀ" } else { "" };
    let tb = if spec.trans_b { "ᵀ" } else { "" };
    if k != kb {
        return Err(ComputeError::shape(
            OP,
            format!(
                "a{ta} {sa:?} gives k = {k} but b{tb} {sb:?} gives k = {kb}: inner dimensions must agree"
            ),
        ));
    }
    if !ba.is_empty() && !bb.is_empty() && ba != bb {
        return Err(ComputeError::shape(
            OP,
            format!(
                "batch dimensions differ: a {sa:?} has {ba:?}, b {sb:?} has {bb:?} (one may be 2-D instead)"
            ),
        ));
    }
    if !spec.alpha.is_finite() {
        return Err(ComputeError::invalid(OP, format!("alpha must be finite, got {}", spec.alpha)));
    }
    let batch_dims = if ba.is_empty() { bb } else { ba };
    let batch: usize = batch_dims.iter().product();
    let mut out_shape = batch_dims.to_vec();
    out_shape.extend([m, n]);
    let call = GemmCall {
        batch,
        m,
        n,
        k,
        a: 0,
        b: 0,
        c: 0,
        trans_a: spec.trans_a,
        trans_b: spec.trans_b,
        stride_a: if ba.is_empty() { 0 } else { m * k },
        stride_b: if bb.is_empty() { 0 } else { k * n },
        stride_c: m * n,
        in_dtype: dt,
        out_dtype: dt,
        alpha: spec.alpha,
        beta: 0.0,
    };
    match common_device(OP, &[a, b])? {
        // A decode step: one or a few rows against a shared weight. Stream the weight once in
        // its own precision instead of widening and packing it.
        Device::Cpu if batch == 1 && m <= cpu::gemv::MAX_ROWS && m > 0 && n > 0 && k > 0 => {
            with_float!(dt, T => {
                let av = a.as_slice::<T>()?;
                let rows: Vec<f32> = if spec.trans_a {
                    (0..m * k).map(|idx| av[(idx % k) * m + idx / k].to_f32()).collect()
                } else {
                    widen(av).into_owned()
                };
                let bv = b.as_slice::<T>()?;
                Ok(host_output::<T>(&out_shape, |o| {
                    if let Ok(o32) = bytemuck::try_cast_slice_mut::<T, f32>(o)
                        && T::DTYPE == DType::F32
                    {
                        cpu::gemv::gemv_rows(&rows, bv, [m, n, k], spec.trans_b, spec.alpha, o32);
                    } else {
                        let mut tmp = vec![0f32; m * n];
                        cpu::gemv::gemv_rows(&rows, bv, [m, n, k], spec.trans_b, spec.alpha, &mut tmp);
                        narrow(&tmp, o);
                    }
                }))
            })
        }
        Device::Cpu => with_float!(dt, T => {
            let (wa, wb) = (widen(a.as_slice::<T>()?), widen(b.as_slice::<T>()?));
            if T::DTYPE == DType::F32 {
                let bytes = out_shape.iter().product::<usize>() * 4;
                // SAFETY: beta is 0 and stride_c = m·n: sgemm_raw writes each of the batch·m·n
                // outputs (all `bytes`) and reads none; `wa` and `wb` hold the checked operands.
                let buf = unsafe {
                    HostBuffer::build_written(bytes, |p| cpu::matmul::sgemm_raw(&call, &wa, &wb, p.cast()))
                };
                return Ok(Tensor::from_parts(Storage::Host(buf), out_shape, DType::F32));
            }
            // bf16 / f16: accumulate in f32, then round once into the output's dtype.
            Ok(host_output::<T>(&out_shape, |o| {
                let mut tmp = vec![0f32; o.len()];
                sgemm(&call, &wa, &wb, &mut tmp);
                narrow(&tmp, o);
            }))
        }),
        Device::Gpu(backend) => gpu::matmul::matmul(&backend, a, b, call, &out_shape),
    }
}

fn narrow<T: Element>(src: &[f32], dst: &mut [T]) {
    cpu::cast::cast(bytemuck::cast_slice(src), DType::F32, bytemuck::cast_slice_mut(dst), T::DTYPE);
}

/// Gradients of `y = linear(x, w)` (x `[.., in]`, w `[out, in]`) given `dy` `[.., out]`:
/// `dx = dy · w` `[.., in]`, and when `x` is given, `dw = dyᵀ · x` `[out, in]` summed over every
/// row. Pass `x = None` for a frozen weight (LoRA's base): only `dx` is computed. Any device and
/// float dtype (the products are `matmul_ex`).
pub fn linear_backward(x: Option<&Tensor>, w: &Tensor, dy: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "linear_backward";
    if w.rank() != 2 || dy.rank() == 0 || dy.last_dim() != w.shape()[0] {
        return Err(ComputeError::shape(
            OP,
            format!("dy {:?} must be [.., out] for the weight {:?} [out, in]", dy.shape(), w.shape()),
        ));
    }
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    let rows = dy.numel() / out.max(1);
    let dy2 = dy.reshape(&[rows, out])?;
    let mut dx_shape = dy.shape().to_vec();
    *dx_shape.last_mut().expect("rank >= 1") = inp;
    let dx = matmul_ex(&dy2, w, MatmulSpec::default())?.reshape(&dx_shape)?;
    let dw = match x {
        None => None,
        Some(x) => {
            if x.shape() != dx_shape.as_slice() {
                return Err(ComputeError::shape(
                    OP,
                    format!(
                        "x {:?} must be {dx_shape:?} to match dy {:?} and w {:?}",
                        x.shape(),
                        dy.shape(),
                        w.shape()
                    ),
                ));
            }
            let x2 = x.reshape(&[rows, inp])?;
            Some(matmul_ex(&dy2, &x2, MatmulSpec { trans_a: true, ..Default::default() })?)
        }
    };
    Ok((dx, dw))
}

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
            "the packed product runs on ragtune's own SGEMM, on CPUs with AVX2 + FMA or AVX-512 \
             unless RAGTUNE_SGEMM=gemm-crate (cpu::matmul::packed::in_use says where); use ops::linear here",
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
    let kernel = crate::cpu::matmul::blocked::Kernel::for_this_cpu();
    // SAFETY: in_use() checked the CPU (this CPU's kernel runs); the product writes all rows × out
    // values of the buffer (beta 0: none is read); the bias holds `out` values (checked above).
    let buf = unsafe {
        HostBuffer::build_written(rows * out * 4, |p| {
            packed::product_into(kernel, xv, rows, w, bias, gelu, p.cast::<f32>(), threads)
        })
    };
    Ok(Tensor::from_parts(Storage::Host(buf), shape, DType::F32))
}
