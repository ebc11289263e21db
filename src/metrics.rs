//! Worker metrics in the Prometheus text format: messages by outcome, faces found,
//! processing seconds by stage, images in flight, index size, reconnects, dead letters.
//!
//! Plain atomics and a fixed-bucket histogram: the few series a worker has do not need a
//! metrics framework.

use crate::orchestrator::Outcome;
use crate::runner::{Observe, Report};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the processing-time histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const STAGES: [&str; 6] = ["decode", "detect", "landmarks", "encode", "store", "total"];
const OUTCOMES: [&str; 4] = ["stored", "name_added", "retry", "dead_letter"];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }
}

/// Values read from other components when metrics are rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Faces in the worker's cache.
    pub index_faces: u64,
    /// Bytes of the cache's face rows.
    pub index_bytes: u64,
    /// RabbitMQ connections made after the first.
    pub reconnects: u64,
    /// Messages re-published after a worker died with them.
    pub redeliveries: u64,
    /// Log lines dropped because the logs exchange was slow or down.
    pub log_lines_dropped: u64,
}

/// Counters fed by the runner.
#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; 4],
    faces: AtomicU64,
    in_flight: AtomicI64,
    stages: Mutex<[Histogram; 6]>,
}

impl Metrics {
    /// Renders every series, with `gauges` read from the adapters.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP facerec_messages_total Messages settled, by outcome.");
        let _ = writeln!(out, "# TYPE facerec_messages_total counter");
        for (label, counter) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(out, "facerec_messages_total{{outcome=\"{label}\"}} {}", counter.load(Ordering::Relaxed));
        }
        counter(
            &mut out,
            "facerec_faces_found_total",
            "Faces found in new images.",
            self.faces.load(Ordering::Relaxed),
        );
        gauge(&mut out, "facerec_in_flight", "Images being processed now.", self.in_flight.load(Ordering::Relaxed));
        let _ =
            writeln!(out, "# HELP facerec_processing_seconds Time per new image, by stage (total: taken to settled).");
        let _ = writeln!(out, "# TYPE facerec_processing_seconds histogram");
        let stages = self.stages.lock().expect("metrics lock");
        for (stage, h) in STAGES.iter().zip(stages.iter()) {
            for (bound, n) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(out, "facerec_processing_seconds_bucket{{stage=\"{stage}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "facerec_processing_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "facerec_processing_seconds_sum{{stage=\"{stage}\"}} {}", h.sum);
            let _ = writeln!(out, "facerec_processing_seconds_count{{stage=\"{stage}\"}} {}", h.count);
        }
        drop(stages);
        gauge(&mut out, "facerec_index_faces", "Faces held in the worker's face cache.", gauges.index_faces as i64);
        gauge(&mut out, "facerec_index_bytes", "Bytes of face rows in the cache.", gauges.index_bytes as i64);
        counter(&mut out, "facerec_reconnects_total", "RabbitMQ reconnections.", gauges.reconnects);
        counter(
            &mut out,
            "facerec_dead_letters_total",
            "Messages dead-lettered.",
            self.outcomes[3].load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "facerec_redeliveries_total",
            "Messages re-published after a worker died with them.",
            gauges.redeliveries,
        );
        counter(&mut out, "facerec_log_lines_dropped_total", "Progress lines dropped.", gauges.log_lines_dropped);
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

impl Observe for Metrics {
    fn taken(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn settled(&self, report: &Report) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let index = OUTCOMES.iter().position(|o| *o == report.outcome.label()).expect("known outcome");
        self.outcomes[index].fetch_add(1, Ordering::Relaxed);
        if let Outcome::Stored { faces, times, .. } = &report.outcome {
            self.faces.fetch_add(*faces as u64, Ordering::Relaxed);
            let mut stages = self.stages.lock().expect("metrics lock");
            for (h, d) in stages.iter_mut().zip([
                times.decode,
                times.detect,
                times.landmarks,
                times.encode,
                times.store,
                report.elapsed,
            ]) {
                h.observe(d);
            }
        }
    }
}
