//! Orchestrator flags shared by `scan`, `worker` and `replay`.

use crate::log_lines::RoutingKeys;
use crate::message::MessageLimits;
use crate::orchestrator::Settings;
use crate::runner::RunOptions;

/// How images are matched and how failures are retried.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// Faces at Euclidean distance <= this are the same person (face_recognition's default 0.6;
    /// lower is stricter).
    #[arg(long, env = "FACEREC_TOLERANCE", default_value_t = 0.6, value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Images processed at the same time [default: number of cores]
    #[arg(long, env = "FACEREC_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// A message failing transiently this many times is dead-lettered.
    #[arg(long, env = "FACEREC_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Largest accepted message body, in bytes.
    #[arg(long, env = "FACEREC_MAX_MESSAGE_BYTES", default_value_t = MessageLimits::default().max_message_bytes)]
    pub max_message_bytes: usize,
    /// First wait before a failed message is put back, in ms (doubles per attempt).
    #[arg(long, env = "FACEREC_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest wait before a failed message is put back, in ms.
    #[arg(long, env = "FACEREC_RETRY_MAX_MS", default_value_t = 30_000)]
    pub retry_max_ms: u64,
    /// Longest time one image may spend in the encoder, in seconds; past it the image is
    /// dead-lettered and the encoder thread stuck on it is replaced.
    #[arg(long, env = "FACEREC_MAX_ENCODE_SECONDS", default_value_t = 60.0, value_parser = parse_seconds)]
    pub max_encode_seconds: f64,
    /// Longest accepted image name, in bytes.
    #[arg(long, env = "FACEREC_MAX_NAME_BYTES", default_value_t = MessageLimits::default().max_name_bytes)]
    pub max_name_bytes: usize,
}

impl PipelineArgs {
    /// Orchestrator settings for this host.
    pub fn settings(&self, host: &str) -> Settings {
        Settings {
            tolerance: self.tolerance,
            max_attempts: self.max_attempts.max(1),
            limits: MessageLimits { max_message_bytes: self.max_message_bytes, max_name_bytes: self.max_name_bytes },
            keys: RoutingKeys::for_host(host),
            max_encode: std::time::Duration::from_secs_f64(self.max_encode_seconds),
        }
    }

    /// Runner options.
    pub fn run_options(&self) -> RunOptions {
        let defaults = RunOptions::default();
        RunOptions {
            concurrency: self.concurrency.unwrap_or(defaults.concurrency).max(1),
            retry_base: std::time::Duration::from_millis(self.retry_base_ms),
            retry_max: std::time::Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
        }
    }
}

pub(crate) fn parse_tolerance(s: &str) -> Result<f64, String> {
    let t: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if t.is_finite() && t > 0.0 && t <= 2.0 { Ok(t) } else { Err("tolerance must be a number in (0, 2]".into()) }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let t: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if t.is_finite() && t > 0.0 && t <= 86_400.0 {
        Ok(t)
    } else {
        Err("must be a number of seconds in (0, 86400]".into())
    }
}
