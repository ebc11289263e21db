//! facerec: finds faces in images, stores their encodings, and records which images share
//! a face.
//!
//! # Layout
//! - [`ports`]: the four traits the pipeline needs (`MessageSource`, `FaceEncoder`,
//!   `FaceIndex`, `LogSink`) and their error types (transient or permanent).
//! - [`orchestrator`]: one delivery in, one [`orchestrator::Outcome`] out; the pipeline
//!   logic, written once.
//! - [`runner`]: the concurrent loop that takes, processes and settles deliveries until
//!   shutdown.
//! - [`message`]: the wire format, parsed into a validated [`message::ScanRequest`].
//! - [`face`], [`hash`]: the domain types.
//! - [`decode`]: image bytes to RGB, with limits; [`thumbnail`]: the small JPEG stored
//!   with each image.
//! - [`matching`]: the exact nearest-face kernel shared by both indexes.
//! - [`fsck`]: the schema's invariants checked over a snapshot, and the fixes.
//! - [`reindex`]: db 4 and the distances rebuilt for a new tolerance, planned over a
//!   snapshot.
//! - [`log_lines`]: routing keys and safe rendering of progress lines.
//! - [`http`], [`metrics`]: health, readiness and Prometheus metrics of the worker.
//! - [`config`], [`capture`], [`people`], [`memory`], [`shutdown`], [`telemetry`]: settings with
//!   secrets, captured-message files, grouping faces into people, memory housekeeping,
//!   signals, process logs.
//! - [`cli`]: the `facerec` subcommands.
//! - [`adapters`]: the implementations of the ports (dlib, RabbitMQ, Redis, the embedded
//!   index, folders, captured files, recorded encodings).

#![warn(missing_docs, unreachable_pub)]
#![recursion_limit = "1024"]

pub mod adapters;
pub mod api;
pub mod app;
pub mod backoff;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod face;
pub mod fsck;
pub mod hash;
pub mod http;
pub mod log_lines;
pub mod matching;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod orchestrator;
pub mod people;
pub mod ports;
pub mod reindex;
pub mod runner;
pub mod shutdown;
pub mod telemetry;
pub mod thumbnail;

#[cfg(feature = "dlib")]
#[macro_use]
extern crate cpp;
