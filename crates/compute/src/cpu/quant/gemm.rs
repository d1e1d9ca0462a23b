//! `y = x · Wᵀ` for f32 `x` `[m, k]` and a [`QMatrix`] `W` `[n, k]`, parallel over W's rows.
//!
//! Few rows (decode): `x` is quantized to 8 bits once and every weight row is read once, its
//! integer dot products taken with all m activation rows while it sits in L1. Many rows
//! (prefill, m ≥ [`PREFILL_MIN_ROWS`]): each task dequantizes a tile of W's rows to f32 and runs
//! the f32 GEMM on it, which beats the integer path once the tile's dequantization is shared by
//! enough rows (the crossover is measured by `bench/examples/quant_gemv.rs`; see
//! `PREFILL_MIN_ROWS`). Both paths write `Wx` transposed (`[n, m]`,
//! so each task owns whole rows of it) and transpose once at the end.

use rayon::prelude::*;

use super::QK;
use super::acts::{ActBits, QActs};
use super::blocks::QMatrix;
use super::dot::{Isa, dot_rows};
use crate::cpu::matmul::gemm_strided;

/// From this many rows of `x` on, the product dequantizes tiles and runs the f32 GEMM.
/// Measured by `bench/examples/quant_gemv.rs` (SmolLM2 Q4_1 shapes, 2 threads, AVX512-VNNI,
/// fine activations): the integer path was 2–8× faster up to m = 16 and the two were even near
/// m = 32 (576×1536: 1.81 ms vs 1.86 ms; 1536×576: 1.81 vs 2.05; 576×576: 0.63 vs 0.55).
pub const PREFILL_MIN_ROWS: usize = 32;

/// Weight rows dequantized per task on the tile path (a tile of 576-wide rows is 295 KB).
const TILE_ROWS: usize = 128;

/// Which algorithm runs (tests force each one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Activations quantized as `ActBits` says, integer dot products on `Isa`.
    Integer(Isa, ActBits),
    F32Tiles,
}

impl Path {
    /// The path chosen for `m` rows of x on this CPU.
    pub fn for_rows(m: usize, bits: ActBits) -> Path {
        if m >= PREFILL_MIN_ROWS { Path::F32Tiles } else { Path::Integer(Isa::best(), bits) }
    }
}

/// `x` `[m, w.cols]` times `Wᵀ` into `[m, w.rows]`, f32, on the path [`Path::for_rows`] picks.
pub fn qmatmul(x: &[f32], m: usize, w: &QMatrix, bits: ActBits) -> Vec<f32> {
    qmatmul_on(Path::for_rows(m, bits), x, m, w)
}

/// [`qmatmul`] on a given path.
pub fn qmatmul_on(path: Path, x: &[f32], m: usize, w: &QMatrix) -> Vec<f32> {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), m * k, "qmatmul: x holds {} values, not {m} × {k}", x.len());
    let mut out_t = vec![0f32; n * m];
    if m == 0 || n == 0 {
        return out_t;
    }
    match path {
        Path::Integer(isa, bits) => {
            let acts = QActs::quantize(x, m, k, bits);
            // Rows per task: ~16 KB of quants, so a task amortises its scheduling and its rows
            // stay in L1/L2 while each activation row passes over them.
            let per_task = (16 * 1024 * QK / (k * w.layout().quant_bytes())).max(1);
            out_t.par_chunks_mut(per_task * m).enumerate().for_each(|(t, chunk)| {
                let rows = chunk.len() / m;
                let mut ys = vec![0f32; rows];
                for r in 0..m {
                    dot_rows(isa, w, t * per_task, acts.row(r), &mut ys);
                    for (i, &y) in ys.iter().enumerate() {
                        chunk[i * m + r] = y;
                    }
                }
            });
        }
        Path::F32Tiles => {
            out_t.par_chunks_mut(TILE_ROWS * m).enumerate().for_each(|(t, chunk)| {
                let rows = chunk.len() / m;
                let mut tile = vec![0f32; rows * k];
                for (i, row) in tile.chunks_exact_mut(k).enumerate() {
                    w.dequantize_row(t * TILE_ROWS + i, row);
                }
                // chunk [rows, m] = tile [rows, k] · xᵀ [k, m].
                gemm_strided(rows, m, k, chunk, m, false, &tile, k, 1, x, 1, k, 1.0);
            });
        }
    }
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * n];
    for (j, ys) in out_t.chunks_exact(m).enumerate() {
        for (r, &y) in ys.iter().enumerate() {
            out[r * n + j] = y;
        }
    }
    out
}
