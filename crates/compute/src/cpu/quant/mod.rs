//! Quantized weights kept as stored and multiplied with 8-bit activations — how llama.cpp and
//! candle run a GGUF file on the CPU. A [`QMatrix`] holds `[rows, cols]` weights repacked from
//! GGUF blocks into three flat arrays (per-block f32 scales, f32 offsets, packed quants), which
//! is exact: every weight it stands for is the value the GGUF dequantizer computes. `y = x·Wᵀ`
//! quantizes each row of `x` per block of 32 to i8 (`d = max|x| / 127`, [`acts`]; optionally
//! with an 8-bit residual for ~15-bit activations at the same weight traffic) and sums
//! integer products per block ([`dot`]: AVX512-VNNI `vpdpbusd`, AVX2 `maddubs`, or a scalar
//! loop, chosen at run time by the running CPU's features), scaling each block sum in f32.
//! Products with many rows of `x` (prompt prefill) instead dequantize tiles of W to f32 and use
//! the f32 GEMM ([`gemm`]), where that measures faster.
//!
//! | stored | repacked as | per 32 weights |
//! |---|---|---|
//! | Q8_0 | `I8`: i8 quants, one scale | 36 bytes |
//! | Q4_0, Q4_1, Q4_K | `Nib`: 4-bit quants q, scale d and offset m (w = d·q + m; Q4_0's m = −8d) | 24 bytes |
//! | Q6_K | `I8Half`: i8 quants (−32..31), one scale per 16 | 40 bytes |

pub mod acts;
pub mod blocks;
pub mod dot;
pub mod gemm;

pub use acts::{ActBits, QActs};
pub use blocks::{QMatrix, QuantKind};
pub use dot::Isa;
pub use gemm::{PREFILL_MIN_ROWS, Path, qmatmul, qmatmul_on};

/// Weights per quantization block of the repacked layouts and of the activations.
pub const QK: usize = 32;

#[cfg(test)]
mod tests;
