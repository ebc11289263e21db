//! The one retry delay used wherever a server is waited for: worker start-up, the AMQP
//! consumer and the log sink. Exponential from `base` to `cap`, with up to `jitter` of
//! each delay added at random so many workers restarted together do not retry in step;
//! [`Backoff::reset`] after a success starts again from `base`.

use std::time::Duration;

/// Exponential back-off with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// Fraction of each delay (0..=1) that may be added at random.
    jitter: f64,
    next: Duration,
    seed: u64,
}

impl Default for Backoff {
    /// 0.25 s doubling to 30 s, with up to 20 % jitter.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(30), 0.2)
    }
}

impl Backoff {
    /// A back-off starting at `base`, doubling up to `cap`; `jitter` is clamped to 0..=1.
    pub fn new(base: Duration, cap: Duration, jitter: f64) -> Self {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id()).rotate_left(32);
        Self { base, cap: cap.max(base), jitter: jitter.clamp(0.0, 1.0), next: base, seed: seed | 1 }
    }

    /// The delay before the next attempt; each call doubles the following one up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        // xorshift64: enough to spread retries, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        delay + delay.mul_f64(self.jitter * unit)
    }

    /// After a success: the next delay is `base` again.
    pub fn reset(&mut self) {
        self.next = self.base;
    }

    /// Sleeps for [`Backoff::next_delay`], or returns `false` at once when `cancel` fires.
    pub async fn wait(&mut self, cancel: &tokio_util::sync::CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_bounded_jitter_and_resets() {
        let base = Duration::from_millis(100);
        let mut b = Backoff::new(base, Duration::from_millis(800), 0.5);
        let expected = [100, 200, 400, 800, 800, 800];
        for ms in expected {
            let d = b.next_delay();
            let floor = Duration::from_millis(ms);
            assert!(d >= floor && d <= floor.mul_f64(1.5), "{d:?} not in [{floor:?}, 1.5x]");
        }
        b.reset();
        assert!(b.next_delay() <= base.mul_f64(1.5));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1.0);
        let delays: std::collections::BTreeSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.len() > 10, "jitter should vary the delay: {delays:?}");
    }
}
