//! Jittered exponential backoff.
//!
//! The n-th consecutive delay (n = 0, 1, …) is `base × 2ⁿ`, capped at `max`,
//! then multiplied by a random factor in `[1 − jitter, 1 + jitter]` so that
//! many gateways (or many devices) that failed together do not retry in
//! lock-step. The jittered value may exceed `max` by at most the jitter
//! fraction. [`Backoff::reset`] after a success starts again at `base`.
//!
//! The arithmetic is a pure function ([`Backoff::delay`]) so that it can be
//! tested without randomness; [`Backoff::next_delay`] draws the factor.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff state: how many consecutive failures so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    /// Reconnect backoff of a link: 100 ms doubling to 30 s, ±20 %.
    pub const LINK: Backoff =
        Backoff::new(Duration::from_millis(100), Duration::from_secs(30), 0.2);

    /// A backoff from `base` doubling up to `max`, with a relative `jitter`
    /// in `[0, 1)` (values outside are clamped when used).
    pub const fn new(base: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            base,
            max,
            jitter,
            attempt: 0,
        }
    }

    /// Consecutive delays handed out since the last reset.
    pub const fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures: the next delay is `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay, jittered with the thread's random generator.
    pub fn next_delay(&mut self) -> Duration {
        let unit: f64 = rand::rng().random_range(-1.0..=1.0);
        let d = self.delay(self.attempt, unit);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// The delay of attempt `n` for a random draw `unit` in `[-1, 1]`
    /// (−1 gives the shortest, +1 the longest jittered delay).
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        let factor = 2f64.powi(n.min(62) as i32);
        let raw = self.base.as_secs_f64() * factor;
        let capped = raw.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 0.99);
        let scaled = capped * (1.0 + jitter * unit.clamp(-1.0, 1.0));
        Duration::try_from_secs_f64(scaled.max(0.0)).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_base_and_stop_at_max() {
        let b = Backoff::LINK;
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(8, 0.0), Duration::from_millis(25_600));
        assert_eq!(b.delay(9, 0.0), Duration::from_secs(30));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let b = Backoff::LINK;
        assert_eq!(b.delay(0, -1.0), Duration::from_millis(80));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(120));
        let mut b = Backoff::LINK;
        for n in 0..20 {
            let d = b.next_delay().as_secs_f64();
            let nominal = (0.1 * 2f64.powi(n)).min(30.0);
            assert!(
                d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                "{n}: {d}"
            );
        }
        assert_eq!(b.attempts(), 20);
    }

    #[test]
    fn reset_starts_again_at_base() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8), 0.0);
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
