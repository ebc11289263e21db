//! Integration tests against real RabbitMQ and Redis (feature `services`).
//!
//! Servers come from `REDIS_URL` / `RABBITMQ_URL` (loopback defaults); `scripts/test.sh`
//! starts them when missing. Unreachable servers fail these tests: they never skip. Each
//! test uses its own Redis key prefix and its own exchange and queues, so tests run in
//! parallel without touching each other's data.
#![cfg(feature = "services")]

mod helpers;

mod amqp_source;
mod api;
#[cfg(feature = "dlib")]
mod interop;
mod redis_index;
mod worker;
