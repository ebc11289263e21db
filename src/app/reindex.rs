//! `facerec reindex`, assembled: check the worker registry, read what the plan needs from
//! Redis, plan (src/reindex.rs) off the async executor, write the changes. Redis only:
//! the embedded index (`--index FILE`) has no reindex ("reindex needs Redis").

use crate::adapters::redis_index::{RedisIndex, RegisteredWorker, WriteReport};
use crate::ports::IndexError;
use crate::reindex::{Method, filter_needs_faces, plan};
use std::time::{Duration, Instant};

/// What to reindex to.
#[derive(Debug, Clone, Copy)]
pub struct ReindexRequest {
    /// The new tolerance.
    pub tolerance: f64,
    /// Go ahead although workers run at another tolerance.
    pub force: bool,
    /// Threads for the kernel.
    pub threads: usize,
}

/// What a reindex did.
#[derive(Debug, serde::Serialize)]
pub struct ReindexOutcome {
    /// The tolerance recorded before (`None`: never recorded).
    pub previous: Option<f64>,
    /// The new tolerance, now recorded.
    pub tolerance: f64,
    /// Filter (stricter) or kernel (looser, or no recorded tolerance).
    pub method: Method,
    /// Images whose db 4 set or distances changed.
    pub images_changed: usize,
    /// Linked pairs at the new tolerance.
    pub pairs: usize,
    /// Workers running at another tolerance, reindexed past with `--force`.
    pub forced_past: Vec<RegisteredWorker>,
    /// What could not be written.
    pub left_out: WriteReport,
    /// Reading Redis, planning, writing.
    #[serde(with = "seconds")]
    pub read: Duration,
    /// See `read`.
    #[serde(with = "seconds")]
    pub plan: Duration,
    /// See `read`.
    #[serde(with = "seconds")]
    pub write: Duration,
}

/// Why a reindex did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// Running workers would keep linking new images at their own tolerance.
    #[error(
        "workers are running at another tolerance than {tolerance}: {}; stop them or restart them with \
         --tolerance {tolerance} first, or pass --force",
        list(.workers)
    )]
    OtherTolerance {
        /// The requested tolerance.
        tolerance: f64,
        /// The workers at another one.
        workers: Vec<RegisteredWorker>,
    },
    /// Redis failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

fn list(workers: &[RegisteredWorker]) -> String {
    workers.iter().map(|w| format!("{} at {}", w.host, w.tolerance)).collect::<Vec<_>>().join(", ")
}

/// Rebuilds db 4 and the distances at `request.tolerance` and records it.
///
/// # Errors
/// [`ReindexError::OtherTolerance`] (nothing read or written) unless `force`; Redis
/// failures (batches already written stay, the old tolerance stays recorded: run again).
pub async fn run(index: &RedisIndex, request: ReindexRequest) -> Result<ReindexOutcome, ReindexError> {
    let tolerance = request.tolerance;
    let others: Vec<RegisteredWorker> =
        index.workers().await?.into_iter().filter(|w| w.tolerance != tolerance).collect();
    if !others.is_empty() && !request.force {
        return Err(ReindexError::OtherTolerance { tolerance, workers: others });
    }
    let started = Instant::now();
    let previous = index.recorded_tolerance().await?;
    let method = Method::choose(previous, tolerance);
    let mut stored = index.stored_links().await?;
    if method == Method::Kernel || filter_needs_faces(&stored) {
        stored.faces = index.stored_faces().await?;
    }
    let read = started.elapsed();
    let started = Instant::now();
    let threads = request.threads;
    let (planned, changes) = tokio::task::spawn_blocking(move || {
        let planned = plan(&stored, method, tolerance, threads);
        let changes = planned.changes(&stored);
        (planned, changes)
    })
    .await
    .map_err(|e| IndexError::Unavailable(format!("planning task failed: {e}")))?;
    let plan_time = started.elapsed();
    let started = Instant::now();
    let left_out = index.write_reindex(&changes, tolerance).await?;
    Ok(ReindexOutcome {
        previous,
        tolerance,
        method,
        images_changed: changes.len(),
        pairs: planned.pairs(),
        forced_past: others,
        left_out,
        read,
        plan: plan_time,
        write: started.elapsed(),
    })
}

mod seconds {
    pub(super) fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
