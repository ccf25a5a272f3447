//! Reconnect back-off: capped exponential delays with jitter, never a tight loop.
//!
//! Contract: [`Backoff::next_delay`] returns, for the `n`-th consecutive failed attempt
//! (`n = 0, 1, …`), a delay drawn uniformly from `[base/2, base]` where
//! `base = min(max, initial · 2ⁿ)`. Every delay is at least `initial / 2`, which the
//! [`BackoffPolicy`] constructor forces to be positive, so a run of failures can never spin.
//! [`Backoff::reset`] is called when a connection reaches `<success>`.
//!
//! whatsmeow waits `errors × 2 s` with no cap and no jitter (`protocol-whatsmeow.md` §2.10):
//! linear growth hammers a server that is down for long, and synchronised clients (200 sessions
//! in one host losing their network at once) all return in the same second. "Equal jitter"
//! (half fixed, half random) keeps a floor while spreading the herd.
//!
//! The module is pure: randomness comes in as an argument, time is not read here.

use std::time::Duration;

use rand::RngExt as _;

/// How reconnect delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    initial: Duration,
    max: Duration,
}

/// The smallest allowed initial delay: anything below is raised to this.
pub const MIN_INITIAL_DELAY: Duration = Duration::from_millis(100);

impl BackoffPolicy {
    /// A policy starting at `initial` and doubling up to `max`. `initial` is raised to
    /// [`MIN_INITIAL_DELAY`] and `max` to `initial` if smaller, so the policy is always valid.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(MIN_INITIAL_DELAY);
        Self {
            initial,
            max: max.max(initial),
        }
    }

    /// The first delay's upper bound.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on every delay.
    pub fn max(&self) -> Duration {
        self.max
    }
}

impl Default for BackoffPolicy {
    /// 1 s doubling to a 2-minute cap.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(120))
    }
}

/// The state of one session's reconnect loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// A fresh back-off (no failures yet).
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The number of consecutive failures recorded since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt; records one more failure.
    pub fn next_delay<R: rand::Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let base = self.base(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        let spread = (base - half).as_millis() as u64;
        half + Duration::from_millis(rng.random_range(0..=spread))
    }

    /// `min(max, initial · 2^attempt)` without overflow.
    fn base(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.policy
            .initial
            .checked_mul(factor)
            .unwrap_or(self.policy.max)
            .min(self.policy.max)
    }

    /// Forgets the failures: the next delay starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let policy = BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut b = Backoff::new(policy);
        let mut bases = Vec::new();
        for n in 0..40 {
            let d = b.next_delay(&mut rng);
            let base = Duration::from_secs(1u64 << n.min(6)).min(Duration::from_secs(60));
            assert!(
                d >= base / 2 && d <= base,
                "attempt {n}: {d:?} not in [{:?}, {base:?}]",
                base / 2
            );
            bases.push(base);
        }
        assert_eq!(b.attempts(), 40);
        b.reset();
        let d = b.next_delay(&mut rng);
        assert!(d <= Duration::from_secs(1));
    }

    #[test]
    fn a_zero_policy_still_waits() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::new(BackoffPolicy::new(Duration::ZERO, Duration::ZERO));
        for _ in 0..100 {
            assert!(b.next_delay(&mut rng) >= MIN_INITIAL_DELAY / 2);
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut rng = StdRng::seed_from_u64(3);
        let policy = BackoffPolicy::new(Duration::from_secs(8), Duration::from_secs(8));
        let delays: std::collections::BTreeSet<_> = (0..50)
            .map(|_| Backoff::new(policy).next_delay(&mut rng))
            .collect();
        assert!(
            delays.len() > 10,
            "jitter produced only {} distinct delays",
            delays.len()
        );
    }
}
