//! The multi-adapter LoRA path: [`lora_shrink`] and [`lora_expand`], an adapter id per row, so
//! one batch can serve sequences that use different adapters (or none) — y = x Wᵀ from the base
//! GEMM, then `y += scale[id] · (x A[id]ᵀ) B[id]ᵀ` without another GEMM over the whole batch.

use super::require_dtype;
use super::{common_device, with_float};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::tensor::Tensor;
use crate::{cpu, gpu};

/// Ids must be i32 `[rows]`, each in `-1..adapters` (−1 = no adapter). Host ids are checked and
/// returned; device ids are not read back (that would stall the stream at every projection of
/// every layer): the kernels read an id outside `0..adapters` as no adapter, and callers build
/// device ids from checked host values.
fn check_ids(op: &'static str, ids: &Tensor, rows: usize, adapters: usize) -> Result<Vec<i32>> {
    if ids.dtype() != DType::I32 || ids.shape() != [rows] {
        return Err(ComputeError::shape(
            op,
            format!("ids {:?} of {} must be i32 [{rows}]: one adapter id per row", ids.shape(), ids.dtype()),
        ));
    }
    if !ids.is_host() {
        return Ok(Vec::new());
    }
    let v = ids.to_vec::<i32>()?;
    if let Some(i) = v.iter().position(|&id| id < -1 || id >= adapters as i32) {
        return Err(ComputeError::invalid(
            op,
            format!("ids[{i}] = {} is not an adapter: ids lie in -1..{adapters} (-1 = none)", v[i]),
        ));
    }
    Ok(v)
}

/// The rank-r activations must be f32, as [`lora_shrink`] makes them.
fn check_u(op: &'static str, u: &Tensor) -> Result<()> {
    require_dtype(op, u, DType::F32, ("u", "is"), "lora_shrink makes it f32")
}

/// One finite scale per adapter.
fn check_scales(op: &'static str, scales: &[f32], adapters: usize) -> Result<()> {
    if scales.len() != adapters || scales.iter().any(|s| !s.is_finite()) {
        return Err(ComputeError::invalid(
            op,
            format!("{} scales for {adapters} adapters: give one finite scale per adapter", scales.len()),
        ));
    }
    Ok(())
}

/// `u[i] = x[i] · A[ids[i]]ᵀ`: x `[rows, in]`, A stacked `[adapters, r, in]` (x's dtype), ids
/// i32 `[rows]` (−1 = none: a zero row). Returns u, f32 `[rows, r]`.
pub fn lora_shrink(x: &Tensor, a: &Tensor, ids: &Tensor) -> Result<Tensor> {
    const OP: &str = "lora_shrink";
    if x.rank() != 2 || a.rank() != 3 || a.shape()[2] != x.shape()[1] {
        return Err(ComputeError::shape(
            OP,
            format!(
                "x {:?} must be [rows, in] and A {:?} [adapters, r, in] with the same in",
                x.shape(),
                a.shape()
            ),
        ));
    }
    let dt = super::common_float_dtype(OP, &[x, a])?;
    let (rows, inp, adapters, r) = (x.shape()[0], x.shape()[1], a.shape()[0], a.shape()[1]);
    if rows > i32::MAX as usize || inp > i32::MAX as usize || r > i32::MAX as usize {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?} / A {:?}: sizes must fit in 31 bits", x.shape(), a.shape()),
        ));
    }
    let id = check_ids(OP, ids, rows, adapters)?;
    match common_device(OP, &[x, a, ids])? {
        Device::Cpu => with_float!(dt, T => {
            let mut u = vec![0f32; rows * r];
            cpu::lora::lora_shrink(x.as_slice::<T>()?, a.as_slice::<T>()?, &id, inp, r, &mut u);
            Tensor::from_slice(&u, &[rows, r])
        }),
        Device::Gpu(b) => gpu::lora::lora_shrink(&b, x, a, ids, inp, r),
    }
}

/// `y[i] += scales[ids[i]] · u[i] · B[ids[i]]ᵀ` in place: y `[rows, out]`, u f32 `[rows, r]`,
/// B stacked `[adapters, out, r]` (y's dtype), one finite scale per adapter. Rows with id −1
/// stay as they are. `y` is updated copy-on-write, like `copy_into`.
pub fn lora_expand(y: &mut Tensor, u: &Tensor, b: &Tensor, ids: &Tensor, scales: &[f32]) -> Result<()> {
    const OP: &str = "lora_expand";
    if y.rank() != 2
        || u.rank() != 2
        || b.rank() != 3
        || u.shape()[0] != y.shape()[0]
        || b.shape()[1] != y.shape()[1]
        || b.shape()[2] != u.shape()[1]
    {
        return Err(ComputeError::shape(
            OP,
            format!(
                "y {:?} must be [rows, out], u {:?} [rows, r] and B {:?} [adapters, out, r]",
                y.shape(),
                u.shape(),
                b.shape()
            ),
        ));
    }
    check_u(OP, u)?;
    let dt = super::common_float_dtype(OP, &[&*y, b])?;
    let (rows, out, adapters, r) = (y.shape()[0], y.shape()[1], b.shape()[0], u.shape()[1]);
    check_scales(OP, scales, adapters)?;
    if rows > i32::MAX as usize || out > i32::MAX as usize || r > i32::MAX as usize {
        return Err(ComputeError::shape(
            OP,
            format!("y {:?} / B {:?}: sizes must fit in 31 bits", y.shape(), b.shape()),
        ));
    }
    let id = check_ids(OP, ids, rows, adapters)?;
    match common_device(OP, &[&*y, u, b, ids])? {
        Device::Cpu => with_float!(dt, T => {
            let (us, bs) = (u.as_slice::<f32>()?.to_vec(), b.as_slice::<T>()?.to_vec());
            if let Some(bytes) = y.host_bytes_mut() {
                cpu::lora::lora_expand(&us, &bs, &id, scales, out, r, bytemuck::cast_slice_mut::<u8, T>(bytes));
            }
            Ok(())
        }),
        Device::Gpu(backend) => {
            let s = Tensor::from_slice(scales, &[adapters])?.to_device(&Device::Gpu(backend.clone()))?;
            let addr = y.device_addr_mut()?.unwrap_or(0);
            gpu::lora::lora_expand(&backend, addr, dt, u, b, ids, &s, out, r, rows)
        }
    }
}

/// The inputs of [`lora_backward`]: the forward's `x` `[rows, in]` and optional dropout `mask`
/// (same shape: the forward shrank `x ⊙ mask`), the output gradient `dy` `[rows, out]`, the
/// saved `u = (x ⊙ mask) A[id]ᵀ` (f32 `[rows, r]`, from [`lora_shrink`]), A `[adapters, r, in]`,
/// B `[adapters, out, r]`, ids i32 `[rows]` and one scale per adapter. x, mask, dy, A, B and dx
/// share a float dtype.
pub struct LoraBackward<'a> {
    pub x: &'a Tensor,
    pub mask: Option<&'a Tensor>,
    pub dy: &'a Tensor,
    pub u: &'a Tensor,
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub ids: &'a Tensor,
    pub scales: &'a [f32],
}

/// The backward of [`lora_shrink`] + [`lora_expand`] (kernels/lora.cu on a GPU): adds the LoRA
/// path's input gradient `mask ⊙ (scale · dy B[id]) A[id]` into `dx` `[rows, in]` in place (the
/// base GEMM's dx: no second pass over a separate buffer) and returns `(dA, dB)`, f32 and stacked
/// like A and B, each adapter's summed over its rows (zeros for an adapter no row uses).
pub fn lora_backward(t: &LoraBackward, dx: &mut Tensor) -> Result<(Tensor, Tensor)> {
    backward(t, dx, false)
}

/// [`lora_backward`] for a batch whose rows all use one adapter — training, where A and B are
/// `[1, r, in]` / `[1, out, r]` and `ids` is all zeros. Device ids are not read back, so the
/// caller states it; host ids are checked. The result is [`lora_backward`]'s; on a GPU with f32
/// operands the reductions over rows (dA, dB) and du run as GEMMs instead of the row kernels'
/// per-chunk partial sums, which is what a batch of thousands of rows sharing one adapter needs.
pub fn lora_backward_shared(t: &LoraBackward, dx: &mut Tensor) -> Result<(Tensor, Tensor)> {
    backward(t, dx, true)
}

fn backward(t: &LoraBackward, dx: &mut Tensor, shared: bool) -> Result<(Tensor, Tensor)> {
    const OP: &str = "lora_backward";
    let (x, dy, u, a, b) = (t.x, t.dy, t.u, t.a, t.b);
    let ok = x.rank() == 2
        && dy.rank() == 2
        && u.rank() == 2
        && a.rank() == 3
        && b.rank() == 3
        && dy.shape()[0] == x.shape()[0]
        && u.shape()[0] == x.shape()[0]
        && a.shape()[2] == x.shape()[1]
        && b.shape()[1] == dy.shape()[1]
        && a.shape()[0] == b.shape()[0]
        && a.shape()[1] == u.shape()[1]
        && b.shape()[2] == u.shape()[1]
        && dx.shape() == x.shape()
        && t.mask.is_none_or(|m| m.shape() == x.shape());
    if !ok {
        return Err(ComputeError::shape(
            OP,
            format!(
                "x {:?} and dx {:?} must be [rows, in], mask (if any) {:?} like x, dy {:?} [rows, out], u {:?} \
                 [rows, r], A {:?} [adapters, r, in] and B {:?} [adapters, out, r]",
                x.shape(),
                dx.shape(),
                t.mask.map(|m| m.shape().to_vec()),
                dy.shape(),
                u.shape(),
                a.shape(),
                b.shape()
            ),
        ));
    }
    check_u(OP, u)?;
    let mut same: Vec<&Tensor> = vec![x, dy, a, b, &*dx];
    same.extend(t.mask);
    let dt = super::common_float_dtype(OP, &same)?;
    let (rows, inp, out, adapters, r) =
        (x.shape()[0], x.shape()[1], dy.shape()[1], a.shape()[0], a.shape()[1]);
    check_scales(OP, t.scales, adapters)?;
    if [rows, inp, out, r].iter().any(|&n| n > i32::MAX as usize) {
        return Err(ComputeError::shape(
            OP,
            format!("x {:?} / dy {:?} / A {:?}: sizes must fit in 31 bits", x.shape(), dy.shape(), a.shape()),
        ));
    }
    let id = check_ids(OP, t.ids, rows, adapters)?;
    if shared && (adapters != 1 || id.iter().any(|&i| i != 0)) {
        return Err(ComputeError::invalid(
            OP,
            format!(
                "the shared-adapter backward needs one adapter (A {:?}) and every id 0: use lora_backward for \
                 mixed batches",
                a.shape()
            ),
        ));
    }
    let mut devices: Vec<&Tensor> = vec![x, dy, u, a, b, t.ids, &*dx];
    devices.extend(t.mask);
    match common_device(OP, &devices)? {
        Device::Cpu => with_float!(dt, T => {
            let inputs = cpu::lora::LoraBackwardInputs {
                x: x.as_slice::<T>()?,
                mask: t.mask.map(|m| m.as_slice::<T>()).transpose()?,
                dy: dy.as_slice::<T>()?,
                u: u.as_slice::<f32>()?,
                a: a.as_slice::<T>()?,
                b: b.as_slice::<T>()?,
                ids: &id,
                scales: t.scales,
                inp,
                out,
                r,
            };
            let bytes = dx
                .host_bytes_mut()
                .ok_or_else(|| ComputeError::invalid(OP, "dx is not a host tensor".to_string()))?;
            let (da, db) = cpu::lora::lora_backward(&inputs, bytemuck::cast_slice_mut::<u8, T>(bytes));
            Ok((Tensor::from_slice(&da, &[adapters, r, inp])?, Tensor::from_slice(&db, &[adapters, out, r])?))
        }),
        Device::Gpu(backend) => {
            let addr = dx.device_addr_mut()?.unwrap_or(0);
            if shared && dt == DType::F32 {
                gpu::lora::lora_backward_shared(&backend, t, t.scales[0], addr)
            } else {
                let s =
                    Tensor::from_slice(t.scales, &[adapters])?.to_device(&Device::Gpu(backend.clone()))?;
                gpu::lora::lora_backward(&backend, t, &s, addr)
            }
        }
    }
}
