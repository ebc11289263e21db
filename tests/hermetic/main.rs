//! Hermetic tests: the orchestrator and runner over fakes and recorded encodings.
//! No servers, no dlib, no models: plain `cargo test`.

mod api;
mod dedupe;
mod failures;
mod hardening;
mod listener;
mod log_lines;
mod matching;
mod replay;
mod runner;
mod serve;
mod serve_queue;
mod thumbnails;
