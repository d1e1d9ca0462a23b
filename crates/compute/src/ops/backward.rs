//! Backward ops for training: the gradients of `linear`, `rms_norm`, `rope`, `attention`,
//! `swiglu` and `embedding`, each with the forward op's shapes, masking and layout.
//!
//! Gradients are f32 (training keeps activations, gradients and master weights in f32).
//! `linear_backward` and `rope_backward` are built from forward ops, so they run on any device
//! and dtype. The others have kernels beside their forwards (kernels/norm.cu, act.cu, embed.cu,
//! attention.cu — the attention one a first, simple variant with atomics).

use std::borrow::Cow;

use super::{AttentionSpec, MatmulSpec, common_device, matmul_ex, rope, scale};
use crate::cpu;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;

/// The f32 elements of `t`, borrowed on the host, downloaded from a device.
pub(crate) fn f32_data<'a>(op: &'static str, what: &str, t: &'a Tensor) -> Result<Cow<'a, [f32]>> {
    if t.dtype() != DType::F32 {
        return Err(ComputeError::dtype(
            op,
            format!(
                "{what} {:?} is {}; backward ops take f32 (cast activations and gradients with ops::cast)",
                t.shape(),
                t.dtype()
            ),
        ));
    }
    if t.is_host() { Ok(Cow::Borrowed(t.as_slice::<f32>()?)) } else { Ok(Cow::Owned(t.to_vec::<f32>()?)) }
}

/// An error unless `t` is f32 (the training kernels take f32 only).
fn f32_only(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(ComputeError::dtype(
            op,
            format!("{what} {:?} is {}; backward ops take f32 (cast with ops::cast)", t.shape(), t.dtype()),
        ));
    }
    Ok(())
}

/// An f32 tensor of `data` on `device`.
pub(crate) fn f32_output(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
    Tensor::from_slice(data, shape)?.to_device(device)
}

fn same_shape(op: &'static str, a: (&str, &Tensor), b: (&str, &Tensor)) -> Result<()> {
    if a.1.shape() != b.1.shape() {
        return Err(ComputeError::shape(
            op,
            format!("{} {:?} and {} {:?} must have the same shape", a.0, a.1.shape(), b.0, b.1.shape()),
        ));
    }
    Ok(())
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

/// Gradients of `y = rms_norm(x, w, eps)` given `dy`: `(dx, dw)`, f32.
pub fn rms_norm_backward(x: &Tensor, w: &Tensor, dy: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    const OP: &str = "rms_norm_backward";
    same_shape(OP, ("x", x), ("dy", dy))?;
    if x.rank() == 0 || w.rank() != 1 || w.numel() != x.last_dim() {
        return Err(ComputeError::shape(
            OP,
            format!(
                "weight {:?} must be [{}] to match the last dimension of x {:?}",
                w.shape(),
                x.last_dim(),
                x.shape()
            ),
        ));
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(ComputeError::invalid(OP, format!("eps must be finite and >= 0, got {eps}")));
    }
    let device = common_device(OP, &[x, w, dy])?;
    if let Device::Gpu(backend) = &device {
        for (what, t) in [("x", x), ("w", w), ("dy", dy)] {
            f32_only(OP, what, t)?;
        }
        return crate::gpu::backward::rms_norm_backward(backend, x, w, dy, eps);
    }
    let (xs, ws, ds) = (f32_data(OP, "x", x)?, f32_data(OP, "w", w)?, f32_data(OP, "dy", dy)?);
    let mut dx = vec![0f32; xs.len()];
    let dw = cpu::backward::rms_norm_backward(&xs, &ws, &ds, eps, &mut dx);
    Ok((f32_output(&dx, x.shape(), &device)?, f32_output(&dw, w.shape(), &device)?))
}

/// Gradient of `y = rope(x, positions, inv_freq)` given `dy`: the rotation is orthogonal, so the
/// gradient is `dy` turned back by the same angles — `rope` with negated frequencies (the angle
/// `p · (−f)` is exactly the negated forward angle). Any device and float dtype.
pub fn rope_backward(dy: &Tensor, positions: &Tensor, inv_freq: &Tensor) -> Result<Tensor> {
    if inv_freq.dtype() != DType::F32 {
        return Err(ComputeError::dtype(
            "rope_backward",
            format!("inv_freq {:?} is {}; it must be f32 as for rope", inv_freq.shape(), inv_freq.dtype()),
        ));
    }
    rope(dy, positions, &scale(inv_freq, -1.0)?)
}

/// Gradients `(dq, dk, dv)` of [`super::attention`] with the same `spec` and `key_lens`
/// (causal alignment, sliding window, GQA, masking), given `dout` `[b, sq, hq, d]`. The
/// probabilities are recomputed from q and k, so nothing but the inputs needs saving. f32; a
/// query row that saw no key gets a zero gradient.
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dout: &Tensor,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "attention_backward";
    let dims = super::attention::check(q, k, v, spec, key_lens)?;
    same_shape(OP, ("dout", dout), ("q", q))?;
    let mut all = vec![q, k, v, dout];
    all.extend(key_lens);
    let device = common_device(OP, &all)?;
    let lens: Option<Vec<i32>> = key_lens.map(|l| l.to_vec::<i32>()).transpose()?;
    if let Some(lens) = &lens
        && let Some((i, &l)) = lens.iter().enumerate().find(|&(_, &l)| l < 0 || l as usize > dims.skv)
    {
        return Err(ComputeError::invalid(
            OP,
            format!(
                "key_lens[{i}] = {l} lies outside 0..={} (the key length of k {:?})",
                dims.skv,
                k.shape()
            ),
        ));
    }
    if let Device::Gpu(backend) = &device {
        for (what, t) in [("q", q), ("k", k), ("v", v), ("dout", dout)] {
            f32_only(OP, what, t)?;
        }
        return crate::gpu::backward::attention_backward(backend, q, k, v, dout, dims, spec, key_lens);
    }
    let (qs, ks, vs) = (f32_data(OP, "q", q)?, f32_data(OP, "k", k)?, f32_data(OP, "v", v)?);
    let ds = f32_data(OP, "dout", dout)?;
    let (mut dq, mut dk, mut dv) = (vec![0f32; qs.len()], vec![0f32; ks.len()], vec![0f32; vs.len()]);
    cpu::backward::attention_backward(
        &qs,
        &ks,
        &vs,
        &ds,
        dims,
        spec.mask(),
        spec.scale,
        lens.as_deref(),
        &mut dq,
        &mut dk,
        &mut dv,
    );
    Ok((
        f32_output(&dq, q.shape(), &device)?,
        f32_output(&dk, k.shape(), &device)?,
        f32_output(&dv, v.shape(), &device)?,
    ))
}

/// Gradients `(dgate, dup)` of `swiglu(gate, up)` given `dy`; f32.
pub fn swiglu_backward(gate: &Tensor, up: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "swiglu_backward";
    same_shape(OP, ("gate", gate), ("up", up))?;
    same_shape(OP, ("gate", gate), ("dy", dy))?;
    let device = common_device(OP, &[gate, up, dy])?;
    if let Device::Gpu(backend) = &device {
        for (what, t) in [("gate", gate), ("up", up), ("dy", dy)] {
            f32_only(OP, what, t)?;
        }
        return crate::gpu::backward::swiglu_backward(backend, gate, up, dy);
    }
    let (g, u, d) = (f32_data(OP, "gate", gate)?, f32_data(OP, "up", up)?, f32_data(OP, "dy", dy)?);
    let (mut dg, mut du) = (vec![0f32; g.len()], vec![0f32; g.len()]);
    cpu::backward::swiglu_backward(&g, &u, &d, &mut dg, &mut du);
    Ok((f32_output(&dg, gate.shape(), &device)?, f32_output(&du, up.shape(), &device)?))
}

/// Gradient of `embedding(table, ids)` w.r.t. a `[vocab, d]` table, given `dy` `[..ids, d]`:
/// rows scatter-added by id (a token seen twice gets both rows). f32 `[vocab, d]`.
pub fn embedding_backward(ids: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor> {
    const OP: &str = "embedding_backward";
    if ids.dtype() != DType::I32 {
        return Err(ComputeError::dtype(
            OP,
            format!("ids {:?} are {}; token ids must be i32", ids.shape(), ids.dtype()),
        ));
    }
    let d = dy.last_dim();
    if dy.rank() != ids.rank() + 1 || dy.shape()[..ids.rank()] != *ids.shape() {
        return Err(ComputeError::shape(
            OP,
            format!("dy {:?} must be [..ids {:?}, dim]: one gradient row per id", dy.shape(), ids.shape()),
        ));
    }
    let device = common_device(OP, &[ids, dy])?;
    let id = ids.to_vec::<i32>()?;
    if let Some(pos) = cpu::embed::first_bad_id(&id, vocab) {
        return Err(ComputeError::invalid(
            OP,
            format!("ids[{pos}] (flat position) = {} lies outside the vocabulary 0..{vocab}", id[pos]),
        ));
    }
    if let Device::Gpu(backend) = &device {
        f32_only(OP, "dy", dy)?;
        if vocab > i32::MAX as usize || id.len() > i32::MAX as usize {
            return Err(ComputeError::shape(
                OP,
                format!("ids {:?} / vocab {vocab}: counts must fit in 31 bits", ids.shape()),
            ));
        }
        return crate::gpu::backward::embedding_backward(backend, ids, dy, vocab);
    }
    let ds = f32_data(OP, "dy", dy)?;
    let mut table = vec![0f32; vocab * d];
    cpu::backward::embedding_backward(&id, &ds, d, &mut table);
    f32_output(&table, &[vocab, d], &device)
}
