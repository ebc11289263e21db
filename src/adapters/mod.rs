//! Adapters: one implementation of a port per file or folder. Adapters never call each
//! other; only the orchestrator, the runner and the CLI know them all.

pub mod dlib;
