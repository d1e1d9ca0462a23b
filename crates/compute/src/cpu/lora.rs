//! The multi-adapter LoRA path (family `lora`, kernels/lora.cu) on the CPU: shrink
//! `u = x · A[id]ᵀ` and expand `y += scale[id] · u · B[id]ᵀ`, an adapter id per row (−1 =
//! none), f32 accumulation.

use rayon::prelude::*;

use crate::dtype::FloatElement;

/// `u[i] = x[i] · A[ids[i]]ᵀ` (zeros where the id is −1); A is `[adapters, r, in]`.
pub fn lora_shrink<T: FloatElement>(x: &[T], a: &[T], ids: &[i32], inp: usize, r: usize, u: &mut [f32]) {
    if r == 0 {
        return;
    }
    u.par_chunks_mut(r).zip(ids.par_iter()).enumerate().for_each(|(i, (ur, &id))| {
        if id < 0 {
            ur.fill(0.0);
            return;
        }
        let xr = &x[i * inp..(i + 1) * inp];
        for (j, uj) in ur.iter_mut().enumerate() {
            let aj = &a[(id as usize * r + j) * inp..][..inp];
            *uj = xr.iter().zip(aj).map(|(x, a)| x.to_f32() * a.to_f32()).sum();
        }
    });
}

/// `y[i] += scales[ids[i]] · u[i] · B[ids[i]]ᵀ` (rows with id −1 unchanged); B is
/// `[adapters, out, r]`.
pub fn lora_expand<T: FloatElement>(
    u: &[f32],
    b: &[T],
    ids: &[i32],
    scales: &[f32],
    out: usize,
    r: usize,
    y: &mut [T],
) {
    if out == 0 {
        return;
    }
    y.par_chunks_mut(out).zip(ids.par_iter()).enumerate().for_each(|(i, (yr, &id))| {
        if id < 0 {
            return;
        }
        let (ur, s) = (&u[i * r..(i + 1) * r], scales[id as usize]);
        for (o, yo) in yr.iter_mut().enumerate() {
            let bo = &b[(id as usize * out + o) * r..][..r];
            let acc: f32 = ur.iter().zip(bo).map(|(u, b)| u * b.to_f32()).sum();
            *yo = T::from_f32(yo.to_f32() + s * acc);
        }
    });
}
