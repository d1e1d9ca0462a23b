//! How numbers read in the report: percentages and differences in points with no more decimals
//! than their intervals warrant, sizes, durations, and the arms' display names.
//!
//! Precision rule: a number is printed to the decimal where its 95% interval stops being
//! informative — whole points when the interval is at least 2 points wide, one decimal down to
//! 0.2 points, two below that. A collapsed interval (width 0) prints whole points.

use super::results::Interval;
use crate::config::Arm;

/// Decimals for a quantity in percent (or points) whose interval spans `lo..hi` (fractions).
pub fn decimals(lo: f64, hi: f64) -> usize {
    let width = (hi - lo).abs() * 100.0;
    if width == 0.0 || width >= 2.0 {
        0
    } else if width >= 0.2 {
        1
    } else {
        2
    }
}

/// A fraction as a percentage with `d` decimals, with a proper minus sign and never "−0".
pub fn percent_number(x: f64, d: usize) -> String {
    let s = format!("{:.*}", d, x * 100.0);
    // "-0", "-0.0": a negative that rounds to zero reads as zero.
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s.replacen('-', "−", 1)
    }
}

/// `91% (86–95%)`.
pub fn percent(iv: &Interval) -> String {
    let d = decimals(iv.lo, iv.hi);
    format!("{}% ({}–{}%)", percent_number(iv.mean, d), percent_number(iv.lo, d), percent_number(iv.hi, d))
}

/// A difference of fractions in percentage points: `60 points (53 to 67)`, `−7 points (−11
/// to −3)`. "to" rather than a dash, which would read as a minus beside negative bounds.
pub fn points(iv: &Interval) -> String {
    let d = decimals(iv.lo, iv.hi);
    let mean = percent_number(iv.mean, d);
    let unit = if mean == "1" || mean == "−1" { "point" } else { "points" };
    format!("{mean} {unit} ({} to {})", percent_number(iv.lo, d), percent_number(iv.hi, d))
}

/// Like [`points`] but with an explicit sign on the mean: `+52 points (44 to 60)`.
pub fn signed_points(iv: &Interval) -> String {
    let p = points(iv);
    if p.starts_with('−') || p.starts_with("0 ") { p } else { format!("+{p}") }
}

/// The interval negated: "behind by 12 points (4 to 19)" rather than "ahead by −12 (−19 to −4)".
pub fn negated(iv: &Interval) -> Interval {
    Interval { mean: -iv.mean, lo: -iv.hi, hi: -iv.lo, n: iv.n }
}

/// How the arm a report calls `id` is named in sentences: its [`Arm::prose_name`], or the id
/// in backticks when it names no arm.
pub fn arm_name(id: &str) -> String {
    match Arm::from_id(id) {
        Some(arm) => arm.prose_name().into(),
        None => format!("`{id}`"),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units: `812 B`, `14.2 KiB`, `3.1 MiB`, `1.20 GiB`.
pub fn bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let x = b as f64;
    if x < K {
        format!("{b} B")
    } else if x < K * K {
        format!("{:.1} KiB", x / K)
    } else if x < K * K * K {
        format!("{:.1} MiB", x / (K * K))
    } else {
        format!("{:.2} GiB", x / (K * K * K))
    }
}

/// Seconds as a duration: `0.42 s`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "—".into();
    }
    if seconds < 1.0 {
        format!("{seconds:.2} s")
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// The metric suffixes, largest first: every number the reports shorten uses this one table.
pub const METRIC_SUFFIXES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")];

/// `x` over the largest of `suffixes` (a tail of [`METRIC_SUFFIXES`]) it reaches, with that
/// suffix; `None` below the smallest.
pub fn with_suffix(x: f64, suffixes: &[(f64, &'static str)]) -> Option<(f64, &'static str)> {
    suffixes.iter().find(|(unit, _)| x >= *unit).map(|&(unit, suffix)| (x / unit, suffix))
}

/// A count with a metric suffix: `135M`, `1.2B`, `52k`, `812`. Billions are the largest unit.
pub fn count(n: u64) -> String {
    let Some((value, suffix)) = with_suffix(n as f64, &METRIC_SUFFIXES[1..]) else {
        return n.to_string();
    };
    if value >= 100.0 { format!("{value:.0}{suffix}") } else { format!("{value:.1}{suffix}") }
}

/// A plain number with about three significant digits: `0.042`, `3.14`, `12.3`, `1234`.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let a = x.abs();
    if a == 0.0 || a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(mean: f64, lo: f64, hi: f64) -> Interval {
        Interval { mean, lo, hi, n: 100 }
    }

    #[test]
    fn precision_follows_the_interval_width() {
        assert_eq!(percent(&iv(0.9134, 0.861, 0.952)), "91% (86–95%)");
        // 0.5 points wide: one decimal.
        assert_eq!(percent(&iv(0.9134, 0.911, 0.916)), "91.3% (91.1–91.6%)");
        // 0.1 points wide: two.
        assert_eq!(percent(&iv(0.91342, 0.9129, 0.9139)), "91.34% (91.29–91.39%)");
        // Collapsed: whole points.
        assert_eq!(percent(&iv(1.0, 1.0, 1.0)), "100% (100–100%)");
    }

    #[test]
    fn differences_read_in_points_with_real_minus_signs() {
        assert_eq!(points(&iv(0.6, 0.53, 0.67)), "60 points (53 to 67)");
        assert_eq!(points(&iv(-0.07, -0.11, -0.03)), "−7 points (−11 to −3)");
        assert_eq!(points(&iv(-0.001, -0.05, 0.04)), "0 points (−5 to 4)");
        assert_eq!(points(&iv(0.01, -0.05, 0.04)), "1 point (−5 to 4)");
        assert_eq!(signed_points(&iv(0.52, 0.44, 0.60)), "+52 points (44 to 60)");
        assert_eq!(signed_points(&iv(-0.12, -0.19, -0.04)), "−12 points (−19 to −4)");
        assert_eq!(points(&negated(&iv(-0.12, -0.19, -0.04))), "12 points (4 to 19)");
    }

    #[test]
    fn sizes_durations_counts() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(14_540), "14.2 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 100_000), "3.1 MiB");
        assert_eq!(duration(0.4213), "0.42 s");
        assert_eq!(duration(245.0), "4 min 05 s");
        assert_eq!(duration(7380.0), "2 h 03 min");
        assert_eq!(count(135_000_000), "135M");
        assert_eq!(count(1_240_000_000), "1.2B");
        assert_eq!(count(812), "812");
        assert_eq!(number(0.0421), "0.042");
        assert_eq!(number(12.34), "12.3");
    }
}
