//! Fused attention forward over the projections' layout `[batch, seq, heads, head_dim]`: GQA,
//! causal masking aligned for KV caches, sliding windows (Mistral, Qwen2), per-sequence key
//! lengths (padding / filled cache), f32 accumulation with an online softmax — and its backward
//! (f32, for training), which recomputes the probabilities from q and k.

use super::f32_operands::{f32_data, f32_only, f32_output, same_shape};
use super::{common_device, common_float_dtype, host_output, with_float};
use crate::cpu::attention::{AttentionDims, Inputs, KeyMask};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

/// How keys are masked and scores scaled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Query `i` (0-based among `sq`) sees keys `j <= i + (len − sq)`, `len` being the sequence's
    /// key length: the last query aligns with the last valid key.
    pub causal: bool,
    /// Multiplies `q · k` before the softmax; `1 / sqrt(head_dim)` for the usual models.
    pub scale: f32,
    /// Sliding window (needs `causal`): besides the causal limit, query `i` sees only the
    /// `window` latest keys up to its own position. With `p = i + (len − sq)` the query's absolute
    /// position, it sees key `j` iff `p − window < j <= p` — transformers' `sliding_window_overlay`
    /// (`kv_idx > q_idx − sliding_window`) and'ed with the causal mask, so a query sees itself and
    /// `window − 1` keys before it. `None`: no window.
    pub window: Option<usize>,
}

impl AttentionSpec {
    /// The usual scale `1 / sqrt(head_dim)`, no window.
    pub fn new(causal: bool, head_dim: usize) -> Self {
        AttentionSpec { causal, scale: 1.0 / (head_dim.max(1) as f32).sqrt(), window: None }
    }

    /// The same spec with a sliding window (`None` keeps full attention).
    pub fn with_window(self, window: Option<usize>) -> Self {
        AttentionSpec { window, ..self }
    }

    /// Which keys each query sees, for the CPU implementations.
    pub(crate) fn mask(&self) -> KeyMask {
        KeyMask { causal: self.causal, window: self.window }
    }

    /// The CPU implementations' view of q, k, v of sizes `dims` under this spec.
    pub(crate) fn inputs<'a, T>(
        &self,
        q: &'a [T],
        k: &'a [T],
        v: &'a [T],
        dims: AttentionDims,
    ) -> Inputs<'a, T> {
        Inputs { q, k, v, dims, mask: self.mask(), scale: self.scale }
    }
}

/// Fused attention: q `[b, sq, hq, d]`, k/v `[b, skv, hkv, d]` with `hq % hkv == 0` (GQA: query
/// head `h` reads kv head `h / (hq / hkv)`).
///
/// `key_lens`: optional i32 `[b]`; keys at positions `>= key_lens[i]` are masked (padding, or how
/// much of a KV cache is filled). Each length must lie in `0..=skv`: on the CPU a length outside
/// is an error; on a GPU the kernels clamp it into that range (checking would cost a copy to the
/// host per call).
///
/// Causal: query `i` sees keys `j <= i + (len_b − sq)` where `len_b = key_lens[b]` or `skv`, so
/// prefill (`len == sq`) and decode over a cache (`len > sq`) both work; with a window, also only
/// keys `j > i + (len_b − sq) − window` (see [`AttentionSpec::window`]). Positions are absolute
/// within the sequence's keys, so left-padded queries whose real tokens end at `len_b` are right.
///
/// Output `[b, sq, hq, d]` in q's dtype; f32 accumulation; online softmax; a query row that sees
/// no key outputs zeros.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "attention";
    let dims = check(q, k, v, spec, key_lens)?;
    let dt = common_float_dtype(OP, &[q, k, v])?;
    let mut all = vec![q, k, v];
    all.extend(key_lens);
    match common_device(OP, &all)? {
        Device::Cpu => {
            let lens = key_lens.map(|l| l.as_slice::<i32>()).transpose()?;
            check_key_lens(OP, lens, dims.skv, k)?;
            with_float!(dt, T => {
                let (qs, ks, vs) = (q.as_slice::<T>()?, k.as_slice::<T>()?, v.as_slice::<T>()?);
                Ok(host_output::<T>(q.shape(), |o| {
                    cpu::attention::attention(spec.inputs(qs, ks, vs, dims), lens, o)
                }))
            })
        }
        Device::Gpu(b) => gpu::attention::attention(&b, q, k, v, dims, spec, key_lens),
    }
}

pub(crate) fn check(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: AttentionSpec,
    key_lens: Option<&Tensor>,
) -> Result<AttentionDims> {
    const OP: &str = "attention";
    let layout = "q [batch, sq, heads, head_dim], k and v [batch, skv, kv_heads, head_dim]";
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(ComputeError::shape(
            OP,
            format!("q {:?}, k {:?}, v {:?} must all be rank 4: {layout}", q.shape(), k.shape(), v.shape()),
        ));
    }
    let (qs, ks) = (q.shape(), k.shape());
    if k.shape() != v.shape() || qs[0] != ks[0] || qs[3] != ks[3] {
        return Err(ComputeError::shape(
            OP,
            format!(
                "q {qs:?}, k {ks:?}, v {:?} do not fit: k and v must be equal, and batch and head_dim must \
                 match q ({layout})",
                v.shape()
            ),
        ));
    }
    let dims = AttentionDims { batch: qs[0], sq: qs[1], skv: ks[1], hq: qs[2], hkv: ks[2], d: qs[3] };
    if dims.hkv == 0 || !dims.hq.is_multiple_of(dims.hkv) {
        return Err(ComputeError::shape(
            OP,
            format!(
                "q has {} heads and k/v {}: the query heads must be a multiple of the (non-zero) kv heads",
                dims.hq, dims.hkv
            ),
        ));
    }
    if let Some(l) = key_lens
        && (l.dtype() != DType::I32 || l.shape() != [dims.batch])
    {
        return Err(ComputeError::shape(
            OP,
            format!(
                "key_lens {:?} of {} must be i32 [{}] (one length per batch entry)",
                l.shape(),
                l.dtype(),
                dims.batch
            ),
        ));
    }
    let fits = |rows: Option<usize>| rows.is_some_and(|r| r <= i32::MAX as usize);
    if !fits(dims.batch.checked_mul(dims.sq).and_then(|r| r.checked_mul(dims.hq)))
        || !fits(dims.batch.checked_mul(dims.skv).and_then(|r| r.checked_mul(dims.hkv)))
        || dims.d > i32::MAX as usize
    {
        return Err(ComputeError::shape(
            OP,
            format!(
                "q {qs:?} / k {ks:?}: the rows (batch · seq · heads) must fit in 31 bits; split the batch"
            ),
        ));
    }
    match spec.window {
        Some(0) => {
            return Err(ComputeError::invalid(
                OP,
                "a sliding window of 0 keys hides every key; give a window >= 1 or None",
            ));
        }
        Some(w) if !spec.causal => {
            return Err(ComputeError::invalid(
                OP,
                format!("a sliding window ({w}) needs causal attention: set causal or drop the window"),
            ));
        }
        Some(w) if w > i32::MAX as usize => {
            return Err(ComputeError::invalid(OP, format!("window {w} must fit in 31 bits")));
        }
        _ => {}
    }
    if !spec.scale.is_finite() {
        return Err(ComputeError::invalid(OP, format!("scale must be finite, got {}", spec.scale)));
    }
    Ok(dims)
}

/// An error unless every key length lies in `0..=skv` (the GPU kernels trust them).
fn check_key_lens(op: &'static str, lens: Option<&[i32]>, skv: usize, k: &Tensor) -> Result<()> {
    match lens.and_then(|l| l.iter().enumerate().find(|&(_, &l)| l < 0 || l as usize > skv)) {
        Some((i, l)) => Err(ComputeError::invalid(
            op,
            format!("key_lens[{i}] = {l} lies outside 0..={skv} (the key length of k {:?})", k.shape()),
        )),
        None => Ok(()),
    }
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
    check_key_lens(OP, lens.as_deref(), dims.skv, k)?;
    if let Device::Gpu(backend) = &device {
        for (what, t) in [("q", q), ("k", k), ("v", v), ("dout", dout)] {
            f32_only(OP, what, t)?;
        }
        return crate::gpu::attention::attention_backward(backend, q, k, v, dout, dims, spec, key_lens);
    }
    let (qs, ks, vs) = (f32_data(OP, "q", q)?, f32_data(OP, "k", k)?, f32_data(OP, "v", v)?);
    let ds = f32_data(OP, "dout", dout)?;
    let (mut dq, mut dk, mut dv) = (vec![0f32; qs.len()], vec![0f32; ks.len()], vec![0f32; vs.len()]);
    cpu::attention::attention_backward(
        spec.inputs(&qs, &ks, &vs, dims),
        &ds,
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
