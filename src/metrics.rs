//! Worker metrics in the Prometheus text format: messages by outcome, faces found,
//! processing seconds by stage, images in flight, index size, reconnects, dead letters.
//!
//! The series live in a `prometheus-client` [`Registry`] and are encoded in the classic
//! text format (0.0.4). Names, types and labels are part of the dashboards' contract: the
//! test below pins every series. Label values are fixed words (outcomes, stages), never
//! addresses or anything else that could carry a secret.

use crate::orchestrator::Outcome;
use crate::runner::{Observe, Report};
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the processing-time histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const STAGES: [&str; 6] = ["decode", "detect", "landmarks", "encode", "store", "total"];
const OUTCOMES: [&str; 4] = ["stored", "name_added", "retry", "dead_letter"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
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

/// Counters fed by the runner, plus the series copied from [`Gauges`] at each render.
pub struct Metrics {
    registry: Registry,
    /// One counter per [`OUTCOMES`] entry, created up front so every outcome shows from
    /// the start (a `Family` only lists label sets it has seen).
    outcomes: [Counter; 4],
    faces: Counter,
    in_flight: Gauge,
    /// One histogram per [`STAGES`] entry.
    stages: [Histogram; 6],
    index_faces: Gauge,
    index_bytes: Gauge,
    reconnects: Counter,
    redeliveries: Counter,
    log_lines_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // Counter names go in without `_total`: the encoder appends it. Help texts go in
        // without the final period: the registry appends it.
        let outcomes_family = Family::<OutcomeLabel, Counter>::default();
        let outcomes = OUTCOMES.map(|outcome| outcomes_family.get_or_create(&OutcomeLabel { outcome }).clone());
        registry.register("facerec_messages", "Messages settled, by outcome", outcomes_family);
        let faces = Counter::default();
        registry.register("facerec_faces_found", "Faces found in new images", faces.clone());
        let in_flight = Gauge::default();
        registry.register("facerec_in_flight", "Images being processed now", in_flight.clone());
        let stages_family =
            Family::<StageLabel, Histogram, fn() -> Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        let stages = STAGES.map(|stage| stages_family.get_or_create(&StageLabel { stage }).clone());
        registry.register(
            "facerec_processing_seconds",
            "Time per new image, by stage (total: taken to settled)",
            stages_family,
        );
        let index_faces = Gauge::default();
        registry.register("facerec_index_faces", "Faces held in the worker's face cache", index_faces.clone());
        let index_bytes = Gauge::default();
        registry.register("facerec_index_bytes", "Bytes of face rows in the cache", index_bytes.clone());
        let reconnects = Counter::default();
        registry.register("facerec_reconnects", "RabbitMQ reconnections", reconnects.clone());
        // The same counter as `outcome="dead_letter"`, under the name alerts use.
        registry.register("facerec_dead_letters", "Messages dead-lettered", outcomes[3].clone());
        let redeliveries = Counter::default();
        registry.register(
            "facerec_redeliveries",
            "Messages re-published after a worker died with them",
            redeliveries.clone(),
        );
        let log_lines_dropped = Counter::default();
        registry.register("facerec_log_lines_dropped", "Progress lines dropped", log_lines_dropped.clone());
        Metrics {
            registry,
            outcomes,
            faces,
            in_flight,
            stages,
            index_faces,
            index_bytes,
            reconnects,
            redeliveries,
            log_lines_dropped,
        }
    }
}

impl Metrics {
    /// Renders every series, with `gauges` read from the adapters.
    pub fn render(&self, gauges: Gauges) -> String {
        // The adapters own these values; they are copied in at each scrape. The counters
        // among them are monotonic where they are kept, so storing keeps them monotonic.
        self.index_faces.set(i64::try_from(gauges.index_faces).unwrap_or(i64::MAX));
        self.index_bytes.set(i64::try_from(gauges.index_bytes).unwrap_or(i64::MAX));
        self.reconnects.inner().store(gauges.reconnects, Ordering::Relaxed);
        self.redeliveries.inner().store(gauges.redeliveries, Ordering::Relaxed);
        self.log_lines_dropped.inner().store(gauges.log_lines_dropped, Ordering::Relaxed);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Observe for Metrics {
    fn taken(&self) {
        self.in_flight.inc();
    }

    fn settled(&self, report: &Report) {
        self.in_flight.dec();
        let index = OUTCOMES.iter().position(|o| *o == report.outcome.label()).expect("known outcome");
        self.outcomes[index].inc();
        if let Outcome::Stored { faces, times, .. } = &report.outcome {
            self.faces.inc_by(*faces as u64);
            for (h, d) in self.stages.iter().zip([
                times.decode,
                times.detect,
                times.landmarks,
                times.encode,
                times.store,
                report.elapsed,
            ]) {
                h.observe(d.as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::StageTimes;
    use crate::hash::ImageHash;
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn report(outcome: Outcome) -> Report {
        Report { outcome, elapsed: Duration::from_millis(40), settled: Ok(()) }
    }

    /// Metrics that saw one delivery of each outcome.
    fn fed() -> Metrics {
        let m = Metrics::default();
        let hash = ImageHash::parse(&"ab".repeat(32)).unwrap();
        let times = StageTimes {
            decode: Duration::from_millis(3),
            detect: Duration::from_millis(20),
            landmarks: Duration::from_millis(1),
            encode: Duration::from_millis(7),
            store: Duration::from_micros(500),
        };
        for outcome in [
            Outcome::Stored { hash: hash.clone(), name: "a.jpg".into(), faces: 2, matches: vec![], times },
            Outcome::NameAdded { hash: hash.clone(), name: "b.jpg".into() },
            Outcome::Retry { hash: None, reason: "redis down".into(), outage: false },
            Outcome::Rejected { hash: None, reason: "junk".into() },
        ] {
            m.taken();
            m.settled(&report(outcome));
        }
        m.taken();
        m
    }

    fn gauges() -> Gauges {
        Gauges { index_faces: 11, index_bytes: 12, reconnects: 13, redeliveries: 14, log_lines_dropped: 15 }
    }

    /// Every family and series a dashboard or alert may use, as rendered before the move
    /// to `prometheus-client`. Renaming, relabelling, adding or dropping one fails here.
    fn expected() -> BTreeSet<String> {
        let mut want: BTreeSet<String> = [
            "# TYPE facerec_messages_total counter",
            "facerec_messages_total{outcome=\"stored\"}",
            "facerec_messages_total{outcome=\"name_added\"}",
            "facerec_messages_total{outcome=\"retry\"}",
            "facerec_messages_total{outcome=\"dead_letter\"}",
            "# TYPE facerec_faces_found_total counter",
            "facerec_faces_found_total",
            "# TYPE facerec_in_flight gauge",
            "facerec_in_flight",
            "# TYPE facerec_processing_seconds histogram",
            "# TYPE facerec_index_faces gauge",
            "facerec_index_faces",
            "# TYPE facerec_index_bytes gauge",
            "facerec_index_bytes",
            "# TYPE facerec_reconnects_total counter",
            "facerec_reconnects_total",
            "# TYPE facerec_dead_letters_total counter",
            "facerec_dead_letters_total",
            "# TYPE facerec_redeliveries_total counter",
            "facerec_redeliveries_total",
            "# TYPE facerec_log_lines_dropped_total counter",
            "facerec_log_lines_dropped_total",
        ]
        .map(String::from)
        .into();
        for stage in ["decode", "detect", "landmarks", "encode", "store", "total"] {
            for le in ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"] {
                want.insert(format!("facerec_processing_seconds_bucket{{stage=\"{stage}\",le=\"{le}\"}}"));
            }
            want.insert(format!("facerec_processing_seconds_sum{{stage=\"{stage}\"}}"));
            want.insert(format!("facerec_processing_seconds_count{{stage=\"{stage}\"}}"));
        }
        want
    }

    /// The `# TYPE` lines and the series (a sample line without its value) of `text`,
    /// after checking each family's `# HELP` line names it.
    fn families_and_series(text: &str) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        for line in text.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let name = help.split(' ').next().unwrap();
                assert!(text.contains(&format!("# TYPE {name} ")), "HELP for {name} without its TYPE");
            } else if line.starts_with("# TYPE ") {
                assert!(got.insert(line.to_string()), "{line} twice");
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
                assert!(got.insert(series.to_string()), "{series} twice");
            }
        }
        got
    }

    #[test]
    fn every_series_keeps_its_name_type_and_labels() {
        for text in [Metrics::default().render(Gauges::default()), fed().render(gauges())] {
            let (got, want) = (families_and_series(&text), expected());
            let missing: Vec<_> = want.difference(&got).collect();
            let unexpected: Vec<_> = got.difference(&want).collect();
            assert!(missing.is_empty() && unexpected.is_empty(), "missing {missing:?}, unexpected {unexpected:?}");
        }
    }

    #[test]
    fn values_count_what_the_runner_reported_and_what_the_adapters_hold() {
        let text = fed().render(gauges());
        for sample in [
            "facerec_messages_total{outcome=\"stored\"} 1",
            "facerec_messages_total{outcome=\"dead_letter\"} 1",
            "facerec_dead_letters_total 1",
            "facerec_faces_found_total 2",
            "facerec_in_flight 1",
            "facerec_processing_seconds_bucket{stage=\"detect\",le=\"0.01\"} 0",
            "facerec_processing_seconds_bucket{stage=\"detect\",le=\"0.025\"} 1",
            "facerec_processing_seconds_sum{stage=\"total\"} 0.04",
            "facerec_processing_seconds_count{stage=\"total\"} 1",
            "facerec_index_faces 11",
            "facerec_index_bytes 12",
            "facerec_reconnects_total 13",
            "facerec_redeliveries_total 14",
            "facerec_log_lines_dropped_total 15",
        ] {
            assert!(text.lines().any(|l| l == sample), "missing {sample} in\n{text}");
        }
    }
}
