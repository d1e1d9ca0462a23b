//! `qmatmul` time per SmolLM2 projection shape at m = 1 (Q4_1 and Q8_0, 8-bit and fine
//! activations), as GB/s of weight bytes read, against `ops::linear` f32 on the same shape; and
//! for m = 2..32 the integer path against the f32-tile path (where `PREFILL_MIN_ROWS` comes from).
//!     quant_gemv [REPEATS]
use std::time::Instant;

use ragtune_compute::cpu::quant::{ActBits, Isa, Path, QMatrix, QuantKind, qmatmul, qmatmul_on};
use ragtune_compute::{Tensor, ops};

fn main() {
    let reps: usize = std::env::args().nth(1).map_or(200, |s| s.parse().expect("REPEATS"));
    for (kind, rows, cols) in [
        (QuantKind::Q4_1, 576, 576),
        (QuantKind::Q4_1, 1536, 576),
        (QuantKind::Q4_1, 576, 1536),
        (QuantKind::Q8_0, 49152, 576),
    ] {
        let (per, size) = kind.block();
        let bytes: Vec<u8> = (0..rows * cols / per * size).map(|i| (i * 7 % 251) as u8 & 0x3F).collect();
        let w = QMatrix::from_gguf(kind, rows, cols, &bytes).expect("blocks");
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let dense = Tensor::from_slice(&w.dequantize(), &[rows, cols]).expect("dense");
        let xt = Tensor::from_slice(&x, &[1, cols]).expect("x");
        // The fastest of 5 batches: the machine is shared, and slow batches are other load.
        let time = |f: &dyn Fn()| {
            f();
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..reps {
                        f();
                    }
                    t.elapsed().as_secs_f64() / reps as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        let ti8 = time(&|| drop(qmatmul(&x, 1, &w, ActBits::I8)));
        let tfine = time(&|| drop(qmatmul(&x, 1, &w, ActBits::Fine)));
        let tf32 = time(&|| drop(ops::linear(&xt, &dense).expect("linear")));
        let gb = |b: usize, t: f64| b as f64 / t / 1e9;
        // The prefill crossover: integer path vs dequantized tiles through the f32 GEMM.
        for m in std::env::var("MS")
            .map_or(vec![2usize, 4, 8, 16, 32], |v| v.split(',').filter_map(|m| m.parse().ok()).collect())
        {
            let xm: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let ti = time(&|| drop(qmatmul_on(Path::Integer(Isa::best(), ActBits::Fine), &xm, m, &w)));
            let tt = time(&|| drop(qmatmul_on(Path::F32Tiles, &xm, m, &w)));
            println!("  m {m}: integer (fine) {:.1} us, f32 tiles {:.1} us", ti * 1e6, tt * 1e6);
        }
        println!(
            "{kind:?} {rows}x{cols}: i8 {:.1} us ({:.1} GB/s), fine {:.1} us ({:.1} GB/s), f32 {:.1} us ({:.1} GB/s)",
            ti8 * 1e6,
            gb(w.size_bytes(), ti8),
            tfine * 1e6,
            gb(w.size_bytes(), tfine),
            tf32 * 1e6,
            gb(rows * cols * 4, tf32)
        );
    }
}
