//! Adapters: one implementation of a port per file or folder. Adapters never call each
//! other; only the orchestrator, the runner and the CLI know them all.
//!
//! | port | production | local / replay |
//! |---|---|---|
//! | `FaceEncoder` | [`dlib`] | [`recorded_encoder`] |
//! | `FaceIndex` | `redis_index` | [`embedded_index`] |
//! | `MessageSource` | `amqp` | [`file_source`] (image folders, captured messages), [`memory_queue`] (`serve`) |
//! | `ImageQueue` | `amqp` (the work exchange) | [`memory_queue`] (`serve`: one queue, both ends) |
//! | `LogSink` | `amqp` (the `logs` exchange) | [`stderr_logs`] |

pub mod amqp;
pub mod dlib;
pub mod embedded_index;
pub mod file_source;
pub mod memory_queue;
pub mod recorded_encoder;
pub mod redis_index;
pub mod stderr_logs;
