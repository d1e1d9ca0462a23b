//! The CPU timing harness of `cargo xtask bench`: repeat budgets, the median of repeats after a
//! warm-up, output checks against an f64 reference, the two ceilings (the `gemm` crate's SGEMM at
//! a large size, a large multi-threaded memcpy), and the machine's description and UTC time.
//!
//! On the CPU no cache flush runs between repeats: every timed working set here is either far
//! larger than the last-level cache or meant to be measured warm (decode re-reads its weights).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

use crate::report::Ceilings;

/// How long to time one operation: at least `min_repeats` timed calls and `min_seconds` of them,
/// at most `max_repeats`.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub min_repeats: usize,
    pub max_repeats: usize,
    pub min_seconds: f64,
}

impl Budget {
    /// `--quick`: enough repeats for a stable median on a 2-core machine in seconds.
    pub const QUICK: Budget = Budget { min_repeats: 5, max_repeats: 50, min_seconds: 1.0 };
    pub const FULL: Budget = Budget { min_repeats: 10, max_repeats: 200, min_seconds: 2.0 };
}

/// One untimed warm-up call, then timed calls within `budget`: (median seconds, repeats).
pub fn median_time(budget: Budget, mut f: impl FnMut()) -> (f64, usize) {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < budget.max_repeats.max(1)
        && (times.len() < budget.min_repeats || start.elapsed().as_secs_f64() < budget.min_seconds)
    {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    (median(&mut times), times.len())
}

/// Times `count` operations alternating, so a shared machine's load falls on all of them alike:
/// one untimed warm-up call each, then rounds of one timed call each in an order shuffled per
/// round ([`round_order`]), until every one has `min_repeats` calls and the rounds took
/// `count · min_seconds` (at most `max_repeats` rounds).
/// `f(i)` runs operation `i` once and returns its seconds (a peer in another process times itself).
/// Returns (median seconds, repeats) per operation.
pub fn alternating_medians(
    budget: Budget,
    count: usize,
    mut f: impl FnMut(usize) -> Result<f64>,
) -> Result<Vec<(f64, usize)>> {
    for i in 0..count {
        f(i)?;
    }
    let mut times = vec![Vec::new(); count];
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < budget.max_repeats.max(1)
        && (rounds < budget.min_repeats || start.elapsed().as_secs_f64() < budget.min_seconds * count as f64)
    {
        for i in round_order(count, rounds) {
            times[i].push(f(i)?);
        }
        rounds += 1;
    }
    Ok(times.into_iter().map(|mut t| (median(&mut t), t.len())).collect())
}

/// The order of round `round` of [`alternating_medians`]: a shuffle seeded by the round, so each
/// operation runs right after each other one about equally often.
///
/// Why not a rotation: peers leave their threads spinning after a call (OpenBLAS and OpenMP wait
/// busily before they sleep), which slows whatever runs next on a 2-core machine. Rotating
/// 0 1 2 3 → 1 2 3 0 → … keeps the cyclic order, so one operation followed the same peer in three
/// rounds of four: ragtune's 256³ SGEMM, timed right after PyTorch's, took 1.24× the `gemm`
/// crate's time with the peers in the run and 0.87× without them (2-core Zen 3, 2026-12-06).
pub fn round_order(count: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut s = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in (1..count).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, ((s >> 33) % (i as u64 + 1)) as usize);
    }
    order
}

/// Seconds one call of `f` takes.
pub fn time_once(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// The median (the upper one of an even count); NaN for no values.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The relative error every check uses: the cross-crate tests' one measure, so a bench row and
/// a parity test judge the same output alike.
pub use ragtune_tests::rel_err;

/// Checks `got` against the reference before a row is timed: the relative error, or an error
/// naming `what` when it is above `tol` (NaN never passes).
pub fn check_close(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<f64> {
    let err = rel_err(got, want);
    if err.is_nan() || err > tol {
        bail!(
            "{what}: output differs from the reference by {err:.2e} (tolerance {tol:.0e}; {} values checked); \
             a kernel is wrong, so it is not timed",
            got.len()
        );
    }
    Ok(err)
}

/// Threads the CPU ops use (rayon's pool: RAYON_NUM_THREADS or every core).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// The compute ceiling: the faster SGEMM on `n × n × n` of the `gemm` crate and, on a CPU where
/// ragtune runs its own kernel (AVX2 or AVX-512), that kernel, best of a few runs each on all
/// threads, called directly (no op layer). Returns FLOP/s and which won.
pub fn sgemm_ceiling(n: usize) -> (f64, &'static str) {
    use ragtune_compute::cpu::matmul::{blocked, pack::View};
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i * 5) % 11) as f32 / 11.0 - 0.5).collect();
    let mut c = vec![0f32; n * n];
    let best_of = |f: &mut dyn FnMut()| {
        (0..4)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let flops = |s: f64| 2.0 * (n as f64).powi(3) / s;
    let crate_best = flops(best_of(&mut || gemm_crate_sgemm(n, n, n, &a, &b, &mut c)));
    if !blocked::available() {
        return (crate_best, "gemm crate");
    }
    let own = blocked::Problem {
        m: n,
        n,
        k: n,
        alpha: 1.0,
        beta: 0.0,
        a: View { ptr: a.as_ptr(), rs: n, cs: 1 },
        b: View { ptr: b.as_ptr(), rs: n, cs: 1 },
        packed_b: None,
        epilogue: ragtune_compute::cpu::matmul::packed::Epilogue::NONE,
        c: c.as_mut_ptr(),
        ldc: n,
    };
    // SAFETY: available() checked the CPU; a, b and c hold n × n values each.
    let own_best = flops(best_of(&mut || unsafe { blocked::sgemm(&own, threads()) }));
    let own_name = match blocked::Kernel::for_this_cpu() {
        blocked::Kernel::Avx512 => "ragtune AVX-512",
        _ => "ragtune AVX2",
    };
    if own_best > crate_best { (own_best, own_name) } else { (crate_best, "gemm crate") }
}

/// C = A·B, row-major f32, through the `gemm` crate on rayon's threads: the CPU matmul peer.
pub fn gemm_crate_sgemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_crate_sgemm_b(m, n, k, a, b, false, c)
}

/// [`gemm_crate_sgemm`] with B stored transposed (`[n, k]`, a linear layer's weight) when
/// `trans_b`.
pub fn gemm_crate_sgemm_b(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], trans_b: bool, c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm_crate_sgemm: short operand");
    // B's (column, row) strides: [k, n] row-major, or [n, k] row-major read as Bᵀ.
    let (b_cs, b_rs) = if trans_b { (k as isize, 1) } else { (1, n as isize) };
    // SAFETY: the assert above guarantees each row-major operand holds its m×k, k×n, m×n values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads()),
        )
    }
}

/// The bandwidth ceiling: a copy of `bytes` split over the threads, best of a few, counting
/// bytes read + written.
pub fn copy_ceiling(bytes: usize) -> f64 {
    let n = bytes / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0f32; n];
    let chunk = n.div_ceil(threads());
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(c));
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    (2 * n * 4) as f64 / best
}

/// A read-only stream: `bytes` summed over the threads, best of a few, counting bytes read. A
/// decode step only reads its weights, so this is its floor's rate; it comes out below the copy
/// ceiling's read + write count (2-core AMD EPYC, 2026-12-05: 17.3–18.7 against 25.8–26.7
/// GB/s), so a decode judged by the copy ceiling alone looks further from its floor than it is.
pub fn read_ceiling(bytes: usize) -> f64 {
    let src: Vec<f32> = (0..bytes / 4).map(|i| (i % 7) as f32).collect();
    let chunk = src.len().div_ceil(threads());
    let mut best = f64::MAX;
    let mut total = 0f32;
    for _ in 0..5 {
        let t = Instant::now();
        total = std::thread::scope(|s| {
            let parts: Vec<_> = src.chunks(chunk).map(|c| s.spawn(move || lane_sum(c))).collect();
            parts.into_iter().map(|p| p.join().expect("a summing thread panicked")).sum()
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(total);
    (src.len() * 4) as f64 / best
}

/// A sum in 16 independent lanes, so it vectorises and waits on no add latency: what bounds it
/// is the memory read.
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let body = x.chunks_exact(16);
    let tail: f32 = body.remainder().iter().sum();
    for c in body {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Both ceilings, measured now. The same sizes for quick and full runs (about two seconds on
/// two cores), so the fractions of both kinds of run compare.
pub fn measure_ceilings() -> Ceilings {
    // 2048³ reaches the gemm crate's plateau on a few cores; 256 MiB is far beyond any LLC.
    let n = 2048;
    let copy = 256 << 20;
    let (compute_flops, which) = sgemm_ceiling(n);
    Ceilings {
        compute_name: format!("{which} SGEMM {n}³ f32, {} threads, best of 4", threads()),
        compute_flops,
        bandwidth_name: format!("memcpy {} MiB, {} threads, best of 5 (read + write)", copy >> 20, threads()),
        bandwidth_bytes: copy_ceiling(copy),
    }
}

/// "AMD EPYC 7B13, 2 cores, Linux x86_64" from /proc/cpuinfo where there is one.
pub fn machine() -> String {
    let cpu = ragtune_compute::cpu::model_name().unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores, {} {}", std::env::consts::OS, std::env::consts::ARCH)
}

/// Now in UTC: (`20250131T120000Z` for folder names, `2025-01-31T12:00:00Z`).
pub fn utc_now() -> (String, String) {
    utc_at(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// The UTC time `secs` after the Unix epoch, in both forms of [`utc_now`].
pub fn utc_at(secs: u64) -> (String, String) {
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"),
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_stream_sums_every_value() {
        // Lengths around the 16 lanes (tail only, exact, and both); small integers sum exactly.
        for len in [0usize, 5, 16, 33, 1000] {
            let x: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
            let want: f64 = x.iter().map(|&v| v as f64).sum();
            assert_eq!(lane_sum(&x) as f64, want, "len {len}");
        }
        assert!(read_ceiling(1 << 20) > 0.0);
    }

    #[test]
    fn utc_dates_match_known_instants() {
        assert_eq!(utc_at(0).1, "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.
        assert_eq!(utc_at(951_827_696).1, "2000-02-29T12:34:56Z");
        assert_eq!(utc_at(1_735_689_599), ("20241231T235959Z".into(), "2024-12-31T23:59:59Z".into()));
    }

    #[test]
    fn rounds_are_permutations_and_every_operation_follows_every_other_alike() {
        for count in [1, 2, 4, 5] {
            // follows[a][b]: how often b ran right after a, rounds chained as the timing runs them.
            let mut follows = vec![vec![0usize; count]; count];
            let mut last: Option<usize> = None;
            let rounds = 3000;
            for r in 0..rounds {
                let order = round_order(count, r);
                let mut sorted = order.clone();
                sorted.sort();
                assert_eq!(sorted, (0..count).collect::<Vec<_>>(), "round {r} of {count}");
                for i in order {
                    if let Some(p) = last {
                        follows[p][i] += 1;
                    }
                    last = Some(i);
                }
            }
            if count < 2 {
                continue;
            }
            // A fair shuffle puts b right after a (a ≠ b) inside a round 1/count of the rounds
            // and across the boundary to the next round 1/count² of them. A rotation would give
            // one b of each row nearly all of that row's count.
            let c = count as f64;
            let fair = rounds as f64 * (1.0 / c + 1.0 / (c * c));
            for (a, row) in follows.iter().enumerate() {
                for (b, &n) in row.iter().enumerate().filter(|&(b, _)| b != a) {
                    assert!(
                        (n as f64 - fair).abs() < 0.25 * fair + 30.0,
                        "{count} operations: {b} ran after {a} {n} times, fair share {fair:.0}"
                    );
                }
            }
        }
    }

    #[test]
    fn median_is_the_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn median_time_respects_the_budget() {
        let mut calls = 0;
        let (t, n) = median_time(Budget { min_repeats: 4, max_repeats: 6, min_seconds: 0.0 }, || calls += 1);
        assert_eq!((n, calls), (4, 5), "4 timed calls after one warm-up");
        assert!(t >= 0.0);
        let (_, n) = median_time(Budget { min_repeats: 1, max_repeats: 3, min_seconds: 10.0 }, || {});
        assert_eq!(n, 3, "max_repeats caps a long min_seconds");
    }

    #[test]
    fn checks_reject_wrong_and_nan_outputs() {
        let want = [1.0, 2.0, 2.0];
        assert!(check_close("ok", &[1.0, 2.0, 2.0], &want, 1e-6).unwrap() < 1e-12);
        // ‖(0, 0, 0.3)‖ / ‖(1, 2, 2)‖ = 0.1.
        assert!((rel_err(&[1.0, 2.0, 2.3], &want) - 0.1).abs() < 1e-6);
        let e = check_close("sgemm 8³", &[1.0, 2.0, 2.3], &want, 1e-2).unwrap_err().to_string();
        assert!(e.contains("sgemm 8³") && e.contains("1.00e-1"), "{e}");
        assert!(check_close("nan", &[1.0, f32::NAN, 2.0], &want, 1.0).is_err());
        assert!(check_close("short", &[1.0], &want, 1.0).is_err());
    }

    #[test]
    fn the_gemm_crate_peer_multiplies() {
        // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]].
        let mut c = [0f32; 4];
        gemm_crate_sgemm(2, 2, 2, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // 1×3 · 3×2.
        let mut c = [0f32; 2];
        gemm_crate_sgemm(1, 2, 3, &[1.0, 2.0, 3.0], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &mut c);
        assert_eq!(c, [4.0, 5.0]);
    }
}
