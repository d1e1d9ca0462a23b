//! Paired tests for two arms scored right/wrong on the same questions: the exact McNemar test
//! and the minimum detectable effect at this number of questions.
//!
//! With `b` questions only the first arm got right and `c` only the second, the questions both
//! got right or both got wrong say nothing about which arm is better; under "no difference"
//! each discordant question is a fair coin, so `b ~ Binomial(b + c, ½)`.

use serde::{Deserialize, Serialize};

use super::cluster::design_effect;

/// z for a two-sided α = 0.05: Φ⁻¹(0.975).
pub const Z_ALPHA: f64 = 1.959_963_984_540_054;
/// z for 80% power: Φ⁻¹(0.8).
pub const Z_POWER: f64 = 0.841_621_233_572_914_3;

/// McNemar's test and the minimum detectable effect for one arm-vs-arm comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Questions only the first arm got right (`b`).
    pub only_first: usize,
    /// Questions only the second arm got right (`c`).
    pub only_second: usize,
    /// Exact two-sided McNemar p-value ([`mcnemar_exact`]).
    pub p_value: f64,
    /// The smallest difference in accuracy (a fraction, 0–1) these questions detect with 80%
    /// power at α = 0.05 two-sided ([`min_detectable_effect`]), clusters accounted for.
    pub min_detectable: f64,
}

/// [`PairedTest`] of two right/wrong score lists (1.0 / 0.0, matched question by question),
/// `keys[i]` the cluster of question `i` (for the design effect of the MDE). `None` when the
/// lists are empty, of different lengths, or not all 0/1 (partial credit has no McNemar test).
pub fn paired_test(a: &[f64], b: &[f64], keys: &[&str]) -> Option<PairedTest> {
    let binary = |v: &f64| *v == 0.0 || *v == 1.0;
    if a.is_empty() || a.len() != b.len() || !a.iter().chain(b).all(binary) {
        return None;
    }
    let only_first = a.iter().zip(b).filter(|(x, y)| **x > **y).count();
    let only_second = a.iter().zip(b).filter(|(x, y)| **x < **y).count();
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let deff = if keys.len() == diffs.len() { design_effect(&diffs, keys) } else { 1.0 };
    Some(PairedTest {
        only_first,
        only_second,
        p_value: mcnemar_exact(only_first, only_second),
        min_detectable: min_detectable_effect(a.len(), only_first + only_second, deff),
    })
}

/// The exact (binomial) McNemar test, two-sided: `p = min(1, 2·P(X ≤ min(b, c)))` with
/// `X ~ Binomial(b + c, ½)`. 1 when `b = c` or there is no discordant pair.
///
/// Computed in log space so that `b + c` up to 10⁵ and beyond neither overflows nor underflows:
/// the largest term `P(X = m)`, `m = min(b, c)`, is `exp(ln (n choose m) − n ln 2)` from log
/// factorials, and the tail is that term times `Σ_{k ≤ m} P(X = k)/P(X = m)`, summed from `m`
/// down by the ratio `P(X = k−1)/P(X = k) = k/(n − k + 1)` (each ≤ 1) until a term no longer
/// changes the sum.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    let m = b.min(c);
    if n == 0 || 2 * m >= n {
        return 1.0;
    }
    let log_top = ln_factorial(n) - ln_factorial(m) - ln_factorial(n - m) - n as f64 * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in (1..=m).rev() {
        term *= k as f64 / (n - k + 1) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    (2.0 * (log_top + sum.ln()).exp()).min(1.0)
}

/// ln(n!): summed exactly below 256, Stirling's series above (its first omitted term,
/// 1/(1680 n⁷), is below 10⁻²⁰ there).
fn ln_factorial(n: usize) -> f64 {
    if n < 256 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    let (x2, x3) = (x * x, x * x * x);
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x3)
        + 1.0 / (1260.0 * x3 * x2)
}

/// The minimum detectable effect of a paired binary comparison: the smallest true difference
/// in accuracy δ = p₁₀ − p₀₁ that a two-sided test at α = 0.05 finds with 80% power, given
/// `n` questions of which `discordant` had different outcomes under the two arms.
///
/// Formula (Connor 1987, the normal approximation to McNemar's test): with ψ the discordance
/// rate and n' the effective number of questions, δ solves
///
///   √n' · δ = z₀.₉₇₅ · √ψ + z₀.₈ · √(ψ − δ²),   z₀.₉₇₅ = 1.95996, z₀.₈ = 0.84162,
///
/// found by bisection on (0, √ψ] (the left side grows with δ, the right side shrinks).
/// - ψ = discordant / n, the observed rate; with no discordant question it is 3/n (the
///   "rule of three" 95% upper bound) rather than 0, which would call any difference detectable.
/// - n' = n / max(1, deff), `deff` the design effect of the clusters
///   ([`design_effect`]): questions that share a source count for less than independent ones.
///
/// Capped at 1 (100 points): when even δ = √ψ is out of reach (n' ≤ 3.84) nothing is detectable.
pub fn min_detectable_effect(n: usize, discordant: usize, deff: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let psi = if discordant == 0 { 3.0 / n as f64 } else { discordant as f64 / n as f64 }.min(1.0);
    let n_eff = n as f64 / deff.max(1.0);
    let f = |d: f64| n_eff.sqrt() * d - Z_ALPHA * psi.sqrt() - Z_POWER * (psi - d * d).max(0.0).sqrt();
    let (mut lo, mut hi) = (0.0, psi.sqrt());
    if f(hi) < 0.0 {
        return 1.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-15 {
            break;
        }
    }
    hi.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2·P(X ≤ min(b, c)) for X ~ Binomial(b + c, ½), summed term by term in f64 (the
    /// binomial coefficients are exact integers in f64 for n ≤ 50).
    fn direct(b: usize, c: usize) -> f64 {
        let n = b + c;
        let mut coef = 1.0f64; // (n choose 0)
        let mut tail = 0.0;
        for k in 0..=b.min(c) {
            tail += coef;
            coef = coef * (n - k) as f64 / (k + 1) as f64;
        }
        (2.0 * tail / 2f64.powi(n as i32)).min(1.0)
    }

    #[test]
    fn mcnemar_matches_hand_computed_values() {
        // b = 1, c = 9: 2·(1 + 10)/2¹⁰ = 22/1024.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15, "{}", mcnemar_exact(1, 9));
        assert!((mcnemar_exact(9, 1) - 0.02148).abs() < 5e-6);
        // b = 0, c = 6: 2/64, the smallest table that reaches p < 0.05.
        assert!((mcnemar_exact(0, 6) - 2.0 / 64.0).abs() < 1e-15);
        assert!((mcnemar_exact(0, 5) - 2.0 / 32.0).abs() < 1e-15);
        for b in [0, 1, 7, 40, 50_000] {
            assert_eq!(mcnemar_exact(b, b), 1.0);
        }
        assert_eq!(mcnemar_exact(3, 4), 1.0, "b and c one apart: 2·P(X ≤ 3) of Bin(7) = 1");
        for b in 0..=25 {
            for c in 0..=25 {
                let (p, q) = (mcnemar_exact(b, c), direct(b, c));
                assert!((p - q).abs() <= 1e-13 * q.max(1e-300), "b={b} c={c}: {p} vs {q}");
                assert_eq!(p, mcnemar_exact(c, b));
            }
        }
    }

    #[test]
    fn mcnemar_works_in_log_space_for_large_tables() {
        // Exact values (Python, integer arithmetic: 2·Σ_{k≤b} C(n,k) / 2ⁿ).
        let close = |p: f64, exact: f64| ((p - exact) / exact).abs() < 1e-8;
        let p = mcnemar_exact(49_700, 50_300);
        assert!(close(p, 0.058_197_353_110_193_74), "{p}");
        let p = mcnemar_exact(49_000, 51_000);
        assert!(close(p, 2.588_716_038_346_898e-10), "{p}");
        let p = mcnemar_exact(100, 1_000);
        assert!(close(p, 2.327_449_813_825_982_6e-187), "{p}");
        assert!((mcnemar_exact(3, 20) - 0.000_488_281_25).abs() < 1e-15);
        // Far in the tail: 2·P(X = 0) = 2⁻⁹⁹⁹⁹⁹ underflows f64, and so does the p-value.
        assert_eq!(mcnemar_exact(0, 100_000), 0.0);
    }

    #[test]
    fn the_mde_solves_connors_equation() {
        // n = 100, 20 discordant: ψ = 0.2. By hand (bisection in Python on the same equation):
        // δ = 0.123819. The simpler (z₀.₉₇₅ + z₀.₈)·√(ψ/n) = 0.1253 bounds it from above.
        let d = min_detectable_effect(100, 20, 1.0);
        assert!((d - 0.123_819_331).abs() < 1e-8, "{d}");
        let psi: f64 = 0.2;
        let gap = 10.0 * d - Z_ALPHA * psi.sqrt() - Z_POWER * (psi - d * d).sqrt();
        assert!(gap.abs() < 1e-12, "{gap}");
        assert!(d < (Z_ALPHA + Z_POWER) * (psi / 100.0).sqrt());
        // A design effect of 4 is a quarter of the questions: the same as n = 25.
        assert_eq!(min_detectable_effect(100, 20, 4.0), min_detectable_effect(25, 5, 1.0));
        // Fewer questions, larger MDE; no discordance uses ψ = 3/n; tiny n detects nothing.
        assert!((min_detectable_effect(400, 140, 1.0) - 0.082_627_997).abs() < 1e-8);
        assert!((min_detectable_effect(60, 3, 1.0) - 0.079_295_830).abs() < 1e-8);
        assert_eq!(min_detectable_effect(100, 0, 1.0), min_detectable_effect(100, 3, 1.0));
        assert_eq!(min_detectable_effect(3, 3, 1.0), 1.0);
        assert_eq!(min_detectable_effect(0, 0, 1.0), 1.0);
    }

    #[test]
    fn paired_test_counts_discordant_questions() {
        let a = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        let b = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let keys = ["p1", "p2", "p3", "p4", "p5", "p6"];
        let t = paired_test(&a, &b, &keys).unwrap();
        assert_eq!((t.only_first, t.only_second), (3, 1));
        assert_eq!(t.p_value, mcnemar_exact(3, 1));
        assert_eq!(t.min_detectable, min_detectable_effect(6, 4, 1.0));
        assert!(paired_test(&[0.5], &[1.0], &["p"]).is_none(), "partial credit");
        assert!(paired_test(&[], &[], &[]).is_none());
        assert!(paired_test(&[1.0], &[1.0, 0.0], &["p"]).is_none());
    }
}
