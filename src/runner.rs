//! The loop around the orchestrator: take deliveries while there is room, process them
//! concurrently, settle each one, stop cleanly on shutdown.
//!
//! Shutdown is a [`CancellationToken`] passed in (as in mini-redis): once cancelled, no
//! new delivery is taken, deliveries in flight finish and are settled, then `run` returns.
//! Anything not settled by then is redelivered by the broker.
//!
//! Pauses: when the index fails its health probe (an outage, not the message's fault),
//! or a settlement fails (the dead-letter queue or the broker is in trouble), no new
//! delivery is taken until the index answers again or a back-off has passed; observers
//! hear of it through [`Observe::paused`] (readiness goes false).

use crate::backoff::Backoff;
use crate::orchestrator::{Orchestrator, Outcome, retry_delay};
use crate::ports::{Delivery, FaceEncoder, FaceIndex, LogSink, MessageSource, SourceError};
use futures::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Images processed at the same time.
    pub concurrency: usize,
    /// First delay before a failed delivery is requeued; doubles per attempt.
    pub retry_base: Duration,
    /// Longest delay before a requeue.
    pub retry_max: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// One settled delivery, as seen by an observer (progress bar, metrics, tests).
#[derive(Debug, Clone)]
pub struct Report {
    /// What the orchestrator decided.
    pub outcome: Outcome,
    /// Time from taking the delivery to settling it.
    pub elapsed: Duration,
    /// Whether the settlement reached the source (if not, the broker redelivers).
    pub settled: Result<(), SourceError>,
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Deliveries taken.
    pub taken: u64,
    /// Deliveries acked (stored or name added).
    pub acked: u64,
    /// Deliveries requeued.
    pub requeued: u64,
    /// Deliveries dead-lettered.
    pub dead_lettered: u64,
}

/// Told about every delivery the runner takes and settles (progress bar, metrics, tests).
pub trait Observe: Send + Sync {
    /// A delivery was taken and is now in flight.
    fn taken(&self) {}
    /// A delivery was settled.
    fn settled(&self, report: &Report);
    /// The runner stopped taking deliveries, and why (`Some`), or resumed (`None`).
    fn paused(&self, _reason: Option<&str>) {}
}

impl<F: Fn(&Report) + Send + Sync> Observe for F {
    fn settled(&self, report: &Report) {
        self(report)
    }
}

/// A shared observer.
pub type Observer = Arc<dyn Observe>;

/// An observer that ignores everything.
pub fn ignore() -> Observer {
    struct Ignore;
    impl Observe for Ignore {
        fn settled(&self, _: &Report) {}
    }
    Arc::new(Ignore)
}

/// Runs until the source is exhausted, fails fatally, or `shutdown` is cancelled.
///
/// # Errors
/// A fatal source error, after in-flight deliveries were settled.
pub async fn run<S, E, I, L>(
    orchestrator: Arc<Orchestrator<E, I, L>>,
    source: Arc<S>,
    options: RunOptions,
    shutdown: CancellationToken,
    observer: Observer,
) -> Result<RunStats, SourceError>
where
    S: MessageSource + 'static,
    E: FaceEncoder + 'static,
    I: FaceIndex + 'static,
    L: LogSink + 'static,
{
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut stats = RunStats::default();
    let mut result = Ok(());
    let hold = Arc::new(Hold::default());
    loop {
        // Reap finished tasks as we go so the set stays small.
        while let Some(done) = tasks.try_join_next() {
            count(&mut stats, done);
        }
        let paused = hold.cause.lock().expect("lock").take();
        if let Some(cause) = paused {
            if !wait_out(cause, &hold, &*orchestrator, &*observer, &shutdown).await {
                break;
            }
            continue;
        }
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let delivery = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = source.next() => next,
        };
        let delivery = match delivery {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(SourceError::Unavailable(reason)) => {
                tracing::warn!(%reason, "message source unavailable; waiting");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            Err(fatal) => {
                result = Err(fatal);
                break;
            }
        };
        stats.taken += 1;
        observer.taken();
        let (orchestrator, source, observer, shutdown, hold) =
            (orchestrator.clone(), source.clone(), observer.clone(), shutdown.clone(), hold.clone());
        let options = options.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = match AssertUnwindSafe(orchestrator.process(&delivery)).catch_unwind().await {
                Ok(outcome) => outcome,
                // A bug, not bad input: count it as a failed attempt so that it is bounded
                // by max_attempts like any other failure, and never left unsettled.
                Err(panic) => panicked(&delivery, orchestrator.settings().max_attempts, &*panic),
            };
            if let Outcome::Retry { outage: true, reason, .. } = &outcome {
                // Put back at once, uncounted; the loop waits for the index instead.
                hold.set(Cause::IndexDown(reason.clone()));
            } else if let Outcome::Retry { .. } = outcome {
                // Back off before requeueing, so a server that is down is not hammered; a
                // shutdown cuts the wait short (the message is requeued at once).
                let delay = retry_delay(delivery.attempt, options.retry_base, options.retry_max);
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
            let settled = source.settle(delivery.id, outcome.settlement()).await;
            match &settled {
                Ok(()) => hold.settle_failures.store(0, Ordering::Relaxed),
                Err(e) => {
                    // The source has put the delivery back (nack or closed channel); taking
                    // more now would only strand them the same way.
                    tracing::warn!(error = %e, "settling failed; the delivery was returned to the queue");
                    hold.settle_failures.fetch_add(1, Ordering::Relaxed);
                    hold.set(Cause::SettleFailed(e.to_string()));
                }
            }
            observer.settled(&Report { outcome: outcome.clone(), elapsed: started.elapsed(), settled });
            drop(permit);
            outcome
        });
    }
    while let Some(done) = tasks.join_next().await {
        count(&mut stats, done);
    }
    result.map(|()| stats)
}

fn panicked(delivery: &Delivery, max_attempts: u32, panic: &(dyn std::any::Any + Send)) -> Outcome {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %what, attempt = delivery.attempt, "processing panicked");
    let reason = format!("processing panicked: {what}");
    if delivery.attempt >= max_attempts {
        Outcome::Rejected { hash: None, reason }
    } else {
        Outcome::Retry { hash: None, reason, outage: false }
    }
}

/// Why the loop stopped taking deliveries.
enum Cause {
    /// The index failed its health probe: wait until it answers.
    IndexDown(String),
    /// A settlement failed: wait a back-off that grows with consecutive failures.
    SettleFailed(String),
}

/// Set by processing tasks, waited out by the loop.
#[derive(Default)]
struct Hold {
    cause: Mutex<Option<Cause>>,
    /// Settlements failed in a row (reset by a success).
    settle_failures: AtomicU32,
}

impl Hold {
    fn set(&self, cause: Cause) {
        let mut current = self.cause.lock().expect("lock");
        // An outage outranks a failed settlement: it has a probe to end it.
        if !matches!(*current, Some(Cause::IndexDown(_))) {
            *current = Some(cause);
        }
    }
}

/// Takes no delivery until the cause has passed; `false` if `shutdown` fired meanwhile.
async fn wait_out<E, I, L>(
    cause: Cause,
    hold: &Hold,
    orchestrator: &Orchestrator<E, I, L>,
    observer: &dyn Observe,
    shutdown: &CancellationToken,
) -> bool
where
    E: FaceEncoder,
    I: FaceIndex,
    L: LogSink,
{
    let resumed = match cause {
        Cause::IndexDown(reason) => {
            tracing::warn!(%reason, "index down: taking no deliveries until it answers");
            observer.paused(Some(&format!("index unavailable: {reason}")));
            let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5), 0.2);
            loop {
                if !backoff.wait(shutdown).await {
                    break false;
                }
                match orchestrator.index().ping().await {
                    Ok(()) => break true,
                    Err(e) => tracing::debug!(error = %e, "index still down"),
                }
            }
        }
        Cause::SettleFailed(reason) => {
            observer.paused(Some(&format!("settling failed: {reason}")));
            let failures = hold.settle_failures.load(Ordering::Relaxed);
            let delay = retry_delay(failures, Duration::from_millis(500), Duration::from_secs(30));
            tokio::select! {
                () = shutdown.cancelled() => false,
                () = tokio::time::sleep(delay) => true,
            }
        }
    };
    if resumed {
        tracing::info!("resuming: taking deliveries again");
    }
    observer.paused(None);
    resumed
}

fn count(stats: &mut RunStats, done: Result<Outcome, tokio::task::JoinError>) {
    match done {
        Ok(Outcome::Stored { .. } | Outcome::NameAdded { .. }) => stats.acked += 1,
        Ok(Outcome::Retry { .. }) => stats.requeued += 1,
        Ok(Outcome::Rejected { .. }) => stats.dead_lettered += 1,
        Err(e) => tracing::error!(error = %e, "a processing task was cancelled"),
    }
}
