//! The decode path's inner loop on the vector unit the running CPU has: for one row of B (a
//! weight row, stored f32, bf16 or f16), the dot products with each of A's m ≤ 8 rows, B's row
//! widened in registers and read once. Builds carry no `-C target-cpu`, so plain Rust compiles to
//! SSE2; these kernels are compiled for AVX-512 (f, bw, vl) and AVX2 + FMA + F16C with
//! `#[target_feature]` and chosen once at run time ([`Isa::detected`]) — an Intel Xeon and an AMD
//! EPYC both get their widest path from the same binary.
//!
//! bf16 widens exactly (its bits are the high half of an f32); f16 through the hardware
//! conversion (exact too). Sums run in f32 with FMA, in a different order from the scalar path:
//! results agree to f32 rounding, not bit for bit.

use crate::dtype::{DType, FloatElement};

/// The instruction set a few-row product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (SSE2 on x86_64, whatever the target has elsewhere).
    Scalar,
    /// 256-bit AVX2 with FMA and F16C.
    Avx2,
    /// 512-bit AVX-512 F/BW/VL.
    Avx512,
}

impl Isa {
    /// The widest kernel set this CPU runs (detected once), capped by `RAGTUNE_CPU_ISA`
    /// (`scalar`, `avx2` or `avx512`) when that is set: for measuring what each path gains.
    pub fn detected() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Isa::probe();
            match std::env::var("RAGTUNE_CPU_ISA").as_deref() {
                Ok("scalar") => Isa::Scalar,
                Ok("avx2") if best == Isa::Avx512 => Isa::Avx2,
                _ => best,
            }
        })
    }

    fn probe() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            // AVX-512 implies the AVX2 set on every CPU that has it, but check both: the AVX2
            // kernels are also the AVX-512 path's fallback in tests.
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl");
            if avx2 && avx512 {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Whether this CPU can run `self`, whatever `RAGTUNE_CPU_ISA` says (tests run each path
    /// the hardware has).
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => Isa::probe() != Isa::Scalar,
            Isa::Avx512 => Isa::probe() == Isa::Avx512,
        }
    }
}

/// How B's elements are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    F32,
    Bf16,
    F16,
}

impl Stored {
    /// The storage of a float element type's values.
    pub fn of<T: FloatElement>() -> Stored {
        match T::DTYPE {
            DType::F32 => Stored::F32,
            DType::BF16 => Stored::Bf16,
            _ => Stored::F16,
        }
    }
}

/// `res[i] = Σ_p a[i·k + p] · row[p]` for i < m (`m ≤ 8`), `row` holding k elements stored as
/// `stored` (`row` is their raw bytes). `isa` must be available; [`Isa::Scalar`] is not served here.
///
/// # Safety
/// `isa.available()` must hold, `a` must hold m·k f32 and `row` k elements of `stored`.
pub unsafe fn row_dots(
    isa: Isa,
    stored: Stored,
    a: &[f32],
    m: usize,
    k: usize,
    row: *const u8,
    res: &mut [f32],
) {
    debug_assert!(a.len() >= m * k && res.len() >= m && (1..=8).contains(&m));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from the caller.
    unsafe {
        match isa {
            Isa::Avx512 => x86::dots512(stored, a, m, k, row, res),
            Isa::Avx2 => x86::dots256(stored, a, m, k, row, res),
            Isa::Scalar => unreachable!("the scalar path does not come here"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, stored, a, m, k, row, res);
        unreachable!("no vector kernels on this architecture: Isa::detected() is Scalar");
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Stored;

    /// Sixteen elements of B at `row + 16·i` as f32, the first `n` (≤ 16) of them (0 beyond).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load16(stored: Stored, row: *const u8, at: usize, n: usize) -> __m512 {
        let mask: u16 = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        // SAFETY: the mask keeps every access inside the row's k elements.
        unsafe {
            match stored {
                Stored::F32 => _mm512_maskz_loadu_ps(mask, row.cast::<f32>().add(at)),
                Stored::Bf16 => {
                    let h = _mm256_maskz_loadu_epi16(mask, row.cast::<i16>().add(at));
                    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                }
                Stored::F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row.cast::<i16>().add(at))),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn dots512_m<const M: usize>(
        stored: Stored,
        a: &[f32],
        k: usize,
        row: *const u8,
        res: &mut [f32],
    ) {
        // As in dots256_m: at least four FMA chains at once.
        let u = Chains::<M>::U;
        let mut acc = [[_mm512_setzero_ps(); 4]; M];
        let mut p = 0;
        while p + 16 * u <= k {
            for j in 0..u {
                let at = p + 16 * j;
                // SAFETY: at + 16 ≤ k for B's row and for each of A's M rows of k.
                unsafe {
                    let b = load16(stored, row, at, 16);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let x = _mm512_loadu_ps(a.as_ptr().add(i * k + at));
                        acc[j] = _mm512_fmadd_ps(x, b, acc[j]);
                    }
                }
            }
            p += 16 * u;
        }
        while p < k {
            let n = (k - p).min(16);
            let mask: u16 = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
            // SAFETY: p + n ≤ k for B's row and for each of A's M rows of k.
            unsafe {
                let b = load16(stored, row, p, n);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(i * k + p));
                    acc[0] = _mm512_fmadd_ps(x, b, acc[0]);
                }
            }
            p += 16;
        }
        for (r, acc) in res.iter_mut().zip(acc) {
            *r = _mm512_reduce_add_ps(acc[1..u].iter().fold(acc[0], |s, &v| _mm512_add_ps(s, v)));
        }
    }

    /// Eight elements of B at `row + at` as f32 (all eight must be in the row).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(stored: Stored, row: *const u8, at: usize) -> __m256 {
        // SAFETY: the caller keeps at + 8 ≤ k.
        unsafe {
            match stored {
                Stored::F32 => _mm256_loadu_ps(row.cast::<f32>().add(at)),
                Stored::Bf16 => {
                    let h = _mm_loadu_si128(row.cast::<u16>().add(at).cast());
                    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                }
                Stored::F16 => _mm256_cvtph_ps(_mm_loadu_si128(row.cast::<u16>().add(at).cast())),
            }
        }
    }

    /// One element of B as f32.
    #[inline]
    unsafe fn scalar(stored: Stored, row: *const u8, at: usize) -> f32 {
        // SAFETY: the caller keeps at < k.
        unsafe {
            match stored {
                Stored::F32 => *row.cast::<f32>().add(at),
                Stored::Bf16 => f32::from_bits((row.cast::<u16>().add(at).read_unaligned() as u32) << 16),
                Stored::F16 => half::f16::from_bits(row.cast::<u16>().add(at).read_unaligned()).to_f32(),
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dots256_m<const M: usize>(
        stored: Stored,
        a: &[f32],
        k: usize,
        row: *const u8,
        res: &mut [f32],
    ) {
        // `u` partial sums per row of A, so that at least four FMA chains run at once: with one
        // row (a decode step) a single chain waited on the FMA latency at every step, which held
        // a bf16 weight to about 70% of f32's bytes per second (Zen 3).
        let u = Chains::<M>::U;
        let mut acc = [[_mm256_setzero_ps(); 4]; M];
        let body = k / 8 * 8;
        let mut p = 0;
        while p + 8 * u <= body {
            for j in 0..u {
                let at = p + 8 * j;
                // SAFETY: at + 8 ≤ k for B's row and for each of A's M rows of k.
                unsafe {
                    let b = load8(stored, row, at);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i * k + at)), b, acc[j]);
                    }
                }
            }
            p += 8 * u;
        }
        while p < body {
            // SAFETY: p + 8 ≤ k, as above.
            unsafe {
                let b = load8(stored, row, p);
                for (i, acc) in acc.iter_mut().enumerate() {
                    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i * k + p)), b, acc[0]);
                }
            }
            p += 8;
        }
        for (i, (r, acc)) in res.iter_mut().zip(acc).enumerate() {
            let acc = acc[1..u].iter().fold(acc[0], |s, &v| _mm256_add_ps(s, v));
            let mut s = hsum256(acc);
            for q in body..k {
                // SAFETY: q < k.
                s += a[i * k + q] * unsafe { scalar(stored, row, q) };
            }
            *r = s;
        }
    }

    /// Partial sums per row of A for `M` rows ([`Chains::U`]): four chains or more in flight, at
    /// most four per row, a constant of each kernel so its loops unroll into registers.
    struct Chains<const M: usize>;

    impl<const M: usize> Chains<M> {
        const U: usize = if M >= 4 { 1 } else { 4usize.div_ceil(M) };
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum256(v: __m256) -> f32 {
        let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)))
    }

    macro_rules! by_rows {
        ($f:ident, $m:expr, $($args:expr),*) => {
            match $m {
                1 => $f::<1>($($args),*),
                2 => $f::<2>($($args),*),
                3 => $f::<3>($($args),*),
                4 => $f::<4>($($args),*),
                5 => $f::<5>($($args),*),
                6 => $f::<6>($($args),*),
                7 => $f::<7>($($args),*),
                _ => $f::<8>($($args),*),
            }
        };
    }

    /// The entry points: a kernel for a row count `m` (1..=8) known only at run time.
    macro_rules! dispatch_rows {
        ($($name:ident => $kernel:ident),*) => {$(
            pub(super) unsafe fn $name(stored: Stored, a: &[f32], m: usize, k: usize, row: *const u8, res: &mut [f32]) {
                // SAFETY: forwarded from row_dots' contract.
                unsafe { by_rows!($kernel, m, stored, a, k, row, res) }
            }
        )*};
    }
    dispatch_rows!(dots512 => dots512_m, dots256 => dots256_m);
}
