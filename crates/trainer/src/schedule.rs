//! Learning-rate schedules: linear warmup then cosine decay to zero, as Hugging Face's
//! `get_cosine_schedule_with_warmup` (one half-cycle).

/// The learning rate for 0-based update `step` of `total`: `base · step / warmup` during the
/// warmup, then `base · ½(1 + cos(π · progress))` with `progress = (step − warmup) /
/// (total − warmup)`.
pub fn warmup_cosine(base: f32, step: u64, total: u64, warmup: u64) -> f32 {
    if step < warmup {
        return base * step as f32 / warmup.max(1) as f32;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    (f64::from(base) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
}

#[cfg(test)]
mod tests {
    use super::warmup_cosine;

    #[test]
    fn warms_up_linearly_then_decays_to_zero() {
        assert_eq!(warmup_cosine(1.0, 0, 10, 2), 0.0);
        assert_eq!(warmup_cosine(1.0, 1, 10, 2), 0.5);
        assert_eq!(warmup_cosine(1.0, 2, 10, 2), 1.0);
        assert!((warmup_cosine(1.0, 6, 10, 2) - 0.5).abs() < 1e-6);
        assert!(warmup_cosine(1.0, 10, 10, 2).abs() < 1e-6);
        // No warmup: the first update runs at the base rate.
        assert_eq!(warmup_cosine(3e-4, 0, 5, 0), 3e-4);
    }
}
