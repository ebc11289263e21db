//! Helpers shared by every test binary, bench and example (feature `testkit`): one place,
//! so no test binary carries its own copy.
//!
//! # Layout
//! - [`fixtures`]: the sample images, the recorded encodings, the `fixtures/` folder.
//! - [`message`]: the one builder of seed-style JSON messages.
//! - [`harness`]: [`Harness`], the orchestrator and runner over the fakes (hermetic tests).
//! - [`wait`]: [`wait_until`], polling with a deadline.
//! - [`names`]: [`Names`], a test's own key prefix, exchange and queues on shared servers.
//! - [`servers`]: RabbitMQ and Redis clients, publishing, queue lengths, dumps, cleanup.
//! - [`sentinel`]: [`SentinelSet`], a Redis primary, replica and three sentinels of a test's own.
//! - [`worker`]: [`Worker`], a spawned `facerec worker` process, and [`signal`].
//! - [`batch`]: [`Batch`], synthetic recorded faces and the databases they must produce.

pub mod batch;
pub mod fixtures;
pub mod harness;
pub mod message;
pub mod names;
pub mod sentinel;
pub mod servers;
pub mod wait;
pub mod worker;

pub use batch::Batch;
pub use harness::Harness;
pub use message::message;
pub use names::Names;
pub use sentinel::SentinelSet;
pub use wait::wait_until;
pub use worker::{Worker, signal};
