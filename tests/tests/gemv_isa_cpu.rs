//! The decode path's few-row product on every instruction set this CPU runs (plain Rust, AVX2 +
//! FMA, AVX-512), each against an f64 product of the same stored values: B rounded to its dtype
//! once, so what remains is f32 summation only (1e-5 relative, for bf16 and f16 too). Shapes cover
//! k below, at and between the vector widths (masked and scalar tails) and every m up to 8.

use ragtune_compute::cpu::gemv::{MAX_ROWS, gemv_rows_on};
use ragtune_compute::cpu::gemv_simd::Isa;
use ragtune_compute::{DType, Tensor};
use ragtune_tests::{assert_close, random_tensor, rng};

fn run<T: ragtune_compute::dtype::FloatElement>(
    isa: Isa,
    a: &[f32],
    b: &Tensor,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    let b: Vec<T> = b.to_vec::<T>().unwrap();
    let mut out = vec![f32::NAN; m * n];
    gemv_rows_on(isa, a, &b, [m, n, k], true, 0.75, &mut out);
    out
}

#[test]
fn few_row_products_match_f64_on_every_instruction_set_here() {
    let mut r = rng(11);
    let isas: Vec<Isa> =
        [Isa::Scalar, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()).collect();
    eprintln!("instruction sets tested here: {isas:?} (detected {:?})", Isa::detected());
    for &(n, k) in &[(1usize, 1usize), (3, 7), (5, 8), (9, 15), (4, 16), (7, 17), (33, 576), (2, 1100)] {
        for m in 1..=MAX_ROWS {
            let (_, av) = random_tensor(&mut r, &[m, k], DType::F32, 1.0);
            let a: Vec<f32> = av.iter().map(|&v| v as f32).collect();
            for dtype in DType::FLOATS {
                let (b, bv) = random_tensor(&mut r, &[n, k], dtype, 1.0);
                let want: Vec<f64> = (0..m * n)
                    .map(|o| {
                        let (i, j) = (o / n, o % n);
                        0.75 * (0..k).map(|p| av[i * k + p] * bv[j * k + p]).sum::<f64>()
                    })
                    .collect();
                for &isa in &isas {
                    let got = match dtype {
                        DType::F32 => run::<f32>(isa, &a, &b, m, n, k),
                        DType::BF16 => run::<half::bf16>(isa, &a, &b, m, n, k),
                        _ => run::<half::f16>(isa, &a, &b, m, n, k),
                    };
                    assert_close(&format!("{isa:?} {dtype} m={m} n={n} k={k}"), &got, &want, 1e-5);
                }
            }
        }
    }
}
