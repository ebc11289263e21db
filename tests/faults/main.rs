//! Fault drills against real servers (feature `services`): workers killed over and over,
//! Redis and RabbitMQ restarted mid-batch, Redis frozen past the retry budget, four
//! workers on one queue. Each drill checks that nothing was lost or duplicated in effect:
//! the databases equal the ones computed here for a clean sequential run.
//!
//! The drills restart the shared RabbitMQ, so they run one at a time (a lock below) in a
//! test binary of their own; cargo runs test binaries one after another.
#![cfg(feature = "services")]

/// The binary under test: only integration tests know its path, so they hand it to
/// [`facerec_fakes::testkit::Worker::spawn`].
const FACEREC: &str = env!("CARGO_BIN_EXE_facerec");

mod api;
mod crashes;
mod ha;
mod hardening;
mod own_redis;
mod services_down;
mod startup;
mod submit;
mod tls;
mod workers;

/// Drills run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
