//! The one percentile rule of the benches' latency figures.

use std::time::Duration;

/// The `p` quantile (0 ≤ p ≤ 1) of `sorted` (ascending) in milliseconds: the sample at rank
/// (n − 1)·p rounded to the nearest, so p = 0.5 is the median and p = 1 the maximum. NaN when
/// there are no samples, so an empty measurement cannot pass for a fast one.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    // For an empty slice the index rounds below zero, which `as usize` saturates to 0, and
    // `get` finds nothing.
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(index)
        .map_or(f64::NAN, |sample| sample.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_samples_in_milliseconds() {
        let samples: Vec<Duration> = (1..=101).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 0.0), 1.0);
        assert_eq!(percentile_ms(&samples, 0.5), 51.0);
        assert_eq!(percentile_ms(&samples, 0.99), 100.0);
        assert_eq!(percentile_ms(&samples, 1.0), 101.0);
    }

    #[test]
    fn no_samples_have_no_percentile() {
        assert!(percentile_ms(&[], 0.5).is_nan());
    }
}
