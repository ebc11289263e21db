//! Per-test names (Redis key prefix, exchange, queues, logs exchange), unique across tests
//! and processes, so tests share the servers without touching each other's data.

use std::sync::atomic::{AtomicU32, Ordering};

/// The names one test uses on the shared servers.
#[derive(Debug, Clone)]
pub struct Names {
    /// Prefix of every Redis key the test writes.
    pub prefix: String,
    /// The work exchange.
    pub exchange: String,
    /// The work queue (also its routing key).
    pub queue: String,
    /// The dead-letter queue.
    pub dead: String,
    /// The logs exchange.
    pub logs: String,
}

impl Names {
    /// Fresh names for `test`: its name, the process id and a counter.
    pub fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        Self {
            prefix: format!("t:{id}:"),
            exchange: format!("x-{id}"),
            queue: format!("q-{id}"),
            dead: format!("q-{id}.dead"),
            logs: format!("logs-{id}"),
        }
    }

    /// The worker flags that point it at these names.
    pub fn worker_args(&self) -> Vec<String> {
        [
            ("--exchange", &self.exchange),
            ("--queue", &self.queue),
            ("--routing-key", &self.queue),
            ("--dead-letter-queue", &self.dead),
            ("--logs-exchange", &self.logs),
            ("--redis-key-prefix", &self.prefix),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
    }

    /// The AMQP settings of a worker using these names on `RABBITMQ_URL`.
    pub fn amqp_settings(&self) -> facerec::adapters::amqp::AmqpSettings {
        let url = facerec::config::ServiceUrl::parse(
            "RABBITMQ_URL",
            &crate::testkit::servers::amqp_url(),
            &["amqp", "amqps"],
        )
        .expect("RABBITMQ_URL");
        let mut s = facerec::adapters::amqp::AmqpSettings::new(url, "facerec-test");
        s.exchange = self.exchange.clone();
        s.queue = self.queue.clone();
        s.routing_key = self.queue.clone();
        s.dead_letter_queue = self.dead.clone();
        s.logs_exchange = self.logs.clone();
        s
    }

    /// The Redis index settings of these names (their key prefix) on `REDIS_URL`.
    pub fn redis_settings(&self) -> facerec::adapters::redis_index::RedisSettings {
        let url = facerec::config::ServiceUrl::parse(
            "REDIS_URL",
            &crate::testkit::servers::redis_url(),
            &["redis", "rediss"],
        )
        .expect("REDIS_URL");
        facerec::adapters::redis_index::RedisSettings {
            url,
            key_prefix: self.prefix.clone(),
            ..facerec::adapters::redis_index::RedisSettings::default()
        }
    }
}
