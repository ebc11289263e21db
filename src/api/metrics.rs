//! The front-end's own Prometheus series: requests by route and status, submissions and
//! URL fetches by outcome. Kept apart from the worker's `src/metrics.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters, rendered in the Prometheus text format.
#[derive(Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    submissions: Mutex<BTreeMap<&'static str, u64>>,
    fetches: Mutex<BTreeMap<&'static str, u64>>,
}

impl ApiMetrics {
    /// One request answered: `route` is the matched pattern (`/match/{hash}`), never the raw
    /// path, so clients cannot create series.
    pub fn request(&self, route: &str, status: u16) {
        *self.requests.lock().expect("metrics lock").entry((route.to_owned(), status)).or_default() += 1;
    }

    /// One submission: `accepted`, `unavailable` or `rejected`.
    pub fn submission(&self, outcome: &'static str) {
        *self.submissions.lock().expect("metrics lock").entry(outcome).or_default() += 1;
    }

    /// One URL fetch: `ok`, `known` (answered from db 1), `refused`, `failed`.
    pub fn fetch(&self, outcome: &'static str) {
        *self.fetches.lock().expect("metrics lock").entry(outcome).or_default() += 1;
    }

    /// Every series; `broker_connected` is read from the queue when rendering.
    pub fn render(&self, broker_connected: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP facerec_api_requests_total Requests answered, by route and status.");
        let _ = writeln!(out, "# TYPE facerec_api_requests_total counter");
        for ((route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let route = route.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(out, "facerec_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP facerec_api_submissions_total Images offered to the work queue, by outcome.");
        let _ = writeln!(out, "# TYPE facerec_api_submissions_total counter");
        for (outcome, n) in self.submissions.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "facerec_api_submissions_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP facerec_api_fetches_total URLs asked for, by outcome.");
        let _ = writeln!(out, "# TYPE facerec_api_fetches_total counter");
        for (outcome, n) in self.fetches.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "facerec_api_fetches_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP facerec_api_broker_up Whether the link to RabbitMQ is up.");
        let _ = writeln!(out, "# TYPE facerec_api_broker_up gauge");
        let _ = writeln!(out, "facerec_api_broker_up {}", u8::from(broker_connected));
        out
    }
}
