//! `facerec worker`: the production job. Consumes `toWorker`, finds faces with dlib, keeps
//! Redis databases 1-4, logs to `logs`, acknowledges each image only once it is stored.

use super::connection_args::{BrokerArgs, RedisArgs};
use super::encoder_args::EncoderArgs;
use super::pipeline_args::PipelineArgs;
use crate::app;
use crate::app::worker::WorkerConfig;
use crate::config::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

/// Run the face-matching worker against RabbitMQ and Redis.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Matching and retries.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Face detection and encoding.
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Unacknowledged messages held at once [default: the concurrency]
    #[arg(long, env = "FACEREC_PREFETCH")]
    pub prefetch: Option<u16>,
    /// How this worker names itself: log routing keys `<name>.worker.info`, AMQP connection
    /// name, consumer tag, dead-letter header [default: the host name]
    #[arg(long, env = "FACEREC_HOSTNAME")]
    pub hostname: Option<String>,
    /// Replay encodings recorded by `facerec record` instead of running dlib (tests, demos).
    #[arg(long, env = "FACEREC_ENCODINGS", value_name = "FILE")]
    pub encodings: Option<PathBuf>,
    /// With --encodings: pretend each image takes this long to encode (fault drills, benchmarks).
    #[arg(long, env = "FACEREC_RECORDED_DELAY_MS", default_value_t = 0)]
    pub recorded_delay_ms: u64,
    /// Address of /healthz, /readyz and /metrics ("off" to disable).
    #[arg(long, env = "FACEREC_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: String,
}

impl WorkerArgs {
    /// The checked configuration: every malformed setting is reported here, before any
    /// connection is tried.
    ///
    /// # Errors
    /// The first setting that cannot be used.
    pub fn config(&self) -> Result<WorkerConfig, ConfigError> {
        let host = app::hostname(self.hostname.as_deref());
        let pipeline = self.pipeline.settings(&host);
        let run = self.pipeline.run_options();
        let prefetch = self.prefetch.unwrap_or(u16::try_from(run.concurrency).unwrap_or(u16::MAX)).max(1);
        let amqp = self.broker.settings(&host, prefetch, pipeline.max_attempts.saturating_mul(4))?;
        let redis = self.redis.settings()?;
        let http_addr = match self.http_addr.as_str() {
            "off" => None,
            addr => {
                Some(addr.parse().map_err(|e| ConfigError::invalid("FACEREC_HTTP_ADDR", format!("{addr:?}: {e}")))?)
            }
        };
        let encoder = self.encoder.choice(self.encodings.as_deref(), Duration::from_millis(self.recorded_delay_ms));
        Ok(WorkerConfig { amqp, redis, encoder, pipeline, run, http_addr })
    }
}

/// Runs the worker until SIGTERM/SIGINT.
///
/// # Errors
/// See [`app::worker::run`].
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    println!("Connecting to rabbitmq({}) and redis({})", config.amqp.url.host(), config.redis.url.host());
    app::worker::run(config, crate::shutdown::on_signals()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    /// Every settings struct the worker builds, formatted with `{:?}`, shows no password
    /// given by flag, URL or file.
    #[test]
    fn no_settings_struct_shows_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "F/le#Secret3?\n").unwrap();
        let file = file.to_str().unwrap();
        for args in [
            vec!["--rabbitmq-password", "Pa/ss#Secret1?", "--redis-password", "R/d#Secret2@"],
            vec!["--rabbitmq-url", "amqps://u:Pa%2Fss%23Secret1@h:5671/v", "--redis-url", "rediss://:Secret2@h:1"],
            vec!["--rabbitmq-password-file", file, "--redis-password-file", file],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("facerec").chain(args.iter().copied())).unwrap();
            let config = cli.worker.config().unwrap();
            let shown = format!("{:?} {config:?} {} {}", cli.worker, config.amqp.url, config.redis.url);
            for secret in ["Secret1", "Secret2", "Secret3"] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
            assert!(
                config.amqp.url.expose().contains("Secret") && config.redis.url.expose().contains("Secret"),
                "passwords reach the drivers"
            );
        }
    }
}
