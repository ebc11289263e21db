//! Load shedding: while the work queue holds more than `FACEREC_API_MAX_QUEUE` messages,
//! submissions get 503 with `Retry-After` instead of piling more work on the workers. The
//! depth is read from the broker at most once a second (one passive queue declare), so a
//! burst of requests costs one round trip; off (no reads at all) unless configured.

use super::Api;
use super::problem::Problem;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The last depth read and when.
#[derive(Default)]
pub struct DepthCache(Mutex<Option<(Instant, u64)>>);

impl DepthCache {
    /// How long a depth reading is trusted.
    pub const FRESH: Duration = Duration::from_secs(1);

    fn get(&self) -> Option<u64> {
        let cached = *self.0.lock().expect("depth lock");
        cached.filter(|(at, _)| at.elapsed() < Self::FRESH).map(|(_, n)| n)
    }

    fn set(&self, depth: u64) {
        *self.0.lock().expect("depth lock") = Some((Instant::now(), depth));
    }
}

impl Api {
    /// `Err(503)` while the work queue is deeper than the configured maximum. A failed
    /// depth reading sheds nothing: the submission itself then says whether the broker is
    /// there.
    pub(super) async fn shed(&self) -> Result<(), Problem> {
        let Some(max) = self.settings.max_queue else { return Ok(()) };
        let depth = match self.depth.get() {
            Some(n) => n,
            None => match self.ports.queue.depth().await {
                Ok(n) => {
                    self.depth.set(n);
                    n
                }
                Err(e) => {
                    tracing::debug!(error = %e, "queue depth unknown; not shedding");
                    return Ok(());
                }
            },
        };
        if depth > max {
            self.metrics.submission("shed");
            return Err(
                self.unavailable(format!("the work queue holds {depth} images (more than {max}): send it again later"))
            );
        }
        Ok(())
    }
}
