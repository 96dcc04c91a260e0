//! Which failures a call retries, and how long it waits between attempts: exponential backoff
//! with full jitter (so many workers that failed together do not come back together), or the
//! server's `Retry-After` when it sends one.

use std::time::Duration;

/// How a call retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The most attempts of one call, the first included (1: never retry).
    pub max_attempts: u32,
    /// The longest pause before the first retry; each retry doubles it, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest pause between attempts (a longer `Retry-After` is waited only if the time
    /// left allows it).
    pub max_delay: Duration,
    /// The longest a call spends retrying, from its first attempt: past it the last failure is
    /// the answer.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts within 30 seconds, pauses from 100 ms up to 5 s: long enough to ride out
    /// a database restart, short enough that a job learns of an outage.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The pause before attempt `attempt + 1` (the first retry follows attempt 1): the server's
    /// `Retry-After` if it gave one, else a random pause up to the backoff bound.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let doublings = attempt.saturating_sub(1).min(20);
        let bound = self
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay);
        bound.mul_f64(fastrand::f64())
    }
}

/// Whether an answer's status is worth another attempt: the server (or a proxy before it) could
/// not serve the request now, and did nothing.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// A `Retry-After` in seconds (the HTTP-date form is left to the backoff).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound_and_retry_after_wins() {
        let policy = RetryPolicy::default();
        for attempt in 1..12 {
            let bound = policy
                .base_delay
                .saturating_mul(1 << (attempt - 1))
                .min(policy.max_delay);
            assert!(policy.delay(attempt, None) <= bound);
        }
        assert_eq!(
            policy.delay(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
