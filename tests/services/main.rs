//! Integration tests against real RabbitMQ and Redis (feature `services`).
//!
//! Servers come from `REDIS_URL` / `RABBITMQ_URL` (loopback defaults); `scripts/test.sh`
//! starts them when missing. Unreachable servers fail these tests: they never skip. Each
//! test uses its own Redis key prefix and its own exchange and queues, so tests run in
//! parallel without touching each other's data.
#![cfg(feature = "services")]

/// The binary under test: only integration tests know its path, so they hand it to
/// [`facerec_fakes::testkit::Worker::spawn`].
const FACEREC: &str = env!("CARGO_BIN_EXE_facerec");

mod amqp_source;
mod api;
mod erase;
mod forget;
#[cfg(feature = "dlib")]
mod interop;
mod redis_index;
mod reindex;
mod thumbnails;
mod worker;
mod wrong_types;
