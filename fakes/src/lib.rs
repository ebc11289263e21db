//! Test doubles of facerec's four ports: in-memory fakes that record every call and
//! inject failures, plus mockall mocks for scripted sequences.
//!
//! Production code that runs without servers (the embedded index, the file source, the
//! recorded encoder) lives in the `facerec` crate itself; this crate only holds doubles and,
//! behind the `testkit` feature, the helpers the test binaries share.
//!
//! # Layout
//! - [`timeline`]: one ordered record of events shared by several fakes, so a test can
//!   assert "acked only after the write was durable".
//! - [`source`]: [`FakeSource`], a queue that redelivers requeued messages like a broker.
//! - [`index`]: [`FlakyIndex`], a wrapper over any index that fails on command.
//! - [`encoder`]: [`FakeEncoder`], canned faces per hash, with call counts and a gate.
//! - [`logs`]: [`RecordingLogs`], every published line with its routing key.
//! - [`queue`]: [`FakeQueue`] and [`FakeFetcher`], the REST front-end's submissions and URLs.
//! - [`mocks`]: mockall mocks of the four ports.
//! - [`testkit`] (feature `testkit`): what every test binary, bench and example shares:
//!   fixtures, message builder, harness, server clients, a spawned worker.

pub mod encoder;
pub mod index;
pub mod logs;
pub mod mocks;
pub mod queue;
pub mod source;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timeline;

pub use encoder::FakeEncoder;
pub use index::{FlakyIndex, IndexCall, Method};
pub use logs::RecordingLogs;
pub use queue::{FakeFetcher, FakeQueue, Submission};
pub use source::FakeSource;
pub use timeline::Timeline;
